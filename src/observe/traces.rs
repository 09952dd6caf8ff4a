//! OpenTelemetry traces, exported over OTLP/HTTP (protobuf) when
//! `otlp_endpoint` (`UTALK_OTLP_ENDPOINT`) is set.
//!
//! Spans are the `tracing` spans the code already opens: `request` around
//! every HTTP request, `socket_event` around every Socket.IO event,
//! `conversation.*` in the conversation actor and `store.commit` for a write
//! through the store writer. The caller's span travels inside each actor
//! message, so one REST call or socket event is one trace down to the disk.
//! A W3C `traceparent` header on a request continues the caller's trace.

use crate::config::Config;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::KeyValue;
use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use std::sync::OnceLock;
use std::time::Duration;
use tracing::{Level, Metadata, Subscriber};
use tracing_subscriber::filter::FilterFn;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// Why traces cannot be exported.
#[derive(Debug, thiserror::Error)]
pub enum TraceSetupError {
    /// The exporter could not be built from the endpoint.
    #[error("cannot export traces to {endpoint}: {reason}")]
    Exporter {
        /// The configured endpoint.
        endpoint: String,
        /// What the exporter said.
        reason: String,
    },
}

/// The URL spans are posted to: the endpoint as given when it names the
/// traces path, else the collector's base URL with `/v1/traces` appended,
/// as OTLP/HTTP collectors expect.
pub fn traces_url(endpoint: &str) -> String {
    let base = endpoint.trim_end_matches('/');
    if base.ends_with("/v1/traces") {
        base.to_string()
    } else {
        format!("{base}/v1/traces")
    }
}

/// Spans of our own crates at debug and above (the per-actor spans are at
/// debug so they cost nothing when no traces are exported), other crates'
/// spans at info, and warnings and errors as span events.
fn wanted(meta: &Metadata<'_>) -> bool {
    if meta.is_span() {
        let ours = meta.target().starts_with("utalk");
        meta.level() <= &if ours { Level::DEBUG } else { Level::INFO }
    } else {
        meta.level() <= &Level::WARN
    }
}

/// The layer that turns spans into OpenTelemetry spans, when traces are configured.
pub fn layer<S>(config: &Config) -> Result<Option<impl Layer<S>>, TraceSetupError>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let Some(endpoint) = config.otlp_endpoint.as_deref() else { return Ok(None) };
    let url = traces_url(endpoint);
    let exporter = SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(url.clone())
        .with_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| TraceSetupError::Exporter { endpoint: url.clone(), reason: e.to_string() })?;
    let resource = Resource::builder()
        .with_service_name("utalk")
        .with_attributes([
            KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
            KeyValue::new("deployment.environment.name", config.environment.clone()),
            KeyValue::new("service.instance.id", config.node_id.clone().unwrap_or_else(|| "single".into())),
        ])
        .build();
    // A caller's sampling decision wins, so a sampled trace is never cut in two.
    let sampler = Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(config.otlp_sample_ratio)));
    let provider = SdkTracerProvider::builder().with_batch_exporter(exporter).with_sampler(sampler).with_resource(resource).build();
    let tracer = provider.tracer("utalk");
    let _ = PROVIDER.set(provider);
    Ok(Some(tracing_opentelemetry::layer().with_tracer(tracer).with_location(false).with_threads(false).with_filter(FilterFn::new(wanted))))
}

/// Sends the spans still queued; called once at exit.
pub fn shutdown() {
    if let Some(p) = PROVIDER.get() {
        if let Err(e) = p.shutdown() {
            eprintln!("utalk: flushing traces at exit failed: {e}");
        }
    }
}

struct Headers<'a>(&'a actix_web::http::header::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// Makes `span` continue the trace a W3C `traceparent` header names, if any.
pub fn continue_remote(span: &tracing::Span, headers: &actix_web::http::header::HeaderMap) {
    if PROVIDER.get().is_none() || !headers.contains_key("traceparent") {
        return;
    }
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let cx = TraceContextPropagator::new().extract(&Headers(headers));
    // A malformed header yields an empty context, which leaves the span a root.
    let _ = span.set_parent(cx);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_traces_path_is_appended_once() {
        assert_eq!(traces_url("http://127.0.0.1:4318"), "http://127.0.0.1:4318/v1/traces");
        assert_eq!(traces_url("http://127.0.0.1:4318/"), "http://127.0.0.1:4318/v1/traces");
        assert_eq!(traces_url("http://c:4318/v1/traces"), "http://c:4318/v1/traces");
    }
}
