//! Loading: defaults, then the file, then `UTALK_*` variables.

use super::Config;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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

/// Sections whose values are strings or lists of strings, so that
/// `UTALK_BUSINESS_HOURS__HOLIDAYS=2026-12-25` stays a string rather than a
/// TOML date; a value written as a TOML list (`["…", "…"]`) is still read as one.
const STRING_SECTIONS: &[&str] = &["business_hours"];

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
    "business_hours",
    "backup",
    "jobs",
    "retention",
    "alerts",
    "webhooks",
    "api",
    "log_file",
    "log_levels",
    "cluster",
    "search",
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
            let plain_string = (path.len() == 1 && STRING_KEYS.contains(&path[0].as_str()))
                || (STRING_SECTIONS.contains(&path[0].as_str()) && !raw.trim_start().starts_with('['));
            let value = if plain_string {
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
        config.validate().map_err(|e| ConfigError::Invalid { origin, message: e.0 })?;
        Ok(config)
    }

    /// The log filter in force: `log` when set, else this environment's
    /// entry in `log_levels`, else `info`.
    pub fn log_filter(&self) -> &str {
        self.log.as_deref().or_else(|| self.log_levels.get(&self.environment).map(String::as_str)).unwrap_or("info")
    }
}
