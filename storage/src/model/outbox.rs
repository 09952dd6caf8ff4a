use crate::batch::Batch;
use crate::codec::Record;
use crate::db::Db;
use crate::error::{CodecError, StoreError};
use crate::keys::Key;
use crate::maps::Map;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Why an outbox entry is waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OutboxState {
    /// Waiting for its turn or for the next attempt after a transient failure.
    Pending,
    /// The channel is not configured; sent once it is.
    NotConfigured,
}

/// An outbound channel message not yet accepted by the channel.
///
/// Written in the same batch as its message, removed in the same batch as the
/// message's `providerId` (or its failure), so a crash anywhere in between
/// leaves the entry to be sent after restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
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
    /// Twilio's sid when it accepted the message but the outcome is not recorded yet.
    #[serde(default)]
    pub provider_id: Option<String>,
    /// Created.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
}

impl Record for OutboxEntry {
    const KIND: &'static str = "outbox_entry";
}

/// Adds the write of `entry` to `batch`.
pub fn put(batch: &mut Batch, entry: &OutboxEntry) -> Result<(), CodecError> {
    batch.put(Map::Outbox, Key::new().uuid(entry.id), entry)?;
    Ok(())
}

/// Adds the removal of entry `id` to `batch`.
pub fn delete(batch: &mut Batch, id: Uuid) {
    batch.delete(Map::Outbox, Key::new().uuid(id));
}

/// Reads one entry.
pub fn get(db: &Db, id: Uuid) -> Result<Option<OutboxEntry>, StoreError> {
    db.get(Map::Outbox, Key::new().uuid(id))
}

/// Entries oldest first, after `after` (exclusive), at most `limit`.
pub fn list(db: &Db, after: Option<Uuid>, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
    let start = match after {
        Some(a) => Key::new().uuid(a).u8(0).into_bytes(),
        None => Vec::new(),
    };
    Ok(db.scan::<OutboxEntry>(Map::Outbox, &[], &start, limit)?.into_iter().map(|(_, e)| e).collect())
}
