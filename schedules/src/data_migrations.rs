//! Background data migrations: changes over many records (re-encoding,
//! backfilling a field or an index) that run while the server serves,
//! instead of holding its start.
//!
//! Each migration walks its records in steps from a cursor of its own
//! choosing. A step returns the writes that migrate up to `batch_size`
//! records and the cursor after them; the runner writes them in one batch
//! through the journal together with the migration's progress (cursor,
//! count, times), so a stop or a crash resumes right after the last step on
//! record: a step whose changes are in its own batch is applied exactly
//! once. Steps must still be idempotent: one that writes through actors
//! (outside the batch) is repeated after a crash between those writes and
//! its progress, and in a cluster a node that lost the job's lock may
//! finish a step the next holder repeats. The runner is the
//! `data_migrations` job: its supervised actor runs it, on one node of a
//! cluster at a time (the job's cluster lock; the progress travels with the
//! log, so whichever node runs next resumes it). Between steps it pauses so
//! that it takes at most `duty` of the time: each step is one write group
//! among the messages', and the pause lets the writer serve them first.
//!
//! A step must only write what no live path writes at the same time (a new
//! index, a field nothing else changes yet), or change records through
//! their owner (a conversation's actor), or a concurrent change could be
//! overwritten with the migrated old value.

use crate::scheduler::{Figures, JobError, Task};
use futures_util::future::BoxFuture;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use utalk_actors::Journal;
use utalk_storage::model::data_migration::{self, MigrationProgress};
use utalk_storage::{Batch, Db, Timestamp};

/// What one step did.
pub struct Step {
    /// The writes that migrate this step's records.
    pub batch: Batch,
    /// Where the next step starts; `None` when every record is migrated.
    pub next: Option<Vec<u8>>,
    /// Records migrated by this step.
    pub migrated: u64,
    /// How long to wait once the step is written, before the next, apart
    /// from the pace (say, for every node to apply a switch the step wrote).
    pub settle: Duration,
}

impl Step {
    /// A step of `batch` that migrated `migrated` records, going on from `next`.
    pub fn new(batch: Batch, next: Option<Vec<u8>>, migrated: u64) -> Step {
        Step { batch, next, migrated, settle: Duration::ZERO }
    }
}

/// One background data migration.
pub trait DataMigration: Send + Sync + 'static {
    /// Its name, unique and stable: the progress is kept under it.
    fn name(&self) -> &'static str;
    /// What it does, for operators.
    fn description(&self) -> &'static str;
    /// Records per step.
    fn batch_size(&self) -> usize {
        500
    }
    /// Whether it may run now; when not, why (say, a node of the cluster
    /// runs a build that cannot read what it writes). A migration that may
    /// not run waits, and so do the ones after it, until a later run.
    fn ready(&self) -> Result<(), String> {
        Ok(())
    }
    /// Reads up to `limit` records after `cursor` (from the start when
    /// `None`) and returns the writes that migrate them.
    fn step(&self, cursor: Option<Vec<u8>>, limit: usize) -> BoxFuture<'static, Result<Step, JobError>>;
}

/// How hard the runner works.
#[derive(Debug, Clone, Copy)]
pub struct Throttle {
    /// The share of the time spent in steps (0.01 to 1); the rest is pauses.
    pub duty: f64,
    /// A run stops after this long and the next run goes on (shorter than the job's schedule).
    pub run_for: Duration,
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle { duty: 0.25, run_for: Duration::from_secs(50) }
    }
}

impl Throttle {
    /// The pause after a step that took `step`.
    pub fn pause_after(&self, step: Duration) -> Duration {
        utalk_actors::jobs::pace::pause_after(self.duty, step)
    }
}

/// The `data_migrations` job's task: runs every migration that is not done, in order.
pub struct Runner {
    /// Reads the progress.
    pub db: Db,
    /// Writes steps and progress (through the log in a cluster).
    pub journal: Journal,
    /// The migrations, in the order they run.
    pub migrations: Vec<Arc<dyn DataMigration>>,
    /// Pace.
    pub throttle: Throttle,
}

impl Task for Runner {
    fn run(&self) -> BoxFuture<'static, Figures> {
        let (db, journal, migrations, throttle) = (self.db.clone(), self.journal.clone(), self.migrations.clone(), self.throttle);
        Box::pin(async move { run(&db, &journal, &migrations, throttle).await })
    }
}

async fn run(db: &Db, journal: &Journal, migrations: &[Arc<dyn DataMigration>], throttle: Throttle) -> Figures {
    let started = Instant::now();
    let mut figures = BTreeMap::new();
    let (mut migrated, mut pending) = (0u64, 0u64);
    for m in migrations {
        let mut progress = match data_migration::get(db, m.name())? {
            Some(p) if p.finished_at.is_some() => continue,
            Some(p) => p,
            None => MigrationProgress::new(m.name(), Timestamp::now()),
        };
        if let Err(why) = m.ready() {
            // On record for operators (once per reason), not a failure: it goes on when it may.
            if progress.last_error.as_deref() != Some(why.as_str()) {
                tracing::info!(migration = m.name(), reason = %why, "data migration waiting");
                progress.last_error = Some(why);
                progress.updated_at = Timestamp::now();
                let mut b = Batch::new();
                data_migration::put(&mut b, &progress).map_err(|e| JobError::Store(e.into()))?;
                journal.commit(b).await?;
            }
            pending += 1;
            break;
        }
        loop {
            if started.elapsed() >= throttle.run_for {
                pending += 1;
                break;
            }
            let t0 = Instant::now();
            let step = match m.step(progress.cursor.clone(), m.batch_size().max(1)).await {
                Ok(s) => s,
                Err(e) => {
                    // On record for operators; the next run tries the same step again.
                    let mut failed = progress.clone();
                    failed.last_error = Some(e.to_string());
                    failed.updated_at = Timestamp::now();
                    let mut b = Batch::new();
                    let built = data_migration::put(&mut b, &failed).map(|_| b);
                    if let Ok(b) = built {
                        let _ = journal.commit(b).await;
                    }
                    return Err(e);
                }
            };
            let now = Timestamp::now();
            progress.processed += step.migrated;
            progress.steps += 1;
            progress.cursor = step.next;
            progress.updated_at = now;
            progress.last_error = None;
            if progress.cursor.is_none() {
                progress.finished_at = Some(now);
            }
            let mut b = step.batch;
            data_migration::put(&mut b, &progress).map_err(|e| JobError::Store(e.into()))?;
            journal.commit(b).await?;
            migrated += step.migrated;
            metrics::counter!("data_migration_records_total", "migration" => m.name()).increment(step.migrated);
            metrics::gauge!("data_migration_processed", "migration" => m.name()).set(progress.processed as f64);
            if progress.finished_at.is_some() {
                metrics::gauge!("data_migration_done", "migration" => m.name()).set(1.0);
                tracing::info!(migration = m.name(), records = progress.processed, steps = progress.steps, "data migration finished");
                break;
            }
            // The settling time is a wait, not work: outside the pace.
            tokio::time::sleep(throttle.pause_after(t0.elapsed()) + step.settle).await;
        }
        if pending > 0 {
            break;
        }
    }
    figures.insert("migrated".into(), migrated as f64);
    figures.insert("pending".into(), pending as f64);
    Ok(figures)
}
