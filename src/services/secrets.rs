//! The secrets utalk generates for itself when the operator sets none, kept
//! in the data directory's meta map (each node its own: they are written
//! with `commit_node`, not replicated), and the rotation of the token
//! signing secret.

use crate::config::Secret;
use base64::Engine;
use rand::RngCore;
use utalk_actors::durability::JournalError;
use utalk_actors::Journal;
use utalk_storage::{Batch, Db, Map, StoreError, Timestamp};

const META_JWT_SECRET: &[u8] = b"jwt_secret";
const META_JWT_PREVIOUS: &[u8] = b"jwt_previous";
const META_MEDIA_SECRET: &[u8] = b"media_url_secret";

/// Why a stored secret could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// Reading the meta map failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The write did not reach storage.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// A stored value is damaged.
    #[error("the stored {0} is damaged (not UTF-8 or not the expected JSON)")]
    Damaged(&'static str),
}

/// The token signing secret generated for this data directory.
pub async fn jwt_secret(db: &Db, journal: &Journal) -> Result<Secret, SecretError> {
    stored_or_generated(db, journal, META_JWT_SECRET, "a token signing secret", "UTALK_JWT_SECRET").await
}

/// The media URL signing secret generated for this data directory.
pub async fn media_url_secret(db: &Db, journal: &Journal) -> Result<Secret, SecretError> {
    stored_or_generated(db, journal, META_MEDIA_SECRET, "a media URL signing secret", "UTALK_MEDIA__URL_SECRET").await
}

/// The secret kept under `key`, generated (48 random bytes) and stored on
/// first use. `what` and `setting` name it in the log line that says so.
async fn stored_or_generated(db: &Db, journal: &Journal, key: &[u8], what: &'static str, setting: &str) -> Result<Secret, SecretError> {
    if let Some(v) = db.get_raw(Map::Meta, key)? {
        return Ok(Secret::new(String::from_utf8(v).map_err(|_| SecretError::Damaged(what))?));
    }
    let s = random_secret();
    let mut b = Batch::new();
    b.put_raw(Map::Meta, key.to_vec(), s.clone().into_bytes());
    journal.commit_node(b).await.map_err(JournalError::from)?;
    tracing::info!("generated {what} and stored it in the data directory (set {setting} to manage it yourself)");
    Ok(Secret::new(s))
}

fn random_secret() -> String {
    let mut bytes = [0u8; 48];
    rand::thread_rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A signing secret rotated out, kept so that tokens it signed verify until they expire.
#[derive(serde::Serialize, serde::Deserialize)]
struct PreviousKey {
    secret: String,
    valid_until_ms: i64,
}

fn previous_keys(db: &Db) -> Result<Vec<PreviousKey>, SecretError> {
    match db.get_raw(Map::Meta, META_JWT_PREVIOUS)? {
        Some(v) => serde_json::from_slice(&v).map_err(|_| SecretError::Damaged("list of rotated signing secrets")),
        None => Ok(Vec::new()),
    }
}

/// The generated signing secrets rotated out whose grace has not ended.
pub fn stored_previous_jwt(db: &Db) -> Result<Vec<(Secret, Timestamp)>, SecretError> {
    let now = Timestamp::now().millis();
    Ok(previous_keys(db)?
        .into_iter()
        .filter(|k| k.valid_until_ms > now)
        .map(|k| (Secret::new(k.secret), Timestamp(k.valid_until_ms)))
        .collect())
}

/// Replaces the generated token signing secret with a new one (the server
/// stopped); the old one keeps verifying tokens for `grace`. Returns when the grace ends.
pub async fn rotate_jwt(db: &Db, journal: &Journal, grace: std::time::Duration) -> Result<Timestamp, SecretError> {
    let now = Timestamp::now();
    let until = Timestamp(now.millis().saturating_add(i64::try_from(grace.as_millis()).unwrap_or(i64::MAX)));
    let mut keep: Vec<PreviousKey> = previous_keys(db)?.into_iter().filter(|k| k.valid_until_ms > now.millis()).collect();
    if let Some(old) = db.get_raw(Map::Meta, META_JWT_SECRET)? {
        let secret = String::from_utf8(old).map_err(|_| SecretError::Damaged("token signing secret"))?;
        keep.push(PreviousKey { secret, valid_until_ms: until.millis() });
    }
    let mut b = Batch::new();
    b.put_raw(Map::Meta, META_JWT_SECRET.to_vec(), random_secret().into_bytes());
    let previous = serde_json::to_vec(&keep).map_err(|_| SecretError::Damaged("list of rotated signing secrets"))?;
    b.put_raw(Map::Meta, META_JWT_PREVIOUS.to_vec(), previous);
    journal.commit_node(b).await.map_err(JournalError::from)?;
    Ok(until)
}
