//! API views of the outbox records: the shape REST and the socket show, kept apart
//! from the disk records so a rename here cannot change what is stored.

use super::*;
use serde::{Deserialize, Serialize};
use utalk_storage::model::outbox as storage;
use utalk_storage::Timestamp;
use utoipa::ToSchema;
use uuid::Uuid;

/// Why an outbox entry is waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OutboxState {
    /// Waiting for its turn or for the next attempt after a transient failure.
    Pending,
    /// The channel is not configured; sent once it is.
    NotConfigured,
}

impl From<storage::OutboxState> for OutboxState {
    fn from(r: storage::OutboxState) -> Self {
        match r {
            storage::OutboxState::Pending => OutboxState::Pending,
            storage::OutboxState::NotConfigured => OutboxState::NotConfigured,
        }
    }
}

/// An outbound channel message not yet accepted by the channel. Key:
/// `conversation_id · seq`, so a conversation's entries are adjacent and in order.
///
/// Written in the same batch as its message, removed in the same batch as the
/// message's `providerId` (or its failure), so a crash anywhere in between
/// leaves the entry to be sent after restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OutboxEntry {
    /// Id (UUIDv7: keys sort by creation time).
    pub id: Uuid,
    /// Conversation.
    pub conversation_id: Uuid,
    /// Message.
    pub message_id: Uuid,
    /// The message's seq, so that a conversation's messages go out in order.
    pub seq: u64,
    /// Recipient address, e.g. `whatsapp:+5215512345678`.
    pub to: String,
    /// Text.
    pub body: Option<String>,
    /// Media to attach.
    pub media_ids: Vec<Uuid>,
    /// State.
    pub state: OutboxState,
    /// Attempts so far.
    pub attempts: u32,
    /// Not before this time.
    #[schema(value_type = String, format = DateTime)]
    pub next_attempt_at: Timestamp,
    /// Last transient error.
    pub last_error: Option<String>,
    /// The channel's answer when it could not be recorded on the message yet;
    /// the entry is then only recorded, never sent again.
    #[serde(default)]
    pub outcome: Option<Outcome>,
    /// Created.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
}

impl From<storage::OutboxEntry> for OutboxEntry {
    fn from(r: storage::OutboxEntry) -> Self {
        Self {
            id: r.id,
            conversation_id: r.conversation_id,
            message_id: r.message_id,
            seq: r.seq,
            to: r.to,
            body: r.body,
            media_ids: r.media_ids,
            state: r.state.into(),
            attempts: r.attempts,
            next_attempt_at: r.next_attempt_at,
            last_error: r.last_error,
            outcome: r.outcome.map(Into::into),
            created_at: r.created_at,
        }
    }
}

/// What became of an outbox entry, to record on its message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    /// The message's new status.
    pub status: MessageStatus,
    /// The channel's id for the message.
    pub provider_id: Option<String>,
    /// The channel's error code.
    pub error_code: Option<String>,
    /// The channel's error text.
    pub error_message: Option<String>,
}

impl From<storage::Outcome> for Outcome {
    fn from(r: storage::Outcome) -> Self {
        Self { status: r.status.into(), provider_id: r.provider_id, error_code: r.error_code, error_message: r.error_message }
    }
}
