//! API views of the bot records: the shape REST and the socket show, kept apart
//! from the disk records so a rename here cannot change what is stored.

use serde::{Deserialize, Serialize};
use utalk_storage::model::bot as storage;
use utalk_storage::Timestamp;
use utoipa::ToSchema;
use uuid::Uuid;

/// Which responder answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    /// The built-in rules over the knowledge file (no network).
    Rules,
    /// An OpenAI-compatible chat completions endpoint, falling back to the rules.
    Openai,
}

impl From<storage::Provider> for Provider {
    fn from(r: storage::Provider) -> Self {
        match r {
            storage::Provider::Rules => Provider::Rules,
            storage::Provider::Openai => Provider::Openai,
        }
    }
}

/// The bot's settings (`GET/PUT /api/v1/ai/config`), versioned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AiConfig {
    /// Incremented by every change; a PUT names the version it replaces.
    pub version: u64,
    /// Whether the bot answers at all.
    pub enabled: bool,
    /// Escalate on low confidence and after `maxBotTurns`.
    pub auto_escalate: bool,
    /// Words or phrases that hand the conversation to people at once.
    pub escalation_keywords: Vec<String>,
    /// Answers below this confidence (0..1) escalate when `autoEscalate`.
    pub confidence_threshold: f64,
    /// Bot answers per conversation before escalation when `autoEscalate`.
    pub max_bot_turns: u32,
    /// `rules` or `openai`.
    pub provider: Provider,
    /// Model name for `openai`.
    pub model: String,
    /// Base URL of the OpenAI-compatible API (`…/v1`).
    pub base_url: String,
    /// When it last changed.
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
    /// Who changed it (user id, or `default`).
    pub updated_by: String,
}

impl From<storage::AiConfig> for AiConfig {
    fn from(r: storage::AiConfig) -> Self {
        Self {
            version: r.version,
            enabled: r.enabled,
            auto_escalate: r.auto_escalate,
            escalation_keywords: r.escalation_keywords,
            confidence_threshold: r.confidence_threshold,
            max_bot_turns: r.max_bot_turns,
            provider: r.provider.into(),
            model: r.model,
            base_url: r.base_url,
            updated_at: r.updated_at,
            updated_by: r.updated_by,
        }
    }
}

/// How a bot run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BotOutcome {
    /// The bot answered.
    Answered,
    /// The bot handed the conversation to people instead.
    Escalated,
    /// The conversation was escalated (or the bot paused) before the answer could be stored; nothing was sent.
    Paused,
    /// The answer could not be stored.
    Failed,
}

impl From<storage::BotOutcome> for BotOutcome {
    fn from(r: storage::BotOutcome) -> Self {
        match r {
            storage::BotOutcome::Answered => BotOutcome::Answered,
            storage::BotOutcome::Escalated => BotOutcome::Escalated,
            storage::BotOutcome::Paused => BotOutcome::Paused,
            storage::BotOutcome::Failed => BotOutcome::Failed,
        }
    }
}

/// One bot answer: the source of the bot response time KPI.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BotRun {
    /// Id.
    pub id: Uuid,
    /// Conversation.
    pub conversation_id: Uuid,
    /// The customer message answered.
    pub message_id: Uuid,
    /// The bot's message, when one was stored.
    pub reply_id: Option<Uuid>,
    /// When the customer message was stored.
    #[schema(value_type = String, format = DateTime)]
    pub received_at: Timestamp,
    /// When the run finished.
    #[schema(value_type = String, format = DateTime)]
    pub finished_at: Timestamp,
    /// From the customer message being stored to the answer being stored, ms.
    pub latency_ms: u64,
    /// Recognised intent.
    pub intent: String,
    /// Confidence, 0..1.
    pub confidence: f64,
    /// Who answered: `rules`, `openai`, or `rules_fallback` when the model failed.
    pub provider: String,
    /// Outcome.
    pub outcome: BotOutcome,
    /// Why it escalated, when it did.
    pub escalation_reason: Option<String>,
}

impl From<storage::BotRun> for BotRun {
    fn from(r: storage::BotRun) -> Self {
        Self {
            id: r.id,
            conversation_id: r.conversation_id,
            message_id: r.message_id,
            reply_id: r.reply_id,
            received_at: r.received_at,
            finished_at: r.finished_at,
            latency_ms: r.latency_ms,
            intent: r.intent,
            confidence: r.confidence,
            provider: r.provider,
            outcome: r.outcome.into(),
            escalation_reason: r.escalation_reason,
        }
    }
}

impl From<Provider> for storage::Provider {
    fn from(v: Provider) -> Self {
        match v {
            Provider::Rules => storage::Provider::Rules,
            Provider::Openai => storage::Provider::Openai,
        }
    }
}
