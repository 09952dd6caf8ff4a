//! Stock alerts: one per store, product and kind while it is not resolved.

use crate::batch::Batch;
use crate::codec::Record;
use crate::db::Db;
use crate::error::{CodecError, StoreError};
use crate::keys::{Key, KeyReader};
use crate::maps::Map;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// A product's stock is below zero.
    NegativeStock,
    /// A product's stock is at or below its low-stock threshold.
    LowStock,
}

impl AlertKind {
    const fn code(self) -> u8 {
        match self {
            AlertKind::NegativeStock => 1,
            AlertKind::LowStock => 2,
        }
    }
    /// How urgent alerts of this kind are.
    pub const fn severity(self) -> Severity {
        match self {
            AlertKind::NegativeStock => Severity::Critical,
            AlertKind::LowStock => Severity::Warning,
        }
    }
}

/// How urgent an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Act now.
    Critical,
    /// Act soon.
    Warning,
}

/// Where an alert is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    /// Raised, nobody has taken it yet.
    Open,
    /// Someone took it; it stays until resolved.
    Acknowledged,
    /// Over: stock was restored, or someone closed it.
    Resolved,
}

/// One alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    /// Id (UUIDv7).
    pub id: Uuid,
    /// Kind.
    pub kind: AlertKind,
    /// Severity.
    pub severity: Severity,
    /// Status.
    pub status: AlertStatus,
    /// The store.
    pub store_id: Uuid,
    /// The product.
    pub sku: String,
    /// The stock when it was raised.
    pub stock: i64,
    /// For people.
    pub message: String,
    /// Raised.
    pub opened_at: Timestamp,
    /// Acknowledged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged_at: Option<Timestamp>,
    /// By whom.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged_by: Option<Uuid>,
    /// Resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<Timestamp>,
    /// By whom; none when stock was restored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_by: Option<Uuid>,
}

impl Record for Alert {
    const KIND: &'static str = "alert";
}

impl Alert {
    /// A new open alert of `kind` for `sku` in `store` at `stock`.
    pub fn new(kind: AlertKind, store_id: Uuid, store_name: &str, sku: &str, stock: i64, now: Timestamp) -> Alert {
        let message = match kind {
            AlertKind::NegativeStock => format!("{sku} is at {stock} in {store_name}: more was sold than is in stock"),
            AlertKind::LowStock => format!("{sku} is low in {store_name}: {stock} left"),
        };
        Alert {
            id: Uuid::now_v7(),
            kind,
            severity: kind.severity(),
            status: AlertStatus::Open,
            store_id,
            sku: sku.to_string(),
            stock,
            message,
            opened_at: now,
            acknowledged_at: None,
            acknowledged_by: None,
            resolved_at: None,
            resolved_by: None,
        }
    }
}

fn open_key(kind: AlertKind, store: Uuid, sku: &str) -> Result<Key, CodecError> {
    Key::new().u8(kind.code()).uuid(store).str(sku)
}

/// The unresolved alert of `kind` for `sku` in `store`, if any.
pub fn unresolved(db: &Db, kind: AlertKind, store: Uuid, sku: &str) -> Result<Option<Alert>, StoreError> {
    match db.get_raw(Map::OpenalertId, open_key(kind, store, sku)?)? {
        Some(v) => get(db, KeyReader::new(&v).uuid()?),
        None => Ok(None),
    }
}

/// Reads an alert.
pub fn get(db: &Db, id: Uuid) -> Result<Option<Alert>, StoreError> {
    db.get(Map::Alerts, Key::new().uuid(id))
}

/// Adds the write of `a` to `batch`, keeping the index of unresolved alerts in step.
pub fn put(batch: &mut Batch, a: &Alert) -> Result<(), CodecError> {
    batch.put(Map::Alerts, Key::new().uuid(a.id), a)?;
    let k = open_key(a.kind, a.store_id, &a.sku)?.into_bytes();
    if a.status == AlertStatus::Resolved {
        batch.delete_raw(Map::OpenalertId, k);
    } else {
        batch.put_raw(Map::OpenalertId, k, Key::new().uuid(a.id).into_bytes());
    }
    Ok(())
}

/// Alerts older than `before` (newest first), optionally only those with `status`, at most `limit`.
///
/// Reads at most 10,000 alerts per call: returns the page and the id to
/// continue before, if more may follow.
pub fn list(db: &Db, status: Option<AlertStatus>, before: Option<Uuid>, limit: usize) -> Result<(Vec<Alert>, Option<Uuid>), StoreError> {
    const SCAN_BUDGET: usize = 10_000;
    let mut cursor = before.map(|b| Key::new().uuid(b).into_bytes());
    let (mut out, mut scanned) = (Vec::new(), 0usize);
    loop {
        let chunk = db.scan_raw_rev(Map::Alerts, cursor.as_deref(), 256)?;
        if chunk.is_empty() {
            return Ok((out, None));
        }
        for (k, v) in chunk {
            scanned += 1;
            let a: Alert = crate::codec::decode(&v)?;
            let id = a.id;
            if status.is_none_or(|s| a.status == s) {
                out.push(a);
                if out.len() == limit {
                    return Ok((out, Some(id)));
                }
            }
            if scanned >= SCAN_BUDGET {
                return Ok((out, Some(id)));
            }
            cursor = Some(k);
        }
    }
}

/// Removes resolved alerts resolved before `cutoff`, at most `limit` per call; returns how many.
pub fn purge_resolved(db: &Db, batch: &mut Batch, cutoff: Timestamp, limit: usize) -> Result<usize, StoreError> {
    let mut n = 0;
    let mut cursor = Vec::new();
    loop {
        let chunk = db.scan::<Alert>(Map::Alerts, &[], &cursor, 1_000)?;
        let Some((last, _)) = chunk.last() else { return Ok(n) };
        cursor = Key::new().bytes(last).u8(0).into_bytes();
        for (k, a) in chunk {
            // Ids follow the opening time: past the cutoff, nothing older is left.
            if n >= limit || a.opened_at >= cutoff {
                return Ok(n);
            }
            if a.status == AlertStatus::Resolved && a.resolved_at.is_some_and(|r| r < cutoff) {
                batch.delete_raw(Map::Alerts, k);
                n += 1;
            }
        }
    }
}

/// Every unresolved alert.
pub fn all_unresolved(db: &Db) -> Result<Vec<Alert>, StoreError> {
    let mut out = Vec::new();
    for (_, v) in db.scan_raw(Map::OpenalertId, &[], &[], usize::MAX)? {
        if let Some(a) = get(db, KeyReader::new(&v).uuid()?)? {
            out.push(a);
        }
    }
    Ok(out)
}

/// What an alert webhook says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AlertEvent {
    /// Raised.
    #[serde(rename = "alert.raised")]
    Raised,
    /// Acknowledged by someone.
    #[serde(rename = "alert.acknowledged")]
    Acknowledged,
    /// Resolved, by hand or by restored stock.
    #[serde(rename = "alert.resolved")]
    Resolved,
}

impl AlertEvent {
    /// The event for `alert` as it now stands.
    pub fn of(alert: &Alert) -> AlertEvent {
        match alert.status {
            AlertStatus::Open => AlertEvent::Raised,
            AlertStatus::Acknowledged => AlertEvent::Acknowledged,
            AlertStatus::Resolved => AlertEvent::Resolved,
        }
    }
}

/// An alert webhook still to deliver: written in the batch that changes the alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookDelivery {
    /// Id (UUIDv7: deliveries go out in the order they were written); sent as `X-Utalk-Delivery`.
    pub id: Uuid,
    /// What happened.
    pub event: AlertEvent,
    /// The alert as it was then.
    pub alert: Alert,
    /// The store's name.
    pub store_name: String,
    /// Failed attempts so far.
    pub attempts: u32,
    /// Not before.
    pub next_attempt_at: Timestamp,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
}

impl Record for WebhookDelivery {
    const KIND: &'static str = "webhook_delivery";
}

/// Adds the write of `d` to `batch`.
pub fn put_webhook(batch: &mut Batch, d: &WebhookDelivery) -> Result<(), CodecError> {
    batch.put(Map::AlertWebhooks, Key::new().uuid(d.id), d)?;
    Ok(())
}

/// Adds "`id` is delivered (or given up)" to `batch`.
pub fn remove_webhook(batch: &mut Batch, id: Uuid) {
    batch.delete(Map::AlertWebhooks, Key::new().uuid(id));
}

/// Deliveries waiting, oldest first, after `after`, at most `limit`.
pub fn webhooks(db: &Db, after: Option<Uuid>, limit: usize) -> Result<Vec<WebhookDelivery>, StoreError> {
    let start = after.map(|a| Key::new().uuid(a).u8(0).into_bytes()).unwrap_or_default();
    Ok(db.scan::<WebhookDelivery>(Map::AlertWebhooks, &[], &start, limit)?.into_iter().map(|(_, d)| d).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::DbOptions;

    #[test]
    fn alerts_page_newest_first_and_old_resolved_ones_are_purged() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open(dir.path(), &DbOptions::default()).expect("open");
        let mut b = Batch::new();
        let mut ids = Vec::new();
        for i in 0..5i64 {
            let mut a = Alert::new(AlertKind::LowStock, Uuid::nil(), "S", &format!("SKU-{i}"), 1, Timestamp(1_000 * i));
            a.id = Uuid::new_v7(uuid::Timestamp::from_unix(uuid::NoContext, i as u64 + 1, 0));
            if i < 3 {
                a.status = AlertStatus::Resolved;
                a.resolved_at = Some(Timestamp(1_000 * i + 500));
            }
            put(&mut b, &a).expect("put");
            ids.push(a.id);
        }
        db.write_group([&b], true).expect("write");

        let (page, next) = list(&db, None, None, 2).expect("list");
        assert_eq!(page.iter().map(|a| a.id).collect::<Vec<_>>(), vec![ids[4], ids[3]]);
        let (rest, end) = list(&db, None, next, 10).expect("list");
        assert_eq!(rest.iter().map(|a| a.id).collect::<Vec<_>>(), vec![ids[2], ids[1], ids[0]]);
        assert_eq!(end, None);
        let (open, _) = list(&db, Some(AlertStatus::Open), None, 10).expect("list");
        assert_eq!(open.len(), 2);

        // Resolved before 2.2 s: the first two go; the third was resolved after, the open ones stay.
        let mut b = Batch::new();
        assert_eq!(purge_resolved(&db, &mut b, Timestamp(2_200), 100).expect("purge"), 2);
        db.write_group([&b], true).expect("write");
        let (left, _) = list(&db, None, None, 10).expect("list");
        assert_eq!(left.iter().map(|a| a.id).collect::<Vec<_>>(), vec![ids[4], ids[3], ids[2]]);
    }
}
