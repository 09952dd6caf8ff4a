//! API views of the job run records: the shape REST and the socket show, kept apart
//! from the disk records so a rename here cannot change what is stored.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utalk_storage::model::job_run as storage;
use utalk_storage::Timestamp;
use utoipa::ToSchema;
use uuid::Uuid;

/// How a job run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobOutcome {
    /// It did its work.
    Ok,
    /// Every attempt failed; `error` says why.
    Failed,
    /// Not run: the previous run of the same job was still going.
    Skipped,
}

impl From<storage::JobOutcome> for JobOutcome {
    fn from(r: storage::JobOutcome) -> Self {
        match r {
            storage::JobOutcome::Ok => JobOutcome::Ok,
            storage::JobOutcome::Failed => JobOutcome::Failed,
            storage::JobOutcome::Skipped => JobOutcome::Skipped,
        }
    }
}

/// One run of a scheduled job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobRun {
    /// Id.
    pub id: Uuid,
    /// Job name.
    pub name: String,
    /// `schedule`, `manual` or `catch_up`.
    pub trigger: String,
    /// Started.
    #[schema(value_type = String, format = DateTime)]
    pub started_at: Timestamp,
    /// Finished.
    #[schema(value_type = String, format = DateTime)]
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

impl From<storage::JobRun> for JobRun {
    fn from(r: storage::JobRun) -> Self {
        Self {
            id: r.id,
            name: r.name,
            trigger: r.trigger,
            started_at: r.started_at,
            finished_at: r.finished_at,
            outcome: r.outcome.into(),
            attempts: r.attempts,
            figures: r.figures,
            error: r.error,
        }
    }
}
