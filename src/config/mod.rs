//! Configuration: defaults, then the TOML file, then `UTALK_*` environment
//! variables, then command-line flags; validated before anything starts.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

mod channels;
mod load;
mod operations;
pub(crate) mod secret;
mod server;
#[cfg(test)]
mod tests;
mod validate;

pub use channels::*;
pub use operations::*;
pub use server::*;

pub use secret::Secret;

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
    /// The full-text index.
    pub search: SearchSection,
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
    /// When people answer: opening hours, time zone, holidays (unset: always open).
    pub business_hours: BusinessHoursSection,
    /// Backups.
    pub backup: BackupSection,
    /// Job schedules.
    pub jobs: JobsSection,
    /// Age limits of kept records.
    pub retention: RetentionSection,
    /// Where stock alerts go besides sockets and the API.
    pub alerts: AlertsSection,
    /// Event webhooks.
    pub webhooks: WebhooksSection,
    /// Deprecated routes.
    pub api: ApiSection,
    /// An optional log file besides stdout, rotated by size.
    pub log_file: LogFileSection,
}

impl Config {
    /// The off-machine backup target, when `[backup.offsite]` names one
    /// (validate() has checked its key).
    pub fn offsite(&self) -> Option<utalk_storage::offsite::Offsite> {
        let o = &self.backup.offsite;
        let key = utalk_storage::offsite::OffsiteKey::from_base64(o.key.as_ref()?.expose()).ok()?;
        Some(utalk_storage::offsite::Offsite::new(o.dir.clone()?, key, self.node_id.as_deref().unwrap_or("local")))
    }

    /// Where backups go.
    pub fn backup_dir(&self) -> PathBuf {
        self.backup_dir_for(&self.data_dir)
    }

    /// Where backups of data directory `data_dir` go: `backup.dir`, else
    /// `<data_dir>-backups` beside it.
    pub fn backup_dir_for(&self, data_dir: &std::path::Path) -> PathBuf {
        if let Some(d) = &self.backup.dir {
            return d.clone();
        }
        let name = data_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "data".into());
        data_dir.with_file_name(format!("{name}-backups"))
    }
}

/// Levels per environment: verbose where people develop, request lines with
/// their ids in production (the runbooks search them), quiet under test.
/// A list given as a list (a file) or as one comma-separated string (the environment).
fn list_or_commas<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        List(Vec<String>),
        Commas(String),
    }
    Ok(match Either::deserialize(d)? {
        Either::List(l) => l,
        Either::Commas(s) => s.split(',').map(str::trim).filter(|p| !p.is_empty()).map(str::to_owned).collect(),
    })
}

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
            search: SearchSection::default(),
            conversations: ConversationsConfig::default(),
            http: HttpConfig::default(),
            auth: AuthConfig::default(),
            socket: SocketSection::default(),
            media: MediaSection::default(),
            delivery: DeliverySection::default(),
            openai_api_key: None,
            bot: BotSection::default(),
            business_hours: BusinessHoursSection::default(),
            backup: BackupSection::default(),
            jobs: JobsSection::default(),
            retention: RetentionSection::default(),
            alerts: AlertsSection::default(),
            webhooks: WebhooksSection::default(),
            api: ApiSection::default(),
            log_file: LogFileSection::default(),
        }
    }
}
