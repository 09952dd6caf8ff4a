//! Socket sessions kept in the store, so that connection state recovery
//! works across a restart of the server.
//!
//! Nothing is written on the message path. Each live session shares its
//! [`RecoveryLog`] with this store; a delivery only appends to it and marks
//! it changed. Once a flush period (`socket.session_flush_ms`, 1 s) the
//! store writes every changed session, the sessions that dropped or left
//! since, and the time of the flush, in one node-local batch through the
//! store writer. A stop (SIGTERM) writes every live session as dropped at
//! that moment, after the listener closed, so nothing is lost; a crash
//! (SIGKILL) loses at most one flush period: a client that received a
//! message or joined a conversation in it is not recovered (its offset is
//! past what the store knows) and connects anew, rejoining with the last
//! seq it saw; nothing is missed or repeated. Records end with the recovery
//! window: one per live session plus the ones dropped within the window
//! (in memory at most `socket.max_sessions` of those; after a stop, the
//! previous run's as well, until their window ends).

use crate::conversation::identity::Identity;
use crate::durability::Journal;
use crate::socket::hub::SavedSession;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use utalk_storage::model::socket_session::{self, SessionOwner, SocketSession};
use utalk_storage::{Batch, Db, Timestamp};
use uuid::Uuid;

/// Deliveries of a session's log kept in its stored record: enough for a
/// client whose last offset is a little behind, small enough to write every
/// flush period (about 32 bytes each).
pub const STORED_LOG: usize = 128;
/// Sessions removed by one pass of the sweep of expired records.
const SWEEP_PAGE: usize = 1024;

/// What connection state recovery needs of a live session, shared by its
/// actor (which appends to it) and the store (which writes it).
#[derive(Debug, Default)]
pub struct RecoveryLog {
    /// Joined conversations and the highest seq known received before `log`.
    pub floors: HashMap<Uuid, u64>,
    /// Recent deliveries: (offset, conversation, seq), oldest first.
    pub log: VecDeque<(u64, Uuid, u64)>,
    /// The next offset to hand out.
    pub next_offset: u64,
    /// Changed since the store last wrote it.
    pub changed: bool,
}

/// A live session's shared recovery state.
pub type SharedLog = Arc<Mutex<RecoveryLog>>;

struct Live {
    sid: String,
    identity: Identity,
    log: SharedLog,
}

/// The node's socket sessions in the store.
pub struct SessionStore {
    db: Db,
    journal: Journal,
    window: Duration,
    live: Mutex<HashMap<String, Live>>,
    /// Writes (`Some`) and removals (`None`) of sessions that are no longer live, for the next flush.
    pending: Mutex<HashMap<String, Option<SocketSession>>>,
    /// One flush at a time, so that an older one never lands after a newer one.
    flushing: tokio::sync::Mutex<()>,
    /// When the sessions of the previous run were last written: the time they dropped, if it stopped without saying.
    previous_flush: Option<Timestamp>,
}

impl SessionStore {
    /// The store of sessions in `db`, written through `journal`; records older than `window` are of no use.
    pub fn new(db: Db, journal: Journal, window: Duration) -> Arc<SessionStore> {
        let previous_flush = socket_session::flushed_at(&db).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot read when the socket sessions were last written; the previous run's live sessions cannot be recovered");
            None
        });
        Arc::new(SessionStore {
            db,
            journal,
            window,
            live: Mutex::new(HashMap::new()),
            pending: Mutex::new(HashMap::new()),
            flushing: tokio::sync::Mutex::new(()),
            previous_flush,
        })
    }

    /// Writes changes every `every` and removes expired records every
    /// window, until the store is dropped. Needs a tokio runtime.
    pub fn start(self: &Arc<Self>, every: Duration) {
        let me: Weak<SessionStore> = Arc::downgrade(self);
        let sweep_every = self.window.max(Duration::from_secs(1));
        tokio::spawn(async move {
            // The previous run's live sessions dropped when it last flushed:
            // say so on their records, so that their window ends then even
            // if this run stops before they are recovered.
            if let Some(store) = me.upgrade() {
                store.date_previous_run().await;
            }
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut last_sweep: Option<Instant> = None;
            loop {
                tick.tick().await;
                let Some(store) = me.upgrade() else { return };
                store.flush(false).await;
                if last_sweep.is_none_or(|t| t.elapsed() >= sweep_every) {
                    last_sweep = Some(Instant::now());
                    store.sweep().await;
                }
            }
        });
    }

    /// A session connected (or recovered) under private id `pid`.
    pub fn track(&self, pid: &str, sid: &str, identity: Identity, log: SharedLog) {
        lock(&self.pending).remove(pid);
        lock(&self.live).insert(pid.to_string(), Live { sid: sid.to_string(), identity, log });
    }

    /// Session `pid` dropped and may be recovered: kept until the window ends.
    pub fn dropped(&self, pid: &str, saved: &SavedSession) {
        lock(&self.live).remove(pid);
        let record = record(&saved.sid, saved.identity, &saved.floors, &saved.log, saved.next_offset, Some(Timestamp::now()));
        lock(&self.pending).insert(pid.to_string(), Some(record));
    }

    /// Session `pid` ended for good, or was recovered: its record goes.
    pub fn forget(&self, pid: &str) {
        lock(&self.live).remove(pid);
        lock(&self.pending).insert(pid.to_string(), None);
    }

    /// The stored session `pid`, if it dropped within the recovery window;
    /// taken, so that it is recovered once.
    pub fn take(&self, pid: &str) -> Option<SavedSession> {
        if lock(&self.live).contains_key(pid) {
            return None;
        }
        let pending = lock(&self.pending).get(pid).cloned();
        let record = match pending {
            Some(Some(r)) => r,
            // Already taken or ended.
            Some(None) => return None,
            None => match socket_session::get(&self.db, pid) {
                Ok(Some(r)) => r,
                Ok(None) => return None,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read a stored socket session");
                    return None;
                }
            },
        };
        self.forget(pid);
        let dropped_at = record.dropped_at.or(self.previous_flush)?;
        let age = Duration::from_millis((Timestamp::now().millis() - dropped_at.millis()).max(0) as u64);
        if age >= self.window {
            return None;
        }
        let identity = match record.owner {
            SessionOwner::Staff { user_id, role } => Identity::Staff { user_id, role },
            SessionOwner::Widget { conversation_id } => Identity::Widget { conversation_id },
        };
        Some(SavedSession {
            sid: record.sid,
            identity,
            floors: record.floors.into_iter().collect(),
            log: record.log.into_iter().collect(),
            next_offset: record.next_offset,
            saved_at: Instant::now().checked_sub(age).unwrap_or_else(Instant::now),
        })
    }

    /// Writes what changed: the live sessions whose log moved (all of them,
    /// as dropped now, when `stopping`), the sessions that dropped or ended,
    /// and the time. Failures are logged; the next flush tries again.
    pub async fn flush(&self, stopping: bool) {
        let _one = self.flushing.lock().await;
        let now = Timestamp::now();
        let mut batch = Batch::new();
        let mut built = Ok(());
        let mut rewrite = Vec::new();
        {
            let live = lock(&self.live);
            for (pid, l) in live.iter() {
                let mut log = lock(&l.log);
                if !(log.changed || stopping) {
                    continue;
                }
                log.changed = false;
                let record = record(&l.sid, l.identity, &log.floors, &log.log, log.next_offset, stopping.then_some(now));
                drop(log);
                rewrite.push(pid.clone());
                built = built.and_then(|_| socket_session::put(&mut batch, pid, &record));
            }
            if !live.is_empty() || stopping {
                socket_session::put_flushed_at(&mut batch, now);
            }
        }
        // After the live ones: a session that dropped meanwhile ends as dropped.
        let pending: Vec<(String, Option<SocketSession>)> = lock(&self.pending).drain().collect();
        for (pid, record) in &pending {
            built = built.and_then(|_| match record {
                Some(r) => socket_session::put(&mut batch, pid, r),
                None => socket_session::delete(&mut batch, pid),
            });
        }
        if batch.is_empty() {
            return;
        }
        let written = match built {
            Ok(()) => self.journal.commit_node(batch).await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match written {
            Ok(()) => metrics::counter!("socket_session_writes_total").increment((rewrite.len() + pending.len()) as u64),
            Err(e) => {
                tracing::warn!(error = %e, sessions = rewrite.len() + pending.len(), "writing socket sessions failed; trying again at the next flush");
                // Written again next time: the live ones as changed, the rest as they were, unless replaced meanwhile.
                let live = lock(&self.live);
                for pid in &rewrite {
                    if let Some(l) = live.get(pid) {
                        lock(&l.log).changed = true;
                    }
                }
                let mut p = lock(&self.pending);
                for (pid, record) in pending {
                    // Connected again meanwhile: its live record is written next, not this.
                    if !live.contains_key(&pid) {
                        p.entry(pid).or_insert(record);
                    }
                }
            }
        }
    }

    /// Marks the records the previous run left as live (`dropped_at` none)
    /// as dropped at its last flush, or removes them when it never flushed.
    async fn date_previous_run(&self) {
        self.each_stored(|store, page| {
            let live = lock(&store.live);
            let mut pending = lock(&store.pending);
            for (pid, mut record) in page.into_iter().filter(|(_, r)| r.dropped_at.is_none()) {
                // Recovered or ended already in this run: that stands.
                if live.contains_key(&pid) || pending.contains_key(&pid) {
                    continue;
                }
                record.dropped_at = store.previous_flush;
                pending.insert(pid, record.dropped_at.is_some().then_some(record));
            }
        });
        self.flush(false).await;
    }

    /// Removes the records of sessions that dropped longer than a window ago
    /// (or, live when the previous run ended, a window after its last flush).
    pub async fn sweep(&self) {
        let now = Timestamp::now().millis();
        let window = self.window.as_millis() as i64;
        self.each_stored(|store, page| {
            let live = lock(&store.live);
            let expired: Vec<String> = page
                .into_iter()
                .filter(|(pid, r)| {
                    !live.contains_key(pid) && r.dropped_at.or(store.previous_flush).is_none_or(|t| now - t.millis() >= window)
                })
                .map(|(pid, _)| pid)
                .collect();
            drop(live);
            let mut pending = lock(&store.pending);
            for pid in expired {
                pending.entry(pid).or_insert(None);
            }
        });
    }

    /// Hands every stored session to `visit`, a page at a time.
    fn each_stored(&self, mut visit: impl FnMut(&SessionStore, Vec<(String, SocketSession)>)) {
        let mut after: Option<String> = None;
        loop {
            let page = match socket_session::page(&self.db, after.as_deref(), SWEEP_PAGE) {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the stored socket sessions");
                    return;
                }
            };
            let Some((last, _)) = page.last() else { return };
            after = Some(last.clone());
            let full = page.len() == SWEEP_PAGE;
            visit(self, page);
            if !full {
                return;
            }
        }
    }
}

/// The disk record of a session.
fn record(
    sid: &str,
    identity: Identity,
    floors: &HashMap<Uuid, u64>,
    log: &VecDeque<(u64, Uuid, u64)>,
    next_offset: u64,
    dropped_at: Option<Timestamp>,
) -> SocketSession {
    // The older part of the log folds into the floors, as the live log does when it is full.
    let cut = log.len().saturating_sub(STORED_LOG);
    let mut floors = floors.clone();
    for (_, conv, seq) in log.iter().take(cut) {
        let f = floors.entry(*conv).or_insert(0);
        *f = (*f).max(*seq);
    }
    let owner = match identity {
        Identity::Staff { user_id, role } => SessionOwner::Staff { user_id, role },
        Identity::Widget { conversation_id } => SessionOwner::Widget { conversation_id },
    };
    let mut floors: Vec<(Uuid, u64)> = floors.into_iter().collect();
    floors.sort();
    SocketSession { sid: sid.to_string(), owner, floors, log: log.iter().skip(cut).copied().collect(), next_offset, dropped_at }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::durability::{Durability, StoreWriter};
    use utalk_storage::DbOptions;

    fn stored(dropped_at: Option<Timestamp>) -> SocketSession {
        SocketSession {
            sid: "sid".into(),
            owner: SessionOwner::Widget { conversation_id: Uuid::now_v7() },
            floors: Vec::new(),
            log: Vec::new(),
            next_offset: 3,
            dropped_at,
        }
    }

    #[tokio::test]
    async fn the_previous_runs_sessions_are_dated_at_its_last_flush_and_swept_after_the_window() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), &DbOptions::default()).unwrap();
        let writer = StoreWriter::start(db.clone(), Durability::Sync).unwrap();
        let now = Timestamp::now().millis();
        let mut b = Batch::new();
        // Live when the previous run last flushed, 10 s ago.
        socket_session::put(&mut b, "live-then", &stored(None)).unwrap();
        socket_session::put_flushed_at(&mut b, Timestamp(now - 10_000));
        // Dropped 5 minutes ago, and just now.
        socket_session::put(&mut b, "old", &stored(Some(Timestamp(now - 300_000)))).unwrap();
        socket_session::put(&mut b, "fresh", &stored(Some(Timestamp(now)))).unwrap();
        db.write_group([&b], true).unwrap();

        let store = SessionStore::new(db.clone(), Journal::standalone(&db, writer.clone(), "test"), Duration::from_secs(120));
        store.date_previous_run().await;
        let dated = socket_session::get(&db, "live-then").unwrap().expect("kept within the window");
        assert_eq!(dated.dropped_at, Some(Timestamp(now - 10_000)), "dated at the previous run's last flush");
        store.sweep().await;
        store.flush(false).await;
        assert!(socket_session::get(&db, "old").unwrap().is_none(), "past the window: removed");
        assert!(socket_session::get(&db, "fresh").unwrap().is_some());
        // Taken once, within the window; then gone.
        let taken = store.take("live-then").expect("recoverable");
        assert_eq!(taken.next_offset, 3);
        assert!(store.take("live-then").is_none(), "recovered once");
        writer.shutdown();
    }

    #[test]
    fn a_stored_record_keeps_the_log_tail_and_folds_the_rest_into_the_floors() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let mut log = VecDeque::new();
        // 200 deliveries alternating between a and b: offsets 1..=200, seqs 1..=100 each.
        for i in 0..200u64 {
            log.push_back((i + 1, if i % 2 == 0 { a } else { b }, i / 2 + 1));
        }
        let floors = HashMap::from([(a, 0), (b, 0)]);
        let r = record("sid", Identity::Widget { conversation_id: a }, &floors, &log, 201, None);
        assert_eq!(r.log.len(), STORED_LOG);
        assert_eq!(r.log.first().map(|e| e.0), Some(73), "the newest 128 offsets stay");
        // Offsets 1..=72 folded: a got seqs 1..=36, b 1..=36.
        let floors: HashMap<Uuid, u64> = r.floors.into_iter().collect();
        assert_eq!(floors[&a], 36);
        assert_eq!(floors[&b], 36);
        assert_eq!(r.next_offset, 201);
    }
}
