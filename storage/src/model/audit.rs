use crate::batch::Batch;
use crate::codec::Record;
use crate::error::CodecError;
use crate::keys::Key;
use crate::maps::Map;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Something an operator or the system changed, kept for review.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    /// Event id.
    pub id: Uuid,
    /// When it happened.
    pub at: Timestamp,
    /// Who did it (`cli`, a user id, `system`).
    pub actor: String,
    /// What was done, e.g. `user.create`.
    pub action: String,
    /// What it was done to.
    pub target: String,
}

impl Record for AuditEvent {
    const KIND: &'static str = "audit_event";
}

impl AuditEvent {
    /// A new event happening now.
    pub fn new(actor: impl Into<String>, action: impl Into<String>, target: impl Into<String>) -> Self {
        Self { id: Uuid::now_v7(), at: Timestamp::now(), actor: actor.into(), action: action.into(), target: target.into() }
    }
    /// Adds the event to `batch`.
    pub fn add_to(&self, batch: &mut Batch) -> Result<(), CodecError> {
        batch.put(Map::Audit, Key::new().i64(self.at.millis()).uuid(self.id), self)?;
        Ok(())
    }
}
