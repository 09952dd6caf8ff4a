//! API views of the conversation records: the shape REST and the socket show, kept apart
//! from the disk records so a rename here cannot change what is stored.

use serde::{Deserialize, Serialize};
use utalk_storage::model::conversation as storage;
use utalk_storage::Timestamp;
use utoipa::ToSchema;
use uuid::Uuid;

/// Where the customer writes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// The web chat widget.
    Web,
    /// WhatsApp through Twilio.
    Whatsapp,
    /// Created by an integrator over REST.
    Api,
}

impl From<storage::Channel> for Channel {
    fn from(r: storage::Channel) -> Self {
        match r {
            storage::Channel::Web => Channel::Web,
            storage::Channel::Whatsapp => Channel::Whatsapp,
            storage::Channel::Api => Channel::Api,
        }
    }
}

/// Lifecycle of a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConversationStatus {
    /// The bot or an agent is answering.
    Open,
    /// Handed to people; the bot is paused.
    Escalated,
    /// Finished.
    Closed,
}

impl From<storage::ConversationStatus> for ConversationStatus {
    fn from(r: storage::ConversationStatus) -> Self {
        match r {
            storage::ConversationStatus::Open => ConversationStatus::Open,
            storage::ConversationStatus::Escalated => ConversationStatus::Escalated,
            storage::ConversationStatus::Closed => ConversationStatus::Closed,
        }
    }
}

/// Who the customer is, as far as we know.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Customer {
    /// Name.
    pub name: Option<String>,
    /// Phone (E.164 for WhatsApp).
    pub phone: Option<String>,
    /// Email.
    pub email: Option<String>,
    /// The integrator's id for the customer: an `api` conversation's contact is found by it.
    #[serde(default, rename = "externalId", skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
}

impl From<storage::Customer> for Customer {
    fn from(r: storage::Customer) -> Self {
        Self { name: r.name, phone: r.phone, email: r.email, external_id: r.external_id }
    }
}

/// A conversation's stored state (its messages are stored apart).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Conversation {
    /// Id (UUIDv7: keys sort by creation time).
    pub id: Uuid,
    /// Channel.
    pub channel: Channel,
    /// Status.
    pub status: ConversationStatus,
    /// Whether the bot answers.
    pub bot_enabled: bool,
    /// Assigned agent.
    pub assignee_id: Option<Uuid>,
    /// Customer.
    pub customer: Customer,
    /// Subject line.
    pub subject: Option<String>,
    /// Created.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// Last change of the conversation's own fields.
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
    /// Bot answers so far (escalation after `maxBotTurns`).
    #[serde(default)]
    pub bot_turns: u32,
    /// When it was (last) escalated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub escalated_at: Option<Timestamp>,
    /// When an agent first answered (agent answer speed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub first_agent_reply_at: Option<Timestamp>,
    /// When it was closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub closed_at: Option<Timestamp>,
    /// How it was resolved, given at close.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<String>,
    /// Whether it was resolved at first contact (closed without a reopen).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_contact_resolution: Option<bool>,
    /// Times a customer message reopened it after a close.
    #[serde(default)]
    pub reopened: u32,
    /// Customer satisfaction, 1–5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csat: Option<u8>,
    /// Net promoter answer, 0–10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nps: Option<u8>,
    /// The rating question the customer was last asked and has not answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub awaiting_rating: Option<RatingKind>,
    /// When the current contact started, if the conversation was reopened (time to escalation counts from it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub contact_started_at: Option<Timestamp>,
    /// The first contact's figures, kept when a reopen starts the next one (the KPIs count the first contact).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_contact: Option<FirstContact>,
    /// Staff's labels, sorted (each 1–32 of `a-z 0-9 _ -`, at most 10).
    #[serde(default)]
    pub labels: Vec<String>,
    /// The customer's contact (`GET /api/v1/contacts/{id}`); `customer` carries its fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_id: Option<Uuid>,
    /// On WhatsApp: whether free-form replies may be sent now, and until when;
    /// once closed, only a template (left out on other channels).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub whatsapp_window: Option<WhatsappWindow>,
}

/// WhatsApp's 24-hour customer service window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WhatsappWindow {
    /// Free-form messages may be sent now; else only a template.
    pub open: bool,
    /// 24 hours after the customer's last message; null when they never wrote.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub until: Option<Timestamp>,
}

impl From<storage::Conversation> for Conversation {
    fn from(r: storage::Conversation) -> Self {
        // As of when the view is made: the window closes by itself, with no write.
        let whatsapp_window = (r.channel == storage::Channel::Whatsapp)
            .then(|| WhatsappWindow { open: r.whatsapp_window_open(Timestamp::now()), until: r.whatsapp_window_until() });
        Self {
            id: r.id,
            channel: r.channel.into(),
            status: r.status.into(),
            bot_enabled: r.bot_enabled,
            assignee_id: r.assignee_id,
            customer: r.customer.into(),
            subject: r.subject,
            created_at: r.created_at,
            updated_at: r.updated_at,
            bot_turns: r.bot_turns,
            escalated_at: r.escalated_at,
            first_agent_reply_at: r.first_agent_reply_at,
            closed_at: r.closed_at,
            resolution: r.resolution,
            first_contact_resolution: r.first_contact_resolution,
            reopened: r.reopened,
            csat: r.csat,
            nps: r.nps,
            awaiting_rating: r.awaiting_rating.map(Into::into),
            contact_started_at: r.contact_started_at,
            first_contact: r.first_contact.map(Into::into),
            labels: r.labels,
            contact_id: r.contact_id,
            whatsapp_window,
        }
    }
}

/// What the KPIs count of a conversation's first contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FirstContact {
    /// It was escalated to people.
    pub escalated: bool,
    /// From escalation (or the start, without one) to the first agent reply, ms.
    pub answer_wait_ms: Option<u64>,
    /// The agent assigned.
    pub agent_id: Option<Uuid>,
}

impl From<storage::FirstContact> for FirstContact {
    fn from(r: storage::FirstContact) -> Self {
        Self { escalated: r.escalated, answer_wait_ms: r.answer_wait_ms, agent_id: r.agent_id }
    }
}

/// Which rating question is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RatingKind {
    /// Satisfaction, 1–5.
    Csat,
    /// Recommendation, 0–10.
    Nps,
}

impl From<storage::RatingKind> for RatingKind {
    fn from(r: storage::RatingKind) -> Self {
        match r {
            storage::RatingKind::Csat => RatingKind::Csat,
            storage::RatingKind::Nps => RatingKind::Nps,
        }
    }
}

impl From<Channel> for storage::Channel {
    fn from(v: Channel) -> Self {
        match v {
            Channel::Web => storage::Channel::Web,
            Channel::Whatsapp => storage::Channel::Whatsapp,
            Channel::Api => storage::Channel::Api,
        }
    }
}

impl From<ConversationStatus> for storage::ConversationStatus {
    fn from(v: ConversationStatus) -> Self {
        match v {
            ConversationStatus::Open => storage::ConversationStatus::Open,
            ConversationStatus::Escalated => storage::ConversationStatus::Escalated,
            ConversationStatus::Closed => storage::ConversationStatus::Closed,
        }
    }
}

impl From<Customer> for storage::Customer {
    fn from(v: Customer) -> Self {
        Self { name: v.name, phone: v.phone, email: v.email, external_id: v.external_id }
    }
}
