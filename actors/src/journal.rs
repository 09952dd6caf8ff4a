//! The journal: where a durable change goes before anyone is told it happened.
//!
//! On one node alone the journal is the store writer. In a cluster it is the
//! replicated log: a change is appended to its entity's subject (the
//! conversation's, or the shared subject for users, tokens, flags and
//! settings), and every node's follower applies the whole log, in log order,
//! to its own store. A writer waits until its own node has applied its entry,
//! so it reads what it wrote; other nodes see it a moment later. The
//! follower also hands the events of each conversation entry to the local
//! broker, which is how sockets on every node see what any node accepted,
//! in seq order.

use crate::broker::{Actor as Reader, Broker, ConversationEvent};
use crate::cluster::{log_subject, Cluster, ClusterError, EntityKind, LogEntry, LOG_FILTER, SHARED_SUBJECT};
use crate::store_writer::{StoreWriter, WriteError};
use bytes::Bytes;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use utalk_storage::model::{Conversation, Message};
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

/// An event as it travels in the log.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum LoggedEvent {
    /// `message:new`.
    MessageNew(Message),
    /// `message:status`.
    MessageStatus(Message),
    /// `message:updated`.
    MessageUpdated(Message),
    /// `conversation:updated`.
    ConversationUpdated(Conversation),
    /// A read marker moved.
    Read {
        /// Up to which seq.
        seq: u64,
        /// `agent` or `customer`.
        kind: String,
        /// The staff user.
        id: Option<Uuid>,
    },
}

impl LoggedEvent {
    /// The log form of a conversation event; `None` for events that are not kept (typing, presence).
    pub fn from_event(e: &ConversationEvent) -> Option<LoggedEvent> {
        Some(match e {
            ConversationEvent::MessageNew(m) => LoggedEvent::MessageNew((**m).clone()),
            ConversationEvent::MessageStatus(m) => LoggedEvent::MessageStatus((**m).clone()),
            ConversationEvent::MessageUpdated(m) => LoggedEvent::MessageUpdated((**m).clone()),
            ConversationEvent::ConversationUpdated(c) => LoggedEvent::ConversationUpdated((**c).clone()),
            ConversationEvent::Read { seq, reader, .. } => LoggedEvent::Read { seq: *seq, kind: reader.kind.to_string(), id: reader.id },
            _ => return None,
        })
    }

    fn into_event(self, conversation_id: Uuid) -> ConversationEvent {
        match self {
            LoggedEvent::MessageNew(m) => ConversationEvent::MessageNew(Arc::new(m)),
            LoggedEvent::MessageStatus(m) => ConversationEvent::MessageStatus(Arc::new(m)),
            LoggedEvent::MessageUpdated(m) => ConversationEvent::MessageUpdated(Arc::new(m)),
            LoggedEvent::ConversationUpdated(c) => ConversationEvent::ConversationUpdated(Arc::new(c)),
            LoggedEvent::Read { seq, kind, id } => {
                ConversationEvent::Read { conversation_id, seq, reader: Reader { kind: reader_kind(&kind), id } }
            }
        }
    }
}

/// The static name of a reader kind read back from the wire.
pub fn reader_kind(kind: &str) -> &'static str {
    if kind == "customer" {
        "customer"
    } else {
        "agent"
    }
}

/// One change in a log entry: the writes, and what subscribers are told.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoggedChange {
    /// The writes, exactly as the owner made them.
    pub batch: Batch,
    /// Its events, in order.
    pub events: Vec<LoggedEvent>,
}

/// One log entry: the changes of one entity, applied together.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogRecord {
    /// The conversation it belongs to; `None` for shared state.
    pub conversation: Option<Uuid>,
    /// The changes, in order.
    pub changes: Vec<LoggedChange>,
}

impl LogRecord {
    /// The record as log bytes.
    pub fn encode(&self) -> Result<Bytes, ClusterError> {
        rmp_serde::to_vec_named(self).map(Bytes::from).map_err(|e| ClusterError::Protocol(format!("cannot encode a log entry: {e}")))
    }

    /// A record read from the log.
    pub fn decode(bytes: &[u8]) -> Result<LogRecord, ClusterError> {
        rmp_serde::from_slice(bytes).map_err(|e| ClusterError::Protocol(format!("cannot decode a log entry: {e}")))
    }
}

struct Inner {
    writer: StoreWriter,
    cluster: Arc<dyn Cluster>,
    applied: watch::Sender<u64>,
    /// Counts applied entries of shared state, so that caches of it (flags, bot settings) reload.
    shared: watch::Sender<u64>,
    /// The follower met an entry it cannot apply: this node stops short of it.
    stuck: AtomicBool,
}

/// Handle to the journal; cheap to clone.
#[derive(Clone)]
pub struct Journal {
    inner: Arc<Inner>,
}

impl Journal {
    /// The journal of this node. In a cluster, call [`Journal::follow`] once to start applying the log.
    pub fn new(db: &Db, writer: StoreWriter, cluster: Arc<dyn Cluster>) -> Journal {
        let applied = applied_position(db);
        Journal {
            inner: Arc::new(Inner {
                writer,
                cluster,
                applied: watch::Sender::new(applied),
                shared: watch::Sender::new(0),
                stuck: AtomicBool::new(false),
            }),
        }
    }

    /// The seam to the other nodes.
    pub fn cluster(&self) -> &Arc<dyn Cluster> {
        &self.inner.cluster
    }

    /// The store writer underneath.
    pub fn writer(&self) -> &StoreWriter {
        &self.inner.writer
    }

    /// Whether changes go through the replicated log.
    pub fn replicated(&self) -> bool {
        self.inner.cluster.replicated()
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
        self.commit_to(SHARED_SUBJECT, None, batch).await
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
        if !self.replicated() {
            return Ok(0);
        }
        let position = self.inner.cluster.last_position(subject).await?;
        self.wait_applied(position).await?;
        Ok(position)
    }

    /// Makes this node's store hold everything the log held when called
    /// (a no-op on one node alone): for work that must see every node's writes.
    pub async fn sync_log(&self) -> Result<(), JournalError> {
        if !self.replicated() {
            return Ok(());
        }
        let end = self.inner.cluster.log_end().await?;
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

    /// Writes a change of one conversation made outside its actor (its creation).
    pub async fn commit_conversation(&self, conversation: Uuid, batch: Batch) -> Result<(), JournalError> {
        self.commit_to(&log_subject(EntityKind::Conversation, conversation), Some(conversation), batch).await
    }

    /// Writes the creation of `conversation` only if nothing was ever written
    /// to it: `false` when another node created it first.
    pub async fn create_conversation_once(&self, conversation: Uuid, batch: Batch) -> Result<bool, JournalError> {
        Ok(self.commit_at(&log_subject(EntityKind::Conversation, conversation), Some(0), Some(conversation), batch).await?.is_some())
    }

    async fn commit_to(&self, subject: &str, conversation: Option<Uuid>, batch: Batch) -> Result<(), JournalError> {
        // Without a fence nothing can refuse the append.
        self.commit_at(subject, None, conversation, batch).await.map(|_| ())
    }

    /// Appends `batch` to `subject`, fenced at `expected` when given, and
    /// waits for this node's store to apply it: its log position, `None`
    /// when the fence refused it. One node alone writes straight to its
    /// store, at position 0.
    async fn commit_at(
        &self,
        subject: &str,
        expected: Option<u64>,
        conversation: Option<Uuid>,
        batch: Batch,
    ) -> Result<Option<u64>, JournalError> {
        if !self.replicated() {
            self.inner.writer.commit(batch).await?;
            return Ok(Some(0));
        }
        let record = LogRecord { conversation, changes: vec![LoggedChange { batch, events: Vec::new() }] };
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
        let until = Instant::now() + APPEND_PATIENCE;
        loop {
            match self.inner.cluster.append(subject, expected, id, payload.clone()).await {
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
        let reached = tokio::time::timeout(APPEND_PATIENCE * 3, rx.wait_for(|p| *p >= position)).await;
        match reached {
            Ok(Ok(_)) => Ok(()),
            _ => Err(JournalError::Behind { applied: self.applied(), wanted: position }),
        }
    }

    /// Starts applying the log to this node's store, handing conversation
    /// events to `broker`; returns at once. A no-op on one node alone.
    pub fn follow(&self, broker: Arc<dyn Broker>) {
        if !self.replicated() {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move { this.follow_loop(broker).await });
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                if let Ok(end) = this.inner.cluster.log_end().await {
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
        if !self.replicated() {
            return Ok(());
        }
        let end = self.inner.cluster.log_end().await?;
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

    async fn follow_loop(&self, broker: Arc<dyn Broker>) {
        loop {
            let from = self.applied();
            match self.inner.cluster.follow(LOG_FILTER, from).await {
                Ok(stream) => {
                    let mut chunks = stream.ready_chunks(512);
                    while let Some(chunk) = chunks.next().await {
                        let (entries, broke) = split_ok(chunk);
                        if let Err(e) = self.apply(entries, &broker).await {
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

    /// Applies entries that follow each other in the log as one group commit,
    /// then publishes their events in order.
    async fn apply(&self, entries: Vec<LogEntry>, broker: &Arc<dyn Broker>) -> Result<(), JournalError> {
        let Some(last) = entries.last().map(|e| e.position) else { return Ok(()) };
        let mut pending = Vec::with_capacity(entries.len());
        let mut events = Vec::new();
        let mut shared = false;
        let applied = self.applied();
        for entry in entries {
            // A follower started again may see an entry it already applied.
            if entry.position <= applied {
                continue;
            }
            let record = LogRecord::decode(&entry.payload)?;
            shared |= record.conversation.is_none();
            let mut batch = Batch::new();
            for change in record.changes {
                batch.extend(change.batch);
                if let Some(conv) = record.conversation {
                    events.extend(change.events.into_iter().map(|e| (conv, e.into_event(conv))));
                }
            }
            batch.put_raw(Map::Meta, APPLIED_KEY.to_vec(), entry.position.to_be_bytes().to_vec());
            pending.push(self.inner.writer.submit(batch));
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
        for (conv, e) in events {
            broker.publish(conv, e);
        }
        if shared {
            self.inner.shared.send_modify(|n| *n += 1);
        }
        Ok(())
    }
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

/// The last log position `db` has applied, 0 for a store that never followed a log.
pub fn applied_position(db: &Db) -> u64 {
    match db.get_raw(Map::Meta, APPLIED_KEY) {
        Ok(Some(v)) => v.as_slice().try_into().map(u64::from_be_bytes).unwrap_or(0),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_survives_the_log_and_garbage_is_refused() {
        let mut batch = Batch::new();
        batch.put_raw(Map::Meta, b"k".to_vec(), b"v".to_vec());
        let r = LogRecord {
            conversation: Some(Uuid::now_v7()),
            changes: vec![LoggedChange { batch, events: vec![LoggedEvent::Read { seq: 3, kind: "customer".into(), id: None }] }],
        };
        let back = LogRecord::decode(&r.encode().unwrap()).unwrap();
        assert_eq!(back.conversation, r.conversation);
        assert_eq!(back.changes[0].batch.len(), 1);
        assert!(matches!(back.changes[0].events[0], LoggedEvent::Read { seq: 3, .. }));
        assert!(matches!(LogRecord::decode(b"\x01\x02garbage"), Err(ClusterError::Protocol(_))));
    }
}
