//! The supervised actor that runs a background worker's loop (delivery,
//! media downloads): if the loop ever ends, the actor stops and its
//! supervisor starts it again, from the worker's durable jobs.

use crate::cluster::Leases;
use crate::jobs::signal::JobSignal;
use actix::prelude::*;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// Longest sleep between passes when nothing wakes a worker.
pub const IDLE_POLL: Duration = Duration::from_secs(30);

/// How long to sleep until the earliest due job, `ms_until_due` from now (none: the idle poll).
pub fn wait_for(ms_until_due: Option<i64>) -> Duration {
    ms_until_due.map(|ms| Duration::from_millis(ms.max(1) as u64)).unwrap_or(IDLE_POLL).min(IDLE_POLL)
}

/// Runs `pass` over a worker's durable jobs until the process stops. A pass
/// answers how long to wait: zero looks again at once; otherwise the worker
/// sleeps until then or until `signal` says a new job is durable. A failed
/// pass is logged as `what` and tried again after a second.
///
/// Passes run only on the node that leads the cluster's run-once work
/// ([`crate::cluster::leads`]; a node alone always does), so a job is not
/// done twice by two nodes.
pub async fn run_passes<F, Fut>(what: &str, signal: &JobSignal, leases: &dyn Leases, mut pass: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Duration, utalk_storage::StoreError>>,
{
    loop {
        // Once in the cluster: on the leading node (one node alone always leads).
        if !crate::cluster::leads(leases) {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        let wait = match pass().await {
            Ok(wait) => wait,
            Err(e) => {
                tracing::error!(error = %e, "{what} pass failed; retrying");
                Duration::from_secs(1)
            }
        };
        if wait.is_zero() {
            continue;
        }
        tokio::select! {
            _ = signal.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// A background loop over durable jobs.
pub trait Worker: Send + Sync + 'static {
    /// Name for logs.
    const NAME: &'static str;
    /// Works until the process stops; returning means something went wrong.
    fn run(self: Arc<Self>) -> impl Future<Output = ()> + 'static;
}

/// The actor around a [`Worker`].
pub struct WorkerActor<W: Worker> {
    inner: Arc<W>,
}

impl<W: Worker> WorkerActor<W> {
    /// Starts the worker under a supervisor.
    pub fn start(inner: Arc<W>) -> Addr<WorkerActor<W>> {
        actix::Supervisor::start(move |_| WorkerActor { inner })
    }
}

impl<W: Worker> Actor for WorkerActor<W> {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        let inner = self.inner.clone();
        ctx.spawn(actix::fut::wrap_future(inner.run()).map(|_, _act: &mut Self, ctx: &mut Context<Self>| ctx.stop()));
    }
}

impl<W: Worker> actix::Supervised for WorkerActor<W> {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        tracing::warn!(worker = W::NAME, "worker restarting");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_until_the_earliest_due_job_within_the_idle_poll() {
        assert_eq!(wait_for(None), IDLE_POLL);
        assert_eq!(wait_for(Some(250)), Duration::from_millis(250));
        assert_eq!(wait_for(Some(-5)), Duration::from_millis(1), "overdue: look again almost at once");
        assert_eq!(wait_for(Some(10 * 60_000)), IDLE_POLL);
    }
}
