//! Observability: Prometheus [`metrics`], logs ([`telemetry`], rotated
//! [`log_file`]s) and OpenTelemetry [`traces`].

pub mod log_file;
pub mod metrics;
pub mod telemetry;
pub mod traces;
