//! One node on its own: it owns every shard, nothing leaves the process,
//! and its store is the log.

use super::{
    Blobs, BoxFuture, Cluster, ClusterError, ClusterStatus, Events, Forwarded, Forwarding, JobLock, Leases, Locks, LogStream, SessionStash,
    SHARDS,
};
use bytes::Bytes;
use futures_util::stream::{self, BoxStream, StreamExt};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use utalk_storage::model::MessageFormat;

/// The single-node cluster: owns every shard for good; the local store is
/// the whole log, so there is never anything to catch up on.
#[derive(Debug)]
pub struct LocalCluster {
    node_id: String,
    locks: Arc<Mutex<HashSet<String>>>,
}

impl LocalCluster {
    /// A single node named `node_id`.
    pub fn new(node_id: impl Into<String>) -> LocalCluster {
        LocalCluster { node_id: node_id.into(), locks: Arc::default() }
    }
}

fn ready<'a, T: Send + 'a>(v: T) -> BoxFuture<'a, T> {
    Box::pin(std::future::ready(v))
}

impl Leases for LocalCluster {
    fn node_id(&self) -> &str {
        &self.node_id
    }

    fn owns(&self, _shard: u32) -> bool {
        true
    }

    fn ownership_changed(&self) -> BoxFuture<'_, ()> {
        Box::pin(std::future::pending())
    }

    fn lease_epoch(&self, _shard: u32) -> Option<u64> {
        Some(0)
    }

    fn status(&self) -> ClusterStatus {
        ClusterStatus {
            mode: "single",
            node_id: self.node_id.clone(),
            owned_shards: (0..SHARDS).collect(),
            connected: true,
            live_nodes: vec![self.node_id.clone()],
        }
    }

    fn not_reading(&self, format: MessageFormat) -> Vec<String> {
        // Alone: this build is the only reader.
        if format.version() <= MessageFormat::NEWEST.version() {
            Vec::new()
        } else {
            vec![self.node_id.clone()]
        }
    }
}

impl Forwarding for LocalCluster {
    fn forward(&self, shard: u32, _payload: Bytes, _timeout: Duration) -> BoxFuture<'_, Result<Bytes, ClusterError>> {
        // Unreachable in practice: this node owns every shard, so nothing is forwarded.
        ready(Err(ClusterError::NoOwner { shard }))
    }

    fn serve(&self, _shard: u32) -> BoxFuture<'_, Result<BoxStream<'static, Forwarded>, ClusterError>> {
        ready(Ok(stream::pending().boxed()))
    }
}

impl Events for LocalCluster {
    fn publish<'a>(&'a self, _topic: &'a str, _payload: Bytes) -> BoxFuture<'a, Result<(), ClusterError>> {
        ready(Ok(()))
    }

    fn listen<'a>(&'a self, _topic: &'a str) -> BoxFuture<'a, Result<BoxStream<'static, Bytes>, ClusterError>> {
        ready(Ok(stream::pending().boxed()))
    }
}

impl Locks for LocalCluster {
    fn try_lock<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<JobLock>, ClusterError>> {
        let mut held = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        if !held.insert(name.to_string()) {
            return ready(Ok(None));
        }
        let (locks, name) = (self.locks.clone(), name.to_string());
        ready(Ok(Some(JobLock::new(move || {
            locks.lock().unwrap_or_else(|p| p.into_inner()).remove(&name);
        }))))
    }
}

impl SessionStash for LocalCluster {
    /// One node keeps its dropped sessions itself: nothing to share.
    fn stash<'a>(&'a self, _key: &'a str, _value: Bytes) -> BoxFuture<'a, Result<(), ClusterError>> {
        ready(Ok(()))
    }

    fn unstash<'a>(&'a self, _key: &'a str) -> BoxFuture<'a, Result<Option<Bytes>, ClusterError>> {
        ready(Ok(None))
    }
}

impl Blobs for LocalCluster {
    fn put_blob<'a>(&'a self, _name: &'a str, _bytes: Bytes) -> BoxFuture<'a, Result<(), ClusterError>> {
        ready(Ok(()))
    }

    fn get_blob<'a>(&'a self, _name: &'a str) -> BoxFuture<'a, Result<Option<Bytes>, ClusterError>> {
        ready(Ok(None))
    }

    fn list_blobs(&self) -> BoxFuture<'_, Result<Vec<String>, ClusterError>> {
        ready(Ok(Vec::new()))
    }

    fn delete_blob<'a>(&'a self, _name: &'a str) -> BoxFuture<'a, Result<(), ClusterError>> {
        ready(Ok(()))
    }
}

impl Cluster for LocalCluster {
    /// A node alone has no replicated log: its store, through the store
    /// writer, is the whole log, so there is never anything to catch up on.
    fn log(&self) -> Option<Arc<dyn LogStream>> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_single_node_owns_everything_and_locks_once() {
        let c = LocalCluster::new("solo");
        assert!((0..SHARDS).all(|s| c.owns(s)));
        assert!(c.log().is_none(), "the store is the log");
        let held = c.try_lock("kpi_rollup").await.unwrap().expect("free");
        assert!(c.try_lock("kpi_rollup").await.unwrap().is_none(), "held once");
        assert!(c.try_lock("retention").await.unwrap().is_some(), "locks are per name");
        drop(held);
        assert!(c.try_lock("kpi_rollup").await.unwrap().is_some(), "released on drop");
        assert_eq!(c.status().owned_shards.len(), SHARDS as usize);
    }
}
