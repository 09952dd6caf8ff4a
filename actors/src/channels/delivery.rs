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
//! An answer that cannot be recorded at once is kept on the entry, which is
//! then only recorded, never sent again. A retry after a timeout first looks
//! whether Twilio's status callback already named the message. A crash
//! between Twilio's acceptance and the write of its answer, or a timeout
//! whose message Twilio accepted without a callback yet, sends it again:
//! delivery is at least once, as the Messages API has no idempotency key.

use crate::channels::media_store::MediaStore;
use crate::channels::twilio::{self, Outgoing, SendOutcome, TwilioAccount};
use crate::conversation::registry::Registry;
use crate::conversation::{ConversationError, MessageChange};
use crate::durability::Journal;
use crate::jobs::retry::{Backoff, Breaker, BreakerState};
use crate::jobs::signal::JobSignal;
use crate::jobs::worker::{run_passes, wait_for, Worker};
use futures_util::StreamExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use utalk_storage::model::{
    conversation, media, message, outbox, AuthorType, ConversationStatus, MediaStatus, MessageStatus, OutboxEntry, Outcome,
};
use utalk_storage::{Batch, Db, Timestamp};

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
    journal: Journal,
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

/// Most conversations looked at per pass.
const HEADS: usize = 10_000;

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
        let journal = registry.journal().clone();
        Arc::new(Self { db, journal, registry, account, media, client, signal, config, breaker, stats: DeliveryStats::default() })
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
    async fn work(self: Arc<Self>) {
        let Some(account) = self.account.clone() else {
            // Entries wait, marked not_configured, until a restart with settings.
            return std::future::pending().await;
        };
        run_passes("outbox", &self.signal, &**self.registry.journal().cluster(), || self.pass(&account)).await;
    }

    /// Sends what is due; returns how long to sleep before the next pass.
    async fn pass(&self, account: &Arc<TwilioAccount>) -> Result<Duration, utalk_storage::StoreError> {
        // The oldest entry of each conversation: later ones wait for it.
        let heads = outbox::heads(&self.db, HEADS)?;
        let now = Timestamp::now();
        let (mut due, later): (Vec<_>, Vec<_>) = heads.into_iter().partition(|e| e.next_attempt_at <= now);
        due.sort_by_key(|e| e.created_at);
        let mut wait = wait_for(later.iter().map(|e| e.next_attempt_at.millis() - now.millis()).min());
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
        if let Some(outcome) = entry.outcome.clone() {
            // The channel answered before, but the answer is not recorded yet.
            self.settle(&entry, outcome).await;
            return true;
        }
        if entry.attempts > 0 {
            if let Some(sid) = self.known_sid(&entry) {
                // A timed-out attempt was accepted after all: its status callback
                // named the message. Record it instead of sending it again.
                self.settle(&entry, outcome(MessageStatus::Queued, Some(sid), None)).await;
                return true;
            }
        }
        if let Some(why) = self.bot_silenced(&entry) {
            // The conversation went to people before this bot answer could leave.
            self.settle(&entry, outcome(MessageStatus::Failed, None, Some(("bot_paused".into(), why)))).await;
            return true;
        }
        let media_urls = match self.media_urls(&entry) {
            Ok(u) => u,
            Err(MediaProblem::NotYet(why)) => {
                self.retry_later(&entry, why).await;
                return true;
            }
            Err(MediaProblem::Never(why)) => {
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
                self.settle(&entry, outcome(MessageStatus::Failed, None, Some(("media_unavailable".into(), why)))).await;
                return true;
            }
        };
        if !self.allow() {
            return false;
        }
        let callback =
            account.public(&format!("/webhooks/twilio/status?conversationId={}&messageId={}", entry.conversation_id, entry.message_id));
        let out = Outgoing {
            to: &entry.to,
            body: entry.body.as_deref(),
            media_urls,
            status_callback: Some(callback),
            template: entry.template.as_ref(),
        };
        match twilio::send(&self.client, account, &out, self.config.request_timeout).await {
            SendOutcome::Accepted { sid, status } => {
                self.answered();
                self.stats.sent.fetch_add(1, Ordering::Relaxed);
                let status = MessageStatus::parse(&status).filter(|s| s.rank() > 0).unwrap_or(MessageStatus::Queued);
                tracing::info!(conversation = %entry.conversation_id, message = %entry.message_id, sid = ?sid, "whatsapp message accepted by twilio");
                self.settle(&entry, outcome(status, sid, None)).await;
            }
            SendOutcome::Rejected { code, message } => {
                self.answered();
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(conversation = %entry.conversation_id, message_id = %entry.message_id, code = %code, reason = %message, "twilio refused a whatsapp message");
                self.settle(&entry, outcome(MessageStatus::Failed, None, Some((code, message)))).await;
            }
            SendOutcome::Transient(why) => {
                self.failed();
                self.retry_later(&entry, why).await;
            }
        }
        true
    }

    /// Schedules another attempt after a transient failure, or gives up.
    async fn retry_later(&self, entry: &OutboxEntry, why: String) {
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
            }
            None => {
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
                tracing::error!(conversation = %entry.conversation_id, message = %entry.message_id, attempts, error = %why, "whatsapp send gave up");
                let why = format!("gave up after {attempts} attempts: {why}");
                self.settle(entry, outcome(MessageStatus::Failed, None, Some(("delivery_gave_up".into(), why)))).await;
            }
        }
    }

    /// Why a bot message must not go out: its conversation is escalated,
    /// closed or has its bot off (as durably stored).
    fn bot_silenced(&self, entry: &OutboxEntry) -> Option<String> {
        let m = message::get(&self.db, entry.conversation_id, entry.seq).ok().flatten()?;
        if m.author.kind != AuthorType::Bot {
            return None;
        }
        let c = conversation::get(&self.db, entry.conversation_id).ok().flatten()?;
        (c.status != ConversationStatus::Open || !c.bot_enabled)
            .then(|| format!("the conversation is {} with the bot paused; the bot's answer was not sent", c.status.as_str()))
    }

    /// The message's provider id, when a status callback already brought it.
    fn known_sid(&self, entry: &OutboxEntry) -> Option<String> {
        let m = message::get(&self.db, entry.conversation_id, entry.seq).ok().flatten()?;
        m.provider_id.filter(|_| m.id == entry.message_id)
    }

    /// Signed public URLs of the entry's media, or why they cannot be sent (yet).
    fn media_urls(&self, entry: &OutboxEntry) -> Result<Vec<String>, MediaProblem> {
        entry
            .media_ids
            .iter()
            .map(|id| match media::get(&self.db, *id) {
                Ok(Some(m)) => match m.status {
                    MediaStatus::Stored => Ok(self.media.signed_url(*id, Some(self.config.media_url_ttl)).url),
                    MediaStatus::Pending => Err(MediaProblem::NotYet(format!("media {id} is still downloading"))),
                    MediaStatus::Failed => Err(MediaProblem::Never(format!("media {id} could not be stored"))),
                },
                Ok(None) => Err(MediaProblem::Never(format!("media {id} does not exist"))),
                Err(e) => {
                    tracing::error!(media = %id, error = %e, "reading a media record failed");
                    Err(MediaProblem::NotYet(format!("media {id} cannot be read now")))
                }
            })
            .collect()
    }

    /// Records `outcome` on the message and removes the entry, in one batch.
    /// When that cannot happen now, the outcome is kept on the entry, so the
    /// message is recorded later and never sent again.
    async fn settle(&self, entry: &OutboxEntry, outcome: Outcome) {
        let mut change = MessageChange::new(entry.message_id);
        change.status = Some(outcome.status);
        change.provider_id = outcome.provider_id.clone();
        change.error_code = outcome.error_code.clone();
        change.error_message = outcome.error_message.clone();
        outbox::delete(&mut change.extra, entry.conversation_id, entry.seq);
        match self.registry.call(entry.conversation_id, change).await {
            Ok(_) => {}
            Err(ConversationError::NotFound | ConversationError::MessageNotFound) => {
                // The conversation or message is gone: nothing can be recorded.
                tracing::warn!(conversation = %entry.conversation_id, message = %entry.message_id, "outbox entry of a missing message dropped");
                let mut b = Batch::new();
                outbox::delete(&mut b, entry.conversation_id, entry.seq);
                self.journal.commit_node_or_log(Ok(b), "dropping an outbox entry").await;
            }
            Err(e) => {
                tracing::warn!(conversation = %entry.conversation_id, message = %entry.message_id, error = %e, "recording a delivery outcome failed; will retry");
                let mut kept = entry.clone();
                kept.outcome = Some(outcome);
                kept.next_attempt_at = Timestamp(Timestamp::now().millis() + 1_000);
                self.save(&kept).await;
            }
        }
    }

    async fn save(&self, entry: &OutboxEntry) {
        let mut b = Batch::new();
        let built = outbox::put(&mut b, entry).map(|_| b);
        self.journal.commit_node_or_log(built, "saving an outbox entry").await;
    }
}

/// Why an entry's media cannot go out.
enum MediaProblem {
    /// Not yet: still downloading, or unreadable for now.
    NotYet(String),
    /// Never: missing or failed.
    Never(String),
}

impl Worker for Delivery {
    const NAME: &'static str = "delivery";
    fn run(self: Arc<Self>) -> impl std::future::Future<Output = ()> + 'static {
        self.work()
    }
}

fn outcome(status: MessageStatus, provider_id: Option<String>, error: Option<(String, String)>) -> Outcome {
    let (error_code, error_message) = error.map(|(c, m)| (Some(c), Some(m))).unwrap_or((None, None));
    Outcome { status, provider_id, error_code, error_message }
}
