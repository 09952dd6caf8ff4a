//! Browsers on other origins (`http.allowed_origins`): CORS for REST and for
//! Socket.IO long-polling, preflights included. Nothing is allowed unless
//! listed. Credentials (cookies) are never allowed: callers send bearer
//! tokens, which a page on another origin must hold already.

use crate::config::normalize_origin as normalize;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, ResponseError};
use std::collections::HashSet;

/// Methods a page on an allowed origin may use.
const METHODS: &str = "GET, POST, PUT, PATCH, DELETE";
/// Request headers it may send beyond the CORS-safelisted ones.
const HEADERS: [&str; 3] = ["authorization", "content-type", "x-request-id"];
/// Response headers its scripts may read.
const EXPOSED: &str = "X-Request-ID, Retry-After, RateLimit, RateLimit-Policy, Location, Deprecation, Sunset";
/// How long a browser may reuse a preflight's answer, seconds.
const MAX_AGE: &str = "600";

/// The origins allowed, as `scheme://host[:port]` in lower case.
#[derive(Debug, Clone, Default)]
pub struct AllowedOrigins(HashSet<String>);

/// Why a configured origin is refused.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not an origin such as https://shop.example or http://localhost:8080 (scheme and host, no path; `*` is not accepted)")]
pub struct BadOrigin(pub String);

impl AllowedOrigins {
    /// Parses the configured list.
    pub fn parse(list: &[String]) -> Result<AllowedOrigins, BadOrigin> {
        list.iter().map(|o| normalize(o).ok_or_else(|| BadOrigin(o.clone()))).collect::<Result<_, _>>().map(AllowedOrigins)
    }

    fn allows(&self, origin: &str) -> bool {
        !self.0.is_empty() && normalize(origin).is_some_and(|o| self.0.contains(&o))
    }
}

/// Whether every header a preflight asks for is one we allow.
fn headers_allowed(requested: Option<&HeaderValue>) -> bool {
    let Some(v) = requested else { return true };
    let Ok(v) = v.to_str() else { return false };
    v.split(',').map(|h| h.trim().to_ascii_lowercase()).filter(|h| !h.is_empty()).all(|h| HEADERS.contains(&h.as_str()))
}

fn decorate(headers: &mut HeaderMap, origin: &HeaderValue) {
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static(EXPOSED));
}

/// Answers preflights and marks responses to allowed origins.
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let origin = req.headers().get(header::ORIGIN).cloned();
    let allowed = match (&origin, req.app_data::<actix_web::web::Data<AllowedOrigins>>()) {
        (Some(o), Some(list)) => o.to_str().is_ok_and(|o| list.allows(o)),
        _ => false,
    };
    let preflight = req.method() == Method::OPTIONS && req.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if preflight && origin.is_some() {
        let method_ok = req
            .headers()
            .get(header::ACCESS_CONTROL_REQUEST_METHOD)
            .and_then(|m| m.to_str().ok())
            .is_some_and(|m| METHODS.split(", ").any(|x| x == m));
        let response = if allowed && method_ok && headers_allowed(req.headers().get(header::ACCESS_CONTROL_REQUEST_HEADERS)) {
            let mut r = HttpResponse::NoContent().finish();
            let h = r.headers_mut();
            if let Some(o) = &origin {
                decorate(h, o);
            }
            h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static(METHODS));
            h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("Authorization, Content-Type, X-Request-ID"));
            h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static(MAX_AGE));
            h.insert(header::VARY, HeaderValue::from_static("Origin"));
            r
        } else {
            // No CORS headers: the browser refuses the call. The body says why, for whoever reads it.
            let e = crate::http::error::ApiError::new(
                StatusCode::FORBIDDEN,
                "origin_not_allowed",
                "this origin, method or header is not allowed; list the origin in http.allowed_origins",
            );
            let mut r = e.error_response();
            r.headers_mut().insert(header::VARY, HeaderValue::from_static("Origin"));
            r
        };
        return Ok(req.into_response(response).map_into_right_body());
    }
    let mut res = next.call(req).await?;
    let h = res.headers_mut();
    // Caches must not hand one origin's answer to another.
    h.append(header::VARY, HeaderValue::from_static("Origin"));
    if let (true, Some(o)) = (allowed, &origin) {
        decorate(h, o);
    }
    Ok(res.map_into_left_body())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_scheme_and_host_only() {
        let list = AllowedOrigins::parse(&["https://Shop.example/".into(), "http://localhost:8080".into()]).unwrap();
        assert!(list.allows("https://shop.example"));
        assert!(list.allows("http://localhost:8080"));
        assert!(!list.allows("http://shop.example"), "the scheme is part of the origin");
        assert!(!list.allows("https://shop.example.evil.test"));
        assert!(!list.allows("null"));
        for bad in ["*", "shop.example", "https://shop.example/path", "ftp://x.example", "https://", "null", "https://a b"] {
            assert!(AllowedOrigins::parse(&[bad.into()]).is_err(), "{bad}");
        }
        assert!(!AllowedOrigins::default().allows("https://shop.example"), "nothing by default");
    }

    #[test]
    fn only_the_headers_we_take_pass_a_preflight() {
        assert!(headers_allowed(None));
        assert!(headers_allowed(Some(&HeaderValue::from_static("Authorization, content-type"))));
        assert!(!headers_allowed(Some(&HeaderValue::from_static("authorization, x-evil"))));
    }
}
