//! A log entry as it travels between nodes (and is kept in the replicated
//! stream): the writes of one entity, carried as opaque batches, and the
//! events they publish.

use crate::cluster::ClusterError;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use utalk_storage::model::{Conversation, Message};
use utalk_storage::Batch;
use uuid::Uuid;

/// An event as it travels in the log.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum LoggedEvent {
    /// `message:new`.
    MessageNew(Message),
    /// `message:status`.
    MessageStatus(Message),
    /// `message:updated`.
    MessageUpdated(Message),
    /// `conversation:updated`.
    ConversationUpdated(Conversation),
    /// `conversation:new`, to staff.
    ConversationNew(Conversation),
    /// `conversation:assigned`, to staff.
    ConversationAssigned(Conversation),
    /// A read marker moved.
    Read {
        /// Up to which seq.
        seq: u64,
        /// `agent` or `customer`.
        kind: String,
        /// The staff user.
        id: Option<Uuid>,
    },
}

/// One change in a log entry: the writes, and what subscribers are told.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoggedChange {
    /// The writes, exactly as the owner made them.
    pub batch: Batch,
    /// Its events, in order.
    pub events: Vec<LoggedEvent>,
}

/// One log entry: the changes of one entity, applied together.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogRecord {
    /// The conversation it belongs to; `None` for shared state.
    pub conversation: Option<Uuid>,
    /// The changes, in order.
    pub changes: Vec<LoggedChange>,
}

impl LogRecord {
    /// The record as log bytes.
    pub fn encode(&self) -> Result<Bytes, ClusterError> {
        rmp_serde::to_vec_named(self).map(Bytes::from).map_err(|e| ClusterError::Protocol(format!("cannot encode a log entry: {e}")))
    }

    /// A record read from the log.
    pub fn decode(bytes: &[u8]) -> Result<LogRecord, ClusterError> {
        rmp_serde::from_slice(bytes).map_err(|e| ClusterError::Protocol(format!("cannot decode a log entry: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use utalk_storage::Map;

    #[test]
    fn a_record_survives_the_log_and_garbage_is_refused() {
        let mut batch = Batch::new();
        batch.put_raw(Map::Meta, b"k".to_vec(), b"v".to_vec());
        let r = LogRecord {
            conversation: Some(Uuid::now_v7()),
            changes: vec![LoggedChange { batch, events: vec![LoggedEvent::Read { seq: 3, kind: "customer".into(), id: None }] }],
        };
        let back = LogRecord::decode(&r.encode().unwrap()).unwrap();
        assert_eq!(back.conversation, r.conversation);
        assert_eq!(back.changes[0].batch.len(), 1);
        assert!(matches!(back.changes[0].events[0], LoggedEvent::Read { seq: 3, .. }));
        assert!(matches!(LogRecord::decode(b"\x01\x02garbage"), Err(ClusterError::Protocol(_))));
    }
}
