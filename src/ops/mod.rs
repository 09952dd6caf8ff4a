//! What operators run: backups of the cluster's log ([`cluster_log`]),
//! exports of collections ([`export`]) and KPI reports ([`report`]).

pub mod cluster_log;
pub mod export;
pub mod report;
pub mod user_admin;
