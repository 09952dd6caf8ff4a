//! Deprecated routes (the API's version and what each version changed are
//! in `services::api_version`).
//!
//! Routes listed in `[[api.deprecations]]` answer `Deprecation`, `Sunset`
//! and `Link` headers.

use crate::config::ApiDeprecation;
use actix_web::http::header::{HeaderName, HeaderValue, HttpDate};
use std::time::{Duration, UNIX_EPOCH};
use utalk_storage::Timestamp;

pub use crate::services::api_version::API_VERSION;

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
