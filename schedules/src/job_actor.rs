//! The actor that runs one job. The cron tick, the catch-up after downtime
//! and `run_now` all send it [`Fire`]; the actor does the run: never two at
//! once, retried by policy, held to the cluster lock for run-once jobs, and
//! recorded.
//!
//! It runs under an actix supervisor. An attempt that panics is caught,
//! recorded as a failed run (the panic's message is the run's error), and
//! the actor stops; the supervisor starts it again with the same mailbox,
//! so the next scheduled run is delivered and happens on time.

use crate::job::{Figures, JobError, JobSpec};
use actix::prelude::*;
use futures_util::FutureExt;
use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use utalk_actors::cluster::{leads, Cluster, JobLock};
use utalk_actors::Journal;
use utalk_storage::model::{job_run, JobOutcome, JobRun};
use utalk_storage::{Batch, Timestamp};
use uuid::Uuid;

/// A job's spec and what outlives its actor's restarts.
pub(crate) struct JobState {
    pub(crate) spec: JobSpec,
    pub(crate) cron: croner::Cron,
    /// Whether a run is going on (read by the job list).
    pub(crate) running: AtomicBool,
}

/// What every job's actor needs from the node.
pub(crate) struct Node {
    pub(crate) journal: Journal,
    pub(crate) cluster: Arc<dyn Cluster>,
}

/// Run the job now; answers with the run as recorded.
#[derive(Message)]
#[rtype(result = "JobRun")]
pub(crate) struct Fire {
    /// `schedule`, `catch_up` or `manual`.
    pub(crate) trigger: &'static str,
}

/// One job's actor.
pub(crate) struct JobActor {
    node: Arc<Node>,
    state: Arc<JobState>,
}

impl JobActor {
    /// Starts the job's actor under a supervisor on `arbiter`.
    pub(crate) fn start(node: Arc<Node>, state: Arc<JobState>, arbiter: &ArbiterHandle) -> Addr<JobActor> {
        Supervisor::start_in_arbiter(arbiter, move |_| JobActor { node, state })
    }
}

impl Actor for JobActor {
    type Context = Context<Self>;
}

impl Supervised for JobActor {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        // The run that panicked is on record; nothing of it is still going.
        self.state.running.store(false, Ordering::Release);
        metrics::counter!("job_restarts_total", "job_name" => self.state.spec.name).increment(1);
        tracing::warn!(job = self.state.spec.name, "job actor restarting after a panic");
    }
}

impl Handler<Fire> for JobActor {
    type Result = ResponseActFuture<Self, JobRun>;

    fn handle(&mut self, msg: Fire, _ctx: &mut Context<Self>) -> Self::Result {
        let (node, state) = (self.node.clone(), self.state.clone());
        Box::pin(actix::fut::wrap_future::<_, Self>(async move { execute(&node, &state, msg.trigger).await }).map(
            |(run, panicked), _act, ctx| {
                if panicked {
                    ctx.stop();
                }
                run
            },
        ))
    }
}

/// One run; also says whether an attempt panicked.
async fn execute(node: &Node, state: &JobState, trigger: &str) -> (JobRun, bool) {
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
        record(node, &run).await;
        return (run, false);
    }
    let mut lock = match once_lock(node, state, trigger).await {
        Ok(lock) => lock,
        Err(None) => {
            // Another node leads the run-once work: its runs are the ones on record.
            state.running.store(false, Ordering::Release);
            return (run, false);
        }
        Err(Some(why)) => {
            state.running.store(false, Ordering::Release);
            tracing::info!(job = state.spec.name, trigger, why, "run skipped");
            run.error = Some(why);
            record(node, &run).await;
            return (run, false);
        }
    };
    let mut panicked = false;
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
                run.outcome = JobOutcome::Failed;
                run.error = Some(e.to_string());
                if matches!(e, JobError::Panicked(_)) {
                    // No retry: the actor restarts with fresh state, and the next scheduled run is the retry.
                    tracing::error!(job = state.spec.name, attempt = run.attempts, error = %e, "job attempt panicked");
                    panicked = true;
                    break;
                }
                tracing::warn!(job = state.spec.name, attempt = run.attempts, error = %e, "job attempt failed");
                if run.attempts > state.spec.retries {
                    break;
                }
                tokio::time::sleep(state.spec.retry_delay).await;
            }
        }
    }
    drop(lock);
    if !panicked {
        // After a panic the actor stops once the run is recorded; until it
        // restarts (which clears this), a new run must not start, since the
        // stop would cut it off unrecorded.
        state.running.store(false, Ordering::Release);
    }
    run.finished_at = Timestamp::now();
    tracing::info!(job = state.spec.name, trigger, outcome = ?run.outcome, attempts = run.attempts, ms = run.finished_at.millis() - started_at.millis(), "job run");
    record(node, &run).await;
    (run, panicked)
}

/// For a run-once job: the lock that keeps a second node from running it
/// meanwhile (one node alone always leads and gets it). `Err(None)`: a
/// scheduled run on a node that does not lead (not recorded);
/// `Err(Some(why))`: skipped, on record.
async fn once_lock(node: &Node, state: &JobState, trigger: &str) -> Result<Option<JobLock>, Option<String>> {
    if !state.spec.once {
        return Ok(None);
    }
    if trigger != "manual" && !leads(node.cluster.as_ref()) {
        return Err(None);
    }
    match node.cluster.try_lock(state.spec.name).await {
        Ok(Some(lock)) => Ok(Some(lock)),
        Ok(None) => Err(Some("another node is running it".into())),
        Err(e) => Err(Some(format!("cannot take the cluster lock: {e}"))),
    }
}

async fn record(node: &Node, run: &JobRun) {
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
    node.journal.commit_node_or_log(built, "recording a job run").await;
}

/// Sets the gauge alert rules watch (a backup older than its schedule, a rollup that stopped).
pub(crate) fn last_success(job: &str, at: Timestamp) {
    metrics::gauge!("job_last_success_timestamp_seconds", "job_name" => job.to_string()).set(at.millis() as f64 / 1000.0);
}

/// One attempt of `task`, a panic in it (building its future or polling
/// it) turned into [`JobError::Panicked`].
async fn attempt(task: &dyn crate::job::Task) -> Figures {
    let fut = match std::panic::catch_unwind(AssertUnwindSafe(|| task.run())) {
        Ok(fut) => fut,
        Err(payload) => return Err(JobError::Panicked(panic_message(payload.as_ref()))),
    };
    AssertUnwindSafe(fut).catch_unwind().await.unwrap_or_else(|payload| Err(JobError::Panicked(panic_message(payload.as_ref()))))
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// Runs one attempt of `task`; `None` when `lock` was lost first. A job
/// that must run once stops there: another node may be running it now.
async fn attempt_holding(task: &dyn crate::job::Task, lock: Option<&mut JobLock>) -> Option<Figures> {
    let attempt = attempt(task);
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
    use crate::job::Task;
    use futures_util::future::BoxFuture;
    use std::time::Duration;

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

    #[tokio::test]
    async fn a_panic_while_building_or_polling_the_attempt_is_an_error_with_its_message() {
        match attempt(&PanicsBuilding).await {
            Err(JobError::Panicked(m)) => assert_eq!(m, "no future for you"),
            other => panic!("expected a caught panic, got {other:?}"),
        }
        match attempt(&PanicsPolling).await {
            Err(JobError::Panicked(m)) => assert_eq!(m, "disk 7 is gone"),
            other => panic!("expected a caught panic, got {other:?}"),
        }
    }

    struct Forever;
    impl Task for Forever {
        fn run(&self) -> BoxFuture<'static, Figures> {
            Box::pin(std::future::pending())
        }
    }

    struct Nothing;
    impl Task for Nothing {
        fn run(&self) -> BoxFuture<'static, Figures> {
            Box::pin(async { Ok(BTreeMap::new()) })
        }
    }

    struct PanicsBuilding;
    impl Task for PanicsBuilding {
        fn run(&self) -> BoxFuture<'static, Figures> {
            panic!("no future for you")
        }
    }

    struct PanicsPolling;
    impl Task for PanicsPolling {
        fn run(&self) -> BoxFuture<'static, Figures> {
            let disk = 7;
            Box::pin(async move { panic!("disk {disk} is gone") })
        }
    }
}
