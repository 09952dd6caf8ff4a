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
    // Read from the newest end: a job's whole history is never loaded.
    page(db, name, None, limit)
}

/// Runs of job `name`, newest first, older than the run `before` (its
/// start and id, from the previous page), at most `limit`.
pub fn page(db: &Db, name: &str, before: Option<(Timestamp, Uuid)>, limit: usize) -> Result<Vec<JobRun>, StoreError> {
    let prefix = Key::new().str(name)?.into_bytes();
    let upper = match before {
        Some((at, id)) => key(name, at, id)?.into_bytes(),
        // Just past every key of this job: its name's terminator, plus one.
        None => {
            let mut u = prefix.clone();
            if let Some(last) = u.last_mut() {
                *last = 1;
            }
            u
        }
    };
    db.scan_raw_rev(Map::JobRuns, Some(&upper), limit)?
        .into_iter()
        .take_while(|(k, _)| k.starts_with(&prefix))
        .map(|(_, v)| Ok(crate::codec::decode::<JobRun>(&v)?))
        .collect()
}

/// Keys of runs of job `name` started before `cutoff`, at most `limit` (for retention).
pub fn older_than(db: &Db, name: &str, cutoff: Timestamp, limit: usize) -> Result<Vec<Vec<u8>>, StoreError> {
    let prefix = Key::new().str(name)?.into_bytes();
    let end = Key::new().str(name)?.i64(cutoff.millis()).into_bytes();
    Ok(db.scan_raw(Map::JobRuns, &prefix, &prefix, limit)?.into_iter().map(|(k, _)| k).take_while(|k| *k < end).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::DbOptions;

    fn run(name: &str, at: i64) -> JobRun {
        JobRun {
            id: Uuid::from_u128(at as u128),
            name: name.into(),
            trigger: "schedule".into(),
            started_at: Timestamp(at),
            finished_at: Timestamp(at + 1),
            outcome: JobOutcome::Ok,
            attempts: 1,
            figures: BTreeMap::new(),
            error: None,
        }
    }

    #[test]
    fn pages_go_newest_first_and_stay_within_their_job() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open(dir.path(), &DbOptions::default()).expect("open");
        let mut b = Batch::new();
        // Names that share a prefix must not leak into each other's pages.
        for (name, at) in [("backup", 10), ("backup", 20), ("backup", 30), ("backup2", 40), ("backu", 50)] {
            put(&mut b, &run(name, at)).expect("put");
        }
        db.write_group([&b], false).expect("write");
        let first = page(&db, "backup", None, 2).expect("page");
        assert_eq!(first.iter().map(|r| r.started_at.0).collect::<Vec<_>>(), [30, 20]);
        let last = first.last().expect("a run");
        let rest = page(&db, "backup", Some((last.started_at, last.id)), 2).expect("page");
        assert_eq!(rest.iter().map(|r| r.started_at.0).collect::<Vec<_>>(), [10]);
        assert_eq!(recent(&db, "backup2", 5).expect("recent").len(), 1);
        assert_eq!(recent(&db, "nothing", 5).expect("recent").len(), 0);
    }
}
