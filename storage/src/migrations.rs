//! Schema migrations: an ordered registry, run before the server serves.
//!
//! A database behind this build's [`SCHEMA_VERSION`] is backed up, then each
//! pending migration rewrites what it must and is validated, and the
//! version moves forward with it. If anything fails the database directory
//! is set aside and the backup restored in its place, so the server refuses
//! to start on a database exactly as it was before.

use crate::backup::Backups;
use crate::batch::Batch;
use crate::db::{Db, DbOptions, SCHEMA_VERSION};
use crate::error::StoreError;
use crate::maps::Map;
use crate::model::User;
use std::path::{Path, PathBuf};

/// One step of the schema.
pub struct Migration {
    /// The version it brings the database to.
    pub version: u32,
    /// What it changes.
    pub description: &'static str,
    /// The writes that upgrade the database (one batch, so a step is all or nothing).
    pub up: fn(&Db) -> Result<Batch, StepError>,
    /// Checks the result.
    pub validate: fn(&Db) -> Result<(), StepError>,
}

/// Why one migration step failed.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// Reading or writing the store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The migrated data does not pass the step's check.
    #[error("{0}")]
    Invalid(String),
}

/// Users gain preferences (language and time zone) with explicit defaults.
fn users_preferences_up(db: &Db) -> Result<Batch, StepError> {
    let mut b = Batch::new();
    for (k, u) in db.scan::<User>(Map::Users, &[], &[], usize::MAX)? {
        // Decoding fills the defaults; writing stores them explicitly.
        b.put_raw(Map::Users, k, crate::codec::encode(&u).map_err(StoreError::from)?);
    }
    Ok(b)
}

fn users_preferences_validate(db: &Db) -> Result<(), StepError> {
    for (_, u) in db.scan::<User>(Map::Users, &[], &[], usize::MAX)? {
        if u.preferences.language.is_empty() || u.preferences.timezone.is_empty() {
            return Err(StepError::Invalid(format!("user {} has no preferences", u.id)));
        }
    }
    Ok(())
}

/// Messages gain an hour index and every hour holding data is marked for the KPI rollup.
fn kpi_index_up(db: &Db) -> Result<Batch, StepError> {
    let mut b = Batch::new();
    crate::model::kpi::backfill(db, &mut b)?;
    Ok(b)
}

fn kpi_index_validate(db: &Db) -> Result<(), StepError> {
    match crate::model::kpi::time_index_complete(db) {
        Ok(true) => Ok(()),
        Ok(false) => Err(StepError::Invalid("a message is missing from the hour index".into())),
        Err(e) => Err(e.into()),
    }
}

/// Conversations gain a last-activity index.
fn activity_index_up(db: &Db) -> Result<Batch, StepError> {
    let mut b = Batch::new();
    crate::model::activity::backfill(db, &mut b)?;
    Ok(b)
}

fn activity_index_validate(db: &Db) -> Result<(), StepError> {
    match crate::model::activity::complete(db) {
        Ok(true) => Ok(()),
        Ok(false) => Err(StepError::Invalid("a conversation is missing from the activity index".into())),
        Err(e) => Err(e.into()),
    }
}

/// Every migration, in order.
pub fn registry() -> Vec<Migration> {
    vec![
        Migration {
            version: 2,
            description: "users gain preferences: language (es) and time zone (America/Mexico_City)",
            up: users_preferences_up,
            validate: users_preferences_validate,
        },
        Migration {
            version: 3,
            description: "messages gain an hour index; every hour holding data is marked for the KPI rollup",
            up: kpi_index_up,
            validate: kpi_index_validate,
        },
        Migration {
            version: 4,
            description: "conversations gain a last-activity index (for lists by activity and updatedSince)",
            up: activity_index_up,
            validate: activity_index_validate,
        },
    ]
}

/// What a migration run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Version before.
    pub from: u32,
    /// Version after.
    pub to: u32,
    /// The backup taken first, if any migration ran.
    pub backup_id: Option<u32>,
}

/// Why migrating failed; the database is as it was.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// A step failed and the backup was restored.
    #[error("migration to version {version} failed: {cause}; the database was restored from backup {backup_id} (the failed attempt is kept in {kept})")]
    Restored {
        /// The step.
        version: u32,
        /// Why.
        cause: StepError,
        /// The backup restored.
        backup_id: u32,
        /// Where the failed attempt is.
        kept: String,
    },
    /// Storage failed before any change.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn set_version(b: &mut Batch, v: u32) {
    b.put_raw(Map::Meta, b"schema_version".to_vec(), v.to_be_bytes().to_vec());
}

/// The stored schema version and the steps still to run.
pub fn status<'a>(db: &Db, migrations: &'a [Migration]) -> Result<(u32, Vec<&'a Migration>), StoreError> {
    let v = db.schema_version()?.unwrap_or(SCHEMA_VERSION);
    Ok((v, migrations.iter().filter(|m| m.version > v).collect()))
}

/// Brings the database in `path` up to date: backup, each step with its
/// validation, restore on failure. Nothing happens when it is current.
pub fn migrate(
    path: &Path,
    opts: &DbOptions,
    backups: &Backups,
    migrations: &[Migration],
    progress: &mut dyn FnMut(&str),
) -> Result<Report, MigrateError> {
    let db = Db::open(path, opts)?;
    let (from, pending) = status(&db, migrations)?;
    if pending.is_empty() {
        return Ok(Report { from, to: from, backup_id: None });
    }
    progress(&format!("database at schema version {from}; {} migration(s) to run; backing up first", pending.len()));
    let backup = backups.create(&db, &path.join("media"), progress)?;
    let mut current = from;
    for m in pending {
        progress(&format!("migrating to version {}: {}", m.version, m.description));
        let step = (m.up)(&db).and_then(|mut b| {
            set_version(&mut b, m.version);
            db.write_group([&b], true)?;
            (m.validate)(&db)
        });
        if let Err(cause) = step {
            drop(db);
            let kept = restore_in_place(path, backups, backup.id).map_err(MigrateError::Store)?;
            return Err(MigrateError::Restored { version: m.version, cause, backup_id: backup.id, kept: kept.display().to_string() });
        }
        current = m.version;
    }
    progress(&format!("database migrated to version {current}"));
    Ok(Report { from, to: current, backup_id: Some(backup.id) })
}

/// Sets `path` aside and restores backup `id` in its place; returns where the old directory went.
fn restore_in_place(path: &Path, backups: &Backups, id: u32) -> Result<PathBuf, StoreError> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "data".into());
    let kept = path.with_file_name(format!("{name}.failed-migration-{}", crate::time::Timestamp::now().millis()));
    std::fs::rename(path, &kept).map_err(|e| StoreError::Engine(format!("cannot set {} aside: {e}", path.display())))?;
    backups.restore(Some(id), path, &mut |_| {})?;
    Ok(kept)
}

/// Writes `version` as the stored schema version (for tests of older databases).
#[doc(hidden)]
pub fn force_version(db: &Db, version: u32) -> Result<(), StoreError> {
    let mut b = Batch::new();
    set_version(&mut b, version);
    db.write_group([&b], true)
}
