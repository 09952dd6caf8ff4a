//! Shared state of all Socket.IO sessions: lookup by Engine.IO sid (for
//! polling requests and upgrades), saved sessions for connection state
//! recovery, staff presence, and live counts.

pub use crate::conversation::identity::Identity;
use crate::conversation::registry::Registry;
use crate::fanout::broker::{ConversationEvent, STAFF_TOPIC};
use crate::socket::session_store::{SessionStore, SharedLog};
use crate::wire::session::{StashedIdentity, StashedSession};
use base64::Engine;
use rand::RngCore;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use utalk_storage::Db;
use uuid::Uuid;

/// A CONNECT token that checked out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Authenticated {
    /// Who it is.
    pub identity: Identity,
    /// When the token expires, in seconds since the epoch: the session ends then.
    pub expires_at: Option<i64>,
}

/// Checks CONNECT tokens; implemented by the server's auth service.
pub trait Authenticator: Send + Sync + 'static {
    /// The identity of `token` and its expiry, or the error code to put in CONNECT_ERROR.
    fn authenticate(&self, token: Option<&str>) -> Result<Authenticated, &'static str>;

    /// Whether `identity`, authenticated at `since_ms` (ms since the epoch),
    /// may still act: a disabled user or a revoked key may not. Open staff
    /// sessions ask this every [`SocketConfig::access_check`].
    fn still_allowed(&self, _identity: &Identity, _since_ms: i64) -> bool {
        true
    }
}

/// Limits and timers of the Socket.IO endpoint.
#[derive(Debug, Clone)]
pub struct SocketConfig {
    /// Interval between server pings.
    pub ping_interval: Duration,
    /// How long to wait for a pong.
    pub ping_timeout: Duration,
    /// Largest accepted packet or POST body, in bytes.
    pub max_payload: usize,
    /// Events queued for one session before it is dropped as too slow.
    pub max_queued: usize,
    /// How long a dropped session can be recovered.
    pub recovery_window: Duration,
    /// Most messages replayed by one join or recovery.
    pub max_replay: usize,
    /// Bytes queued for one session (waiting or in flight to its transport) before it is dropped as too slow.
    pub max_queue_bytes: usize,
    /// Most bytes of messages replayed by one join or recovery.
    pub max_replay_bytes: usize,
    /// Engine.IO sessions open at once.
    pub max_sessions: usize,
    /// Sessions open at once from one client address that have not authenticated yet.
    pub max_anonymous_sessions_per_ip: usize,
    /// How often an open staff session checks that its user or key may still act.
    pub access_check: Duration,
    /// How often the recovery state of changed sessions is written to the store.
    pub session_flush: Duration,
}

impl Default for SocketConfig {
    fn default() -> Self {
        Self {
            ping_interval: Duration::from_secs(25),
            ping_timeout: Duration::from_secs(20),
            max_payload: 1_000_000,
            max_queued: 1024,
            recovery_window: Duration::from_secs(120),
            max_replay: 500,
            max_queue_bytes: 4 << 20,
            max_replay_bytes: 1 << 20,
            max_sessions: 50_000,
            max_anonymous_sessions_per_ip: 64,
            access_check: Duration::from_secs(2),
            session_flush: Duration::from_secs(1),
        }
    }
}

/// What a session leaves behind when it drops unexpectedly, for recovery.
#[derive(Debug, Clone)]
pub struct SavedSession {
    /// Socket.IO sid to keep.
    pub sid: String,
    /// Who it was.
    pub identity: Identity,
    /// Joined conversations and the highest seq known delivered before the offset log.
    pub floors: HashMap<Uuid, u64>,
    /// Recent emitted messages: (offset, conversation, seq).
    pub log: VecDeque<(u64, Uuid, u64)>,
    /// Next offset to hand out.
    pub next_offset: u64,
    /// When it dropped.
    pub saved_at: Instant,
}

/// The session as it travels to other nodes of a cluster.
fn stashed(s: &SavedSession) -> StashedSession {
    let age = s.saved_at.elapsed().as_millis() as i64;
    let identity = match s.identity {
        Identity::Staff { user_id, role } => StashedIdentity::Staff { user_id, role },
        Identity::Widget { conversation_id } => StashedIdentity::Widget { conversation_id },
    };
    StashedSession {
        sid: s.sid.clone(),
        identity,
        floors: s.floors.iter().map(|(c, f)| (*c, *f)).collect(),
        log: s.log.iter().copied().collect(),
        next_offset: s.next_offset,
        saved_at_ms: utalk_storage::Timestamp::now().millis() - age,
    }
}

/// A session another node stashed, if it is still within `window`.
fn unstashed(w: StashedSession, window: Duration) -> Option<SavedSession> {
    let age = Duration::from_millis((utalk_storage::Timestamp::now().millis() - w.saved_at_ms).max(0) as u64);
    let identity = match w.identity {
        StashedIdentity::Staff { user_id, role } => Identity::Staff { user_id, role },
        StashedIdentity::Widget { conversation_id } => Identity::Widget { conversation_id },
    };
    (age < window).then(|| SavedSession {
        sid: w.sid,
        identity,
        floors: w.floors.into_iter().collect(),
        log: w.log.into_iter().collect(),
        next_offset: w.next_offset,
        saved_at: Instant::now().checked_sub(age).unwrap_or_else(Instant::now),
    })
}

/// Live counts for `/health/socket`.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SocketCounts {
    /// Engine.IO sessions open now.
    pub connections: u64,
    /// Of which on websocket.
    pub websocket: u64,
    /// Of which on long-polling.
    pub polling: u64,
    /// Sessions opened since start.
    pub total: u64,
    /// Sessions dropped for falling behind.
    pub dropped_slow: u64,
    /// Sessions recovered after a drop.
    pub recovered: u64,
    /// Staff members with at least one session here.
    pub staff_online: u64,
    /// Customers' (widget) sessions here.
    pub customer_sessions: u64,
}

/// Shared by every session and the HTTP endpoint; `S` is the handle of a
/// session (`session::SocketHub` names the hub of session actors), so that
/// the hub does not depend on the session it serves.
pub struct Hub<S> {
    /// Limits.
    pub config: SocketConfig,
    /// Token checks.
    pub auth: Arc<dyn Authenticator>,
    /// Conversations.
    pub registry: Registry,
    /// Reads.
    pub db: Db,
    /// The sessions kept in the store across restarts.
    store: Arc<SessionStore>,
    sessions: Mutex<HashMap<String, S>>,
    admissions: crate::socket::admission::Admissions,
    saved: Mutex<HashMap<String, SavedSession>>,
    presence: Mutex<HashMap<Uuid, (usize, &'static str)>>,
    /// Staff online on the other nodes of a cluster.
    elsewhere: std::sync::OnceLock<Arc<crate::fanout::staff_presence::ClusterPresence>>,
    next_session: AtomicU64,
    websocket: AtomicU64,
    polling: AtomicU64,
    total: AtomicU64,
    dropped_slow: AtomicU64,
    recovered: AtomicU64,
    customers: AtomicU64,
    /// `{version, changes}` sent as `api:changes` to every socket that connects, when this start brought a new API version.
    api_changes: std::sync::OnceLock<String>,
}

/// A random id of 15 bytes in URL-safe base64 (20 characters).
pub fn random_id() -> String {
    let mut b = [0u8; 15];
    rand::thread_rng().fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

impl<S: Clone + Send + 'static> Hub<S> {
    /// A hub with no sessions.
    pub fn new(config: SocketConfig, auth: Arc<dyn Authenticator>, registry: Registry, db: Db) -> Arc<Hub<S>> {
        let store = SessionStore::new(db.clone(), registry.journal().clone(), config.recovery_window);
        Arc::new(Hub {
            admissions: crate::socket::admission::Admissions::new(config.max_sessions, config.max_anonymous_sessions_per_ip),
            store,
            config,
            auth,
            registry,
            db,
            sessions: Mutex::new(HashMap::new()),
            saved: Mutex::new(HashMap::new()),
            presence: Mutex::new(HashMap::new()),
            elsewhere: std::sync::OnceLock::new(),
            next_session: AtomicU64::new(1),
            websocket: AtomicU64::new(0),
            polling: AtomicU64::new(0),
            total: AtomicU64::new(0),
            dropped_slow: AtomicU64::new(0),
            recovered: AtomicU64::new(0),
            customers: AtomicU64::new(0),
            api_changes: std::sync::OnceLock::new(),
        })
    }

    /// Announces an API change (JSON `{version, changes}`) to every socket that connects from now on.
    pub fn announce_api_changes(&self, payload: String) {
        let _ = self.api_changes.set(payload);
    }

    /// The API change announcement, if this start brought one.
    pub fn api_changes(&self) -> Option<&str> {
        self.api_changes.get().map(String::as_str)
    }

    /// A place for a new Engine.IO session from client address `address`,
    /// unless the server or that address holds as many as allowed.
    pub fn admit(&self, address: &str) -> Result<crate::socket::admission::Admission, crate::socket::admission::Refusal> {
        let admitted = self.admissions.admit(address);
        if let Err(refusal) = &admitted {
            let which = match refusal {
                crate::socket::admission::Refusal::Total => "total",
                crate::socket::admission::Refusal::PerAddress => "per_address",
            };
            metrics::counter!("socket_sessions_refused_total", "cap" => which).increment(1);
        }
        admitted
    }

    /// A process-unique number for a new session.
    pub fn next_session_number(&self) -> u64 {
        self.next_session.fetch_add(1, Ordering::Relaxed)
    }

    /// Registers a session under its Engine.IO sid.
    pub fn register(&self, sid: &str, addr: S, websocket: bool) {
        lock(&self.sessions).insert(sid.to_string(), addr);
        self.total.fetch_add(1, Ordering::Relaxed);
        self.transport_counter(websocket).fetch_add(1, Ordering::Relaxed);
    }

    /// Moves a session's count from polling to websocket.
    pub fn upgraded(&self) {
        self.polling.fetch_sub(1, Ordering::Relaxed);
        self.websocket.fetch_add(1, Ordering::Relaxed);
    }

    /// Forgets a session.
    pub fn unregister(&self, sid: &str, websocket: bool) {
        if lock(&self.sessions).remove(sid).is_some() {
            self.transport_counter(websocket).fetch_sub(1, Ordering::Relaxed);
        }
    }

    fn transport_counter(&self, websocket: bool) -> &AtomicU64 {
        if websocket {
            &self.websocket
        } else {
            &self.polling
        }
    }

    /// The session with Engine.IO sid `sid`.
    pub fn find(&self, sid: &str) -> Option<S> {
        lock(&self.sessions).get(sid).cloned()
    }

    /// Writes the recovery state of changed sessions to the store every
    /// `session_flush`, so that clients can recover across a restart (once, at start).
    pub fn keep_sessions(&self) {
        self.store.start(self.config.session_flush);
    }

    /// Writes every live session to the store as dropped now: the server is
    /// stopping and its clients will come back to the next one.
    pub async fn persist_sessions(&self) {
        self.store.flush(true).await;
    }

    /// A session connected (or recovered) under private id `pid`; its recovery state goes to the store as it changes.
    pub fn track(&self, pid: &str, sid: &str, identity: Identity, log: SharedLog) {
        self.store.track(pid, sid, identity, log);
    }

    /// Session `pid` ended for good: nothing of it is kept.
    pub fn forget(&self, pid: &str) {
        self.store.forget(pid);
    }

    /// Keeps a dropped session for recovery under its private id, in the
    /// store (across a restart), and in the cluster's stash, where any
    /// other node can take it, since the client may come back through the
    /// load balancer to another node (one node alone keeps nothing there).
    /// At most `max_sessions` are kept: past it, the oldest goes.
    pub fn save(&self, pid: &str, session: SavedSession) {
        // A session whose arbiter stops with the server saves itself after
        // the runtime is gone: the store (written at the stop) keeps it then.
        match (stashed(&session).encode(), tokio::runtime::Handle::try_current()) {
            (Ok(bytes), Ok(runtime)) => {
                let (cluster, pid) = (self.registry.journal().cluster().clone(), pid.to_string());
                runtime.spawn(async move {
                    if let Err(e) = cluster.stash(&pid, bytes.into()).await {
                        tracing::warn!(error = %e, "could not share a dropped session; it can be recovered on this node only");
                    }
                });
            }
            (Ok(_), Err(_)) => tracing::debug!("stopping: a dropped session is kept in this node's store only"),
            (Err(e), _) => tracing::warn!(error = %e, "could not encode a dropped session"),
        }
        self.store.dropped(pid, &session);
        let mut saved = lock(&self.saved);
        let window = self.config.recovery_window;
        saved.retain(|_, s| s.saved_at.elapsed() < window);
        if saved.len() >= self.config.max_sessions.max(1) {
            if let Some(oldest) = saved.iter().min_by_key(|(_, s)| s.saved_at).map(|(p, _)| p.clone()) {
                saved.remove(&oldest);
                self.store.forget(&oldest);
            }
        }
        saved.insert(pid.to_string(), session);
    }

    /// Takes a saved session of this node (or of this node before it
    /// restarted) if it is still within the recovery window.
    pub fn take_saved(&self, pid: &str) -> Option<SavedSession> {
        let saved = lock(&self.saved).remove(pid);
        let saved = match saved {
            Some(s) => {
                self.store.forget(pid);
                (s.saved_at.elapsed() < self.config.recovery_window).then_some(s)
            }
            // Not here at all: another node may have it in the cluster's stash (`fetch_saved`).
            None => Some(self.store.take(pid)?),
        };
        // Recovered here (or gone): no other node may recover it again.
        let (cluster, pid) = (self.registry.journal().cluster().clone(), pid.to_string());
        tokio::spawn(async move {
            let _ = cluster.unstash(&pid).await;
        });
        saved
    }

    /// Takes a session another node saved, if it is still within the recovery window.
    pub fn fetch_saved(&self, pid: String) -> impl std::future::Future<Output = Option<SavedSession>> + 'static {
        let cluster = self.registry.journal().cluster().clone();
        let store = self.store.clone();
        let window = self.config.recovery_window;
        async move {
            let bytes = match cluster.unstash(&pid).await {
                Ok(Some(b)) => b,
                Ok(None) => return None,
                Err(e) => {
                    tracing::warn!(error = %e, "could not look for a session saved on another node");
                    return None;
                }
            };
            let saved = unstashed(StashedSession::decode(&bytes).ok()?, window);
            tracing::info!(found = saved.is_some(), "a session dropped on another node came back here");
            if saved.is_some() {
                // A record of it in this node's store (from before a restart) is older than the stash.
                store.forget(&pid);
            }
            saved
        }
    }

    /// Counts a slow-consumer drop.
    pub fn note_dropped_slow(&self) {
        self.dropped_slow.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a recovery.
    pub fn note_recovered(&self) {
        self.recovered.fetch_add(1, Ordering::Relaxed);
    }

    /// Staff members whose presence is `online` on this node now.
    pub fn online_here(&self) -> Vec<Uuid> {
        let mut v: Vec<Uuid> = lock(&self.presence).iter().filter(|(_, (n, s))| *n > 0 && *s == "online").map(|(id, _)| *id).collect();
        v.sort();
        v
    }

    /// Staff members whose presence is `online` now, on this node or, in a cluster, on any other.
    pub fn online_staff(&self) -> Vec<Uuid> {
        let mut v = self.online_here();
        if let Some(p) = self.elsewhere.get() {
            v.extend(p.online_elsewhere());
            v.sort();
            v.dedup();
        }
        v
    }

    /// Every staff member present now, with their status (`online` or `away`;
    /// on other nodes of a cluster only `online` is known), by id, at most
    /// `limit`: what a staff session hears right after it connects.
    pub fn presence_snapshot(&self, limit: usize) -> Vec<(Uuid, &'static str)> {
        let mut v: Vec<(Uuid, &'static str)> =
            lock(&self.presence).iter().filter(|(_, (n, _))| *n > 0).map(|(id, (_, s))| (*id, *s)).collect();
        if let Some(p) = self.elsewhere.get() {
            let here: std::collections::HashSet<Uuid> = v.iter().map(|(id, _)| *id).collect();
            v.extend(p.online_elsewhere().into_iter().filter(|id| !here.contains(id)).map(|id| (id, "online")));
        }
        v.sort();
        v.truncate(limit);
        v
    }

    /// Shares this node's online staff with the other nodes of `cluster` and
    /// counts theirs in [`Hub::online_staff`] (once, at start).
    pub fn share_presence(self: &Arc<Self>, cluster: Arc<dyn crate::cluster::Cluster>) {
        let hub = Arc::downgrade(self);
        let p = crate::fanout::staff_presence::ClusterPresence::start(cluster, move || {
            hub.upgrade().map(|h| h.online_here()).unwrap_or_default()
        });
        let _ = self.elsewhere.set(p);
    }

    /// Sets a staff member's presence from one of their sessions and tells all staff when it changes.
    /// `delta` is +1 when a session connects, -1 when it leaves, 0 for a status change.
    pub fn presence(&self, user_id: Uuid, delta: i32, status: Option<&'static str>) {
        let changed = {
            let mut map = lock(&self.presence);
            let entry = map.entry(user_id).or_insert((0, "offline"));
            let before = entry.1;
            entry.0 = (entry.0 as i64 + delta as i64).max(0) as usize;
            entry.1 = if entry.0 == 0 {
                "offline"
            } else {
                match status {
                    Some(s) => s,
                    None if before == "offline" => "online",
                    None => before,
                }
            };
            let now = entry.1;
            if entry.0 == 0 {
                map.remove(&user_id);
            }
            (before != now).then_some(now)
        };
        if let Some(status) = changed {
            if let Some(p) = self.elsewhere.get() {
                p.local_changed();
            }
            self.registry.broker().publish(STAFF_TOPIC, ConversationEvent::Presence { user_id, status });
        }
    }

    /// A customer's (widget) session opened (`true`) or closed.
    pub fn customer_session(&self, opened: bool) {
        if opened {
            self.customers.fetch_add(1, Ordering::Relaxed);
        } else {
            self.customers.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Live counts.
    pub fn counts(&self) -> SocketCounts {
        let websocket = self.websocket.load(Ordering::Relaxed);
        let polling = self.polling.load(Ordering::Relaxed);
        SocketCounts {
            connections: websocket + polling,
            websocket,
            polling,
            total: self.total.load(Ordering::Relaxed),
            dropped_slow: self.dropped_slow.load(Ordering::Relaxed),
            recovered: self.recovered.load(Ordering::Relaxed),
            // Entries go when their last session does.
            staff_online: lock(&self.presence).len() as u64,
            customer_sessions: self.customers.load(Ordering::Relaxed),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
