//! What a job is: its spec, its task, and why an attempt fails. Shared by
//! the scheduler, which decides when, and the job's actor, which runs it.

use futures_util::future::BoxFuture;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Why an attempt of a job failed; its text is recorded with the run.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Reading the store failed.
    #[error(transparent)]
    Store(#[from] utalk_storage::StoreError),
    /// A write through the journal failed.
    #[error(transparent)]
    Journal(#[from] utalk_actors::durability::JournalError),
    /// A write of this node's own records failed.
    #[error(transparent)]
    Write(#[from] utalk_actors::durability::WriteError),
    /// The job's own step failed.
    #[error(transparent)]
    Step(Box<dyn std::error::Error + Send + Sync>),
    /// Some of the job's items failed; the others were done.
    #[error("{0}")]
    Partial(String),
    /// The attempt panicked; the job's actor restarts.
    #[error("panicked: {0}")]
    Panicked(String),
}

impl JobError {
    /// A failure of one of the job's own steps.
    pub fn step(e: impl std::error::Error + Send + Sync + 'static) -> JobError {
        JobError::Step(Box::new(e))
    }
}

/// What a job does and its figures, recorded with the run.
pub type Figures = Result<BTreeMap<String, f64>, JobError>;

/// What a job does; its figures are recorded with the run.
pub trait Task: Send + Sync + 'static {
    /// One attempt.
    fn run(&self) -> BoxFuture<'static, Figures>;
}

/// A job: name, schedule, retry policy and task.
#[derive(Clone)]
pub struct JobSpec {
    /// Name (`backup`, `retention`, …).
    pub name: &'static str,
    /// Cron expression with seconds: `sec min hour day month weekday`.
    pub schedule: String,
    /// Attempts after a failed one.
    pub retries: u32,
    /// Wait between attempts.
    pub retry_delay: Duration,
    /// The work.
    pub task: Arc<dyn Task>,
    /// In a cluster, runs on one node only (its effects leave the node: alerts,
    /// messages); other jobs run on every node over its own copy of the data.
    pub once: bool,
}
