//! Which staff members are online on the other nodes of a cluster, so that
//! automatic assignment on any node chooses among everyone online.
//!
//! Each node sends the list of staff online on it to the others when it
//! changes and every [`PERIOD`] in any case; lists travel at most once, so the
//! periodic send repairs a lost one. A node's list is forgotten after
//! [`STALE_AFTER`] without news: the node died or was cut off, and its
//! sockets are gone with it.

use crate::cluster::Cluster;
use crate::wire::presence::OnlineList;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use uuid::Uuid;

/// The cluster topic of the lists.
const TOPIC: &str = "staff_online";

/// How often a node sends its list even when nothing changed.
pub const PERIOD: Duration = Duration::from_secs(5);

/// How long a node's list counts without news from it.
pub const STALE_AFTER: Duration = Duration::from_secs(15);

/// The staff online on the other nodes, as last heard.
#[derive(Debug, Default)]
pub struct OnlineElsewhere {
    lists: HashMap<String, (Instant, Vec<Uuid>)>,
}

impl OnlineElsewhere {
    /// Takes `node`'s list heard at `at`; an older one than held is ignored.
    pub fn heard(&mut self, node: String, online: Vec<Uuid>, at: Instant) {
        match self.lists.get(&node) {
            Some((held, _)) if *held > at => {}
            _ => {
                self.lists.insert(node, (at, online));
            }
        }
    }

    /// Everyone online on a node heard from within [`STALE_AFTER`] of `now`; older lists are dropped.
    pub fn online(&mut self, now: Instant) -> BTreeSet<Uuid> {
        self.lists.retain(|_, (at, _)| now.saturating_duration_since(*at) < STALE_AFTER);
        self.lists.values().flat_map(|(_, online)| online.iter().copied()).collect()
    }
}

/// A node's share of the cluster's staff presence.
pub struct ClusterPresence {
    elsewhere: Mutex<OnlineElsewhere>,
    changed: Notify,
}

impl ClusterPresence {
    /// Starts sending `local()` (this node's online staff) to the other
    /// nodes and hearing theirs. Must run inside a tokio runtime.
    pub fn start(cluster: Arc<dyn Cluster>, local: impl Fn() -> Vec<Uuid> + Send + Sync + 'static) -> Arc<ClusterPresence> {
        let me = Arc::new(ClusterPresence { elsewhere: Mutex::new(OnlineElsewhere::default()), changed: Notify::new() });
        let node = cluster.node_id().to_string();
        {
            let (cluster, me, node) = (cluster.clone(), me.clone(), node.clone());
            tokio::spawn(async move {
                loop {
                    let list = OnlineList { node: node.clone(), online: local() };
                    match list.encode() {
                        Ok(bytes) => {
                            if let Err(e) = cluster.publish(TOPIC, bytes.into()).await {
                                tracing::debug!(error = %e, "the online staff list did not reach the other nodes");
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "the online staff list could not be encoded"),
                    }
                    // Sent again at once on a change, else after a period.
                    let _ = tokio::time::timeout(PERIOD, me.changed.notified()).await;
                }
            });
        }
        let weak = Arc::downgrade(&me);
        crate::cluster::listen_forever(cluster, TOPIC, move |bytes| {
            let Some(me) = weak.upgrade() else { return false };
            match OnlineList::decode(&bytes) {
                Ok(l) if l.node != node => me.lock().heard(l.node, l.online, Instant::now()),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "another node's online staff list could not be read"),
            }
            true
        });
        me
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, OnlineElsewhere> {
        self.elsewhere.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Staff online on other nodes now.
    pub fn online_elsewhere(&self) -> BTreeSet<Uuid> {
        self.lock().online(Instant::now())
    }

    /// This node's list changed: send it now.
    pub fn local_changed(&self) {
        self.changed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_add_up_and_go_stale() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let t0 = Instant::now();
        let mut e = OnlineElsewhere::default();
        e.heard("n2".into(), vec![a], t0);
        e.heard("n3".into(), vec![b], t0 + Duration::from_secs(10));
        assert_eq!(e.online(t0 + Duration::from_secs(11)), BTreeSet::from([a, b]));
        // n2 went quiet: its list is dropped; n3's still counts.
        assert_eq!(e.online(t0 + STALE_AFTER + Duration::from_secs(1)), BTreeSet::from([b]));
        e.heard("n3".into(), vec![a, b], t0 + Duration::from_secs(20));
        assert_eq!(e.online(t0 + Duration::from_secs(21)), BTreeSet::from([a, b]));
        assert_eq!(e.online(t0 + Duration::from_secs(20) + STALE_AFTER), BTreeSet::new());
    }

    #[test]
    fn an_older_list_does_not_replace_a_newer_one() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let t0 = Instant::now();
        let mut e = OnlineElsewhere::default();
        e.heard("n2".into(), vec![b], t0 + Duration::from_secs(2));
        e.heard("n2".into(), vec![a], t0);
        assert_eq!(e.online(t0 + Duration::from_secs(3)), BTreeSet::from([b]));
    }
}
