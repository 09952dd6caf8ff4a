use crate::batch::Batch;
use crate::codec::Record;
use crate::db::Db;
use crate::error::{CodecError, StoreError};
use crate::keys::Key;
use crate::maps::Map;
use crate::model::conversation::RatingKind;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Which responder answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    /// The built-in rules over the knowledge file (no network).
    Rules,
    /// An OpenAI-compatible chat completions endpoint, falling back to the rules.
    Openai,
}

impl Provider {
    /// The API name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Provider::Rules => "rules",
            Provider::Openai => "openai",
        }
    }
}

/// The bot's settings (`GET/PUT /api/v1/ai/config`), versioned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    pub updated_at: Timestamp,
    /// Who changed it (user id, or `default`).
    pub updated_by: String,
}

impl Default for AiConfig {
    fn default() -> Self {
        AiConfig {
            version: 0,
            enabled: true,
            auto_escalate: true,
            escalation_keywords: ["agente", "asesor", "humano", "persona real", "agent", "human", "representative"]
                .into_iter()
                .map(String::from)
                .collect(),
            confidence_threshold: 0.5,
            max_bot_turns: 5,
            provider: Provider::Rules,
            model: "gpt-4o-mini".into(),
            base_url: "https://api.openai.com/v1".into(),
            updated_at: Timestamp(0),
            updated_by: "default".into(),
        }
    }
}

impl Record for AiConfig {
    const KIND: &'static str = "ai_config";
}

const AI_CONFIG: &str = "ai_config";

/// The stored bot settings, or the defaults (version 0).
pub fn ai_config(db: &Db) -> Result<AiConfig, StoreError> {
    Ok(db.get(Map::Settings, Key::new().str(AI_CONFIG)?)?.unwrap_or_default())
}

/// Adds the write of `config` to `batch`.
pub fn put_ai_config(batch: &mut Batch, config: &AiConfig) -> Result<(), CodecError> {
    batch.put(Map::Settings, Key::new().str(AI_CONFIG)?, config)?;
    Ok(())
}

/// How a bot run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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

/// One bot answer: the source of the bot response time KPI.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    pub received_at: Timestamp,
    /// When the run finished.
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

impl Record for BotRun {
    const KIND: &'static str = "bot_run";
}

/// Adds the write of `run` to `batch`.
pub fn put_run(batch: &mut Batch, run: &BotRun) -> Result<(), CodecError> {
    // Stamped as it is written: it falls in the rollups' recent hours, no mark needed.
    batch.put(Map::BotRuns, Key::new().i64(run.finished_at.millis()).uuid(run.id), run)?;
    Ok(())
}

/// Bot runs finished at or after `from`, oldest first, at most `limit`.
pub fn runs_since(db: &Db, from: Timestamp, limit: usize) -> Result<Vec<BotRun>, StoreError> {
    runs_from(db, Key::new().i64(from.millis()).into_bytes(), limit)
}

/// Bot runs after the run `after` (its finish and id, from the previous page), oldest first.
pub fn runs_after(db: &Db, after: (Timestamp, Uuid), limit: usize) -> Result<Vec<BotRun>, StoreError> {
    runs_from(db, Key::new().i64(after.0.millis()).uuid(after.1).u8(0).into_bytes(), limit)
}

fn runs_from(db: &Db, start: Vec<u8>, limit: usize) -> Result<Vec<BotRun>, StoreError> {
    Ok(db.scan::<BotRun>(Map::BotRuns, &[], &start, limit)?.into_iter().map(|(_, r)| r).collect())
}

/// Why a conversation went to people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EscalationReason {
    /// An escalation keyword.
    Keyword,
    /// The customer asked for a person.
    Explicit,
    /// The bot was not confident enough.
    LowConfidence,
    /// The bot answered `maxBotTurns` times.
    MaxTurns,
    /// Staff escalated it (`POST /conversations/{id}/escalate`).
    Manual,
}

/// One escalation with its timestamps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Escalation {
    /// Id.
    pub id: Uuid,
    /// Conversation.
    pub conversation_id: Uuid,
    /// Why.
    pub reason: EscalationReason,
    /// The keyword, phrase or note.
    pub detail: Option<String>,
    /// Staff user who escalated, for manual escalations.
    pub by: Option<Uuid>,
    /// When the conversation (or, after a reopen, its current contact) started: time to escalation counts from it.
    pub conversation_created_at: Timestamp,
    /// When it was escalated.
    pub escalated_at: Timestamp,
    /// The last seq stored before the escalation: no bot message follows it.
    pub after_seq: u64,
}

impl Record for Escalation {
    const KIND: &'static str = "escalation";
}

/// Adds the write of `e` to `batch`.
pub fn put_escalation(batch: &mut Batch, e: &Escalation) -> Result<(), CodecError> {
    batch.put(Map::Escalations, Key::new().i64(e.escalated_at.millis()).uuid(e.id), e)?;
    crate::model::kpi::touch(batch, e.escalated_at);
    Ok(())
}

/// Escalations at or after `from`, oldest first, at most `limit`.
pub fn escalations_since(db: &Db, from: Timestamp, limit: usize) -> Result<Vec<Escalation>, StoreError> {
    let start = Key::new().i64(from.millis()).into_bytes();
    Ok(db.scan::<Escalation>(Map::Escalations, &[], &start, limit)?.into_iter().map(|(_, r)| r).collect())
}

/// Where a rating came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RatingSource {
    /// A reply to the question in the chat (WhatsApp or widget message).
    Reply,
    /// The widget's `conversation:rate` event.
    Widget,
    /// `POST /conversations/{id}/rating`.
    Api,
}

/// A rating given for a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rating {
    /// Conversation.
    pub conversation_id: Uuid,
    /// CSAT or NPS.
    pub kind: RatingKind,
    /// The score.
    pub score: u8,
    /// Where it came from.
    pub source: RatingSource,
    /// When.
    pub at: Timestamp,
    /// The agent the conversation was assigned to when it was rated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<Uuid>,
}

impl Record for Rating {
    const KIND: &'static str = "rating";
}

/// Adds the write of `r` to `batch`.
pub fn put_rating(batch: &mut Batch, r: &Rating) -> Result<(), CodecError> {
    let kind = match r.kind {
        RatingKind::Csat => 1,
        RatingKind::Nps => 2,
    };
    batch.put(Map::Ratings, Key::new().i64(r.at.millis()).uuid(r.conversation_id).u8(kind), r)?;
    crate::model::kpi::touch(batch, r.at);
    Ok(())
}
