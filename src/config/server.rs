//! The server's own sections: sockets, store, cluster, conversations, HTTP, auth.

use crate::config::secret::Secret;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use utalk_actors::Durability;

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
    /// Milliseconds between writes of the changed sessions' recovery state to
    /// the store (100 to 10,000): after a crash, a client that received a
    /// message or joined a conversation in the last such period rejoins
    /// instead of recovering.
    pub session_flush_ms: u64,
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
            session_flush_ms: 1000,
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

/// `[search]`: the full-text index in `<data_dir>/search`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SearchSection {
    /// Keep the index and answer `?q=` (503 `search_unavailable` when off).
    pub enabled: bool,
    /// A write is searchable within about this long (100 to 60,000).
    pub commit_interval_ms: u64,
    /// Memory the indexer buffers before writing a segment, in MiB (15 to 1024).
    pub writer_memory_mb: usize,
    /// Most MiB of written records waiting for the indexer (1 to 1024); past
    /// it they are dropped and the index is rebuilt from the store.
    pub max_queue_mb: usize,
    /// The share of the time (1 to 100) the search index backfill works,
    /// counting the index's own threads; it pauses the rest.
    pub backfill_duty_percent: u8,
}

impl Default for SearchSection {
    fn default() -> Self {
        Self { enabled: true, commit_interval_ms: 1000, writer_memory_mb: 64, max_queue_mb: 64, backfill_duty_percent: 10 }
    }
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
            lease_ms: 2_000,
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
    /// Origins (`https://shop.example`) whose pages may call the API and
    /// Socket.IO polling from a browser; empty: none. In the environment,
    /// comma-separated (`UTALK_HTTP__ALLOWED_ORIGINS`).
    #[serde(deserialize_with = "super::list_or_commas")]
    pub allowed_origins: Vec<String>,
    /// REST requests each caller (staff user, API key, widget conversation)
    /// may make in a minute; more get 429 `rate_limited`.
    pub requests_per_minute: u32,
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
    /// API keys that may be live (neither revoked nor expired) at once; more get 409 `too_many_keys`.
    pub max_api_keys: usize,
    /// Age in days at which the `secret_rotation` job replaces the generated
    /// signing key; with `jwt_secret` set, the age the alert watches.
    pub jwt_rotate_days: u64,
    /// Days a rotated-out generated key keeps verifying the tokens it signed.
    pub jwt_rotation_grace_days: u64,
    /// When the configured `jwt_secret` was set (RFC 3339), so that its age
    /// is exported and alerted on before `jwt_rotate_days`.
    pub jwt_secret_set_at: Option<String>,
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
        Self {
            max_body_bytes: 1 << 20,
            workers: 0,
            shutdown_timeout_secs: 10,
            trusted_proxies: Vec::new(),
            allowed_origins: Vec::new(),
            requests_per_minute: 6000,
        }
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
            max_api_keys: 1000,
            // The manual: signing keys rotate every 90 days with a 7-day grace.
            jwt_rotate_days: 90,
            jwt_rotation_grace_days: 7,
            jwt_secret_set_at: None,
            password_check_wait_ms: 2_000,
        }
    }
}

/// An origin as `scheme://host[:port]` in lower case, or `None` when `s` is
/// not one (a path, another scheme, `*`, `null`).
pub fn normalize_origin(s: &str) -> Option<String> {
    let s = s.trim().trim_end_matches('/').to_ascii_lowercase();
    let (scheme, rest) = s.split_once("://")?;
    let host_ok = !rest.is_empty()
        && rest.len() <= 260
        && rest.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
        && !rest.starts_with(':');
    ((scheme == "http" || scheme == "https") && host_ok).then_some(s)
}
