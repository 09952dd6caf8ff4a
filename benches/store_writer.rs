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
//!
//! `UTALK_BENCH_SEARCH=1` measures the full-text search index's cost instead:
//! the 64-conversation cases, with chat text (Spanish and English words)
//! in place of the 300 repeated bytes, once on a writer without a tap and
//! once on a writer with the search index tapped, alternately, each on a
//! fresh database. It prints messages per second, the process's CPU per
//! message (from the end of the index's rebuild of the empty store to the
//! last write, and with the index until `flush()` returns, so its work is
//! counted), and the index's lag: the time from the last durable write to
//! `flush()` returning, when every message is searchable.

use criterion::{BenchmarkId, Criterion, Throughput};
use rand::{rngs::StdRng, SeedableRng};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use utalk_actors::search::{SearchIndex, Settings};
use utalk_actors::{Durability, StoreWriter};
use utalk_storage::keys::Key;
use utalk_storage::model::{message, Author, AuthorType, Direction, Message, MessageFormat, MessageStatus};
use utalk_storage::{Batch, Db, DbOptions, Map, Timestamp};
use uuid::Uuid;

// The allocator of the server binary (src/main.rs), so that the figures are the server's.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[path = "common/bench_dir.rs"]
mod bench_dir;
#[allow(dead_code)]
#[path = "common/chat_text.rs"]
mod chat_text;

const TEXT_BYTES: usize = 300;

/// The texts messages take in turn: one of 300 bytes unless the search index is measured.
type Texts = Arc<Vec<String>>;

fn message_batch(conv: Uuid, seq: u64, text: String) -> Batch {
    let customer = Author { kind: AuthorType::Customer, id: None };
    let m = Message {
        id: Uuid::new_v4(),
        ..Message::text(conv, seq, Direction::Inbound, customer, MessageStatus::Received, &text, Timestamp::now())
    };
    message::append_batch(&m, MessageFormat::Compact).expect("encode")
}

struct Setup {
    _dir: tempfile::TempDir,
    db: Db,
    writer: StoreWriter,
    rt: tokio::runtime::Runtime,
}

fn setup() -> Setup {
    let dir = bench_dir::temp_dir();
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
fn appends(s: &Setup, conversations: usize, total: u64, window: usize, texts: &Texts) -> Duration {
    use futures_util::stream::{FuturesOrdered, StreamExt};
    let per = (total / conversations as u64).max(1);
    let start = Instant::now();
    s.rt.block_on(async {
        let tasks: Vec<_> = (0..conversations)
            .map(|c| {
                let w = s.writer.clone();
                let conv = Uuid::now_v7();
                let texts = texts.clone();
                tokio::spawn(async move {
                    let mut inflight: FuturesOrdered<_> = FuturesOrdered::new();
                    let text = |seq: u64| texts[(c * 7919 + seq as usize) % texts.len()].clone();
                    let submit = |seq| w.submit(message_batch(conv, seq, text(seq)));
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

fn criterion_benches(c: &mut Criterion, s: &Setup, texts: &Texts) {
    let mut g = c.benchmark_group("durable_appends");
    g.throughput(Throughput::Elements(1));
    for n in [1usize, 8, 64] {
        g.bench_with_input(BenchmarkId::new("store_writer", n), &n, |b, &n| {
            b.iter_custom(|iters| appends(s, n, iters.max(n as u64), 1, texts))
        });
    }
    g.bench_function("store_writer_pipelined/64x16", |b| b.iter_custom(|iters| appends(s, 64, iters.max(64), 16, texts)));
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

fn summary(s: &Setup, trials: usize, total: u64, texts: &Texts) {
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
        let r = median((0..trials).map(|_| rate(t, appends(s, n, t, 1, texts))).collect());
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
    let r = median((0..trials).map(|_| rate(total, appends(s, 64, total, 16, texts))).collect());
    println!("{:<28} {:>14.0} {:>9.0}%", "64 conv, 16 in flight each", r, 100.0 * r / baseline);
}

/// The process's CPU time (user and system, all threads) so far.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // After the command's closing bracket: state is field 3, utime 14, stime 15 (clock ticks of 1/100 s).
    let fields: Vec<&str> = stat[stat.rfind(')').expect("stat") + 2..].split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    Duration::from_millis(ticks * 10)
}

/// One run of the search-cost comparison.
struct Run {
    rate: f64,
    /// Messages per second from the first write to `flush()` returning: what the index kept up with.
    searchable: Option<f64>,
    cpu_us: f64,
    lag: Option<Duration>,
    documents: u64,
}

/// Waits (up to 30 s) until the process is idle: a merge the index started
/// before its last stop, or a compaction of the last run, would otherwise
/// count in the next run's CPU.
fn settle() {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        let cpu = cpu_time();
        std::thread::sleep(Duration::from_millis(250));
        if cpu_time() - cpu <= Duration::from_millis(10) {
            return;
        }
    }
}

/// `total` messages of chat text on a fresh database, with the search index tapped or not.
fn search_run(conversations: usize, total: u64, window: usize, texts: &Texts, indexed: bool) -> Run {
    settle();
    let s = setup();
    let index_dir = bench_dir::temp_dir();
    let index = indexed.then(|| {
        let index = SearchIndex::open(index_dir.path(), s.db.clone(), Settings::default()).expect("search index");
        s.writer.tap_with(index.clone());
        while index.rebuilding() {
            std::thread::sleep(Duration::from_millis(5));
        }
        index
    });
    let total = (total / conversations as u64).max(1) * conversations as u64;
    let cpu = cpu_time();
    let elapsed = appends(&s, conversations, total, window, texts);
    let lag = index.as_ref().map(|i| {
        let started = Instant::now();
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        rt.block_on(i.flush()).expect("flush");
        started.elapsed()
    });
    let cpu = cpu_time() - cpu;
    let documents = index.as_ref().map_or(0, |i| i.documents());
    s.writer.shutdown();
    if let Some(i) = index {
        i.stop(s.db.latest_sequence());
    }
    Run {
        rate: rate(total, elapsed),
        searchable: lag.map(|l| rate(total, elapsed + l)),
        cpu_us: cpu.as_secs_f64() * 1e6 / total as f64,
        lag,
        documents,
    }
}

/// The search index's cost: each case without and with the index, alternately, `trials` times.
fn search_cost(trials: usize, total: u64) {
    let mut rng = StdRng::seed_from_u64(7);
    let mut chat = chat_text::ChatText::new(&mut rng);
    let texts: Texts = Arc::new((0..4096).map(|_| chat.message(&mut rng)).collect());
    let bytes = texts.iter().map(String::len).sum::<usize>() as f64 / texts.len() as f64;
    let words = texts.iter().map(|t| t.split_whitespace().count()).sum::<usize>() as f64 / texts.len() as f64;
    println!("search index cost: {trials} trials of {total} messages a case, sync mode, fresh database each run");
    println!("texts: 4,096 chat messages, {bytes:.0} bytes and {words:.1} words on average, {} words of vocabulary", chat.vocabulary());
    println!(
        "{:<38} {:>11} {:>15} {:>18} {:>12} {:>10}",
        "case", "messages/s", "CPU µs/message", "lag to flush ms", "searchable/s", "documents"
    );
    for (conversations, window) in [(64usize, 1usize), (64, 16)] {
        let mut runs: [Vec<Run>; 2] = [Vec::new(), Vec::new()];
        for t in 0..trials {
            for indexed in if t % 2 == 0 { [false, true] } else { [true, false] } {
                let r = search_run(conversations, total, window, &texts, indexed);
                println!(
                    "  trial {t} {:<10} {:>12.0} msg/s {:>8.1} µs CPU/msg{}",
                    if indexed { "indexed" } else { "no index" },
                    r.rate,
                    r.cpu_us,
                    r.lag.map(|l| format!(", lag {:.0} ms, {} documents", l.as_secs_f64() * 1e3, r.documents)).unwrap_or_default()
                );
                runs[usize::from(indexed)].push(r);
            }
        }
        let name = if window == 1 { format!("{conversations} conv") } else { format!("{conversations} conv x {window} in flight") };
        for (indexed, runs) in runs.iter().enumerate() {
            let lags: Vec<f64> = runs.iter().filter_map(|r| r.lag).map(|l| l.as_secs_f64() * 1e3).collect();
            println!(
                "{:<38} {:>11.0} {:>15.1} {:>18} {:>12} {:>10}",
                format!("{name}, {}", if indexed == 1 { "search index" } else { "no index" }),
                median(runs.iter().map(|r| r.rate).collect()),
                median(runs.iter().map(|r| r.cpu_us).collect()),
                if lags.is_empty() {
                    "-".to_string()
                } else {
                    format!("{:.0} (max {:.0})", median(lags.clone()), lags.iter().cloned().fold(0.0, f64::max))
                },
                if indexed == 1 { format!("{:.0}", median(runs.iter().filter_map(|r| r.searchable).collect())) } else { "-".to_string() },
                if indexed == 1 { runs.iter().map(|r| r.documents).min().unwrap_or(0).to_string() } else { "-".to_string() },
            );
        }
    }
}

fn main() {
    let quick = std::env::var_os("UTALK_BENCH_QUICK").is_some();
    if std::env::var_os("UTALK_BENCH_SEARCH").is_some() {
        // The index's warnings (a queue that overflowed and made it rebuild) are worth seeing.
        tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::new("warn")).init();
        search_cost(if quick { 3 } else { 5 }, if quick { 64_000 } else { 256_000 });
        return;
    }
    let s = setup();
    let texts: Texts = Arc::new(vec!["x".repeat(TEXT_BYTES)]);
    let secs = if quick { 2 } else { 5 };
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(secs))
        .configure_from_args();
    criterion_benches(&mut c, &s, &texts);
    c.final_summary();
    summary(&s, if quick { 3 } else { 5 }, if quick { 64_000 } else { 256_000 }, &texts);
    s.writer.shutdown();
}
