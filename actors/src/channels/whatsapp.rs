//! Inbound WhatsApp: from the parameters of Twilio's webhook to a stored message.

use crate::channels::media_fetch::MediaFetcher;
pub use crate::channels::twilio_form::{normalize_phone, InboundMessage, MAX_MEDIA};
use crate::Registry;
use crate::{AppendRequest, Appended};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use utalk_storage::model::{
    conversation, media, Attachment, Author, AuthorType, Channel, Conversation, Customer, Direction, MediaFetch, MediaRecord, MediaSource,
    MediaStatus, MessageStatus,
};
use utalk_storage::{Batch, Db, Timestamp};
use uuid::Uuid;

/// Namespace of the ids derived from Twilio's sids, so a redelivery maps to the same id.
const SID_NAMESPACE: Uuid = Uuid::from_u128(0x6f1c_2d6e_8a4b_4f0e_9d3c_7b51_a2e4_c901);

/// The message id of Twilio message `sid`.
pub fn message_id(sid: &str) -> Uuid {
    Uuid::new_v5(&SID_NAMESPACE, format!("twilio:{sid}").as_bytes())
}

/// The media id of item `index` of Twilio message `sid`.
pub fn media_id(sid: &str, index: usize) -> Uuid {
    Uuid::new_v5(&SID_NAMESPACE, format!("twilio:{sid}/media/{index}").as_bytes())
}

/// Why inbound WhatsApp could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum InboundError {
    /// A WhatsApp conversation is opened only for a phone number.
    #[error("a WhatsApp conversation needs customer.phone, digits with an optional leading +")]
    NoPhone,
    /// Reading the store failed.
    #[error(transparent)]
    Store(#[from] utalk_storage::StoreError),
    /// A record could not be encoded.
    #[error(transparent)]
    Codec(#[from] utalk_storage::CodecError),
    /// The journal did not take a write.
    #[error(transparent)]
    Journal(#[from] crate::durability::JournalError),
    /// The conversation refused the message.
    #[error(transparent)]
    Conversation(#[from] crate::ConversationError),
    /// The cluster could not settle the number's conversation.
    #[error(transparent)]
    Cluster(#[from] crate::cluster::ClusterError),
    /// The number's contact could not be found or made.
    #[error(transparent)]
    Contact(#[from] crate::contacts::ContactError),
}

/// Inbound WhatsApp: the conversations of numbers, and the messages stored
/// in them. Its locks make "find or open the number's conversation" happen
/// once per number on this node.
pub struct Inbound {
    locks: Vec<tokio::sync::Mutex<()>>,
    db: Db,
    registry: Registry,
    fetcher: Arc<MediaFetcher>,
}

impl Inbound {
    /// Inbound WhatsApp reading `db`, writing through `registry`, and
    /// waking `fetcher` when a message brings media to download.
    pub fn new(db: Db, registry: Registry, fetcher: Arc<MediaFetcher>) -> Inbound {
        Inbound { locks: (0..64).map(|_| tokio::sync::Mutex::new(())).collect(), db, registry, fetcher }
    }

    fn lock(&self, phone: &str) -> &tokio::sync::Mutex<()> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        phone.hash(&mut h);
        &self.locks[(h.finish() % self.locks.len() as u64) as usize]
    }

    /// The conversation of `phone`: its latest one, or a new one.
    pub async fn conversation_for(&self, phone: &str, name: Option<&str>) -> Result<Uuid, InboundError> {
        if let Some(id) = conversation::by_phone(&self.db, Channel::Whatsapp, phone)? {
            if conversation::get(&self.db, id)?.is_some() {
                return Ok(id);
            }
        }
        let _guard = self.lock(phone).lock().await;
        let customer = || Customer { name: name.map(str::to_owned), phone: Some(phone.to_owned()), ..Customer::default() };
        claimed(self, phone, customer, None, false).await.map(|c| c.id)
    }

    /// Opens a new WhatsApp conversation for `customer` (whose phone is
    /// normalized) over REST; it becomes the number's latest, which the
    /// customer's replies reach.
    pub async fn open(&self, mut customer: Customer, subject: Option<String>) -> Result<Conversation, InboundError> {
        let phone = customer.phone.as_deref().and_then(normalize_phone).ok_or(InboundError::NoPhone)?;
        customer.phone = Some(phone.clone());
        let _guard = self.lock(&phone).lock().await;
        claimed(self, &phone, || customer.clone(), subject, true).await
    }

    /// Stores `msg` durably in its number's conversation; a redelivery returns the stored message.
    pub async fn store(&self, msg: InboundMessage) -> Result<Appended, InboundError> {
        let conv = self.conversation_for(&msg.phone, msg.profile_name.as_deref()).await?;
        let message_id = message_id(&msg.sid);
        let now = Timestamp::now();
        let mut extra = Batch::new();
        let mut attachments = Vec::with_capacity(msg.media.len());
        for (i, (url, content_type)) in msg.media.iter().enumerate() {
            let id = media_id(&msg.sid, i);
            attachments.push(Attachment { id, content_type: content_type.clone(), status: MediaStatus::Pending, error: None });
            media::put(
                &mut extra,
                &MediaRecord {
                    id,
                    content_type: content_type.clone(),
                    size: 0,
                    sha256: String::new(),
                    status: MediaStatus::Pending,
                    error: None,
                    source: MediaSource::Channel,
                    conversation_id: Some(conv),
                    message_id: Some(message_id),
                    uploaded_by: None,
                    created_at: now,
                },
            )?;
            media::put_fetch(
                &mut extra,
                &MediaFetch {
                    media_id: id,
                    conversation_id: conv,
                    message_id,
                    url: url.clone(),
                    content_type: content_type.clone(),
                    attempts: 0,
                    next_attempt_at: now,
                    last_error: None,
                },
            )?;
        }
        let req = AppendRequest {
            message_id,
            author: Author { kind: AuthorType::Customer, id: None },
            direction: Direction::Inbound,
            text: msg.text,
            media_id: attachments.first().map(|a| a.id),
            status: MessageStatus::Received,
            provider_id: Some(msg.sid),
            media: attachments,
            extra,
            private: false,
            template: None,
        };
        let appended = self.registry.call(conv, req).await?;
        if matches!(appended, Appended::Created(_)) && !appended.message().media.is_empty() {
            self.fetcher.signal().notify();
        }
        Ok(appended)
    }
}

/// The number's conversation as every node sees it: nodes claim a number's
/// next conversation by a fenced append to the number's own log subject, so
/// two first messages reaching two nodes at once open one conversation (on
/// one node the per-number lock already makes them one). The claim goes first and the conversation's record second;
/// a claim whose record is missing (its node died in between) gets its
/// record from whichever node finds it so. `fresh` opens a new conversation
/// even when the number has one (REST's open).
async fn claimed(
    inbound: &Inbound,
    phone: &str,
    customer: impl Fn() -> Customer,
    subject: Option<String>,
    fresh: bool,
) -> Result<Conversation, InboundError> {
    let journal = inbound.registry.journal();
    let claims = crate::durability::unique_subject("whatsapp_number", phone);
    for _ in 0..20 {
        let expected = journal.sync_subject(&claims).await?;
        let known = conversation::by_phone(&inbound.db, Channel::Whatsapp, phone)?;
        let id = match known {
            Some(id) if !fresh => id,
            _ => {
                let id = Uuid::now_v7();
                let mut claim = Batch::new();
                conversation::put_phone(&mut claim, Channel::Whatsapp, phone, id)?;
                if !journal.commit_fenced(&claims, expected, claim).await? {
                    // Another node claimed the number meanwhile: take its conversation.
                    continue;
                }
                id
            }
        };
        journal.sync_subject(&crate::cluster::log_subject(crate::cluster::EntityKind::Conversation, id)).await?;
        if let Some(c) = conversation::get(&inbound.db, id)? {
            return Ok(c);
        }
        let mut c = Conversation::new(Channel::Whatsapp, customer(), subject.clone());
        c.id = id;
        // The number's contact (made with the first conversation); the
        // conversation keeps talking to this number whatever the contact says.
        let contact = crate::contacts::resolve(&inbound.db, journal, &c.customer).await?;
        c.contact_id = Some(contact.id);
        c.customer = Customer { phone: c.customer.phone.clone(), ..crate::contacts::customer_of(&contact) };
        if journal.create_conversation_once(id, inbound.registry.creation_batch(&c)?, inbound.registry.creation_events(&c)).await? {
            crate::conversation::count_opened(Channel::Whatsapp);
            tracing::info!(conversation = %c.id, "opened a WhatsApp conversation");
            return Ok(c);
        }
        // Its record was written meanwhile by another node: read it on the next turn.
    }
    Err(crate::cluster::ClusterError::Unavailable("the number's conversation kept changing; retry".into()).into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conversation::MAX_TEXT_CHARS;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn reads_text_sender_and_media() {
        let m = InboundMessage::parse(
            &params(&[
                ("MessageSid", "SM1"),
                ("From", "whatsapp:+5215512345678"),
                ("Body", "hola"),
                ("ProfileName", "Ana"),
                ("NumMedia", "2"),
                ("MediaUrl0", "https://api.twilio.com/m0"),
                ("MediaContentType0", "image/jpeg"),
                ("MediaUrl1", "https://api.twilio.com/m1"),
            ]),
            MAX_TEXT_CHARS,
        )
        .unwrap();
        assert_eq!(m.phone, "+5215512345678");
        assert_eq!(m.text.as_deref(), Some("hola"));
        assert_eq!(m.profile_name.as_deref(), Some("Ana"));
        assert_eq!(m.media.len(), 2);
        assert_eq!(m.media[1].1, "application/octet-stream");
    }

    #[test]
    fn a_location_becomes_text_and_ids_are_stable() {
        let m = InboundMessage::parse(
            &params(&[("MessageSid", "SM2"), ("From", "whatsapp:+1555"), ("Latitude", "19.43"), ("Longitude", "-99.13")]),
            MAX_TEXT_CHARS,
        )
        .unwrap();
        assert_eq!(m.text.as_deref(), Some("Location: 19.43, -99.13"));
        assert_eq!(message_id("SM2"), message_id("SM2"));
        assert_ne!(message_id("SM2"), message_id("SM3"));
        assert_ne!(media_id("SM2", 0), media_id("SM2", 1));
    }

    #[test]
    fn bad_parameters_are_refused() {
        assert!(InboundMessage::parse(&params(&[("From", "whatsapp:+1555")]), MAX_TEXT_CHARS).is_err());
        assert!(InboundMessage::parse(&params(&[("MessageSid", "SM1"), ("From", "whatsapp:+15a5")]), MAX_TEXT_CHARS).is_err());
        assert!(InboundMessage::parse(&params(&[("MessageSid", "SM1")]), MAX_TEXT_CHARS).is_err());
        assert!(
            InboundMessage::parse(&params(&[("MessageSid", "SM1"), ("From", "+1555")]), MAX_TEXT_CHARS).is_err(),
            "SMS is not WhatsApp"
        );
        assert_eq!(normalize_phone(" 5215512345678 ").as_deref(), Some("+5215512345678"));
        assert_eq!(normalize_phone("+"), None);
    }
}
