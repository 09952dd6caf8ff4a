//! Leases over NATS: key `s.<shard>` in `utalk_shards`, created to take a
//! shard and renewed with a compare-and-set every quarter lease; who should
//! own a shard is rendezvous hashing over the live nodes (`utalk_nodes`).

use super::{js_code, unavailable, Inner, NatsCluster, WRONG_LAST_SEQUENCE};
use crate::cluster::{BoxFuture, ClusterError, ClusterStatus, Leases, SHARDS};
use async_nats::jetstream::kv::{self, CreateErrorKind, UpdateErrorKind};
use bytes::Bytes;
use futures_util::stream::StreamExt;
use std::collections::HashMap;
use std::sync::Weak;
use std::time::Instant;
use utalk_storage::model::MessageFormat;

#[derive(Debug, Clone, Copy)]
pub(super) struct Lease {
    pub(super) revision: u64,
    /// The revision that created the lease: it stays while renewals move `revision`.
    pub(super) epoch: u64,
    pub(super) valid_until: Instant,
}

/// Rendezvous score of `node` for `shard`: the live node with the highest score should own it.
fn score(node: &str, shard: u32) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in node.bytes().chain(shard.to_be_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // FNV's low bits mix poorly on short inputs; a final avalanche spreads them.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

/// The node that should own `shard` among `live`.
pub fn desired_owner(shard: u32, live: &[String]) -> Option<&str> {
    live.iter().max_by_key(|n| (score(n, shard), n.as_str())).map(String::as_str)
}

/// Renews, takes and hands over leases every quarter lease while the cluster lives.
pub(super) async fn lease_loop(inner: Weak<Inner>) {
    let period = match inner.upgrade() {
        Some(i) => i.lease / 4,
        None => return,
    };
    loop {
        let Some(i) = inner.upgrade() else { return };
        tick(&i).await;
        drop(i);
        tokio::time::sleep(period).await;
    }
}

/// The live nodes, with this one announced first, and the newest message
/// format each announced it reads (`f.<node>.<format>`, beside `n.<node>`,
/// so that a node of an older build, which announces only the latter, is
/// seen not to read it).
async fn refresh_live(i: &Inner) -> Result<(Vec<String>, HashMap<String, u16>), ClusterError> {
    i.nodes.put(format!("n.{}", i.node_id), Bytes::from(i.node_id.clone())).await.map_err(unavailable)?;
    let reads = format!("f.{}.{}", i.node_id, MessageFormat::NEWEST.version());
    i.nodes.put(reads, Bytes::new()).await.map_err(unavailable)?;
    let mut keys = i.nodes.keys().await.map_err(unavailable)?;
    let mut live = Vec::new();
    let mut formats = HashMap::new();
    while let Some(k) = keys.next().await {
        let k = k.map_err(unavailable)?;
        if let Some(n) = k.strip_prefix("n.") {
            live.push(n.to_string());
        } else if let Some((n, v)) = k.strip_prefix("f.").and_then(|r| r.split_once('.')) {
            if let Ok(v) = v.parse::<u16>() {
                let newest = formats.entry(n.to_string()).or_insert(v);
                *newest = (*newest).max(v);
            }
        }
    }
    if !live.contains(&i.node_id) {
        live.push(i.node_id.clone());
    }
    live.sort();
    Ok((live, formats))
}

/// The live nodes among `live` that do not read message format `version`.
pub(super) fn not_reading(live: &[String], formats: &HashMap<String, u16>, version: u16) -> Vec<String> {
    live.iter().filter(|n| formats.get(*n).is_none_or(|v| *v < version)).cloned().collect()
}

/// One lease round. Each call to NATS may take at most a quarter lease: an
/// answer lost with a connection (or a bucket electing a leader) must not
/// hold the renewals behind it until the leases lapse.
async fn tick(i: &Inner) {
    let _round = i.round.lock().await;
    if i.left.load(std::sync::atomic::Ordering::Acquire) {
        return;
    }
    let patience = i.lease / 4;
    // Presence lives in another bucket than the leases: when it cannot be
    // read, the leases held are still renewed, but none is taken or handed over.
    let live = match tokio::time::timeout(patience, refresh_live(i)).await {
        Ok(Ok((live, formats))) => {
            *i.live.lock().unwrap_or_else(|p| p.into_inner()) = live.clone();
            *i.formats.lock().unwrap_or_else(|p| p.into_inner()) = formats;
            Some(live)
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "cannot read the live nodes; renewing the leases held only");
            None
        }
        Err(_) => {
            tracing::warn!("reading the live nodes timed out; renewing the leases held only");
            None
        }
    };
    for shard in 0..SHARDS {
        let key = format!("s.{shard}");
        let mine = i.owned.lock().unwrap_or_else(|p| p.into_inner()).get(&shard).copied();
        let desired = live.as_deref().map(|live| desired_owner(shard, live).unwrap_or(&i.node_id));
        match (mine, desired) {
            // Another live node should have it: stop serving first, then let go.
            (Some(lease), Some(desired)) if desired != i.node_id => {
                i.set_owned(shard, None);
                let _ = tokio::time::timeout(patience, i.shards.delete_expect_revision(&key, Some(lease.revision))).await;
                tracing::info!(shard, to = desired, "handed a shard over");
            }
            (Some(lease), _) => {
                let sent = Instant::now();
                match tokio::time::timeout(patience, i.shards.update(&key, Bytes::from(i.node_id.clone()), lease.revision)).await {
                    Ok(Ok(revision)) => i.set_owned(shard, Some(Lease { revision, epoch: lease.epoch, valid_until: i.valid_until(sent) })),
                    Ok(Err(e))
                        if matches!(e.kind(), UpdateErrorKind::WrongLastRevision)
                            || js_code(&e).is_some_and(|c| WRONG_LAST_SEQUENCE.contains(&c)) =>
                    {
                        // A renewal whose answer was lost may have landed: then the key is still ours.
                        match tokio::time::timeout(patience, i.shards.entry(&key)).await {
                            Ok(Ok(Some(e))) if e.operation == kv::Operation::Put && e.value == i.node_id.as_bytes() => {
                                i.set_owned(
                                    shard,
                                    Some(Lease { revision: e.revision, epoch: lease.epoch, valid_until: i.valid_until(sent) }),
                                );
                            }
                            _ => {
                                i.set_owned(shard, None);
                                tracing::warn!(shard, "lost a shard's lease to another node");
                            }
                        }
                    }
                    // Unknown outcome: keep the lease until it lapses; the next round tries again.
                    Ok(Err(e)) => tracing::warn!(shard, error = %e, "could not renew a shard's lease"),
                    Err(_) => tracing::warn!(shard, "renewing a shard's lease timed out"),
                }
            }
            (None, Some(desired)) if desired == i.node_id => {
                let sent = Instant::now();
                match tokio::time::timeout(patience, i.shards.create(&key, Bytes::from(i.node_id.clone()))).await {
                    Ok(Ok(revision)) => {
                        i.set_owned(shard, Some(Lease { revision, epoch: revision, valid_until: i.valid_until(sent) }));
                        tracing::info!(shard, "took a shard");
                    }
                    Ok(Err(e)) if matches!(e.kind(), CreateErrorKind::AlreadyExists) => {}
                    Ok(Err(e)) => tracing::debug!(shard, error = %e, "could not take a shard"),
                    Err(_) => tracing::debug!(shard, "taking a shard timed out"),
                }
            }
            _ => {}
        }
    }
}

impl Leases for NatsCluster {
    fn node_id(&self) -> &str {
        &self.inner.node_id
    }

    fn owns(&self, shard: u32) -> bool {
        self.inner.owns(shard)
    }

    fn ownership_changed(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.inner.changed.notified())
    }

    fn lease_epoch(&self, shard: u32) -> Option<u64> {
        let owned = self.inner.owned.lock().unwrap_or_else(|p| p.into_inner());
        owned.get(&shard).filter(|l| Instant::now() < l.valid_until).map(|l| l.epoch)
    }

    fn status(&self) -> ClusterStatus {
        let mut owned: Vec<u32> = {
            let now = Instant::now();
            let map = self.inner.owned.lock().unwrap_or_else(|p| p.into_inner());
            map.iter().filter(|(_, l)| l.valid_until > now).map(|(s, _)| *s).collect()
        };
        owned.sort_unstable();
        ClusterStatus {
            mode: "nats",
            node_id: self.inner.node_id.clone(),
            owned_shards: owned,
            connected: self.inner.client.connection_state() == async_nats::connection::State::Connected,
            live_nodes: self.inner.live.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        }
    }

    fn not_reading(&self, format: MessageFormat) -> Vec<String> {
        let live = self.inner.live.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let formats = self.inner.formats.lock().unwrap_or_else(|p| p.into_inner());
        not_reading(&live, &formats, format.version())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::valid_node_id;

    #[test]
    fn a_node_that_announced_no_format_or_an_older_one_does_not_read_it() {
        let live: Vec<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
        let formats: HashMap<String, u16> = [("a".to_string(), 2), ("b".to_string(), 3), ("c".to_string(), 1)].into();
        assert_eq!(not_reading(&live, &formats, 2), vec!["c".to_string(), "d".to_string()]);
        assert_eq!(not_reading(&live[..2], &formats, 2), Vec::<String>::new());
        assert_eq!(not_reading(&live, &formats, 3), vec!["a".to_string(), "c".to_string(), "d".to_string()]);
    }

    #[test]
    fn rendezvous_spreads_shards_and_moves_few_when_a_node_joins() {
        let two: Vec<String> = vec!["a".into(), "b".into()];
        let three: Vec<String> = vec!["a".into(), "b".into(), "c".into()];
        let count = |live: &[String], n: &str| (0..SHARDS).filter(|&s| desired_owner(s, live) == Some(n)).count();
        for n in ["a", "b", "c"] {
            assert!((12..=32).contains(&count(&three, n)), "{n}: {}", count(&three, n));
        }
        let moved = (0..SHARDS).filter(|&s| desired_owner(s, &two) != desired_owner(s, &three)).count();
        assert_eq!(moved, count(&three, "c"), "only the newcomer's shards move");
        assert!(valid_node_id("node-1_a") && !valid_node_id("node.1") && !valid_node_id(""));
    }
}
