//! The session actor: one per Socket.IO connection, whatever its transport.
//!
//! It speaks Engine.IO v4 (open, ping/pong, close, upgrade) and Socket.IO v5
//! on the main namespace, authenticates the CONNECT token, joins
//! conversation rooms through the broker, relays client events to the
//! conversation actors, and queues what goes out.
//!
//! Outbound flow is bounded end to end: the broker feeds a bounded queue
//! (`SocketConfig::max_queued`); packets wait in `out` (same bound, and
//! `SocketConfig::max_queue_bytes` for them and those in flight to the
//! websocket) until the transport takes them: one held GET for long-polling,
//! or the websocket connection actor, which grants credit only as it writes
//! frames, i.e. as the socket drains. A session that falls behind is closed
//! with the reason `slow_consumer` and saved for connection state recovery,
//! so the client reconnects and gets the missed messages replayed from storage.
//! Replays (a join, a recovery) are bounded in messages and bytes too, so one
//! replay always fits in the queue.
//!
//! A session ends when its token expires (`token_expired`). Reasons the server
//! chose are told to the client as a `session:closed` event before the
//! transport closes; a long-polling client gets it with its next GET.

mod event_metrics;
mod events;

use crate::fanout::broker::{ConversationEvent, Envelope, Subscriber, SubscriptionId, STAFF_TOPIC};
use crate::socket::admission::Admission;
use crate::socket::engineio::{self, Packet as EioPacket};
use crate::socket::hub::{random_id, Hub, Identity, SavedSession};
use crate::socket::session_store::SharedLog;
use crate::socket::socketio::{self, Kind};
use actix::prelude::*;
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

/// The hub of session actors.
pub type SocketHub = Hub<Addr<SessionActor>>;

/// Frames the websocket connection may take before it grants more credit.
const WS_WINDOW: usize = 256;
/// Recent message offsets remembered for connection state recovery.
const OFFSET_LOG: usize = 2048;
/// Time allowed between the Engine.IO open and the Socket.IO CONNECT.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(45);

/// Why a session ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The client closed (Engine.IO close or Socket.IO disconnect).
    ClientClose,
    /// The transport went away (socket closed, poll aborted).
    TransportClosed,
    /// No pong in time.
    PingTimeout,
    /// The client could not keep up with what it was sent.
    SlowConsumer,
    /// The client sent something that is not the protocol.
    ParseError(String),
    /// A packet above `maxPayload`.
    TooLarge,
    /// No Socket.IO CONNECT in time.
    ConnectTimeout,
    /// The CONNECT token expired.
    TokenExpired,
    /// The user was disabled, signed out or given another role, or the key revoked.
    AccessRevoked,
    /// The session failed internally.
    Internal,
}

impl CloseReason {
    /// Short text sent with the websocket close frame.
    pub fn text(&self) -> String {
        match self {
            CloseReason::ClientClose => "client_close".into(),
            CloseReason::TransportClosed => "transport_close".into(),
            CloseReason::PingTimeout => "ping_timeout".into(),
            CloseReason::SlowConsumer => "slow_consumer".into(),
            CloseReason::ParseError(m) => format!("parse_error: {m}"),
            CloseReason::TooLarge => "payload_too_large".into(),
            CloseReason::ConnectTimeout => "connect_timeout".into(),
            CloseReason::TokenExpired => "token_expired".into(),
            CloseReason::AccessRevoked => "access_revoked".into(),
            CloseReason::Internal => "internal_error".into(),
        }
    }

    /// The reason as a metric label: one of a fixed few.
    pub fn label(&self) -> &'static str {
        match self {
            CloseReason::ClientClose => "client_close",
            CloseReason::TransportClosed => "transport_close",
            CloseReason::PingTimeout => "ping_timeout",
            CloseReason::SlowConsumer => "slow_consumer",
            CloseReason::ParseError(_) => "parse_error",
            CloseReason::TooLarge => "payload_too_large",
            CloseReason::ConnectTimeout => "connect_timeout",
            CloseReason::TokenExpired => "token_expired",
            CloseReason::AccessRevoked => "access_revoked",
            CloseReason::Internal => "internal_error",
        }
    }

    /// Websocket close code.
    pub fn code(&self) -> u16 {
        match self {
            CloseReason::ClientClose | CloseReason::TransportClosed => 1000,
            CloseReason::ParseError(_) => 1002,
            CloseReason::TooLarge => 1009,
            CloseReason::Internal => 1011,
            CloseReason::PingTimeout
            | CloseReason::SlowConsumer
            | CloseReason::ConnectTimeout
            | CloseReason::TokenExpired
            | CloseReason::AccessRevoked => 1008,
        }
    }

    /// Whether the client may recover the session after this (an expired
    /// token: by reconnecting with a fresh token of the same identity).
    fn recoverable(&self) -> bool {
        matches!(
            self,
            CloseReason::TransportClosed
                | CloseReason::PingTimeout
                | CloseReason::SlowConsumer
                | CloseReason::Internal
                | CloseReason::TokenExpired
        )
    }

    /// The `session:closed` event that tells the client why, for reasons the server chose
    /// and the client can act on; `None` when the client left or broke the protocol.
    fn notice(&self) -> Option<String> {
        matches!(self, CloseReason::SlowConsumer | CloseReason::TokenExpired | CloseReason::AccessRevoked)
            .then(|| socketio::event_raw("session:closed", &json!({ "reason": self.text() }).to_string(), None))
    }
}

/// What the websocket connection actor is asked to do.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub enum WsOut {
    /// Write these text frames, then grant credit for them.
    Frames(Vec<String>),
    /// Close with a code and reason.
    Close(u16, String),
}

/// An HTTP long-polling answer: the body, or an Engine.IO error.
pub type PollAnswer = Result<String, PollError>;

/// An Engine.IO error for an HTTP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollError {
    /// HTTP status.
    pub status: u16,
    /// Engine.IO error code.
    pub code: u8,
    /// Message.
    pub message: &'static str,
}

/// The "Bad request" error of Engine.IO.
pub const BAD_REQUEST: PollError = PollError { status: 400, code: 3, message: "Bad request" };

/// A long-polling GET waiting for packets.
#[derive(Message)]
#[rtype(result = "()")]
pub struct PollRequest {
    /// Where to answer.
    pub reply: oneshot::Sender<PollAnswer>,
}

/// A long-polling POST carrying packets.
#[derive(Message)]
#[rtype(result = "()")]
pub struct PostPayload {
    /// The body.
    pub body: String,
    /// Where to answer.
    pub reply: oneshot::Sender<Result<(), PollError>>,
}

/// One packet from the websocket (shared with the frame it came in: no copy).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Inbound(pub bytestring::ByteString);

/// The websocket wrote `n` frames of `bytes` bytes in all.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Credit(pub usize, pub usize);

/// A websocket probe started (`2probe` answered).
#[derive(Message)]
#[rtype(result = "bool")]
pub struct UpgradeProbe;

/// The upgrade finished (`5`): the websocket is the transport from now on.
#[derive(Message)]
#[rtype(result = "()")]
pub struct UpgradeDone(pub Recipient<WsOut>);

/// The probe websocket went away before `5`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct UpgradeAbort;

/// The transport went away, or the client broke the protocol at the transport level.
#[derive(Message)]
#[rtype(result = "()")]
pub struct TransportGone(pub CloseReason);

enum Transport {
    Polling { pending: Option<oneshot::Sender<PollAnswer>> },
    Websocket(Recipient<WsOut>),
}

struct Room {
    sub: SubscriptionId,
    delivered: u64,
}

struct Connected {
    sid: String,
    pid: String,
    identity: Identity,
    rooms: HashMap<Uuid, Room>,
    staff_sub: Option<SubscriptionId>,
    subscriber: Subscriber,
    overflowed: Arc<AtomicBool>,
    /// Offsets, deliveries and floors: shared with the hub's session store,
    /// which writes them to the store once a flush period.
    recovery: SharedLog,
}

/// One Socket.IO connection.
pub struct SessionActor {
    hub: Arc<SocketHub>,
    number: u64,
    eio_sid: String,
    transport: Transport,
    upgrading: bool,
    out: VecDeque<String>,
    /// Bytes of the packets in `out`.
    out_bytes: usize,
    /// Bytes handed to the websocket connection and not yet written.
    inflight_bytes: usize,
    credits: usize,
    ping_outstanding: Option<Instant>,
    sio: Option<Connected>,
    closed: bool,
    /// After a close a long-polling client has not heard of yet: the body for its next GET.
    parting: Option<String>,
    /// This session's place under the session caps; given back when the actor is dropped.
    admission: Admission,
    /// Events waiting for their ack: when each arrived, and the histogram
    /// its ack latency goes to (empty, and unallocated, on idle sockets).
    awaiting_ack: Vec<(u64, Instant, &'static metrics::Histogram)>,
}

/// Receives broker deliveries as an actor stream.
struct Deliveries(mpsc::Receiver<Arc<Envelope>>);

impl futures_util::Stream for Deliveries {
    type Item = Arc<Envelope>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

impl SessionActor {
    /// Whether this session is staff who read conversations (every staff
    /// role but an integration key): it hears of every conversation's
    /// changes and reads private notes.
    fn is_staff_reader(&self) -> bool {
        self.sio.as_ref().is_some_and(|c| c.identity.sees_private_notes())
    }

    /// Whether this session gets stock alerts: operators, admins, and the store's manager.
    fn receives_alerts(&self, manager: Option<Uuid>) -> bool {
        match self.sio.as_ref().map(|c| c.identity) {
            Some(Identity::Staff { user_id, role }) => {
                matches!(role, utalk_storage::model::Role::Admin | utalk_storage::model::Role::Operator) || Some(user_id) == manager
            }
            _ => false,
        }
    }

    /// A session on long-polling; the open packet goes out with the first GET answer.
    pub fn polling(hub: Arc<SocketHub>, admission: Admission) -> SessionActor {
        Self::new(hub, Transport::Polling { pending: None }, true, admission)
    }

    /// A session that started on a websocket.
    pub fn websocket(hub: Arc<SocketHub>, ws: Recipient<WsOut>, admission: Admission) -> SessionActor {
        Self::new(hub, Transport::Websocket(ws), false, admission)
    }

    fn new(hub: Arc<SocketHub>, transport: Transport, upgrades: bool, admission: Admission) -> SessionActor {
        let eio_sid = random_id();
        let c = &hub.config;
        let open =
            engineio::open_packet(&eio_sid, upgrades, c.ping_interval.as_millis() as u64, c.ping_timeout.as_millis() as u64, c.max_payload);
        SessionActor {
            number: hub.next_session_number(),
            hub,
            eio_sid,
            transport,
            upgrading: false,
            out_bytes: open.len(),
            out: VecDeque::from([open]),
            inflight_bytes: 0,
            credits: WS_WINDOW,
            ping_outstanding: None,
            sio: None,
            closed: false,
            parting: None,
            admission,
            awaiting_ack: Vec::new(),
        }
    }

    /// The Engine.IO session id.
    pub fn sid(&self) -> &str {
        &self.eio_sid
    }

    fn is_websocket(&self) -> bool {
        matches!(self.transport, Transport::Websocket(_))
    }

    /// Queues a packet and pushes what the transport can take.
    fn emit(&mut self, packet: String, ctx: &mut Context<Self>) {
        if self.closed {
            return;
        }
        let c = &self.hub.config;
        if self.out.len() >= c.max_queued || self.out_bytes + self.inflight_bytes + packet.len() > c.max_queue_bytes {
            self.close(CloseReason::SlowConsumer, ctx);
            return;
        }
        self.out_bytes += packet.len();
        self.out.push_back(packet);
        self.flush(ctx);
    }

    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.out.is_empty() {
            return;
        }
        match &mut self.transport {
            Transport::Polling { pending } => {
                if self.upgrading {
                    // Held until the upgrade ends; the probe answers GETs with noops.
                    return;
                }
                if let Some(reply) = pending.take() {
                    let packets: Vec<String> = self.out.drain(..).collect();
                    self.out_bytes = 0;
                    if let Err(Ok(body)) = reply.send(Ok(engineio::encode_payload(&packets))) {
                        // The client dropped the GET: keep its packets for recovery and close.
                        drop(body);
                        for p in packets.into_iter().rev() {
                            self.out_bytes += p.len();
                            self.out.push_front(p);
                        }
                        self.close(CloseReason::TransportClosed, ctx);
                    }
                }
            }
            Transport::Websocket(ws) => {
                if self.credits == 0 {
                    return;
                }
                if !ws.connected() {
                    return self.close(CloseReason::TransportClosed, ctx);
                }
                let n = self.credits.min(self.out.len());
                let frames: Vec<String> = self.out.drain(..n).collect();
                let bytes: usize = frames.iter().map(String::len).sum();
                self.out_bytes = self.out_bytes.saturating_sub(bytes);
                self.inflight_bytes += bytes;
                self.credits -= n;
                // Credits bound what is in flight to the connection actor, so its
                // mailbox cannot grow past the window even though this ignores capacity.
                ws.do_send(WsOut::Frames(frames));
            }
        }
    }

    /// Ends the session: saves it for recovery when the client may come back, tells the transport, stops.
    fn close(&mut self, reason: CloseReason, ctx: &mut Context<Self>) {
        if self.closed {
            return;
        }
        self.closed = true;
        tracing::info!(sid = %self.eio_sid, reason = %reason.text(), "socket session closed");
        metrics::counter!("socket_disconnects_total", "reason" => reason.label()).increment(1);
        if reason == CloseReason::SlowConsumer {
            self.hub.note_dropped_slow();
        }
        if let Some(c) = self.sio.take() {
            let broker = self.hub.registry.broker();
            for (conv, room) in &c.rooms {
                broker.unsubscribe(*conv, room.sub);
            }
            if let Some(s) = c.staff_sub {
                broker.unsubscribe(STAFF_TOPIC, s);
            }
            match c.identity {
                Identity::Staff { user_id, .. } => self.hub.presence(user_id, -1, None),
                Identity::Widget { .. } => self.hub.customer_session(false),
            }
            if reason.recoverable() {
                self.hub.save(&c.pid, saved_session(&c));
            } else {
                self.hub.forget(&c.pid);
            }
        }
        self.out.clear();
        self.out_bytes = 0;
        let notice = reason.notice();
        match std::mem::replace(&mut self.transport, Transport::Polling { pending: None }) {
            Transport::Polling { pending } => {
                let parting = notice.map(|n| engineio::encode_payload(&[n, "1".into()]));
                match (pending, parting) {
                    (Some(reply), parting) => {
                        let body = parting.unwrap_or_else(|| if reason == CloseReason::ClientClose { "6" } else { "1" }.into());
                        let _ = reply.send(Ok(body));
                    }
                    (None, Some(parting)) => {
                        // Stay reachable (and nothing else) until the client's next GET
                        // hears why, or until a live client would have polled again.
                        self.parting = Some(parting);
                        let grace = self.hub.config.ping_interval + self.hub.config.ping_timeout;
                        ctx.run_later(grace, |act, ctx| act.finish(ctx));
                        return;
                    }
                    (None, None) => {}
                }
            }
            Transport::Websocket(ws) => {
                if let Some(n) = notice {
                    // Ahead of the close frame, whatever the credit: one small frame.
                    ws.do_send(WsOut::Frames(vec![n]));
                }
                ws.do_send(WsOut::Close(reason.code(), reason.text()));
                self.hub.unregister(&self.eio_sid, true);
                ctx.stop();
                return;
            }
        }
        self.finish(ctx);
    }

    /// Forgets a closed long-polling session and stops.
    fn finish(&mut self, ctx: &mut Context<Self>) {
        self.parting = None;
        self.hub.unregister(&self.eio_sid, false);
        ctx.stop();
    }

    fn on_packet(&mut self, text: &str, ctx: &mut Context<Self>) {
        match engineio::decode(text) {
            Err(e) => self.close(CloseReason::ParseError(e.to_string()), ctx),
            Ok(EioPacket::Pong(_)) => self.ping_outstanding = None,
            Ok(EioPacket::Ping(_)) => self.close(CloseReason::ParseError("pings come from the server in Engine.IO v4".into()), ctx),
            Ok(EioPacket::Close) => self.close(CloseReason::ClientClose, ctx),
            Ok(EioPacket::Message(m)) => self.on_sio(m, ctx),
            Ok(EioPacket::Upgrade) | Ok(EioPacket::Noop) => {}
        }
    }

    fn on_sio(&mut self, text: &str, ctx: &mut Context<Self>) {
        let p = match socketio::decode(text) {
            Ok(p) => p,
            Err(e) => return self.close(CloseReason::ParseError(e.to_string()), ctx),
        };
        if p.nsp != "/" {
            if p.kind == Kind::Connect {
                self.emit(socketio::connect_error(&p.nsp, "Invalid namespace"), ctx);
            } else {
                self.close(CloseReason::ParseError(format!("namespace {} is not joined", p.nsp)), ctx);
            }
            return;
        }
        match p.kind {
            Kind::Connect if self.sio.is_none() => self.on_connect(p.data, ctx),
            Kind::Connect => self.close(CloseReason::ParseError("namespace already joined".into()), ctx),
            Kind::Disconnect => self.close(CloseReason::ClientClose, ctx),
            Kind::Event if self.sio.is_some() => {
                let args = match p.data {
                    Some(Value::Array(a)) => a,
                    _ => return self.close(CloseReason::ParseError("event without arguments".into()), ctx),
                };
                self.on_event(args, p.id, ctx);
            }
            Kind::Event => self.close(CloseReason::ParseError("event before CONNECT".into()), ctx),
            // Acks from the client answer nothing we asked.
            Kind::Ack => {}
            _ => self.close(CloseReason::ParseError("unexpected packet type".into()), ctx),
        }
    }
}

impl Actor for SessionActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(1024);
        let interval = self.hub.config.ping_interval;
        ctx.run_interval(interval, |act, ctx| act.heartbeat(ctx));
        ctx.run_later(CONNECT_TIMEOUT, |act, ctx| {
            if act.sio.is_none() {
                act.close(CloseReason::ConnectTimeout, ctx);
            }
        });
        self.flush(ctx);
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        // Forgetting is idempotent: a close already did it, unless the actor stopped otherwise.
        self.hub.unregister(&self.eio_sid, self.is_websocket());
        // Stopped without a close (its arbiter stopped): the client may come back.
        if let Some(c) = self.sio.take() {
            self.hub.save(&c.pid, saved_session(&c));
        }
    }
}

impl StreamHandler<Arc<Envelope>> for SessionActor {
    fn handle(&mut self, env: Arc<Envelope>, ctx: &mut Context<Self>) {
        self.guarded(ctx, |act, ctx| {
            if act.sio.as_ref().is_some_and(|c| c.overflowed.load(Ordering::Relaxed)) {
                return act.close(CloseReason::SlowConsumer, ctx);
            }
            match &env.event {
                // A widget is the customer: staff's private notes are not for it.
                ConversationEvent::MessageNew(m) | ConversationEvent::MessageUpdated(m) if m.private && !act.is_staff_reader() => {}
                ConversationEvent::MessageNew(m) => act.deliver_message(m.conversation_id, m.seq, env.json(), ctx),
                ConversationEvent::Typing { origin, .. } if *origin == act.number => {}
                // Stock alerts go to the people who run the stores, not to every agent.
                ConversationEvent::Alert { manager, .. } if !act.receives_alerts(*manager) => {}
                // Staff hear a conversation's changes once, on the staff
                // topic, whether or not they joined it; others (a widget, an
                // integration key) only in the conversations they joined.
                ConversationEvent::ConversationUpdated(_) if act.is_staff_reader() => {}
                e if e.is_staff_news() && !act.is_staff_reader() => {}
                other => {
                    let name = other.name();
                    act.emit(socketio::event_raw(name, env.json(), None), ctx);
                }
            }
        });
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        // The broker dropped every copy of our queue: we fell behind.
        self.close(CloseReason::SlowConsumer, ctx);
    }
}

impl Handler<PollRequest> for SessionActor {
    type Result = ();
    fn handle(&mut self, msg: PollRequest, ctx: &mut Context<Self>) {
        self.guarded(ctx, |act, ctx| {
            if act.closed {
                // Closed, waiting to tell why: this GET hears it and the session is gone.
                match act.parting.take() {
                    Some(body) => {
                        let _ = msg.reply.send(Ok(body));
                        act.finish(ctx);
                    }
                    None => {
                        let _ = msg.reply.send(Err(BAD_REQUEST));
                    }
                }
                return;
            }
            let Transport::Polling { pending } = &mut act.transport else {
                let _ = msg.reply.send(Err(BAD_REQUEST));
                return;
            };
            if act.upgrading {
                let packets: Vec<String> = act.out.drain(..).collect();
                act.out_bytes = 0;
                let body = if packets.is_empty() { "6".to_string() } else { engineio::encode_payload(&packets) };
                let _ = msg.reply.send(Ok(body));
                return;
            }
            if pending.is_some() {
                // A second concurrent GET breaks the protocol: refuse it and end the session.
                let _ = msg.reply.send(Err(BAD_REQUEST));
                act.close(CloseReason::ParseError("overlapping poll requests".into()), ctx);
                return;
            }
            *pending = Some(msg.reply);
            act.flush(ctx);
        });
    }
}

impl Handler<PostPayload> for SessionActor {
    type Result = ();
    fn handle(&mut self, msg: PostPayload, ctx: &mut Context<Self>) {
        self.guarded(ctx, |act, ctx| {
            if act.is_websocket() {
                let _ = msg.reply.send(Err(BAD_REQUEST));
                return;
            }
            match engineio::decode_payload(&msg.body) {
                Ok(_) => {
                    let _ = msg.reply.send(Ok(()));
                    for packet in msg.body.split(engineio::SEPARATOR) {
                        if act.closed {
                            break;
                        }
                        act.on_packet(packet, ctx);
                    }
                }
                Err(e) => {
                    let _ = msg.reply.send(Err(BAD_REQUEST));
                    act.close(CloseReason::ParseError(e.to_string()), ctx);
                }
            }
        });
    }
}

impl Handler<Inbound> for SessionActor {
    type Result = ();
    fn handle(&mut self, msg: Inbound, ctx: &mut Context<Self>) {
        self.guarded(ctx, |act, ctx| act.on_packet(&msg.0, ctx));
    }
}

impl Handler<Credit> for SessionActor {
    type Result = ();
    fn handle(&mut self, msg: Credit, ctx: &mut Context<Self>) {
        self.credits = (self.credits + msg.0).min(WS_WINDOW);
        self.inflight_bytes = self.inflight_bytes.saturating_sub(msg.1);
        self.flush(ctx);
    }
}

impl Handler<UpgradeProbe> for SessionActor {
    type Result = bool;
    fn handle(&mut self, _: UpgradeProbe, _ctx: &mut Context<Self>) -> bool {
        let Transport::Polling { pending } = &mut self.transport else { return false };
        if self.upgrading || self.closed {
            return false;
        }
        self.upgrading = true;
        // Release the held GET so the client can pause polling and finish the upgrade.
        if let Some(reply) = pending.take() {
            let packets: Vec<String> = self.out.drain(..).collect();
            self.out_bytes = 0;
            let body = if packets.is_empty() { "6".to_string() } else { engineio::encode_payload(&packets) };
            let _ = reply.send(Ok(body));
        }
        true
    }
}

impl Handler<UpgradeDone> for SessionActor {
    type Result = ();
    fn handle(&mut self, msg: UpgradeDone, ctx: &mut Context<Self>) {
        if self.closed {
            let _ = msg.0.try_send(WsOut::Close(1000, "session closed".into()));
            return;
        }
        if let Transport::Polling { pending: Some(reply) } = std::mem::replace(&mut self.transport, Transport::Websocket(msg.0)) {
            let _ = reply.send(Ok("6".into()));
        }
        self.upgrading = false;
        self.credits = WS_WINDOW;
        self.inflight_bytes = 0;
        self.hub.upgraded();
        self.flush(ctx);
    }
}

impl Handler<UpgradeAbort> for SessionActor {
    type Result = ();
    fn handle(&mut self, _: UpgradeAbort, ctx: &mut Context<Self>) {
        if matches!(self.transport, Transport::Polling { .. }) {
            self.upgrading = false;
            self.flush(ctx);
        }
    }
}

impl Handler<TransportGone> for SessionActor {
    type Result = ();
    fn handle(&mut self, msg: TransportGone, ctx: &mut Context<Self>) {
        self.close(msg.0, ctx);
    }
}

/// What a session leaves for recovery: its log, with every joined
/// conversation among the floors.
fn saved_session(c: &Connected) -> SavedSession {
    let log = c.recovery.lock().unwrap_or_else(|p| p.into_inner());
    let mut floors = log.floors.clone();
    for conv in c.rooms.keys() {
        floors.entry(*conv).or_insert(0);
    }
    SavedSession {
        sid: c.sid.clone(),
        identity: c.identity,
        floors,
        log: log.log.clone(),
        next_offset: log.next_offset,
        saved_at: Instant::now(),
    }
}
