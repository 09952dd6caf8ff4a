//! Logging: one JSON object per line on stdout, carrying service, version and
//! environment, the fields of every span in scope (so a request's
//! `request_id` appears on everything logged while handling it) and the
//! event's own fields.
//!
//! Fields whose names say they hold secrets (password, token, secret,
//! authorization, cookie) are replaced by `[redacted]` whatever their value;
//! beyond that, secrets live in types whose `Debug` is redacted and request
//! bodies are never logged.

use crate::config::{Config, LogFormat};
use serde_json::{Map, Value};
use std::fmt;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Installs the global subscriber; later calls are ignored. With `traces`,
/// spans are also exported over OTLP when an endpoint is configured.
pub fn init(config: &Config, traces: bool) {
    // validate() has checked the filters; a bad one can only come from a caller that skipped it.
    let filter = |f: &str| EnvFilter::try_new(f).unwrap_or_else(|_| EnvFilter::new("info"));
    let stdout_filter = config.log_filter();
    // The file gets the JSON lines whatever stdout's format, so that it can be shipped as is.
    let lf = &config.log_file;
    let days = |d: u64| Some(std::time::Duration::from_secs(d.saturating_mul(86_400)));
    // The combined file, and the errors alone beside it (kept longer).
    type Boxed = Box<dyn Layer<tracing_subscriber::Registry> + Send + Sync>;
    let file_layer = |path: &std::path::Path, keep_days: u64, level: &str| -> Option<Boxed> {
        match crate::observe::log_file::RotatingFile::open(path, lf.max_bytes, lf.keep, days(keep_days)) {
            Ok(f) => Some(
                tracing_subscriber::fmt::layer()
                    .fmt_fields(JsonFields::new())
                    .event_format(JsonLines::new(&config.environment))
                    .with_writer(std::sync::Mutex::new(f))
                    .with_filter(filter(level))
                    .boxed(),
            ),
            Err(e) => {
                eprintln!("utalk: cannot open the log file {}: {e}; logging without it", path.display());
                None
            }
        }
    };
    let file = lf.path.as_ref().and_then(|p| file_layer(p, lf.keep_days, lf.level.as_deref().unwrap_or(stdout_filter)));
    let errors = lf.path.as_ref().and(lf.errors_file()).and_then(|p| file_layer(&p, lf.error_keep_days, "error"));
    let otel = if traces {
        crate::observe::traces::layer(config).unwrap_or_else(|e| {
            eprintln!("utalk: {e}; running without traces");
            None
        })
    } else {
        None
    };
    let stdout = match config.log_format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .fmt_fields(JsonFields::new())
            .event_format(JsonLines::new(&config.environment))
            .with_writer(std::io::stdout)
            .boxed(),
        LogFormat::Text => tracing_subscriber::fmt::layer().with_writer(std::io::stdout).boxed(),
    };
    let mut outputs: Vec<Boxed> = vec![stdout.with_filter(filter(stdout_filter)).boxed()];
    outputs.extend(file);
    outputs.extend(errors);
    let _ = tracing_subscriber::registry().with(outputs).with(otel).try_init();
}

/// Whether a field name suggests a secret.
pub fn is_sensitive(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    ["password", "token", "secret", "authorization", "cookie", "api_key", "apikey"].iter().any(|s| n.contains(s))
}

/// The JSON line format.
pub struct JsonLines {
    fixed: Map<String, Value>,
}

impl JsonLines {
    /// A format naming the service, its version and `environment`.
    pub fn new(environment: &str) -> Self {
        let mut fixed = Map::new();
        fixed.insert("service".into(), "utalk".into());
        fixed.insert("version".into(), env!("CARGO_PKG_VERSION").into());
        fixed.insert("environment".into(), environment.into());
        Self { fixed }
    }
}

struct Fields<'a>(&'a mut Map<String, Value>);

impl Fields<'_> {
    fn put(&mut self, field: &Field, v: Value) {
        let name = field.name();
        let v = if is_sensitive(name) { Value::String("[redacted]".into()) } else { v };
        self.0.insert(name.to_string(), v);
    }
}

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, format!("{value:?}").into());
    }
}

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let mut line = self.fixed.clone();
        line.insert("timestamp".into(), utalk_storage::Timestamp::now().to_rfc3339().into());
        line.insert("level".into(), event.metadata().level().as_str().into());
        line.insert("target".into(), event.metadata().target().into());
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let ext = span.extensions();
                if let Some(fields) = ext.get::<FormattedFields<N>>() {
                    if let Ok(Value::Object(map)) = serde_json::from_str::<Value>(fields.as_str()) {
                        for (k, v) in map.into_iter().filter(|(k, _)| !k.starts_with("otel.")) {
                            let v = if is_sensitive(&k) { Value::String("[redacted]".into()) } else { v };
                            line.insert(k, v);
                        }
                    }
                }
            }
        }
        event.record(&mut Fields(&mut line));
        let text = serde_json::to_string(&line).map_err(|_| fmt::Error)?;
        writeln!(writer, "{text}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_looking_names_are_sensitive() {
        for n in ["password", "refreshToken", "jwt_secret", "Authorization", "api_key"] {
            assert!(is_sensitive(n), "{n}");
        }
        for n in ["email", "request_id", "status"] {
            assert!(!is_sensitive(n), "{n}");
        }
    }
}
