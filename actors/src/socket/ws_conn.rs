//! The websocket connection actor: the transport under a session.
//!
//! It parses frames and hands packets to its [`SessionActor`], and writes the
//! frames the session sends it, granting credit back as it writes. Because
//! [`ws_transport`](crate::socket::ws_transport) runs this actor only when
//! its last output reached the kernel (that is, while the socket drains),
//! credit comes back only as fast as the client reads: the session's bound
//! then applies.
//!
//! A connection either starts a session (websocket-only clients) or upgrades
//! an existing long-polling session (`2probe`/`3probe`, then `5`).

use crate::socket::admission::Admission;
use crate::socket::session::CloseReason;
use crate::socket::session::SocketHub;
use crate::socket::session::{Credit, Inbound, SessionActor, TransportGone, UpgradeAbort, UpgradeDone, UpgradeProbe, WsOut};
use actix::prelude::*;
use actix_web_actors::ws;
use std::sync::Arc;

enum Mode {
    /// Owns a session that started on this websocket.
    Session,
    /// Probing to upgrade a polling session; `probed` once `2probe` was answered.
    Probe { probed: bool },
}

/// One websocket connection.
pub struct WsConn {
    hub: Arc<SocketHub>,
    session: Option<Addr<SessionActor>>,
    /// The place of the session this connection starts, until it starts it.
    admission: Option<Admission>,
    mode: Mode,
    closing: bool,
}

impl WsConn {
    /// A connection that starts a new session.
    pub fn new_session(hub: Arc<SocketHub>, admission: Admission) -> WsConn {
        WsConn { hub, session: None, admission: Some(admission), mode: Mode::Session, closing: false }
    }

    /// A connection that upgrades the polling session `session`.
    pub fn upgrade(hub: Arc<SocketHub>, session: Addr<SessionActor>) -> WsConn {
        WsConn { hub, session: Some(session), admission: None, mode: Mode::Probe { probed: false }, closing: false }
    }

    fn close(&mut self, ctx: &mut ws::WebsocketContext<Self>, code: u16, reason: String) {
        if self.closing {
            return;
        }
        self.closing = true;
        ctx.close(Some(ws::CloseReason { code: ws::CloseCode::from(code), description: Some(reason) }));
        ctx.stop();
    }

    fn on_text(&mut self, text: bytestring::ByteString, ctx: &mut ws::WebsocketContext<Self>) {
        match self.mode {
            Mode::Session => {
                let Some(session) = &self.session else { return };
                match session.try_send(Inbound(text)) {
                    Ok(()) => {}
                    Err(SendError::Full(_)) => self.close(ctx, 1008, "too_many_packets".into()),
                    Err(SendError::Closed(_)) => ctx.stop(),
                }
            }
            Mode::Probe { probed } => {
                let Some(session) = self.session.clone() else { return };
                match (probed, &*text) {
                    (false, "2probe") => {
                        session
                            .send(UpgradeProbe)
                            .into_actor(self)
                            .then(|accepted, act, ctx| {
                                if accepted.unwrap_or(false) {
                                    act.mode = Mode::Probe { probed: true };
                                    ctx.text("3probe");
                                } else {
                                    act.session = None;
                                    act.close(ctx, 1008, "upgrade_refused".into());
                                }
                                fut::ready(())
                            })
                            .wait(ctx);
                    }
                    (true, "5") => {
                        self.mode = Mode::Session;
                        session.do_send(UpgradeDone(ctx.address().recipient()));
                    }
                    _ => {
                        session.do_send(UpgradeAbort);
                        self.session = None;
                        self.close(ctx, 1002, "parse_error: unexpected packet during upgrade".into());
                    }
                }
            }
        }
    }
}

impl Actor for WsConn {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if let (Mode::Session, Some(admission)) = (&self.mode, self.admission.take()) {
            let session = SessionActor::websocket(self.hub.clone(), ctx.address().recipient(), admission);
            let sid = session.sid().to_owned();
            let addr = session.start();
            self.hub.register(&sid, addr.clone(), true);
            self.session = Some(addr);
        }
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        if let Some(session) = self.session.take() {
            match self.mode {
                Mode::Session => session.do_send(TransportGone(CloseReason::TransportClosed)),
                Mode::Probe { .. } => session.do_send(UpgradeAbort),
            }
        }
    }
}

impl Handler<WsOut> for WsConn {
    type Result = ();
    fn handle(&mut self, msg: WsOut, ctx: &mut Self::Context) {
        match msg {
            WsOut::Frames(frames) => {
                let (n, bytes) = (frames.len(), frames.iter().map(String::len).sum());
                for f in frames {
                    ctx.text(f);
                }
                if let Some(s) = &self.session {
                    s.do_send(Credit(n, bytes));
                }
            }
            WsOut::Close(code, reason) => {
                // The session already ended; do not report back to it.
                self.session = None;
                self.close(ctx, code, reason);
            }
        }
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for WsConn {
    fn handle(&mut self, item: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        match item {
            Ok(ws::Message::Text(text)) => self.on_text(text, ctx),
            Ok(ws::Message::Binary(_)) => {
                self.report(CloseReason::ParseError("binary frames are not supported".into()));
                self.close(ctx, 1003, "binary_not_supported".into());
            }
            Ok(ws::Message::Ping(p)) => ctx.pong(&p),
            Ok(ws::Message::Pong(_)) | Ok(ws::Message::Nop) => {}
            Ok(ws::Message::Continuation(_)) => {
                self.report(CloseReason::ParseError("fragmented frames are not supported".into()));
                self.close(ctx, 1003, "fragmented_frames_not_supported".into());
            }
            Ok(ws::Message::Close(_)) => {
                self.report(CloseReason::TransportClosed);
                self.close(ctx, 1000, "bye".into());
            }
            Err(ws::ProtocolError::Overflow) => {
                self.report(CloseReason::TooLarge);
                self.close(ctx, 1009, "payload_too_large".into());
            }
            // The connection broke off mid-frame (a load balancer drained it, the
            // network dropped): the transport went away, so the session may be recovered.
            Err(ws::ProtocolError::Io(e)) => {
                tracing::debug!(error = %e, "websocket connection broke off");
                self.report(CloseReason::TransportClosed);
                ctx.stop();
            }
            Err(e) => {
                self.report(CloseReason::ParseError(e.to_string()));
                self.close(ctx, 1002, format!("parse_error: {e}"));
            }
        }
    }
}

impl WsConn {
    /// Tells the session why the transport is ending, once.
    fn report(&mut self, reason: CloseReason) {
        if let (Some(s), Mode::Session) = (self.session.take(), &self.mode) {
            s.do_send(TransportGone(reason));
        }
    }
}
