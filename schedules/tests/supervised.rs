//! Jobs run in supervised actors: a panicking run is recorded as failed,
//! the actor restarts, and the next scheduled run happens on time.

use futures_util::future::BoxFuture;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use utalk_actors::durability::Journal;
use utalk_actors::{Durability, StoreWriter};
use utalk_schedules::scheduler::Figures;
use utalk_schedules::{JobSpec, Scheduler, Task};
use utalk_storage::model::{job_run, JobOutcome, JobRun};
use utalk_storage::{Db, DbOptions};

/// Panics in its first attempt, succeeds after.
struct PanicsOnce {
    calls: Arc<AtomicUsize>,
}

impl Task for PanicsOnce {
    fn run(&self) -> BoxFuture<'static, Figures> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            if call == 0 {
                panic!("the first run trips over a bad record");
            }
            Ok(BTreeMap::from([("call".to_string(), call as f64)]))
        })
    }
}

fn spec(task: Arc<dyn Task>) -> JobSpec {
    // Every second; three retries, which a panic does not use.
    JobSpec { name: "flaky", schedule: "* * * * * *".into(), retries: 3, retry_delay: Duration::from_millis(10), task, once: false }
}

/// Oldest first.
fn runs(db: &Db) -> Vec<JobRun> {
    let mut runs = job_run::recent(db, "flaky", 50).expect("runs");
    runs.sort_by_key(|r| r.started_at);
    runs
}

#[actix::test]
async fn a_panicking_run_is_recorded_as_failed_and_the_next_scheduled_run_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), &DbOptions::default()).unwrap();
    let writer = StoreWriter::start(db.clone(), Durability::Sync).unwrap();
    let journal = Journal::standalone(&db, writer.clone(), "test");
    let calls = Arc::new(AtomicUsize::new(0));
    let scheduler = Scheduler::start(db.clone(), journal, vec![spec(Arc::new(PanicsOnce { calls: calls.clone() }))]).await.unwrap();

    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while runs(&db).iter().filter(|r| r.outcome == JobOutcome::Ok).count() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "no two ok runs after the panic; runs: {:?}", runs(&db));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let all = runs(&db);
    let first = &all[0];
    assert_eq!(first.outcome, JobOutcome::Failed, "{all:?}");
    assert_eq!(first.trigger, "schedule");
    assert_eq!(first.attempts, 1, "a panic is not retried in the same run");
    assert_eq!(first.error.as_deref(), Some("panicked: the first run trips over a bad record"));
    // A tick that comes while the panic is still unwinding (its backtrace is
    // captured, which can take a second on a busy machine) is skipped, as
    // any overlapping run is; the run after it is the next real one.
    let skipped = all[1..].iter().take_while(|r| r.outcome == JobOutcome::Skipped).count();
    for r in &all[1..=skipped] {
        assert_eq!(r.error.as_deref(), Some("the previous run was still going"), "{all:?}");
    }
    assert!(skipped <= 1, "at most the one tick inside the failed run is skipped: {all:?}");
    let next = &all[1 + skipped];
    assert_eq!(next.outcome, JobOutcome::Ok, "{all:?}");
    assert_eq!(next.trigger, "schedule");
    assert_eq!(next.figures.get("call"), Some(&1.0));
    // On time: the tick after the failed one, a second later, not a retry or a catch-up.
    let gap = next.started_at.millis() - first.started_at.millis();
    assert!((500..=2_500).contains(&gap), "the next run started {gap} ms after the failed one");

    // The restarted actor answers on demand too, and nothing is left marked running.
    let manual = scheduler.run_now("flaky").await.unwrap();
    assert!(matches!(manual.outcome, JobOutcome::Ok | JobOutcome::Skipped), "{manual:?}");
    drop(scheduler);
    writer.shutdown();
}
