//! Integrators' API keys. The secret is shown once and kept only as its
//! SHA-256: keys are 32 random bytes, so a fast hash is enough (a slow one
//! would cost every request without making a guess any less hopeless).

use crate::batch::Batch;
use crate::codec::Record;
use crate::db::Db;
use crate::error::{CodecError, StoreError};
use crate::keys::{Key, KeyReader};
use crate::maps::Map;
use crate::model::user::Role;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// An API key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKey {
    /// Key id; also the caller's id when the key is used.
    pub id: Uuid,
    /// What it is for.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// The key's first characters, to tell keys apart in lists.
    pub prefix: String,
    /// SHA-256 of the key.
    pub hash: [u8; 32],
    /// When it was made.
    pub created_at: Timestamp,
    /// Who made it.
    pub created_by: Uuid,
    /// When it stops working, if ever.
    #[serde(default)]
    pub expires_at: Option<Timestamp>,
    /// When it was revoked.
    #[serde(default)]
    pub revoked_at: Option<Timestamp>,
}

impl Record for ApiKey {
    const KIND: &'static str = "api_key";
}

impl ApiKey {
    /// Whether the key works at `now`.
    pub fn usable(&self, now: Timestamp) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| e > now)
    }
}

/// Reads a key by id.
pub fn get(db: &Db, id: Uuid) -> Result<Option<ApiKey>, StoreError> {
    db.get(Map::ApiKeys, Key::new().uuid(id))
}

/// The key whose secret hashes to `hash`, if it was not revoked.
pub fn by_hash(db: &Db, hash: &[u8; 32]) -> Result<Option<ApiKey>, StoreError> {
    match db.get_raw(Map::KeyhashId, Key::new().bytes(hash))? {
        Some(id) => get(db, KeyReader::new(&id).uuid()?),
        None => Ok(None),
    }
}

/// Keys in id order after `after`, at most `limit`.
pub fn list(db: &Db, after: Option<Uuid>, limit: usize) -> Result<Vec<ApiKey>, StoreError> {
    let start = after.map(|a| Key::new().uuid(a).u8(0).into_bytes()).unwrap_or_default();
    Ok(db.scan::<ApiKey>(Map::ApiKeys, &[], &start, limit)?.into_iter().map(|(_, k)| k).collect())
}

/// Keys not revoked, up to `limit` (to hold the number of live keys to a bound).
pub fn count_live(db: &Db, now: Timestamp, limit: usize) -> Result<usize, StoreError> {
    let mut n = 0;
    let mut after = None;
    loop {
        let page = list(db, after, 500)?;
        n += page.iter().filter(|k| k.usable(now)).count();
        match page.last() {
            Some(last) if page.len() == 500 && n < limit => after = Some(last.id),
            _ => return Ok(n),
        }
    }
}

/// The writes that create `key` with its hash index.
pub fn create_batch(key: &ApiKey) -> Result<Batch, CodecError> {
    let mut b = Batch::new();
    b.put(Map::ApiKeys, Key::new().uuid(key.id), key)?;
    b.put_raw(Map::KeyhashId, Key::new().bytes(&key.hash).into_bytes(), key.id.as_bytes().to_vec());
    Ok(b)
}

/// Adds the revocation of `key` (already marked revoked): the record stays
/// for the list, the hash index goes, so the key is no longer found.
pub fn revoke(batch: &mut Batch, key: &ApiKey) -> Result<(), CodecError> {
    batch.put(Map::ApiKeys, Key::new().uuid(key.id), key)?;
    batch.delete(Map::KeyhashId, Key::new().bytes(&key.hash));
    Ok(())
}

/// Adds a use of key `id` at `at`.
pub fn record_use(batch: &mut Batch, id: Uuid, at: Timestamp) {
    batch.put_raw(Map::KeyUsed, Key::new().uuid(id).into_bytes(), at.millis().to_be_bytes().to_vec());
}

/// When key `id` was last used.
pub fn last_used(db: &Db, id: Uuid) -> Result<Option<Timestamp>, StoreError> {
    Ok(db
        .get_raw(Map::KeyUsed, Key::new().uuid(id))?
        .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
        .map(|b| Timestamp(i64::from_be_bytes(b))))
}
