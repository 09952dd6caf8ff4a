//! Writes of records that a route decides on: audit events, stores and
//! their refused transactions, feature flags, the bot's settings, uploaded
//! media, new conversations. Each is one batch through the journal, with its
//! audit event when it has one, so the record and its audit land together.

use super::ServiceError;
use utalk_actors::Journal;
use utalk_storage::model::flag::{self, Flag};
use utalk_storage::model::inventory::{self, Store, TxnError};
use utalk_storage::model::{bot, conversation, media, AiConfig, AuditEvent, Conversation, MediaRecord};
use utalk_storage::Batch;
use uuid::Uuid;

/// Records that `actor` did `action` to `target`.
pub async fn audit(journal: &Journal, actor: Uuid, action: &str, target: String) -> Result<(), ServiceError> {
    let mut b = Batch::new();
    AuditEvent::new(actor.to_string(), action, target).add_to(&mut b)?;
    Ok(journal.commit(b).await?)
}

/// Stores a new inventory store, created by `actor`.
pub async fn create_store(journal: &Journal, actor: Uuid, store: &Store) -> Result<(), ServiceError> {
    let mut b = Batch::new();
    inventory::put_store(&mut b, store)?;
    AuditEvent::new(actor.to_string(), "store.create", store.id.to_string()).add_to(&mut b)?;
    Ok(journal.commit(b).await?)
}

/// Keeps a refused stock transaction for the inventory report (through the
/// journal, so that in a cluster every node's report counts it).
pub async fn record_refusal(journal: &Journal, refused: &TxnError) -> Result<(), ServiceError> {
    let mut b = Batch::new();
    inventory::put_error(&mut b, refused)?;
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

/// Stores the record of an uploaded file, counted against its conversation's quota when it has one.
pub async fn record_upload(journal: &Journal, record: &MediaRecord) -> Result<(), ServiceError> {
    let mut b = Batch::new();
    media::put(&mut b, record)?;
    if let Some(c) = record.conversation_id {
        media::put_upload(&mut b, c, record.id, record.size);
    }
    Ok(journal.commit(b).await?)
}

/// Stores a new conversation.
pub async fn create_conversation(journal: &Journal, c: &Conversation) -> Result<(), ServiceError> {
    Ok(journal.commit_conversation(c.id, conversation::put_batch(None, c)?).await?)
}
