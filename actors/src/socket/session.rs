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

use crate::conversation::{AppendRequest, Appended, MarkRead};
use crate::fanout::broker::{ConversationEvent, Envelope, Subscriber, SubscriptionId, STAFF_TOPIC};
use crate::socket::admission::Admission;
use crate::socket::engineio::{self, Packet as EioPacket};
use crate::socket::event_args::{self, Invalid};
use crate::socket::event_error::EventError;
use crate::socket::hub::{random_id, Authenticated, Hub, Identity, SavedSession};
use crate::socket::socketio::{self, Kind};
use crate::views;
use actix::prelude::*;
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use utalk_storage::model::{conversation, message};
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
            CloseReason::Internal => "internal_error".into(),
        }
    }

    /// Websocket close code.
    pub fn code(&self) -> u16 {
        match self {
            CloseReason::ClientClose | CloseReason::TransportClosed => 1000,
            CloseReason::ParseError(_) => 1002,
            CloseReason::TooLarge => 1009,
            CloseReason::Internal => 1011,
            CloseReason::PingTimeout | CloseReason::SlowConsumer | CloseReason::ConnectTimeout | CloseReason::TokenExpired => 1008,
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
        matches!(self, CloseReason::SlowConsumer | CloseReason::TokenExpired)
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

/// One packet from the websocket.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Inbound(pub String);

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
    next_offset: u64,
    log: VecDeque<(u64, Uuid, u64)>,
    floors: HashMap<Uuid, u64>,
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
            if let Identity::Staff { user_id, .. } = c.identity {
                self.hub.presence(user_id, -1, None);
            }
            if reason.recoverable() {
                let mut floors = c.floors;
                for conv in c.rooms.keys() {
                    floors.entry(*conv).or_insert(0);
                }
                self.hub.save(
                    &c.pid,
                    SavedSession {
                        sid: c.sid,
                        identity: c.identity,
                        floors,
                        log: c.log,
                        next_offset: c.next_offset,
                        saved_at: Instant::now(),
                    },
                );
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

    fn on_connect(&mut self, data: Option<Value>, ctx: &mut Context<Self>) {
        let data = data.unwrap_or(Value::Null);
        let token = data.get("token").and_then(Value::as_str);
        let Authenticated { identity, expires_at } = match self.hub.auth.authenticate(token) {
            Ok(a) => a,
            Err(code) => {
                self.emit(socketio::connect_error("/", code), ctx);
                return;
            }
        };
        let asked = match (data.get("pid").and_then(Value::as_str), data.get("offset").and_then(Value::as_str)) {
            (Some(pid), Some(offset)) => Some((pid.to_string(), offset.parse::<u64>().ok())),
            _ => None,
        };
        let local = asked.as_ref().and_then(|(pid, offset)| self.hub.take_saved(pid).map(|s| (pid.clone(), *offset, s)));
        match (local, asked) {
            // Dropped on another node of the cluster, perhaps: look there before answering.
            (None, Some((pid, offset))) => {
                let fetch = self.hub.fetch_saved(pid.clone());
                ctx.wait(fetch.into_actor(self).map(move |saved, act, ctx| {
                    let recovery = saved.filter(|s| s.identity == identity).map(|s| (pid, offset, s));
                    act.connected(identity, expires_at, recovery, ctx);
                }));
            }
            (local, _) => {
                let recovery = local.filter(|(_, _, s)| s.identity == identity);
                self.connected(identity, expires_at, recovery, ctx);
            }
        }
    }

    /// Answers a CONNECT for `identity`, recovering `recovery` (private id, offset, saved session) when it fits;
    /// the session ends at `expires_at` (seconds since the epoch), when the token does.
    fn connected(
        &mut self,
        identity: Identity,
        expires_at: Option<i64>,
        recovery: Option<(String, Option<u64>, SavedSession)>,
        ctx: &mut Context<Self>,
    ) {
        if self.closed {
            return;
        }
        self.admission.authenticated();
        if let Some(exp) = expires_at {
            ctx.run_later(until(exp), |act, ctx| {
                if !act.closed {
                    act.close(CloseReason::TokenExpired, ctx);
                }
            });
        }
        let (subscriber, rx, overflowed) = Subscriber::bounded(self.hub.config.max_queued);
        ctx.add_stream(Deliveries(rx));
        let staff_sub =
            matches!(identity, Identity::Staff { .. }).then(|| self.hub.registry.broker().subscribe(STAFF_TOPIC, subscriber.clone()));
        let mut conn = Connected {
            sid: random_id(),
            pid: random_id(),
            identity,
            rooms: HashMap::new(),
            staff_sub,
            subscriber,
            overflowed,
            next_offset: 1,
            log: VecDeque::new(),
            floors: HashMap::new(),
        };
        let mut replay: Vec<(Uuid, u64)> = Vec::new();
        if let Some((pid, Some(offset), saved)) = recovery {
            if let Some(received) = received_seqs(&saved, offset) {
                conn.sid = saved.sid;
                conn.pid = pid;
                conn.next_offset = saved.next_offset;
                replay = received.into_iter().collect();
                self.hub.note_recovered();
            }
        }
        if let Identity::Staff { user_id, .. } = identity {
            self.hub.presence(user_id, 1, None);
        }
        let reply = json!({ "sid": conn.sid, "pid": conn.pid });
        self.sio = Some(conn);
        // Missed messages go out before the CONNECT answer, as the reference server does,
        // within one budget for the whole recovery so that it fits in the queue.
        let mut budget = ReplayBudget { messages: self.hub.config.max_replay, bytes: self.hub.config.max_replay_bytes };
        for (conv, received) in replay {
            self.join_room(conv, received);
            if let Some(c) = self.sio.as_mut() {
                c.floors.insert(conv, received);
            }
            if let Some(through) = self.replay(conv, received, &mut budget, ctx) {
                // The client pages the rest with `conversation:join {sinceSeq}`.
                let truncated = json!({ "conversationId": conv, "sinceSeq": through });
                self.emit(socketio::event_raw("replay:truncated", &truncated.to_string(), None), ctx);
            }
        }
        self.emit(socketio::connect("/", &reply), ctx);
        // Clients that came back after a restart onto a new API version learn what changed.
        if let Some(changes) = self.hub.api_changes() {
            self.emit(socketio::event_raw("api:changes", changes, None), ctx);
        }
    }

    fn join_room(&mut self, conv: Uuid, delivered: u64) {
        let Some(c) = self.sio.as_mut() else { return };
        if let Some(room) = c.rooms.get_mut(&conv) {
            room.delivered = room.delivered.max(delivered);
            return;
        }
        let sub = self.hub.registry.broker().subscribe(conv, c.subscriber.clone());
        c.rooms.insert(conv, Room { sub, delivered });
    }

    /// Sends stored messages after `after` as `message:new` events with offsets, within
    /// `budget`; when the budget cuts it short, the last seq sent (or `after`).
    fn replay(&mut self, conv: Uuid, after: u64, budget: &mut ReplayBudget, ctx: &mut Context<Self>) -> Option<u64> {
        if budget.messages == 0 {
            return Some(after);
        }
        let Ok(messages) = message::after(&self.hub.db, conv, after, budget.messages + 1) else { return None };
        let mut through = after;
        for m in messages {
            let seq = m.seq;
            let json = json!({ "message": views::Message::from(m) }).to_string();
            if budget.messages == 0 || json.len() > budget.bytes {
                return Some(through);
            }
            budget.messages -= 1;
            budget.bytes -= json.len();
            self.deliver_message(conv, seq, &json, ctx);
            through = seq;
        }
        None
    }

    fn deliver_message(&mut self, conv: Uuid, seq: u64, json: &str, ctx: &mut Context<Self>) {
        let Some(c) = self.sio.as_mut() else { return };
        let Some(room) = c.rooms.get_mut(&conv) else { return };
        if seq <= room.delivered {
            return;
        }
        room.delivered = seq;
        let offset = c.next_offset;
        c.next_offset += 1;
        c.log.push_back((offset, conv, seq));
        if c.log.len() > OFFSET_LOG {
            if let Some((_, old_conv, old_seq)) = c.log.pop_front() {
                let f = c.floors.entry(old_conv).or_insert(0);
                *f = (*f).max(old_seq);
            }
        }
        let packet = socketio::event_raw("message:new", json, Some(&offset.to_string()));
        self.emit(packet, ctx);
    }

    fn on_event(&mut self, args: Vec<Value>, ack: Option<u64>, ctx: &mut Context<Self>) {
        let (name, payload) = event_args::name_and_payload(args);
        let request_id = event_args::request_id(&payload).unwrap_or_else(|| Uuid::new_v4().to_string());
        // Known names only: a client-chosen name must not become a label (or span name) of its own.
        let label = match name.as_str() {
            n @ ("conversation:join" | "conversation:leave" | "message:send" | "message:read" | "conversation:rate" | "typing:start"
            | "typing:stop" | "presence:set") => n.to_string(),
            _ => "unknown".to_string(),
        };
        let span = tracing::info_span!(
            "socket_event",
            request_id = %request_id,
            event = %name,
            sid = %self.eio_sid,
            otel.name = %format_args!("socket {label}"),
            otel.kind = "server",
        );
        let _enter = span.enter();
        tracing::debug!("socket event");
        let Some(identity) = self.sio.as_ref().map(|c| c.identity) else { return };
        let started = std::time::Instant::now();
        metrics::counter!("socket_events_total", "event" => label.clone()).increment(1);
        self.dispatch(&name, payload, identity, ack, request_id, ctx);
        metrics::histogram!("socket_event_duration_seconds", "event" => label).record(started.elapsed().as_secs_f64());
    }

    fn dispatch(&mut self, name: &str, payload: Value, identity: Identity, ack: Option<u64>, request_id: String, ctx: &mut Context<Self>) {
        match name {
            "conversation:join" => {
                let result = self.join(&payload, &identity);
                self.answer(ack, &request_id, result, ctx);
            }
            "conversation:leave" => {
                let result = conversation_id(&payload).map(|conv| {
                    if let Some(c) = self.sio.as_mut() {
                        if let Some(room) = c.rooms.remove(&conv) {
                            self.hub.registry.broker().unsubscribe(conv, room.sub);
                        }
                    }
                    json!({})
                });
                self.answer(ack, &request_id, result, ctx);
            }
            "message:send" => self.send_message(&payload, &identity, ack, request_id, ctx),
            "message:read" => self.mark_read(&payload, &identity, ack, request_id, ctx),
            "conversation:rate" => self.rate(&payload, &identity, ack, request_id, ctx),
            "typing:start" | "typing:stop" => {
                let result = conversation_id(&payload).and_then(|conv| {
                    if !identity.may_access(conv) {
                        return Err(EventError::Forbidden);
                    }
                    let event = ConversationEvent::Typing {
                        conversation_id: conv,
                        user: identity.actor(),
                        typing: name == "typing:start",
                        origin: self.number,
                    };
                    self.hub.registry.broker().publish(conv, event);
                    Ok(json!({}))
                });
                self.answer(ack, &request_id, result, ctx);
            }
            "presence:set" => {
                let result = match (identity, payload.get("status").and_then(Value::as_str)) {
                    (Identity::Staff { user_id, .. }, Some(s @ ("online" | "away"))) => {
                        let status = if s == "online" { "online" } else { "away" };
                        self.hub.presence(user_id, 0, Some(status));
                        Ok(json!({ "status": status }))
                    }
                    (Identity::Staff { .. }, _) => Err(EventError::Invalid(Invalid("status must be online or away"))),
                    _ => Err(EventError::Forbidden),
                };
                self.answer(ack, &request_id, result, ctx);
            }
            _ => {
                let result = Err(EventError::UnknownEvent(name.to_string()));
                self.answer(ack, &request_id, result, ctx);
            }
        }
    }

    fn join(&mut self, payload: &Value, identity: &Identity) -> Result<Value, EventError> {
        let conv = conversation_id(payload)?;
        if !identity.may_access(conv) {
            return Err(EventError::Forbidden);
        }
        let since = event_args::since_seq(payload)?;
        let db = &self.hub.db.clone();
        let joined = self.sio.as_ref().is_some_and(|c| c.rooms.contains_key(&conv));
        if joined && since.is_none() {
            // Already in the room, so already receiving it: reading and sending the
            // history again would only cost (a client repeating joins could make the
            // server read and queue it over and over). `sinceSeq` asks for a replay.
            let last_seq = message::last_seq(db, conv).map_err(EventError::internal)?;
            return Ok(json!({ "lastSeq": last_seq, "messages": [], "hasMore": false, "alreadyJoined": true }));
        }
        let since = since.unwrap_or(0);
        conversation::get(db, conv).map_err(EventError::internal)?.ok_or(EventError::NotFound)?;
        // Subscribe first, then read: anything committed after the read arrives
        // through the subscription, and anything in both is delivered once.
        self.join_room(conv, since);
        let limit = self.hub.config.max_replay;
        let mut messages: Vec<views::Message> =
            message::after(db, conv, since, limit + 1).map_err(EventError::internal)?.into_iter().map(Into::into).collect();
        let mut has_more = messages.len() > limit;
        messages.truncate(limit);
        has_more |= keep_within_bytes(&mut messages, self.hub.config.max_replay_bytes);
        let last_seq = message::last_seq(db, conv).map_err(EventError::internal)?;
        if let Some(c) = self.sio.as_mut() {
            // What the ack carries counts as received, like what the client already had.
            let received = messages.last().map_or(since, |m| m.seq.max(since));
            if let Some(room) = c.rooms.get_mut(&conv) {
                room.delivered = room.delivered.max(received);
            }
            let f = c.floors.entry(conv).or_insert(0);
            *f = (*f).max(received);
        }
        Ok(json!({ "lastSeq": last_seq, "messages": messages, "hasMore": has_more, "alreadyJoined": joined }))
    }

    fn send_message(&mut self, payload: &Value, identity: &Identity, ack: Option<u64>, request_id: String, ctx: &mut Context<Self>) {
        let parsed = event_args::send_fields(payload).map_err(EventError::from).and_then(|f| {
            let req = AppendRequest::from_client(identity, f.conversation_id, f.message_id, f.text, f.media_id)?;
            Ok((f.conversation_id, req))
        });
        let (conv, req) = match parsed {
            Ok(x) => x,
            Err(e) => return self.answer(ack, &request_id, Err(e), ctx),
        };
        let fut = self.hub.registry.call(conv, req);
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| {
            let result = res.map(|a| match a {
                Appended::Created(m) => json!({ "message": views::Message::from((*m).clone()), "created": true }),
                Appended::Existing(m) => json!({ "message": views::Message::from((*m).clone()), "created": false }),
            });
            act.answer(ack, &request_id, result.map_err(EventError::from), ctx);
        }));
    }

    fn mark_read(&mut self, payload: &Value, identity: &Identity, ack: Option<u64>, request_id: String, ctx: &mut Context<Self>) {
        let parsed = conversation_id(payload).and_then(|conv| {
            if !identity.may_access(conv) {
                return Err(EventError::Forbidden);
            }
            let seq = event_args::read_seq(payload)?;
            Ok((conv, seq))
        });
        let (conv, seq) = match parsed {
            Ok(x) => x,
            Err(e) => return self.answer(ack, &request_id, Err(e), ctx),
        };
        let reader = identity.actor();
        let fut = self.hub.registry.call(conv, MarkRead { reader, seq });
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| {
            act.answer(ack, &request_id, res.map(|seq| json!({ "seq": seq })).map_err(EventError::from), ctx);
        }));
    }

    /// A rating from the widget (or staff): `{conversationId, csat?, nps?}`.
    fn rate(&mut self, payload: &Value, identity: &Identity, ack: Option<u64>, request_id: String, ctx: &mut Context<Self>) {
        use utalk_storage::model::{RatingKind, RatingSource};
        let parsed = conversation_id(payload).and_then(|conv| {
            if !identity.may_access(conv) || matches!(identity, Identity::Staff { role: utalk_storage::model::Role::Readonly, .. }) {
                return Err(EventError::Forbidden);
            }
            let source = if matches!(identity, Identity::Widget { .. }) { RatingSource::Widget } else { RatingSource::Api };
            let mut ratings = Vec::new();
            for (kind, field) in [(RatingKind::Csat, "csat"), (RatingKind::Nps, "nps")] {
                match payload.get(field) {
                    None | Some(Value::Null) => {}
                    Some(v) => match v.as_u64().and_then(|n| u8::try_from(n).ok()).filter(|n| kind.range().contains(n)) {
                        Some(n) => ratings.push((kind, n, source)),
                        None => return Err(EventError::InvalidRating("csat must be 1 to 5 and nps 0 to 10")),
                    },
                }
            }
            if ratings.is_empty() {
                return Err(EventError::InvalidRating("send csat, nps or both"));
            }
            Ok((conv, ratings))
        });
        let (conv, ratings) = match parsed {
            Ok(x) => x,
            Err(e) => return self.answer(ack, &request_id, Err(e), ctx),
        };
        let change = crate::conversation::ConversationChange { ratings, ..Default::default() };
        let fut = self.hub.registry.call(conv, change);
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| {
            let res = res.map(|c| json!({ "csat": c.csat, "nps": c.nps })).map_err(EventError::from);
            act.answer(ack, &request_id, res, ctx);
        }));
    }

    /// Answers an event: an ack when the client asked for one, else an `error` event on failure.
    fn answer(&mut self, ack: Option<u64>, request_id: &str, result: Result<Value, EventError>, ctx: &mut Context<Self>) {
        let body = match result {
            Ok(mut v) => {
                if let Some(o) = v.as_object_mut() {
                    o.insert("ok".into(), Value::Bool(true));
                    o.insert("requestId".into(), Value::String(request_id.into()));
                }
                v
            }
            Err(e) => {
                let (code, message) = (e.code(), e.to_string());
                tracing::info!(request_id, code, "socket event refused");
                metrics::counter!("socket_errors_total", "code" => code).increment(1);
                json!({ "ok": false, "error": { "code": code, "message": message }, "requestId": request_id })
            }
        };
        match ack {
            Some(id) => self.emit(socketio::ack("/", id, &body), ctx),
            None if body["ok"] == Value::Bool(false) => self.emit(socketio::event_raw("error", &body.to_string(), None), ctx),
            None => {}
        }
    }

    fn heartbeat(&mut self, ctx: &mut Context<Self>) {
        if self.closed {
            return;
        }
        // Still waiting for the last pong (possible when the timeout is configured
        // longer than the interval): that is a timeout too.
        if self.ping_outstanding.is_some() {
            return self.close(CloseReason::PingTimeout, ctx);
        }
        let sent = Instant::now();
        self.ping_outstanding = Some(sent);
        self.emit("2".into(), ctx);
        ctx.run_later(self.hub.config.ping_timeout, move |act, ctx| {
            if act.ping_outstanding == Some(sent) {
                act.close(CloseReason::PingTimeout, ctx);
            }
        });
    }

    /// Runs a handler behind a panic guard: a panic closes this session only.
    fn guarded(&mut self, ctx: &mut Context<Self>, f: impl FnOnce(&mut Self, &mut Context<Self>)) {
        if std::panic::catch_unwind(AssertUnwindSafe(|| f(self, ctx))).is_err() {
            tracing::error!(sid = %self.eio_sid, "socket session panicked; closing it");
            self.close(CloseReason::Internal, ctx);
        }
    }
}

/// For each conversation of a saved session, the last seq the client received,
/// given the last offset it saw; `None` when that offset is no longer known.
fn received_seqs(saved: &SavedSession, offset: u64) -> Option<HashMap<Uuid, u64>> {
    let oldest = saved.log.front().map(|e| e.0);
    if let Some(oldest) = oldest {
        if offset + 1 < oldest {
            return None;
        }
    }
    if offset >= saved.next_offset {
        return None;
    }
    let mut received = saved.floors.clone();
    for (o, conv, seq) in &saved.log {
        let r = received.entry(*conv).or_insert(0);
        if *o <= offset {
            *r = (*r).max(*seq);
        }
    }
    Some(received)
}

/// What one recovery may still replay.
struct ReplayBudget {
    messages: usize,
    bytes: usize,
}

/// Drops the messages after those whose JSON fits in `budget` bytes (keeping at
/// least one, so paging always moves on); whether any were dropped.
fn keep_within_bytes(messages: &mut Vec<views::Message>, budget: usize) -> bool {
    let mut used = 0;
    let keep = messages
        .iter()
        .position(|m| {
            used += serde_json::to_string(m).map_or(0, |j| j.len() + 1);
            used > budget
        })
        .map_or(messages.len(), |i| i.max(1));
    let cut = keep < messages.len();
    messages.truncate(keep);
    cut
}

/// How long from now until `exp` (seconds since the epoch); zero when past.
fn until(exp: i64) -> Duration {
    let now = utalk_storage::Timestamp::now().millis();
    let ms = exp.saturating_mul(1000).saturating_sub(now).max(0) as u64;
    // Past a year the timer would outlive any sane token lifetime (and tokio's timer range).
    Duration::from_millis(ms).min(Duration::from_secs(366 * 86_400))
}

/// `conversationId` of an event's payload.
fn conversation_id(payload: &Value) -> Result<Uuid, EventError> {
    Ok(event_args::conversation_id(payload)?)
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
    }
}

impl StreamHandler<Arc<Envelope>> for SessionActor {
    fn handle(&mut self, env: Arc<Envelope>, ctx: &mut Context<Self>) {
        self.guarded(ctx, |act, ctx| {
            if act.sio.as_ref().is_some_and(|c| c.overflowed.load(Ordering::Relaxed)) {
                return act.close(CloseReason::SlowConsumer, ctx);
            }
            match &env.event {
                ConversationEvent::MessageNew(m) => act.deliver_message(m.conversation_id, m.seq, env.json(), ctx),
                ConversationEvent::Typing { origin, .. } if *origin == act.number => {}
                // Stock alerts go to the people who run the stores, not to every agent.
                ConversationEvent::Alert { manager, .. } if !act.receives_alerts(*manager) => {}
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

#[cfg(test)]
mod tests {
    use super::*;
    use utalk_storage::model::Role;

    fn saved(floors: &[(Uuid, u64)], log: &[(u64, Uuid, u64)], next_offset: u64) -> SavedSession {
        SavedSession {
            sid: "s".into(),
            identity: Identity::Staff { user_id: Uuid::nil(), role: Role::Agent },
            floors: floors.iter().copied().collect(),
            log: log.iter().copied().collect(),
            next_offset,
            saved_at: Instant::now(),
        }
    }

    #[test]
    fn the_client_offset_tells_what_each_conversation_received() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let s = saved(&[(a, 3), (b, 0)], &[(10, a, 4), (11, b, 1), (12, a, 5), (13, b, 2)], 14);
        // The client saw offset 11: a up to 4, b up to 1; 12 and 13 were lost in flight.
        let r = received_seqs(&s, 11).unwrap();
        assert_eq!((r[&a], r[&b]), (4, 1));
        let r = received_seqs(&s, 13).unwrap();
        assert_eq!((r[&a], r[&b]), (5, 2));
        // Just before the log: only the floors are known received.
        let r = received_seqs(&s, 9).unwrap();
        assert_eq!((r[&a], r[&b]), (3, 0));
    }

    #[test]
    fn unknown_offsets_refuse_recovery() {
        let a = Uuid::from_u128(1);
        let s = saved(&[], &[(10, a, 4), (11, a, 5)], 12);
        assert!(received_seqs(&s, 5).is_none(), "older than the log");
        assert!(received_seqs(&s, 12).is_none(), "never handed out");
    }
}
