//! The scheduler: one supervised loop per job, fired by tokio-cron-scheduler.

use futures_util::future::BoxFuture;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_cron_scheduler::{Job, JobScheduler};
use utalk_actors::cluster::{leads, Cluster, JobLock};
use utalk_actors::Journal;
use utalk_storage::model::{job_run, JobOutcome, JobRun};
use utalk_storage::{Batch, Db, Timestamp};
use uuid::Uuid;

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

struct JobState {
    spec: JobSpec,
    cron: croner::Cron,
    running: AtomicBool,
}

/// The running scheduler.
pub struct Scheduler {
    db: Db,
    journal: Journal,
    cluster: Arc<dyn Cluster>,
    jobs: Vec<Arc<JobState>>,
    _inner: Mutex<Option<JobScheduler>>,
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
    /// Checks every schedule, starts the cron ticks, and runs once now each job
    /// that missed a scheduled run while the server was down.
    pub async fn start(db: Db, journal: Journal, specs: Vec<JobSpec>) -> Result<Arc<Scheduler>, RunError> {
        let cluster = journal.cluster().clone();
        let jobs = specs
            .into_iter()
            .map(|spec| Ok(Arc::new(JobState { cron: parse(&spec)?, spec, running: AtomicBool::new(false) })))
            .collect::<Result<Vec<_>, RunError>>()?;
        let sched = JobScheduler::new().await.map_err(|e| RunError::Scheduler(e.to_string()))?;
        let me = Arc::new(Scheduler { db, journal, cluster, jobs, _inner: Mutex::new(None) });
        for state in &me.jobs {
            let (me2, state2) = (Arc::downgrade(&me), state.clone());
            let job = Job::new_async(state.spec.schedule.as_str(), move |_id, _lock| {
                let (me, state) = (me2.clone(), state2.clone());
                Box::pin(async move {
                    if let Some(me) = me.upgrade() {
                        me.execute(&state, "schedule").await;
                    }
                })
            })
            .map_err(|e| RunError::Scheduler(e.to_string()))?;
            sched.add(job).await.map_err(|e| RunError::Scheduler(e.to_string()))?;
        }
        sched.start().await.map_err(|e| RunError::Scheduler(e.to_string()))?;
        if let Ok(mut g) = me._inner.lock() {
            *g = Some(sched);
        }
        for state in &me.jobs {
            // The gauge survives restarts: alerts on a stale backup must not fire because the process is new.
            if let Ok(runs) = job_run::recent(&me.db, state.spec.name, 50) {
                if let Some(ok) = runs.iter().find(|r| r.outcome == JobOutcome::Ok) {
                    last_success(state.spec.name, ok.finished_at);
                }
            }
            if me.missed(state) {
                let (me, state) = (me.clone(), state.clone());
                tokio::spawn(async move {
                    tracing::info!(job = state.spec.name, "a scheduled run was missed while the server was down; running it once now");
                    me.execute(&state, "catch_up").await;
                });
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
            .map(|s| JobView {
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
        let state = self.jobs.iter().find(|s| s.spec.name == name).ok_or_else(|| RunError::Unknown(name.into()))?;
        Ok(self.execute(state, "manual").await)
    }

    /// One run: never overlapping itself, retried by policy, recorded.
    async fn execute(&self, state: &JobState, trigger: &str) -> JobRun {
        let started_at = Timestamp::now();
        let mut run = JobRun {
            id: Uuid::now_v7(),
            name: state.spec.name.into(),
            trigger: trigger.into(),
            started_at,
            finished_at: started_at,
            outcome: JobOutcome::Skipped,
            attempts: 0,
            figures: BTreeMap::new(),
            error: None,
        };
        if state.running.swap(true, Ordering::AcqRel) {
            tracing::warn!(job = state.spec.name, trigger, "previous run still going; this one is skipped");
            run.error = Some("the previous run was still going".into());
            self.record(&run).await;
            return run;
        }
        let mut lock = match self.once_lock(state, trigger).await {
            Ok(lock) => lock,
            Err(None) => {
                // Another node leads the run-once work: its runs are the ones on record.
                state.running.store(false, Ordering::Release);
                return run;
            }
            Err(Some(why)) => {
                state.running.store(false, Ordering::Release);
                tracing::info!(job = state.spec.name, trigger, why, "run skipped");
                run.error = Some(why);
                self.record(&run).await;
                return run;
            }
        };
        loop {
            run.attempts += 1;
            let Some(result) = attempt_holding(state.spec.task.as_ref(), lock.as_mut()).await else {
                run.outcome = JobOutcome::Failed;
                run.error = Some("stopped: the cluster lock could not be renewed, so another node may run the job".into());
                tracing::warn!(job = state.spec.name, "job stopped: its cluster lock was lost");
                break;
            };
            match result {
                Ok(figures) => {
                    run.outcome = JobOutcome::Ok;
                    run.figures = figures;
                    run.error = None;
                    break;
                }
                Err(e) => {
                    tracing::warn!(job = state.spec.name, attempt = run.attempts, error = %e, "job attempt failed");
                    run.outcome = JobOutcome::Failed;
                    run.error = Some(e.to_string());
                    if run.attempts > state.spec.retries {
                        break;
                    }
                    tokio::time::sleep(state.spec.retry_delay).await;
                }
            }
        }
        drop(lock);
        state.running.store(false, Ordering::Release);
        run.finished_at = Timestamp::now();
        tracing::info!(job = state.spec.name, trigger, outcome = ?run.outcome, attempts = run.attempts, ms = run.finished_at.millis() - started_at.millis(), "job run");
        self.record(&run).await;
        run
    }

    /// For a run-once job: the lock that keeps a second node from running it
    /// meanwhile (one node alone always leads and gets it). `Err(None)`: a
    /// scheduled run on a node that does not lead (not recorded);
    /// `Err(Some(why))`: skipped, on record.
    async fn once_lock(&self, state: &JobState, trigger: &str) -> Result<Option<JobLock>, Option<String>> {
        if !state.spec.once {
            return Ok(None);
        }
        if trigger != "manual" && !leads(self.cluster.as_ref()) {
            return Err(None);
        }
        match self.cluster.try_lock(state.spec.name).await {
            Ok(Some(lock)) => Ok(Some(lock)),
            Ok(None) => Err(Some("another node is running it".into())),
            Err(e) => Err(Some(format!("cannot take the cluster lock: {e}"))),
        }
    }

    async fn record(&self, run: &JobRun) {
        let outcome = match run.outcome {
            JobOutcome::Ok => "ok",
            JobOutcome::Failed => "failed",
            JobOutcome::Skipped => "skipped",
        };
        // `job_name`, not `job`: Prometheus sets `job` to the scrape job.
        metrics::counter!("job_runs_total", "job_name" => run.name.clone(), "outcome" => outcome).increment(1);
        if run.outcome != JobOutcome::Skipped {
            let secs = (run.finished_at.millis() - run.started_at.millis()).max(0) as f64 / 1000.0;
            metrics::histogram!("job_duration_seconds", "job_name" => run.name.clone()).record(secs);
        }
        if run.outcome == JobOutcome::Ok {
            last_success(&run.name, run.finished_at);
        }
        let mut b = Batch::new();
        let built = job_run::put(&mut b, run).map(|_| b);
        // A node's job history is its own.
        self.journal.commit_node_or_log(built, "recording a job run").await;
    }
}

/// Sets the gauge alert rules watch (a backup older than its schedule, a rollup that stopped).
fn last_success(job: &str, at: Timestamp) {
    metrics::gauge!("job_last_success_timestamp_seconds", "job_name" => job.to_string()).set(at.millis() as f64 / 1000.0);
}

/// Runs one attempt of `task`; `None` when `lock` was lost first. A job
/// that must run once stops there: another node may be running it now.
async fn attempt_holding(task: &dyn Task, lock: Option<&mut JobLock>) -> Option<Figures> {
    let attempt = task.run();
    match lock {
        Some(l) => tokio::select! {
            r = attempt => Some(r),
            _ = l.lost() => None,
        },
        None => Some(attempt.await),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_attempt_stops_when_its_lock_is_lost_and_not_before() {
        let (lost, rx) = tokio::sync::watch::channel(false);
        let mut lock = JobLock::renewed(|| {}, rx);
        let attempt = attempt_holding(&Forever, Some(&mut lock));
        tokio::pin!(attempt);
        assert!(tokio::time::timeout(Duration::from_millis(100), &mut attempt).await.is_err(), "a held lock lets the attempt go on");
        lost.send(true).unwrap();
        let stopped = tokio::time::timeout(Duration::from_secs(5), attempt).await.expect("the attempt stops once the lock is lost");
        assert!(stopped.is_none());

        // A lock that is never lost (its renewal ended with a release) leaves the result alone.
        let mut held = JobLock::renewed(|| {}, tokio::sync::watch::channel(false).1);
        assert!(matches!(attempt_holding(&Nothing, Some(&mut held)).await, Some(Ok(_))));
        assert!(matches!(attempt_holding(&Nothing, None).await, Some(Ok(_))));
    }

    struct Forever;
    impl Task for Forever {
        fn run(&self) -> BoxFuture<'static, Figures> {
            Box::pin(std::future::pending())
        }
    }

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
