//! What operators look at and start: job runs, the outbox, backups and the
//! store's readiness.

use super::{blocking, ServiceError};
use std::path::PathBuf;
use utalk_actors::Journal;
use utalk_schedules::{RunError, Scheduler};
use utalk_storage::backup::{BackupInfo, Backups};
use utalk_storage::model::{job_run, media, outbox, JobRun, OutboxEntry};
use utalk_storage::{Db, DbStats, StoreError};
use uuid::Uuid;

/// A job's recent runs, newest first.
pub fn job_runs(
    db: &Db,
    scheduler: &Scheduler,
    name: &str,
    before: Option<(utalk_storage::Timestamp, uuid::Uuid)>,
    limit: usize,
) -> Result<Vec<JobRun>, ServiceError> {
    if !scheduler.jobs().iter().any(|j| j.name == name) {
        return Err(ServiceError::NotFound("job"));
    }
    Ok(job_run::page(db, name, before, limit)?)
}

/// Why a job did not run when asked.
#[derive(Debug, thiserror::Error)]
pub enum RunJobError {
    /// No job has this name.
    #[error("job not found")]
    Unknown,
    /// The scheduler could not run it.
    #[error(transparent)]
    Run(RunError),
    /// The audit event was not written.
    #[error(transparent)]
    Audit(#[from] ServiceError),
}

/// Runs a job now for `user` (audited) and answers with its run once it is over.
pub async fn run_job(journal: &Journal, scheduler: &Scheduler, user: Uuid, name: &str) -> Result<JobRun, RunJobError> {
    let run = scheduler.run_now(name).await.map_err(|e| match e {
        RunError::Unknown(_) => RunJobError::Unknown,
        other => RunJobError::Run(other),
    })?;
    super::records::audit(journal, user, "job.run", name.to_string()).await?;
    Ok(run)
}

/// A page of the outbox by conversation and seq, after `after`.
pub fn outbox(db: &Db, after: Option<(Uuid, u64)>, limit: usize) -> Result<Vec<OutboxEntry>, ServiceError> {
    Ok(outbox::list(db, after, limit)?)
}

/// Messages waiting to go out and media waiting to be fetched, each counted
/// up to `cap` (the health endpoint is public and must stay cheap).
pub fn queue_depths(db: &Db, cap: usize) -> Result<(usize, usize), ServiceError> {
    Ok((outbox::count(db, cap)?, media::count_fetches(db, cap)?))
}

/// The backups in `dir`, oldest first.
pub async fn backups(dir: PathBuf) -> Result<Vec<BackupInfo>, ServiceError> {
    blocking(move || Ok(Backups::new(dir).list()?)).await
}

/// Whether the store answers a read (its schema version), and its engine's figures.
pub fn store_readiness(db: &Db) -> (Result<Option<u32>, StoreError>, DbStats) {
    (db.schema_version(), db.stats())
}
