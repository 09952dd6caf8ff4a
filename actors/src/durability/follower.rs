//! The follower: what happens once a change is applied to this node's store.
//!
//! This is the one place durable events leave from. The store writer hands
//! it each applied change, in commit order, right after the group holding it
//! is durable and before the writer of the change is answered. On one node
//! the changes are the conversation actors' own writes; on a cluster node
//! they are the log entries the journal's follow loop applies, whichever
//! node appended them. Either way subscribers hear of a change exactly once,
//! after it is stored here, in the order it was stored.

use crate::fanout::broker::{Broker, ConversationEvent, STAFF_TOPIC};
use std::sync::Arc;
use tokio::sync::watch;
use uuid::Uuid;

/// What an applied change tells the rest of this node.
pub(crate) enum Applied {
    /// A conversation's events, in order.
    Conversation {
        /// The conversation.
        id: Uuid,
        /// Its events.
        events: Vec<ConversationEvent>,
    },
    /// Shared state changed (users, tokens, flags, settings): caches reload.
    Shared,
}

/// Publishes applied changes; called on the store writer's thread, so it never waits.
pub(crate) struct Follower {
    broker: Arc<dyn Broker>,
    /// Counts applied changes of shared state, so that caches of it reload.
    shared: watch::Sender<u64>,
}

impl Follower {
    pub(crate) fn new(broker: Arc<dyn Broker>, shared: watch::Sender<u64>) -> Follower {
        Follower { broker, shared }
    }

    /// Tells subscribers what one applied change did. The broker never waits
    /// (a full subscriber is dropped), so this cannot hold up the writer.
    pub(crate) fn applied(&self, applied: Applied) {
        match applied {
            Applied::Conversation { id, events } => {
                for event in events {
                    match event {
                        // Staff hear of every conversation's changes without
                        // joining it: the queue of a console moves live.
                        ConversationEvent::ConversationUpdated(ref c) => {
                            self.broker.publish(STAFF_TOPIC, ConversationEvent::StaffUpdated(c.clone()));
                            self.broker.publish(id, event);
                        }
                        e if e.is_staff_news() => self.broker.publish(STAFF_TOPIC, e),
                        e => self.broker.publish(id, e),
                    }
                }
            }
            Applied::Shared => self.shared.send_modify(|n| *n = n.wrapping_add(1)),
        }
    }
}
