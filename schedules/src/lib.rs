//! utalk's recurring work: jobs fired by cron schedules (tokio-cron-scheduler),
//! each run recorded in the store and visible over REST.
//!
//! - [`scheduler`]: fires jobs on their schedules and on demand, catching
//!   up a missed run once after downtime.
//! - `job_actor`: each job's supervised actor, which does the run: never two
//!   at once, retried by policy, a panic recorded as a failed run and the
//!   actor restarted.
//! - [`backup`]: the backup job (take, verify, keep by age and count).
//! - [`daily_report`]: the daily operator report, HTML with SVG charts.
//! - [`data_migrations`]: background data migrations, run in steps from a
//!   resumable cursor while the server serves.
//! - [`kpi_rollup`]: recomputes the KPI hours marked dirty and their days.
//! - [`stock_scan`]: the negative- and low-stock scan of every store.
//! - [`retention`]: removes audit records and job history past their age limits.

pub mod backup;
pub mod daily_report;
pub mod data_migrations;
mod job;
mod job_actor;
pub mod kpi_rollup;
pub mod offsite_copy;
pub mod retention;
pub mod scheduler;
pub mod stock_scan;

pub use scheduler::{JobSpec, JobView, RunError, Scheduler, Task};
