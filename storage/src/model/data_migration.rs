//! Progress of a background data migration: where its walk is (the cursor),
//! how far it got, and when it finished. Written in the same batch as the
//! records each step migrates, so that a stop or a crash resumes right
//! after the last step on record, skipping nothing.

use crate::batch::Batch;
use crate::codec::Record;
use crate::db::Db;
use crate::error::{CodecError, StoreError};
use crate::keys::Key;
use crate::maps::Map;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

/// One migration's progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MigrationProgress {
    /// The migration's name.
    pub name: String,
    /// Where the next step starts (the migration's own encoding); `None` before the first.
    pub cursor: Option<Vec<u8>>,
    /// Records migrated so far.
    pub processed: u64,
    /// Steps written so far.
    pub steps: u64,
    /// When the first step was written.
    pub started_at: Timestamp,
    /// When the latest step was written.
    pub updated_at: Timestamp,
    /// When the last step was written; `None` while there is more.
    pub finished_at: Option<Timestamp>,
    /// Why the latest attempt failed, until a step succeeds.
    pub last_error: Option<String>,
}

impl Record for MigrationProgress {
    const KIND: &'static str = "data_migration";
}

impl MigrationProgress {
    /// Nothing done yet.
    pub fn new(name: &str, now: Timestamp) -> MigrationProgress {
        MigrationProgress {
            name: name.to_string(),
            cursor: None,
            processed: 0,
            steps: 0,
            started_at: now,
            updated_at: now,
            finished_at: None,
            last_error: None,
        }
    }
}

fn key(name: &str) -> Result<Key, CodecError> {
    Key::new().str(name)
}

/// Adds the write of `progress` to `batch`.
pub fn put(batch: &mut Batch, progress: &MigrationProgress) -> Result<(), CodecError> {
    batch.put(Map::DataMigrations, key(&progress.name)?, progress)?;
    Ok(())
}

/// Adds the removal of migration `name`'s progress to `batch` (it starts over when it runs again).
pub fn delete(batch: &mut Batch, name: &str) -> Result<(), CodecError> {
    batch.delete(Map::DataMigrations, key(name)?);
    Ok(())
}

/// The progress of migration `name`, if it ever ran.
pub fn get(db: &Db, name: &str) -> Result<Option<MigrationProgress>, StoreError> {
    db.get(Map::DataMigrations, key(name)?)
}

/// Every migration's progress, by name (there are a handful).
pub fn all(db: &Db) -> Result<Vec<MigrationProgress>, StoreError> {
    Ok(db.scan::<MigrationProgress>(Map::DataMigrations, &[], &[], 1024)?.into_iter().map(|(_, v)| v).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::DbOptions;

    #[test]
    fn progress_is_written_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), &DbOptions::default()).unwrap();
        let mut p = MigrationProgress::new("reencode", Timestamp(5));
        p.cursor = Some(vec![0, 1, 255]);
        p.processed = 42;
        let mut b = Batch::new();
        put(&mut b, &p).unwrap();
        put(&mut b, &MigrationProgress::new("another", Timestamp(6))).unwrap();
        db.write_group([&b], true).unwrap();
        assert_eq!(get(&db, "reencode").unwrap(), Some(p));
        assert_eq!(all(&db).unwrap().iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["another", "reencode"]);
        assert_eq!(get(&db, "none").unwrap(), None);
    }
}
