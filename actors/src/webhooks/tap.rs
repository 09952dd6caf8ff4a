//! Where writers queue webhook deliveries: into the batch of the change the
//! event reports, so the delivery is stored if and only if the change is.
//!
//! The tap keeps the active subscriptions in memory (read from the store
//! every second and at once after a change on this node), so a write for
//! which nobody subscribed costs one atomic read and adds nothing to its
//! batch. A subscription made on another node of a cluster starts getting
//! events within a second.

use super::event::{mask_of, EventKind};
use crate::jobs::signal::JobSignal;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use utalk_storage::model::webhook::{self, Delivery};
use utalk_storage::{Batch, CodecError, Db, StoreError, Timestamp};
use uuid::Uuid;

/// Most subscriptions read into memory; the API allows fewer.
const MAX_LOADED: usize = 1_000;

/// The JSON body of an event: `{id, type, createdAt, data}`.
pub fn event_body(event_id: Uuid, kind: EventKind, at: Timestamp, data: serde_json::Value) -> String {
    serde_json::json!({ "id": event_id, "type": kind.name(), "createdAt": at.to_rfc3339(), "data": data }).to_string()
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Sub {
    id: Uuid,
    mask: u32,
}

/// Queues deliveries for the active subscriptions.
#[derive(Debug)]
pub struct WebhookTap {
    db: Db,
    subs: RwLock<Arc<[Sub]>>,
    /// The union of the active subscriptions' masks: the fast "nobody listens".
    wanted: AtomicU32,
    /// Wakes the sender: deliveries were queued or subscriptions changed.
    signal: Arc<JobSignal>,
}

impl WebhookTap {
    /// A tap over the subscriptions stored in `db`, read now.
    pub fn new(db: Db) -> Result<Arc<WebhookTap>, StoreError> {
        let tap = WebhookTap::none(db);
        tap.reload()?;
        Ok(tap)
    }

    /// A tap that queues nothing (tools that write without serving).
    pub fn none(db: Db) -> Arc<WebhookTap> {
        Arc::new(WebhookTap {
            db,
            subs: RwLock::new(Arc::from(Vec::new())),
            wanted: AtomicU32::new(0),
            signal: Arc::new(JobSignal::new(true)),
        })
    }

    /// What wakes the sender.
    pub fn signal(&self) -> Arc<JobSignal> {
        self.signal.clone()
    }

    /// Reads the active subscriptions again.
    pub fn reload(&self) -> Result<(), StoreError> {
        let subs: Vec<Sub> = webhook::list(&self.db, None, MAX_LOADED)?
            .into_iter()
            .filter(|w| w.active)
            .map(|w| Sub { id: w.id, mask: mask_of(&w.events) })
            .filter(|s| s.mask != 0)
            .collect();
        let wanted = subs.iter().fold(0, |m, s| m | s.mask);
        let changed = {
            let mut current = self.subs.write().unwrap_or_else(|p| p.into_inner());
            let changed = **current != *subs;
            *current = Arc::from(subs);
            changed
        };
        self.wanted.store(wanted, Ordering::Release);
        if changed {
            self.signal.notify();
        }
        Ok(())
    }

    /// Reads the subscriptions again every `every`, for changes made on other nodes.
    pub fn refresh_every(self: &Arc<Self>, every: Duration) {
        let tap = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(tap) = tap.upgrade() else { return };
                if let Err(e) = tap.reload() {
                    tracing::warn!(error = %e, "could not read the webhook subscriptions");
                }
            }
        });
    }

    /// Whether any active subscription wants `kind`.
    pub fn wants(&self, kind: EventKind) -> bool {
        self.wanted.load(Ordering::Acquire) & kind.bit() != 0
    }

    /// Adds one delivery of the event to each subscription that wants it.
    /// `data` is built only when someone does.
    pub fn add(
        &self,
        batch: &mut Batch,
        kind: EventKind,
        now: Timestamp,
        data: impl FnOnce() -> serde_json::Value,
    ) -> Result<(), CodecError> {
        if !self.wants(kind) {
            return Ok(());
        }
        let subs = self.subs.read().unwrap_or_else(|p| p.into_inner()).clone();
        let event_id = Uuid::now_v7();
        let body = event_body(event_id, kind, now, data());
        for s in subs.iter().filter(|s| s.mask & kind.bit() != 0) {
            let d = Delivery::pending(s.id, event_id, kind.name(), body.clone(), now);
            webhook::put_delivery(batch, &d)?;
        }
        // Before the batch is stored: the sender looks again shortly after if it finds nothing yet.
        self.signal.notify();
        Ok(())
    }
}
