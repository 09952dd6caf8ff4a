//! End-to-end tests against the real `utalk` binary.

mod auth;
mod backup;
mod bad_input;
mod cli;
mod cluster;
mod cluster_jobs;
mod cluster_nodes;
mod cluster_tls;
mod conversations;
mod durability;
mod flags;
mod hardening;
mod helpers;
mod inventory;
mod jobs;
mod messages;
mod metrics;
mod nats;
mod ops;
mod platform;
mod reports;
mod secrets;
mod socket;
mod socket_limits;
mod traces;
