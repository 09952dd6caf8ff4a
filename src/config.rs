//! Configuration: defaults, then the TOML file, then `UTALK_*` environment
//! variables, then command-line flags; validated before anything starts.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use utalk_actors::Durability;

pub use crate::ops::secrets::Secret;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable lines.
    Text,
}

/// Everything utalk can be told.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on (`UTALK_LISTEN`).
    pub listen: String,
    /// Data directory (`UTALK_DATA_DIR`).
    pub data_dir: PathBuf,
    /// Log filter, e.g. `info` or `utalk=debug,info` (`UTALK_LOG`); unset: the
    /// environment's entry in `[log_levels]`.
    pub log: Option<String>,
    /// Log filter per environment name, used when `log` is unset.
    pub log_levels: BTreeMap<String, String>,
    /// Log format (`UTALK_LOG_FORMAT`).
    pub log_format: LogFormat,
    /// Environment name written in every log line (`UTALK_ENVIRONMENT`).
    pub environment: String,
    /// Secret that signs access tokens (`UTALK_JWT_SECRET`); generated and kept in the database when unset.
    pub jwt_secret: Option<Secret>,
    /// Public URL Twilio calls, for signatures (`UTALK_PUBLIC_URL`).
    pub public_url: Option<String>,
    /// Twilio account SID (`UTALK_TWILIO_ACCOUNT_SID`).
    pub twilio_account_sid: Option<String>,
    /// Twilio auth token (`UTALK_TWILIO_AUTH_TOKEN`).
    pub twilio_auth_token: Option<Secret>,
    /// WhatsApp sender, e.g. `whatsapp:+14155238886` (`UTALK_TWILIO_FROM`).
    pub twilio_from: Option<String>,
    /// Twilio API base URL (`UTALK_TWILIO_API_BASE`).
    pub twilio_api_base: String,
    /// Hosts an inbound message's media is downloaded from with the account's
    /// credentials (`UTALK_TWILIO_MEDIA_HOSTS='["api.twilio.com"]'`); media
    /// elsewhere is not downloaded. Patterns: `host`, `*.domain`, an IP address.
    pub twilio_media_hosts: Vec<String>,
    /// OTLP/HTTP collector for traces, e.g. `http://127.0.0.1:4318` (`UTALK_OTLP_ENDPOINT`); unset: no traces.
    pub otlp_endpoint: Option<String>,
    /// Share of new traces kept, 0 to 1 (`UTALK_OTLP_SAMPLE_RATIO`); a caller's `traceparent` decision wins.
    pub otlp_sample_ratio: f64,
    /// Comma-separated `nats://` URLs; unset runs one node on its own (`UTALK_CLUSTER_URL`).
    pub cluster_url: Option<String>,
    /// Name of this node (`UTALK_NODE_ID`).
    pub node_id: Option<String>,
    /// Several nodes over NATS JetStream (used only with `cluster_url`).
    pub cluster: ClusterConfig,
    /// Storage.
    pub store: StoreConfig,
    /// Conversation actors.
    pub conversations: ConversationsConfig,
    /// HTTP server.
    pub http: HttpConfig,
    /// Authentication.
    pub auth: AuthConfig,
    /// Socket.IO endpoint.
    pub socket: SocketSection,
    /// Media store.
    pub media: MediaSection,
    /// Outbound WhatsApp delivery and inbound media downloads.
    pub delivery: DeliverySection,
    /// API key of the OpenAI-compatible model (`UTALK_OPENAI_API_KEY`).
    pub openai_api_key: Option<Secret>,
    /// The bot and agent assignment.
    pub bot: BotSection,
    /// Backups.
    pub backup: BackupSection,
    /// Job schedules.
    pub jobs: JobsSection,
    /// Age limits of kept records.
    pub retention: RetentionSection,
    /// Where stock alerts go besides sockets and the API.
    pub alerts: AlertsSection,
    /// Deprecated routes.
    pub api: ApiSection,
    /// An optional log file besides stdout, rotated by size.
    pub log_file: LogFileSection,
}

/// `[log_file]`: the same JSON lines as stdout, also written to a file rotated by size.
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
}

impl Default for LogFileSection {
    fn default() -> Self {
        Self { path: None, max_bytes: 5 * 1024 * 1024, keep: 5, level: None }
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

/// `[alerts]`: the outbound alert webhook.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertsSection {
    /// URL that receives every alert change as a signed JSON POST; unset: no webhook.
    pub webhook_url: Option<String>,
    /// Key of the HMAC-SHA256 signature (`X-Utalk-Signature: sha256=<hex>`); required with the URL, 16+ characters.
    pub webhook_secret: Option<Secret>,
    /// Longest wait for the receiver's answer, milliseconds.
    pub webhook_timeout_ms: u64,
    /// Attempts before a delivery is given up.
    pub webhook_max_attempts: u32,
    /// Delay before the first retry, milliseconds (doubles per attempt, with jitter, up to 10 minutes).
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
}

impl Default for BackupSection {
    fn default() -> Self {
        // 30 days of 15-minute backups.
        Self { dir: None, keep: 2_880, max_age_days: 30 }
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

impl Config {
    /// The backup directory.
    pub fn backup_dir(&self) -> PathBuf {
        if let Some(d) = &self.backup.dir {
            return d.clone();
        }
        let name = self.data_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "data".into());
        self.data_dir.with_file_name(format!("{name}-backups"))
    }
}

/// `[bot]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct BotSection {
    /// The knowledge file of the rule-based bot; default `<data_dir>/knowledge.toml`, written on first start.
    pub knowledge_file: Option<PathBuf>,
    /// Bot workers answering at once.
    pub workers: usize,
    /// Customer messages waiting for the bot before new ones are left unanswered.
    pub queue: usize,
    /// Longest wait for the model's answer, milliseconds.
    pub model_timeout_ms: u64,
    /// Model failures in a row that open its circuit breaker.
    pub breaker_failures: u32,
    /// Seconds the model is skipped (rules answer) once the breaker opens.
    pub breaker_cooldown_secs: u64,
    /// Open conversations per agent for automatic assignment.
    pub agent_capacity: usize,
    /// Hosts the model's API key may be sent to: the bot settings' base URL
    /// (changed over the API) must name one. Patterns: `host`, `*.domain`, an IP address.
    pub allowed_model_hosts: Vec<String>,
}

impl Default for BotSection {
    fn default() -> Self {
        Self {
            knowledge_file: None,
            workers: 2,
            queue: 10_000,
            model_timeout_ms: 8_000,
            breaker_failures: 3,
            breaker_cooldown_secs: 30,
            agent_capacity: 5,
            allowed_model_hosts: vec!["api.openai.com".into()],
        }
    }
}

/// `[media]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MediaSection {
    /// Largest media file, bytes (WhatsApp's own limit is 16 MB).
    pub max_bytes: u64,
    /// Accepted MIME types; `image/*` accepts the whole family.
    pub allowed_types: Vec<String>,
    /// Lifetime of signed media URLs, seconds.
    pub url_ttl_secs: u64,
    /// Secret that signs media URLs; generated and kept in the database when unset.
    pub url_secret: Option<Secret>,
    /// Uploads a minute per bearer token (a staff user, or a widget's conversation).
    pub uploads_per_minute: u32,
    /// Most files uploaded to one conversation.
    pub max_files_per_conversation: usize,
    /// Most bytes uploaded to one conversation.
    pub max_bytes_per_conversation: u64,
}

impl Default for MediaSection {
    fn default() -> Self {
        Self {
            max_bytes: 16 << 20,
            allowed_types: [
                "image/jpeg",
                "image/png",
                "image/webp",
                "image/gif",
                "audio/*",
                "video/mp4",
                "video/3gpp",
                "application/pdf",
                "text/plain",
                "text/vcard",
            ]
            .into_iter()
            .map(String::from)
            .collect(),
            url_ttl_secs: 3600,
            url_secret: None,
            uploads_per_minute: 30,
            max_files_per_conversation: 200,
            max_bytes_per_conversation: 256 << 20,
        }
    }
}

/// `[delivery]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeliverySection {
    /// Attempts before a message (or a media download) is given up as failed.
    pub max_attempts: u32,
    /// Delay before the first retry, milliseconds (doubles per attempt, with jitter).
    pub backoff_base_ms: u64,
    /// Longest delay between retries, milliseconds.
    pub backoff_max_ms: u64,
    /// Longest wait for Twilio's answer, milliseconds.
    pub request_timeout_ms: u64,
    /// Conversations sent to at once.
    pub concurrency: usize,
    /// Failures in a row that open the circuit breaker.
    pub breaker_failures: u32,
    /// Seconds an open breaker stops all sends before one trial.
    pub breaker_cooldown_secs: u64,
    /// Longest media download, milliseconds.
    pub media_fetch_timeout_ms: u64,
}

impl Default for DeliverySection {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            backoff_base_ms: 1_000,
            backoff_max_ms: 5 * 60_000,
            request_timeout_ms: 10_000,
            concurrency: 8,
            breaker_failures: 5,
            breaker_cooldown_secs: 30,
            media_fetch_timeout_ms: 30_000,
        }
    }
}

/// `[socket]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SocketSection {
    /// Milliseconds between server pings.
    pub ping_interval_ms: u64,
    /// Milliseconds to wait for a pong before closing.
    pub ping_timeout_ms: u64,
    /// Largest packet (websocket frame or polling POST), bytes.
    pub max_payload_bytes: usize,
    /// Events queued for one connection before it is dropped as a slow consumer.
    pub max_queued: usize,
    /// Seconds a dropped connection can be recovered (connection state recovery).
    pub recovery_window_secs: u64,
    /// Most messages replayed by one join or recovery.
    pub max_replay: usize,
    /// Bytes queued for one connection before it is dropped as a slow consumer.
    pub max_queue_bytes: usize,
    /// Most bytes of messages replayed by one join or recovery (then `hasMore`).
    pub max_replay_bytes: usize,
    /// Engine.IO sessions open at once; more handshakes get 503 `too_many_sessions`.
    pub max_sessions: usize,
    /// Unauthenticated sessions open at once from one client address; more get 429 `too_many_sessions`.
    pub max_anonymous_sessions_per_ip: usize,
}

impl Default for SocketSection {
    fn default() -> Self {
        Self {
            ping_interval_ms: 25_000,
            ping_timeout_ms: 20_000,
            max_payload_bytes: 1_000_000,
            max_queued: 1024,
            recovery_window_secs: 120,
            max_replay: 500,
            max_queue_bytes: 4 << 20,
            max_replay_bytes: 1 << 20,
            max_sessions: 50_000,
            max_anonymous_sessions_per_ip: 64,
        }
    }
}

/// `[store]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// `sync` (default: survives power loss) or `buffered` (survives a crash of the process).
    pub durability: Durability,
    /// Block cache in MiB.
    pub block_cache_mb: usize,
    /// Memtable of each map in MiB (1 to 1024): written to a table file when full.
    pub write_buffer_mb: usize,
    /// Writes are refused (503 `storage_unavailable`) while the data directory's
    /// filesystem has less than this many MiB available, and resume when it has
    /// more; 0 turns the check off. Keeps RocksDB itself from running out of space.
    pub min_free_mb: u64,
}

/// `[cluster]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// A shard lease lasts this long without renewal: a dead node's shards move after about this long.
    pub lease_ms: u64,
    /// Copies NATS keeps of the log and the buckets (at most the number of NATS servers).
    pub replicas: usize,
    /// How long a request waits for its conversation's owner, a failover included.
    pub forward_timeout_ms: u64,
    /// A job lock lasts this long without renewal.
    pub lock_ttl_ms: u64,
    /// PEM file of the authority that signed the NATS servers' certificates; requires TLS.
    pub tls_ca_file: Option<PathBuf>,
    /// PEM certificate this node shows NATS servers that verify clients.
    pub tls_cert_file: Option<PathBuf>,
    /// The key of `tls_cert_file`.
    pub tls_key_file: Option<PathBuf>,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            lease_ms: 10_000,
            replicas: 3,
            forward_timeout_ms: 20_000,
            lock_ttl_ms: 30_000,
            tls_ca_file: None,
            tls_cert_file: None,
            tls_key_file: None,
        }
    }
}

/// `[conversations]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConversationsConfig {
    /// Seconds without requests before an actor is retired.
    pub idle_timeout_secs: u64,
    /// Writes in flight per conversation before requests are refused with 503.
    pub max_inflight: usize,
    /// Threads for conversation actors; 0 means one per core.
    pub threads: usize,
}

/// `[http]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Largest request body in bytes (413 above).
    pub max_body_bytes: usize,
    /// Worker threads; 0 means one per core.
    pub workers: usize,
    /// Seconds to finish in-flight requests at shutdown.
    pub shutdown_timeout_secs: u64,
    /// Proxies (addresses or CIDR ranges) whose `Forwarded` / `X-Forwarded-For`
    /// name the client; empty: the peer is the client.
    pub trusted_proxies: Vec<String>,
}

/// A signing secret that was rotated out but still verifies until `valid_until`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PreviousSecret {
    /// The old secret.
    pub secret: Secret,
    /// RFC 3339 time after which tokens signed with it are refused.
    pub valid_until: String,
}

/// `[auth]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Lifetime of access tokens, seconds.
    pub access_ttl_secs: u64,
    /// Lifetime of refresh tokens, seconds.
    pub refresh_ttl_secs: u64,
    /// Lifetime of widget tokens, seconds.
    pub widget_ttl_secs: u64,
    /// Rotated-out secrets still accepted for verification.
    pub previous_jwt_secrets: Vec<PreviousSecret>,
    /// Failed logins per account within the window before 429.
    pub max_failures_per_account: u32,
    /// Failed logins per client address within the window before 429.
    pub max_failures_per_ip: u32,
    /// Window of the failed-login limits, seconds.
    pub failure_window_secs: u64,
    /// Widget sessions one client address may open per minute.
    pub widget_sessions_per_ip_per_minute: u32,
    /// Accounts and addresses each throttle tracks at most; past it, attempts
    /// from new ones get 429 until old windows end.
    pub max_throttled_keys: usize,
    /// Threads that check passwords (argon2, ~19 MiB each while it runs).
    pub password_check_threads: usize,
    /// Password checks that may wait for a thread; more get 429 `server_busy`.
    pub password_check_queue: usize,
    /// Longest a password check waits for a thread before 429 `server_busy`, ms.
    pub password_check_wait_ms: u64,
}

/// Levels per environment: verbose where people develop, request lines with
/// their ids in production (the runbooks search them), quiet under test.
fn default_log_levels() -> BTreeMap<String, String> {
    [
        ("development", "info,utalk=debug,utalk_actors=debug,utalk_storage=debug,utalk_schedules=debug"),
        ("staging", "info"),
        ("production", "info"),
        ("test", "warn"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("./data"),
            log: None,
            log_levels: default_log_levels(),
            log_format: LogFormat::Json,
            environment: "production".into(),
            jwt_secret: None,
            public_url: None,
            twilio_account_sid: None,
            twilio_auth_token: None,
            twilio_from: None,
            twilio_api_base: "https://api.twilio.com".into(),
            twilio_media_hosts: ["api.twilio.com", "*.twilio.com", "*.twiliocdn.com"].into_iter().map(String::from).collect(),
            otlp_endpoint: None,
            otlp_sample_ratio: 1.0,
            cluster_url: None,
            node_id: None,
            cluster: ClusterConfig::default(),
            store: StoreConfig::default(),
            conversations: ConversationsConfig::default(),
            http: HttpConfig::default(),
            auth: AuthConfig::default(),
            socket: SocketSection::default(),
            media: MediaSection::default(),
            delivery: DeliverySection::default(),
            openai_api_key: None,
            bot: BotSection::default(),
            backup: BackupSection::default(),
            jobs: JobsSection::default(),
            retention: RetentionSection::default(),
            alerts: AlertsSection::default(),
            api: ApiSection::default(),
            log_file: LogFileSection::default(),
        }
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self { durability: Durability::Sync, block_cache_mb: 64, write_buffer_mb: 64, min_free_mb: 256 }
    }
}

impl Default for ConversationsConfig {
    fn default() -> Self {
        Self { idle_timeout_secs: 300, max_inflight: 4096, threads: 0 }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self { max_body_bytes: 1 << 20, workers: 0, shutdown_timeout_secs: 10, trusted_proxies: Vec::new() }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            access_ttl_secs: 15 * 60,
            refresh_ttl_secs: 30 * 24 * 3600,
            widget_ttl_secs: 7 * 24 * 3600,
            previous_jwt_secrets: Vec::new(),
            max_failures_per_account: 5,
            max_failures_per_ip: 20,
            failure_window_secs: 15 * 60,
            widget_sessions_per_ip_per_minute: 30,
            max_throttled_keys: 100_000,
            password_check_threads: 2,
            password_check_queue: 64,
            password_check_wait_ms: 2_000,
        }
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The file or an environment variable has a bad value.
    #[error("invalid configuration ({origin}): {message}")]
    Invalid {
        /// Where the value came from.
        origin: String,
        /// What is wrong.
        message: String,
    },
}

/// Top-level keys whose values are always strings, so `UTALK_JWT_SECRET=123` stays a string.
const STRING_KEYS: &[&str] = &[
    "listen",
    "data_dir",
    "log",
    "log_format",
    "environment",
    "jwt_secret",
    "public_url",
    "twilio_account_sid",
    "twilio_auth_token",
    "twilio_from",
    "twilio_api_base",
    "otlp_endpoint",
    "cluster_url",
    "node_id",
    "openai_api_key",
];

/// Top-level keys whose values are numbers or booleans.
const VALUE_KEYS: &[&str] = &["otlp_sample_ratio", "twilio_media_hosts"];

/// Sections of the file, settable as `UTALK_SECTION__KEY`.
const SECTIONS: &[&str] = &[
    "store",
    "conversations",
    "http",
    "auth",
    "socket",
    "media",
    "delivery",
    "bot",
    "backup",
    "jobs",
    "retention",
    "alerts",
    "api",
    "log_file",
    "log_levels",
    "cluster",
];

impl Config {
    /// Loads defaults, then `file`, then `UTALK_*` variables from `env`.
    ///
    /// `UTALK_X` sets top-level key `x`; `UTALK_SECTION__KEY` sets `key` in `[section]`.
    /// `UTALK_CONFIG` (the file itself) is not a setting. Variables that name no
    /// setting are ignored with a warning on stderr (tools around utalk use the
    /// prefix too); unknown keys in the file and bad values are errors.
    pub fn load(file: Option<&Path>, env: impl IntoIterator<Item = (String, String)>) -> Result<Config, ConfigError> {
        let mut root = toml::Table::new();
        let mut origin = "defaults".to_string();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
            root = text
                .parse::<toml::Table>()
                .map_err(|e| ConfigError::Invalid { origin: path.display().to_string(), message: e.to_string() })?;
            origin = path.display().to_string();
        }
        let vars: BTreeMap<String, String> = env.into_iter().filter(|(k, _)| k.starts_with("UTALK_") && k != "UTALK_CONFIG").collect();
        for (name, raw) in &vars {
            let path: Vec<String> = name["UTALK_".len()..].to_lowercase().split("__").map(str::to_owned).collect();
            let known = if path.len() == 1 {
                STRING_KEYS.contains(&path[0].as_str()) || VALUE_KEYS.contains(&path[0].as_str())
            } else {
                SECTIONS.contains(&path[0].as_str())
            };
            if !known {
                eprintln!("utalk: ignoring {name}: it names no setting");
                continue;
            }
            let value = if path.len() == 1 && STRING_KEYS.contains(&path[0].as_str()) {
                toml::Value::String(raw.clone())
            } else {
                format!("v = {raw}")
                    .parse::<toml::Table>()
                    .ok()
                    .and_then(|mut t| t.remove("v"))
                    .unwrap_or_else(|| toml::Value::String(raw.clone()))
            };
            let mut table = &mut root;
            for part in &path[..path.len() - 1] {
                let entry = table.entry(part.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
                table = entry
                    .as_table_mut()
                    .ok_or_else(|| ConfigError::Invalid { origin: name.clone(), message: format!("{part} is not a section") })?;
            }
            table.insert(path[path.len() - 1].clone(), value);
        }
        if !vars.is_empty() {
            origin = format!("{origin} and UTALK_* environment variables");
        }
        let config: Config = toml::Value::Table(root)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Invalid { origin: origin.clone(), message: e.message().to_string() })?;
        config.validate().map_err(|message| ConfigError::Invalid { origin, message })?;
        Ok(config)
    }

    /// The log filter in force: `log` when set, else this environment's
    /// entry in `log_levels`, else `info`.
    pub fn log_filter(&self) -> &str {
        self.log.as_deref().or_else(|| self.log_levels.get(&self.environment).map(String::as_str)).unwrap_or("info")
    }

    /// Checks values that parse but make no sense.
    pub fn validate(&self) -> Result<(), String> {
        self.listen
            .parse::<std::net::SocketAddr>()
            .map_err(|_| format!("listen: `{}` is not an address like 127.0.0.1:8080", self.listen))?;
        if let Some(s) = &self.jwt_secret {
            if s.expose().len() < 32 {
                return Err("jwt_secret: must be at least 32 characters".into());
            }
            if let (true, Some(why)) = (self.environment == "production", crate::ops::secrets::weakness(s.expose())) {
                return Err(format!(
                    "jwt_secret: {why}; in production the signing secret must be random (unset it to have one generated, or use `openssl rand -base64 48`)"
                ));
            }
        }
        for p in &self.auth.previous_jwt_secrets {
            if utalk_storage::Timestamp::parse_rfc3339(&p.valid_until).is_none() {
                return Err(format!("auth.previous_jwt_secrets: valid_until `{}` is not an RFC 3339 time", p.valid_until));
            }
        }
        for e in &self.http.trusted_proxies {
            let e = e.trim();
            if e.parse::<ipnet::IpNet>().is_err() && e.parse::<std::net::IpAddr>().is_err() {
                return Err(format!("http.trusted_proxies: `{e}` is not an address or a CIDR range such as 10.0.0.0/8 or fd00::/8"));
            }
        }
        if self.http.max_body_bytes < 1024 {
            return Err("http.max_body_bytes: must be at least 1024".into());
        }
        let a = &self.auth;
        if a.max_throttled_keys == 0 || a.password_check_threads == 0 || a.password_check_queue == 0 || a.password_check_wait_ms == 0 {
            return Err(
                "auth: max_throttled_keys, password_check_threads, password_check_queue and password_check_wait_ms must be positive".into(),
            );
        }
        if a.password_check_threads > 64 {
            return Err("auth.password_check_threads: at most 64 (each check holds ~19 MiB)".into());
        }
        if self.auth.access_ttl_secs == 0 || self.auth.refresh_ttl_secs == 0 || self.auth.widget_ttl_secs == 0 {
            return Err("auth: token lifetimes must be positive".into());
        }
        let s = &self.socket;
        if s.ping_interval_ms < 100 || s.ping_timeout_ms < 100 || s.max_payload_bytes < 1024 || s.max_queued == 0 || s.max_replay == 0 {
            return Err(
                "socket: ping times must be at least 100 ms, max_payload_bytes at least 1024, max_queued and max_replay positive".into()
            );
        }
        if s.max_replay_bytes < 65_536 || s.max_queue_bytes < 2 * s.max_replay_bytes {
            // A replay must fit in the queue with room for live traffic, or every join
            // and recovery would end in a slow-consumer close; 64 KiB holds the longest message.
            return Err("socket: max_replay_bytes must be at least 65536 and max_queue_bytes at least twice max_replay_bytes".into());
        }
        if s.max_sessions == 0 || s.max_anonymous_sessions_per_ip == 0 {
            return Err("socket: max_sessions and max_anonymous_sessions_per_ip must be positive".into());
        }
        let filters = [("log", Some(self.log_filter())), ("log_file.level", self.log_file.level.as_deref())];
        for (what, f) in filters.into_iter().filter_map(|(w, f)| f.map(|f| (w, f))) {
            if let Err(e) = tracing_subscriber::EnvFilter::try_new(f) {
                return Err(format!("{what}: `{f}` is not a log filter such as `info` or `info,utalk=debug`: {e}"));
            }
        }
        if let Some(e) = &self.otlp_endpoint {
            if let Some(why) = endpoint_problem(e) {
                return Err(why);
            }
        }
        if !(0.0..=1.0).contains(&self.otlp_sample_ratio) {
            return Err(format!("otlp_sample_ratio: {} is not between 0 and 1", self.otlp_sample_ratio));
        }
        if self.log_file.max_bytes < 1024 {
            return Err("log_file.max_bytes: must be at least 1024".into());
        }
        for d in &self.api.deprecations {
            if !d.route.starts_with('/') {
                return Err(format!("api.deprecations: route `{}` must be a path template starting with /", d.route));
            }
            for (what, t) in [("deprecated", &d.deprecated), ("sunset", &d.sunset)] {
                if utalk_storage::Timestamp::parse_rfc3339(t).is_none() {
                    return Err(format!("api.deprecations: {what} `{t}` of {} is not an RFC 3339 time", d.route));
                }
            }
        }
        let a = &self.alerts;
        match (&a.webhook_url, &a.webhook_secret) {
            (Some(u), Some(s)) => {
                if !(u.starts_with("http://") || u.starts_with("https://")) {
                    return Err(format!("alerts.webhook_url: `{u}` is not an http(s) URL"));
                }
                if s.expose().len() < 16 {
                    return Err("alerts.webhook_secret: must be at least 16 characters".into());
                }
            }
            (Some(_), None) => return Err("alerts.webhook_secret: required with alerts.webhook_url (receivers check the signature)".into()),
            (None, _) => {}
        }
        if a.webhook_timeout_ms == 0 || a.webhook_max_attempts == 0 || a.webhook_backoff_base_ms == 0 {
            return Err("alerts: webhook_timeout_ms, webhook_max_attempts and webhook_backoff_base_ms must be positive".into());
        }
        let m = &self.media;
        if m.uploads_per_minute == 0 || m.max_files_per_conversation == 0 || m.max_bytes_per_conversation < m.max_bytes {
            return Err(
                "media: uploads_per_minute and max_files_per_conversation must be positive, max_bytes_per_conversation at least max_bytes"
                    .into(),
            );
        }
        if !(1..=1024).contains(&self.store.write_buffer_mb) {
            return Err("store.write_buffer_mb: must be between 1 and 1024".into());
        }
        if self.conversations.max_inflight == 0 || self.conversations.idle_timeout_secs == 0 {
            return Err("conversations: max_inflight and idle_timeout_secs must be positive".into());
        }
        if self.cluster.lease_ms < 1000 || self.cluster.replicas == 0 || self.cluster.replicas > 5 || self.cluster.lock_ttl_ms < 1000 {
            return Err("cluster: lease_ms and lock_ttl_ms must be at least 1000, replicas 1 to 5".into());
        }
        if self.cluster.forward_timeout_ms < self.cluster.lease_ms {
            return Err("cluster: forward_timeout_ms must be at least lease_ms, so that a request outlasts a failover".into());
        }
        if let Some(urls) = &self.cluster_url {
            let bad = urls.split(',').map(str::trim).find(|u| !(u.starts_with("nats://") || u.starts_with("tls://")));
            if let Some(u) = bad {
                return Err(format!("cluster_url: `{}` is not a nats:// URL", utalk_actors::cluster::redact_urls(u)));
            }
        }
        let c = &self.cluster;
        if c.tls_cert_file.is_some() != c.tls_key_file.is_some() {
            return Err("cluster: set tls_cert_file and tls_key_file together".into());
        }
        for (name, file) in [("tls_ca_file", &c.tls_ca_file), ("tls_cert_file", &c.tls_cert_file), ("tls_key_file", &c.tls_key_file)] {
            if let Some(f) = file.as_ref().filter(|f| !f.is_file()) {
                return Err(format!("cluster: {name} `{}` is not a file", f.display()));
            }
        }
        for (name, url) in [("public_url", self.public_url.as_deref()), ("twilio_api_base", Some(self.twilio_api_base.as_str()))] {
            if let Some(u) = url {
                if !(u.starts_with("https://") || u.starts_with("http://")) {
                    return Err(format!("{name}: `{u}` must start with https:// or http://"));
                }
            }
        }
        let missing = self.twilio_missing();
        if !missing.is_empty() && missing.len() < 3 {
            return Err(format!("twilio: set {} too, or none of the twilio_* settings", missing.join(", ")));
        }
        if missing.is_empty() && self.public_url.is_none() {
            return Err("public_url: required with Twilio: webhook signatures, status callbacks and media URLs use it".into());
        }
        if self.media.max_bytes == 0 || self.media.url_ttl_secs == 0 || self.media.allowed_types.is_empty() {
            return Err("media: max_bytes, url_ttl_secs and allowed_types must be set".into());
        }
        let d = &self.delivery;
        if d.max_attempts == 0
            || d.backoff_base_ms == 0
            || d.backoff_max_ms < d.backoff_base_ms
            || d.request_timeout_ms == 0
            || d.concurrency == 0
        {
            return Err("delivery: max_attempts, backoff_base_ms, request_timeout_ms and concurrency must be positive, backoff_max_ms at least backoff_base_ms".into());
        }
        let b = &self.bot;
        if b.workers == 0 || b.queue == 0 || b.model_timeout_ms == 0 || b.agent_capacity == 0 {
            return Err("bot: workers, queue, model_timeout_ms and agent_capacity must be positive".into());
        }
        for (name, list) in [("bot.allowed_model_hosts", &b.allowed_model_hosts), ("twilio_media_hosts", &self.twilio_media_hosts)] {
            if let Some(why) = list.iter().find_map(|p| utalk_actors::hosts::pattern_problem(p)) {
                return Err(format!("{name}: {why}"));
            }
        }
        Ok(())
    }

    /// The Twilio settings that are not set, of account SID, auth token and sender.
    pub fn twilio_missing(&self) -> Vec<&'static str> {
        let mut m = Vec::new();
        if self.twilio_account_sid.as_deref().is_none_or(str::is_empty) {
            m.push("twilio_account_sid");
        }
        if self.twilio_auth_token.as_ref().is_none_or(|t| t.expose().is_empty()) {
            m.push("twilio_auth_token");
        }
        if self.twilio_from.as_deref().is_none_or(str::is_empty) {
            m.push("twilio_from");
        }
        m
    }

    /// The Twilio account, when every setting it needs is there (`public_url` included).
    pub fn twilio_account(&self) -> Option<utalk_actors::channels::twilio::TwilioAccount> {
        if !self.twilio_missing().is_empty() {
            return None;
        }
        let from = self.twilio_from.clone().unwrap_or_default();
        Some(utalk_actors::channels::twilio::TwilioAccount {
            account_sid: self.twilio_account_sid.clone().unwrap_or_default(),
            auth_token: self.twilio_auth_token.as_ref().map(|t| t.expose().to_string()).unwrap_or_default(),
            from: if from.starts_with("whatsapp:") { from } else { format!("whatsapp:{from}") },
            api_base: self.twilio_api_base.clone(),
            public_url: self.public_url.clone()?,
        })
    }
}

/// Whether `endpoint` can be used, as a reason when it cannot.
pub fn endpoint_problem(endpoint: &str) -> Option<String> {
    let Some(rest) = endpoint.strip_prefix("http://") else {
        return Some(format!(
            "otlp_endpoint must be an http:// URL of a collector, such as http://127.0.0.1:4318 (got `{endpoint}`); send to a local collector that forwards over TLS"
        ));
    };
    if rest.is_empty() || rest.starts_with('/') {
        return Some(format!("otlp_endpoint `{endpoint}` names no host"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_http_endpoints_with_a_host_are_accepted() {
        assert!(endpoint_problem("http://127.0.0.1:4318").is_none());
        assert!(endpoint_problem("https://collector:4318").is_some());
        assert!(endpoint_problem("collector:4318").is_some());
        assert!(endpoint_problem("http://").is_some());
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_listen_on_loopback_8080_with_data_in_dot_data() {
        let c = Config::load(None, Vec::new()).unwrap();
        assert_eq!(c.listen, "127.0.0.1:8080");
        assert_eq!(c.data_dir, PathBuf::from("./data"));
        assert_eq!(c.store.durability, Durability::Sync);
    }

    #[test]
    fn environment_overrides_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("utalk.toml");
        std::fs::write(&f, "listen = \"127.0.0.1:9000\"\n[store]\ndurability = \"buffered\"\n[http]\nmax_body_bytes = 4096\n").unwrap();
        let c = Config::load(
            Some(&f),
            env(&[
                ("UTALK_LISTEN", "127.0.0.1:9100"),
                ("UTALK_HTTP__WORKERS", "3"),
                ("UTALK_JWT_SECRET", "12345678901234567890123456789012"),
                // Digits only would be refused as weak in production; this checks it stays a string.
                ("UTALK_ENVIRONMENT", "development"),
                ("PATH", "/bin"),
            ]),
        )
        .unwrap();
        assert_eq!(c.listen, "127.0.0.1:9100");
        assert_eq!(c.store.durability, Durability::Buffered);
        assert_eq!(c.http.max_body_bytes, 4096);
        assert_eq!(c.http.workers, 3);
        assert_eq!(c.jwt_secret.unwrap().expose(), "12345678901234567890123456789012");
    }

    #[test]
    fn bad_values_are_clear_errors() {
        let e = Config::load(None, env(&[("UTALK_LISTEN", "nowhere")])).unwrap_err().to_string();
        assert!(e.contains("listen"), "{e}");
        let e = Config::load(None, env(&[("UTALK_STORE__DURABILITY", "maybe")])).unwrap_err().to_string();
        assert!(e.contains("durability") || e.contains("maybe"), "{e}");
        let e = Config::load(None, env(&[("UTALK_STORE__NO_SUCH_THING", "1")])).unwrap_err().to_string();
        assert!(e.contains("no_such_thing"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("utalk.toml");
        std::fs::write(&f, "lisen = \"127.0.0.1:1\"\n").unwrap();
        let e = Config::load(Some(&f), Vec::new()).unwrap_err().to_string();
        assert!(e.contains("lisen"), "{e}");
        let e = Config::load(None, env(&[("UTALK_JWT_SECRET", "short")])).unwrap_err().to_string();
        assert!(e.contains("32"), "{e}");
    }

    #[test]
    fn variables_that_name_no_setting_are_ignored() {
        let c = Config::load(None, env(&[("UTALK_BIN", "/x/utalk"), ("UTALK_BENCH_QUICK", "1")])).unwrap();
        assert_eq!(c.listen, "127.0.0.1:8080");
    }

    #[test]
    fn twilio_is_all_or_nothing() {
        let c = Config::load(None, Vec::new()).unwrap();
        assert!(c.twilio_account().is_none());
        let e = Config::load(None, env(&[("UTALK_TWILIO_ACCOUNT_SID", "AC1")])).unwrap_err().to_string();
        assert!(e.contains("twilio_auth_token") && e.contains("twilio_from"), "{e}");
        let c = Config::load(
            None,
            env(&[
                ("UTALK_TWILIO_ACCOUNT_SID", "AC1"),
                ("UTALK_TWILIO_AUTH_TOKEN", "s3cr3t-value"),
                ("UTALK_TWILIO_FROM", "+14155238886"),
                ("UTALK_PUBLIC_URL", "https://chat.example.com"),
            ]),
        )
        .unwrap();
        let a = c.twilio_account().unwrap();
        assert_eq!(a.from, "whatsapp:+14155238886");
        assert!(!format!("{a:?}").contains("s3cr3t-value"));
        let e = Config::load(None, env(&[("UTALK_PUBLIC_URL", "chat.example.com")])).unwrap_err().to_string();
        assert!(e.contains("public_url"), "{e}");
        let c = Config::load(None, env(&[("UTALK_MEDIA__ALLOWED_TYPES", "[\"image/*\"]"), ("UTALK_DELIVERY__MAX_ATTEMPTS", "3")])).unwrap();
        assert_eq!(c.media.allowed_types, vec!["image/*".to_string()]);
        assert_eq!(c.delivery.max_attempts, 3);
    }

    #[test]
    fn nats_tls_files_and_url_passwords_are_checked_at_load() {
        let refused = |vars: &[(&str, &str)]| Config::load(None, env(vars)).unwrap_err().to_string();
        let dir = tempfile::tempdir().unwrap();
        let pem = dir.path().join("node.pem");
        std::fs::write(&pem, "not checked here").unwrap();
        let pem = pem.to_str().unwrap();
        let e = refused(&[("UTALK_CLUSTER__TLS_CERT_FILE", pem)]);
        assert!(e.contains("tls_cert_file and tls_key_file together"), "{e}");
        let e = refused(&[("UTALK_CLUSTER__TLS_CA_FILE", "/nowhere/ca.pem")]);
        assert!(e.contains("tls_ca_file `/nowhere/ca.pem` is not a file"), "{e}");
        let e = refused(&[("UTALK_CLUSTER__TLS_CERT_FILE", pem), ("UTALK_CLUSTER__TLS_KEY_FILE", dir.path().to_str().unwrap())]);
        assert!(e.contains("tls_key_file"), "a directory is not a key file: {e}");
        let e = refused(&[("UTALK_CLUSTER_URL", "http://utalk:s3cret@n1:4222")]);
        assert!(e.contains("not a nats:// URL") && !e.contains("s3cret"), "the password does not print: {e}");
        let c = Config::load(None, env(&[("UTALK_CLUSTER__TLS_CERT_FILE", pem), ("UTALK_CLUSTER__TLS_KEY_FILE", pem)])).unwrap();
        assert!(c.cluster.tls_cert_file.is_some() && c.cluster.tls_key_file.is_some());
    }

    #[test]
    fn alert_webhooks_deprecations_and_log_files_are_checked_at_load() {
        let refused = |vars: &[(&str, &str)]| Config::load(None, env(vars)).unwrap_err().to_string();
        let e = refused(&[("UTALK_ALERTS__WEBHOOK_URL", "https://ops.example.com/hook")]);
        assert!(e.contains("alerts.webhook_secret: required"), "{e}");
        let e = refused(&[("UTALK_ALERTS__WEBHOOK_URL", "ftp://x"), ("UTALK_ALERTS__WEBHOOK_SECRET", "a-webhook-secret-long-enough")]);
        assert!(e.contains("not an http(s) URL"), "{e}");
        let e = refused(&[("UTALK_ALERTS__WEBHOOK_URL", "https://x"), ("UTALK_ALERTS__WEBHOOK_SECRET", "short-one")]);
        assert!(e.contains("at least 16 characters"), "{e}");
        let e = refused(&[("UTALK_LOG_FILE__MAX_BYTES", "10")]);
        assert!(e.contains("log_file.max_bytes"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("utalk.toml");
        std::fs::write(&f, "[[api.deprecations]]\nroute = \"/api/v1/x\"\ndeprecated = \"soon\"\nsunset = \"2027-01-01T00:00:00Z\"\n")
            .unwrap();
        let e = Config::load(Some(&f), Vec::new()).unwrap_err().to_string();
        assert!(e.contains("deprecated `soon`"), "{e}");
        std::fs::write(
            &f,
            "[[api.deprecations]]\nroute = \"api/v1/x\"\ndeprecated = \"2026-01-01T00:00:00Z\"\nsunset = \"2027-01-01T00:00:00Z\"\n",
        )
        .unwrap();
        assert!(Config::load(Some(&f), Vec::new()).unwrap_err().to_string().contains("starting with /"));
        let c = Config::load(
            None,
            env(&[("UTALK_ALERTS__WEBHOOK_URL", "https://x"), ("UTALK_ALERTS__WEBHOOK_SECRET", "a-webhook-secret-long-enough")]),
        )
        .unwrap();
        assert!(!format!("{:?}", c.alerts).contains("a-webhook-secret-long-enough"), "the secret does not print");
    }

    #[test]
    fn the_log_level_follows_the_environment_unless_set() {
        let level = |vars: &[(&str, &str)]| Config::load(None, env(vars)).unwrap().log_filter().to_string();
        assert_eq!(level(&[]), "info", "production by default");
        assert!(level(&[("UTALK_ENVIRONMENT", "development")]).contains("utalk=debug"));
        assert_eq!(level(&[("UTALK_ENVIRONMENT", "test")]), "warn");
        assert_eq!(level(&[("UTALK_ENVIRONMENT", "qa-7")]), "info", "an unlisted environment");
        assert_eq!(level(&[("UTALK_ENVIRONMENT", "test"), ("UTALK_LOG", "error")]), "error", "UTALK_LOG wins");
        assert_eq!(level(&[("UTALK_LOG_LEVELS__PRODUCTION", "warn")]), "warn");
        let e = Config::load(None, env(&[("UTALK_LOG", "info,=[")])).unwrap_err().to_string();
        assert!(e.contains("is not a log filter"), "{e}");
        let e = Config::load(None, env(&[("UTALK_LOG_FILE__LEVEL", "utalk=loud")])).unwrap_err().to_string();
        assert!(e.contains("log_file.level"), "{e}");
        let e = Config::load(None, env(&[("UTALK_OTLP_SAMPLE_RATIO", "-0.5")])).unwrap_err().to_string();
        assert!(e.contains("otlp_sample_ratio"), "{e}");
        let c = Config::load(None, env(&[("UTALK_OTLP_SAMPLE_RATIO", "0.25"), ("UTALK_OTLP_ENDPOINT", "http://127.0.0.1:4318")])).unwrap();
        assert_eq!(c.otlp_sample_ratio, 0.25);
    }

    #[test]
    fn the_sample_configuration_loads_and_states_the_defaults() {
        let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("ops/utalk.sample.toml");
        let loaded = Config::load(Some(&sample), Vec::new()).unwrap();
        let as_toml = |c: &Config| toml::Value::try_from(c).unwrap();
        assert_eq!(as_toml(&loaded), as_toml(&Config::default()), "a value in ops/utalk.sample.toml differs from the default");
    }

    #[test]
    fn credential_host_lists_are_checked_at_load() {
        let c = Config::load(None, Vec::new()).unwrap();
        assert_eq!(c.bot.allowed_model_hosts, vec!["api.openai.com".to_string()]);
        assert!(c.twilio_media_hosts.contains(&"api.twilio.com".to_string()));
        let c = Config::load(
            None,
            env(&[("UTALK_TWILIO_MEDIA_HOSTS", "[\"127.0.0.1\", \"*.twiliocdn.com\"]"), ("UTALK_BOT__ALLOWED_MODEL_HOSTS", "[\"::1\"]")]),
        )
        .unwrap();
        assert_eq!(c.twilio_media_hosts, vec!["127.0.0.1".to_string(), "*.twiliocdn.com".to_string()]);
        assert_eq!(c.bot.allowed_model_hosts, vec!["::1".to_string()]);
        let e = Config::load(None, env(&[("UTALK_BOT__ALLOWED_MODEL_HOSTS", "[\"https://api.openai.com/v1\"]")])).unwrap_err().to_string();
        assert!(e.contains("bot.allowed_model_hosts") && e.contains("no scheme, port or path"), "{e}");
        let e = Config::load(None, env(&[("UTALK_TWILIO_MEDIA_HOSTS", "[\"127.0.0.1:8080\"]")])).unwrap_err().to_string();
        assert!(e.contains("twilio_media_hosts"), "{e}");
    }

    #[test]
    fn secrets_do_not_print() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"[redacted]\"");
    }

    #[test]
    fn socket_memory_and_session_caps_must_hold_together() {
        let c = Config::load(None, Vec::new()).unwrap();
        assert_eq!((c.socket.max_queue_bytes, c.socket.max_replay_bytes), (4 << 20, 1 << 20));
        assert_eq!((c.socket.max_sessions, c.socket.max_anonymous_sessions_per_ip), (50_000, 64));
        for bad in [
            [("UTALK_SOCKET__MAX_REPLAY_BYTES", "1000"), ("UTALK_SOCKET__MAX_QUEUE_BYTES", "4194304")],
            [("UTALK_SOCKET__MAX_REPLAY_BYTES", "1048576"), ("UTALK_SOCKET__MAX_QUEUE_BYTES", "1048576")],
            [("UTALK_SOCKET__MAX_SESSIONS", "0"), ("UTALK_SOCKET__MAX_QUEUE_BYTES", "4194304")],
            [("UTALK_SOCKET__MAX_ANONYMOUS_SESSIONS_PER_IP", "0"), ("UTALK_SOCKET__MAX_QUEUE_BYTES", "4194304")],
        ] {
            let e = Config::load(None, env(&bad)).unwrap_err().to_string();
            assert!(e.contains("socket:"), "{bad:?}: {e}");
        }
    }
}
