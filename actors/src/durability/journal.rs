//! The journal: the one interface every durable change goes through, on
//! one node as in a cluster.
//!
//! A change is appended to the log of its entity (a conversation, through
//! its [`EntityLog`]; the inventory; a unique key) or to the shared subject
//! (users, tokens, flags, settings), and the caller waits until this node's
//! store has applied it, so it reads what it wrote. Applying a change hands
//! its events to the [`Follower`](super::follower), which publishes them:
//! that is the only place durable events leave from.
//!
//! What is underneath is this module's business alone:
//! - one node: the log is the store writer. Appending is writing the batch;
//!   the writer applies it and calls the follower in commit order. Fences
//!   hold by construction (each entity has one writer on one node, and
//!   callers of the fenced writes serialise under their own locks).
//! - a cluster: the log is the replicated stream, each entity's appends
//!   fenced on its last position. Every node's follow loop applies the whole
//!   log, in log order, through the same store writer and follower, so
//!   sockets on every node see what any node accepted, in seq order.

use super::entity::EntityLog;
use super::follower::{Applied, Follower};
use super::record::{LogRecord, LoggedChange, LoggedEvent};
use super::store_writer::{StoreWriter, WriteError, WriterStats};
use crate::cluster::{log_subject, shard_of, Cluster, ClusterError, EntityKind, LogEntry, LogStream, LOG_FILTER, SHARED_SUBJECT};
use crate::fanout::broker::{Broker, ConversationEvent};
use bytes::Bytes;
use futures_util::StreamExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use utalk_storage::{Batch, Db, Map};
use uuid::Uuid;

/// The meta key holding the last log position this node's store has applied.
pub const APPLIED_KEY: &[u8] = b"cluster.applied_position";

/// The log subject of every stock change: one subject, so that a transfer
/// between two stores is fenced as one write.
pub const INVENTORY_SUBJECT: &str = "utalk.log.shared.inventory";

/// How long a writer keeps asking an unreachable log (a leader election
/// takes a few seconds) before it gives up and says so.
const APPEND_PATIENCE: Duration = Duration::from_secs(10);
/// How long a writer waits for its own append to be applied, with nothing
/// applied at all meanwhile, before it asks the follower to follow again: a
/// subscription lost with a NATS server can stay silent for much longer
/// than its heartbeats say.
const FOLLOW_STALL: Duration = Duration::from_secs(2);

/// Why a journal write failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum JournalError {
    /// The local store refused the write.
    #[error(transparent)]
    Write(#[from] WriteError),
    /// The replicated log refused the append or could not be reached.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// The entry is in the log but this node has not applied it in time.
    #[error("this node has not caught up with the log in time (applied {applied}, need {wanted})")]
    Behind {
        /// Position applied.
        applied: u64,
        /// Position waited for.
        wanted: u64,
    },
}

struct Inner {
    writer: StoreWriter,
    cluster: Arc<dyn Cluster>,
    /// The replicated stream; `None` on a node alone, whose store writer is the log.
    log: Option<Arc<dyn LogStream>>,
    applied: watch::Sender<u64>,
    /// Counts applied entries of shared state, so that caches of it (flags, bot settings) reload.
    shared: watch::Sender<u64>,
    /// The follower met an entry it cannot apply: this node stops short of it.
    stuck: AtomicBool,
    /// Asks the follower to follow the log again from where it is: a writer
    /// waited [`FOLLOW_STALL`] for its own append and nothing was applied.
    refollow: tokio::sync::Notify,
}

/// Handle to the journal; cheap to clone.
#[derive(Clone)]
pub struct Journal {
    inner: Arc<Inner>,
}

impl Journal {
    /// The journal of this node, publishing applied events to `broker`
    /// (this node's own: other nodes hear of a change through the log).
    /// Call [`Journal::follow`] once to start applying what other nodes append.
    pub fn new(db: &Db, writer: StoreWriter, cluster: Arc<dyn Cluster>, broker: Arc<dyn Broker>) -> Journal {
        let applied = applied_position(db);
        let shared = watch::Sender::new(0);
        writer.follow_with(Follower::new(broker, shared.clone()));
        Journal {
            inner: Arc::new(Inner {
                writer,
                log: cluster.log(),
                cluster,
                applied: watch::Sender::new(applied),
                shared,
                stuck: AtomicBool::new(false),
                refollow: tokio::sync::Notify::new(),
            }),
        }
    }

    /// The journal of a process on its own (a command-line tool, a test):
    /// one node, nobody subscribed.
    pub fn standalone(db: &Db, writer: StoreWriter, node_id: &str) -> Journal {
        let cluster = Arc::new(crate::cluster::LocalCluster::new(node_id));
        Journal::new(db, writer, cluster, Arc::new(crate::fanout::broker::LocalBroker::new()))
    }

    /// The seam to the other nodes (leases, forwarding, locks, events).
    pub fn cluster(&self) -> &Arc<dyn Cluster> {
        &self.inner.cluster
    }

    pub(super) fn writer(&self) -> &StoreWriter {
        &self.inner.writer
    }

    /// The store's counters (batches, groups, time in writes).
    pub fn store_stats(&self) -> &WriterStats {
        self.inner.writer.stats()
    }

    /// Whether the store takes writes, and how many wait for the next group.
    pub fn store_health(&self) -> StoreHealth {
        let w = &self.inner.writer;
        StoreHealth { accepting: !w.has_failed() && !w.is_stopped(), queued: w.queued() }
    }

    /// How many log entries this node has still to apply: 0 on one node,
    /// whose store is its log; `None` when the log does not answer in time.
    pub async fn lag(&self) -> Option<u64> {
        let Some(log) = &self.inner.log else { return Some(0) };
        let end = tokio::time::timeout(Duration::from_secs(2), log.log_end()).await;
        match end {
            Ok(Ok(end)) => Some(end.saturating_sub(self.applied())),
            _ => None,
        }
    }

    /// Opens conversation `id` for its one writer: makes this node's store
    /// hold everything written to it, so that the state read next is
    /// current, and returns its way into the log. `None` when this node does
    /// not own its shard.
    pub async fn open(&self, id: Uuid) -> Result<Option<EntityLog>, JournalError> {
        // Taken before reading the log: a lease taken after would not cover what we read.
        let lease = self.inner.cluster.lease_epoch(shard_of(id));
        if lease.is_none() {
            return Ok(None);
        }
        let mut position = 0;
        if let Some(log) = &self.inner.log {
            let subject = log_subject(EntityKind::Conversation, id);
            position = log.last_position(&subject).await?;
            self.wait_applied(position).await?;
        }
        // The barrier makes writes submitted by an earlier writer (before a
        // panic) durable before the state is read, so their seqs are not
        // handed out again. A failed barrier only means its group failed:
        // nothing of it was stored, so what is read next is still exactly
        // what is durable.
        if let Err(e) = self.inner.writer.barrier().await {
            tracing::debug!(conversation = %id, error = %e, "barrier before opening failed");
        }
        // Read before the state: a write failing after this fences the
        // entity's writes, so none can land after a lost one (a seq hole).
        let epoch = self.inner.writer.epoch();
        Ok(Some(if self.inner.log.is_some() {
            EntityLog::chained(self.clone(), id, lease, log_subject(EntityKind::Conversation, id), position)
        } else {
            EntityLog::local(self.clone(), id, lease, epoch)
        }))
    }

    /// Writes this node's own records, which no other node keeps (its job
    /// history, its delivery bookkeeping, its secrets): to the store alone,
    /// on one node as in a cluster.
    pub async fn commit_node(&self, batch: Batch) -> Result<(), WriteError> {
        self.inner.writer.commit(batch).await
    }

    /// Like [`Journal::commit_node`] for a background worker that retries
    /// from durable state anyway: a failure is logged as `what`, not returned.
    pub async fn commit_node_or_log(&self, batch: Result<Batch, utalk_storage::CodecError>, what: &str) {
        self.inner.writer.commit_or_log(batch, what).await
    }

    /// The last log position this node's store has applied.
    pub fn applied(&self) -> u64 {
        *self.inner.applied.borrow()
    }

    /// Changes each time this node applies shared state another node may have written.
    pub fn shared_changes(&self) -> watch::Receiver<u64> {
        self.inner.shared.subscribe()
    }

    /// Whether the follower stopped at an entry it cannot apply.
    pub fn stuck(&self) -> bool {
        self.inner.stuck.load(Ordering::Relaxed)
    }

    /// Writes shared state (users, tokens, flags, settings): through the log
    /// in a cluster, straight to the store on one node. Returns once this
    /// node's store has it.
    pub async fn commit(&self, batch: Batch) -> Result<(), JournalError> {
        // Without a fence nothing can refuse the append.
        self.commit_at(SHARED_SUBJECT, None, None, batch).await.map(|_| ())
    }

    /// Writes `batch` only if nothing was ever written under `key` of `kind`
    /// (an email address that must stay unique): `false` when something was.
    /// One node alone relies on the caller's own check, made under its lock.
    pub async fn commit_first(&self, kind: &str, key: &str, batch: Batch) -> Result<bool, JournalError> {
        Ok(self.commit_at(&unique_subject(kind, key), Some(0), None, batch).await?.is_some())
    }

    /// Makes this node's store hold everything written to `subject` so far
    /// and returns the position to fence the next write on (0 on one node alone).
    pub async fn sync_subject(&self, subject: &str) -> Result<u64, JournalError> {
        let Some(log) = &self.inner.log else { return Ok(0) };
        let position = log.last_position(subject).await?;
        self.wait_applied(position).await?;
        Ok(position)
    }

    /// Makes this node's store hold everything the log held when called
    /// (a no-op on one node alone): for work that must see every node's writes.
    pub async fn sync_log(&self) -> Result<(), JournalError> {
        let Some(log) = &self.inner.log else { return Ok(()) };
        let end = log.log_end().await?;
        self.wait_applied(end).await
    }

    /// Writes `batch` to `subject` if nothing was written there since
    /// `expected` (from [`Journal::sync_subject`]): `false` when another node
    /// wrote first, so the caller reads again and decides again.
    pub async fn commit_fenced(&self, subject: &str, expected: u64, batch: Batch) -> Result<bool, JournalError> {
        Ok(self.commit_at(subject, Some(expected), None, batch).await?.is_some())
    }

    /// Like [`Journal::commit_fenced`] for a writer that goes on writing to
    /// `subject`: the position to fence its next write on, `None` when
    /// another node wrote first.
    pub async fn commit_fenced_chain(&self, subject: &str, expected: u64, batch: Batch) -> Result<Option<u64>, JournalError> {
        self.commit_at(subject, Some(expected), None, batch).await
    }

    /// Writes a change of one conversation made outside its actor (its
    /// creation), publishing `events` once it is applied, as its actor's are.
    pub async fn commit_conversation(&self, conversation: Uuid, batch: Batch, events: Vec<ConversationEvent>) -> Result<(), JournalError> {
        // Without a fence nothing can refuse the append.
        let subject = log_subject(EntityKind::Conversation, conversation);
        self.commit_at(&subject, None, Some((conversation, events)), batch).await.map(|_| ())
    }

    /// Writes the creation of `conversation` only if nothing was ever written
    /// to it: `false` when another node created it first.
    pub async fn create_conversation_once(
        &self,
        conversation: Uuid,
        batch: Batch,
        events: Vec<ConversationEvent>,
    ) -> Result<bool, JournalError> {
        let subject = log_subject(EntityKind::Conversation, conversation);
        Ok(self.commit_at(&subject, Some(0), Some((conversation, events)), batch).await?.is_some())
    }

    /// Appends `batch` to `subject`, fenced at `expected` when given, and
    /// waits for this node's store to apply it: its log position, `None`
    /// when the fence refused it. One node alone writes straight to its
    /// store, at position 0.
    async fn commit_at(
        &self,
        subject: &str,
        expected: Option<u64>,
        conversation: Option<(Uuid, Vec<ConversationEvent>)>,
        batch: Batch,
    ) -> Result<Option<u64>, JournalError> {
        if self.inner.log.is_none() {
            // Shared state tells its caches to reload, as the follow loop does in a cluster.
            let applied = match conversation {
                None => Applied::Shared,
                Some((id, events)) => Applied::Conversation { id, events },
            };
            self.inner.writer.submit_applied(batch, None, applied).await?;
            return Ok(Some(0));
        }
        let (conversation, events) = match conversation {
            Some((id, events)) => (Some(id), events.iter().filter_map(LoggedEvent::from_event).collect()),
            None => (None, Vec::new()),
        };
        let record = LogRecord { conversation, changes: vec![LoggedChange { batch, events }] };
        let id = Uuid::now_v7().simple().to_string();
        match self.append(subject, expected, &id, record.encode()?).await {
            Ok(position) => self.wait_applied(position).await.map(|()| Some(position)),
            Err(ClusterError::Fenced { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Appends to the log, asking again with the same id while the log is
    /// unreachable (a retry that lands twice is kept once).
    pub async fn append(&self, subject: &str, expected: Option<u64>, id: &str, payload: Bytes) -> Result<u64, ClusterError> {
        let Some(log) = &self.inner.log else { return Err(no_log()) };
        let until = Instant::now() + APPEND_PATIENCE;
        loop {
            match log.append(subject, expected, id, payload.clone()).await {
                Err(ClusterError::Unavailable(e)) if Instant::now() < until => {
                    tracing::debug!(subject, error = %e, "log unavailable; appending again");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                other => return other,
            }
        }
    }

    /// Waits until this node's store has applied `position`.
    pub async fn wait_applied(&self, position: u64) -> Result<(), JournalError> {
        let mut rx = self.inner.applied.subscribe();
        let until = Instant::now() + APPEND_PATIENCE * 3;
        let mut seen = self.applied();
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left.min(FOLLOW_STALL), rx.wait_for(|p| *p >= position)).await {
                Ok(Ok(_)) => return Ok(()),
                Ok(Err(_)) => break,
                Err(_) if left <= FOLLOW_STALL => break,
                Err(_) => {
                    let now = self.applied();
                    if now == seen {
                        self.inner.refollow.notify_one();
                    }
                    seen = now;
                }
            }
        }
        Err(JournalError::Behind { applied: self.applied(), wanted: position })
    }

    /// Starts applying what other nodes append to the log; returns at once.
    /// On one node there are none: the store writer applies every change as
    /// it is written.
    pub fn follow(&self) {
        let Some(log) = self.inner.log.clone() else { return };
        let this = self.clone();
        let followed = log.clone();
        tokio::spawn(async move { this.follow_loop(&*followed).await });
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                if let Ok(end) = log.log_end().await {
                    let applied = this.applied();
                    metrics::gauge!("cluster_log_lag").set(end.saturating_sub(applied) as f64);
                    metrics::gauge!("cluster_applied_position").set(applied as f64);
                }
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        });
    }

    /// Waits until this node has applied everything the log held when it
    /// was called, logging progress; for a node that starts or restarts.
    pub async fn catch_up(&self) -> Result<(), ClusterError> {
        let Some(log) = &self.inner.log else { return Ok(()) };
        let end = log.log_end().await?;
        if self.applied() > end {
            // The log lost entries this store holds (a restore from an older log backup).
            return Err(ClusterError::Protocol(format!(
                "this node's store has applied the log up to position {}, but the cluster's log ends at {end}: \
                 restore the log from a backup at least that recent, or start this node on an empty data directory",
                self.applied()
            )));
        }
        let mut rx = self.inner.applied.subscribe();
        let started = Instant::now();
        let mut said = started - Duration::from_secs(5);
        loop {
            let applied = *rx.borrow_and_update();
            if applied >= end {
                tracing::info!(position = end, seconds = started.elapsed().as_secs_f64(), "caught up with the cluster log");
                return Ok(());
            }
            // Progress every few seconds, not at every applied group.
            if said.elapsed() >= Duration::from_secs(5) {
                tracing::info!(applied, end, "catching up with the cluster log");
                said = Instant::now();
            }
            let _ = tokio::time::timeout(Duration::from_secs(5), rx.changed()).await;
        }
    }

    async fn follow_loop(&self, log: &dyn LogStream) {
        loop {
            let from = self.applied();
            match log.follow(LOG_FILTER, from).await {
                Ok(stream) => {
                    let mut chunks = stream.ready_chunks(512);
                    loop {
                        let chunk = tokio::select! {
                            chunk = chunks.next() => chunk,
                            () = self.inner.refollow.notified() => {
                                tracing::warn!(applied = self.applied(), "the cluster log brought nothing while this node awaited its own append; following again");
                                break;
                            }
                        };
                        let Some(chunk) = chunk else { break };
                        let (entries, broke) = split_ok(chunk);
                        if let Err(e) = self.apply(entries).await {
                            tracing::error!(error = %e, "cannot apply the cluster log; this node stops following it");
                            self.inner.stuck.store(true, Ordering::Relaxed);
                            return;
                        }
                        if let Some(e) = broke {
                            tracing::warn!(error = %e, "following the cluster log broke; following again");
                            break;
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot follow the cluster log; trying again"),
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Applies entries that follow each other in the log as one group
    /// commit; the store writer hands each entry's events to the follower.
    async fn apply(&self, entries: Vec<LogEntry>) -> Result<(), JournalError> {
        let Some(last) = entries.last().map(|e| e.position) else { return Ok(()) };
        let mut pending = Vec::with_capacity(entries.len());
        let applied = self.applied();
        for entry in entries {
            // A follower started again may see an entry it already applied.
            if entry.position <= applied {
                continue;
            }
            let record = LogRecord::decode(&entry.payload)?;
            let mut batch = Batch::new();
            let mut events = Vec::new();
            for change in record.changes {
                batch.extend(change.batch);
                if let Some(conv) = record.conversation {
                    events.extend(change.events.into_iter().map(|e| e.into_event(conv)));
                }
            }
            batch.put_raw(Map::Meta, APPLIED_KEY.to_vec(), entry.position.to_be_bytes().to_vec());
            let applied = match record.conversation {
                None => Applied::Shared,
                Some(id) => Applied::Conversation { id, events },
            };
            pending.push(self.inner.writer.submit_applied(batch, None, applied));
        }
        // The writer commits in submission order, so the last answer covers all.
        for p in pending {
            p.await?;
        }
        self.inner.applied.send_if_modified(|p| {
            let moved = last > *p;
            *p = (*p).max(last);
            moved
        });
        Ok(())
    }
}

/// Whether the store takes writes.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct StoreHealth {
    /// False while the last write failed (a full disk, say) or once the writer stopped.
    pub accepting: bool,
    /// Writes waiting for the next group.
    pub queued: usize,
}

fn split_ok(chunk: Vec<Result<LogEntry, ClusterError>>) -> (Vec<LogEntry>, Option<ClusterError>) {
    let mut out = Vec::with_capacity(chunk.len());
    for item in chunk {
        match item {
            Ok(e) => out.push(e),
            // Entries after a broken one are not trusted to be in order: follow again from here.
            Err(e) => return (out, Some(e)),
        }
    }
    (out, None)
}

/// The log subject that holds the first write under `key` of `kind`:
/// `utalk.log.shared.<kind>.<hash of key>` (keys may hold any character).
pub fn unique_subject(kind: &str, key: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(key.as_bytes());
    format!("{SHARED_SUBJECT}.{kind}.{}", hex::encode(&digest[..16]))
}

/// Appends `batch` of shared state to the cluster's log from a tool that is
/// not a node (nothing here applies it), if nothing was ever written under
/// `key` of `kind`: its log position, `None` when something was.
pub async fn append_first(cluster: &dyn Cluster, kind: &str, key: &str, batch: Batch) -> Result<Option<u64>, ClusterError> {
    let record = LogRecord { conversation: None, changes: vec![LoggedChange { batch, events: Vec::new() }] };
    let Some(log) = cluster.log() else { return Err(no_log()) };
    let id = Uuid::now_v7().simple().to_string();
    match log.append(&unique_subject(kind, key), Some(0), &id, record.encode()?).await {
        Ok(position) => Ok(Some(position)),
        Err(ClusterError::Fenced { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The refusal of a log append where there is no replicated log: a node
/// alone writes through its store writer instead.
fn no_log() -> ClusterError {
    ClusterError::Protocol("there is no replicated log on a node alone".into())
}

/// The last log position `db` has applied, 0 for a store that never followed a log.
pub fn applied_position(db: &Db) -> u64 {
    match db.get_raw(Map::Meta, APPLIED_KEY) {
        Ok(Some(v)) => v.as_slice().try_into().map(u64::from_be_bytes).unwrap_or(0),
        _ => 0,
    }
}
