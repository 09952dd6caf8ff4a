//! What a session does with the client's Socket.IO packets: CONNECT (with
//! connection state recovery), the events it relays to the conversations
//! (`conversation:join`, `message:send`, `message:read`, `conversation:rate`,
//! typing and presence), their acks, and the replays a join or a recovery sends.

use super::*;
use crate::conversation::{AppendRequest, Appended, MarkRead};
use crate::fanout::broker::{ConversationEvent, Subscriber, STAFF_TOPIC};
use crate::socket::event_args::{self, Score};
use crate::socket::event_error::EventError;
use crate::socket::hub::{random_id, Authenticated, Identity, SavedSession};
use crate::socket::session_store::RecoveryLog;
use crate::socket::socketio;
use crate::views;
use actix::prelude::*;
use serde_json::{json, Value};

/// Most `presence` events a staff session gets on connecting: a quarter of
/// the default queue (`socket.max_queued`), so the snapshot never crowds it.
const PRESENCE_SNAPSHOT_MAX: usize = 256;
use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use utalk_storage::model::{conversation, message};
use uuid::Uuid;

/// The ids of a `message:send` as its two log lines write them, kept as
/// text on the stack: the lines are written for every message, and
/// formatting ids through `Display` was half of their cost.
#[derive(Clone, Copy)]
struct SendIds {
    /// Who sent it: a staff user's id, or `widget:` and the widget's conversation.
    user: [u8; 43],
    user_len: usize,
    message: [u8; 36],
    conversation: [u8; 36],
}

impl SendIds {
    fn new(identity: &Identity, message: Uuid, conversation: Uuid) -> SendIds {
        let mut ids = SendIds { user: [0; 43], user_len: 0, message: [0; 36], conversation: [0; 36] };
        let (prefix, user): (&[u8], Uuid) = match *identity {
            Identity::Staff { user_id, .. } => (b"", user_id),
            Identity::Widget { conversation_id } => (b"widget:", conversation_id),
        };
        ids.user[..prefix.len()].copy_from_slice(prefix);
        ids.user_len = prefix.len() + user.hyphenated().encode_lower(&mut ids.user[prefix.len()..]).len();
        message.hyphenated().encode_lower(&mut ids.message);
        conversation.hyphenated().encode_lower(&mut ids.conversation);
        ids
    }

    fn user(&self) -> &str {
        text(&self.user[..self.user_len])
    }

    fn message(&self) -> &str {
        text(&self.message)
    }

    fn conversation(&self) -> &str {
        text(&self.conversation)
    }
}

/// The bytes a uuid's encoder wrote, which are ASCII.
fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap_or("?")
}

/// Most events of one session timed at once from arrival to ack.
const MAX_TIMED_ACKS: usize = 1024;

impl SessionActor {
    pub(super) fn on_connect(&mut self, data: Option<Value>, ctx: &mut Context<Self>) {
        let auth = event_args::connect_auth(&data.unwrap_or(Value::Null));
        let Authenticated { identity, expires_at } = match self.hub.auth.authenticate(auth.token.as_deref()) {
            Ok(a) => a,
            Err(code) => {
                self.emit(socketio::connect_error("/", code), ctx);
                return;
            }
        };
        let asked = auth.recover;
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
    pub(super) fn connected(
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
        if matches!(identity, Identity::Staff { .. }) {
            // A user disabled or a key revoked on any node reaches this
            // node's store through the log; the session notices within a
            // check period and ends.
            let since = utalk_storage::Timestamp::now().millis();
            ctx.run_interval(self.hub.config.access_check, move |act, ctx| {
                if !act.closed && !act.hub.auth.still_allowed(&identity, since) {
                    act.close(CloseReason::AccessRevoked, ctx);
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
            recovery: Arc::new(Mutex::new(RecoveryLog { next_offset: 1, changed: true, ..RecoveryLog::default() })),
        };
        let mut replay: Vec<(Uuid, u64)> = Vec::new();
        if let Some((pid, Some(offset), saved)) = recovery {
            if let Some(received) = received_seqs(&saved, offset) {
                conn.sid = saved.sid;
                conn.pid = pid;
                lock(&conn.recovery).next_offset = saved.next_offset;
                replay = received.into_iter().collect();
                self.hub.note_recovered();
            }
        }
        self.hub.track(&conn.pid, &conn.sid, identity, conn.recovery.clone());
        match identity {
            Identity::Staff { user_id, .. } => self.hub.presence(user_id, 1, None),
            Identity::Widget { .. } => self.hub.customer_session(true),
        }
        let reply = json!({ "sid": conn.sid, "pid": conn.pid });
        self.sio = Some(conn);
        // Missed messages go out before the CONNECT answer, as the reference server does,
        // within one budget for the whole recovery so that it fits in the queue.
        let mut budget = ReplayBudget { messages: self.hub.config.max_replay, bytes: self.hub.config.max_replay_bytes };
        for (conv, received) in replay {
            self.join_room(conv, received);
            if let Some(c) = self.sio.as_mut() {
                lock(&c.recovery).floors.insert(conv, received);
            }
            if let Some(through) = self.replay(conv, received, &mut budget, ctx) {
                // The client pages the rest with `conversation:join {sinceSeq}`.
                let truncated = json!({ "conversationId": conv, "sinceSeq": through });
                self.emit(socketio::event_raw("replay:truncated", &truncated.to_string(), None), ctx);
            }
        }
        self.emit(socketio::connect("/", &reply), ctx);
        // Staff learn who is present now; `presence` events tell them of each change after.
        if self.is_staff_reader() {
            for (user_id, status) in self.hub.presence_snapshot(PRESENCE_SNAPSHOT_MAX) {
                let event = crate::fanout::broker::Envelope::new(ConversationEvent::Presence { user_id, status });
                self.emit(socketio::event_raw(event.event.name(), event.json(), None), ctx);
            }
        }
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
        let Ok((messages, more)) = message::readable_after(&self.hub.db, conv, after, budget.messages, self.is_staff_reader()) else {
            return None;
        };
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
        more.map(|_| through)
    }

    pub(super) fn deliver_message(&mut self, conv: Uuid, seq: u64, json: &str, ctx: &mut Context<Self>) {
        let Some(c) = self.sio.as_mut() else { return };
        let Some(room) = c.rooms.get_mut(&conv) else { return };
        if seq <= room.delivered {
            return;
        }
        room.delivered = seq;
        let offset = {
            let mut r = lock(&c.recovery);
            let offset = r.next_offset;
            r.next_offset += 1;
            r.log.push_back((offset, conv, seq));
            if r.log.len() > OFFSET_LOG {
                if let Some((_, old_conv, old_seq)) = r.log.pop_front() {
                    let f = r.floors.entry(old_conv).or_insert(0);
                    *f = (*f).max(old_seq);
                }
            }
            r.changed = true;
            offset
        };
        let packet = socketio::event_raw("message:new", json, Some(&offset.to_string()));
        self.emit(packet, ctx);
    }

    pub(super) fn on_event(&mut self, args: Vec<Value>, ack: Option<u64>, ctx: &mut Context<Self>) {
        let (name, payload) = event_args::name_and_payload(args);
        let request_id = event_args::request_id(&payload).unwrap_or_else(new_request_id);
        let known = event_metrics::of(&name);
        // At debug, like the actors' spans: it costs nothing per event unless
        // traces are exported, which take spans of ours at debug.
        let span = tracing::debug_span!(
            "socket_event",
            request_id = %request_id,
            event = %name,
            sid = %self.eio_sid,
            otel.name = %format_args!("socket {}", known.label),
            otel.kind = "server",
        );
        let _enter = span.enter();
        let Some(identity) = self.sio.as_ref().map(|c| c.identity) else { return };
        let started = std::time::Instant::now();
        known.counted.increment(1);
        if let Some(id) = ack {
            // Bounded: a client with this many unanswered events gets no more timed.
            if self.awaiting_ack.len() < MAX_TIMED_ACKS {
                self.awaiting_ack.push((id, started, &known.acked));
            }
        }
        self.dispatch(&name, payload, identity, ack, request_id, ctx);
        known.timed.record(started.elapsed().as_secs_f64());
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
                        // A recovery does not join it again.
                        let mut r = lock(&c.recovery);
                        r.floors.remove(&conv);
                        r.log.retain(|e| e.1 != conv);
                        r.changed = true;
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
                let result = match (identity, event_args::presence_status(&payload)) {
                    (Identity::Staff { user_id, .. }, Ok(status)) => {
                        self.hub.presence(user_id, 0, Some(status));
                        Ok(json!({ "status": status }))
                    }
                    (Identity::Staff { .. }, Err(invalid)) => Err(EventError::Invalid(invalid)),
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
        let (stored, next) =
            message::readable_after(db, conv, since, limit, identity.sees_private_notes()).map_err(EventError::internal)?;
        let mut has_more = next.is_some();
        let mut messages: Vec<views::Message> = stored.into_iter().map(Into::into).collect();
        has_more |= keep_within_bytes(&mut messages, self.hub.config.max_replay_bytes);
        let last_seq = message::last_seq(db, conv).map_err(EventError::internal)?;
        if let Some(c) = self.sio.as_mut() {
            // What the ack carries counts as received, like what the client already had.
            let received = messages.last().map_or(since, |m| m.seq.max(since));
            if let Some(room) = c.rooms.get_mut(&conv) {
                room.delivered = room.delivered.max(received);
            }
            let mut r = lock(&c.recovery);
            let f = r.floors.entry(conv).or_insert(0);
            *f = (*f).max(received);
            r.changed = true;
        }
        Ok(json!({ "lastSeq": last_seq, "messages": messages, "hasMore": has_more, "alreadyJoined": joined }))
    }

    fn send_message(&mut self, payload: &Value, identity: &Identity, ack: Option<u64>, request_id: String, ctx: &mut Context<Self>) {
        let parsed = event_args::send_fields(payload).map_err(EventError::from).and_then(|f| {
            let req = AppendRequest::from_client(
                identity,
                f.conversation_id,
                f.message_id,
                f.text,
                f.media_id,
                f.private,
                f.template
                    .map(|t| utalk_storage::model::Template { content_sid: t.content_sid, variables: t.variables.into_iter().collect() }),
            )?;
            Ok((f.conversation_id, f.message_id, req))
        });
        let (conv, message_id, req) = match parsed {
            Ok(x) => x,
            Err(e) => return self.answer(ack, &request_id, Err(e), ctx),
        };
        // The two lines the runbooks search for a message that got no ack.
        let ids = SendIds::new(identity, message_id, conv);
        tracing::info!(
            sid = self.eio_sid.as_str(),
            user_id = ids.user(),
            message_id = ids.message(),
            conversation_id = ids.conversation(),
            request_id,
            "message received"
        );
        let fut = self.hub.registry.call(conv, req);
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| {
            let res = res.map_err(EventError::from);
            let outcome = match &res {
                Ok(Appended::Created(_)) => "created",
                Ok(Appended::Existing(_)) => "existing",
                Err(e) => e.code(),
            };
            tracing::info!(
                sid = act.eio_sid.as_str(),
                user_id = ids.user(),
                message_id = ids.message(),
                conversation_id = ids.conversation(),
                request_id,
                outcome,
                "message processed"
            );
            match (res, ack) {
                (Ok(Appended::Created(m)), Some(id)) => act.answer_sent(id, &request_id, &m, true, ctx),
                (Ok(Appended::Existing(m)), Some(id)) => act.answer_sent(id, &request_id, &m, false, ctx),
                (Ok(_), None) => {}
                (Err(e), _) => act.answer(ack, &request_id, Err(e), ctx),
            }
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
            for (field, score) in event_args::scores(payload) {
                let kind = if field == "csat" { RatingKind::Csat } else { RatingKind::Nps };
                match score {
                    Score::Absent => {}
                    Score::Given(n) if kind.range().contains(&n) => ratings.push((kind, n, source)),
                    _ => return Err(EventError::InvalidRating("csat must be 1 to 5 and nps 0 to 10")),
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
                tracing::info!(request_id, code, sid = %self.eio_sid, "socket event refused");
                metrics::counter!("socket_errors_total", "code" => code).increment(1);
                json!({ "ok": false, "error": { "code": code, "message": message }, "requestId": request_id })
            }
        };
        match ack {
            Some(id) => {
                self.ack_timed(id);
                self.emit(socketio::ack("/", id, &body), ctx)
            }
            None if body["ok"] == Value::Bool(false) => self.emit(socketio::event_raw("error", &body.to_string(), None), ctx),
            None => {}
        }
    }

    /// Records the latency of the event acked with `id`, from its arrival.
    fn ack_timed(&mut self, id: u64) {
        if let Some(i) = self.awaiting_ack.iter().position(|(a, ..)| *a == id) {
            let (_, arrived, histogram) = self.awaiting_ack.swap_remove(i);
            histogram.record(arrived.elapsed().as_secs_f64());
        }
    }

    /// Acks a stored `message:send`: written straight from the typed view, the
    /// most frequent answer of all.
    fn answer_sent(&mut self, ack: u64, request_id: &str, m: &utalk_storage::model::Message, created: bool, ctx: &mut Context<Self>) {
        let body = SentAck { message: views::Message::from(m.clone()), created, ok: true, request_id };
        match serde_json::to_string(&body) {
            Ok(json) => {
                self.ack_timed(ack);
                self.emit(socketio::ack_raw("/", ack, &json), ctx)
            }
            Err(e) => self.answer(Some(ack), request_id, Err(EventError::internal(e)), ctx),
        }
    }

    pub(super) fn heartbeat(&mut self, ctx: &mut Context<Self>) {
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
    pub(super) fn guarded(&mut self, ctx: &mut Context<Self>, f: impl FnOnce(&mut Self, &mut Context<Self>)) {
        if std::panic::catch_unwind(AssertUnwindSafe(|| f(self, ctx))).is_err() {
            tracing::error!(sid = %self.eio_sid, "socket session panicked; closing it");
            self.close(CloseReason::Internal, ctx);
        }
    }
}

/// For each conversation of a saved session, the last seq the client received,
/// given the last offset it saw; `None` when that offset is no longer known.
///
/// A session read back from the store after a crash may have been written
/// up to a flush period before its last delivery or join: an offset past
/// its log is then refused like an unknown one, since what the client got
/// (and joined) after it is not known. The client connects anew and
/// rejoins with the last seq it saw; nothing is missed or repeated.
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

fn lock(m: &Mutex<RecoveryLog>) -> std::sync::MutexGuard<'_, RecoveryLog> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A request id for an event that brought none: a random (version 4) UUID
/// from the thread's generator. `Uuid::new_v4` asks the kernel for its
/// randomness, a system call on every event.
fn new_request_id() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    uuid::Builder::from_random_bytes(bytes).into_uuid().hyphenated().to_string()
}

/// The ack of a stored `message:send`.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct SentAck<'a> {
    message: views::Message,
    created: bool,
    ok: bool,
    request_id: &'a str,
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
    fn request_ids_made_here_are_distinct_version_4_uuids() {
        let (a, b) = (new_request_id(), new_request_id());
        assert_ne!(a, b);
        for id in [a, b] {
            let u = Uuid::parse_str(&id).unwrap();
            assert_eq!(u.get_version_num(), 4);
            assert_eq!(u.get_variant(), uuid::Variant::RFC4122);
            assert_eq!(id.len(), 36);
        }
    }

    #[test]
    fn send_ids_are_written_as_display_writes_them() {
        let (user, message, conv) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let staff = SendIds::new(&Identity::Staff { user_id: user, role: Role::Agent }, message, conv);
        assert_eq!((staff.user(), staff.message(), staff.conversation()), (&*user.to_string(), &*message.to_string(), &*conv.to_string()));
        let widget = SendIds::new(&Identity::Widget { conversation_id: conv }, message, conv);
        assert_eq!(widget.user(), format!("widget:{conv}"));
    }

    #[test]
    fn unknown_offsets_refuse_recovery() {
        let a = Uuid::from_u128(1);
        let s = saved(&[], &[(10, a, 4), (11, a, 5)], 12);
        assert!(received_seqs(&s, 5).is_none(), "older than the log");
        assert!(received_seqs(&s, 12).is_none(), "never handed out");
    }
}
