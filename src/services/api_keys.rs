//! Integrators' API keys: made by an admin with a name, a role and an
//! optional expiry, shown once, kept as a hash, listed and revoked. A key is
//! found by the hash of what the caller presents; its last use is recorded
//! at most once a minute per key and node, so a busy integrator does not
//! turn each request into a write.

use super::ServiceError;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use utalk_actors::Journal;
use utalk_storage::model::{api_key, ApiKey, AuditEvent, Role};
use utalk_storage::{Batch, Db, Timestamp};
use uuid::Uuid;

/// What every key starts with, so a key is told from a token at a glance
/// (and by secret scanners).
pub const KEY_PREFIX: &str = "utk_";
/// Longest key name, in characters.
pub const MAX_NAME_CHARS: usize = 100;
/// How often one key's use is recorded, at most.
const USE_RECORD_EVERY: Duration = Duration::from_secs(60);

/// A key as made: the record and the secret, which is shown this once.
pub struct NewKey {
    /// The stored record.
    pub record: ApiKey,
    /// The key itself.
    pub secret: String,
}

/// A stored key with when it was last used.
pub struct KeyInfo {
    /// The record.
    pub record: ApiKey,
    /// Last use, as recorded.
    pub last_used_at: Option<Timestamp>,
}

fn hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Makes a key for `actor`; refused past `max_live` live keys.
pub async fn create(
    db: &Db,
    journal: &Journal,
    actor: Uuid,
    name: &str,
    role: Role,
    expires_at: Option<Timestamp>,
    max_live: usize,
) -> Result<NewKey, ServiceError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(ServiceError::Invalid {
            code: "validation_failed",
            message: format!("name must have 1 to {MAX_NAME_CHARS} characters and no control characters"),
        });
    }
    let now = Timestamp::now();
    if expires_at.is_some_and(|e| e <= now) {
        return Err(ServiceError::Invalid { code: "validation_failed", message: "expiresAt must be in the future".into() });
    }
    let live = super::blocking({
        let db = db.clone();
        move || Ok(api_key::count_live(&db, now, max_live)?)
    })
    .await?;
    if live >= max_live {
        return Err(ServiceError::Conflict {
            code: "too_many_keys",
            message: format!("{live} keys are live, the most allowed (auth.max_api_keys); revoke one first"),
        });
    }
    let mut raw = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut raw);
    let secret = format!("{KEY_PREFIX}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw));
    let record = ApiKey {
        id: Uuid::now_v7(),
        name: name.to_string(),
        role,
        prefix: secret.chars().take(KEY_PREFIX.len() + 6).collect(),
        hash: hash(&secret),
        created_at: now,
        created_by: actor,
        expires_at,
        revoked_at: None,
    };
    let mut b = api_key::create_batch(&record)?;
    AuditEvent::new(actor.to_string(), "api_key.create", format!("{} {} ({})", record.id, record.name, role.as_str())).add_to(&mut b)?;
    journal.commit(b).await?;
    Ok(NewKey { record, secret })
}

/// Keys in id order after `after`, at most `limit`, with their last use.
pub fn list(db: &Db, after: Option<Uuid>, limit: usize) -> Result<Vec<KeyInfo>, ServiceError> {
    api_key::list(db, after, limit)?
        .into_iter()
        .map(|record| Ok(KeyInfo { last_used_at: api_key::last_used(db, record.id)?, record }))
        .collect()
}

/// When key `id` was last used, as recorded.
pub fn last_used(db: &Db, id: Uuid) -> Result<Option<Timestamp>, ServiceError> {
    Ok(api_key::last_used(db, id)?)
}

/// One key.
pub fn key(db: &Db, id: Uuid) -> Result<Option<ApiKey>, ServiceError> {
    Ok(api_key::get(db, id)?)
}

/// Revokes key `id`: it stops working on each node as soon as that node
/// applies the change. Revoking a revoked key changes nothing.
pub async fn revoke(db: &Db, journal: &Journal, actor: Uuid, id: Uuid) -> Result<ApiKey, ServiceError> {
    let mut k = api_key::get(db, id)?.ok_or(ServiceError::NotFound("api key"))?;
    if k.revoked_at.is_some() {
        return Ok(k);
    }
    k.revoked_at = Some(Timestamp::now());
    let mut b = Batch::new();
    api_key::revoke(&mut b, &k)?;
    AuditEvent::new(actor.to_string(), "api_key.revoke", format!("{} {}", k.id, k.name)).add_to(&mut b)?;
    journal.commit(b).await?;
    Ok(k)
}

/// Checks presented keys and records their use, at most once a minute per
/// key. Holds one entry per key seen, bounded by the live keys allowed
/// (entries of keys not seen for a minute are dropped first).
pub struct KeysInUse {
    recorded: Mutex<HashMap<Uuid, Instant>>,
    max: usize,
}

impl KeysInUse {
    /// Remembers at most `max_live` keys' last recording (and no fewer than 16).
    pub fn new(max_live: usize) -> KeysInUse {
        KeysInUse { recorded: Mutex::new(HashMap::new()), max: max_live.max(16) }
    }

    /// The live key `secret` names, or the code that refuses it
    /// (`invalid_token`, `token_expired`).
    pub fn check(&self, db: &Db, journal: &Journal, secret: &str) -> Result<ApiKey, &'static str> {
        // Keys have a fixed form; anything longer is not one (and is not hashed).
        if secret.len() > 64 {
            return Err("invalid_token");
        }
        let key = api_key::by_hash(db, &hash(secret)).map_err(|_| "invalid_token")?.ok_or("invalid_token")?;
        if key.revoked_at.is_some() {
            return Err("invalid_token");
        }
        if !key.usable(Timestamp::now()) {
            return Err("token_expired");
        }
        if self.due(key.id) {
            let (journal, id) = (journal.clone(), key.id);
            tokio::spawn(async move {
                let mut b = Batch::new();
                api_key::record_use(&mut b, id, Timestamp::now());
                if let Err(e) = journal.commit(b).await {
                    tracing::warn!(error = %e, key = %id, "could not record an API key's use");
                }
            });
        }
        Ok(key)
    }

    /// Whether `id`'s use should be recorded now (and notes that it is).
    fn due(&self, id: Uuid) -> bool {
        let mut recorded = self.recorded.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if recorded.get(&id).is_some_and(|at| now.duration_since(*at) < USE_RECORD_EVERY) {
            return false;
        }
        if recorded.len() >= self.max {
            recorded.retain(|_, at| now.duration_since(*at) < USE_RECORD_EVERY);
            if recorded.len() >= self.max {
                // Every entry is fresh: more keys in use than are allowed live. Skip this record.
                return false;
            }
        }
        recorded.insert(id, now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_use_is_recorded_once_a_minute_and_the_table_stays_bounded() {
        let uses = KeysInUse::new(16);
        let a = Uuid::from_u128(1);
        assert!(uses.due(a));
        assert!(!uses.due(a), "a second use within the minute is not recorded");
        for i in 2..17u128 {
            assert!(uses.due(Uuid::from_u128(i)));
        }
        assert!(!uses.due(Uuid::from_u128(99)), "past the bound nothing more is held");
        assert_eq!(uses.recorded.lock().unwrap().len(), 16);
    }
}
