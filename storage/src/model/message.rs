use super::message_format::{self, MessageFormat};
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// From the customer.
    Inbound,
    /// To the customer.
    Outbound,
}

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Author {
    /// Kind of author.
    #[serde(rename = "type")]
    pub kind: AuthorType,
    /// User id for agents; none for customers, the bot and the system.
    pub id: Option<Uuid>,
}

/// Where a message is on its way.
///
/// Outbound channel messages move forward through [`MessageStatus::rank`]:
/// a callback that arrives late never moves a status backwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    /// Inbound, stored.
    Received,
    /// Outbound, waiting in the outbox because the channel is not configured.
    NotConfigured,
    /// Outbound, in the outbox or accepted and queued by the channel.
    Queued,
    /// Outbound, the channel is sending it.
    Sending,
    /// Outbound, handed to the channel (web chat: delivered to live sockets).
    Sent,
    /// Outbound, the carrier could not deliver it.
    Undelivered,
    /// Outbound, the channel gave up or refused it.
    Failed,
    /// Outbound, delivered to the customer's device.
    Delivered,
    /// Outbound, read by the customer.
    Read,
}

impl MessageStatus {
    /// Every status.
    pub const ALL: [MessageStatus; 9] = [
        Self::Received,
        Self::NotConfigured,
        Self::Queued,
        Self::Sending,
        Self::Sent,
        Self::Undelivered,
        Self::Failed,
        Self::Delivered,
        Self::Read,
    ];

    /// How far along the message is; a change to a lower or equal rank is ignored.
    ///
    /// Failures rank above `sent` (a failure report after `sent` is news) but
    /// below `delivered`: a device receipt is the stronger evidence.
    pub const fn rank(self) -> u8 {
        match self {
            Self::Received | Self::NotConfigured => 0,
            Self::Queued => 1,
            Self::Sending => 2,
            Self::Sent => 3,
            Self::Undelivered | Self::Failed => 4,
            Self::Delivered => 5,
            Self::Read => 6,
        }
    }

    /// Whether the channel gave up on the message.
    pub const fn is_failure(self) -> bool {
        matches!(self, Self::Undelivered | Self::Failed)
    }

    /// The API name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Received => "received",
            Self::NotConfigured => "not_configured",
            Self::Queued => "queued",
            Self::Sending => "sending",
            Self::Sent => "sent",
            Self::Undelivered => "undelivered",
            Self::Failed => "failed",
            Self::Delivered => "delivered",
            Self::Read => "read",
        }
    }

    /// Parses an API name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

/// Where a message's media file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaStatus {
    /// Announced by the channel, not downloaded yet.
    Pending,
    /// In the media store.
    Stored,
    /// Could not be downloaded or was refused (size, type); see `error`.
    Failed,
}

/// A media file attached to a message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    /// Media id (`GET /api/v1/media/{id}`).
    pub id: Uuid,
    /// MIME type as announced.
    pub content_type: String,
    /// Download state.
    pub status: MediaStatus,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A WhatsApp message template approved at Twilio (Content API): its
/// `ContentSid` and the values of its numbered variables.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Template {
    /// `HX` and 32 hex digits.
    pub content_sid: String,
    /// `"1"` → value, and so on.
    #[serde(default)]
    pub variables: std::collections::BTreeMap<String, String>,
}

/// Most variables of one template.
pub const MAX_TEMPLATE_VARIABLES: usize = 20;
/// Longest template variable value, in characters.
pub const MAX_TEMPLATE_VALUE: usize = 1_024;

impl Template {
    /// Whether the template can be sent: a Content SID and at most
    /// [`MAX_TEMPLATE_VARIABLES`] variables named by numbers, each at most
    /// [`MAX_TEMPLATE_VALUE`] characters.
    pub fn is_valid(&self) -> bool {
        let sid = self.content_sid.strip_prefix("HX").is_some_and(|h| h.len() == 32 && h.bytes().all(|b| b.is_ascii_hexdigit()));
        sid && self.variables.len() <= MAX_TEMPLATE_VARIABLES
            && self.variables.iter().all(|(k, v)| {
                !k.is_empty() && k.len() <= 3 && k.bytes().all(|b| b.is_ascii_digit()) && v.chars().count() <= MAX_TEMPLATE_VALUE
            })
    }
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    pub created_at: Timestamp,
    /// Every media file of the message (`mediaId` is the first), with its download state.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub media: Vec<Attachment>,
    /// The channel's error code when delivery failed (Twilio's ErrorCode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// The channel's explanation of the failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// When the status last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_updated_at: Option<Timestamp>,
    /// A private note: staff only, never sent to the customer, a channel or the bot.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub private: bool,
    /// The WhatsApp template it was sent as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<Template>,
}

impl Record for Message {
    const KIND: &'static str = "message";
    const VERSION: u16 = MessageFormat::NEWEST.version();
    // Format 2 is written only once every node reads it (see `message_format`).
    const WRITES: u16 = MessageFormat::Named.version();
    fn upgrade(version: u16, payload: &[u8]) -> Result<Self, CodecError> {
        match MessageFormat::of_version(version) {
            Some(MessageFormat::Compact) => super::message_format::decode_compact(payload),
            _ => Err(CodecError::UnknownVersion { kind: Self::KIND, found: version, supported: Self::VERSION }),
        }
    }
}

impl Message {
    /// A text message at `seq` of `conversation`, stored at `now`, with a new
    /// id and nothing else: no media, provider id, error, note or template.
    pub fn text(
        conversation: Uuid,
        seq: u64,
        direction: Direction,
        author: Author,
        status: MessageStatus,
        text: &str,
        now: Timestamp,
    ) -> Message {
        Message {
            id: Uuid::now_v7(),
            conversation_id: conversation,
            seq,
            direction,
            author,
            text: Some(text.to_string()),
            media_id: None,
            status,
            provider_id: None,
            created_at: now,
            media: Vec::new(),
            error_code: None,
            error_message: None,
            status_updated_at: None,
            private: false,
            template: None,
        }
    }
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

/// The conversation's last message.
pub fn last(db: &Db, conversation: Uuid) -> Result<Option<Message>, StoreError> {
    let prefix = Key::new().uuid(conversation).into_bytes();
    match db.last_with_prefix(Map::Messages, &prefix)? {
        Some((_, v)) => Ok(Some(crate::codec::decode(&v)?)),
        None => Ok(None),
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

/// Up to `limit` messages after seq `after` that a reader sees (private
/// notes only `with_notes`), and, when more may follow, the seq to read on
/// after. Reads past the notes it leaves out, so that a page is full while
/// messages remain, up to 64 pages of notes (a page cut short there says
/// where it stopped).
pub fn readable_after(
    db: &Db,
    conversation: Uuid,
    after: u64,
    limit: usize,
    with_notes: bool,
) -> Result<(Vec<Message>, Option<u64>), StoreError> {
    const MAX_CHUNKS: usize = 64;
    let mut out = Vec::with_capacity(limit.min(256));
    let mut from = after;
    for _ in 0..MAX_CHUNKS {
        let chunk = self::after(db, conversation, from, limit + 1)?;
        let full = chunk.len() > limit;
        for m in chunk {
            let seq = m.seq;
            if with_notes || !m.private {
                if out.len() == limit {
                    return Ok((out, Some(from)));
                }
                out.push(m);
            }
            from = seq;
        }
        if !full {
            return Ok((out, None));
        }
    }
    Ok((out, Some(from)))
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

/// The writes that store a changed version of an existing message (same seq and time) in `format`.
pub fn replace_batch(message: &Message, format: MessageFormat) -> Result<Batch, CodecError> {
    let mut b = Batch::new();
    b.put_raw(Map::Messages, key(message.conversation_id, message.seq).into_bytes(), message_format::encode(message, format)?);
    crate::model::kpi::touch(&mut b, message.created_at);
    Ok(b)
}

/// The writes that append `message` in `format` with its idempotency index (the KPIs' hour index is
/// [`kpi::index_messages`](crate::model::kpi::index_messages), once an hour per conversation).
pub fn append_batch(message: &Message, format: MessageFormat) -> Result<Batch, CodecError> {
    let mut b = Batch::new();
    b.put_raw(Map::Messages, key(message.conversation_id, message.seq).into_bytes(), message_format::encode(message, format)?);
    b.put_raw(
        Map::MessageidConvseq,
        Key::new().uuid(message.id).into_bytes(),
        Key::new().uuid(message.conversation_id).u64(message.seq).into_bytes(),
    );
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_names_round_trip() {
        for s in MessageStatus::ALL {
            assert_eq!(MessageStatus::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).ok(), Some(serde_json::Value::String(s.as_str().into())));
        }
        assert_eq!(MessageStatus::parse("bogus"), None);
    }

    #[test]
    fn delivery_order_only_moves_forward() {
        use MessageStatus::*;
        let path = [NotConfigured, Queued, Sending, Sent, Delivered, Read];
        for w in path.windows(2) {
            assert!(w[0].rank() < w[1].rank(), "{:?} before {:?}", w[0], w[1]);
        }
        assert!(Failed.rank() > Sent.rank());
        assert!(Delivered.rank() > Undelivered.rank());
        assert!(Read.rank() > Failed.rank());
    }

    #[test]
    fn older_messages_without_new_fields_still_decode() {
        #[derive(Serialize, Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct V1 {
            id: Uuid,
            conversation_id: Uuid,
            seq: u64,
            direction: Direction,
            author: Author,
            text: Option<String>,
            media_id: Option<Uuid>,
            status: MessageStatus,
            provider_id: Option<String>,
            created_at: Timestamp,
        }
        impl Record for V1 {
            const KIND: &'static str = "message";
        }
        let old = V1 {
            id: Uuid::new_v4(),
            conversation_id: Uuid::new_v4(),
            seq: 1,
            direction: Direction::Inbound,
            author: Author { kind: AuthorType::Customer, id: None },
            text: Some("hola".into()),
            media_id: None,
            status: MessageStatus::Received,
            provider_id: None,
            created_at: Timestamp(5),
        };
        let bytes = crate::codec::encode(&old).expect("encode");
        let m: Message = crate::codec::decode(&bytes).expect("decode");
        assert_eq!(m.text.as_deref(), Some("hola"));
        assert!(m.media.is_empty());
        assert_eq!(m.error_code, None);
        assert!(!m.private, "a message from before notes is no note");
    }

    #[test]
    fn readers_without_notes_get_full_pages_past_the_notes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open(dir.path(), &crate::db::DbOptions::default()).expect("open");
        let conv = Uuid::now_v7();
        let mut b = Batch::new();
        // Seqs 1..=30: every seq from 4 to 25 is a note.
        for seq in 1..=30u64 {
            let m = Message {
                id: Uuid::now_v7(),
                conversation_id: conv,
                seq,
                direction: Direction::Outbound,
                author: Author { kind: AuthorType::Agent, id: None },
                text: Some(format!("m{seq}")),
                media_id: None,
                status: MessageStatus::Sent,
                provider_id: None,
                created_at: Timestamp(0),
                media: Vec::new(),
                error_code: None,
                error_message: None,
                status_updated_at: None,
                private: (4..=25).contains(&seq),
                template: None,
            };
            b.extend(append_batch(&m, MessageFormat::Compact).expect("batch"));
        }
        db.write_group([&b], false).expect("write");
        let seqs = |v: &[Message]| v.iter().map(|m| m.seq).collect::<Vec<_>>();

        let (page, next) = readable_after(&db, conv, 0, 5, false).expect("read");
        assert_eq!(seqs(&page), vec![1, 2, 3, 26, 27], "the notes are skipped and the page is full");
        let (page, next) = readable_after(&db, conv, next.expect("more follow"), 5, false).expect("read");
        assert_eq!(seqs(&page), vec![28, 29, 30]);
        assert_eq!(next, None);

        let (page, next) = readable_after(&db, conv, 0, 5, true).expect("read");
        assert_eq!(seqs(&page), vec![1, 2, 3, 4, 5], "staff read notes in order");
        assert_eq!(next, Some(5));
        let (page, _) = readable_after(&db, conv, 3, 30, false).expect("read");
        assert_eq!(seqs(&page), vec![26, 27, 28, 29, 30]);
    }
}
