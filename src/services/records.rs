//! Writes of single records that a route decides on: audit events, feature
//! flags, the bot's settings, new conversations. Each is one batch through
//! the journal, with its audit event when it has one, so the record and its
//! audit land together.

use super::ServiceError;
use utalk_actors::{Journal, Registry};
use utalk_storage::model::flag::{self, Flag};
use utalk_storage::model::{bot, AiConfig, AuditEvent, Conversation};
use utalk_storage::Batch;
use uuid::Uuid;

/// Records that `actor` did `action` to `target`.
pub async fn audit(journal: &Journal, actor: Uuid, action: &str, target: String) -> Result<(), ServiceError> {
    let mut b = Batch::new();
    AuditEvent::new(actor.to_string(), action, target).add_to(&mut b)?;
    Ok(journal.commit(b).await?)
}

/// Stores a new version of a feature flag, changed by `actor`.
pub async fn save_flag(journal: &Journal, actor: Uuid, f: &Flag) -> Result<(), ServiceError> {
    let mut b = Batch::new();
    flag::put(&mut b, f)?;
    let what = format!("{} v{} enabled={} percent={}", f.name, f.version, f.enabled, f.percent);
    AuditEvent::new(actor.to_string(), "flag.update", what).add_to(&mut b)?;
    Ok(journal.commit(b).await?)
}

/// Stores a new version of the bot's settings, changed by `actor`: `false`
/// when another node wrote that version first (each is taken once
/// cluster-wide, so a node that read an older copy loses).
pub async fn save_bot_settings(journal: &Journal, actor: Uuid, config: &AiConfig) -> Result<bool, ServiceError> {
    let mut b = Batch::new();
    bot::put_ai_config(&mut b, config)?;
    AuditEvent::new(actor.to_string(), "ai_config.update", format!("version {}", config.version)).add_to(&mut b)?;
    Ok(journal.commit_first("ai_config_version", &config.version.to_string(), b).await?)
}

/// Stores a new conversation (and its `conversation.created` webhooks), and
/// tells staff of it (`conversation:new`) once stored.
pub async fn create_conversation(registry: &Registry, c: &Conversation) -> Result<(), ServiceError> {
    Ok(registry.journal().commit_conversation(c.id, registry.creation_batch(c)?, registry.creation_events(c)).await?)
}
