//! Canned responses: replies agents saved under a short code, expanded by
//! typing `/code` in the console.

use crate::batch::Batch;
use crate::codec::Record;
use crate::db::Db;
use crate::error::{CodecError, StoreError};
use crate::keys::Key;
use crate::maps::Map;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Most canned responses kept: every agent reads the whole list, so it stays small.
pub const MAX_CANNED_RESPONSES: usize = 1_000;
/// Longest content, in characters: what a message may hold.
pub const MAX_CONTENT_CHARS: usize = 4_096;

/// One saved reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CannedResponse {
    /// Id (UUIDv7).
    pub id: Uuid,
    /// What an agent types after `/` (see [`valid_short_code`]); unique.
    pub short_code: String,
    /// The text it expands to.
    pub content: String,
    /// Who made it.
    pub created_by: Uuid,
    /// Created.
    pub created_at: Timestamp,
    /// Last changed.
    pub updated_at: Timestamp,
}

impl Record for CannedResponse {
    const KIND: &'static str = "canned_response";
}

/// Whether `code` may be a short code: 1–32 of `a-z`, `0-9`, `_`, `-`.
pub fn valid_short_code(code: &str) -> bool {
    !code.is_empty() && code.len() <= 32 && code.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-".contains(&b))
}

/// Reads one.
pub fn get(db: &Db, id: Uuid) -> Result<Option<CannedResponse>, StoreError> {
    db.get(Map::CannedResponses, Key::new().uuid(id))
}

/// Every canned response, by short code (at most [`MAX_CANNED_RESPONSES`] are ever stored).
pub fn all(db: &Db) -> Result<Vec<CannedResponse>, StoreError> {
    let mut all: Vec<CannedResponse> =
        db.scan::<CannedResponse>(Map::CannedResponses, &[], &[], MAX_CANNED_RESPONSES + 1)?.into_iter().map(|(_, c)| c).collect();
    all.sort_by(|a, b| a.short_code.cmp(&b.short_code));
    Ok(all)
}

/// Adds the write of `c` to `batch`.
pub fn put(batch: &mut Batch, c: &CannedResponse) -> Result<(), CodecError> {
    batch.put(Map::CannedResponses, Key::new().uuid(c.id), c)?;
    Ok(())
}

/// Adds the removal of `id` to `batch`.
pub fn delete(batch: &mut Batch, id: Uuid) {
    batch.delete(Map::CannedResponses, Key::new().uuid(id));
}
