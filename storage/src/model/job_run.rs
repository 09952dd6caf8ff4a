use crate::batch::Batch;
use crate::codec::Record;
use crate::db::Db;
use crate::error::{CodecError, StoreError};
use crate::keys::Key;
use crate::maps::Map;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

/// How a job run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobOutcome {
    /// It did its work.
    Ok,
    /// Every attempt failed; `error` says why.
    Failed,
    /// Not run: the previous run of the same job was still going.
    Skipped,
}

/// One run of a scheduled job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobRun {
    /// Id.
    pub id: Uuid,
    /// Job name.
    pub name: String,
    /// `schedule`, `manual` or `catch_up`.
    pub trigger: String,
    /// Started.
    pub started_at: Timestamp,
    /// Finished.
    pub finished_at: Timestamp,
    /// Outcome.
    pub outcome: JobOutcome,
    /// Attempts made (retries included).
    pub attempts: u32,
    /// What the job reports (counts, sizes, seconds).
    pub figures: BTreeMap<String, f64>,
    /// The last error, when it failed.
    pub error: Option<String>,
}

impl Record for JobRun {
    const KIND: &'static str = "job_run";
}

fn key(name: &str, started: Timestamp, id: Uuid) -> Result<Key, CodecError> {
    Ok(Key::new().str(name)?.i64(started.millis()).uuid(id))
}

/// Adds the write of `run` to `batch`.
pub fn put(batch: &mut Batch, run: &JobRun) -> Result<(), CodecError> {
    batch.put(Map::JobRuns, key(&run.name, run.started_at, run.id)?, run)?;
    Ok(())
}

/// The latest run of job `name`.
pub fn last(db: &Db, name: &str) -> Result<Option<JobRun>, StoreError> {
    let prefix = Key::new().str(name)?.into_bytes();
    match db.last_with_prefix(Map::JobRuns, &prefix)? {
        Some((_, v)) => Ok(Some(crate::codec::decode(&v)?)),
        None => Ok(None),
    }
}

/// The latest runs of job `name`, newest first, at most `limit` (history is bounded by retention).
pub fn recent(db: &Db, name: &str, limit: usize) -> Result<Vec<JobRun>, StoreError> {
    let prefix = Key::new().str(name)?.into_bytes();
    let mut all: Vec<JobRun> = db.scan::<JobRun>(Map::JobRuns, &prefix, &prefix, usize::MAX)?.into_iter().map(|(_, r)| r).collect();
    all.reverse();
    all.truncate(limit);
    Ok(all)
}

/// Keys of runs of job `name` started before `cutoff`, at most `limit` (for retention).
pub fn older_than(db: &Db, name: &str, cutoff: Timestamp, limit: usize) -> Result<Vec<Vec<u8>>, StoreError> {
    let prefix = Key::new().str(name)?.into_bytes();
    let end = Key::new().str(name)?.i64(cutoff.millis()).into_bytes();
    Ok(db.scan_raw(Map::JobRuns, &prefix, &prefix, limit)?.into_iter().map(|(k, _)| k).take_while(|k| *k < end).collect())
}
