//! `/socket.io/`: the Engine.IO v4 endpoint (long-polling and websocket).
//!
//! The protocol work happens in the session actors; this module only maps
//! HTTP requests to them and writes Engine.IO's own error bodies.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use actix_web_actors::ws;
use serde::Deserialize;
use std::sync::Arc;
use tokio::sync::oneshot;
use utalk_actors::socket::admission::{Admission, Refusal};
use utalk_actors::socket::session::{PollError, PollRequest, PostPayload, SessionActor, BAD_REQUEST};
use utalk_actors::SocketHub;

pub fn configure(cfg: &mut web::ServiceConfig, max_payload: usize) {
    for path in ["/socket.io/", "/socket.io"] {
        cfg.service(
            web::resource(path)
                .app_data(web::PayloadConfig::new(max_payload))
                .route(web::get().to(get))
                .route(web::post().to(post))
                .route(web::to(|| async { engine_error(PollError { status: 400, code: 2, message: "Bad handshake method" }) })),
        );
    }
}

/// Engine.IO's query parameters; others (`t`, `b64`) are ignored.
#[derive(Debug, Deserialize)]
pub struct EioQuery {
    #[serde(rename = "EIO")]
    eio: Option<String>,
    transport: Option<String>,
    pub(crate) sid: Option<String>,
}

const UNKNOWN_TRANSPORT: PollError = PollError { status: 400, code: 0, message: "Transport unknown" };
pub(crate) const UNKNOWN_SID: PollError = PollError { status: 400, code: 1, message: "Session ID unknown" };
const BAD_VERSION: PollError = PollError { status: 400, code: 5, message: "Unsupported protocol version" };

pub(crate) fn engine_error(e: PollError) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(e.status).unwrap_or(actix_web::http::StatusCode::BAD_REQUEST))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(serde_json::json!({ "code": e.code, "message": e.message }))
}

/// A place for a new session from the request's client address, or the typed refusal:
/// 503 when the server holds `socket.max_sessions`, 429 when the address holds
/// `socket.max_anonymous_sessions_per_ip` sessions that have not authenticated.
fn admit(req: &HttpRequest, hub: &SocketHub) -> Result<Admission, crate::http::error::ApiError> {
    admit_ip(&super::client_ip(req), hub)
}

/// [`admit`] for a client address already resolved (websocket upgrades, which come before routing).
pub(crate) fn admit_ip(ip: &str, hub: &SocketHub) -> Result<Admission, crate::http::error::ApiError> {
    hub.admit(ip).map_err(|refusal| {
        tracing::warn!(ip = %ip, %refusal, "socket handshake refused");
        match refusal {
            Refusal::Total => crate::http::error::ApiError::unavailable("too_many_sessions", refusal.to_string()),
            // Places come back as those sessions authenticate or time out (45 s without CONNECT).
            Refusal::PerAddress => crate::http::error::ApiError::rate_limited("too_many_sessions", refusal.to_string(), 5),
        }
    })
}

fn text(body: String) -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain; charset=UTF-8").insert_header((header::CACHE_CONTROL, "no-store")).body(body)
}

pub(crate) fn check(q: &EioQuery) -> Result<&str, PollError> {
    if q.eio.as_deref() != Some("4") {
        return Err(BAD_VERSION);
    }
    match q.transport.as_deref() {
        Some(t @ ("polling" | "websocket")) => Ok(t),
        _ => Err(UNKNOWN_TRANSPORT),
    }
}

async fn get(req: HttpRequest, q: web::Query<EioQuery>, hub: web::Data<Arc<SocketHub>>) -> HttpResponse {
    let transport = match check(&q) {
        Ok(t) => t,
        Err(e) => return engine_error(e),
    };
    let hub = hub.get_ref().clone();
    if transport == "websocket" {
        // A real upgrade never gets here: the HTTP service hands those to
        // `ws_upgrade` before routing. This is a plain GET that asked for a websocket.
        return match ws::handshake(&req) {
            Err(e) => actix_web::ResponseError::error_response(&e),
            Ok(_) => engine_error(BAD_REQUEST),
        };
    }
    let session = match q.sid.as_deref() {
        None => {
            let admission = match admit(&req, &hub) {
                Ok(a) => a,
                Err(refused) => return actix_web::ResponseError::error_response(&refused),
            };
            let session = SessionActor::polling(hub.clone(), admission);
            let sid = session.sid().to_owned();
            let addr = actix::Actor::start(session);
            hub.register(&sid, addr.clone(), false);
            addr
        }
        Some(sid) => match hub.find(sid) {
            Some(s) => s,
            None => return engine_error(UNKNOWN_SID),
        },
    };
    let (tx, rx) = oneshot::channel();
    if session.send(PollRequest { reply: tx }).await.is_err() {
        return engine_error(UNKNOWN_SID);
    }
    match rx.await {
        Ok(Ok(body)) => text(body),
        Ok(Err(e)) => engine_error(e),
        Err(_) => engine_error(UNKNOWN_SID),
    }
}

async fn post(body: web::Bytes, q: web::Query<EioQuery>, hub: web::Data<Arc<SocketHub>>) -> HttpResponse {
    if let Err(e) = check(&q) {
        return engine_error(e);
    }
    let Some(session) = q.sid.as_deref().and_then(|sid| hub.find(sid)) else {
        return engine_error(if q.sid.is_some() {
            UNKNOWN_SID
        } else {
            PollError { status: 400, code: 2, message: "Bad handshake method" }
        });
    };
    let Ok(body) = String::from_utf8(body.to_vec()) else { return engine_error(BAD_REQUEST) };
    let (tx, rx) = oneshot::channel();
    if session.send(PostPayload { body, reply: tx }).await.is_err() {
        return engine_error(UNKNOWN_SID);
    }
    match rx.await {
        Ok(Ok(())) => HttpResponse::Ok().content_type("text/html").insert_header((header::CACHE_CONTROL, "no-store")).body("ok"),
        Ok(Err(e)) => engine_error(e),
        Err(_) => engine_error(UNKNOWN_SID),
    }
}
