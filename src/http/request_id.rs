//! Request ids: taken from a sane `X-Request-ID` or made anew, put on the
//! response, on the request's tracing span, and in every error body.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::error::InternalError;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::HttpMessage;
use std::time::Instant;
use tracing::field::Empty;
use tracing::Instrument;

/// The header carrying the id.
pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The id of the request being handled on this task, if any.
pub fn current() -> Option<String> {
    REQUEST_ID.try_with(|id| id.clone()).ok()
}

/// The client's address stored on a request (see [`crate::http::client_addr`]).
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub std::net::IpAddr);

/// The request id stored on a request.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Accepts a caller's id only if it is short and plain, so it is safe in logs and headers.
pub fn sane(candidate: &str) -> bool {
    !candidate.is_empty() && candidate.len() <= 128 && candidate.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

/// Monitoring agents and load balancer probes, by the start of their
/// User-Agent: their requests are not logged (the runbooks search people's).
const MONITORS: &[&str] = &[
    "kube-probe/",
    "Prometheus/",
    "Blackbox Exporter/",
    "GoogleHC/",
    "ELB-HealthChecker/",
    "Consul Health Check",
    "UptimeRobot/",
    "Pingdom.com_bot",
    "StatusCake",
    "Datadog Agent/",
    "Zabbix",
    "nagios-plugins",
];

/// Whether a request is from a monitoring agent.
fn monitor(user_agent: &str) -> bool {
    MONITORS.iter().any(|m| user_agent.starts_with(m))
}

fn quiet(path: &str) -> bool {
    path == "/metrics" || path == "/health" || path.starts_with("/health/") || path.starts_with("/socket.io")
}

/// Middleware: assigns the id, runs the request in its span, logs the outcome.
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = req
        .headers()
        .get(&HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| sane(v))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    req.extensions_mut().insert(RequestId(id.clone()));
    let peer = req.peer_addr().map(|a| a.ip());
    let client = match req.app_data::<actix_web::web::Data<crate::http::client_addr::TrustedProxies>>() {
        Some(p) => p.client(peer, req.headers()),
        None => peer,
    };
    if let Some(ip) = client {
        req.extensions_mut().insert(ClientIp(ip));
    }
    let method = metric_method(req.method());
    let path = req.path().to_owned();
    // Bounded: a log line must not carry a client's megabyte.
    let user_agent: String =
        req.headers().get(actix_web::http::header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("").chars().take(256).collect();
    // The route's template, never the raw path: ids in paths would make a label
    // (or span name) per request. It comes from the route table, so it is known before routing.
    let route = req.match_pattern().unwrap_or_else(|| "unmatched".to_string());
    // The otel.* fields name the exported span; logs leave them out.
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %method,
        path = %path,
        client_ip = %client.map(|c| c.to_string()).unwrap_or_default(),
        user_agent = %user_agent,
        // Filled by the authentication extractor, once it knows the caller.
        user_id = Empty,
        otel.name = %format_args!("{method} {route}"),
        otel.kind = "server",
        otel.status_code = Empty,
        http.route = %route,
        http.response.status_code = Empty,
    );
    crate::observe::traces::continue_remote(&span, req.headers());
    let started = Instant::now();
    let in_flight = metrics::gauge!("http_requests_in_flight");
    in_flight.increment(1.0);
    let header = HeaderValue::from_str(&id).ok();
    let res = REQUEST_ID
        .scope(id.clone(), async {
            match next.call(req).await {
                Ok(res) => Ok(res),
                // An error from an inner layer is rendered here, inside the scope, so its body carries the id.
                Err(e) => {
                    let mut rendered = e.error_response();
                    if let Some(v) = &header {
                        rendered.headers_mut().insert(HEADER, v.clone());
                    }
                    Err(InternalError::from_response(e.to_string(), rendered))
                }
            }
        })
        .instrument(span.clone())
        .await;
    in_flight.decrement(1.0);
    let mut res = res?;
    if let Some(v) = header {
        res.headers_mut().insert(HEADER, v);
    }
    if let Some(deprecations) = res.request().app_data::<actix_web::web::Data<crate::http::api_version::Deprecations>>().cloned() {
        if let Some(d) = deprecations.0.iter().find(|d| d.route == route) {
            for (name, value) in crate::http::api_version::headers(d) {
                res.headers_mut().insert(name, value);
            }
        }
    }
    span.record("http.response.status_code", res.status().as_u16());
    if res.status().is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
    let status = res.status().as_u16().to_string();
    metrics::counter!("http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status).increment(1);
    metrics::histogram!("http_request_duration_seconds", "method" => method.clone(), "route" => route)
        .record(started.elapsed().as_secs_f64());
    if !quiet(&path) && !monitor(&user_agent) {
        let status = res.status().as_u16();
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        span.in_scope(|| {
            if status >= 500 {
                tracing::error!(status, duration_ms = ms, "request failed");
            } else {
                tracing::info!(status, duration_ms = ms, "request");
            }
        });
    }
    Ok(res)
}

/// The method as a metric label and span field: the standard ones by name,
/// anything else as `other`, so that made-up methods cannot make new series.
fn metric_method(m: &actix_web::http::Method) -> String {
    use actix_web::http::Method;
    const KNOWN: [Method; 9] = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::HEAD,
        Method::OPTIONS,
        Method::CONNECT,
        Method::TRACE,
    ];
    if KNOWN.contains(m) {
        m.as_str().to_owned()
    } else {
        "other".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_up_methods_are_one_label() {
        use actix_web::http::Method;
        assert_eq!(metric_method(&Method::POST), "POST");
        assert_eq!(metric_method(&Method::from_bytes(b"FOO").unwrap()), "other");
        assert_eq!(metric_method(&Method::from_bytes(b"get").unwrap()), "other");
    }

    #[test]
    fn only_plain_short_ids_are_accepted() {
        assert!(sane("abc-123_x.y:z"));
        assert!(!sane(""));
        assert!(!sane("has space"));
        assert!(!sane("new\nline"));
        assert!(!sane(&"a".repeat(129)));
    }
}
