//! Event webhooks: integrators' subscriptions and the deliveries made for
//! them. A delivery is written in the batch of the change it reports, so a
//! crash loses none and no delivery exists for a change that was not stored.
//! Deliveries of one subscription go out in id (UUIDv7, so creation) order;
//! the pending index holds the ones still to send.

use crate::batch::Batch;
use crate::codec::Record;
use crate::db::Db;
use crate::error::{CodecError, StoreError};
use crate::keys::{Key, KeyReader};
use crate::maps::Map;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A subscription: where events of the listed kinds are POSTed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    /// Id.
    pub id: Uuid,
    /// The receiver (http or https).
    pub url: String,
    /// Event names it receives (`message.created`, ...).
    pub events: Vec<String>,
    /// Whether events are queued and sent.
    pub active: bool,
    /// Key of the signatures; shown once, when the subscription is made.
    pub secret: String,
    /// When it was made.
    pub created_at: Timestamp,
    /// Who made it; `None` for the one made from the `[alerts]` settings.
    pub created_by: Option<Uuid>,
    /// Last change.
    pub updated_at: Timestamp,
    /// Since when every attempt has failed (cleared by a success).
    #[serde(default)]
    pub failing_since: Option<Timestamp>,
    /// Why the server turned it off, if it did.
    #[serde(default)]
    pub disabled_reason: Option<String>,
}

impl Record for Webhook {
    const KIND: &'static str = "webhook";
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Still to send (or to retry).
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// Refused for good, or retried for the whole retry period.
    Failed,
}

/// One event for one subscription, with its attempts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    /// Id (UUIDv7); sent as `X-Utalk-Delivery`.
    pub id: Uuid,
    /// Subscription.
    pub webhook_id: Uuid,
    /// The event's id, the same in every subscription's delivery of it and in redeliveries.
    pub event_id: Uuid,
    /// Event name.
    pub event: String,
    /// The JSON body: the same bytes on every attempt.
    pub body: String,
    /// Queued at.
    pub created_at: Timestamp,
    /// Where it stands.
    pub state: DeliveryState,
    /// Attempts so far.
    pub attempts: u32,
    /// Not before.
    pub next_attempt_at: Timestamp,
    /// Last attempt.
    #[serde(default)]
    pub last_attempt_at: Option<Timestamp>,
    /// The receiver's last status code.
    #[serde(default)]
    pub response_code: Option<u16>,
    /// Why the last attempt failed.
    #[serde(default)]
    pub last_error: Option<String>,
    /// When the receiver took it.
    #[serde(default)]
    pub delivered_at: Option<Timestamp>,
    /// The delivery this one sends again, if it is a redelivery.
    #[serde(default)]
    pub redelivery_of: Option<Uuid>,
}

impl Record for Delivery {
    const KIND: &'static str = "webhook_event_delivery";
}

impl Delivery {
    /// A new delivery of event `event_id` to `webhook`, due at once.
    pub fn pending(webhook: Uuid, event_id: Uuid, event: &str, body: String, now: Timestamp) -> Delivery {
        Delivery {
            id: Uuid::now_v7(),
            webhook_id: webhook,
            event_id,
            event: event.to_string(),
            body,
            created_at: now,
            state: DeliveryState::Pending,
            attempts: 0,
            next_attempt_at: now,
            last_attempt_at: None,
            response_code: None,
            last_error: None,
            delivered_at: None,
            redelivery_of: None,
        }
    }
}

fn delivery_key(webhook: Uuid, id: Uuid) -> Key {
    Key::new().uuid(webhook).uuid(id)
}

/// Reads a subscription.
pub fn get(db: &Db, id: Uuid) -> Result<Option<Webhook>, StoreError> {
    db.get(Map::Webhooks, Key::new().uuid(id))
}

/// Subscriptions in id order after `after`, at most `limit`.
pub fn list(db: &Db, after: Option<Uuid>, limit: usize) -> Result<Vec<Webhook>, StoreError> {
    let start = after.map(|a| Key::new().uuid(a).u8(0).into_bytes()).unwrap_or_default();
    Ok(db.scan::<Webhook>(Map::Webhooks, &[], &start, limit)?.into_iter().map(|(_, w)| w).collect())
}

/// Adds the write of `w` to `batch`.
pub fn put(batch: &mut Batch, w: &Webhook) -> Result<(), CodecError> {
    batch.put(Map::Webhooks, Key::new().uuid(w.id), w)?;
    Ok(())
}

/// Adds the removal of subscription `id` to `batch`. Nothing sends for a
/// subscription that is gone; its queue and delivery log go with the
/// retention job, in bounded chunks, rather than in this one write.
pub fn delete(batch: &mut Batch, id: Uuid) {
    batch.delete(Map::Webhooks, Key::new().uuid(id));
}

/// Adds delivery `d` (new or changed) to `batch`, keeping the queue in step.
pub fn put_delivery(batch: &mut Batch, d: &Delivery) -> Result<(), CodecError> {
    let key = delivery_key(d.webhook_id, d.id);
    batch.put(Map::WebhookDeliveries, key.clone(), d)?;
    match d.state {
        DeliveryState::Pending => batch.put_raw(Map::WebhookPending, key.into_bytes(), Vec::new()),
        _ => batch.delete(Map::WebhookPending, key),
    };
    Ok(())
}

/// One delivery.
pub fn delivery(db: &Db, webhook: Uuid, id: Uuid) -> Result<Option<Delivery>, StoreError> {
    db.get(Map::WebhookDeliveries, delivery_key(webhook, id))
}

/// The subscription's oldest delivery still to send.
pub fn first_pending(db: &Db, webhook: Uuid) -> Result<Option<Delivery>, StoreError> {
    let prefix = Key::new().uuid(webhook).into_bytes();
    let Some((k, _)) = db.scan_raw(Map::WebhookPending, &prefix, &[], 1)?.into_iter().next() else {
        return Ok(None);
    };
    let mut r = KeyReader::new(&k);
    let (w, id) = (r.uuid()?, r.uuid()?);
    delivery(db, w, id)
}

/// The subscription's deliveries newest first, before `before`, at most `limit`.
pub fn deliveries(db: &Db, webhook: Uuid, before: Option<Uuid>, limit: usize) -> Result<Vec<Delivery>, StoreError> {
    let prefix = Key::new().uuid(webhook).into_bytes();
    let before = match before {
        Some(b) => delivery_key(webhook, b).into_bytes(),
        // Just past the subscription's last possible key.
        None => Key::new().uuid(webhook).bytes(&[0xff; 17]).into_bytes(),
    };
    db.scan_raw_rev_prefix(Map::WebhookDeliveries, &prefix, &before, limit)?
        .into_iter()
        .map(|(_, v)| Ok(crate::codec::decode(&v)?))
        .collect()
}

/// Adds the removal of deliveries queued before `before` to `batch`, at
/// most `limit` of them: how many. Pending ones stay, whatever their age
/// (the sender ends them), unless their subscription is gone.
pub fn prune(db: &Db, batch: &mut Batch, before: Timestamp, limit: usize) -> Result<usize, StoreError> {
    let live: std::collections::HashSet<Uuid> = list(db, None, usize::MAX)?.into_iter().map(|w| w.id).collect();
    let mut n = 0;
    let mut start = Vec::new();
    while n < limit {
        let page = db.scan::<Delivery>(Map::WebhookDeliveries, &[], &start, 1_000)?;
        let Some((last, _)) = page.last() else { break };
        start = last.clone();
        start.push(0);
        let full = page.len() == 1_000;
        for (k, d) in page {
            let finished = d.state != DeliveryState::Pending || !live.contains(&d.webhook_id);
            if n < limit && finished && d.created_at < before {
                // A pending one of a deleted subscription leaves the queue too (same key).
                batch.delete_raw(Map::WebhookPending, k.clone());
                batch.delete_raw(Map::WebhookDeliveries, k);
                n += 1;
            }
        }
        if !full {
            break;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::DbOptions;

    fn delivery(webhook: Uuid, at: i64) -> Delivery {
        Delivery::pending(webhook, Uuid::now_v7(), "message.created", "{}".into(), Timestamp(at))
    }

    #[test]
    fn the_queue_gives_the_oldest_pending_and_the_log_pages_newest_first() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open(dir.path(), &DbOptions::default()).expect("open");
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let mut batch = Batch::new();
        let ds: Vec<Delivery> = (0..5).map(|i| delivery(a, i)).collect();
        for d in &ds {
            put_delivery(&mut batch, d).expect("put");
        }
        put_delivery(&mut batch, &delivery(b, 0)).expect("put");
        db.write_group([&batch], false).expect("write");
        assert_eq!(first_pending(&db, a).expect("read").map(|d| d.id), Some(ds[0].id));
        assert_eq!(deliveries(&db, a, None, 100).expect("log").iter().filter(|d| d.state == DeliveryState::Pending).count(), 5);

        let mut done = ds[0].clone();
        done.state = DeliveryState::Delivered;
        let mut batch = Batch::new();
        put_delivery(&mut batch, &done).expect("put");
        db.write_group([&batch], false).expect("write");
        assert_eq!(first_pending(&db, a).expect("read").map(|d| d.id), Some(ds[1].id));

        let page = deliveries(&db, a, None, 2).expect("page");
        assert_eq!(page.iter().map(|d| d.id).collect::<Vec<_>>(), vec![ds[4].id, ds[3].id]);
        let page = deliveries(&db, a, Some(ds[3].id), 10).expect("page");
        assert_eq!(page.iter().map(|d| d.id).collect::<Vec<_>>(), vec![ds[2].id, ds[1].id, ds[0].id]);
        assert_eq!(deliveries(&db, b, None, 10).expect("page").len(), 1);

        // Subscription `a` exists, `b` was deleted: its pending delivery goes too.
        let mut batch = Batch::new();
        let w = Webhook {
            id: a,
            url: "https://example.com".into(),
            events: vec!["message.created".into()],
            active: true,
            secret: "s".into(),
            created_at: Timestamp(0),
            created_by: None,
            updated_at: Timestamp(0),
            failing_since: None,
            disabled_reason: None,
        };
        put(&mut batch, &w).expect("put");
        db.write_group([&batch], false).expect("write");
        let mut batch = Batch::new();
        assert_eq!(prune(&db, &mut batch, Timestamp(10), 100).expect("prune"), 2, "the finished one and the orphan go");
        db.write_group([&batch], false).expect("write");
        assert_eq!(deliveries(&db, a, None, 10).expect("page").len(), 4);
        assert_eq!(deliveries(&db, b, None, 10).expect("page").len(), 0);
        assert_eq!(first_pending(&db, b).expect("queue"), None, "the orphan left the queue");
    }
}
