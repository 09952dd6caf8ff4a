//! The API's version, what each version changed, and deprecated routes.
//!
//! When the server starts with an API version newer than the one the data
//! directory last served, every socket that connects gets `api:changes`.
//! Routes listed in `[[api.deprecations]]` answer `Deprecation`, `Sunset`
//! and `Link` headers.

use crate::config::ApiDeprecation;
use actix_web::http::header::{HeaderName, HeaderValue, HttpDate};
use std::time::{Duration, UNIX_EPOCH};
use utalk_storage::{Batch, Db, Map, Timestamp};

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

/// When this build's API version differs from the one stored: the write that
/// records it, and the `api:changes` payload (none for a new data directory,
/// which has no clients to tell).
pub fn check(db: &Db) -> anyhow::Result<Option<(Batch, Option<String>)>> {
    let before = db.get_raw(Map::Meta, META_API_VERSION)?.map(|v| String::from_utf8_lossy(&v).into_owned());
    if before.as_deref() == Some(API_VERSION) {
        return Ok(None);
    }
    let mut b = Batch::new();
    b.put_raw(Map::Meta, META_API_VERSION.to_vec(), API_VERSION.as_bytes().to_vec());
    let Some(before) = before else { return Ok(Some((b, None))) };
    let newer: Vec<&str> = API_CHANGES.iter().take_while(|(v, _)| *v != before).flat_map(|(_, changes)| changes.iter().copied()).collect();
    Ok(Some((b, Some(serde_json::json!({ "version": API_VERSION, "previous": before, "changes": newer }).to_string()))))
}

fn http_date(t: Timestamp) -> String {
    HttpDate::from(UNIX_EPOCH + Duration::from_millis(t.millis().max(0) as u64)).to_string()
}

/// The routes `[[api.deprecations]]` lists, as the request middleware reads them.
#[derive(Debug, Clone, Default)]
pub struct Deprecations(pub Vec<ApiDeprecation>);

/// The headers a deprecated route answers with.
pub fn headers(d: &ApiDeprecation) -> Vec<(HeaderName, HeaderValue)> {
    let mut out = Vec::new();
    if let Some(t) = Timestamp::parse_rfc3339(&d.deprecated) {
        if let Ok(v) = HeaderValue::from_str(&format!("@{}", t.millis() / 1000)) {
            out.push((HeaderName::from_static("deprecation"), v));
        }
    }
    if let Some(t) = Timestamp::parse_rfc3339(&d.sunset) {
        if let Ok(v) = HeaderValue::from_str(&http_date(t)) {
            out.push((HeaderName::from_static("sunset"), v));
        }
    }
    if let Some(Ok(v)) = d.link.as_deref().map(|l| HeaderValue::from_str(&format!("<{l}>; rel=\"deprecation\"; type=\"text/html\""))) {
        out.push((HeaderName::from_static("link"), v));
    }
    out
}
