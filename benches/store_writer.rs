//! Durable appends through the store writer versus a raw synced-batch baseline.
//!
//! Each "conversation" is a task that appends 300-byte messages (message record
//! plus idempotency index, exactly what the conversation actor writes) and waits
//! for each to be durable before the next, the slowest pattern a conversation can
//! have. The baseline writes batches of 64 plain 300-byte puts, one synced write
//! per batch, from one thread. Both run in `sync` mode on the same disk in the
//! same process. After criterion's own report, a summary prints the median
//! messages per second of each case and the ratio to the baseline.
//!
//! `cargo bench --bench store_writer` (set `UTALK_BENCH_QUICK=1` for a short run).

use criterion::{BenchmarkId, Criterion, Throughput};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use utalk_actors::{Durability, StoreWriter};
use utalk_storage::keys::Key;
use utalk_storage::model::{message, Author, AuthorType, Direction, Message, MessageStatus};
use utalk_storage::{Batch, Db, DbOptions, Map, Timestamp};
use uuid::Uuid;

// The allocator of the server binary (src/main.rs), so that the figures are the server's.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const TEXT_BYTES: usize = 300;

fn message_batch(conv: Uuid, seq: u64) -> Batch {
    let m = Message {
        id: Uuid::new_v4(),
        conversation_id: conv,
        seq,
        direction: Direction::Inbound,
        author: Author { kind: AuthorType::Customer, id: None },
        text: Some("x".repeat(TEXT_BYTES)),
        media_id: None,
        status: MessageStatus::Received,
        provider_id: None,
        created_at: Timestamp::now(),
        media: Vec::new(),
        error_code: None,
        error_message: None,
        status_updated_at: None,
        private: false,
        template: None,
    };
    message::append_batch(&m).expect("encode")
}

struct Setup {
    _dir: tempfile::TempDir,
    db: Db,
    writer: StoreWriter,
    rt: tokio::runtime::Runtime,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir_in(std::env::var("UTALK_BENCH_DIR").unwrap_or_else(|_| ".".into())).expect("tempdir");
    // `UTALK_BENCH_WRITE_BUFFER_MB` tries another memtable size (store.write_buffer_mb).
    let mut opts = DbOptions::default();
    if let Some(mb) = std::env::var("UTALK_BENCH_WRITE_BUFFER_MB").ok().and_then(|v| v.parse::<usize>().ok()) {
        opts.write_buffer_bytes = mb << 20;
    }
    let db = Db::open(dir.path(), &opts).expect("open");
    let writer = StoreWriter::start(db.clone(), Durability::Sync).expect("writer");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    Setup { _dir: dir, db, writer, rt }
}

/// Appends `total` messages spread over `conversations` writers, each keeping
/// `window` writes in flight (1: wait for each before the next; more: as a
/// conversation actor pipelines when many clients send at once); returns the elapsed time.
fn appends(s: &Setup, conversations: usize, total: u64, window: usize) -> Duration {
    use futures_util::stream::{FuturesOrdered, StreamExt};
    let per = (total / conversations as u64).max(1);
    let start = Instant::now();
    s.rt.block_on(async {
        let tasks: Vec<_> = (0..conversations)
            .map(|_| {
                let w = s.writer.clone();
                let conv = Uuid::now_v7();
                tokio::spawn(async move {
                    let mut inflight: FuturesOrdered<_> = FuturesOrdered::new();
                    let submit = |seq| w.submit(message_batch(conv, seq));
                    for seq in 1..=per {
                        if inflight.len() >= window {
                            let done: Result<(), utalk_actors::WriteError> = inflight.next().await.expect("pending");
                            done.expect("durable");
                        }
                        inflight.push_back(submit(seq));
                    }
                    while let Some(r) = inflight.next().await {
                        r.expect("durable");
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("task");
        }
    });
    start.elapsed()
}

/// Writes `total` 300-byte puts as synced batches of 64; returns the elapsed time.
fn raw_baseline(s: &Setup, total: u64) -> Duration {
    let value = vec![b'x'; TEXT_BYTES];
    let batches = total.div_ceil(64);
    let start = Instant::now();
    for b in 0..batches {
        let mut batch = Batch::new();
        for i in 0..64u64 {
            batch.put_raw(Map::Messages, Key::new().uuid(Uuid::from_u128(7)).u64(b * 64 + i).into_bytes(), value.clone());
        }
        s.db.write_group([&batch], true).expect("write");
    }
    start.elapsed()
}

fn criterion_benches(c: &mut Criterion, s: &Setup) {
    let mut g = c.benchmark_group("durable_appends");
    g.throughput(Throughput::Elements(1));
    for n in [1usize, 8, 64] {
        g.bench_with_input(BenchmarkId::new("store_writer", n), &n, |b, &n| b.iter_custom(|iters| appends(s, n, iters.max(n as u64), 1)));
    }
    g.bench_function("store_writer_pipelined/64x16", |b| b.iter_custom(|iters| appends(s, 64, iters.max(64), 16)));
    g.bench_function("raw_rocksdb_batch64", |b| b.iter_custom(|iters| raw_baseline(s, iters.max(64))));
    g.finish();
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn rate(total: u64, d: Duration) -> f64 {
    total as f64 / d.as_secs_f64()
}

fn summary(s: &Setup, trials: usize, total: u64) {
    let started = Instant::now();
    let baseline = median((0..trials).map(|_| rate(total, raw_baseline(s, total))).collect());
    let raw_turn_us = started.elapsed().as_secs_f64() * 1e6 / (trials as u64 * total.div_ceil(64)) as f64;
    println!("\nsummary (median of {trials} trials, {total} messages each, sync mode)");
    println!("{:<28} {:>14} {:>10}", "case", "messages/s", "vs raw");
    println!("{:<28} {:>14.0} {:>9.0}%   {raw_turn_us:.0} µs a batch", "raw rocksdb, batches of 64", baseline, 100.0);
    for n in [1usize, 8, 64] {
        let t = if n == 1 { total / 20 } else { total };
        let stats = s.writer.stats();
        let counters =
            || (stats.batches.load(Ordering::Relaxed), stats.groups.load(Ordering::Relaxed), stats.write_nanos.load(Ordering::Relaxed));
        let (b0, g0, w0) = counters();
        let started = Instant::now();
        let r = median((0..trials).map(|_| rate(t, appends(s, n, t, 1))).collect());
        let elapsed = started.elapsed();
        let (b1, g1, w1) = counters();
        let groups = (g1 - g0).max(1);
        let avg_group = (b1 - b0) as f64 / groups as f64;
        // Of each group's turn, how long RocksDB's write took (WAL, sync, memtable); the rest is gathering and answering.
        let (write_us, turn_us) = ((w1 - w0) as f64 / groups as f64 / 1e3, elapsed.as_secs_f64() * 1e6 / groups as f64);
        println!(
            "{:<28} {:>14.0} {:>9.0}%   mean group {avg_group:.1}, write {write_us:.0} of {turn_us:.0} µs a turn",
            format!("store writer, {n} conv"),
            r,
            100.0 * r / baseline
        );
    }
    let r = median((0..trials).map(|_| rate(total, appends(s, 64, total, 16))).collect());
    println!("{:<28} {:>14.0} {:>9.0}%", "64 conv, 16 in flight each", r, 100.0 * r / baseline);
}

fn main() {
    let s = setup();
    let quick = std::env::var_os("UTALK_BENCH_QUICK").is_some();
    let secs = if quick { 2 } else { 5 };
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(secs))
        .configure_from_args();
    criterion_benches(&mut c, &s);
    c.final_summary();
    summary(&s, if quick { 3 } else { 5 }, if quick { 64_000 } else { 256_000 });
    s.writer.shutdown();
}
