//! The cluster seam, one small interface per job:
//!
//! | job | trait | one node ([`LocalCluster`]) | NATS ([`NatsCluster`]) |
//! |---|---|---|---|
//! | who serves a shard | [`Leases`] | owns every shard for good | keys in `utalk_shards`, renewed |
//! | the replicated log | [`LogStream`] | none: the store is the log | stream `UTALK_LOG`, fenced per subject |
//! | requests to a shard's owner | [`Forwarding`] | nothing to forward | core request/reply |
//! | fan-out between nodes | [`Events`] | nobody else listens | core publish |
//! | jobs that run once | [`Locks`] | an in-process set | keys in `utalk_locks`, renewed |
//! | dropped socket sessions | [`SessionStash`] | the node keeps its own | bucket `utalk_stash` |
//! | media files | [`Blobs`] | the node's own disk | object store `utalk_media` |
//!
//! [`Cluster`] is all of them together, the one thing a node is built with;
//! a part that needs one job takes that trait. Only the durability seam
//! asks for the log ([`Cluster::log`]); everything else runs the same on
//! one node and on many.

mod blobs;
mod events;
mod forwarding;
mod leases;
mod local;
mod locks;
mod log;
mod nats;
mod stash;

pub use blobs::Blobs;
pub use events::{listen_forever, Events};
pub use forwarding::{Forwarded, Forwarding};
pub use leases::{leads, Leases};
pub use local::LocalCluster;
pub use locks::{JobLock, Locks};
pub use log::{log_subject, shard_filter, EntityKind, LogEntry, LogStream, LOG_FILTER, SHARED_SUBJECT};
pub use nats::{redact_urls, valid_node_id, NatsCluster, NatsSettings, NatsTls};
pub use stash::SessionStash;

use serde::Serialize;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
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

/// A node's whole view of the others: every job's interface, and the
/// replicated log when there is one.
pub trait Cluster: Leases + Forwarding + Events + Locks + SessionStash + Blobs {
    /// The log replicated beyond this process; `None` on a node alone, whose
    /// store is the log. Only the durability seam asks.
    fn log(&self) -> Option<Arc<dyn LogStream>>;
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
