//! The conversions between the broker's events and their log form
//! (`crate::wire::log`), which this seam writes and applies.

use crate::fanout::broker::{reader_kind, Actor as Reader, ConversationEvent};
use std::sync::Arc;
use uuid::Uuid;

pub(crate) use crate::wire::log::{LogRecord, LoggedChange, LoggedEvent};

impl LoggedEvent {
    /// The log form of a conversation event; `None` for events that are not kept (typing, presence).
    pub fn from_event(e: &ConversationEvent) -> Option<LoggedEvent> {
        Some(match e {
            ConversationEvent::MessageNew(m) => LoggedEvent::MessageNew((**m).clone()),
            ConversationEvent::MessageStatus(m) => LoggedEvent::MessageStatus((**m).clone()),
            ConversationEvent::MessageUpdated(m) => LoggedEvent::MessageUpdated((**m).clone()),
            ConversationEvent::ConversationUpdated(c) => LoggedEvent::ConversationUpdated((**c).clone()),
            ConversationEvent::ConversationNew(c) => LoggedEvent::ConversationNew((**c).clone()),
            ConversationEvent::ConversationAssigned(c) => LoggedEvent::ConversationAssigned((**c).clone()),
            ConversationEvent::Read { seq, reader, .. } => LoggedEvent::Read { seq: *seq, kind: reader.kind.to_string(), id: reader.id },
            // Made again by each node's follower, or never kept.
            ConversationEvent::StaffUpdated(_)
            | ConversationEvent::Typing { .. }
            | ConversationEvent::Presence { .. }
            | ConversationEvent::Alert { .. }
            | ConversationEvent::Canned { .. } => return None,
        })
    }

    pub(crate) fn into_event(self, conversation_id: Uuid) -> ConversationEvent {
        match self {
            LoggedEvent::MessageNew(m) => ConversationEvent::MessageNew(Arc::new(m)),
            LoggedEvent::MessageStatus(m) => ConversationEvent::MessageStatus(Arc::new(m)),
            LoggedEvent::MessageUpdated(m) => ConversationEvent::MessageUpdated(Arc::new(m)),
            LoggedEvent::ConversationUpdated(c) => ConversationEvent::ConversationUpdated(Arc::new(c)),
            LoggedEvent::ConversationNew(c) => ConversationEvent::ConversationNew(Arc::new(c)),
            LoggedEvent::ConversationAssigned(c) => ConversationEvent::ConversationAssigned(Arc::new(c)),
            LoggedEvent::Read { seq, kind, id } => {
                ConversationEvent::Read { conversation_id, seq, reader: Reader { kind: reader_kind(&kind), id } }
            }
        }
    }
}
