use crate::batch::Batch;
use crate::codec::Record;
use crate::db::Db;
use crate::error::{CodecError, StoreError};
use crate::keys::{Key, KeyReader};
use crate::maps::Map;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Which way a message travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// From the customer.
    Inbound,
    /// To the customer.
    Outbound,
}

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuthorType {
    /// The customer.
    Customer,
    /// A staff user.
    Agent,
    /// The bot.
    Bot,
    /// utalk itself.
    System,
}

/// Author of a message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Author {
    /// Kind of author.
    #[serde(rename = "type")]
    pub kind: AuthorType,
    /// User id for agents; none for customers, the bot and the system.
    pub id: Option<Uuid>,
}

/// Where a message is on its way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    /// Inbound, stored.
    Received,
    /// Outbound, waiting in the outbox.
    Queued,
    /// Outbound, handed to the channel.
    Sent,
    /// Outbound, delivered to the customer's device.
    Delivered,
    /// Outbound, read by the customer.
    Read,
    /// Outbound, the channel gave up.
    Failed,
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    /// The client's `messageId`.
    pub id: Uuid,
    /// Conversation.
    pub conversation_id: Uuid,
    /// Position in the conversation, from 1, gap-free.
    pub seq: u64,
    /// Inbound or outbound.
    pub direction: Direction,
    /// Author.
    pub author: Author,
    /// Text, if any.
    pub text: Option<String>,
    /// Attached media, if any.
    pub media_id: Option<Uuid>,
    /// Delivery status.
    pub status: MessageStatus,
    /// The channel's id for the message (Twilio's MessageSid).
    pub provider_id: Option<String>,
    /// When it was stored.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
}

impl Record for Message {
    const KIND: &'static str = "message";
}

/// Key of message `seq` in `conversation`.
pub fn key(conversation: Uuid, seq: u64) -> Key {
    Key::new().uuid(conversation).u64(seq)
}

/// The highest seq stored for `conversation` (0 when it has none).
pub fn last_seq(db: &Db, conversation: Uuid) -> Result<u64, StoreError> {
    let prefix = Key::new().uuid(conversation).into_bytes();
    match db.last_with_prefix(Map::Messages, &prefix)? {
        Some((k, _)) => {
            let mut r = KeyReader::new(&k);
            r.uuid()?;
            Ok(r.u64()?)
        }
        None => Ok(0),
    }
}

/// Messages with seq greater than `after`, in seq order, at most `limit`.
pub fn after(db: &Db, conversation: Uuid, after: u64, limit: usize) -> Result<Vec<Message>, StoreError> {
    let prefix = Key::new().uuid(conversation).into_bytes();
    let start = key(conversation, after.saturating_add(1)).into_bytes();
    if after == u64::MAX {
        return Ok(Vec::new());
    }
    Ok(db.scan::<Message>(Map::Messages, &prefix, &start, limit)?.into_iter().map(|(_, m)| m).collect())
}

/// One message by seq.
pub fn get(db: &Db, conversation: Uuid, seq: u64) -> Result<Option<Message>, StoreError> {
    db.get(Map::Messages, key(conversation, seq))
}

/// Where a `messageId` was stored: its conversation and seq.
pub fn locate(db: &Db, message_id: Uuid) -> Result<Option<(Uuid, u64)>, StoreError> {
    match db.get_raw(Map::MessageidConvseq, Key::new().uuid(message_id))? {
        Some(v) => {
            let mut r = KeyReader::new(&v);
            Ok(Some((r.uuid()?, r.u64()?)))
        }
        None => Ok(None),
    }
}

/// The writes that append `message` with its idempotency index.
pub fn append_batch(message: &Message) -> Result<Batch, CodecError> {
    let mut b = Batch::new();
    b.put(Map::Messages, key(message.conversation_id, message.seq), message)?;
    b.put_raw(
        Map::MessageidConvseq,
        Key::new().uuid(message.id).into_bytes(),
        Key::new().uuid(message.conversation_id).u64(message.seq).into_bytes(),
    );
    Ok(b)
}
