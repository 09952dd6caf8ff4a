//! Secret values (never printed or logged), and the secrets utalk generates
//! for itself when the operator sets none.

use base64::Engine;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use utalk_actors::Journal;
use utalk_storage::{Batch, Db, Map};

/// The secret kept under `key` in the database's meta map, generated (48
/// random bytes) and stored on first use. `what` and `setting` name it in
/// the log line that says so.
pub async fn stored_or_generated(db: &Db, journal: &Journal, key: &[u8], what: &str, setting: &str) -> anyhow::Result<Secret> {
    if let Some(v) = db.get_raw(Map::Meta, key)? {
        return Ok(Secret::new(String::from_utf8(v).map_err(|_| anyhow::anyhow!("stored {what} is not UTF-8"))?));
    }
    let mut bytes = [0u8; 48];
    rand::thread_rng().fill_bytes(&mut bytes);
    let s = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let mut b = Batch::new();
    b.put_raw(Map::Meta, key.to_vec(), s.clone().into_bytes());
    journal.commit_node(b).await?;
    tracing::info!("generated {what} and stored it in the data directory (set {setting} to manage it yourself)");
    Ok(Secret::new(s))
}

/// A secret value: never printed by `Debug` or logged.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The value, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("[redacted]")
    }
}

/// Why `secret` is not fit to sign tokens in production, if it is not:
/// a placeholder from a sample or a tutorial, or too little variety to be random.
pub fn weakness(secret: &str) -> Option<&'static str> {
    let lower = secret.to_ascii_lowercase();
    const PLACEHOLDERS: [&str; 8] = ["change", "secret", "example", "default", "password", "replace", "your-", "xxxx"];
    if PLACEHOLDERS.iter().any(|p| lower.contains(p)) {
        return Some("it looks like a placeholder");
    }
    let distinct: std::collections::BTreeSet<char> = secret.chars().collect();
    if distinct.len() < 12 {
        return Some("it has too few different characters to be random");
    }
    None
}

const META_JWT_SECRET: &[u8] = b"jwt_secret";
const META_JWT_PREVIOUS: &[u8] = b"jwt_previous";

/// A signing secret rotated out, kept so that tokens it signed verify until they expire.
#[derive(serde::Serialize, serde::Deserialize)]
struct PreviousKey {
    secret: String,
    valid_until_ms: i64,
}

fn previous_keys(db: &Db) -> anyhow::Result<Vec<PreviousKey>> {
    Ok(match db.get_raw(Map::Meta, META_JWT_PREVIOUS)? {
        Some(v) => serde_json::from_slice(&v)?,
        None => Vec::new(),
    })
}

/// The generated secrets rotated out whose grace has not ended.
pub fn stored_previous_jwt(db: &Db) -> anyhow::Result<Vec<(Secret, utalk_storage::Timestamp)>> {
    let now = utalk_storage::Timestamp::now().millis();
    Ok(previous_keys(db)?
        .into_iter()
        .filter(|k| k.valid_until_ms > now)
        .map(|k| (Secret::new(k.secret), utalk_storage::Timestamp(k.valid_until_ms)))
        .collect())
}

/// Replaces the generated token signing secret with a new one (the server
/// stopped); the old one keeps verifying tokens for `grace`. Returns when the grace ends.
pub fn rotate_jwt(db: &Db, grace: std::time::Duration) -> anyhow::Result<utalk_storage::Timestamp> {
    let now = utalk_storage::Timestamp::now();
    let until = utalk_storage::Timestamp(now.millis() + grace.as_millis() as i64);
    let mut keep: Vec<PreviousKey> = previous_keys(db)?.into_iter().filter(|k| k.valid_until_ms > now.millis()).collect();
    if let Some(old) = db.get_raw(Map::Meta, META_JWT_SECRET)? {
        keep.push(PreviousKey {
            secret: String::from_utf8(old).map_err(|_| anyhow::anyhow!("stored signing secret is not UTF-8"))?,
            valid_until_ms: until.millis(),
        });
    }
    let mut bytes = [0u8; 48];
    rand::thread_rng().fill_bytes(&mut bytes);
    let mut b = Batch::new();
    b.put_raw(Map::Meta, META_JWT_SECRET.to_vec(), base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes).into_bytes());
    b.put_raw(Map::Meta, META_JWT_PREVIOUS.to_vec(), serde_json::to_vec(&keep)?);
    db.write_group([&b], true)?;
    Ok(until)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_and_patterns_are_weak_random_is_not() {
        assert!(weakness("change-me-change-me-change-me-change-me").is_some());
        assert!(weakness("my-super-secret-jwt-key-for-prod-2026!!").is_some());
        assert!(weakness(&"ab".repeat(20)).is_some());
        assert!(weakness("3qJ9vX2mLp8TzR4wYc6NbF1hKd5GsA7e").is_none());
    }
}
