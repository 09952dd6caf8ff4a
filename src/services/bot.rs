//! The bot's settings, versioned and audited, and its runs.

use super::ServiceError;
use utalk_actors::Journal;
use utalk_storage::model::{bot, AiConfig, BotRun, Provider};
use utalk_storage::{Db, Timestamp};
use uuid::Uuid;

/// New settings, replacing `version`.
pub struct SettingsChange {
    /// The version these settings replace.
    pub version: u64,
    /// Whether the bot answers.
    pub enabled: bool,
    /// Escalate on low confidence and after `max_bot_turns`.
    pub auto_escalate: bool,
    /// Escalation words or phrases.
    pub escalation_keywords: Vec<String>,
    /// 0..1.
    pub confidence_threshold: f64,
    /// 1..100.
    pub max_bot_turns: u32,
    /// Who answers.
    pub provider: Provider,
    /// Model name.
    pub model: String,
    /// The provider's base URL.
    pub base_url: String,
}

/// Why new settings were not stored.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// Another writer changed them first.
    #[error("{0}")]
    VersionConflict(String),
    /// Reading or writing failed.
    #[error(transparent)]
    Service(#[from] ServiceError),
}

/// Stores new settings by `user` when they replace the current version:
/// `lock` serialises the check and the write on this node, and the log takes
/// each version once cluster-wide.
pub async fn change_settings(
    db: &Db,
    journal: &Journal,
    lock: &tokio::sync::Mutex<()>,
    user: Uuid,
    change: SettingsChange,
) -> Result<AiConfig, SettingsError> {
    let _guard = lock.lock().await;
    let current = bot::ai_config(db).map_err(ServiceError::from)?;
    if change.version != current.version {
        return Err(SettingsError::VersionConflict(format!(
            "the settings are at version {}, not {}; read them again",
            current.version, change.version
        )));
    }
    let new = AiConfig {
        version: current.version + 1,
        enabled: change.enabled,
        auto_escalate: change.auto_escalate,
        escalation_keywords: change.escalation_keywords.into_iter().map(|k| k.trim().to_string()).collect(),
        confidence_threshold: change.confidence_threshold,
        max_bot_turns: change.max_bot_turns,
        provider: change.provider,
        model: change.model,
        base_url: change.base_url,
        updated_at: Timestamp::now(),
        updated_by: user.to_string(),
    };
    if !super::records::save_bot_settings(journal, user, &new).await? {
        return Err(SettingsError::VersionConflict(format!("version {} was just written by another node; read them again", new.version)));
    }
    Ok(new)
}

/// Bot runs finished at or after `since`, oldest first.
pub fn runs(db: &Db, since: Timestamp, limit: usize) -> Result<Vec<BotRun>, ServiceError> {
    Ok(bot::runs_since(db, since, limit)?)
}
