//! The utalk server: configuration, command line, HTTP routes, auth, telemetry.

pub mod api_version;
pub mod app;
pub mod auth;
pub mod cli;
pub mod client_addr;
pub mod cluster_log;
pub mod config;
pub mod error;
pub mod export;
pub mod flags;
pub mod log_file;
pub mod metrics;
pub mod report;
pub mod request_id;
pub mod routes;
pub mod secrets;
pub mod services;
pub mod state;
pub mod telemetry;
pub mod traces;
pub mod twilio_form;
pub mod whatsapp;
