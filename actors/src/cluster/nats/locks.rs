//! Job locks over NATS: key `l.<name>` in `utalk_locks`, renewed while held.

use super::{js_code, unavailable, NatsCluster, WRONG_LAST_SEQUENCE};
use crate::cluster::{BoxFuture, ClusterError, JobLock, Locks};
use async_nats::jetstream::kv::CreateErrorKind;
use bytes::Bytes;
use std::time::Duration;

impl Locks for NatsCluster {
    fn try_lock<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<JobLock>, ClusterError>> {
        Box::pin(async move {
            let key = format!("l.{name}");
            let mut tries = 0;
            let revision = loop {
                match self.inner.locks.create(&key, Bytes::from(self.inner.node_id.clone())).await {
                    Ok(r) => break r,
                    Err(e) if matches!(e.kind(), CreateErrorKind::AlreadyExists) => return Ok(None),
                    // Nodes that race to take a lock released before lose with a
                    // sequence error, not "already exists", and a replica may not
                    // show the winner's key yet: ask again, and the key is there.
                    Err(e) if js_code(&e).is_some_and(|c| WRONG_LAST_SEQUENCE.contains(&c)) && tries < 5 => {
                        tries += 1;
                        tokio::time::sleep(Duration::from_millis(20 * tries)).await;
                    }
                    Err(e) => return Err(unavailable(e)),
                }
            };
            let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
            let (lost, lost_rx) = tokio::sync::watch::channel(false);
            let (locks, period) = (self.inner.locks.clone(), self.inner.lock_ttl / 3);
            tokio::spawn(async move {
                let mut revision = revision;
                loop {
                    tokio::select! {
                        _ = &mut stopped => break,
                        _ = tokio::time::sleep(period) => {
                            match locks.update(&key, Bytes::from_static(b"held"), revision).await {
                                Ok(r) => revision = r,
                                Err(e) => {
                                    // The key may expire or belong to another node by now: tell the holder.
                                    tracing::warn!(lock = %key, error = %e, "could not renew a job lock; the job holding it is told");
                                    let _ = lost.send(true);
                                    return;
                                }
                            }
                        }
                    }
                }
                let _ = locks.delete_expect_revision(&key, Some(revision)).await;
            });
            Ok(Some(JobLock::renewed(
                move || {
                    let _ = stop.send(());
                },
                lost_rx,
            )))
        })
    }
}
