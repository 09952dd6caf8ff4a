//! How a message is stored.
//!
//! Format 1, from release 0.1.0 on, names every field in full
//! (`conversationId`, `createdAt`, …) and spells its enums (`outbound`).
//! Format 2 names fields with one or two letters, stores the enums as small
//! numbers and leaves out empty fields: a short text message takes a little
//! over half the bytes, which the write-ahead log, the memtable, each flush
//! and each compaction carry for every message.
//!
//! Both are read. Format 2 is written only once the data says so (meta
//! `message_format`, see [`Db::message_format`]), which the
//! `message_format` background migration turns on when every node of the
//! cluster runs a build that reads it, so that a node of the release
//! before never meets a message it cannot read; the same migration then
//! rewrites the older messages. `utalk migrate rollback` writes them back in
//! format 1 for the release before.
//!
//! [`Db::message_format`]: crate::Db::message_format

use super::message::{Attachment, Author, AuthorType, Direction, Message, MessageStatus, Template};
use crate::batch::Batch;
use crate::codec::{encode_as, Record};
use crate::db::{Db, META_MESSAGE_FORMAT, META_READABLE_FROM};
use crate::error::{CodecError, StoreError};
pub use crate::formats::MessageFormat;
use crate::maps::Map;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Encodes `message` in `format`.
///
/// # Errors
/// When MessagePack cannot encode it (not with these types).
pub fn encode(message: &Message, format: MessageFormat) -> Result<Vec<u8>, CodecError> {
    match format {
        MessageFormat::Named => crate::codec::encode(message),
        MessageFormat::Compact => encode_as(Message::KIND, 2, &Compact::of(message)),
    }
}

/// The first schema version whose builds read format 2: the data is
/// readable from it on once format 2 is turned on.
pub const READ_FROM_SCHEMA: u32 = 7;

/// The writes that turn format 2 on: messages are written in it from the
/// write that applies them on, on every node, and the data says that builds
/// before [`READ_FROM_SCHEMA`] cannot read it.
pub fn turn_on(b: &mut Batch) {
    b.put_raw(Map::Meta, META_MESSAGE_FORMAT.to_vec(), MessageFormat::Compact.version().to_be_bytes().to_vec());
    b.put_raw(Map::Meta, META_READABLE_FROM.to_vec(), READ_FROM_SCHEMA.to_be_bytes().to_vec());
}

/// A page of stored messages under `prefix` (a conversation's id, or
/// nothing for all) from `start` (inclusive): the key and message of each
/// one stored in a format other than `wanted`, how many were read, and the
/// key to go on from when more may follow.
///
/// # Errors
/// When the store cannot be read or a message cannot be decoded.
pub fn others_page(db: &Db, prefix: &[u8], start: &[u8], limit: usize, wanted: MessageFormat) -> Result<Page, StoreError> {
    let rows = db.scan_raw(Map::Messages, prefix, start, limit)?;
    let next = match rows.last() {
        Some((k, _)) if rows.len() == limit => {
            let mut after = k.clone();
            // The smallest key after it.
            after.push(0);
            Some(after)
        }
        _ => None,
    };
    let read = rows.len();
    let mut others = Vec::new();
    for (k, v) in rows {
        if crate::codec::version_of(&v) != Some(wanted.version()) {
            others.push((k, crate::codec::decode::<Message>(&v)?));
        }
    }
    Ok(Page { others, read, next })
}

/// One page of [`others_page`].
pub struct Page {
    /// Key and message of each one stored in another format.
    pub others: Vec<(Vec<u8>, Message)>,
    /// Messages read.
    pub read: usize,
    /// Where the next page starts; `None` at the end.
    pub next: Option<Vec<u8>>,
}

/// Writes every message back in format 1 and turns format 2 off, in pages
/// of 4,096 written as they are built (the server is stopped: nothing else
/// writes). Returns the last writes, for the caller's batch with its version.
pub(crate) fn write_back_named(db: &Db) -> Result<Batch, StoreError> {
    let mut start = Vec::new();
    loop {
        let page = others_page(db, &[], &start, 4096, MessageFormat::Named)?;
        let mut b = Batch::new();
        for (k, m) in &page.others {
            b.put_raw(Map::Messages, k.clone(), encode(m, MessageFormat::Named)?);
        }
        db.write_group([&b], false)?;
        match page.next {
            Some(next) => start = next,
            None => break,
        }
    }
    let mut b = Batch::new();
    b.delete_raw(Map::Meta, META_MESSAGE_FORMAT.to_vec());
    Ok(b)
}

/// Reads a format 2 payload.
pub(super) fn decode_compact(payload: &[u8]) -> Result<Message, CodecError> {
    let c: CompactOwned = rmp_serde::from_slice(payload).map_err(|source| CodecError::Decode { kind: Message::KIND, source })?;
    c.into_message()
}

// The numbers below are the disk format: never reorder, only append.
const DIRECTIONS: [Direction; 2] = [Direction::Inbound, Direction::Outbound];
const AUTHORS: [AuthorType; 4] = [AuthorType::Customer, AuthorType::Agent, AuthorType::Bot, AuthorType::System];
const STATUSES: [MessageStatus; 9] = [
    MessageStatus::Received,
    MessageStatus::NotConfigured,
    MessageStatus::Queued,
    MessageStatus::Sending,
    MessageStatus::Sent,
    MessageStatus::Undelivered,
    MessageStatus::Failed,
    MessageStatus::Delivered,
    MessageStatus::Read,
];

fn number<T: PartialEq>(table: &[T], value: &T) -> u8 {
    // Every variant is in its table (tested), and the tables are short.
    table.iter().position(|v| v == value).map_or(u8::MAX, |i| i as u8)
}

fn variant<T: Copy>(table: &[T], n: u8, what: &'static str) -> Result<T, CodecError> {
    table.get(usize::from(n)).copied().ok_or(CodecError::UnknownCode { kind: Message::KIND, field: what, code: n })
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Format 2 as written, borrowing the message.
#[derive(Serialize)]
struct Compact<'a> {
    i: &'a Uuid,
    c: &'a Uuid,
    s: u64,
    d: u8,
    a: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    u: Option<&'a Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    t: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    m: Option<&'a Uuid>,
    st: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    p: Option<&'a str>,
    at: Timestamp,
    #[serde(skip_serializing_if = "<[Attachment]>::is_empty")]
    ma: &'a [Attachment],
    #[serde(skip_serializing_if = "Option::is_none")]
    ec: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    em: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    su: Option<Timestamp>,
    #[serde(skip_serializing_if = "is_false")]
    n: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    tp: Option<&'a Template>,
}

impl<'a> Compact<'a> {
    fn of(m: &'a Message) -> Compact<'a> {
        Compact {
            i: &m.id,
            c: &m.conversation_id,
            s: m.seq,
            d: number(&DIRECTIONS, &m.direction),
            a: number(&AUTHORS, &m.author.kind),
            u: m.author.id.as_ref(),
            t: m.text.as_deref(),
            m: m.media_id.as_ref(),
            st: number(&STATUSES, &m.status),
            p: m.provider_id.as_deref(),
            at: m.created_at,
            ma: &m.media,
            ec: m.error_code.as_deref(),
            em: m.error_message.as_deref(),
            su: m.status_updated_at,
            n: m.private,
            tp: m.template.as_ref(),
        }
    }
}

/// Format 2 as read.
#[derive(Deserialize)]
struct CompactOwned {
    i: Uuid,
    c: Uuid,
    s: u64,
    d: u8,
    a: u8,
    #[serde(default)]
    u: Option<Uuid>,
    #[serde(default)]
    t: Option<String>,
    #[serde(default)]
    m: Option<Uuid>,
    st: u8,
    #[serde(default)]
    p: Option<String>,
    at: Timestamp,
    #[serde(default)]
    ma: Vec<Attachment>,
    #[serde(default)]
    ec: Option<String>,
    #[serde(default)]
    em: Option<String>,
    #[serde(default)]
    su: Option<Timestamp>,
    #[serde(default)]
    n: bool,
    #[serde(default)]
    tp: Option<Template>,
}

impl CompactOwned {
    fn into_message(self) -> Result<Message, CodecError> {
        Ok(Message {
            id: self.i,
            conversation_id: self.c,
            seq: self.s,
            direction: variant(&DIRECTIONS, self.d, "direction")?,
            author: Author { kind: variant(&AUTHORS, self.a, "author")?, id: self.u },
            text: self.t,
            media_id: self.m,
            status: variant(&STATUSES, self.st, "status")?,
            provider_id: self.p,
            created_at: self.at,
            media: self.ma,
            error_code: self.ec,
            error_message: self.em,
            status_updated_at: self.su,
            private: self.n,
            template: self.tp,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{decode, version_of};
    use crate::model::MediaStatus;

    fn short() -> Message {
        let author = Author { kind: AuthorType::Customer, id: None };
        Message::text(
            Uuid::now_v7(),
            42,
            Direction::Inbound,
            author,
            MessageStatus::Received,
            "hola, ¿tienen envío a Puebla?",
            Timestamp(1_795_430_730_123),
        )
    }

    fn full() -> Message {
        let mut m = short();
        m.direction = Direction::Outbound;
        m.author = Author { kind: AuthorType::Agent, id: Some(Uuid::now_v7()) };
        m.media_id = Some(Uuid::now_v7());
        m.status = MessageStatus::Undelivered;
        m.provider_id = Some("SM0123456789abcdef0123456789abcdef".into());
        m.media = vec![Attachment {
            id: m.media_id.unwrap_or_default(),
            content_type: "image/png".into(),
            status: MediaStatus::Failed,
            error: Some("404".into()),
        }];
        m.error_code = Some("30003".into());
        m.error_message = Some("Unreachable destination handset".into());
        m.status_updated_at = Some(Timestamp(1_795_430_731_000));
        m.private = true;
        m.template =
            Some(Template { content_sid: format!("HX{}", "a".repeat(32)), variables: [("1".to_string(), "Ana".to_string())].into() });
        m
    }

    #[test]
    fn both_formats_round_trip_every_field() {
        for m in [short(), full()] {
            for f in [MessageFormat::Named, MessageFormat::Compact] {
                let bytes = encode(&m, f).unwrap();
                assert_eq!(version_of(&bytes), Some(f.version()));
                assert_eq!(decode::<Message>(&bytes).unwrap(), m, "{f:?}");
            }
        }
    }

    #[test]
    fn every_enum_value_has_a_number_and_comes_back() {
        let mut m = short();
        for d in DIRECTIONS {
            for a in AUTHORS {
                for s in MessageStatus::ALL {
                    (m.direction, m.author.kind, m.status) = (d, a, s);
                    assert_eq!(decode::<Message>(&encode(&m, MessageFormat::Compact).unwrap()).unwrap(), m);
                }
            }
        }
        assert_eq!(STATUSES.len(), MessageStatus::ALL.len());
        assert!(MessageStatus::ALL.iter().all(|s| STATUSES.contains(s)));
    }

    #[test]
    fn a_short_message_takes_little_over_half_the_bytes() {
        let m = short();
        let (named, compact) = (encode(&m, MessageFormat::Named).unwrap().len(), encode(&m, MessageFormat::Compact).unwrap().len());
        assert!(compact * 100 < named * 60, "format 2 is {compact} bytes, format 1 {named}");
    }

    #[test]
    fn an_unknown_number_is_a_typed_error() {
        let mut bytes = encode(&short(), MessageFormat::Compact).unwrap();
        // The direction's number follows its one-letter name `d`.
        let at = bytes.windows(2).position(|w| w == [0xA1, b'd']).unwrap() + 2;
        bytes[at] = 9;
        assert!(matches!(decode::<Message>(&bytes), Err(CodecError::UnknownCode { field: "direction", code: 9, .. })));
    }

    #[test]
    fn the_generic_encoder_still_writes_format_1() {
        let bytes = crate::codec::encode(&short()).unwrap();
        assert_eq!(version_of(&bytes), Some(1));
        assert!(bytes.windows(14).any(|w| w == b"conversationId"));
    }
}
