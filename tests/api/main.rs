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
mod disk_full;
mod durability;
mod flags;
mod helpers;
mod inventory;
mod jobs;
mod media_limits;
mod messages;
mod metrics;
mod nats;
mod ops;
mod platform;
mod reports;
mod socket;
mod traces;
