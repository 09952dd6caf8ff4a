//! Per-caller limits on REST, stated in the IETF `RateLimit-Policy` and
//! `RateLimit` headers (draft-ietf-httpapi-ratelimit-headers) on every
//! authenticated answer, and answered 429 `rate_limited` with `Retry-After`
//! past them. A caller is a staff user, an API key or a widget token's
//! conversation; each has `http.requests_per_minute` in a fixed window.

use crate::http::auth::limiter::{Limiter, Refused};
use crate::http::auth::Principal;
use crate::http::error::ApiError;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpRequest};
use std::time::Duration;

/// Widget conversations tracked in one window at most; staff and keys are
/// few (users, and at most `auth.max_api_keys` keys) and kept apart, so a
/// flood of widget tokens cannot crowd staff out.
const MAX_WIDGET_CALLERS: usize = 100_000;
/// Staff users and keys tracked in one window at most.
const MAX_STAFF_CALLERS: usize = 100_000;

/// The limits and what each caller used in the current window.
pub struct RateLimits {
    per_minute: u32,
    staff: Limiter,
    widgets: Limiter,
}

/// Where a caller stands, for the headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Requests a window allows.
    pub limit: u32,
    /// Requests left in this window.
    pub remaining: u32,
    /// Seconds until the window ends.
    pub reset: u64,
}

impl RateLimits {
    /// `per_minute` requests per caller and minute.
    pub fn new(per_minute: u32) -> RateLimits {
        let window = Duration::from_secs(60);
        RateLimits { per_minute, staff: Limiter::new(window, MAX_STAFF_CALLERS), widgets: Limiter::new(window, MAX_WIDGET_CALLERS) }
    }

    /// Counts a request of `caller`; past the limit, the quota (none left) and the seconds to wait.
    pub fn charge(&self, caller: &Principal) -> Result<Quota, (Quota, u64)> {
        let (limiter, key) = match caller {
            Principal::Staff { user_id, .. } => (&self.staff, user_id.to_string()),
            Principal::Widget { conversation_id } => (&self.widgets, conversation_id.to_string()),
        };
        match limiter.hit(&key, self.per_minute) {
            Ok((used, reset)) => Ok(Quota { limit: self.per_minute, remaining: self.per_minute.saturating_sub(used), reset }),
            Err(Refused::Limit(wait) | Refused::Full(wait)) => Err((Quota { limit: self.per_minute, remaining: 0, reset: wait }, wait)),
        }
    }
}

/// Charges `caller` for this request, when limits are configured: the error to answer past them.
pub fn charge(req: &HttpRequest, caller: &Principal) -> Result<(), ApiError> {
    let Some(limits) = req.app_data::<actix_web::web::Data<RateLimits>>() else { return Ok(()) };
    match limits.charge(caller) {
        Ok(q) => {
            req.extensions_mut().insert(q);
            Ok(())
        }
        Err((q, wait)) => {
            req.extensions_mut().insert(q);
            metrics::counter!("http_rate_limited_total").increment(1);
            Err(ApiError::rate_limited(
                "rate_limited",
                format!("more than {} requests this minute for this caller; retry in {wait} s", q.limit),
                wait,
            ))
        }
    }
}

/// The two headers for `q`.
pub fn headers(q: &Quota) -> [(HeaderName, HeaderValue); 2] {
    let policy = format!("\"per-caller\";q={};w=60", q.limit);
    let state = format!("\"per-caller\";r={};t={}", q.remaining, q.reset);
    [
        (HeaderName::from_static("ratelimit-policy"), HeaderValue::from_str(&policy).unwrap_or(HeaderValue::from_static(""))),
        (HeaderName::from_static("ratelimit"), HeaderValue::from_str(&state).unwrap_or(HeaderValue::from_static(""))),
    ]
}

/// Puts the caller's quota on the answer (success and refusal alike).
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let mut res = next.call(req).await?;
    let quota = res.request().extensions().get::<Quota>().copied();
    if let Some(q) = quota {
        for (name, value) in headers(&q) {
            res.headers_mut().insert(name, value);
        }
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn each_caller_has_its_own_window_and_the_headers_say_where_it_stands() {
        let limits = RateLimits::new(2);
        let a = Principal::Staff { user_id: Uuid::from_u128(1), role: utalk_storage::model::Role::Agent };
        let w = Principal::Widget { conversation_id: Uuid::from_u128(1) };
        assert_eq!(limits.charge(&a).unwrap().remaining, 1);
        assert_eq!(limits.charge(&a).unwrap().remaining, 0);
        let (q, wait) = limits.charge(&a).unwrap_err();
        assert!(q.remaining == 0 && (1..=60).contains(&wait));
        assert_eq!(limits.charge(&w).unwrap().remaining, 1, "a widget with the same id is another caller");
        let [(p, pv), (r, rv)] = headers(&Quota { limit: 2, remaining: 0, reset: 42 });
        assert_eq!((p.as_str(), pv.to_str().unwrap()), ("ratelimit-policy", "\"per-caller\";q=2;w=60"));
        assert_eq!((r.as_str(), rv.to_str().unwrap()), ("ratelimit", "\"per-caller\";r=0;t=42"));
    }
}
