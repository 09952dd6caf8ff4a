//! Websocket upgrades, answered before routing.
//!
//! An HTTP/1 request that asks to become a websocket comes here instead of
//! going through the app: once answered, its TCP stream leaves the HTTP
//! dispatcher and is served by `ws_transport`, which holds no buffer while the
//! socket is idle. Only `/socket.io/` upgrades; anything else gets its error
//! and the connection is closed. Upgrade requests are therefore not counted in
//! the HTTP request metrics; the socket metrics count the sessions.

use crate::http::client_addr::TrustedProxies;
use crate::http::routes::socket::{admit_ip, check, engine_error, EioQuery, UNKNOWN_SID};
use actix_http::body::{BoxBody, MessageBody};
use actix_http::{h1, Request, Response};
use actix_service::ServiceFactory;
use actix_web::ResponseError;
use std::convert::Infallible;
use std::io::Write as _;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use utalk_actors::socket::session::PollError;
use utalk_actors::socket::session::BAD_REQUEST;
use utalk_actors::socket::ws_conn::WsConn;
use utalk_actors::socket::ws_transport;
use utalk_actors::SocketHub;

/// What an upgrade needs from the server.
#[derive(Clone)]
pub(crate) struct Upgrades {
    pub hub: Arc<SocketHub>,
    pub proxies: Arc<TrustedProxies>,
}

type Framed = actix_codec::Framed<TcpStream, h1::Codec>;

/// The HTTP service's upgrade handler, one per worker.
pub(crate) fn factory(
    up: Upgrades,
) -> impl ServiceFactory<(Request, Framed), Config = (), Response = (), Error = Infallible, InitError = ()> {
    actix_service::fn_service(move |(req, framed): (Request, Framed)| {
        // A task of its own, so that the HTTP connection's task (the dispatcher,
        // sized for any request) ends here and its memory is freed. Open
        // websockets are bounded by `socket.max_sessions`, not by the HTTP
        // server's connection limit, and a shutdown does not wait for them.
        actix_web::rt::spawn(handle(req, framed, up.clone()));
        std::future::ready(Ok::<_, Infallible>(()))
    })
}

async fn handle(req: Request, framed: Framed, up: Upgrades) {
    let answer = accept(&req, &up);
    // Nothing of the HTTP layer may stay with the connection: not the request
    // head, nor the codec, nor the 8 KiB buffers (the write buffer is empty
    // here; the read buffer's bytes, if any, are copied out).
    drop(req);
    let parts = framed.into_parts();
    let (mut io, leftover) = (parts.io, ws_transport::leftover(parts.read_buf));
    drop((parts.codec, parts.write_buf));
    match answer {
        Ok((conn, switching)) => {
            if write_response(&mut io, switching, false).await.is_err() {
                return;
            }
            let (stall, max_payload) = (up.hub.config.ping_interval + up.hub.config.ping_timeout, up.hub.config.max_payload);
            drop(up);
            ws_transport::serve(io, leftover, conn, max_payload, stall).await;
        }
        Err(refusal) => {
            let _ = write_response(&mut io, refusal, true).await;
            let _ = io.shutdown().await;
        }
    }
}

/// The connection actor and the `101` answer, or the error to answer with.
fn accept(req: &Request, up: &Upgrades) -> Result<(WsConn, Response<BoxBody>), Response<BoxBody>> {
    if !matches!(req.path(), "/socket.io/" | "/socket.io") {
        return Err(crate::http::error::ApiError::not_found("route").error_response().into());
    }
    if req.method() != actix_http::Method::GET {
        return Err(engine(PollError { status: 400, code: 2, message: "Bad handshake method" }));
    }
    let q = actix_web::web::Query::<EioQuery>::from_query(req.uri().query().unwrap_or("")).map_err(|_| engine(BAD_REQUEST))?.into_inner();
    match check(&q) {
        Ok("websocket") => {}
        Ok(_) => return Err(engine(BAD_REQUEST)),
        Err(e) => return Err(engine(e)),
    }
    let switching = actix_http::ws::handshake(req.head()).map_err(Response::from)?.finish().map_into_boxed_body();
    let hub = up.hub.clone();
    let conn = match q.sid.as_deref() {
        None => {
            let ip = up.proxies.client(req.peer_addr().map(|a| a.ip()), req.head().headers());
            let ip = ip.map(|i| i.to_string()).unwrap_or_else(|| "unknown".into());
            let admission = admit_ip(&ip, &hub).map_err(|refused| Response::from(refused.error_response()))?;
            WsConn::new_session(hub, admission)
        }
        Some(sid) => match hub.find(sid) {
            Some(session) => WsConn::upgrade(hub, session),
            None => return Err(engine(UNKNOWN_SID)),
        },
    };
    Ok((conn, switching))
}

fn engine(e: PollError) -> Response<BoxBody> {
    engine_error(e).into()
}

/// Writes an HTTP/1.1 answer on the raw stream. `closing` answers (errors)
/// carry their length and `connection: close`; the `101` carries `connection: Upgrade`.
async fn write_response(io: &mut TcpStream, res: Response<BoxBody>, closing: bool) -> std::io::Result<()> {
    let (head, body) = res.into_parts();
    // Bodies here are short JSON errors, already in memory.
    let body = body.try_into_bytes().unwrap_or_default();
    let status = head.status();
    let mut out = Vec::with_capacity(256 + body.len());
    write!(out, "HTTP/1.1 {} {}\r\n", status.as_u16(), status.canonical_reason().unwrap_or(""))?;
    for (name, value) in head.headers() {
        if closing && (name == actix_http::header::CONTENT_LENGTH || name == actix_http::header::CONNECTION) {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if closing {
        write!(out, "content-length: {}\r\nconnection: close\r\n", body.len())?;
    } else if head.upgrade() {
        // The HTTP encoder writes this from the head's connection type, not from a header.
        out.extend_from_slice(b"connection: Upgrade\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&body);
    io.write_all(&out).await
}
