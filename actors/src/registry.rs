//! The conversation registry: finds the actor of a conversation, starting it
//! on demand under an actix [`Supervisor`] on one of a fixed set of arbiters
//! (chosen by the conversation id, so load spreads over threads).
//!
//! Idle actors retire themselves through [`RegistryShared::retire`]; a caller
//! that reaches a retired actor is answered `Retired` and asks the registry
//! again, which starts a fresh actor from storage. Only one live actor per
//! conversation exists at a time: an entry is replaced only after the actor
//! that owned it has retired, and a retiring actor has no writes in flight.

use crate::broker::Broker;
use crate::conversation::{Command, ConversationActor, ConversationError, Deps, Panic};
use crate::store_writer::StoreWriter;
use actix::{Actor, Addr, Arbiter, ArbiterHandle, Handler, Supervisor};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;
use tracing::Instrument;
use utalk_storage::Db;
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
    pub outbox: Arc<crate::signal::JobSignal>,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self { idle_timeout: Duration::from_secs(300), max_inflight: 4096, threads: 2, outbox: Arc::default() }
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

    /// Removes the entry of `id` if it still belongs to `generation`.
    pub(crate) fn retire(&self, id: Uuid, generation: u64) -> bool {
        let mut shard = self.shard(id);
        if shard.get(&id).is_some_and(|e| e.generation == generation) {
            shard.remove(&id);
            true
        } else {
            false
        }
    }

    pub(crate) fn note_restart(&self) {
        self.restarts.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn note_panic(&self) {
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
    arbiters: Arc<Vec<ArbiterHandle>>,
}

impl Registry {
    /// Starts the registry and its arbiter threads. Must run inside an actix `System`.
    pub fn start(db: Db, writer: StoreWriter, broker: Arc<dyn Broker>, config: RegistryConfig) -> Registry {
        let arbiters = (0..config.threads.max(1)).map(|_| Arbiter::new().handle()).collect();
        Registry {
            shared: Arc::new(RegistryShared {
                shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
                next_generation: AtomicU64::new(1),
                starts: AtomicU64::new(0),
                restarts: AtomicU64::new(0),
                panics: AtomicU64::new(0),
            }),
            deps: Arc::new(Deps {
                db,
                writer,
                broker,
                idle_timeout: config.idle_timeout,
                max_inflight: config.max_inflight,
                outbox: config.outbox,
                hook: std::sync::OnceLock::new(),
            }),
            arbiters: Arc::new(arbiters),
        }
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
        C: Command,
        ConversationActor: Handler<C::Msg>,
        <ConversationActor as Actor>::Context: actix::dev::ToEnvelope<ConversationActor, C::Msg>,
    {
        let this = self.clone();
        async move { this.call_now(id, cmd).await }.instrument(tracing::Span::current())
    }

    async fn call_now<C>(&self, id: Uuid, cmd: C) -> Result<C::Output, ConversationError>
    where
        C: Command,
        ConversationActor: Handler<C::Msg>,
        <ConversationActor as Actor>::Context: actix::dev::ToEnvelope<ConversationActor, C::Msg>,
    {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let (tx, rx) = oneshot::channel();
            let addr = self.actor(id);
            let sent = addr.send(cmd.clone().with_reply(tx)).await;
            let answer = match sent {
                Ok(()) => rx.await.unwrap_or(Err(ConversationError::Restarted)),
                // The mailbox closed under us: the actor has gone away.
                Err(_) => Err(ConversationError::Retired),
            };
            match answer {
                Err(ConversationError::Retired) if attempts < 5 => {
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

    /// The store writer the conversations write through.
    pub fn writer(&self) -> &StoreWriter {
        &self.deps.writer
    }

    /// The broker the conversations publish to.
    pub fn broker(&self) -> &Arc<dyn Broker> {
        &self.deps.broker
    }
}
