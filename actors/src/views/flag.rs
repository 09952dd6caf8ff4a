//! API views of the flag records: the shape REST and the socket show, kept apart
//! from the disk records so a rename here cannot change what is stored.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utalk_storage::model::flag as storage;
use utalk_storage::Timestamp;
use utoipa::ToSchema;
use uuid::Uuid;

/// One flag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Flag {
    /// Name (`[a-z0-9_.-]`, 1–64).
    pub name: String,
    /// What it is for.
    #[serde(default)]
    pub description: String,
    /// Master switch: off means off for everyone, whatever else is set.
    pub enabled: bool,
    /// Share of users (0–100) it is on for, chosen by a stable hash of flag and user.
    pub percent: u8,
    /// Per workspace: on or off whatever the percentage.
    #[serde(default)]
    pub workspaces: BTreeMap<String, bool>,
    /// Per user: on or off whatever the workspace or percentage.
    #[serde(default)]
    pub users: BTreeMap<Uuid, bool>,
    /// Incremented by every change.
    pub version: u64,
    /// When it last changed.
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
    /// Who changed it.
    pub updated_by: String,
}

impl From<storage::Flag> for Flag {
    fn from(r: storage::Flag) -> Self {
        Self {
            name: r.name,
            description: r.description,
            enabled: r.enabled,
            percent: r.percent,
            workspaces: r.workspaces,
            users: r.users,
            version: r.version,
            updated_at: r.updated_at,
            updated_by: r.updated_by,
        }
    }
}
