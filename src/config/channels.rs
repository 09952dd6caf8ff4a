//! The sections of what talks to customers: the bot, media files, WhatsApp delivery.

use crate::config::secret::Secret;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

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

/// `[business_hours]`: when people answer. Unset `timezone`: always open.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct BusinessHoursSection {
    /// IANA time zone the hours and holidays are in, e.g. `Europe/Madrid`;
    /// unset: no business hours, always open.
    pub timezone: Option<String>,
    /// Opening intervals on Mondays, e.g. `["09:00-14:00", "16:00-19:00"]`; none: closed.
    #[serde(deserialize_with = "super::list_or_commas")]
    pub monday: Vec<String>,
    /// Tuesdays.
    #[serde(deserialize_with = "super::list_or_commas")]
    pub tuesday: Vec<String>,
    /// Wednesdays.
    #[serde(deserialize_with = "super::list_or_commas")]
    pub wednesday: Vec<String>,
    /// Thursdays.
    #[serde(deserialize_with = "super::list_or_commas")]
    pub thursday: Vec<String>,
    /// Fridays.
    #[serde(deserialize_with = "super::list_or_commas")]
    pub friday: Vec<String>,
    /// Saturdays.
    #[serde(deserialize_with = "super::list_or_commas")]
    pub saturday: Vec<String>,
    /// Sundays.
    #[serde(deserialize_with = "super::list_or_commas")]
    pub sunday: Vec<String>,
    /// Dates closed all day, `YYYY-MM-DD` in the zone.
    #[serde(deserialize_with = "super::list_or_commas")]
    pub holidays: Vec<String>,
}

impl BusinessHoursSection {
    /// Each weekday's intervals, Monday first.
    pub fn week(&self) -> [&[String]; 7] {
        [&self.monday, &self.tuesday, &self.wednesday, &self.thursday, &self.friday, &self.saturday, &self.sunday]
    }

    /// The calendar these settings describe: always open without a time zone.
    pub fn calendar(&self) -> Result<utalk_storage::BusinessHours, BusinessHoursError> {
        match self.timezone.as_deref() {
            Some(zone) => Ok(utalk_storage::BusinessHours::new(zone, self.week(), &self.holidays)?),
            None if self.week().iter().any(|d| !d.is_empty()) || !self.holidays.is_empty() => Err(BusinessHoursError::NoZone),
            None => Ok(utalk_storage::BusinessHours::always_open()),
        }
    }
}

/// Why `[business_hours]` cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BusinessHoursError {
    /// Days or holidays were given without the zone they are in.
    #[error("timezone: required with opening hours or holidays (the zone they are in, e.g. Europe/Madrid)")]
    NoZone,
    /// The hours themselves are wrong.
    #[error(transparent)]
    Hours(#[from] utalk_storage::HoursError),
}
