use crate::batch::Batch;
use crate::codec::Record;
use crate::db::Db;
use crate::error::{CodecError, StoreError};
use crate::keys::Key;
use crate::maps::Map;
use crate::model::message::MessageStatus;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Why an outbox entry is waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboxState {
    /// Waiting for its turn or for the next attempt after a transient failure.
    Pending,
    /// The channel is not configured; sent once it is.
    NotConfigured,
}

/// An outbound channel message not yet accepted by the channel. Key:
/// `conversation_id · seq`, so a conversation's entries are adjacent and in order.
///
/// Written in the same batch as its message, removed in the same batch as the
/// message's `providerId` (or its failure), so a crash anywhere in between
/// leaves the entry to be sent after restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    pub next_attempt_at: Timestamp,
    /// Last transient error.
    pub last_error: Option<String>,
    /// The channel's answer when it could not be recorded on the message yet;
    /// the entry is then only recorded, never sent again.
    #[serde(default)]
    pub outcome: Option<Outcome>,
    /// Created.
    pub created_at: Timestamp,
    /// Send as this WhatsApp template instead of `body`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<crate::model::message::Template>,
}

/// What became of an outbox entry, to record on its message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

impl Record for OutboxEntry {
    const KIND: &'static str = "outbox_entry";
}

fn key(conversation: Uuid, seq: u64) -> Key {
    Key::new().uuid(conversation).u64(seq)
}

/// Adds the write of `entry` to `batch`.
pub fn put(batch: &mut Batch, entry: &OutboxEntry) -> Result<(), CodecError> {
    batch.put(Map::Outbox, key(entry.conversation_id, entry.seq), entry)?;
    Ok(())
}

/// Adds the removal of the entry of message `seq` in `conversation` to `batch`.
pub fn delete(batch: &mut Batch, conversation: Uuid, seq: u64) {
    batch.delete(Map::Outbox, key(conversation, seq));
}

/// The entries of `conversation`, at most `limit`.
pub fn of_conversation(db: &Db, conversation: Uuid, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
    Ok(db.scan(Map::Outbox, Key::new().uuid(conversation).as_bytes(), &[], limit)?.into_iter().map(|(_, e)| e).collect())
}

/// Entries in key order (by conversation, then seq), after the entry of
/// `after` (exclusive), at most `limit`.
pub fn list(db: &Db, after: Option<(Uuid, u64)>, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
    let start = match after {
        Some((c, seq)) => key(c, seq).u8(0).into_bytes(),
        None => Vec::new(),
    };
    Ok(db.scan::<OutboxEntry>(Map::Outbox, &[], &start, limit)?.into_iter().map(|(_, e)| e).collect())
}

/// The oldest entry of each conversation, at most `limit` conversations:
/// one seek per conversation, so a conversation with a long backlog costs
/// no more than one with a single entry.
pub fn heads(db: &Db, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
    let mut out = Vec::new();
    let mut start = Vec::new();
    while out.len() < limit {
        let Some((_, e)) = db.scan::<OutboxEntry>(Map::Outbox, &[], &start, 1)?.into_iter().next() else {
            break;
        };
        let next = e.conversation_id.as_u128().checked_add(1);
        out.push(e);
        match next {
            Some(n) => start = Key::new().uuid(Uuid::from_u128(n)).into_bytes(),
            None => break,
        }
    }
    Ok(out)
}

/// Number of entries, counting at most `cap`.
pub fn count(db: &Db, cap: usize) -> Result<usize, StoreError> {
    Ok(db.scan_raw(Map::Outbox, &[], &[], cap)?.len())
}
