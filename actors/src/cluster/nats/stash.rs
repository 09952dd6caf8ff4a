//! The session stash over NATS: the bucket `utalk_stash`, whose values
//! expire after ten minutes and are taken once.

use super::{unavailable, NatsCluster};
use crate::cluster::{BoxFuture, ClusterError, SessionStash};
use bytes::Bytes;

/// A stash key NATS accepts whatever the caller's key holds.
fn stash_key(key: &str) -> String {
    use sha2::Digest;
    format!("k.{}", hex::encode(&sha2::Sha256::digest(key.as_bytes())[..16]))
}

impl SessionStash for NatsCluster {
    fn stash<'a>(&'a self, key: &'a str, value: Bytes) -> BoxFuture<'a, Result<(), ClusterError>> {
        Box::pin(async move {
            self.inner.stash.put(stash_key(key), value).await.map_err(unavailable)?;
            Ok(())
        })
    }

    fn unstash<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Bytes>, ClusterError>> {
        Box::pin(async move {
            let key = stash_key(key);
            let value = self.inner.stash.get(&key).await.map_err(unavailable)?;
            if value.is_some() {
                // Taken once: a second node asking later finds nothing.
                let _ = self.inner.stash.purge(&key).await;
            }
            Ok(value)
        })
    }
}
