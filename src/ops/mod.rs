//! What operators run: backups of the cluster's log ([`cluster_log`]),
//! exports of collections ([`export`]), KPI reports ([`report`]) and the
//! signing secret's generation and rotation ([`secrets`]).

pub mod cluster_log;
pub mod export;
pub mod report;
pub mod secrets;
