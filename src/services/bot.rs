//! The bot's settings, versioned and audited, and its runs.

use super::ServiceError;
use utalk_actors::Journal;
use utalk_storage::model::{bot, AiConfig, BotRun};
use utalk_storage::{Db, Timestamp};
use uuid::Uuid;

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

/// Stores `new` settings by `user` when they replace version `replaces`,
/// the current one: the version, time and author are set here. `lock`
/// serialises the check and the write on this node, and the log takes each
/// version once cluster-wide.
pub async fn change_settings(
    db: &Db,
    journal: &Journal,
    lock: &tokio::sync::Mutex<()>,
    user: Uuid,
    replaces: u64,
    mut new: AiConfig,
) -> Result<AiConfig, SettingsError> {
    let _guard = lock.lock().await;
    let current = bot::ai_config(db).map_err(ServiceError::from)?;
    if replaces != current.version {
        return Err(SettingsError::VersionConflict(format!(
            "the settings are at version {}, not {replaces}; read them again",
            current.version
        )));
    }
    new.version = current.version + 1;
    new.escalation_keywords = new.escalation_keywords.into_iter().map(|k| k.trim().to_string()).collect();
    new.updated_at = Timestamp::now();
    new.updated_by = user.to_string();
    if !super::records::save_bot_settings(journal, user, &new).await? {
        return Err(SettingsError::VersionConflict(format!("version {} was just written by another node; read them again", new.version)));
    }
    Ok(new)
}

/// Bot runs finished at or after `since`, oldest first.
pub fn runs(db: &Db, since: Timestamp, limit: usize) -> Result<Vec<BotRun>, ServiceError> {
    Ok(bot::runs_since(db, since, limit)?)
}

/// Bot runs after the run `after` (finish time and id), oldest first.
pub fn runs_after(db: &Db, after: (Timestamp, uuid::Uuid), limit: usize) -> Result<Vec<BotRun>, ServiceError> {
    Ok(bot::runs_after(db, after, limit)?)
}
