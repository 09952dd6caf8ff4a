//! The KPI rollup job: recomputes the recent hours (since shortly before the
//! last run started) and the hours marked dirty since, and the days that
//! hold them.
//!
//! Dirty hours are claimed before they are read, so a write that lands while
//! a rollup runs marks its hour dirty again and the next run takes it; a run
//! that stops midway leaves its claims (and the watermark where it was), and
//! the next run finishes them.
//!
//! In a cluster the rollup's writes go through the replicated log, so every
//! node applies the same figures and only one node computes them (the
//! scheduled job runs once cluster-wide). Rollups asked for on several nodes
//! take turns through a cluster lock. Should two still overlap (a holder
//! that lost its lock without knowing), each write is fenced on the
//! rollups' own log subject at the position the roller last saw there: the
//! one overtaken is refused instead of writing figures older than the ones
//! already written, and starts again from what is there now.

use crate::scheduler::{Figures, JobError, Task};
use futures_util::future::BoxFuture;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use utalk_actors::cluster::{leads, ClusterError, JobLock, SHARED_SUBJECT};
use utalk_actors::durability::{Journal, JournalError};
use utalk_storage::model::kpi::{self, Granularity, DAY_MS};
use utalk_storage::{Batch, BusinessHours, Db, StoreError, Timestamp};

/// Rolls up the dirty hours and their days.
pub struct KpiRollupTask {
    /// The store.
    pub db: Db,
    /// Where the rollup's writes go.
    pub journal: Journal,
    /// The open time the agent speed of answer counts.
    pub hours: Arc<BusinessHours>,
}

/// The log subject every rollup write is fenced on.
pub fn kpi_subject() -> String {
    format!("{SHARED_SUBJECT}.kpi")
}

/// How many times a rollup that another node overtook starts again.
const ATTEMPTS: usize = 5;

/// The cluster lock rollups take turns with (the scheduled job's own lock
/// is another: its run takes both).
const TURN_LOCK: &str = "kpi_rollup_turn";

/// How long a rollup waits for its turn: a node that died holding the lock
/// keeps it until `cluster.lock_ttl_ms` (30 s) has passed.
const TURN_PATIENCE: Duration = Duration::from_secs(60);

/// Hours claimed per round; a backlog larger than this takes several rounds of one run.
const ROUND: usize = 512;

/// What a rollup did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rolled {
    /// Hours recomputed.
    pub hours: u64,
    /// Days rebuilt.
    pub days: u64,
}

/// Why a rollup stopped.
#[derive(Debug, thiserror::Error)]
pub enum RollupError {
    /// Reading or encoding failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The store writer or the log refused the batch.
    #[error("cannot write the rollup: {0}")]
    Commit(#[from] JournalError),
    /// The cluster lock could not be asked for.
    #[error("cannot take the cluster's rollup lock: {0}")]
    Lock(#[from] ClusterError),
    /// Another node's rollup held the lock all along.
    #[error("another node has been rolling up for over {} s; its figures will be there when it is done, try again", TURN_PATIENCE.as_secs())]
    Busy,
    /// Other nodes' rollups kept overtaking this one.
    #[error("other nodes kept rolling up at the same time ({ATTEMPTS} attempts); their figures stand, try again")]
    Overtaken,
    /// The reading task stopped.
    #[error("the rollup task stopped: {0}")]
    Task(String),
}

/// One rollup at a time in the process: two at once could each compute an
/// hour and the older result be written last. The scheduler keeps a job from
/// overlapping itself, but the daily report and the API roll up too.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Runs store reads off the async threads: a rollup after a migration reads the whole history.
async fn blocking<T: Send + 'static>(db: &Db, f: impl FnOnce(&Db) -> Result<T, StoreError> + Send + 'static) -> Result<T, RollupError> {
    let db = db.clone();
    tokio::task::spawn_blocking(move || f(&db)).await.map_err(|e| RollupError::Task(e.to_string()))?.map_err(RollupError::from)
}

/// Writes of one rollup, each fenced on the last one.
struct Fenced<'a> {
    journal: &'a Journal,
    subject: String,
    at: u64,
}

impl Fenced<'_> {
    async fn commit(&mut self, b: Batch) -> Result<(), RollupError> {
        self.at = self.journal.commit_fenced_chain(&self.subject, self.at, b).await?.ok_or(RollupError::Overtaken)?;
        Ok(())
    }
}

/// Rolls up everything dirty now (and what an interrupted run claimed),
/// counting agent waits in the open time of `hours`.
pub async fn roll_up(db: &Db, journal: &Journal, hours: &Arc<BusinessHours>) -> Result<Rolled, RollupError> {
    let _one = ONE_AT_A_TIME.lock().await;
    let _turn = turn(journal).await?;
    for attempt in 1..=ATTEMPTS {
        match roll_up_once(db, journal, hours).await {
            Err(RollupError::Overtaken) if attempt < ATTEMPTS => {
                tracing::info!(attempt, "another node's rollup overtook this one; starting again from its figures");
            }
            other => return other,
        }
    }
    Err(RollupError::Overtaken)
}

/// Waits for this node's turn to roll up: one rollup at a time in the
/// cluster (or on one node alone, where a report's rollup may meet the job's).
async fn turn(journal: &Journal) -> Result<Option<JobLock>, RollupError> {
    let until = tokio::time::Instant::now() + TURN_PATIENCE;
    loop {
        let asked = journal.cluster().try_lock(TURN_LOCK).await;
        match asked {
            Ok(Some(lock)) => return Ok(Some(lock)),
            _ if tokio::time::Instant::now() < until => tokio::time::sleep(Duration::from_millis(250)).await,
            Ok(None) => return Err(RollupError::Busy),
            Err(e) => return Err(e.into()),
        }
    }
}

async fn roll_up_once(db: &Db, journal: &Journal, hours: &Arc<BusinessHours>) -> Result<Rolled, RollupError> {
    let subject = kpi_subject();
    let open_hours = hours;
    let started = Timestamp::now();
    // In a cluster, first everything any node wrote before `started`, so
    // that a rollup that started later counts it (see `bring_up_to_date`);
    // then every rollup write before `at`, the position to fence on.
    journal.sync_log().await?;
    let at = journal.sync_subject(&subject).await?;
    let mut writes = Fenced { journal, subject, at };
    let mut done = Rolled::default();
    let mut recent = blocking(db, move |db| kpi::recent_hours(db, started)).await?;
    loop {
        let (dirty, mut hours) = blocking(db, |db| Ok((kpi::dirty_hours(db, ROUND)?, kpi::claimed_hours(db, usize::MAX)?))).await?;
        // The recent hours are taken in the first round; they need no claim, the watermark moves only when the run is done.
        hours.append(&mut recent);
        if dirty.is_empty() && hours.is_empty() {
            break;
        }
        if !dirty.is_empty() {
            writes.commit(kpi::claim_batch(&dirty)).await?;
        }
        hours.extend(&dirty);
        hours.sort_unstable();
        hours.dedup();
        let mut by_day: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
        for h in hours {
            by_day.entry(h - h.rem_euclid(DAY_MS)).or_default().push(h);
        }
        for (day, hours) in by_day {
            let n = hours.len() as u64;
            let open = open_hours.clone();
            // A day and its hours, with the release of their claims last (see `entries`).
            let parts = blocking(db, move |db| {
                let mut fresh = BTreeMap::new();
                for &h in &hours {
                    fresh.insert(h, kpi::compute_hour(db, h, &open)?);
                }
                let day_rows = kpi::compute_day(db, day, &fresh)?;
                let mut parts = Vec::new();
                let mut last = Batch::new();
                for (h, rows) in &fresh {
                    let mut b = Batch::new();
                    kpi::replace_bucket(db, &mut b, Granularity::Hour, *h, rows)?;
                    parts.push(b);
                    kpi::release(&mut last, *h);
                }
                kpi::replace_bucket(db, &mut last, Granularity::Day, day, &day_rows)?;
                parts.push(last);
                Ok(parts)
            })
            .await?;
            for b in entries(parts) {
                writes.commit(b).await?;
            }
            done.hours += n;
            done.days += 1;
        }
        if dirty.len() < ROUND {
            break;
        }
    }
    let mut b = Batch::new();
    kpi::set_rolled_up(&mut b, started, Timestamp::now());
    writes.commit(b).await?;
    Ok(done)
}

/// The most a rollup puts in one write: a log entry must stay well under
/// NATS's largest message (1 MiB by default), and a day with many agents
/// has many rows.
const ENTRY_BYTES: usize = 256 * 1024;

/// A day's writes (each hour's rows, then the day's rows with the release
/// of the claims, last) as one write when they fit, else in that order: an
/// interrupted run leaves the claims, so the next run writes them again.
fn entries(parts: Vec<Batch>) -> Vec<Batch> {
    if parts.iter().map(Batch::size_bytes).sum::<usize>() > ENTRY_BYTES {
        return parts;
    }
    let mut one = Batch::new();
    for b in parts {
        one.extend(b);
    }
    vec![one]
}

/// Makes the rollups current as of now for a job that every node runs (the
/// daily report): on one node alone, or on the node that leads, it rolls up;
/// another node waits up to `patience` for a rollup that started after now
/// to reach it through the log, and rolls up itself only if none does.
pub async fn bring_up_to_date(db: &Db, journal: &Journal, hours: &Arc<BusinessHours>, patience: Duration) -> Result<Rolled, RollupError> {
    // One node alone always leads.
    if leads(journal.cluster().as_ref()) {
        return roll_up(db, journal, hours).await;
    }
    let now = Timestamp::now();
    let until = tokio::time::Instant::now() + patience;
    while tokio::time::Instant::now() < until {
        if blocking(db, kpi::last_rollup_started).await?.is_some_and(|t| t >= now) {
            return Ok(Rolled::default());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tracing::info!(seconds = patience.as_secs(), "no rollup from the leading node arrived in time; rolling up here");
    roll_up(db, journal, hours).await
}

impl Task for KpiRollupTask {
    fn run(&self) -> BoxFuture<'static, Figures> {
        let (db, journal, hours) = (self.db.clone(), self.journal.clone(), self.hours.clone());
        Box::pin(async move {
            let done = roll_up(&db, &journal, &hours).await.map_err(JobError::step)?;
            let mut f = BTreeMap::new();
            f.insert("hoursRolledUp".into(), done.hours as f64);
            f.insert("daysRolledUp".into(), done.days as f64);
            Ok(f)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use utalk_storage::Map;

    fn part(key: u8, bytes: usize) -> Batch {
        let mut b = Batch::new();
        b.put_raw(Map::Meta, vec![key], vec![0; bytes]);
        b
    }

    #[test]
    fn a_day_is_one_write_when_it_fits_and_its_parts_in_order_when_not() {
        let small = entries(vec![part(1, 10), part(2, 10), part(3, 10)]);
        assert_eq!(small.iter().map(Batch::len).collect::<Vec<_>>(), vec![3]);
        let big = entries(vec![part(1, ENTRY_BYTES / 2), part(2, ENTRY_BYTES / 2), part(3, 10)]);
        assert_eq!(big.iter().map(Batch::len).collect::<Vec<_>>(), vec![1, 1, 1]);
        assert_eq!(big.last().map(Batch::size_bytes), Some(11), "the part with the releases stays last");
    }
}
