//! API views of the message records: the shape REST and the socket show, kept apart
//! from the disk records so a rename here cannot change what is stored.

use serde::{Deserialize, Serialize};
use utalk_storage::model::message as storage;
use utalk_storage::Timestamp;
use utoipa::ToSchema;
use uuid::Uuid;

/// Which way a message travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// From the customer.
    Inbound,
    /// To the customer.
    Outbound,
}

impl From<storage::Direction> for Direction {
    fn from(r: storage::Direction) -> Self {
        match r {
            storage::Direction::Inbound => Direction::Inbound,
            storage::Direction::Outbound => Direction::Outbound,
        }
    }
}

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
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

impl From<storage::AuthorType> for AuthorType {
    fn from(r: storage::AuthorType) -> Self {
        match r {
            storage::AuthorType::Customer => AuthorType::Customer,
            storage::AuthorType::Agent => AuthorType::Agent,
            storage::AuthorType::Bot => AuthorType::Bot,
            storage::AuthorType::System => AuthorType::System,
        }
    }
}

/// Author of a message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Author {
    /// Kind of author.
    #[serde(rename = "type")]
    pub kind: AuthorType,
    /// User id for agents; none for customers, the bot and the system.
    pub id: Option<Uuid>,
}

impl From<storage::Author> for Author {
    fn from(r: storage::Author) -> Self {
        Self { kind: r.kind.into(), id: r.id }
    }
}

/// Where a message is on its way.
///
/// Outbound channel messages move forward through [`MessageStatus::rank`]:
/// a callback that arrives late never moves a status backwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
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

impl From<storage::MessageStatus> for MessageStatus {
    fn from(r: storage::MessageStatus) -> Self {
        match r {
            storage::MessageStatus::Received => MessageStatus::Received,
            storage::MessageStatus::NotConfigured => MessageStatus::NotConfigured,
            storage::MessageStatus::Queued => MessageStatus::Queued,
            storage::MessageStatus::Sending => MessageStatus::Sending,
            storage::MessageStatus::Sent => MessageStatus::Sent,
            storage::MessageStatus::Undelivered => MessageStatus::Undelivered,
            storage::MessageStatus::Failed => MessageStatus::Failed,
            storage::MessageStatus::Delivered => MessageStatus::Delivered,
            storage::MessageStatus::Read => MessageStatus::Read,
        }
    }
}

/// Where a message's media file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MediaStatus {
    /// Announced by the channel, not downloaded yet.
    Pending,
    /// In the media store.
    Stored,
    /// Could not be downloaded or was refused (size, type); see `error`.
    Failed,
}

impl From<storage::MediaStatus> for MediaStatus {
    fn from(r: storage::MediaStatus) -> Self {
        match r {
            storage::MediaStatus::Pending => MediaStatus::Pending,
            storage::MediaStatus::Stored => MediaStatus::Stored,
            storage::MediaStatus::Failed => MediaStatus::Failed,
        }
    }
}

/// A media file attached to a message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
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

impl From<storage::Attachment> for Attachment {
    fn from(r: storage::Attachment) -> Self {
        Self { id: r.id, content_type: r.content_type, status: r.status.into(), error: r.error }
    }
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
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
    #[schema(value_type = Option<String>, format = DateTime)]
    pub status_updated_at: Option<Timestamp>,
    /// A private note: shown to staff only, never sent to the customer, a channel or the bot (left out when false).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub private: bool,
    /// The WhatsApp template it was sent as (left out when none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<Template>,
}

/// A WhatsApp template approved at Twilio.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Template {
    /// Twilio's `ContentSid`.
    pub content_sid: String,
    /// The numbered variables' values (`{"1": "Ana"}`).
    #[serde(default)]
    pub variables: std::collections::BTreeMap<String, String>,
}

impl From<Template> for storage::Template {
    fn from(t: Template) -> Self {
        Self { content_sid: t.content_sid, variables: t.variables }
    }
}

impl From<storage::Message> for Message {
    fn from(r: storage::Message) -> Self {
        Self {
            id: r.id,
            conversation_id: r.conversation_id,
            seq: r.seq,
            direction: r.direction.into(),
            author: r.author.into(),
            text: r.text,
            media_id: r.media_id,
            status: r.status.into(),
            provider_id: r.provider_id,
            created_at: r.created_at,
            media: r.media.into_iter().map(Into::into).collect(),
            error_code: r.error_code,
            error_message: r.error_message,
            status_updated_at: r.status_updated_at,
            private: r.private,
            template: r.template.map(|t| Template { content_sid: t.content_sid, variables: t.variables }),
        }
    }
}
