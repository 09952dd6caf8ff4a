//! The conversation actor: one per active conversation, the only place that
//! decides its order.
//!
//! A message gets the next seq as soon as the actor handles it and is
//! appended to the conversation's log at once ([`EntityLog`]), so one
//! conversation can have many writes in flight (pipelining); they become
//! durable in the order they were appended. The follower publishes each
//! change's events once it is applied; the actor answers a caller only when
//! its write is durable, draining its in-flight queue from the front so that
//! answers follow seq order. The actor never asks what the log is.
//!
//! Every handler runs behind a panic guard: a panic answers the caller with
//! an internal error and stops the actor; its supervisor restarts it, and it
//! opens the conversation's log again before reading its state (so writes it
//! appended before the panic are counted). Other conversations, being other
//! actors, never notice.

use crate::conversation::lifecycle;
use crate::durability::{EntityLog, Journal, JournalError, WriteError};
use crate::fanout::broker::{Actor as Reader, ConversationEvent};
use crate::jobs::signal::JobSignal;
use actix::prelude::*;
use futures_util::future::Either;
use std::collections::{HashMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};
use utalk_storage::model::{
    activity, bot, conversation, message, read_marker, Author, AuthorType, Conversation, ConversationStatus, Message, Rating,
};
use utalk_storage::{Batch, Db, Timestamp};
use uuid::Uuid;

use super::announce::{self, Change};
use super::batches::{apply_change, channel_name, count_messages, messages_batch, rewrite_batch, system_message};
use super::commands::*;
pub use crate::conversation::error::ConversationError;

/// How an actor leaves the registry that started it, and what it tells it.
pub(crate) trait Retire: Send + Sync + 'static {
    /// Removes actor `generation` of `id` from the registry, if it is still
    /// the registered one; false when a newer one took its place.
    fn retire(&self, id: Uuid, generation: u64) -> bool;
    /// The supervisor restarted the actor.
    fn note_restart(&self);
    /// The actor caught a panic.
    fn note_panic(&self);
}

/// What the conversation actors share.
pub struct Deps {
    /// Reads.
    pub db: Db,
    /// Writes: every change goes to the conversation's log.
    pub journal: Journal,
    /// Retire an actor after this long without requests.
    pub idle_timeout: Duration,
    /// Most writes in flight per conversation before `Overloaded`.
    pub max_inflight: usize,
    /// Tells the delivery actor about new outbox entries.
    pub outbox: Arc<JobSignal>,
    /// Told about durable customer messages and escalations (the bot, assignment); set once at start.
    pub hook: std::sync::OnceLock<Arc<dyn ConversationHook>>,
    /// Where changes queue their webhook deliveries.
    pub webhooks: Option<Arc<crate::webhooks::WebhookTap>>,
}

/// What the rest of the system does after a conversation's writes are durable.
pub trait ConversationHook: Send + Sync {
    /// A customer message is durable; `conv` is the conversation as the actor has it now.
    fn customer_message(&self, conv: &Conversation, message: &Arc<Message>);
    /// The conversation was escalated just now.
    fn escalated(&self, conv: &Arc<Conversation>);
}

// One Phase per actor, almost always Ready: boxing the conversation would buy nothing.
#[allow(clippy::large_enum_variant)]
enum Phase {
    Loading,
    Ready { conv: Conversation, next_seq: u64 },
    Missing,
    Broken(ConversationError),
    Retired,
}

enum Committed {
    /// Appended messages (the requested one first, then follow-ups), and the conversation if it changed.
    Message {
        messages: Vec<Arc<Message>>,
        outbox: bool,
        conversation: Option<(Arc<Conversation>, bool)>,
        /// For a customer message the bot should see: the conversation right after it.
        for_bot: Option<Box<Conversation>>,
        /// A rating the message gave.
        rating: Option<Rating>,
    },
    MessageChanged {
        message: Arc<Message>,
        status: bool,
        media: bool,
    },
    Conversation {
        conversation: Arc<Conversation>,
        messages: Vec<Arc<Message>>,
        outbox: bool,
        escalated: bool,
        ratings: Vec<Rating>,
    },
    Read {
        reader: Reader,
        seq: u64,
    },
    /// Messages stored again in another format, as they were: nobody is told.
    Rewritten {
        count: u64,
    },
}

enum Waiter {
    Append { reply: Reply<Appended>, created: bool },
    Update(Reply<Arc<Conversation>>),
    Read(Reply<u64>),
    MessageChange(Reply<Arc<Message>>),
    Rewritten(Reply<u64>),
}

struct InFlight {
    ticket: u64,
    durable: bool,
    committed: Committed,
    waiters: Vec<Waiter>,
}

/// One conversation's actor.
pub struct ConversationActor {
    pub(super) id: Uuid,
    generation: u64,
    deps: Arc<Deps>,
    registry: Arc<dyn Retire>,
    phase: Phase,
    inflight: VecDeque<InFlight>,
    /// `messageId` → ticket of its in-flight write, so a retry racing the
    /// first attempt waits for the same outcome.
    inflight_ids: HashMap<Uuid, u64>,
    /// Messages changed by writes still in flight: the latest version and
    /// the ticket that writes it, so that a second change builds on the first.
    changed: HashMap<Uuid, (u64, Arc<Message>)>,
    next_ticket: u64,
    last_activity: Instant,
    idle_check: Option<SpawnHandle>,
    /// The hour whose KPI hour-index entry this actor has written (one an hour, not one a message).
    indexed_hour: Option<i64>,
    /// The conversation's way into the log, opened with the state it was loaded with.
    log: Option<EntityLog>,
    /// The conversation as the last change given to webhooks left it, to
    /// tell what the next change does (assigns, escalates, closes).
    announced: Option<Conversation>,
    /// The second the activity index holds for this conversation: moved at
    /// most once a second, not once a message.
    active_second: Option<i64>,
    /// The assignee as the last published change left it, to tell staff
    /// when a change assigns the conversation (`conversation:assigned`).
    published_assignee: Option<Uuid>,
}

impl ConversationActor {
    pub(crate) fn new(id: Uuid, generation: u64, deps: Arc<Deps>, registry: Arc<dyn Retire>) -> Self {
        Self {
            id,
            generation,
            deps,
            registry,
            phase: Phase::Loading,
            inflight: VecDeque::new(),
            inflight_ids: HashMap::new(),
            changed: HashMap::new(),
            next_ticket: 0,
            last_activity: Instant::now(),
            idle_check: None,
            indexed_hour: None,
            log: None,
            announced: None,
            active_second: None,
            published_assignee: None,
        }
    }

    /// Whether this actor may still write: its node holds the shard under
    /// the lease it loaded with. A node that lost the shard retires the
    /// actor, and the caller's registry sends the request on.
    fn may_write(&mut self, ctx: &mut Context<Self>) -> bool {
        if self.log.as_ref().is_some_and(EntityLog::owned) {
            return true;
        }
        self.retire_now(ctx);
        false
    }

    fn retire_now(&mut self, ctx: &mut Context<Self>) {
        self.registry.retire(self.id, self.generation);
        self.phase = Phase::Retired;
        if let Some(h) = self.idle_check.take() {
            ctx.cancel_future(h);
        }
    }

    /// Runs `f` behind the panic guard: a panic answers the caller and restarts the actor.
    fn guarded<T>(
        &mut self,
        ctx: &mut Context<Self>,
        reply: Reply<T>,
        f: impl FnOnce(&mut Self, &mut Context<Self>, &mut Option<Reply<T>>),
    ) {
        let mut slot = Some(reply);
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| f(self, ctx, &mut slot)));
        if outcome.is_err() {
            tracing::error!(conversation = %self.id, "conversation actor panicked; restarting from storage");
            self.registry.note_panic();
            if let Some(r) = slot.take() {
                let _ = r.send(Err(ConversationError::Restarted));
            }
            ctx.stop();
        }
    }

    /// Why a write cannot be taken now, if it cannot: the state is not
    /// ready, or the shard is no longer this node's (the actor retires).
    fn refusal(&mut self, ctx: &mut Context<Self>) -> Option<ConversationError> {
        self.unavailable().or_else(|| (!self.may_write(ctx)).then_some(ConversationError::Retired))
    }

    /// `Overloaded` when the writes in flight are at their bound.
    fn overloaded(&self) -> Option<ConversationError> {
        (self.inflight.len() >= self.deps.max_inflight).then_some(ConversationError::Overloaded)
    }

    /// Answers requests that cannot proceed in the current phase.
    pub(super) fn unavailable(&self) -> Option<ConversationError> {
        match &self.phase {
            Phase::Ready { .. } => None,
            Phase::Missing => Some(ConversationError::NotFound),
            Phase::Broken(e) => Some(e.clone()),
            Phase::Retired => Some(ConversationError::Retired),
            // Unreachable in practice: loading blocks the mailbox.
            Phase::Loading => Some(ConversationError::Restarted),
        }
    }

    pub(super) fn append(&mut self, req: AppendRequest, slot: &mut Option<Reply<Appended>>, ctx: &mut Context<Self>) {
        let Some(reply) = slot.take() else { return };
        if let Some(e) = self.refusal(ctx) {
            let _ = reply.send(Err(e));
            return;
        }
        if let Some(ticket) = self.inflight_ids.get(&req.message_id) {
            if let Some(entry) = self.inflight.iter_mut().find(|e| e.ticket == *ticket) {
                entry.waiters.push(Waiter::Append { reply, created: false });
                return;
            }
        }
        match message::locate(&self.deps.db, req.message_id) {
            Ok(Some((conv, seq))) if conv == self.id => {
                let found = message::get(&self.deps.db, conv, seq)
                    .map_err(ConversationError::from)
                    .and_then(|m| m.ok_or(ConversationError::NotFound));
                let _ = reply.send(found.map(|m| Appended::Existing(Arc::new(m))));
                return;
            }
            Ok(Some(_)) => {
                let _ = reply.send(Err(ConversationError::MessageIdConflict));
                return;
            }
            Ok(None) => {}
            Err(e) => {
                let _ = reply.send(Err(e.into()));
                return;
            }
        }
        if let Err(e) = self.check_media_ref(&req) {
            let _ = reply.send(Err(e));
            return;
        }
        if let Some(e) = self.overloaded() {
            let _ = reply.send(Err(e));
            return;
        }
        let Phase::Ready { conv, next_seq } = &mut self.phase else {
            return;
        };
        let now = Timestamp::now();
        if let Err(e) = whatsapp_rules(conv, &req, now) {
            let _ = reply.send(Err(e));
            return;
        }
        // A note is staff talking among themselves: it is no reply, no
        // rating and no reopening.
        let effects = if req.private {
            Ok(lifecycle::AppendEffects::default())
        } else {
            lifecycle::on_append(conv, req.author.kind, req.text.as_deref(), now)
        };
        let mut fx = match effects {
            Ok(fx) => fx,
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        let customer_on_whatsapp = conv.channel == utalk_storage::model::Channel::Whatsapp && req.author.kind == AuthorType::Customer;
        if customer_on_whatsapp && conv.whatsapp_window_stale(now) {
            // The customer wrote: WhatsApp lets staff answer freely for 24 hours.
            // Staff hear of it when the window opens (a console stops offering templates only).
            fx.publish |= !conv.whatsapp_window_open(now);
            let mut c = fx.conversation.take().unwrap_or_else(|| conv.clone());
            c.last_inbound_at = Some(now);
            fx.conversation = Some(c);
        }
        let after = fx.conversation.as_ref().unwrap_or(conv);
        let first = Message {
            id: req.message_id,
            conversation_id: self.id,
            seq: *next_seq,
            direction: req.direction,
            author: req.author,
            text: req.text,
            media_id: req.media_id,
            status: req.status,
            provider_id: req.provider_id,
            created_at: now,
            media: req.media,
            error_code: None,
            error_message: None,
            status_updated_at: None,
            private: req.private,
            template: req.template,
        };
        let mut all = vec![first];
        all.extend(fx.follow_ups.iter().enumerate().map(|(i, t)| system_message(self.id, *next_seq + 1 + i as u64, t, now)));
        let built =
            messages_batch(&self.deps.db, after, &mut all, &self.deps.outbox, self.indexed_hour).and_then(|(mut b, outbox, hour)| {
                if let Some(c) = &fx.conversation {
                    b.extend(conversation::put_batch(Some(conv), c)?);
                }
                if let Some(r) = &fx.rating {
                    bot::put_rating(&mut b, r)?;
                }
                b.extend(req.extra);
                Ok((b, outbox, hour))
            });
        let (batch, outbox) = match built {
            Ok((b, outbox, hour)) => {
                self.indexed_hour = hour;
                (b, outbox)
            }
            Err(e) => {
                let _ = reply.send(Err(ConversationError::Read(e.to_string().into())));
                return;
            }
        };
        *next_seq += all.len() as u64;
        let conversation = fx.conversation.map(|c| {
            *conv = c.clone();
            (Arc::new(c), fx.publish)
        });
        let messages: Vec<Arc<Message>> = all.into_iter().map(Arc::new).collect();
        let id = messages[0].id;
        // A rating reply is not a question for the bot.
        let for_bot = (messages[0].author.kind == AuthorType::Customer && fx.rating.is_none()).then(|| Box::new(conv.clone()));
        let committed = Committed::Message { messages, outbox, conversation, for_bot, rating: fx.rating };
        let ticket = self.submit(batch, committed, Waiter::Append { reply, created: true }, ctx);
        self.inflight_ids.insert(id, ticket);
    }

    /// A `media_id` that this request does not attach itself (as an inbound
    /// WhatsApp message does, in the same batch) must name stored media of
    /// this conversation: a message must not point at nothing, nor at another
    /// conversation's file, which its signed URL would then hand out.
    fn check_media_ref(&self, req: &AppendRequest) -> Result<(), ConversationError> {
        let Some(id) = req.media_id else { return Ok(()) };
        if req.media.iter().any(|a| a.id == id) {
            return Ok(());
        }
        match utalk_storage::model::media::get(&self.deps.db, id)? {
            Some(m) if m.conversation_id == Some(self.id) => Ok(()),
            _ => Err(ConversationError::MediaNotFound),
        }
    }

    /// The newest version of a message of this conversation: in flight or stored.
    fn current_message(&self, id: Uuid) -> Result<Arc<Message>, ConversationError> {
        if let Some((_, m)) = self.changed.get(&id) {
            return Ok(m.clone());
        }
        match message::locate(&self.deps.db, id)? {
            Some((conv, seq)) if conv == self.id => {
                message::get(&self.deps.db, conv, seq)?.map(Arc::new).ok_or(ConversationError::MessageNotFound)
            }
            _ => Err(ConversationError::MessageNotFound),
        }
    }

    pub(super) fn change_message(&mut self, change: MessageChange, slot: &mut Option<Reply<Arc<Message>>>, ctx: &mut Context<Self>) {
        let Some(reply) = slot.take() else { return };
        if let Some(e) = self.refusal(ctx) {
            let _ = reply.send(Err(e));
            return;
        }
        if self.inflight_ids.contains_key(&change.message_id) {
            // Changes only follow a durable message; its append is still in flight
            // (readable already, but not yet answered). The caller retries.
            let _ = reply.send(Err(ConversationError::MessagePending));
            return;
        }
        if let Some(e) = self.overloaded() {
            let _ = reply.send(Err(e));
            return;
        }
        let current = match self.current_message(change.message_id) {
            Ok(m) => m,
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        let (new, status_changed, media_changed) = apply_change(&current, &change, Timestamp::now());
        if new == *current && change.extra.is_empty() {
            let _ = reply.send(Ok(current));
            return;
        }
        let built = message::replace_batch(&new, self.deps.db.message_format()).map(|mut b| {
            b.extend(change.extra);
            b
        });
        let batch = match built {
            Ok(b) => b,
            Err(e) => {
                let _ = reply.send(Err(ConversationError::Read(e.to_string().into())));
                return;
            }
        };
        let new = Arc::new(new);
        let committed = Committed::MessageChanged { message: new.clone(), status: status_changed, media: media_changed };
        let ticket = self.submit(batch, committed, Waiter::MessageChange(reply), ctx);
        self.changed.insert(new.id, (ticket, new));
    }

    pub(super) fn update(&mut self, change: ConversationChange, slot: &mut Option<Reply<Arc<Conversation>>>, ctx: &mut Context<Self>) {
        let Some(reply) = slot.take() else { return };
        if let Some(e) = self.refusal(ctx).or_else(|| self.overloaded()) {
            let _ = reply.send(Err(e));
            return;
        }
        let Phase::Ready { conv, next_seq } = &mut self.phase else {
            return;
        };
        let now = Timestamp::now();
        if change.escalate.is_some() && conv.status == ConversationStatus::Closed {
            let _ = reply.send(Err(ConversationError::Closed));
            return;
        }
        let mut new = conv.clone();
        if let Some(s) = change.status {
            new.status = s;
        }
        if let Some(a) = change.assign_if_unassigned {
            if new.assignee_id.is_none() && new.status == ConversationStatus::Escalated {
                new.assignee_id = Some(a);
            }
        }
        if let Some(a) = change.assignee_id {
            new.assignee_id = a;
        }
        if let Some(b) = change.bot_enabled {
            new.bot_enabled = b;
        }
        if let Some(l) = change.labels {
            new.labels = l;
        }
        if let Some((contact, customer)) = change.contact {
            new.contact_id = Some(contact);
            new.customer = customer;
        }
        if change.erase {
            new.contact_id = None;
            new.customer = utalk_storage::model::Customer::default();
            new.subject = None;
            new.resolution = None;
        }
        let fx = lifecycle::apply_lifecycle(&mut new, change.escalate.as_ref(), change.close.as_ref(), &change.ratings, *next_seq - 1, now);
        if new == *conv && fx.ratings.is_empty() {
            // Nothing changes: answer with the durable state, write nothing.
            let _ = reply.send(Ok(Arc::new(new)));
            return;
        }
        new.updated_at = now;
        let mut follow: Vec<Message> = Vec::new();
        if let Some((id, text)) = &fx.handoff {
            let mut m = system_message(self.id, *next_seq, text, now);
            m.id = *id;
            m.author = Author { kind: AuthorType::Bot, id: None };
            follow.push(m);
        }
        for t in &fx.follow_ups {
            let seq = *next_seq + follow.len() as u64;
            follow.push(system_message(self.id, seq, t, now));
        }
        let built =
            messages_batch(&self.deps.db, &new, &mut follow, &self.deps.outbox, self.indexed_hour).and_then(|(mut b, outbox, hour)| {
                b.extend(conversation::put_batch(Some(conv), &new)?);
                if let Some(e) = &fx.escalation {
                    bot::put_escalation(&mut b, e)?;
                }
                for r in &fx.ratings {
                    bot::put_rating(&mut b, r)?;
                }
                Ok((b, outbox, hour))
            });
        let (batch, outbox) = match built {
            Ok((b, outbox, hour)) => {
                self.indexed_hour = hour;
                (b, outbox)
            }
            Err(e) => {
                let _ = reply.send(Err(ConversationError::Read(e.to_string().into())));
                return;
            }
        };
        *conv = new.clone();
        *next_seq += follow.len() as u64;
        let committed = Committed::Conversation {
            conversation: Arc::new(new),
            messages: follow.into_iter().map(Arc::new).collect(),
            outbox,
            escalated: fx.escalation.is_some(),
            ratings: fx.ratings,
        };
        self.submit(batch, committed, Waiter::Update(reply), ctx);
    }

    pub(super) fn mark_read(&mut self, req: MarkRead, slot: &mut Option<Reply<u64>>, ctx: &mut Context<Self>) {
        let Some(reply) = slot.take() else { return };
        if let Some(e) = self.refusal(ctx) {
            let _ = reply.send(Err(e));
            return;
        }
        let Phase::Ready { next_seq, .. } = &self.phase else { return };
        if req.seq >= *next_seq {
            let _ = reply.send(Err(ConversationError::InvalidSeq(req.seq)));
            return;
        }
        let current = match read_marker::get(&self.deps.db, self.id, req.reader.id) {
            Ok(c) => c.unwrap_or(0),
            Err(e) => {
                let _ = reply.send(Err(e.into()));
                return;
            }
        };
        if req.seq <= current {
            // Markers only move forward; an older one changes nothing.
            let _ = reply.send(Ok(current));
            return;
        }
        let mut batch = Batch::new();
        read_marker::put(&mut batch, self.id, req.reader.id, req.seq);
        self.submit(batch, Committed::Read { reader: req.reader, seq: req.seq }, Waiter::Read(reply), ctx);
    }

    pub(super) fn rewrite_messages(&mut self, req: RewriteMessages, slot: &mut Option<Reply<u64>>, ctx: &mut Context<Self>) {
        let Some(reply) = slot.take() else { return };
        if let Some(e) = self.refusal(ctx).or_else(|| self.overloaded()) {
            let _ = reply.send(Err(e));
            return;
        }
        // A message with a change in flight is written as changed, so that
        // this write, which lands after the change, keeps it.
        let changed = |id: &Uuid| self.changed.get(id).map(|(_, m)| m.clone());
        let built = rewrite_batch(&self.deps.db, self.id, req, changed);
        match built {
            Ok((_, 0)) => {
                let _ = reply.send(Ok(0));
            }
            Ok((batch, count)) => {
                self.submit(batch, Committed::Rewritten { count }, Waiter::Rewritten(reply), ctx);
            }
            Err(e) => {
                let _ = reply.send(Err(ConversationError::Read(e.to_string().into())));
            }
        }
    }

    fn submit(&mut self, mut batch: Batch, committed: Committed, waiter: Waiter, ctx: &mut Context<Self>) -> u64 {
        if !matches!(committed, Committed::Read { .. } | Committed::Rewritten { .. }) {
            let now = activity::second_of(Timestamp::now());
            if self.active_second.is_none_or(|s| s < now) {
                activity::set(&mut batch, self.id, self.active_second, now);
                self.active_second = Some(now);
            }
        }
        if let Err(e) = self.announce(&mut batch, &committed) {
            // Encoding our own records does not fail in practice; if it did,
            // the change still goes: losing a webhook beats refusing a message.
            tracing::error!(conversation = %self.id, error = %e, "could not queue webhook deliveries");
        }
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        let events = self.events_of(&committed);
        let appended = match &self.log {
            Some(log) => Either::Left(log.append(batch, events)),
            // Unreachable in practice: writes happen only once the state is loaded, with its log.
            None => Either::Right(std::future::ready(Err(JournalError::Write(WriteError::Stopped)))),
        };
        self.inflight.push_back(InFlight { ticket, durable: false, committed, waiters: vec![waiter] });
        ctx.spawn(appended.into_actor(self).map(move |res, act, ctx| act.written(ticket, res, ctx)));
        ticket
    }

    /// Queues the webhook deliveries of `committed` in its batch.
    fn announce(&mut self, batch: &mut Batch, committed: &Committed) -> Result<(), utalk_storage::CodecError> {
        let Some(tap) = self.deps.webhooks.clone() else { return Ok(()) };
        let Phase::Ready { conv, .. } = &self.phase else { return Ok(()) };
        let no_ratings: &[Rating] = &[];
        let (change, changed) = match committed {
            Committed::Message { messages, conversation, rating, .. } => {
                let published = conversation.as_ref().filter(|(_, p)| *p).map(|(c, _)| &**c);
                let change = Change { conversation: published, messages, status_of: None, ratings: rating.as_slice() };
                (change, conversation.as_ref().map(|(c, _)| (**c).clone()))
            }
            Committed::MessageChanged { message, status, .. } => {
                (Change { conversation: None, messages: &[], status_of: status.then_some(&**message), ratings: no_ratings }, None)
            }
            Committed::Conversation { conversation, messages, ratings, .. } => {
                (Change { conversation: Some(conversation), messages, status_of: None, ratings }, Some((**conversation).clone()))
            }
            Committed::Read { .. } | Committed::Rewritten { .. } => return Ok(()),
        };
        announce::add(&tap, batch, self.announced.as_ref(), conv, change)?;
        if let Some(c) = changed {
            self.announced = Some(c);
        }
        Ok(())
    }

    /// What subscribers are told once `committed` is durable, in order.
    fn events_of(&mut self, committed: &Committed) -> Vec<ConversationEvent> {
        let mut events = Vec::with_capacity(1);
        match committed {
            Committed::Message { messages, conversation, .. } => {
                if let Some((c, true)) = conversation {
                    self.conversation_changed(c, &mut events);
                }
                events.extend(messages.iter().map(|m| ConversationEvent::MessageNew(m.clone())));
            }
            Committed::MessageChanged { message: m, status, media } => {
                if *status {
                    events.push(ConversationEvent::MessageStatus(m.clone()));
                }
                if *media {
                    events.push(ConversationEvent::MessageUpdated(m.clone()));
                }
            }
            Committed::Conversation { conversation, messages, .. } => {
                self.conversation_changed(conversation, &mut events);
                events.extend(messages.iter().map(|m| ConversationEvent::MessageNew(m.clone())));
            }
            Committed::Read { reader, seq } => {
                events.push(ConversationEvent::Read { conversation_id: self.id, seq: *seq, reader: reader.clone() })
            }
            Committed::Rewritten { .. } => {}
        }
        events
    }

    /// The events of a change to the conversation's own fields: to its
    /// subscribers (and, by the follower, to staff), and to staff when it
    /// gives the conversation a new assignee.
    fn conversation_changed(&mut self, c: &Arc<Conversation>, events: &mut Vec<ConversationEvent>) {
        events.push(ConversationEvent::ConversationUpdated(c.clone()));
        if c.newly_assigned(self.published_assignee) {
            events.push(ConversationEvent::ConversationAssigned(c.clone()));
        }
        self.published_assignee = c.assignee_id;
    }

    /// A write finished: answer everything durable at the front, in order.
    fn written(&mut self, ticket: u64, res: Result<(), JournalError>, ctx: &mut Context<Self>) {
        if let Err(e) = res {
            tracing::error!(conversation = %self.id, error = %e, "conversation write failed; reloading it");
            let err = ConversationError::from(e);
            self.fail_inflight(&err);
            self.phase = Phase::Broken(err);
            ctx.stop();
            return;
        }
        if let Some(entry) = self.inflight.iter_mut().find(|e| e.ticket == ticket) {
            entry.durable = true;
        }
        while self.inflight.front().is_some_and(|e| e.durable) {
            let Some(entry) = self.inflight.pop_front() else {
                break;
            };
            match &entry.committed {
                Committed::Message { messages, outbox, for_bot, .. } => {
                    self.inflight_ids.remove(&messages[0].id);
                    count_messages(messages);
                    if *outbox {
                        self.deps.outbox.notify();
                    }
                    if let (Some(hook), Some(conv)) = (self.deps.hook.get(), for_bot) {
                        hook.customer_message(conv, &messages[0]);
                    }
                }
                Committed::MessageChanged { message: m, .. } => {
                    if self.changed.get(&m.id).is_some_and(|(t, _)| *t == entry.ticket) {
                        self.changed.remove(&m.id);
                    }
                }
                Committed::Conversation { conversation, messages, outbox, escalated, .. } => {
                    count_messages(messages);
                    if *escalated {
                        metrics::counter!("escalations_total", "channel" => channel_name(conversation.channel)).increment(1);
                    }
                    if *outbox {
                        self.deps.outbox.notify();
                    }
                    if let (true, Some(hook)) = (*escalated, self.deps.hook.get()) {
                        hook.escalated(conversation);
                    }
                }
                Committed::Read { .. } | Committed::Rewritten { .. } => {}
            }
            for w in entry.waiters {
                match (w, &entry.committed) {
                    (Waiter::MessageChange(reply), Committed::MessageChanged { message, .. }) => {
                        let _ = reply.send(Ok(message.clone()));
                    }
                    (Waiter::Append { reply, created }, Committed::Message { messages, .. }) => {
                        let m = &messages[0];
                        let out = if created { Appended::Created(m.clone()) } else { Appended::Existing(m.clone()) };
                        let _ = reply.send(Ok(out));
                    }
                    (Waiter::Update(reply), Committed::Conversation { conversation, .. }) => {
                        let _ = reply.send(Ok(conversation.clone()));
                    }
                    (Waiter::Read(reply), Committed::Read { seq, .. }) => {
                        let _ = reply.send(Ok(*seq));
                    }
                    (Waiter::Rewritten(reply), Committed::Rewritten { count }) => {
                        let _ = reply.send(Ok(*count));
                    }
                    _ => {}
                }
            }
        }
    }

    fn fail_inflight(&mut self, err: &ConversationError) {
        for entry in self.inflight.drain(..) {
            for w in entry.waiters {
                match w {
                    Waiter::Append { reply, .. } => {
                        let _ = reply.send(Err(err.clone()));
                    }
                    Waiter::Update(reply) => {
                        let _ = reply.send(Err(err.clone()));
                    }
                    Waiter::Read(reply) => {
                        let _ = reply.send(Err(err.clone()));
                    }
                    Waiter::MessageChange(reply) => {
                        let _ = reply.send(Err(err.clone()));
                    }
                    Waiter::Rewritten(reply) => {
                        let _ = reply.send(Err(err.clone()));
                    }
                }
            }
        }
        self.inflight_ids.clear();
        self.changed.clear();
    }

    fn load(&mut self, ctx: &mut Context<Self>) {
        self.phase = Phase::Loading;
        self.log = None;
        let db = self.deps.db.clone();
        let id = self.id;
        let journal = self.deps.journal.clone();
        let fut = async move {
            // The log first: this node's store must hold everything written to
            // the conversation before the actor decides anything.
            let Some(log) = journal.open(id).await? else { return Ok(None) };
            let conv = conversation::get(&db, id)?;
            let last = message::last_seq(&db, id)?;
            let active = activity::get(&db, id)?;
            Ok::<_, ConversationError>(Some((conv.map(|c| (c, last, active)), log)))
        };
        ctx.wait(fut.into_actor(self).map(|res, act, ctx| {
            act.phase = match res {
                Ok(Some((Some((conv, last, active)), log))) => {
                    act.log = Some(log);
                    act.announced = Some(conv.clone());
                    act.published_assignee = conv.assignee_id;
                    act.active_second = active;
                    Phase::Ready { conv, next_seq: last + 1 }
                }
                Ok(Some((None, _))) => Phase::Missing,
                // The shard is not this node's (any more): callers go back to the registry.
                Ok(None) => {
                    act.retire_now(ctx);
                    Phase::Retired
                }
                // The log could not be read: let the next request start afresh.
                Err(e @ ConversationError::Cluster(_)) => {
                    act.registry.retire(act.id, act.generation);
                    Phase::Broken(e)
                }
                Err(e) => Phase::Broken(e),
            };
        }));
    }

    fn check_idle(&mut self, ctx: &mut Context<Self>) {
        let idle = self.inflight.is_empty() && self.last_activity.elapsed() >= self.deps.idle_timeout;
        let missing = matches!(self.phase, Phase::Missing | Phase::Broken(_)) && self.inflight.is_empty();
        if (idle || missing) && self.registry.retire(self.id, self.generation) {
            // Retired actors linger only until the last address is dropped,
            // answering `Retired` so callers go back to the registry.
            self.phase = Phase::Retired;
            if let Some(h) = self.idle_check.take() {
                ctx.cancel_future(h);
            }
        }
    }
}

impl Actor for ConversationActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(256);
        if matches!(self.phase, Phase::Retired) {
            return;
        }
        self.load(ctx);
        let every = (self.deps.idle_timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(30));
        self.idle_check = Some(ctx.run_interval(every, |act, ctx| act.check_idle(ctx)));
    }
}

impl actix::Supervised for ConversationActor {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        self.registry.note_restart();
        self.fail_inflight(&ConversationError::Restarted);
        self.next_ticket = 0;
        self.idle_check = None;
        if !matches!(self.phase, Phase::Retired) {
            self.phase = Phase::Loading;
        }
    }
}

impl<C: Command> Handler<Envelope<C>> for ConversationActor {
    type Result = ();
    fn handle(&mut self, msg: Envelope<C>, ctx: &mut Context<Self>) {
        self.last_activity = Instant::now();
        let _span = tracing::debug_span!(parent: &msg.span, "conversation", otel.name = C::SPAN, conversation_id = %self.id).entered();
        let command = msg.command;
        self.guarded(ctx, msg.reply, move |act, ctx, slot| command.run(act, slot, ctx));
    }
}

/// What WhatsApp allows: a free-form staff message only within 24 hours of
/// the customer's last message (else Twilio refuses it with 63016), a
/// template only on WhatsApp. Notes are never sent, so they pass.
fn whatsapp_rules(conv: &Conversation, req: &AppendRequest, now: Timestamp) -> Result<(), ConversationError> {
    if req.template.is_some() && conv.channel != utalk_storage::model::Channel::Whatsapp {
        return Err(ConversationError::TemplateNotWhatsapp);
    }
    let free_form = req.template.is_none() && !req.private && req.author.kind == AuthorType::Agent;
    if conv.channel == utalk_storage::model::Channel::Whatsapp && free_form && !conv.whatsapp_window_open(now) {
        return Err(ConversationError::WindowClosed);
    }
    Ok(())
}
