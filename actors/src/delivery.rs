//! The delivery actor: works off the WhatsApp outbox.
//!
//! Conversation actors write an outbox entry in the same batch as each
//! outbound WhatsApp message and wake this actor. It sends the oldest entry
//! of each conversation (so a conversation's messages leave in order), a
//! few conversations at a time, and on Twilio's answer records the outcome
//! through the conversation actor, removing the entry in the same batch:
//!
//! - accepted: the message gets Twilio's sid as `providerId`;
//! - refused (4xx): the message is `failed` with Twilio's error code, never retried;
//! - 5xx, 429, timeout, unreachable: retried with exponential backoff and
//!   jitter up to a limit, and counted by a circuit breaker that stops all
//!   sends for a cool-down when Twilio keeps failing.
//!
//! Entries are durable, so an outbox left by a crash is sent after restart.
//! A crash between Twilio's acceptance and the write of its sid sends that
//! message again: delivery is at least once, as the Messages API has no
//! idempotency key.

use crate::conversation::{ConversationError, MessageChange};
use crate::media_store::MediaStore;
use crate::registry::Registry;
use crate::retry::{Backoff, Breaker, BreakerState};
use crate::signal::JobSignal;
use crate::store_writer::StoreWriter;
use crate::twilio::{self, Outgoing, SendOutcome, TwilioAccount};
use actix::prelude::*;
use futures_util::StreamExt;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use utalk_storage::model::{media, outbox, MediaStatus, MessageStatus, OutboxEntry};
use utalk_storage::{Batch, Db, Timestamp};
use uuid::Uuid;

/// How the delivery actor retries.
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    /// Retry delays and the attempt limit.
    pub backoff: Backoff,
    /// Longest wait for Twilio's answer.
    pub request_timeout: Duration,
    /// Conversations sent to at once.
    pub concurrency: usize,
    /// Failures in a row that open the breaker.
    pub breaker_failures: u32,
    /// How long an open breaker stops sends.
    pub breaker_cooldown: Duration,
    /// Lifetime of the media URLs handed to Twilio.
    pub media_url_ttl: Duration,
}

/// What the delivery actor has done, for status endpoints and metrics.
#[derive(Debug, Default)]
pub struct DeliveryStats {
    /// Accepted by Twilio.
    pub sent: AtomicU64,
    /// Refused by Twilio or given up.
    pub failed: AtomicU64,
    /// Transient failures that were retried.
    pub retried: AtomicU64,
}

/// The actor's shared state.
pub struct Delivery {
    db: Db,
    writer: StoreWriter,
    registry: Registry,
    account: Option<Arc<TwilioAccount>>,
    media: Arc<MediaStore>,
    client: reqwest::Client,
    signal: Arc<JobSignal>,
    config: DeliveryConfig,
    breaker: Mutex<Breaker>,
    /// Counters.
    pub stats: DeliveryStats,
}

/// Most entries looked at per pass.
const SCAN: usize = 2_000;
/// Longest sleep between passes when nothing wakes the actor.
const IDLE_POLL: Duration = Duration::from_secs(30);

impl Delivery {
    /// The delivery state; `account` is `None` when Twilio is not configured.
    pub fn new(
        db: Db,
        registry: Registry,
        account: Option<Arc<TwilioAccount>>,
        media: Arc<MediaStore>,
        client: reqwest::Client,
        signal: Arc<JobSignal>,
        config: DeliveryConfig,
    ) -> Arc<Self> {
        let breaker = Mutex::new(Breaker::new(config.breaker_failures, config.breaker_cooldown));
        let writer = registry.writer().clone();
        Arc::new(Self { db, writer, registry, account, media, client, signal, config, breaker, stats: DeliveryStats::default() })
    }

    /// Whether Twilio is configured.
    pub fn configured(&self) -> bool {
        self.account.is_some()
    }

    /// The circuit breaker's state now.
    pub fn breaker_state(&self) -> BreakerState {
        self.breaker.lock().map(|b| b.state(Instant::now())).unwrap_or(BreakerState::Closed)
    }

    fn allow(&self) -> bool {
        self.breaker.lock().map(|mut b| b.allow(Instant::now())).unwrap_or(true)
    }

    fn answered(&self) {
        if let Ok(mut b) = self.breaker.lock() {
            b.success();
        }
    }

    fn failed(&self) {
        if let Ok(mut b) = self.breaker.lock() {
            b.failure(Instant::now());
        }
    }

    /// Works the outbox until the actor stops.
    async fn run(self: Arc<Self>) {
        let Some(account) = self.account.clone() else {
            // Entries wait, marked not_configured, until a restart with settings.
            return;
        };
        loop {
            let wait = match self.pass(&account).await {
                Ok(wait) => wait,
                Err(e) => {
                    tracing::error!(error = %e, "outbox pass failed; retrying");
                    Duration::from_secs(1)
                }
            };
            if wait.is_zero() {
                continue;
            }
            tokio::select! {
                _ = self.signal.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Sends what is due; returns how long to sleep before the next pass.
    async fn pass(&self, account: &Arc<TwilioAccount>) -> Result<Duration, utalk_storage::StoreError> {
        let entries = outbox::list(&self.db, None, SCAN)?;
        // The oldest entry of each conversation: later ones wait for it.
        let mut heads: BTreeMap<Uuid, OutboxEntry> = BTreeMap::new();
        for e in entries {
            match heads.get(&e.conversation_id) {
                Some(h) if h.seq <= e.seq => {}
                _ => {
                    heads.insert(e.conversation_id, e);
                }
            }
        }
        let now = Timestamp::now();
        let (due, later): (Vec<_>, Vec<_>) = heads.into_values().partition(|e| e.next_attempt_at <= now);
        let next = later.iter().map(|e| e.next_attempt_at.millis() - now.millis()).min();
        let mut wait = next.map(|ms| Duration::from_millis(ms.max(1) as u64)).unwrap_or(IDLE_POLL).min(IDLE_POLL);
        if due.is_empty() {
            return Ok(wait);
        }
        let tried: Vec<bool> = futures_util::stream::iter(due)
            .map(|e| self.attempt(account, e))
            .buffer_unordered(self.config.concurrency.max(1))
            .collect()
            .await;
        if tried.iter().any(|t| *t) {
            // Look again at once: the next pass sees the new due times.
            return Ok(Duration::ZERO);
        }
        // The breaker held everything back: wait for its trial.
        if let Some(t) = self.breaker.lock().ok().and_then(|b| b.reopens_at()) {
            wait = wait.min(t.saturating_duration_since(Instant::now()).max(Duration::from_millis(10)));
        }
        Ok(wait)
    }

    /// One attempt at one entry; false when the breaker held it back.
    async fn attempt(&self, account: &Arc<TwilioAccount>, entry: OutboxEntry) -> bool {
        if let Some(sid) = entry.provider_id.clone() {
            // Sent before, but the outcome was not recorded: record it now.
            self.record(&entry, MessageStatus::Queued, Some(sid), None).await;
            return true;
        }
        let media_urls = match self.media_urls(&entry) {
            Ok(u) => u,
            Err(why) => {
                self.record(&entry, MessageStatus::Failed, None, Some(("media_unavailable".into(), why))).await;
                return true;
            }
        };
        if !self.allow() {
            return false;
        }
        let callback =
            account.public(&format!("/webhooks/twilio/status?conversationId={}&messageId={}", entry.conversation_id, entry.message_id));
        let out = Outgoing { to: &entry.to, body: entry.body.as_deref(), media_urls, status_callback: Some(callback) };
        match twilio::send(&self.client, account, &out, self.config.request_timeout).await {
            SendOutcome::Accepted { sid, status } => {
                self.answered();
                self.stats.sent.fetch_add(1, Ordering::Relaxed);
                let status = MessageStatus::parse(&status).filter(|s| s.rank() > 0).unwrap_or(MessageStatus::Queued);
                tracing::info!(conversation = %entry.conversation_id, message = %entry.message_id, sid = %sid, "whatsapp message accepted by twilio");
                if !self.record(&entry, status, Some(sid.clone()), None).await {
                    // Keep the sid with the entry so that it is never sent again.
                    let mut kept = entry.clone();
                    kept.provider_id = Some(sid);
                    kept.next_attempt_at = Timestamp(Timestamp::now().millis() + 1_000);
                    self.save(&kept).await;
                }
                true
            }
            SendOutcome::Rejected { code, message } => {
                self.answered();
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(conversation = %entry.conversation_id, message_id = %entry.message_id, code = %code, reason = %message, "twilio refused a whatsapp message");
                self.record(&entry, MessageStatus::Failed, None, Some((code, message))).await;
                true
            }
            SendOutcome::Transient(why) => {
                self.failed();
                let attempts = entry.attempts + 1;
                match self.config.backoff.next_attempt(attempts, Timestamp::now()) {
                    Some(at) => {
                        self.stats.retried.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(conversation = %entry.conversation_id, message = %entry.message_id, attempts, error = %why, "whatsapp send failed; will retry");
                        let mut next = entry.clone();
                        next.attempts = attempts;
                        next.next_attempt_at = at;
                        next.last_error = Some(why);
                        self.save(&next).await;
                        true
                    }
                    None => {
                        self.stats.failed.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(conversation = %entry.conversation_id, message = %entry.message_id, attempts, error = %why, "whatsapp send gave up");
                        let why = format!("gave up after {attempts} attempts: {why}");
                        self.record(&entry, MessageStatus::Failed, None, Some(("delivery_gave_up".into(), why))).await;
                        true
                    }
                }
            }
        }
    }

    /// Signed public URLs of the entry's media, or why they cannot be sent.
    fn media_urls(&self, entry: &OutboxEntry) -> Result<Vec<String>, String> {
        entry
            .media_ids
            .iter()
            .map(|id| match media::get(&self.db, *id) {
                Ok(Some(m)) if m.status == MediaStatus::Stored => Ok(self.media.signed_url(*id, Some(self.config.media_url_ttl)).url),
                Ok(Some(_)) => Err(format!("media {id} is not stored")),
                Ok(None) => Err(format!("media {id} does not exist")),
                Err(e) => Err(format!("media {id} cannot be read: {e}")),
            })
            .collect()
    }

    /// Records the outcome on the message and removes the entry, in one batch.
    async fn record(&self, entry: &OutboxEntry, status: MessageStatus, sid: Option<String>, error: Option<(String, String)>) -> bool {
        let mut change = MessageChange::new(entry.message_id);
        change.status = Some(status);
        change.provider_id = sid;
        if let Some((code, message)) = error {
            change.error_code = Some(code);
            change.error_message = Some(message);
        }
        outbox::delete(&mut change.extra, entry.id);
        match self.registry.call(entry.conversation_id, change).await {
            Ok(_) => true,
            Err(ConversationError::NotFound | ConversationError::MessageNotFound) => {
                // The conversation or message is gone: the entry can never be recorded.
                let mut b = Batch::new();
                outbox::delete(&mut b, entry.id);
                let _ = self.writer.commit(b).await;
                true
            }
            Err(e) => {
                tracing::error!(conversation = %entry.conversation_id, message = %entry.message_id, error = %e, "recording a delivery outcome failed; will retry");
                false
            }
        }
    }

    async fn save(&self, entry: &OutboxEntry) {
        let mut b = Batch::new();
        if let Err(e) = outbox::put(&mut b, entry) {
            tracing::error!(error = %e, "encoding an outbox entry failed");
            return;
        }
        if let Err(e) = self.writer.commit(b).await {
            tracing::error!(error = %e, "saving an outbox entry failed");
        }
    }
}

/// The supervised actor around [`Delivery`]: restarts its loop if it ends.
pub struct DeliveryActor {
    inner: Arc<Delivery>,
}

impl DeliveryActor {
    /// Starts the actor under a supervisor.
    pub fn start(inner: Arc<Delivery>) -> Addr<DeliveryActor> {
        actix::Supervisor::start(move |_| DeliveryActor { inner })
    }
}

impl Actor for DeliveryActor {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        if !self.inner.configured() {
            tracing::warn!("WhatsApp delivery is not configured: outbound WhatsApp messages stay in the outbox with status not_configured");
            return;
        }
        let inner = self.inner.clone();
        ctx.spawn(actix::fut::wrap_future(inner.run()).map(|_, _act: &mut Self, ctx: &mut Context<Self>| ctx.stop()));
    }
}

impl actix::Supervised for DeliveryActor {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        tracing::warn!("delivery actor restarting");
    }
}
