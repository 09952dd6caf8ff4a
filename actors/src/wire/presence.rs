//! The staff a node has online, as each node sends it to the others.

use crate::cluster::ClusterError;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One node's list, as it travels.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct OnlineList {
    /// The node.
    pub node: String,
    /// Its staff online.
    pub online: Vec<Uuid>,
}

impl OnlineList {
    /// As bytes.
    pub fn encode(&self) -> Result<Vec<u8>, ClusterError> {
        rmp_serde::to_vec_named(self).map_err(|e| ClusterError::Protocol(format!("cannot encode an online staff list: {e}")))
    }
    /// From bytes.
    pub fn decode(bytes: &[u8]) -> Result<OnlineList, ClusterError> {
        rmp_serde::from_slice(bytes).map_err(|e| ClusterError::Protocol(format!("cannot decode an online staff list: {e}")))
    }
}
