//! The operations sections: log file, API versions, alerts, backups, jobs, retention.

use crate::config::secret::Secret;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogFileSection {
    /// The file (`UTALK_LOG_FILE__PATH`); unset: stdout only.
    pub path: Option<PathBuf>,
    /// Size at which it rotates (5 MB, as the system replaced).
    pub max_bytes: u64,
    /// Filter for the file alone, e.g. `warn` for an errors-only file; unset: the same as stdout.
    pub level: Option<String>,
    /// Rotated files kept (`<path>.1` newest … `<path>.<keep>`).
    pub keep: usize,
    /// Rotated files last written longer ago than this many days are removed.
    pub keep_days: u64,
    /// The errors-only file beside it; unset: `<path>` with `.log` made
    /// `.error.log` (else `.error` added). Rotated as `path` is.
    pub error_path: Option<PathBuf>,
    /// Rotated error files last written longer ago than this many days are removed.
    pub error_keep_days: u64,
}

impl Default for LogFileSection {
    fn default() -> Self {
        Self { path: None, max_bytes: 5 * 1024 * 1024, keep: 5, level: None, keep_days: 7, error_path: None, error_keep_days: 90 }
    }
}

impl LogFileSection {
    /// Where the errors go when there is a log file at all.
    pub fn errors_file(&self) -> Option<PathBuf> {
        if let Some(p) = &self.error_path {
            return Some(p.clone());
        }
        let path = self.path.as_ref()?;
        let name = path.file_name()?.to_string_lossy();
        let errors = match name.strip_suffix(".log") {
            Some(stem) => format!("{stem}.error.log"),
            None => format!("{name}.error"),
        };
        Some(path.with_file_name(errors))
    }
}

/// `[api]`: routes being retired.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiSection {
    /// Each answers `Deprecation`, `Sunset` and (with a link) `Link` headers.
    pub deprecations: Vec<ApiDeprecation>,
}

/// One deprecated route.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ApiDeprecation {
    /// The route's template as the API documents it, e.g. `/api/v1/conversations/{id}`.
    pub route: String,
    /// When it was deprecated (RFC 3339).
    pub deprecated: String,
    /// When it stops working (RFC 3339).
    pub sunset: String,
    /// Where to read what replaces it.
    pub link: Option<String>,
}

/// `[webhooks]`: event webhooks (subscriptions are made over the API).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhooksSection {
    /// Most subscriptions.
    pub max_subscriptions: usize,
    /// Longest wait for a receiver's answer, milliseconds.
    pub timeout_ms: u64,
    /// Delay before the first retry, milliseconds (doubles per attempt, with jitter, up to `backoff_max_ms`).
    pub backoff_base_ms: u64,
    /// Longest delay between two attempts, milliseconds.
    pub backoff_max_ms: u64,
    /// How long a delivery is retried before it is failed and the next one goes, seconds (3 days).
    pub retry_for_secs: u64,
    /// A subscription whose every attempt failed for this long is disabled, seconds (3 days).
    pub disable_after_secs: u64,
    /// Finished deliveries are kept this many days in the delivery log.
    pub keep_deliveries_days: u32,
    /// Allow receivers on loopback, private and link-local addresses (off: the
    /// server refuses to be pointed at its own network).
    pub allow_private_targets: bool,
}

impl Default for WebhooksSection {
    fn default() -> Self {
        Self {
            max_subscriptions: 50,
            timeout_ms: 10_000,
            backoff_base_ms: 10_000,
            backoff_max_ms: 3_600_000,
            retry_for_secs: 3 * 24 * 3600,
            disable_after_secs: 3 * 24 * 3600,
            keep_deliveries_days: 30,
            allow_private_targets: false,
        }
    }
}

/// `[alerts]`: the outbound alert webhook (deprecated: it becomes one event
/// webhook subscription to the `alert.*` events; see docs/webhooks.md).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertsSection {
    /// URL that receives every alert change as a signed JSON POST; unset: no webhook.
    pub webhook_url: Option<String>,
    /// Key of the signature (`X-Utalk-Signature: t=…,v1=…`); required with the URL, 16+ characters.
    pub webhook_secret: Option<Secret>,
    /// No longer used: `[webhooks]` timeout_ms applies. Accepted so old files still load.
    pub webhook_timeout_ms: u64,
    /// No longer used: deliveries are retried for `[webhooks]` retry_for_secs.
    pub webhook_max_attempts: u32,
    /// No longer used: `[webhooks]` backoff_base_ms applies.
    pub webhook_backoff_base_ms: u64,
}

impl Default for AlertsSection {
    fn default() -> Self {
        Self {
            webhook_url: None,
            webhook_secret: None,
            webhook_timeout_ms: 5_000,
            webhook_max_attempts: 20,
            webhook_backoff_base_ms: 1_000,
        }
    }
}

/// `[backup]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackupSection {
    /// Where backups go; default: beside the data directory, `<data_dir>-backups`.
    pub dir: Option<PathBuf>,
    /// Most backups kept.
    pub keep: usize,
    /// Backups older than this many days are removed (the newest is always kept).
    pub max_age_days: u64,
    /// Encrypted copies off the machine.
    pub offsite: OffsiteSection,
}

impl Default for BackupSection {
    fn default() -> Self {
        // 30 days of 15-minute backups.
        Self { dir: None, keep: 2_880, max_age_days: 30, offsite: OffsiteSection::default() }
    }
}

/// `[backup.offsite]`: each backup, encrypted, copied to a directory on
/// another mount (a network filesystem, a mounted object store), kept by age.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct OffsiteSection {
    /// Where the archives go; none: no off-machine copies.
    pub dir: Option<PathBuf>,
    /// 32 random bytes in base64 (`openssl rand -base64 32`); required with `dir`.
    pub key: Option<Secret>,
    /// Archives older than this many days are removed (the newest always stays).
    pub max_age_days: u64,
}

impl Default for OffsiteSection {
    fn default() -> Self {
        // The manual keeps media 90 days; an archive holds them.
        Self { dir: None, key: None, max_age_days: 90 }
    }
}

/// `[jobs]`: when each scheduled job runs, and how failures are retried.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct JobsSection {
    /// Cron (with seconds: `sec min hour day month weekday`) of the backup job.
    pub backup: String,
    /// Cron of the retention job.
    pub retention: String,
    /// Cron of the KPI rollup (recomputes the hours changed since its last run).
    pub kpi_rollup: String,
    /// Cron of the daily report (yesterday's, UTC).
    pub daily_report: String,
    /// Cron of the negative- and low-stock scan of every store.
    pub stock_negative: String,
    /// Cron of the background data migrations (each run works up to 50 s;
    /// once they are all done, a run is one read each). Was `contact_backfill`.
    #[serde(alias = "contact_backfill")]
    pub data_migrations: String,
    /// The share of the time, in percent (1 to 100), the background data
    /// migrations spend migrating; they pause the rest, so that serving comes first.
    pub data_migration_duty_percent: u8,
    /// Cron of the check that replaces the generated token signing key once
    /// it is `auth.jwt_rotate_days` old.
    pub secret_rotation: String,
    /// Cron of the copy of the latest backup off the machine (`[backup.offsite]`).
    pub offsite_copy: String,
    /// Attempts after a failed one.
    pub retries: u32,
    /// Seconds between attempts.
    pub retry_delay_secs: u64,
}

impl Default for JobsSection {
    fn default() -> Self {
        Self {
            backup: "0 */15 * * * *".into(),
            retention: "0 30 3 * * *".into(),
            kpi_rollup: "0 */5 * * * *".into(),
            daily_report: "0 15 0 * * *".into(),
            stock_negative: "0 * * * * *".into(),
            data_migrations: "30 * * * * *".into(),
            data_migration_duty_percent: 25,
            secret_rotation: "0 10 4 * * *".into(),
            // Hourly: the RPO for a lost machine is this plus the backups' 15 minutes.
            offsite_copy: "0 20 * * * *".into(),
            retries: 2,
            retry_delay_secs: 30,
        }
    }
}

/// `[retention]`: age limits of kept records.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionSection {
    /// Days audit records are kept (the system replaced kept them two years).
    pub audit_days: u64,
    /// Days job runs are kept.
    pub job_runs_days: u64,
    /// Days refused stock transactions and resolved stock alerts are kept.
    pub inventory_days: u64,
}

impl Default for RetentionSection {
    fn default() -> Self {
        Self { audit_days: 730, job_runs_days: 90, inventory_days: 365 }
    }
}
