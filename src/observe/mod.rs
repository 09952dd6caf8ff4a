//! Observability: Prometheus [`metrics`], logs ([`telemetry`] in the
//! [`json_lines`] format, through a [`log_buffer`], rotated [`log_file`]s) and OpenTelemetry [`traces`].

pub mod json_lines;
pub mod log_buffer;
pub mod log_file;
pub mod metrics;
pub mod telemetry;
pub mod traces;
