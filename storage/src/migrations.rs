//! Schema migrations: an ordered registry, run before the server serves.
//!
//! A database behind this build's [`SCHEMA_VERSION`] is backed up, then each
//! pending migration rewrites what it must and is validated, and the
//! version moves forward with it. If anything fails the database directory
//! is set aside and the backup restored in its place, so the server refuses
//! to start on a database exactly as it was before.

use crate::backup::Backups;
use crate::batch::Batch;
use crate::db::{Db, DbOptions, META_READABLE_FROM, SCHEMA_VERSION};
use crate::error::StoreError;
use crate::keys::Key;
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
    pub up: Step,
    /// Checks the result.
    pub validate: fn(&Db) -> Result<(), StepError>,
    /// The oldest build schema version that can read the data once this step
    /// ran. An expanding step (a new optional field, a new map the older
    /// build ignores, data the newer build tolerates being missing) keeps the
    /// previous step's value, so the release before can still serve it; a
    /// contracting step raises it to its own version.
    pub readable_from: u32,
    /// The writes that reverse the step in place (`utalk migrate rollback`),
    /// keeping every write made since; `None` when it cannot be reversed and
    /// only the backup taken before it brings the old format back.
    pub down: Option<Step>,
}

/// The writes of one step (up or down), read from the database as it is.
pub type Step = fn(&Db) -> Result<Batch, StepError>;

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

/// From version 5 the data says which builds can read it. Nothing else
/// changes: the runner writes `readable_from` with the version.
fn readable_from_up(_db: &Db) -> Result<Batch, StepError> {
    Ok(Batch::new())
}

fn readable_from_validate(db: &Db) -> Result<(), StepError> {
    match db.readable_from()? {
        Some(v) if v <= db.schema_version()?.unwrap_or(0) => Ok(()),
        other => Err(StepError::Invalid(format!("readable_from is {other:?}"))),
    }
}

/// Socket sessions kept across restarts and the progress of background data
/// migrations have their own maps, which every open creates; an older
/// release opens them as maps it does not know and leaves them alone, so
/// the step only expands. Its way back empties them (a migration that runs
/// again starts over, which every background migration allows).
fn socket_sessions_up(_db: &Db) -> Result<Batch, StepError> {
    Ok(Batch::new())
}

fn socket_sessions_down(db: &Db) -> Result<Batch, StepError> {
    let mut b = Batch::new();
    let mut after: Option<String> = None;
    loop {
        let page = crate::model::socket_session::page(db, after.as_deref(), 1024)?;
        let Some((last, _)) = page.last() else { break };
        after = Some(last.clone());
        for (pid, _) in &page {
            crate::model::socket_session::delete(&mut b, pid).map_err(StoreError::from)?;
        }
        if page.len() < 1024 {
            break;
        }
    }
    for p in crate::model::data_migration::all(db)? {
        b.delete(Map::DataMigrations, Key::new().str(&p.name).map_err(StoreError::from)?);
    }
    Ok(b)
}

fn socket_sessions_validate(db: &Db) -> Result<(), StepError> {
    // The map is there and its records read.
    crate::model::socket_session::page(db, None, 1)?;
    Ok(())
}

/// Messages may be written in format 2 (see `model::message_format`): this
/// build reads it, and writes it only once the `message_format` background
/// migration turns it on, which also raises `readable_from` to 7. So the
/// step itself changes nothing and the release before reads the data as it
/// is; its way back writes every message in format 1 again and turns format
/// 2 off (the migration, run again, starts over).
fn message_format_up(_db: &Db) -> Result<Batch, StepError> {
    Ok(Batch::new())
}

fn message_format_down(db: &Db) -> Result<Batch, StepError> {
    let mut b = crate::model::message_format::write_back_named(db)?;
    crate::model::data_migration::delete(&mut b, MESSAGE_FORMAT_MIGRATION).map_err(StoreError::from)?;
    Ok(b)
}

fn message_format_validate(db: &Db) -> Result<(), StepError> {
    // Every message this build finds reads (a page is enough to catch a store it cannot).
    crate::model::message_format::others_page(db, &[], &[], 64, crate::model::MessageFormat::Compact)?;
    Ok(())
}

/// The background migration that turns message format 2 on and rewrites the older messages.
pub const MESSAGE_FORMAT_MIGRATION: &str = "message_format";

/// Every migration, in order. The steps up to 4 (release 0.1.0 and the
/// ones before, which are no longer served) have no `down`: going back past
/// them is a restore of the backup taken before them.
pub fn registry() -> Vec<Migration> {
    vec![
        Migration {
            version: 2,
            readable_from: 2,
            down: None,
            description: "users gain preferences: language (es) and time zone (America/Mexico_City)",
            up: users_preferences_up,
            validate: users_preferences_validate,
        },
        Migration {
            version: 3,
            readable_from: 3,
            down: None,
            description: "messages gain an hour index; every hour holding data is marked for the KPI rollup",
            up: kpi_index_up,
            validate: kpi_index_validate,
        },
        Migration {
            version: 4,
            readable_from: 4,
            down: None,
            description: "conversations gain a last-activity index (for lists by activity and updatedSince)",
            up: activity_index_up,
            validate: activity_index_validate,
        },
        Migration {
            version: 5,
            description: "the data records the oldest release that can read it (meta readable_from), so that later releases can stay readable by the one before",
            up: readable_from_up,
            validate: readable_from_validate,
            readable_from: 5,
            down: Some(readable_from_up),
        },
        Migration {
            version: 6,
            description: "socket sessions (map socket_sessions, so that clients recover them across a restart) and the progress of background data migrations (map data_migrations) are kept in the store",
            up: socket_sessions_up,
            validate: socket_sessions_validate,
            // Expands only: the release before reads the data as it is.
            readable_from: 5,
            down: Some(socket_sessions_down),
        },
        Migration {
            version: 7,
            description: "messages may be stored in format 2 (short field names, about half the bytes), written once the message_format background migration turns it on when every node reads it",
            up: message_format_up,
            validate: message_format_validate,
            // Expands only until the background migration raises it to 7.
            readable_from: 5,
            down: Some(message_format_down),
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
    /// A step on the way back has no `down`; nothing was changed.
    #[error("migration {version} cannot be reversed in place; only a restore of the backup taken before the upgrade brings version {to} back (writes made since are lost)")]
    NotReversible {
        /// The step.
        version: u32,
        /// The version asked for.
        to: u32,
    },
    /// The data is newer than this build knows how to roll back.
    #[error("the database is at schema version {found}, newer than this build's {supported}: roll it back with the release that wrote it")]
    UnknownVersion {
        /// Version on disk.
        found: u32,
        /// Version of this build.
        supported: u32,
    },
    /// A step (up, or down in a rollback) failed and the backup was restored.
    #[error("migration step of version {version} failed: {cause}; the database was restored from backup {backup_id} (the failed attempt is kept in {kept})")]
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

/// Records version `v` and who can read it: `readable_from` exists from
/// version 5 on, so going back below 5 removes it.
fn set_versions(b: &mut Batch, v: u32, readable_from: u32) {
    set_version(b, v);
    if v >= 5 {
        b.put_raw(Map::Meta, META_READABLE_FROM.to_vec(), readable_from.to_be_bytes().to_vec());
    } else {
        b.delete_raw(Map::Meta, META_READABLE_FROM.to_vec());
    }
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
            set_versions(&mut b, m.version, m.readable_from);
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

/// Takes the database in `path` back to schema version `to` in place, so
/// that the release that wrote `to` serves it again with every write made
/// since: backup first, then each step's `down` from the newest, each in one
/// write with the version it leaves; restore on failure. Nothing happens
/// when it is at `to` or older.
///
/// # Errors
/// [`MigrateError::NotReversible`] or [`MigrateError::UnknownVersion`]
/// before any change; [`MigrateError::Restored`] when a step failed.
pub fn rollback(
    path: &Path,
    opts: &DbOptions,
    backups: &Backups,
    migrations: &[Migration],
    to: u32,
    progress: &mut dyn FnMut(&str),
) -> Result<Report, MigrateError> {
    let db = Db::open(path, opts)?;
    let from = db.schema_version()?.unwrap_or(SCHEMA_VERSION);
    if from <= to {
        return Ok(Report { from, to: from, backup_id: None });
    }
    if migrations.iter().all(|m| m.version < from) {
        return Err(MigrateError::UnknownVersion { found: from, supported: SCHEMA_VERSION });
    }
    let mut steps: Vec<&Migration> = migrations.iter().filter(|m| m.version > to && m.version <= from).collect();
    steps.sort_by_key(|m| std::cmp::Reverse(m.version));
    let mut downs = Vec::with_capacity(steps.len());
    for m in &steps {
        downs.push(m.down.ok_or(MigrateError::NotReversible { version: m.version, to })?);
    }
    progress(&format!("database at schema version {from}; {} step(s) to reverse down to {to}; backing up first", steps.len()));
    let backup = backups.create(&db, &path.join("media"), progress)?;
    for (m, down) in steps.iter().zip(downs) {
        let left = m.version - 1;
        let readable_from = migrations.iter().find(|p| p.version == left).map_or(left, |p| p.readable_from);
        progress(&format!("reversing version {}: {}", m.version, m.description));
        let step = down(&db).and_then(|mut b| {
            set_versions(&mut b, left, readable_from);
            db.write_group([&b], true)?;
            match db.schema_version()? {
                Some(v) if v == left => Ok(()),
                other => Err(StepError::Invalid(format!("schema version is {other:?} after reversing {}", m.version))),
            }
        });
        if let Err(cause) = step {
            drop(db);
            let kept = restore_in_place(path, backups, backup.id).map_err(MigrateError::Store)?;
            return Err(MigrateError::Restored { version: m.version, cause, backup_id: backup.id, kept: kept.display().to_string() });
        }
    }
    progress(&format!("database rolled back to version {to}"));
    Ok(Report { from, to, backup_id: Some(backup.id) })
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
