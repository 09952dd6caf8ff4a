use crate::batch::Batch;
use crate::codec::Record;
use crate::db::Db;
use crate::error::{CodecError, StoreError};
use crate::keys::Key;
use crate::maps::Map;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A refresh token, stored under the SHA-256 of its secret value.
///
/// Tokens of one login form a family; each refresh replaces the presented
/// token with a new one. Presenting a replaced token again means it leaked,
/// and the whole family is revoked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefreshToken {
    /// Owner.
    pub user_id: Uuid,
    /// Login the token descends from.
    pub family: Uuid,
    /// Expiry.
    pub expires_at: Timestamp,
    /// Hash of the token that replaced this one, once used.
    #[serde(default)]
    pub replaced_by: Option<[u8; 32]>,
    /// When it was issued; absent in tokens issued before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_at: Option<Timestamp>,
}

impl Record for RefreshToken {
    const KIND: &'static str = "refresh_token";
}

/// Reads a token by the hash of its value.
pub fn get(db: &Db, hash: &[u8; 32]) -> Result<Option<RefreshToken>, StoreError> {
    db.get(Map::RefreshTokens, Key::new().bytes(hash))
}

/// Adds `token` under `hash` to `batch`.
pub fn put(batch: &mut Batch, hash: &[u8; 32], token: &RefreshToken) -> Result<(), CodecError> {
    batch.put(Map::RefreshTokens, Key::new().bytes(hash), token)?;
    Ok(())
}

/// Adds the removal of the token under `hash`.
pub fn delete(batch: &mut Batch, hash: &[u8; 32]) {
    batch.delete(Map::RefreshTokens, Key::new().bytes(hash));
}
