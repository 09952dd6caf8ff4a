//! The conversation registry: finds the actor of a conversation, starting it
//! on demand under an actix [`Supervisor`] on one of a fixed set of arbiters
//! (chosen by the conversation id, so load spreads over threads).
//!
//! Idle actors retire themselves through [`RegistryShared::retire`]; a caller
//! that reaches a retired actor is answered `Retired` and asks the registry
//! again, which starts a fresh actor from storage. Only one live actor per
//! conversation exists at a time: an entry is replaced only after the actor
//! that owned it has retired, and a retiring actor has no writes in flight.
//!
//! In a cluster, a request for a conversation whose shard another node owns
//! is forwarded to that node, which answers it with its own actor; the
//! registry serves the shards this node owns in the same way.

use crate::cluster::{shard_of, ClusterError, Forwarded, SHARDS as CLUSTER_SHARDS};
use crate::conversation::forward::{Forward, ForwardAnswer, ForwardRequest, Forwardable, WireError};
use crate::conversation::{
    AppendRequest, ConversationActor, ConversationChange, ConversationError, Deps, Envelope, MarkRead, MessageChange, Panic, Retire,
    RewriteMessages,
};
use crate::durability::Journal;
use crate::fanout::broker::Broker;
use actix::{Addr, Arbiter, ArbiterHandle, Supervisor};
use futures_util::StreamExt;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tracing::Instrument;
use utalk_storage::model::Conversation;
use utalk_storage::{Batch, Db};
use uuid::Uuid;

/// Tuning of the registry.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// Retire a conversation actor after this long without requests.
    pub idle_timeout: Duration,
    /// Most writes in flight per conversation.
    pub max_inflight: usize,
    /// Arbiter threads the conversation actors run on.
    pub threads: usize,
    /// Shared with the delivery actor: whether the channel is configured, and its wake-up.
    pub outbox: Arc<crate::jobs::signal::JobSignal>,
    /// In a cluster: how long a request waits for the conversation's owner (covers a failover).
    pub forward_timeout: Duration,
    /// Where changes queue their webhook deliveries; none: no webhooks.
    pub webhooks: Option<Arc<crate::webhooks::WebhookTap>>,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(300),
            max_inflight: 4096,
            threads: 2,
            outbox: Arc::default(),
            forward_timeout: Duration::from_secs(20),
            webhooks: None,
        }
    }
}

struct Entry {
    addr: Addr<ConversationActor>,
    generation: u64,
}

const SHARDS: usize = 64;

/// State shared by the registry handle and its actors.
pub struct RegistryShared {
    shards: Vec<Mutex<HashMap<Uuid, Entry>>>,
    next_generation: AtomicU64,
    starts: AtomicU64,
    restarts: AtomicU64,
    panics: AtomicU64,
}

impl RegistryShared {
    fn shard(&self, id: Uuid) -> std::sync::MutexGuard<'_, HashMap<Uuid, Entry>> {
        self.shards[(id.as_u128() as usize) % SHARDS].lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Retire for RegistryShared {
    fn retire(&self, id: Uuid, generation: u64) -> bool {
        let mut shard = self.shard(id);
        if shard.get(&id).is_some_and(|e| e.generation == generation) {
            shard.remove(&id);
            true
        } else {
            false
        }
    }

    fn note_restart(&self) {
        self.restarts.fetch_add(1, Ordering::Relaxed);
    }

    fn note_panic(&self) {
        self.panics.fetch_add(1, Ordering::Relaxed);
    }
}

/// Counters of the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RegistryStats {
    /// Live conversation actors.
    pub active: usize,
    /// Actors started since boot.
    pub starts: u64,
    /// Supervisor restarts since boot.
    pub restarts: u64,
    /// Panics caught since boot.
    pub panics: u64,
}

/// Handle to the registry; cheap to clone.
#[derive(Clone)]
pub struct Registry {
    shared: Arc<RegistryShared>,
    deps: Arc<Deps>,
    broker: Arc<dyn Broker>,
    arbiters: Arc<Vec<ArbiterHandle>>,
    forward_timeout: Duration,
}

impl Registry {
    /// Starts the registry and its arbiter threads, and serves the requests
    /// other nodes forward for the shards this node owns (none on one node).
    /// `broker` is where sockets subscribe; the journal's follower publishes
    /// the conversations' events. Must run inside an actix `System`.
    pub fn start(db: Db, journal: Journal, broker: Arc<dyn Broker>, config: RegistryConfig) -> Registry {
        let arbiters = (0..config.threads.max(1)).map(|_| Arbiter::new().handle()).collect();
        let registry = Registry {
            shared: Arc::new(RegistryShared {
                shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
                next_generation: AtomicU64::new(1),
                starts: AtomicU64::new(0),
                restarts: AtomicU64::new(0),
                panics: AtomicU64::new(0),
            }),
            deps: Arc::new(Deps {
                db,
                journal,
                idle_timeout: config.idle_timeout,
                max_inflight: config.max_inflight,
                outbox: config.outbox,
                hook: std::sync::OnceLock::new(),
                webhooks: config.webhooks,
            }),
            broker,
            arbiters: Arc::new(arbiters),
            forward_timeout: config.forward_timeout,
        };
        let r = registry.clone();
        tokio::spawn(async move { r.serve_owned_shards().await });
        registry
    }

    /// The actor of `id`, started if it is not running.
    fn actor(&self, id: Uuid) -> Addr<ConversationActor> {
        let mut shard = self.shared.shard(id);
        if let Some(e) = shard.get(&id) {
            return e.addr.clone();
        }
        let generation = self.shared.next_generation.fetch_add(1, Ordering::Relaxed);
        let arbiter = &self.arbiters[(id.as_u128() as usize / SHARDS) % self.arbiters.len()];
        let (deps, shared) = (self.deps.clone(), self.shared.clone());
        let addr = Supervisor::start_in_arbiter(arbiter, move |_| ConversationActor::new(id, generation, deps, shared));
        self.shared.starts.fetch_add(1, Ordering::Relaxed);
        shard.insert(id, Entry { addr: addr.clone(), generation });
        addr
    }

    /// Sends `cmd` to the conversation `id` and waits for its answer.
    ///
    /// Retries (a bounded number of times) when the actor it reached had just
    /// retired, so callers never see an idle retirement. The caller's span is
    /// taken when this is called, not when the future is first polled, so a
    /// caller that spawns the future elsewhere keeps the actor in its trace.
    pub fn call<C>(&self, id: Uuid, cmd: C) -> impl std::future::Future<Output = Result<C::Output, ConversationError>> + 'static
    where
        C: Forwardable,
    {
        let this = self.clone();
        async move { this.call_now(id, cmd, false).await }.instrument(tracing::Span::current())
    }

    /// `local`: a request forwarded here by another node, answered here or not at all.
    async fn call_now<C>(&self, id: Uuid, cmd: C, local: bool) -> Result<C::Output, ConversationError>
    where
        C: Forwardable,
    {
        let mut attempts = 0;
        let cluster = self.deps.journal.cluster().clone();
        let deadline = Instant::now() + self.forward_timeout;
        loop {
            attempts += 1;
            if attempts > 5 {
                // Ownership is moving: give it a moment before asking again.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let shard = shard_of(id);
            if let (false, Some(fwd)) = (local, cmd.forward()) {
                // This node owns every shard when it is alone.
                if !cluster.owns(shard) {
                    match self.forward(id, fwd, deadline).await.and_then(C::answered) {
                        Err(ConversationError::Retired) if Instant::now() < deadline => continue,
                        other => return other,
                    }
                }
            }
            let (tx, rx) = oneshot::channel();
            let addr = self.actor(id);
            let sent = addr.send(Envelope::new(cmd.clone(), tx)).await;
            let answer = match sent {
                Ok(()) => rx.await.unwrap_or(Err(ConversationError::Restarted)),
                // The mailbox closed under us: the actor has gone away.
                Err(_) => Err(ConversationError::Retired),
            };
            // A retired actor is met at most once in a row on one node; in a
            // cluster ownership may be moving, so ask again until the deadline.
            let again = attempts < 5 || (!local && Instant::now() < deadline);
            match answer {
                Err(ConversationError::Retired) if again => {
                    // Make sure the registry does not keep handing out a dead address.
                    let mut shard = self.shared.shard(id);
                    if shard.get(&id).is_some_and(|e| !e.addr.connected()) {
                        shard.remove(&id);
                    }
                    continue;
                }
                other => return other,
            }
        }
    }

    /// Sends a request to the node owning `id` and waits for its answer.
    async fn forward(&self, id: Uuid, command: Forward, deadline: Instant) -> Result<ForwardAnswer, ConversationError> {
        let payload = ForwardRequest { conversation: id, command }.encode()?;
        let left = deadline.saturating_duration_since(Instant::now());
        let sent = self.deps.journal.cluster().forward(shard_of(id), payload.into(), left).await;
        let outcome = match &sent {
            Ok(_) => "answered",
            Err(ClusterError::NoOwner { .. }) => "no_owner",
            Err(_) => "failed",
        };
        metrics::counter!("cluster_forwarded_requests_total", "outcome" => outcome).increment(1);
        Ok(ForwardAnswer::decode(&sent?)?)
    }

    /// Serves forwarded requests for every shard this node owns, following ownership as it moves.
    async fn serve_owned_shards(self) {
        let cluster = self.deps.journal.cluster().clone();
        let served: Arc<Mutex<HashSet<u32>>> = Arc::default();
        loop {
            let changed = cluster.ownership_changed();
            for shard in 0..CLUSTER_SHARDS {
                if !cluster.owns(shard) || !served.lock().unwrap_or_else(|p| p.into_inner()).insert(shard) {
                    continue;
                }
                let (this, served) = (self.clone(), served.clone());
                tokio::spawn(async move {
                    match this.deps.journal.cluster().serve(shard).await {
                        Ok(mut requests) => {
                            while let Some(request) = requests.next().await {
                                let this = this.clone();
                                tokio::spawn(async move { this.answer(request).await });
                            }
                        }
                        Err(e) => tracing::warn!(shard, error = %e, "cannot serve a shard's forwarded requests"),
                    }
                    served.lock().unwrap_or_else(|p| p.into_inner()).remove(&shard);
                });
            }
            metrics::gauge!("cluster_owned_shards").set(f64::from(cluster.status().owned_shards.len() as u32));
            // Leases are renewed in rounds; a missed notification is caught on the next tick.
            let _ = tokio::time::timeout(Duration::from_secs(1), changed).await;
        }
    }

    /// Answers one forwarded request with this node's actor.
    async fn answer(&self, request: Forwarded) {
        let answer = match ForwardRequest::decode(&request.payload) {
            Ok(ForwardRequest { conversation: id, command }) => match command {
                Forward::Append(req) => self.answer_with(id, AppendRequest::from(req)).await,
                Forward::Update(change) => self.answer_with(id, ConversationChange::from(change)).await,
                Forward::Change(change) => self.answer_with(id, MessageChange::from(change)).await,
                Forward::Read { seq, kind, id: reader } => {
                    let reader = crate::fanout::broker::Actor { kind: crate::fanout::broker::reader_kind(&kind), id: reader };
                    self.answer_with(id, MarkRead { reader, seq }).await
                }
                Forward::Rewrite { from_seq, to_seq } => self.answer_with(id, RewriteMessages { from_seq, to_seq }).await,
            },
            Err(e) => ForwardAnswer::Failed(WireError::Internal(e.to_string())),
        };
        (request.reply)(answer.encode().into()).await;
    }

    async fn answer_with<C>(&self, id: Uuid, cmd: C) -> ForwardAnswer
    where
        C: Forwardable,
    {
        match self.call_now(id, cmd, true).await {
            Ok(out) => C::answer(out),
            Err(e) => ForwardAnswer::Failed(WireError::from(&e)),
        }
    }

    /// Makes the conversation's actor panic inside a handler (fault injection for tests and drills).
    pub async fn inject_panic(&self, id: Uuid) -> Result<(), ConversationError> {
        self.call(id, Panic).await
    }

    /// Counters.
    pub fn stats(&self) -> RegistryStats {
        let active = self.shared.shards.iter().map(|s| s.lock().map(|m| m.len()).unwrap_or(0)).sum();
        RegistryStats {
            active,
            starts: self.shared.starts.load(Ordering::Relaxed),
            restarts: self.shared.restarts.load(Ordering::Relaxed),
            panics: self.shared.panics.load(Ordering::Relaxed),
        }
    }

    /// Sets what runs after customer messages and escalations are durable (once, at start).
    pub fn set_hook(&self, hook: Arc<dyn crate::conversation::ConversationHook>) {
        if self.deps.hook.set(hook).is_err() {
            tracing::warn!("conversation hook already set; keeping the first");
        }
    }

    /// Where every durable change goes.
    pub fn journal(&self) -> &Journal {
        &self.deps.journal
    }

    /// The batch that stores `c`, a new conversation, with its `conversation.created` deliveries.
    pub fn creation_batch(&self, c: &Conversation) -> Result<Batch, utalk_storage::CodecError> {
        let mut b = utalk_storage::model::conversation::put_batch(None, c)?;
        utalk_storage::model::activity::set(&mut b, c.id, None, utalk_storage::model::activity::second_of(c.created_at));
        if let Some(tap) = &self.deps.webhooks {
            super::announce::created(tap, &mut b, c)?;
        }
        Ok(b)
    }

    /// What the creation of `c` tells subscribers once stored: `conversation:new` to staff.
    pub fn creation_events(&self, c: &Conversation) -> Vec<crate::fanout::broker::ConversationEvent> {
        vec![crate::fanout::broker::ConversationEvent::ConversationNew(Arc::new(c.clone()))]
    }

    /// The broker the conversations publish to.
    pub fn broker(&self) -> &Arc<dyn Broker> {
        &self.broker
    }
}
