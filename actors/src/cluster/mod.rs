//! The cluster seam: who owns a shard, the replicated log with its fence,
//! fan-out between nodes, forwarding to a shard's owner, and locks for jobs
//! that run once.
//!
//! [`LocalCluster`] is one node on its own: it owns every shard, its log is
//! the local store (the only writer of an entity is its one actor, so no
//! fence can fail), and nothing leaves the process. [`NatsCluster`] runs the
//! same interface over NATS JetStream: leases in a key-value bucket, the log
//! in a stream replicated three ways with an expected-last-sequence fence per
//! subject, events and forwarded requests over core NATS.

mod local;
mod nats;

pub use local::LocalCluster;
pub use nats::{redact_urls, valid_node_id, NatsCluster, NatsSettings, NatsTls};

use bytes::Bytes;
use futures_util::stream::{BoxStream, StreamExt};
use serde::Serialize;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// A boxed future, so that the seam can be a trait object.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Shards that conversations and stores hash into. Fixed: changing it moves
/// every entity to another shard, so it is part of the cluster's format.
pub const SHARDS: u32 = 64;

/// The shard of an entity: FNV-1a over its id's bytes, so that every node
/// and every version agrees.
pub fn shard_of(id: Uuid) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in id.as_bytes() {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h % SHARDS
}

/// Hands `on` everything other nodes publish on `topic` from now on,
/// listening again a second after a refused or broken subscription, until
/// `on` returns false. Must run inside a tokio runtime.
pub fn listen_forever(cluster: Arc<dyn Cluster>, topic: &'static str, mut on: impl FnMut(Bytes) -> bool + Send + 'static) {
    tokio::spawn(async move {
        loop {
            match cluster.listen(topic).await {
                Ok(mut events) => {
                    while let Some(bytes) = events.next().await {
                        if !on(bytes) {
                            return;
                        }
                    }
                }
                Err(e) => tracing::warn!(topic, error = %e, "cannot listen to other nodes' events; trying again"),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
}

/// Whether this node does the work that must run once in the cluster (the
/// WhatsApp outbox, media downloads, the stock scan): the owner of shard 0,
/// whose lease makes it one node at a time.
pub fn leads(cluster: &dyn Cluster) -> bool {
    cluster.owns(0)
}

/// What kind of entity a log subject belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntityKind {
    /// A conversation and its messages.
    Conversation,
    /// An inventory store.
    Store,
}

impl EntityKind {
    /// The subject token of the kind.
    pub fn token(self) -> &'static str {
        match self {
            EntityKind::Conversation => "conv",
            EntityKind::Store => "store",
        }
    }
}

/// The log subject of one entity: `utalk.log.<shard>.<kind>.<id>`, so that a
/// shard's whole log is one filter and each entity has a fence of its own.
pub fn log_subject(kind: EntityKind, id: Uuid) -> String {
    format!("utalk.log.{}.{}.{}", shard_of(id), kind.token(), id.simple())
}

/// The log subject of state every node shares (users, tokens, flags, settings).
pub const SHARED_SUBJECT: &str = "utalk.log.shared";

/// The filter that matches the whole log.
pub const LOG_FILTER: &str = "utalk.log.>";

/// The filter that matches every log subject of `shard`.
pub fn shard_filter(shard: u32) -> String {
    format!("utalk.log.{shard}.>")
}

/// One entry of the replicated log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// Its subject.
    pub subject: String,
    /// Its position in the whole log; the fence value of the next append to its subject.
    pub position: u64,
    /// What was appended.
    pub payload: Bytes,
}

/// A failure of the cluster seam.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClusterError {
    /// The subject's last entry is not the one the writer expected: another
    /// owner wrote first, so this writer must stop and catch up.
    #[error("the log of {subject} has moved past position {expected}: another owner wrote to it")]
    Fenced {
        /// The subject.
        subject: String,
        /// The position the writer expected to be last.
        expected: u64,
    },
    /// This node does not hold the shard's lease.
    #[error("shard {shard} is not owned by this node")]
    NotOwner {
        /// The shard.
        shard: u32,
    },
    /// No node answered for the shard in time (ownership is moving, or its owner died).
    #[error("no node serves shard {shard} right now")]
    NoOwner {
        /// The shard.
        shard: u32,
    },
    /// The cluster could not be reached or did not answer in time; the
    /// operation may or may not have happened, so retry it with the same id.
    #[error("the cluster is unavailable: {0}")]
    Unavailable(String),
    /// The cluster answered something this node cannot use.
    #[error("cluster error: {0}")]
    Protocol(String),
}

/// Where this node stands, for `/health/cluster` and metrics.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStatus {
    /// `single` or `nats`.
    pub mode: &'static str,
    /// This node.
    pub node_id: String,
    /// Shards this node holds the lease of, ascending.
    pub owned_shards: Vec<u32>,
    /// Whether the connection to NATS is up (always true on a single node).
    pub connected: bool,
    /// Nodes that announced themselves within a lease period, this one included.
    pub live_nodes: Vec<String>,
}

/// A request forwarded to a shard's owner, with the way to answer it.
pub struct Forwarded {
    /// The request.
    pub payload: Bytes,
    /// Answers the request; dropping it leaves the sender to time out.
    pub reply: Box<dyn FnOnce(Bytes) -> BoxFuture<'static, ()> + Send>,
}

/// A job lock held by this node; released when dropped or when the node dies.
pub struct JobLock {
    release: Option<Box<dyn FnOnce() + Send>>,
    /// Turns true when the lock could not be renewed.
    lost: Option<tokio::sync::watch::Receiver<bool>>,
}

impl JobLock {
    /// A lock whose release runs `release` and that cannot be lost.
    pub fn new(release: impl FnOnce() + Send + 'static) -> JobLock {
        JobLock { release: Some(Box::new(release)), lost: None }
    }

    /// A lock whose release runs `release` and that `lost` says, by turning
    /// true, could not be renewed: another node may take it from then on.
    pub fn renewed(release: impl FnOnce() + Send + 'static, lost: tokio::sync::watch::Receiver<bool>) -> JobLock {
        JobLock { release: Some(Box::new(release)), lost: Some(lost) }
    }

    /// Resolves once the lock is lost; never while it is held.
    pub async fn lost(&mut self) {
        if let Some(rx) = &mut self.lost {
            if rx.wait_for(|lost| *lost).await.is_ok() {
                return;
            }
        }
        // Released or unlosable: nothing will ever say it is lost.
        std::future::pending::<()>().await
    }
}

impl Drop for JobLock {
    fn drop(&mut self) {
        if let Some(r) = self.release.take() {
            r();
        }
    }
}

impl std::fmt::Debug for JobLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JobLock")
    }
}

/// The seam between the actors and however many nodes there are.
pub trait Cluster: Send + Sync + 'static {
    /// This node's id.
    fn node_id(&self) -> &str;

    /// Whether this node holds `shard`'s lease with time to spare. A node
    /// that could not renew answers false before the lease runs out.
    fn owns(&self, shard: u32) -> bool;

    /// A change of the owned shards: resolves when the set may have changed.
    fn ownership_changed(&self) -> BoxFuture<'_, ()>;

    /// Appends `payload` to `subject` if its last entry is at `expected`
    /// (0: the subject is empty; `None`: wherever it is), deduplicated by
    /// `id`: a retry with the same id returns the first append's position,
    /// whatever the fence says now.
    fn append<'a>(
        &'a self,
        subject: &'a str,
        expected: Option<u64>,
        id: &'a str,
        payload: Bytes,
    ) -> BoxFuture<'a, Result<u64, ClusterError>>;

    /// Every entry matching `filter` after `position`, in order, and then
    /// each new one as it is appended; an error item means the stream broke
    /// and the caller follows again from the last position it saw.
    fn follow<'a>(
        &'a self,
        filter: &'a str,
        after: u64,
    ) -> BoxFuture<'a, Result<BoxStream<'static, Result<LogEntry, ClusterError>>, ClusterError>>;

    /// The position of the last entry of the whole log, 0 if it is empty.
    fn log_end(&self) -> BoxFuture<'_, Result<u64, ClusterError>>;

    /// Whether the log is replicated beyond this process; when false, the
    /// local store is the log and nothing needs to follow it.
    fn replicated(&self) -> bool;

    /// A number that changes each time this node takes `shard`'s lease anew
    /// (`None` while it does not own it), so an entity loaded under one lease
    /// can tell that it lost and regained the shard in between.
    fn lease_epoch(&self, shard: u32) -> Option<u64>;

    /// The position of the last entry of `subject`, 0 if it has none.
    fn last_position<'a>(&'a self, subject: &'a str) -> BoxFuture<'a, Result<u64, ClusterError>>;

    /// Sends `payload` to the current owner of `shard` and waits for its answer;
    /// while no node serves the shard it asks again until `timeout`.
    fn forward(&self, shard: u32, payload: Bytes, timeout: Duration) -> BoxFuture<'_, Result<Bytes, ClusterError>>;

    /// Requests forwarded to `shard` while this node owns it; the stream ends when it stops owning it.
    fn serve(&self, shard: u32) -> BoxFuture<'_, Result<BoxStream<'static, Forwarded>, ClusterError>>;

    /// Sends `payload` to every node listening on `topic`; nothing is kept.
    fn publish<'a>(&'a self, topic: &'a str, payload: Bytes) -> BoxFuture<'a, Result<(), ClusterError>>;

    /// What is published on `topic` from now on.
    fn listen<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<BoxStream<'static, Bytes>, ClusterError>>;

    /// Takes the cluster-wide lock `name` if no node holds it; `None` when another does.
    fn try_lock<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<JobLock>, ClusterError>>;

    /// Keeps `value` under `key` for any node to take within a few minutes
    /// (a dropped socket session, for recovery on another node).
    fn stash<'a>(&'a self, key: &'a str, value: Bytes) -> BoxFuture<'a, Result<(), ClusterError>>;

    /// Takes what [`Cluster::stash`] kept under `key`, if it is still there.
    fn unstash<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Bytes>, ClusterError>>;

    /// Keeps the file `name` where every node can read it (media), replicated
    /// like the log; answers only once the copy is durable.
    fn put_blob<'a>(&'a self, name: &'a str, bytes: Bytes) -> BoxFuture<'a, Result<(), ClusterError>>;

    /// The file [`Cluster::put_blob`] kept under `name`; `None` when there is
    /// none (always on a single node, whose files are only its own).
    fn get_blob<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<Bytes>, ClusterError>>;

    /// The names of every file [`Cluster::put_blob`] keeps (for backups).
    fn list_blobs(&self) -> BoxFuture<'_, Result<Vec<String>, ClusterError>>;

    /// Removes the file kept under `name`, if any.
    fn delete_blob<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), ClusterError>>;

    /// Where this node stands.
    fn status(&self) -> ClusterStatus;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_stable_and_spread() {
        let id = Uuid::parse_str("0190f5a3-7b1c-7d2e-8f00-0123456789ab").unwrap();
        assert_eq!(shard_of(id), shard_of(id));
        let mut counts = vec![0u32; SHARDS as usize];
        for _ in 0..64_000 {
            counts[shard_of(Uuid::now_v7()) as usize] += 1;
        }
        assert!(counts.iter().all(|&c| (700..1300).contains(&c)), "{counts:?}");
        let s = log_subject(EntityKind::Conversation, id);
        assert!(s.starts_with(&format!("utalk.log.{}.conv.", shard_of(id))), "{s}");
        assert!(!s.contains('-'));
    }
}
