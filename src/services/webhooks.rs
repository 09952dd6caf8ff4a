//! Event webhook subscriptions and their delivery log: made, changed and
//! removed by admins (audited), the secret shown once; deliveries listed and
//! sent again. What is queued and how it is sent is in the actors' webhooks
//! module.

use super::ServiceError;
use rand::RngCore;
use utalk_actors::webhooks::{guard, EventKind, WebhookTap};
use utalk_actors::Journal;
use utalk_storage::model::webhook::{self, Delivery, DeliveryState, Webhook};
use utalk_storage::model::AuditEvent;
use utalk_storage::{Batch, Db, Timestamp};
use uuid::Uuid;

/// What every secret starts with.
pub const SECRET_PREFIX: &str = "whsec_";

/// Limits on subscriptions.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most subscriptions.
    pub max_subscriptions: usize,
    /// Whether receivers may be on loopback or private addresses.
    pub allow_private: bool,
}

/// A subscription as asked for.
pub struct Spec {
    /// Receiver.
    pub url: Option<String>,
    /// Event names.
    pub events: Option<Vec<String>>,
    /// On or off.
    pub active: Option<bool>,
}

fn invalid(message: impl Into<String>) -> ServiceError {
    ServiceError::Invalid { code: "validation_failed", message: message.into() }
}

fn check_events(events: &[String]) -> Result<Vec<String>, ServiceError> {
    if events.is_empty() || events.len() > EventKind::ALL.len() {
        return Err(invalid(format!("events must list 1 to {} event names", EventKind::ALL.len())));
    }
    let mut out: Vec<String> = Vec::with_capacity(events.len());
    for e in events {
        let k = EventKind::parse(e).ok_or_else(|| ServiceError::Invalid {
            code: "unknown_event",
            message: format!(
                "{:?} is not an event; use {}",
                e.chars().take(64).collect::<String>(),
                EventKind::ALL.map(|k| k.name()).join(", ")
            ),
        })?;
        if !out.iter().any(|o| o == k.name()) {
            out.push(k.name().to_string());
        }
    }
    Ok(out)
}

fn check_url(url: &str, limits: Limits) -> Result<String, ServiceError> {
    guard::check_url(url.trim(), limits.allow_private)
        .map(|u| u.to_string())
        .map_err(|m| ServiceError::Invalid { code: "url_not_allowed", message: m.to_string() })
}

fn new_secret() -> String {
    let mut raw = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut raw);
    format!("{SECRET_PREFIX}{}", hex::encode(raw))
}

/// Makes a subscription for `actor`; its secret is in the answer, this once.
pub async fn create(
    db: &Db,
    journal: &Journal,
    tap: &WebhookTap,
    actor: Uuid,
    spec: Spec,
    limits: Limits,
) -> Result<Webhook, ServiceError> {
    let url = check_url(spec.url.as_deref().ok_or_else(|| invalid("url is required"))?, limits)?;
    let events = check_events(spec.events.as_deref().ok_or_else(|| invalid("events is required"))?)?;
    if webhook::list(db, None, limits.max_subscriptions + 1)?.len() >= limits.max_subscriptions {
        return Err(ServiceError::Conflict {
            code: "too_many_webhooks",
            message: format!("{} subscriptions exist, the most allowed (webhooks.max_subscriptions)", limits.max_subscriptions),
        });
    }
    let now = Timestamp::now();
    let w = Webhook {
        id: Uuid::now_v7(),
        url,
        events,
        active: spec.active.unwrap_or(true),
        secret: new_secret(),
        created_at: now,
        created_by: Some(actor),
        updated_at: now,
        failing_since: None,
        disabled_reason: None,
    };
    let mut b = Batch::new();
    webhook::put(&mut b, &w)?;
    AuditEvent::new(actor.to_string(), "webhook.create", format!("{} {}", w.id, w.events.join(","))).add_to(&mut b)?;
    journal.commit(b).await?;
    tap.reload()?;
    Ok(w)
}

/// Subscriptions in id order after `after`.
pub fn list(db: &Db, after: Option<Uuid>, limit: usize) -> Result<Vec<Webhook>, ServiceError> {
    Ok(webhook::list(db, after, limit)?)
}

/// One subscription.
pub fn get(db: &Db, id: Uuid) -> Result<Webhook, ServiceError> {
    webhook::get(db, id)?.ok_or(ServiceError::NotFound("webhook"))
}

/// Changes a subscription. Turning it on again clears why it was turned off
/// and its failing streak; deliveries it holds go out from where they were.
pub async fn update(
    db: &Db,
    journal: &Journal,
    tap: &WebhookTap,
    actor: Uuid,
    id: Uuid,
    spec: Spec,
    limits: Limits,
) -> Result<Webhook, ServiceError> {
    if spec.url.is_none() && spec.events.is_none() && spec.active.is_none() {
        return Err(ServiceError::Invalid { code: "empty_change", message: "give url, events or active".into() });
    }
    let mut w = get(db, id)?;
    let was = w.clone();
    if let Some(url) = &spec.url {
        w.url = check_url(url, limits)?;
    }
    if let Some(events) = &spec.events {
        w.events = check_events(events)?;
    }
    if let Some(active) = spec.active {
        if active && !w.active {
            w.failing_since = None;
            w.disabled_reason = None;
        }
        w.active = active;
    }
    if w == was {
        return Ok(w);
    }
    w.updated_at = Timestamp::now();
    let mut b = Batch::new();
    webhook::put(&mut b, &w)?;
    let what = format!("{} active={} events={}", w.id, w.active, w.events.join(","));
    AuditEvent::new(actor.to_string(), "webhook.update", what).add_to(&mut b)?;
    journal.commit(b).await?;
    tap.reload()?;
    Ok(w)
}

/// Removes a subscription and what it still had to send.
pub async fn delete(db: &Db, journal: &Journal, tap: &WebhookTap, actor: Uuid, id: Uuid) -> Result<(), ServiceError> {
    let w = get(db, id)?;
    let mut b = Batch::new();
    webhook::delete(&mut b, id);
    AuditEvent::new(actor.to_string(), "webhook.delete", format!("{} {}", w.id, w.events.join(","))).add_to(&mut b)?;
    journal.commit(b).await?;
    tap.reload()?;
    Ok(())
}

/// A subscription's deliveries, newest first, before `before`.
pub fn deliveries(db: &Db, id: Uuid, before: Option<Uuid>, limit: usize) -> Result<Vec<Delivery>, ServiceError> {
    get(db, id)?;
    Ok(webhook::deliveries(db, id, before, limit)?)
}

/// Queues delivery `delivery` of subscription `id` again, as a new delivery
/// of the same event (same body, same event id) after everything queued.
pub async fn redeliver(db: &Db, journal: &Journal, actor: Uuid, id: Uuid, delivery: Uuid) -> Result<Delivery, ServiceError> {
    get(db, id)?;
    let d = webhook::delivery(db, id, delivery)?.ok_or(ServiceError::NotFound("delivery"))?;
    if d.state == DeliveryState::Pending {
        return Err(ServiceError::Conflict { code: "delivery_pending", message: "this delivery is still being sent".into() });
    }
    let again = Delivery { redelivery_of: Some(d.id), ..Delivery::pending(id, d.event_id, &d.event, d.body, Timestamp::now()) };
    let mut b = Batch::new();
    webhook::put_delivery(&mut b, &again)?;
    AuditEvent::new(actor.to_string(), "webhook.redeliver", format!("{id} {delivery}")).add_to(&mut b)?;
    journal.commit(b).await?;
    Ok(again)
}

/// The id of the subscription made from the `[alerts]` webhook settings:
/// the same on every start and node.
pub fn configured_alert_webhook_id() -> Uuid {
    Uuid::from_u128(0x0000_0000_0000_7000_8000_a1e7_0000_0001)
}

/// Makes (or brings up to date) the subscription the `[alerts]` settings
/// describe, so the deprecated settings keep working as one subscription
/// of the event webhooks. No change, no write.
pub async fn ensure_configured_alert_webhook(
    db: &Db,
    journal: &Journal,
    tap: &WebhookTap,
    url: &str,
    secret: &str,
) -> Result<(), ServiceError> {
    let id = configured_alert_webhook_id();
    let now = Timestamp::now();
    let events: Vec<String> =
        [EventKind::AlertRaised, EventKind::AlertAcknowledged, EventKind::AlertResolved].map(|k| k.name().to_string()).into();
    let current = webhook::get(db, id)?;
    let w = Webhook {
        id,
        url: url.to_string(),
        events,
        active: true,
        secret: secret.to_string(),
        created_at: current.as_ref().map_or(now, |c| c.created_at),
        created_by: None,
        updated_at: now,
        failing_since: current.as_ref().and_then(|c| c.failing_since),
        disabled_reason: None,
    };
    let same = current.as_ref().is_some_and(|c| c.url == w.url && c.secret == w.secret && c.events == w.events && c.active);
    if !same {
        let mut b = Batch::new();
        webhook::put(&mut b, &w)?;
        AuditEvent::new("system", "webhook.configure", format!("{id} from [alerts] webhook_url")).add_to(&mut b)?;
        journal.commit(b).await?;
        tap.reload()?;
    }
    Ok(())
}

/// Removes the subscription of the `[alerts]` settings once they are gone.
pub async fn remove_configured_alert_webhook(db: &Db, journal: &Journal, tap: &WebhookTap) -> Result<(), ServiceError> {
    let id = configured_alert_webhook_id();
    if webhook::get(db, id)?.is_some() {
        let mut b = Batch::new();
        webhook::delete(&mut b, id);
        AuditEvent::new("system", "webhook.delete", format!("{id}: [alerts] webhook_url is no longer set")).add_to(&mut b)?;
        journal.commit(b).await?;
        tap.reload()?;
    }
    Ok(())
}

/// Moves alert deliveries queued by an older version into the queue of the
/// `[alerts]` subscription, keeping their ids (so a node doing the same at
/// once writes the same records); without that subscription they are dropped.
/// How many were moved.
pub async fn move_old_alert_queue(db: &Db, journal: &Journal) -> Result<usize, ServiceError> {
    use utalk_actors::webhooks::{payloads, tap::event_body};
    use utalk_storage::model::alert;
    let target = webhook::get(db, configured_alert_webhook_id())?;
    let mut moved = 0;
    loop {
        let old = alert::webhooks(db, None, 500)?;
        if old.is_empty() {
            return Ok(moved);
        }
        let mut b = Batch::new();
        for o in &old {
            alert::remove_webhook(&mut b, o.id);
            let Some(w) = &target else { continue };
            let kind = payloads::alert_kind(&o.alert);
            let body = event_body(o.id, kind, o.next_attempt_at, payloads::alert(&o.alert, &o.store_name));
            // The same id as queued: receivers dedupe on it.
            let d = Delivery {
                id: o.id,
                attempts: o.attempts,
                next_attempt_at: o.next_attempt_at,
                last_error: o.last_error.clone(),
                ..Delivery::pending(w.id, o.id, kind.name(), body, Timestamp::now())
            };
            webhook::put_delivery(&mut b, &d)?;
            moved += 1;
        }
        journal.commit(b).await?;
    }
}
