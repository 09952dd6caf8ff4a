//! The outbound alert webhook: every alert change queued in the store (in
//! the batch that made it) is POSTed as JSON to the configured URL, signed
//! with HMAC-SHA256 over the body, and retried with backoff until the
//! receiver answers 2xx, strictly in the order they were queued. Delivery is
//! at least once: receivers dedupe on `X-Utalk-Delivery`.

use crate::durability::Journal;
use crate::jobs::retry::Backoff;
use crate::jobs::signal::JobSignal;
use crate::jobs::worker::{run_passes, wait_for, Worker};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::sync::Arc;
use std::time::Duration;
use utalk_storage::model::alert::{self, WebhookDelivery};
use utalk_storage::{Batch, Db, Timestamp};

type HmacSha256 = Hmac<Sha256>;

/// The signature header value of `body` under `secret`: `sha256=<hex>`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    // HMAC takes keys of any length; new_from_slice cannot fail for it.
    let mut m = HmacSha256::new_from_slice(secret).unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    m.update(body);
    format!("sha256={}", hex::encode(m.finalize().into_bytes()))
}

/// The JSON body of a delivery: the same bytes on every attempt.
pub fn body(d: &WebhookDelivery) -> Vec<u8> {
    serde_json::json!({
        "id": d.id,
        "event": d.event,
        "alert": crate::views::Alert::from(d.alert.clone()),
        "store": { "id": d.alert.store_id, "name": d.store_name },
    })
    .to_string()
    .into_bytes()
}

/// Why an attempt failed.
enum Failure {
    /// Worth retrying: 5xx, 408, 429, no answer.
    Transient(String),
    /// The receiver refused it for good (another 4xx).
    Permanent(String),
}

/// Where alert webhooks go and how they are sent.
#[derive(Debug, Clone)]
pub struct WebhookTarget {
    /// The receiver.
    pub url: String,
    /// Key of the body's HMAC-SHA256.
    pub secret: Vec<u8>,
    /// Longest wait for an answer.
    pub timeout: Duration,
    /// Retries.
    pub backoff: Backoff,
}

/// Delivers queued alert webhooks.
pub struct AlertWebhooks {
    db: Db,
    /// Through the log, so that what was sent stays sent when another node takes over.
    journal: Journal,
    client: reqwest::Client,
    target: WebhookTarget,
    signal: Arc<JobSignal>,
    /// Every node holds the queue; only the leading one sends it.
    cluster: Arc<dyn crate::cluster::Cluster>,
}

impl AlertWebhooks {
    /// A deliverer to `target`, woken by `signal` when a delivery is queued;
    /// it sends only while this node leads (always, on one node alone).
    pub fn new(
        db: Db,
        journal: Journal,
        client: reqwest::Client,
        target: WebhookTarget,
        signal: Arc<JobSignal>,
        cluster: Arc<dyn crate::cluster::Cluster>,
    ) -> AlertWebhooks {
        AlertWebhooks { db, journal, client, target, signal, cluster }
    }

    async fn work(self: Arc<Self>) {
        run_passes("alert webhook", &self.signal, &*self.cluster, || self.pass()).await;
    }

    /// Sends the queue strictly oldest first: a delivery that must wait holds
    /// back the ones after it, so a receiver never sees a change before the one it follows.
    async fn pass(&self) -> Result<Duration, utalk_storage::StoreError> {
        let Some(head) = alert::webhooks(&self.db, None, 1)?.into_iter().next() else {
            return Ok(wait_for(None));
        };
        let now = Timestamp::now();
        if head.next_attempt_at > now {
            return Ok(wait_for(Some(head.next_attempt_at.millis() - now.millis())));
        }
        self.attempt(head).await?;
        Ok(Duration::ZERO)
    }

    async fn send(&self, d: &WebhookDelivery) -> Result<(), Failure> {
        let body = body(d);
        let event = serde_json::to_value(d.event).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
        let res = self
            .client
            .post(&self.target.url)
            .timeout(self.target.timeout)
            .header("content-type", "application/json")
            .header("x-utalk-event", event)
            .header("x-utalk-delivery", d.id.to_string())
            .header("x-utalk-signature", signature(&self.target.secret, &body))
            .body(body)
            .send()
            .await
            // Without the URL: it may carry a token.
            .map_err(|e| Failure::Transient(format!("no answer: {}", e.without_url())))?;
        let status = res.status();
        match status.as_u16() {
            200..=299 => Ok(()),
            // The receiver refuses this body for good: sending it again cannot help.
            400 | 410 | 413 | 415 | 422 => Err(Failure::Permanent(format!("receiver refused it with {status}"))),
            // Anything else (5xx, 408, 429, a redirect, 401/403/404 from a receiver being set up) may pass later.
            _ => Err(Failure::Transient(format!("receiver answered {status}"))),
        }
    }

    async fn attempt(&self, mut d: WebhookDelivery) -> Result<(), utalk_storage::StoreError> {
        let mut b = Batch::new();
        let outcome = match self.send(&d).await {
            Ok(()) => {
                alert::remove_webhook(&mut b, d.id);
                "delivered"
            }
            Err(Failure::Permanent(why)) => {
                tracing::error!(delivery = %d.id, alert = %d.alert.id, error = %why, "alert webhook refused; not retried");
                alert::remove_webhook(&mut b, d.id);
                "refused"
            }
            Err(Failure::Transient(why)) => {
                d.attempts += 1;
                match self.target.backoff.next_attempt(d.attempts, Timestamp::now()) {
                    Some(at) => {
                        tracing::warn!(delivery = %d.id, attempts = d.attempts, error = %why, "alert webhook failed; will retry");
                        d.next_attempt_at = at;
                        d.last_error = Some(why);
                        alert::put_webhook(&mut b, &d)?;
                        "retrying"
                    }
                    None => {
                        tracing::error!(delivery = %d.id, attempts = d.attempts, error = %why, "alert webhook given up");
                        alert::remove_webhook(&mut b, d.id);
                        "given_up"
                    }
                }
            }
        };
        metrics::counter!("alert_webhooks_total", "outcome" => outcome).increment(1);
        // If this cannot be recorded the pass fails and is tried again after a pause, not at once.
        self.journal.commit(b).await.map_err(|_| utalk_storage::StoreError::WriterStopped)
    }
}

impl Worker for AlertWebhooks {
    const NAME: &'static str = "alert_webhook";
    fn run(self: Arc<Self>) -> impl std::future::Future<Output = ()> + 'static {
        self.work()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_of_the_body() {
        // RFC 4231 test case 2.
        let s = signature(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(s, "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }
}
