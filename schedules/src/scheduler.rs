//! The scheduler: tokio-cron-scheduler decides when; each job's supervised
//! actor ([`crate::job_actor`]) does the work.

pub use crate::job::{Figures, JobError, JobSpec, Task};
use crate::job_actor::{last_success, Fire, JobActor, JobState, Node};
use actix::{Addr, Arbiter};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio_cron_scheduler::{Job, JobScheduler};
use utalk_actors::Journal;
use utalk_storage::model::{job_run, JobOutcome, JobRun};
use utalk_storage::{Db, Timestamp};

/// A job as operators see it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobView {
    /// Name.
    pub name: String,
    /// Cron expression (with seconds).
    pub schedule: String,
    /// Whether a run is going on now.
    pub running: bool,
    /// The latest run.
    pub last_run: Option<utalk_actors::views::JobRun>,
    /// When it fires next.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_run_at: Option<Timestamp>,
}

/// Why a job could not be run now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunError {
    /// No job by that name.
    #[error("no job named `{0}`")]
    Unknown(String),
    /// A bad schedule.
    #[error("job `{name}`: schedule `{schedule}` is not a cron expression: {message}")]
    BadSchedule {
        /// Job.
        name: String,
        /// Expression.
        schedule: String,
        /// Parser's message.
        message: String,
    },
    /// The scheduler could not start.
    #[error("scheduler: {0}")]
    Scheduler(String),
}

/// The running scheduler.
pub struct Scheduler {
    db: Db,
    jobs: Vec<(Arc<JobState>, Addr<JobActor>)>,
    _inner: Mutex<Option<JobScheduler>>,
    /// The thread the job actors run on, apart from the HTTP workers and the conversations.
    arbiter: Arbiter,
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        // The actors hold the journal and so the store: they go with the scheduler.
        self.arbiter.stop();
    }
}

fn parse(spec: &JobSpec) -> Result<croner::Cron, RunError> {
    let parser = croner::parser::CronParser::builder().seconds(croner::parser::Seconds::Required).build();
    parser.parse(&spec.schedule).map_err(|e| RunError::BadSchedule {
        name: spec.name.into(),
        schedule: spec.schedule.clone(),
        message: e.to_string(),
    })
}

fn next_after(cron: &croner::Cron, t: Timestamp) -> Option<Timestamp> {
    let from = chrono::DateTime::from_timestamp_millis(t.millis())?;
    cron.find_next_occurrence(&from, false).ok().map(|d| Timestamp(d.timestamp_millis()))
}

impl Scheduler {
    /// Checks every schedule, starts each job's actor and the cron ticks,
    /// and runs once now each job that missed a scheduled run while the
    /// server was down. Must run inside an actix `System`.
    pub async fn start(db: Db, journal: Journal, specs: Vec<JobSpec>) -> Result<Arc<Scheduler>, RunError> {
        let node = Arc::new(Node { cluster: journal.cluster().clone(), journal });
        let states = specs
            .into_iter()
            .map(|spec| Ok(Arc::new(JobState { cron: parse(&spec)?, spec, running: AtomicBool::new(false) })))
            .collect::<Result<Vec<_>, RunError>>()?;
        let arbiter = Arbiter::new();
        let jobs: Vec<_> =
            states.into_iter().map(|state| (state.clone(), JobActor::start(node.clone(), state, &arbiter.handle()))).collect();
        let sched = JobScheduler::new().await.map_err(|e| RunError::Scheduler(e.to_string()))?;
        for (state, addr) in &jobs {
            let addr = addr.clone();
            let job = Job::new_async(state.spec.schedule.as_str(), move |_id, _lock| {
                let addr = addr.clone();
                Box::pin(async move {
                    // The run is recorded by the actor; a full mailbox or a stopped system loses only this tick.
                    let _ = addr.send(Fire { trigger: "schedule" }).await;
                })
            })
            .map_err(|e| RunError::Scheduler(e.to_string()))?;
            sched.add(job).await.map_err(|e| RunError::Scheduler(e.to_string()))?;
        }
        sched.start().await.map_err(|e| RunError::Scheduler(e.to_string()))?;
        let me = Arc::new(Scheduler { db, jobs, _inner: Mutex::new(Some(sched)), arbiter });
        for (state, addr) in &me.jobs {
            // The gauge survives restarts: alerts on a stale backup must not fire because the process is new.
            if let Ok(runs) = job_run::recent(&me.db, state.spec.name, 50) {
                if let Some(ok) = runs.iter().find(|r| r.outcome == JobOutcome::Ok) {
                    last_success(state.spec.name, ok.finished_at);
                }
            }
            if me.missed(state) {
                tracing::info!(job = state.spec.name, "a scheduled run was missed while the server was down; running it once now");
                addr.do_send(Fire { trigger: "catch_up" });
            }
        }
        Ok(me)
    }

    /// Whether a scheduled time passed since the last run (one catch-up covers any number missed).
    fn missed(&self, state: &JobState) -> bool {
        match job_run::last(&self.db, state.spec.name) {
            Ok(Some(last)) => next_after(&state.cron, last.started_at).is_some_and(|t| t <= Timestamp::now()),
            // Never run: a fresh database has nothing to catch up.
            Ok(None) => false,
            Err(e) => {
                tracing::error!(job = state.spec.name, error = %e, "reading the last run failed");
                false
            }
        }
    }

    /// Every job with its last run.
    pub fn jobs(&self) -> Vec<JobView> {
        self.jobs
            .iter()
            .map(|(s, _)| JobView {
                name: s.spec.name.into(),
                schedule: s.spec.schedule.clone(),
                running: s.running.load(Ordering::Relaxed),
                last_run: job_run::last(&self.db, s.spec.name).ok().flatten().map(Into::into),
                next_run_at: next_after(&s.cron, Timestamp::now()),
            })
            .collect()
    }

    /// Runs job `name` now and returns its run (`skipped` if it is running already).
    pub async fn run_now(&self, name: &str) -> Result<JobRun, RunError> {
        let (_, addr) = self.jobs.iter().find(|(s, _)| s.spec.name == name).ok_or_else(|| RunError::Unknown(name.into()))?;
        addr.send(Fire { trigger: "manual" }).await.map_err(|e| RunError::Scheduler(format!("job `{name}`: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::future::BoxFuture;
    use std::collections::BTreeMap;
    use std::time::Duration;

    #[test]
    fn schedules_need_seconds_and_compute_the_next_time() {
        let spec = |s: &str| JobSpec {
            name: "t",
            schedule: s.into(),
            retries: 0,
            retry_delay: Duration::ZERO,
            task: Arc::new(Nothing),
            once: false,
        };
        let c = parse(&spec("0 */15 * * * *")).expect("valid");
        let t = Timestamp::parse_rfc3339("2026-11-23T10:07:00Z").expect("time");
        assert_eq!(next_after(&c, t).map(|t| t.to_rfc3339()), Some("2026-11-23T10:15:00.000Z".into()));
        assert!(matches!(parse(&spec("every minute")), Err(RunError::BadSchedule { .. })));
    }

    struct Nothing;
    impl Task for Nothing {
        fn run(&self) -> BoxFuture<'static, Figures> {
            Box::pin(async { Ok(BTreeMap::new()) })
        }
    }
}
