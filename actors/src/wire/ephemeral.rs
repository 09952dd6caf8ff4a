//! Events that are not kept (typing, presence, stock alerts), as they
//! travel between nodes at most once.

use crate::cluster::ClusterError;
use serde::{Deserialize, Serialize};
use utalk_storage::model::Alert;
use uuid::Uuid;

/// An event that is not kept, as it travels between nodes.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Wire {
    /// Someone typing.
    Typing { kind: String, id: Option<Uuid>, typing: bool },
    /// A staff user's presence.
    Presence { user_id: Uuid, status: String },
    /// A stock alert raised or changed.
    Alert { alert: Alert, manager: Option<Uuid>, new: bool },
    /// A canned response made, changed or deleted. Added after the first
    /// release: a node of that release cannot read it and drops it (a
    /// console there shows the change at its next load).
    Canned { id: Uuid, change: String },
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Envelope {
    /// The node that published it, which does not take it back.
    pub node: String,
    /// The conversation or topic it is for.
    pub topic: Uuid,
    /// The event.
    pub event: Wire,
}

impl Envelope {
    /// As bytes.
    pub fn encode(&self) -> Result<Vec<u8>, ClusterError> {
        rmp_serde::to_vec_named(self).map_err(|e| ClusterError::Protocol(format!("cannot encode an event: {e}")))
    }
    /// From bytes.
    pub fn decode(bytes: &[u8]) -> Result<Envelope, ClusterError> {
        rmp_serde::from_slice(bytes).map_err(|e| ClusterError::Protocol(format!("cannot decode an event: {e}")))
    }
}
