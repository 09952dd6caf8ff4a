//! The store writer: the one path by which state reaches RocksDB, beneath
//! the journal.
//!
//! It runs on its own OS thread so that synced writes never block an async
//! executor; its mailbox is a [`GroupQueue`]. Each turn it takes everything
//! queued since the last turn, writes it as one WriteBatch with one WAL sync,
//! and then answers each writer. Answers follow submission order, so a
//! caller that submits A before B sees A durable no later than B.
//!
//! A failed write (a full disk, say) is answered with an error to every
//! writer of its group, and nothing of the group is acknowledged; the writer
//! goes on serving. A later write succeeding after an earlier one failed must
//! not leave holes (a missing seq) that no reader could explain, so writers
//! whose batches depend on earlier ones (conversation actors) submit them
//! fenced on the writer's failure epoch ([`StoreWriter::submit_fenced`]):
//! after any failure their queued and later batches are refused until they
//! reload their state from storage and take the new epoch.
//!
//! RocksDB stops taking writes after a failed WAL write or flush and resumes
//! by itself once the disk has room again (its file manager polls the free
//! space). While the last write failed, a probe thread writes a small marker
//! with growing pauses, so that [`StoreWriter::writable`] (and readiness)
//! turns true again without waiting for a client's write.

use super::follower::{Applied, Follower};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tracing::Instrument;
use utalk_storage::group_commit::{Closed, GroupQueue};
use utalk_storage::{Batch, Db};

/// How far a write has gone when it is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Durability {
    /// The WAL is fsynced: survives power loss.
    Sync,
    /// The WAL is written but not fsynced: survives a process crash, not power loss.
    Buffered,
}

impl Durability {
    /// The configuration name.
    pub fn as_str(self) -> &'static str {
        match self {
            Durability::Sync => "sync",
            Durability::Buffered => "buffered",
        }
    }
}

/// A write that did not reach the disk.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    /// The engine refused the write.
    #[error("write failed: {0}")]
    Failed(Arc<str>),
    /// The writer has stopped (at shutdown).
    #[error("store writer has stopped")]
    Stopped,
    /// A write failed after the submitter last read its state: this batch may
    /// depend on one that was lost, so it is refused; reload and retry.
    #[error("an earlier write failed; the writer must reload its state before writing again")]
    Fenced,
}

/// Counters of the writer, for metrics and benchmarks.
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Batches committed.
    pub batches: AtomicU64,
    /// Groups written (one WAL sync each in `sync` mode).
    pub groups: AtomicU64,
    /// Nanoseconds spent in RocksDB writes.
    pub write_nanos: AtomicU64,
}

struct Pending {
    batch: Batch,
    /// The failure epoch the submitter read its state under; `None`: unfenced.
    fence: Option<u64>,
    /// What the batch tells subscribers, handed to the follower once it is durable.
    applied: Option<Applied>,
    done: oneshot::Sender<Result<(), WriteError>>,
    /// The caller's `store.commit` span, told the size of the group it went out in.
    span: tracing::Span,
}

/// Most batches in one group: bounds the latency one group adds to the next.
const MAX_GROUP: usize = 4096;

/// Handle to the store writer; cheap to clone.
#[derive(Clone)]
pub struct StoreWriter {
    queue: Arc<GroupQueue<Pending>>,
    follower: Arc<OnceLock<Follower>>,
    tap: Arc<OnceLock<Arc<dyn ChangeTap>>>,
    health: Arc<Health>,
    stats: Arc<WriterStats>,
    thread: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl std::fmt::Debug for StoreWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreWriter").field("queued", &self.queue.len()).finish()
    }
}

/// Whether the store takes writes, shared by the writer, the probe and handles.
#[derive(Debug, Default)]
struct Health {
    /// The last non-empty write failed and none has succeeded since.
    failing: AtomicBool,
    /// Failed groups so far: fenced batches of an older epoch are refused.
    epoch: AtomicU64,
}

/// The probe's first pause after a failure, doubled up to [`PROBE_MAX`].
const PROBE_FIRST: Duration = Duration::from_millis(250);
/// The probe's longest pause (RocksDB itself checks the free space every 5 s).
const PROBE_MAX: Duration = Duration::from_secs(2);
/// Where the probe writes its marker.
const PROBE_KEY: &[u8] = b"store_writer.probe";

impl StoreWriter {
    /// Starts the writer thread over `db`, and the probe that notices when a failing store takes writes again.
    pub fn start(db: Db, durability: Durability) -> std::io::Result<StoreWriter> {
        Self::start_with_reserve(db, durability, 0)
    }

    /// Like [`start`](Self::start), refusing writes while the data directory's
    /// filesystem has less than `min_free_bytes` available (0: no check).
    ///
    /// RocksDB does not come back from a WAL write that failed for lack of
    /// space without a reopen, so the writer stops short of it: a group is
    /// refused, as a failed write is, while the space is below the reserve,
    /// and written again as soon as it is back above.
    pub fn start_with_reserve(db: Db, durability: Durability, min_free_bytes: u64) -> std::io::Result<StoreWriter> {
        let queue = Arc::new(GroupQueue::<Pending>::new());
        let health = Arc::new(Health::default());
        let stats = Arc::new(WriterStats::default());
        let follower = Arc::new(OnceLock::new());
        let tap = Arc::new(OnceLock::new());
        let thread = {
            let (queue, health, stats) = (queue.clone(), health.clone(), stats.clone());
            let readers = Readers { follower: follower.clone(), tap: tap.clone() };
            std::thread::Builder::new()
                .name("store-writer".into())
                .spawn(move || run(db, durability, min_free_bytes, &queue, &health, &stats, &readers))?
        };
        let writer = StoreWriter { queue, follower, tap, health, stats, thread: Arc::new(Mutex::new(Some(thread))) };
        let probe = writer.clone();
        std::thread::Builder::new().name("store-probe".into()).spawn(move || probe.probe())?;
        Ok(writer)
    }

    /// While the store is failing, writes a marker with growing pauses until
    /// one succeeds; ends when the queue closes.
    fn probe(self) {
        let mut pause = PROBE_FIRST;
        loop {
            std::thread::sleep(if self.health.failing.load(Ordering::SeqCst) { pause } else { PROBE_MAX });
            if self.queue.is_closed() {
                return;
            }
            if !self.health.failing.load(Ordering::SeqCst) {
                pause = PROBE_FIRST;
                continue;
            }
            let mut b = Batch::new();
            b.put_raw(utalk_storage::Map::Meta, PROBE_KEY.to_vec(), utalk_storage::Timestamp::now().millis().to_be_bytes().to_vec());
            let (done, rx) = oneshot::channel();
            if self.queue.push(Pending { batch: b, fence: None, applied: None, done, span: tracing::Span::none() }).is_err() {
                return;
            }
            match rx.blocking_recv() {
                Ok(Ok(())) => tracing::info!("the store takes writes again"),
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "the store still refuses writes");
                    pause = (pause * 2).min(PROBE_MAX);
                }
                Err(_) => return,
            }
        }
    }

    /// Queues `batch` now and returns a future that resolves once it is durable.
    ///
    /// The position in the commit order is taken when this is called, not when
    /// the future is polled.
    pub fn submit(&self, batch: Batch) -> impl Future<Output = Result<(), WriteError>> + Send + 'static {
        self.push(batch, None, None)
    }

    /// Like [`submit`](Self::submit), for a batch built on state read under
    /// failure epoch `epoch` ([`StoreWriter::epoch`]): refused with
    /// [`WriteError::Fenced`] if any write has failed since.
    pub fn submit_fenced(&self, batch: Batch, epoch: u64) -> impl Future<Output = Result<(), WriteError>> + Send + 'static {
        self.push(batch, Some(epoch), None)
    }

    /// Like [`submit_fenced`](Self::submit_fenced), handing `applied` to the
    /// follower ([`StoreWriter::follow_with`]) once the batch is durable, in
    /// commit order and before the submitter hears of it.
    pub(crate) fn submit_applied(
        &self,
        batch: Batch,
        epoch: Option<u64>,
        applied: Applied,
    ) -> impl Future<Output = Result<(), WriteError>> + Send + 'static {
        self.push(batch, epoch, Some(applied))
    }

    /// Sets who is told what each batch submitted with
    /// [`submit_applied`](Self::submit_applied) changed (once, at start).
    pub(crate) fn follow_with(&self, follower: Follower) {
        if self.follower.set(follower).is_err() {
            tracing::warn!("the store writer already has a follower; keeping the first");
        }
    }

    /// Sets what sees every durable batch, whoever wrote it (once, at start,
    /// before the first write it must not miss).
    pub fn tap_with(&self, tap: Arc<dyn ChangeTap>) {
        if self.tap.set(tap).is_err() {
            tracing::warn!("the store writer already has a tap; keeping the first");
        }
    }

    /// The failure epoch: read it before reading the state that fenced batches build on.
    pub fn epoch(&self) -> u64 {
        self.health.epoch.load(Ordering::SeqCst)
    }

    fn push(
        &self,
        batch: Batch,
        fence: Option<u64>,
        applied: Option<Applied>,
    ) -> impl Future<Output = Result<(), WriteError>> + Send + 'static {
        let (done, rx) = oneshot::channel();
        // At debug, so that it costs nothing unless traces are exported.
        let span = tracing::debug_span!("store.commit", ops = batch.len(), group = tracing::field::Empty);
        let refused = match self.queue.push(Pending { batch, fence, applied, done, span: span.clone() }) {
            Ok(()) => None,
            Err(Closed(p)) => Some(p),
        };
        async move {
            if let Some(p) = refused {
                drop(p);
                return Err(WriteError::Stopped);
            }
            rx.await.unwrap_or(Err(WriteError::Stopped))
        }
        .instrument(span)
    }

    /// Writes `batch` and waits until it is durable.
    pub async fn commit(&self, batch: Batch) -> Result<(), WriteError> {
        self.submit(batch).await
    }

    /// Writes `batch` (if it could be built) for a background worker that
    /// retries from durable state anyway: a failure is logged as `what`, not returned.
    pub async fn commit_or_log(&self, batch: Result<Batch, utalk_storage::CodecError>, what: &str) {
        let result = match batch {
            Ok(b) => self.commit(b).await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = result {
            tracing::error!(error = %e, "{what} failed");
        }
    }

    /// Resolves once everything submitted before it is durable (or failed).
    pub async fn barrier(&self) -> Result<(), WriteError> {
        self.submit(Batch::new()).await
    }

    /// Whether the last write failed and none has succeeded since (a full disk, say).
    pub fn has_failed(&self) -> bool {
        self.health.failing.load(Ordering::SeqCst)
    }

    /// Whether the writer takes no more writes: it was shut down, or its thread ended.
    pub fn is_stopped(&self) -> bool {
        self.queue.is_closed() || self.thread.lock().unwrap_or_else(|p| p.into_inner()).as_ref().is_some_and(|t| t.is_finished())
    }

    /// Writes waiting for the next group.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Counters.
    pub fn stats(&self) -> &WriterStats {
        &self.stats
    }

    /// Commits what is queued, refuses new work, and waits for the thread to end.
    pub fn shutdown(&self) {
        self.queue.close();
        let handle = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = handle {
            let _ = h.join();
        }
    }
}

/// How long the writer waits for a group to fill before a synced write.
///
/// Writers answered by the last sync come back within microseconds; without
/// this pause the next sync would start with only the few that already did,
/// and small groups cost a whole sync each. The pause is far below the cost
/// of one sync (about 0.3 ms here) and is taken only when the queue holds
/// fewer writes than the last group had.
const LINGER: Duration = Duration::from_micros(40);

/// How long a reading of the free space stands while there is ample room:
/// one `statvfs` per write group would be a system call on every message's
/// path.
const SPACE_RECHECK: Duration = Duration::from_millis(100);
/// Room above the reserve under which the space is read before every group:
/// more than the writer can write in [`SPACE_RECHECK`].
const SPACE_MARGIN: u64 = 64 << 20;

/// The reserve of free space the writer keeps (`store.min_free_mb`).
struct SpaceReserve {
    min_free: u64,
    /// When the space was last read with ample room to spare.
    ample_at: Option<Instant>,
}

impl SpaceReserve {
    /// Why a write must wait for space, if the data directory's filesystem has
    /// less than the reserve available.
    fn short(&mut self, path: &std::path::Path) -> Option<String> {
        if self.min_free == 0 || self.ample_at.is_some_and(|at| at.elapsed() < SPACE_RECHECK) {
            return None;
        }
        self.ample_at = None;
        match utalk_storage::free_space::available_bytes(path) {
            Ok(free) if free < self.min_free => Some(format!(
                "the data directory's filesystem has {} KiB free, under the {} KiB reserve (store.min_free_mb)",
                free >> 10,
                self.min_free >> 10
            )),
            Ok(free) => {
                if free >= self.min_free.saturating_add(SPACE_MARGIN) {
                    self.ample_at = Some(Instant::now());
                }
                None
            }
            // Unknown: let RocksDB try; it reports a real failure itself.
            Err(_) => None,
        }
    }
}

/// Sees every batch once it is durable, in commit order, on the store
/// writer's thread: it must hand the work elsewhere and never wait.
pub trait ChangeTap: Send + Sync {
    /// The non-empty batches of one durable group, handed over (the writer
    /// needs them no more), so that nothing is copied on the writer's thread.
    fn committed(&self, batches: Vec<Batch>);
}

/// Who hears of durable groups: the follower (events) and the tap (records).
struct Readers {
    follower: Arc<OnceLock<Follower>>,
    tap: Arc<OnceLock<Arc<dyn ChangeTap>>>,
}

fn run(
    db: Db,
    durability: Durability,
    min_free: u64,
    queue: &GroupQueue<Pending>,
    health: &Health,
    stats: &WriterStats,
    readers: &Readers,
) {
    let sync = durability == Durability::Sync;
    let mut spare = Vec::with_capacity(256);
    let mut last_group = 0usize;
    let mut reserve = SpaceReserve { min_free, ample_at: None };
    loop {
        if sync && last_group > 1 && queue.len() < last_group {
            std::thread::sleep(LINGER);
        }
        let Some(mut group) = queue.take_group(MAX_GROUP, spare) else { break };
        // Batches fenced on an epoch before the last failure may depend on
        // what that failure lost: they are refused, never written.
        let epoch = health.epoch.load(Ordering::SeqCst);
        if group.iter().any(|p| p.fence.is_some_and(|f| f != epoch)) {
            let (stale, keep): (Vec<Pending>, Vec<Pending>) = group.drain(..).partition(|p| p.fence.is_some_and(|f| f != epoch));
            for p in stale {
                let _ = p.done.send(Err(WriteError::Fenced));
            }
            group.extend(keep);
        }
        last_group = group.len();
        let started = Instant::now();
        let touches_disk = group.iter().any(|p| !p.batch.is_empty());
        let result = match touches_disk.then(|| reserve.short(db.path())).flatten() {
            Some(why) => Err(why),
            None => db.write_group(group.iter().map(|p| &p.batch), sync).map_err(|e| e.to_string()),
        };
        let took = started.elapsed();
        stats.write_nanos.fetch_add(took.as_nanos() as u64, Ordering::Relaxed);
        if touches_disk {
            metrics::histogram!("store_commit_duration_seconds").record(took.as_secs_f64());
        }
        stats.groups.fetch_add(1, Ordering::Relaxed);
        stats.batches.fetch_add(group.len() as u64, Ordering::Relaxed);
        let answer = match result {
            Ok(()) => {
                if touches_disk && health.failing.swap(false, Ordering::SeqCst) {
                    tracing::info!("store writes succeed again");
                }
                Ok(())
            }
            Err(e) => {
                // Nothing of the group is acknowledged; the writer goes on
                // serving, and RocksDB resumes by itself when it can.
                if !health.failing.swap(true, Ordering::SeqCst) {
                    tracing::error!(error = %e, batches = group.len(), "store write failed; writes are refused until the store takes them again");
                }
                health.epoch.fetch_add(1, Ordering::SeqCst);
                metrics::counter!("store_write_failures_total").increment(1);
                Err(WriteError::Failed(e.into()))
            }
        };
        let size = group.len();
        // Subscribers hear of a durable batch before its writer does, as on
        // a cluster node, where the follower applies before the writer wakes.
        // The tap hears before the writers too: a writer that then asks the
        // index for a flush or a purge finds its batch already queued.
        if let (Ok(()), Some(tap)) = (&answer, readers.tap.get()) {
            tap.committed(group.iter_mut().filter(|p| !p.batch.is_empty()).map(|p| std::mem::take(&mut p.batch)).collect());
        }
        if let (Ok(()), Some(follower)) = (&answer, readers.follower.get()) {
            for p in group.iter_mut() {
                if let Some(applied) = p.applied.take() {
                    follower.applied(applied);
                }
            }
        }
        for p in group.drain(..) {
            p.span.record("group", size);
            let _ = p.done.send(answer.clone());
        }
        spare = group;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use utalk_storage::keys::Key;
    use utalk_storage::{DbOptions, Map};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writers_are_all_durable_and_grouped() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), &DbOptions::default()).unwrap();
        let w = StoreWriter::start(db.clone(), Durability::Sync).unwrap();
        let mut tasks = Vec::new();
        for t in 0..16u64 {
            let w = w.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..50u64 {
                    let mut b = Batch::new();
                    b.put_raw(Map::Meta, Key::new().u64(t).u64(i).into_bytes(), vec![1]);
                    w.commit(b).await.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(db.scan_raw(Map::Meta, &[0], &[], 10_000).unwrap().len(), 16 * 50);
        let groups = w.stats().groups.load(Ordering::Relaxed);
        assert!(groups < 16 * 50, "no grouping happened: {groups} groups");
        w.shutdown();
        assert!(matches!(w.commit(Batch::new()).await, Err(WriteError::Stopped)));
    }
}
