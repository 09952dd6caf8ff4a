//! The API's version and what each version changed: when the server starts
//! with an API version newer than the one the data directory last served,
//! every socket that connects gets `api:changes`.

use super::ServiceError;
use utalk_actors::durability::JournalError;
use utalk_actors::Journal;
use utalk_storage::{Batch, Db, Map};

/// The API version this build serves.
pub const API_VERSION: &str = "1.3.0";

/// What each version changed, newest first, for `api:changes`.
pub const API_CHANGES: &[(&str, &[&str])] = &[
    (
        "1.3.0",
        &[
            "GET, PUT /api/v1/flags/{name} and GET /api/v1/flags: feature flags",
            "stores, products, /inventory/transactions and /alerts; alert:new and alert:updated on sockets",
            "GET /api/v1/reports/kpis, /reports/inventory, /reports and POST /reports/daily",
            "errors may carry error.details",
        ],
    ),
    ("1.2.0", &["the bot, escalation, assignment, close and ratings", "WhatsApp through Twilio and media"]),
    ("1.1.0", &["Socket.IO at /socket.io/"]),
];

const META_API_VERSION: &[u8] = b"api_version";

/// Records this build's API version when it differs from the one the data
/// directory last served, and answers the `api:changes` payload for the
/// sockets that connect (none for a new data directory, which has no
/// clients to tell, or when the version did not change).
pub async fn record(db: &Db, journal: &Journal) -> Result<Option<String>, ServiceError> {
    let before = db.get_raw(Map::Meta, META_API_VERSION)?.map(|v| String::from_utf8_lossy(&v).into_owned());
    if before.as_deref() == Some(API_VERSION) {
        return Ok(None);
    }
    let mut b = Batch::new();
    b.put_raw(Map::Meta, META_API_VERSION.to_vec(), API_VERSION.as_bytes().to_vec());
    // Each node tells its own sockets, so each keeps its own record.
    journal.commit_node(b).await.map_err(JournalError::from)?;
    let Some(before) = before else { return Ok(None) };
    let newer: Vec<&str> = API_CHANGES.iter().take_while(|(v, _)| *v != before).flat_map(|(_, changes)| changes.iter().copied()).collect();
    Ok(Some(serde_json::json!({ "version": API_VERSION, "previous": before, "changes": newer }).to_string()))
}
