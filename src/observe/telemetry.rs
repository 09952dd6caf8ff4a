//! Logging: one JSON object per line ([`JsonLines`]) on stdout and in the
//! optional log files, written through a buffer ([`Buffered`]).
//!
//! Fields whose names say they hold secrets are redacted by the format;
//! beyond that, secrets live in types whose `Debug` is redacted and request
//! bodies are never logged.

use crate::config::{Config, LogFormat};
use crate::observe::json_lines::{JsonLines, SpanFields};
use crate::observe::log_buffer::Buffered;
use tracing_subscriber::layer::SubscriberExt;
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
                    .fmt_fields(SpanFields)
                    .event_format(JsonLines::new(&config.environment))
                    .with_writer(Buffered::new(f))
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
            .fmt_fields(SpanFields)
            .event_format(JsonLines::new(&config.environment))
            .with_writer(Buffered::new(std::io::stdout()))
            .boxed(),
        LogFormat::Text => tracing_subscriber::fmt::layer().with_writer(Buffered::new(std::io::stdout())).boxed(),
    };
    let mut outputs: Vec<Boxed> = vec![stdout.with_filter(filter(stdout_filter)).boxed()];
    outputs.extend(file);
    outputs.extend(errors);
    let _ = tracing_subscriber::registry().with(outputs).with(otel).try_init();
}
