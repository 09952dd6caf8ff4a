//! The hand-off between the actors that write durable jobs (outbox entries,
//! media downloads) and the actor that works them off.

use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::Notify;

/// Whether the jobs' channel is configured, and the worker's wake-up.
///
/// The jobs themselves are durable (a map in the store); this only says
/// "look again", so a missed wake-up costs at most one poll interval.
#[derive(Debug, Default)]
pub struct JobSignal {
    configured: AtomicBool,
    wake: Notify,
}

impl JobSignal {
    /// A signal for a channel that is (or is not) configured.
    pub fn new(configured: bool) -> Self {
        Self { configured: AtomicBool::new(configured), wake: Notify::new() }
    }
    /// Whether the channel is configured; new outbox entries wait as `not_configured` when not.
    pub fn configured(&self) -> bool {
        self.configured.load(Ordering::Relaxed)
    }
    /// Wakes the worker: a new job is durable.
    pub fn notify(&self) {
        // notify_one keeps one permit when nobody waits, so a wake-up that
        // races the worker's scan is not lost.
        self.wake.notify_one();
    }
    /// Waits for the next [`JobSignal::notify`].
    pub async fn notified(&self) {
        self.wake.notified().await;
    }
}
