//! A background data migration SIGKILLed halfway resumes from its cursor
//! and finishes with every record migrated exactly once.
//!
//! The test runs the migration in a child process (this same test binary,
//! asked to run this test in the child's role) over its own database,
//! kills it with SIGKILL once the progress on disk passes half, runs it
//! again to the end, and counts. Records: 1,000,000, or
//! `UTALK_DATA_MIGRATION_RECORDS`.

use futures_util::future::BoxFuture;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use utalk_actors::durability::Journal;
use utalk_actors::{Durability, StoreWriter};
use utalk_schedules::data_migrations::{DataMigration, Runner, Step, Throttle};
use utalk_schedules::scheduler::JobError;
use utalk_schedules::Task;
use utalk_storage::model::data_migration;
use utalk_storage::{Batch, Db, DbOptions, Map};

const CHILD: &str = "UTALK_DATA_MIGRATION_CHILD";
const PREFIX: &[u8] = b"item/";
const NAME: &str = "count_up";

fn records() -> u64 {
    std::env::var("UTALK_DATA_MIGRATION_RECORDS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000)
}

fn item_key(n: u64) -> Vec<u8> {
    [PREFIX, &n.to_be_bytes()].concat()
}

/// Adds one to every item's counter: a record migrated twice would show 2.
struct CountUp {
    db: Db,
}

impl DataMigration for CountUp {
    fn name(&self) -> &'static str {
        NAME
    }
    fn description(&self) -> &'static str {
        "adds one to every item"
    }
    fn batch_size(&self) -> usize {
        1000
    }
    fn step(&self, cursor: Option<Vec<u8>>, limit: usize) -> BoxFuture<'static, Result<Step, JobError>> {
        let db = self.db.clone();
        Box::pin(async move {
            let start = cursor.unwrap_or_else(|| PREFIX.to_vec());
            let page = db.scan_raw(Map::Meta, PREFIX, &start, limit)?;
            let mut batch = Batch::new();
            for (k, v) in &page {
                let n = u64::from_be_bytes(v.as_slice().try_into().map_err(|_| JobError::Partial("bad counter".into()))?);
                batch.put_raw(Map::Meta, k.clone(), (n + 1).to_be_bytes().to_vec());
            }
            // Just after the last key read.
            let next = (page.len() == limit).then(|| page.last().map(|(k, _)| [k.as_slice(), &[0]].concat())).flatten();
            Ok(Step::new(batch, next, page.len() as u64))
        })
    }
}

/// The child's role: run the migration to the end (unless killed first).
async fn run_child(dir: &Path) {
    let db = Db::open(dir, &DbOptions::default()).expect("open");
    let writer = StoreWriter::start(db.clone(), Durability::Sync).expect("writer");
    let journal = Journal::standalone(&db, writer.clone(), "child");
    let runner = Runner {
        db: db.clone(),
        journal,
        migrations: vec![Arc::new(CountUp { db: db.clone() })],
        // Flat out: the test wants the kill to land in the middle, not the pace.
        throttle: Throttle { duty: 1.0, run_for: Duration::from_secs(3600) },
    };
    runner.run().await.expect("the migration runs");
    writer.shutdown();
}

fn progress(dir: &Path) -> Option<data_migration::MigrationProgress> {
    let db = Db::open_read_only(dir).ok()?;
    data_migration::get(&db, NAME).ok().flatten()
}

fn child(dir: &Path) -> std::process::Child {
    Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "sigkill_halfway_resumes_and_migrates_every_record_once", "--nocapture", "--test-threads=1"])
        .env(CHILD, dir)
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn the child")
}

#[actix::test]
async fn sigkill_halfway_resumes_and_migrates_every_record_once() {
    if let Ok(dir) = std::env::var(CHILD) {
        return run_child(Path::new(&dir)).await;
    }
    let n = records();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    {
        let db = Db::open(&dir, &DbOptions::default()).unwrap();
        for chunk in (0..n).collect::<Vec<_>>().chunks(10_000) {
            let mut b = Batch::new();
            for i in chunk {
                b.put_raw(Map::Meta, item_key(*i), 0u64.to_be_bytes().to_vec());
            }
            db.write_group([&b], false).unwrap();
        }
        db.write_group([&Batch::new()], true).unwrap();
    }

    // Kill the first run once more than half is on record.
    let started = Instant::now();
    let mut first = child(&dir);
    let killed_at = loop {
        if let Some(status) = first.try_wait().unwrap() {
            panic!("the first run ended ({status}) before it could be killed halfway");
        }
        if let Some(p) = progress(&dir) {
            if p.processed * 2 >= n {
                first.kill().unwrap();
                first.wait().unwrap();
                break p.processed;
            }
        }
        assert!(started.elapsed() < Duration::from_secs(600), "no progress to half in 10 minutes");
        std::thread::sleep(Duration::from_millis(20));
    };
    let after_kill = progress(&dir).expect("progress on record");
    assert!(after_kill.finished_at.is_none() && after_kill.processed < n, "killed before the end: {after_kill:?}");
    assert!(after_kill.processed >= killed_at);

    // The second run resumes and finishes.
    let status = child(&dir).wait().unwrap();
    assert!(status.success(), "the resumed run failed: {status}");
    let db = Db::open(&dir, &DbOptions::default()).unwrap();
    let done = data_migration::get(&db, NAME).unwrap().expect("progress");
    assert!(done.finished_at.is_some(), "{done:?}");
    assert_eq!(done.processed, n, "every record counted once: {done:?}");
    let mut seen = 0u64;
    let mut start = PREFIX.to_vec();
    loop {
        let page = db.scan_raw(Map::Meta, PREFIX, &start, 10_000).unwrap();
        for (k, v) in &page {
            assert_eq!(v.as_slice(), 1u64.to_be_bytes(), "record {k:?} migrated {v:?} times");
        }
        seen += page.len() as u64;
        match page.last() {
            Some((k, _)) if page.len() == 10_000 => start = [k.as_slice(), &[0]].concat(),
            _ => break,
        }
    }
    assert_eq!(seen, n);
    eprintln!(
        "{n} records: killed at {after_kill} on record, resumed and finished in {:.1} s in all",
        started.elapsed().as_secs_f64(),
        after_kill = after_kill.processed
    );
}
