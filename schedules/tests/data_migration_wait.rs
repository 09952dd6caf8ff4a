//! A background data migration that may not run yet (a node of the cluster
//! cannot read what it would write) waits without failing the job: it says
//! why once, runs no step, holds back the ones after it, and goes on when
//! it may.

use futures_util::future::BoxFuture;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use utalk_actors::durability::Journal;
use utalk_actors::{Durability, StoreWriter};
use utalk_schedules::data_migrations::{DataMigration, Runner, Step, Throttle};
use utalk_schedules::scheduler::JobError;
use utalk_schedules::Task;
use utalk_storage::model::data_migration;
use utalk_storage::{Batch, Db, DbOptions};

/// Counts its steps; ready only when told.
struct Gated {
    name: &'static str,
    ready: Arc<AtomicBool>,
    steps: Arc<AtomicU64>,
}

impl DataMigration for Gated {
    fn name(&self) -> &'static str {
        self.name
    }
    fn description(&self) -> &'static str {
        "one step of one record"
    }
    fn ready(&self) -> Result<(), String> {
        if self.ready.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err("waiting for node old to read the new format".into())
        }
    }
    fn step(&self, _cursor: Option<Vec<u8>>, _limit: usize) -> BoxFuture<'static, Result<Step, JobError>> {
        self.steps.fetch_add(1, Ordering::SeqCst);
        Box::pin(async { Ok(Step::new(Batch::new(), None, 1)) })
    }
}

#[actix::test]
async fn a_migration_that_may_not_run_waits_says_why_once_and_goes_on_when_it_may() {
    let tmp = tempfile::tempdir().unwrap();
    let db = Db::open(tmp.path(), &DbOptions::default()).unwrap();
    let writer = StoreWriter::start(db.clone(), Durability::Sync).unwrap();
    let journal = Journal::standalone(&db, writer.clone(), "node");
    let ready = Arc::new(AtomicBool::new(false));
    let (first_steps, second_steps) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let runner = Runner {
        db: db.clone(),
        journal,
        migrations: vec![
            Arc::new(Gated { name: "gated", ready: ready.clone(), steps: first_steps.clone() }),
            Arc::new(Gated { name: "after", ready: Arc::new(AtomicBool::new(true)), steps: second_steps.clone() }),
        ],
        throttle: Throttle { duty: 1.0, run_for: Duration::from_secs(60) },
    };

    let figures = runner.run().await.expect("waiting is no failure");
    assert_eq!((figures["migrated"], figures["pending"]), (0.0, 1.0));
    assert_eq!((first_steps.load(Ordering::SeqCst), second_steps.load(Ordering::SeqCst)), (0, 0), "no step, and the next one waits too");
    let waiting = data_migration::get(&db, "gated").unwrap().expect("on record for operators");
    assert_eq!(waiting.last_error.as_deref(), Some("waiting for node old to read the new format"));
    assert!(waiting.finished_at.is_none() && waiting.processed == 0);
    assert!(data_migration::get(&db, "after").unwrap().is_none());

    // The same reason again is not written again.
    runner.run().await.unwrap();
    assert_eq!(data_migration::get(&db, "gated").unwrap().map(|p| p.updated_at), Some(waiting.updated_at));

    ready.store(true, Ordering::SeqCst);
    let figures = runner.run().await.unwrap();
    assert_eq!((figures["migrated"], figures["pending"]), (2.0, 0.0));
    let done = data_migration::get(&db, "gated").unwrap().unwrap();
    assert!(done.finished_at.is_some() && done.last_error.is_none(), "{done:?}");
    assert!(data_migration::get(&db, "after").unwrap().is_some_and(|p| p.finished_at.is_some()));
    writer.shutdown();
}
