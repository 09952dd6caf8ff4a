//! Sends queued deliveries: per subscription strictly in order (a delivery
//! being retried holds back the ones after it, so a receiver never sees a
//! change before the one it follows), subscriptions side by side. A
//! delivery is retried with backoff until the receiver answers 2xx or the
//! retry period ends; then it is failed and the next one goes. A
//! subscription whose every attempt failed for `disable_after` is turned off
//! and audited. Outcomes are written through the log, so another node that
//! takes over goes on from there.

use super::guard::PublicOnly;
use super::signature::sign;
use super::WebhookTap;
use crate::durability::Journal;
use crate::jobs::retry::Backoff;
use crate::jobs::worker::{run_passes, wait_for, Worker};
use futures_util::future::join_all;
use std::sync::Arc;
use std::time::Duration;
use utalk_storage::model::webhook::{self, Delivery, DeliveryState, Webhook};
use utalk_storage::model::AuditEvent;
use utalk_storage::{Batch, Db, StoreError, Timestamp};

/// How deliveries are sent.
#[derive(Debug, Clone)]
pub struct SenderConfig {
    /// Longest wait for a receiver's answer.
    pub timeout: Duration,
    /// Delays between attempts.
    pub backoff: Backoff,
    /// How long a delivery is retried before it is failed.
    pub retry_for: Duration,
    /// A subscription failing this long is disabled.
    pub disable_after: Duration,
    /// Whether receivers may be on loopback or private addresses.
    pub allow_private: bool,
}

/// The worker that sends webhook deliveries.
pub struct WebhookSender {
    db: Db,
    journal: Journal,
    /// For subscriptions made over the API: public addresses only (unless allowed).
    guarded: reqwest::Client,
    /// For the one made from the server's own settings, which the operator chose.
    trusted: reqwest::Client,
    config: SenderConfig,
    /// Told when a subscription is turned off, so writers stop queueing for it at once.
    tap: Arc<WebhookTap>,
    cluster: Arc<dyn crate::cluster::Cluster>,
}

/// Longest wait while subscriptions are active: a delivery queued by a
/// write that was not yet applied when the last pass looked goes out within this.
const ACTIVE_POLL: Duration = Duration::from_millis(250);

fn client(timeout: Duration, guard: Option<PublicOnly>) -> reqwest::Client {
    let b = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        // A redirect could lead anywhere, past the address check: it counts as a failure.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("utalk-webhooks/", env!("CARGO_PKG_VERSION")));
    let b = match guard {
        Some(g) => b.dns_resolver(Arc::new(g)),
        None => b,
    };
    b.build().unwrap_or_else(|_| reqwest::Client::new())
}

impl WebhookSender {
    /// A sender woken by `tap` when a delivery is queued; it sends only
    /// while this node leads (always, on one node alone).
    pub fn new(
        db: Db,
        journal: Journal,
        config: SenderConfig,
        tap: Arc<WebhookTap>,
        cluster: Arc<dyn crate::cluster::Cluster>,
    ) -> WebhookSender {
        let guard = (!config.allow_private).then_some(PublicOnly);
        WebhookSender { guarded: client(config.timeout, guard), trusted: client(config.timeout, None), db, journal, config, tap, cluster }
    }

    async fn work(self: Arc<Self>) {
        let signal = self.tap.signal();
        run_passes("webhook", &signal, &*self.cluster, || self.pass()).await;
    }

    /// One attempt at the head of every active subscription that is due.
    async fn pass(&self) -> Result<Duration, StoreError> {
        let now = Timestamp::now();
        let mut due = Vec::new();
        let mut next: Option<i64> = None;
        let mut active = false;
        for w in webhook::list(&self.db, None, usize::MAX)?.into_iter().filter(|w| w.active) {
            active = true;
            let Some(head) = webhook::first_pending(&self.db, w.id)? else { continue };
            if head.next_attempt_at <= now {
                due.push((w, head));
            } else {
                let ms = head.next_attempt_at.millis() - now.millis();
                next = Some(next.map_or(ms, |n| n.min(ms)));
            }
        }
        if !due.is_empty() {
            // At most one request per subscription at a time, and subscriptions are few.
            for r in join_all(due.into_iter().map(|(w, d)| self.attempt(w, d))).await {
                r?;
            }
            return Ok(Duration::ZERO);
        }
        let wait = wait_for(next);
        Ok(if active { wait.min(ACTIVE_POLL) } else { wait })
    }

    /// Sends `d` once: the status code, or why there was none.
    async fn send(&self, w: &Webhook, d: &Delivery) -> Result<u16, String> {
        let client = if w.created_by.is_none() {
            &self.trusted
        } else {
            // An address in the URL itself is not resolved, so the resolver cannot refuse it.
            super::guard::check_url(&w.url, self.config.allow_private).map_err(str::to_owned)?;
            &self.guarded
        };
        let res = client
            .post(&w.url)
            .header("content-type", "application/json")
            .header("x-utalk-event", &d.event)
            .header("x-utalk-delivery", d.id.to_string())
            .header("x-utalk-signature", sign(w.secret.as_bytes(), Timestamp::now().millis() / 1000, d.body.as_bytes()))
            .body(d.body.clone())
            .send()
            .await
            // Without the URL: it may carry a token.
            .map_err(|e| {
                let cause = std::error::Error::source(&e).map(|s| format!(": {s}")).unwrap_or_default();
                format!("{}{cause}", e.without_url())
            })?;
        // The answer's body is not read: nothing in it matters, and it could be large.
        Ok(res.status().as_u16())
    }

    async fn attempt(&self, w: Webhook, mut d: Delivery) -> Result<(), StoreError> {
        let outcome = self.send(&w, &d).await;
        let now = Timestamp::now();
        d.attempts += 1;
        d.last_attempt_at = Some(now);
        let mut b = Batch::new();
        // Read again: an admin may have changed it while the request was out.
        let Some(mut w) = webhook::get(&self.db, w.id)? else { return Ok(()) };
        let was = w.clone();
        let label = match outcome {
            Ok(code @ 200..=299) => {
                d.state = DeliveryState::Delivered;
                d.response_code = Some(code);
                d.delivered_at = Some(now);
                d.last_error = None;
                w.failing_since = None;
                "delivered"
            }
            other => {
                let why = match other {
                    Ok(code) => {
                        d.response_code = Some(code);
                        format!("the receiver answered {code}")
                    }
                    Err(why) => {
                        d.response_code = None;
                        why
                    }
                };
                let failing_since = *w.failing_since.get_or_insert(now);
                let retry_until = d.created_at.millis().saturating_add(self.config.retry_for.as_millis() as i64);
                let again = self.config.backoff.next_attempt(d.attempts, now).filter(|at| at.millis() <= retry_until);
                let label = match again {
                    Some(at) => {
                        tracing::warn!(webhook = %w.id, delivery = %d.id, attempts = d.attempts, error = %why, "webhook delivery failed; will retry");
                        d.next_attempt_at = at;
                        "retrying"
                    }
                    None => {
                        tracing::error!(webhook = %w.id, delivery = %d.id, attempts = d.attempts, error = %why, "webhook delivery failed for good");
                        d.state = DeliveryState::Failed;
                        "failed"
                    }
                };
                d.last_error = Some(why);
                if w.active && now.millis() - failing_since.millis() >= self.config.disable_after.as_millis() as i64 {
                    let reason = format!("every delivery failed for {} s", self.config.disable_after.as_secs());
                    tracing::error!(webhook = %w.id, url_host = %host(&w.url), "{reason}: webhook disabled");
                    metrics::counter!("webhook_subscriptions_disabled_total").increment(1);
                    w.active = false;
                    w.disabled_reason = Some(reason.clone());
                    w.updated_at = now;
                    AuditEvent::new("system", "webhook.disable", format!("{} {reason}", w.id)).add_to(&mut b)?;
                }
                label
            }
        };
        metrics::counter!("webhook_deliveries_total", "outcome" => label).increment(1);
        webhook::put_delivery(&mut b, &d)?;
        let disabled = was.active && !w.active;
        if w != was {
            webhook::put(&mut b, &w)?;
        }
        // If this cannot be recorded the pass fails and is tried again after a pause, not at once.
        self.journal.commit(b).await.map_err(|_| StoreError::WriterStopped)?;
        if disabled {
            self.tap.reload()?;
        }
        Ok(())
    }
}

/// The URL's host, for logs (the rest may carry a token).
fn host(url: &str) -> String {
    reqwest::Url::parse(url).ok().and_then(|u| u.host_str().map(str::to_owned)).unwrap_or_default()
}

impl Worker for WebhookSender {
    const NAME: &'static str = "webhooks";
    fn run(self: Arc<Self>) -> impl std::future::Future<Output = ()> + 'static {
        self.work()
    }
}
