//! The KPI rollup job: recomputes the recent hours (since shortly before the
//! last run started) and the hours marked dirty since, and the days that
//! hold them.
//!
//! Dirty hours are claimed before they are read, so a write that lands while
//! a rollup runs marks its hour dirty again and the next run takes it; a run
//! that stops midway leaves its claims (and the watermark where it was), and
//! the next run finishes them.

use crate::scheduler::Task;
use futures_util::future::BoxFuture;
use std::collections::BTreeMap;
use utalk_actors::StoreWriter;
use utalk_storage::model::kpi::{self, Granularity, DAY_MS};
use utalk_storage::{Batch, Db, StoreError, Timestamp};

/// Rolls up the dirty hours and their days.
pub struct KpiRollupTask {
    /// The store.
    pub db: Db,
    /// Writes.
    pub writer: StoreWriter,
}

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
    /// The store writer refused the batch.
    #[error("cannot write the rollup: {0}")]
    Commit(String),
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

async fn commit(writer: &StoreWriter, b: Batch) -> Result<(), RollupError> {
    writer.commit(b).await.map_err(|e| RollupError::Commit(e.to_string()))
}

/// Rolls up everything dirty now (and what an interrupted run claimed).
pub async fn roll_up(db: &Db, writer: &StoreWriter) -> Result<Rolled, RollupError> {
    let _one = ONE_AT_A_TIME.lock().await;
    let started = Timestamp::now();
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
            commit(writer, kpi::claim_batch(&dirty)).await?;
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
            // A day and its hours are written together with the release of their claims.
            let b = blocking(db, move |db| {
                let mut fresh = BTreeMap::new();
                for &h in &hours {
                    fresh.insert(h, kpi::compute_hour(db, h)?);
                }
                let day_rows = kpi::compute_day(db, day, &fresh)?;
                let mut b = Batch::new();
                for (h, rows) in &fresh {
                    kpi::replace_bucket(db, &mut b, Granularity::Hour, *h, rows)?;
                    kpi::release(&mut b, *h);
                }
                kpi::replace_bucket(db, &mut b, Granularity::Day, day, &day_rows)?;
                Ok(b)
            })
            .await?;
            commit(writer, b).await?;
            done.hours += n;
            done.days += 1;
        }
        if dirty.len() < ROUND {
            break;
        }
    }
    let mut b = Batch::new();
    kpi::set_rolled_up(&mut b, started, Timestamp::now());
    commit(writer, b).await?;
    Ok(done)
}

impl Task for KpiRollupTask {
    fn run(&self) -> BoxFuture<'static, Result<BTreeMap<String, f64>, String>> {
        let (db, writer) = (self.db.clone(), self.writer.clone());
        Box::pin(async move {
            let done = roll_up(&db, &writer).await.map_err(|e| e.to_string())?;
            let mut f = BTreeMap::new();
            f.insert("hoursRolledUp".into(), done.hours as f64);
            f.insert("daysRolledUp".into(), done.days as f64);
            Ok(f)
        })
    }
}
