//! Fan-out of committed conversation events to live subscribers.
//!
//! Conversation actors publish only what is durable, in seq order; the
//! broker hands each event to every subscriber of that conversation without
//! ever waiting: each subscriber has a bounded queue, and one that is full is
//! dropped (its queue closes and its `overflowed` flag is set) so that a slow
//! consumer can never slow the publisher or other subscribers. A dropped
//! subscriber recovers by replaying from the last seq it saw.
//!
//! [`LocalBroker`] is the in-process implementation; a cross-node bus can
//! implement [`Broker`] later without the actors noticing.

use crate::views;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use tokio::sync::mpsc;
use utalk_storage::model::{Conversation, Message};
use uuid::Uuid;

/// The topic of events for every connected staff member (presence, alerts).
pub const STAFF_TOPIC: Uuid = Uuid::nil();

/// Who did something visible in a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Actor {
    /// `agent` (any staff user) or `customer`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// User id for staff.
    pub id: Option<Uuid>,
}

/// Something that happened in a conversation (or to all staff), published once durable.
#[derive(Debug, Clone)]
pub enum ConversationEvent {
    /// A new message.
    MessageNew(Arc<Message>),
    /// A message's delivery status changed (`message:status`).
    MessageStatus(Arc<Message>),
    /// A message changed otherwise, say a media file was downloaded (`message:updated`).
    MessageUpdated(Arc<Message>),
    /// The conversation's own fields changed (to its subscribers).
    ConversationUpdated(Arc<Conversation>),
    /// A conversation was created (`conversation:new`, published on [`STAFF_TOPIC`]).
    ConversationNew(Arc<Conversation>),
    /// A conversation got a new assignee (`conversation:assigned`, published on [`STAFF_TOPIC`]).
    ConversationAssigned(Arc<Conversation>),
    /// A conversation's fields changed, as staff hear it without joining
    /// (`conversation:updated` on [`STAFF_TOPIC`]): the follower makes one of
    /// each [`ConversationEvent::ConversationUpdated`].
    StaffUpdated(Arc<Conversation>),
    /// Someone read up to `seq`.
    Read {
        /// Conversation.
        conversation_id: Uuid,
        /// Last seq read.
        seq: u64,
        /// Reader.
        reader: Actor,
    },
    /// Someone started or stopped typing (not persisted).
    Typing {
        /// Conversation.
        conversation_id: Uuid,
        /// Who.
        user: Actor,
        /// Started or stopped.
        typing: bool,
        /// The session that sent it, which does not get it back.
        origin: u64,
    },
    /// A staff member's presence changed (published on [`STAFF_TOPIC`]).
    Presence {
        /// User.
        user_id: Uuid,
        /// `online`, `away` or `offline`.
        status: &'static str,
    },
    /// A stock alert was raised (`alert:new`) or changed (`alert:updated`), for
    /// operators, admins and the store's manager (published on [`STAFF_TOPIC`]).
    Alert {
        /// The alert.
        alert: Arc<utalk_storage::model::Alert>,
        /// The store's manager, who gets it whatever their role.
        manager: Option<Uuid>,
        /// Raised now (`alert:new`), rather than changed.
        new: bool,
    },
    /// A canned response was made, changed or deleted (`canned:changed`, for
    /// staff, published on [`STAFF_TOPIC`] once the change is stored): a
    /// console reloads its list.
    Canned {
        /// The canned response.
        id: Uuid,
        /// `created`, `updated` or `deleted`.
        change: &'static str,
    },
}

impl ConversationEvent {
    /// The Socket.IO event name.
    pub fn name(&self) -> &'static str {
        match self {
            ConversationEvent::MessageNew(_) => "message:new",
            ConversationEvent::MessageStatus(_) => "message:status",
            ConversationEvent::MessageUpdated(_) => "message:updated",
            ConversationEvent::ConversationUpdated(_) | ConversationEvent::StaffUpdated(_) => "conversation:updated",
            ConversationEvent::ConversationNew(_) => "conversation:new",
            ConversationEvent::ConversationAssigned(_) => "conversation:assigned",
            ConversationEvent::Read { .. } => "message:read",
            ConversationEvent::Typing { .. } => "typing",
            ConversationEvent::Presence { .. } => "presence",
            ConversationEvent::Alert { new: true, .. } => "alert:new",
            ConversationEvent::Alert { new: false, .. } => "alert:updated",
            ConversationEvent::Canned { .. } => "canned:changed",
        }
    }

    /// Whether it is news of a conversation for every staff member who may see it (on [`STAFF_TOPIC`]).
    pub fn is_staff_news(&self) -> bool {
        matches!(
            self,
            ConversationEvent::ConversationNew(_)
                | ConversationEvent::ConversationAssigned(_)
                | ConversationEvent::StaffUpdated(_)
                | ConversationEvent::Canned { .. }
        )
    }

    fn to_json(&self) -> String {
        use serde_json::json;
        // The frequent ones are written straight from their typed views.
        #[derive(Serialize)]
        struct MessageBody {
            message: views::Message,
        }
        #[derive(Serialize)]
        struct ConversationBody {
            conversation: views::Conversation,
        }
        let v = match self {
            ConversationEvent::MessageNew(m) | ConversationEvent::MessageUpdated(m) => {
                return encoded(&MessageBody { message: views::Message::from(m.as_ref().clone()) });
            }
            ConversationEvent::MessageStatus(m) => json!({
                "conversationId": m.conversation_id,
                "messageId": m.id,
                "seq": m.seq,
                "status": views::MessageStatus::from(m.status),
                "providerId": m.provider_id,
                "errorCode": m.error_code,
                "errorMessage": m.error_message,
            }),
            ConversationEvent::ConversationUpdated(c)
            | ConversationEvent::StaffUpdated(c)
            | ConversationEvent::ConversationNew(c)
            | ConversationEvent::ConversationAssigned(c) => {
                let body = ConversationBody { conversation: views::Conversation::from(c.as_ref().clone()) };
                return encoded(&body);
            }
            ConversationEvent::Read { conversation_id, seq, reader } => {
                json!({ "conversationId": conversation_id, "seq": seq, "reader": reader })
            }
            ConversationEvent::Typing { conversation_id, user, typing, .. } => {
                json!({ "conversationId": conversation_id, "user": user, "typing": typing })
            }
            ConversationEvent::Presence { user_id, status } => json!({ "userId": user_id, "status": status }),
            ConversationEvent::Alert { alert, .. } => json!({ "alert": views::Alert::from(alert.as_ref().clone()) }),
            ConversationEvent::Canned { id, change } => json!({ "id": id, "change": change }),
        };
        v.to_string()
    }
}

/// `body` as JSON. Our views always encode; were one not to, subscribers get
/// an empty object (still a well-formed frame) and the log says why.
fn encoded(body: &impl Serialize) -> String {
    serde_json::to_string(body).unwrap_or_else(|e| {
        tracing::error!(error = %e, "an event could not be encoded; sending an empty object");
        "{}".into()
    })
}

/// A published event as subscribers receive it: the event and its JSON,
/// serialized once however many subscribers there are.
#[derive(Debug)]
pub struct Envelope {
    /// The event.
    pub event: ConversationEvent,
    json: OnceLock<String>,
}

impl Envelope {
    /// Wraps an event.
    pub fn new(event: ConversationEvent) -> Self {
        Self { event, json: OnceLock::new() }
    }
    /// The event's payload as JSON.
    pub fn json(&self) -> &str {
        self.json.get_or_init(|| self.event.to_json())
    }
}

/// Identifies one subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SubscriptionId(pub u64);

/// The receiving end of a subscription, as the broker sees it.
#[derive(Debug, Clone)]
pub struct Subscriber {
    tx: mpsc::Sender<Arc<Envelope>>,
    overflowed: Arc<AtomicBool>,
}

impl Subscriber {
    /// A subscriber with a queue of `capacity` events, and its receiver and overflow flag.
    pub fn bounded(capacity: usize) -> (Subscriber, mpsc::Receiver<Arc<Envelope>>, Arc<AtomicBool>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let overflowed = Arc::new(AtomicBool::new(false));
        (Subscriber { tx, overflowed: overflowed.clone() }, rx, overflowed)
    }

    /// Offers an event; false when the subscriber must be dropped.
    fn offer(&self, event: &Arc<Envelope>) -> bool {
        match self.tx.try_send(event.clone()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.overflowed.store(true, Ordering::SeqCst);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

/// Delivers committed events to subscribers.
pub trait Broker: Send + Sync + 'static {
    /// Delivers `event` to every subscriber of `conversation`, without waiting.
    fn publish(&self, conversation: Uuid, event: ConversationEvent);
    /// Adds a subscriber to `conversation`.
    fn subscribe(&self, conversation: Uuid, subscriber: Subscriber) -> SubscriptionId;
    /// Removes a subscription; unknown ids are ignored.
    fn unsubscribe(&self, conversation: Uuid, id: SubscriptionId);
    /// Live subscriptions over all conversations.
    fn subscriptions(&self) -> usize;
}

const SHARDS: usize = 32;

type Subs = Vec<(SubscriptionId, Subscriber)>;

/// In-process broker: subscribers kept in sharded maps.
#[derive(Debug)]
pub struct LocalBroker {
    shards: Vec<Mutex<HashMap<Uuid, Subs>>>,
    next_id: AtomicU64,
    live: AtomicU64,
    dropped: AtomicU64,
}

impl Default for LocalBroker {
    fn default() -> Self {
        Self::new()
    }
}

impl LocalBroker {
    /// An empty broker.
    pub fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            next_id: AtomicU64::new(1),
            live: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        }
    }

    fn shard(&self, conversation: Uuid) -> std::sync::MutexGuard<'_, HashMap<Uuid, Subs>> {
        let i = (conversation.as_u128() as usize) % SHARDS;
        self.shards[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Subscribers dropped for being too slow, since start.
    pub fn dropped_slow(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl Broker for LocalBroker {
    fn publish(&self, conversation: Uuid, event: ConversationEvent) {
        let event = Arc::new(Envelope::new(event));
        let mut shard = self.shard(conversation);
        let Some(subs) = shard.get_mut(&conversation) else {
            return;
        };
        let before = subs.len();
        subs.retain(|(_, s)| s.offer(&event));
        let removed = before - subs.len();
        if removed > 0 {
            self.live.fetch_sub(removed as u64, Ordering::Relaxed);
            self.dropped.fetch_add(removed as u64, Ordering::Relaxed);
            if subs.is_empty() {
                shard.remove(&conversation);
            }
        }
    }

    fn subscribe(&self, conversation: Uuid, subscriber: Subscriber) -> SubscriptionId {
        let id = SubscriptionId(self.next_id.fetch_add(1, Ordering::Relaxed));
        self.shard(conversation).entry(conversation).or_default().push((id, subscriber));
        self.live.fetch_add(1, Ordering::Relaxed);
        id
    }

    fn unsubscribe(&self, conversation: Uuid, id: SubscriptionId) {
        let mut shard = self.shard(conversation);
        if let Some(subs) = shard.get_mut(&conversation) {
            let before = subs.len();
            subs.retain(|(sid, _)| *sid != id);
            if subs.len() < before {
                self.live.fetch_sub(1, Ordering::Relaxed);
            }
            if subs.is_empty() {
                shard.remove(&conversation);
            }
        }
    }

    fn subscriptions(&self) -> usize {
        self.live.load(Ordering::Relaxed) as usize
    }
}

/// The static name of a reader kind read back from the wire.
pub fn reader_kind(kind: &str) -> &'static str {
    if kind == "customer" {
        "customer"
    } else {
        "agent"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use utalk_storage::model::*;
    use utalk_storage::Timestamp;

    fn msg(conv: Uuid, seq: u64) -> ConversationEvent {
        let customer = Author { kind: AuthorType::Customer, id: None };
        ConversationEvent::MessageNew(Arc::new(Message::text(
            conv,
            seq,
            Direction::Inbound,
            customer,
            MessageStatus::Received,
            "hi",
            Timestamp::now(),
        )))
    }

    fn seq_of(e: &Envelope) -> u64 {
        match &e.event {
            ConversationEvent::MessageNew(m) => m.seq,
            _ => 0,
        }
    }

    #[test]
    fn subscribers_get_their_conversation_only_in_order() {
        let b = LocalBroker::new();
        let (a, b_) = (Uuid::new_v4(), Uuid::new_v4());
        let (s1, mut r1, _) = Subscriber::bounded(8);
        let (s2, mut r2, _) = Subscriber::bounded(8);
        b.subscribe(a, s1);
        b.subscribe(b_, s2);
        for seq in 1..=3 {
            b.publish(a, msg(a, seq));
        }
        let got: Vec<u64> = (0..3).map(|_| seq_of(&r1.try_recv().unwrap())).collect();
        assert_eq!(got, vec![1, 2, 3]);
        assert!(r2.try_recv().is_err());
    }

    #[test]
    fn a_full_subscriber_is_dropped_and_others_keep_receiving() {
        let b = LocalBroker::new();
        let c = Uuid::new_v4();
        let (slow, mut slow_rx, slow_flag) = Subscriber::bounded(2);
        let (fast, mut fast_rx, fast_flag) = Subscriber::bounded(100);
        b.subscribe(c, slow);
        b.subscribe(c, fast);
        for seq in 1..=10 {
            b.publish(c, msg(c, seq));
            assert_eq!(seq_of(&fast_rx.try_recv().unwrap()), seq);
        }
        assert!(slow_flag.load(Ordering::SeqCst));
        assert!(!fast_flag.load(Ordering::SeqCst));
        // The slow one got what fit, then its queue closed.
        assert_eq!(seq_of(&slow_rx.try_recv().unwrap()), 1);
        assert_eq!(seq_of(&slow_rx.try_recv().unwrap()), 2);
        assert!(matches!(slow_rx.try_recv(), Err(mpsc::error::TryRecvError::Disconnected)));
        assert_eq!(b.subscriptions(), 1);
        assert_eq!(b.dropped_slow(), 1);
    }

    #[test]
    fn unsubscribe_removes_only_that_subscription() {
        let b = LocalBroker::new();
        let c = Uuid::new_v4();
        let (s1, _r1, _) = Subscriber::bounded(4);
        let (s2, mut r2, _) = Subscriber::bounded(4);
        let id1 = b.subscribe(c, s1);
        b.subscribe(c, s2);
        b.unsubscribe(c, id1);
        b.unsubscribe(c, SubscriptionId(999));
        assert_eq!(b.subscriptions(), 1);
        b.publish(c, msg(c, 1));
        assert!(r2.try_recv().is_ok());
    }
}
