//! Erasures: which customer was erased and which conversations held them,
//! by id only. Written through the log once an erasure is done, so that
//! every node, not only the one that served it, rewrites its own files and
//! records the erasure in its own ledger.

use crate::batch::Batch;
use crate::codec::Record;
use crate::db::Db;
use crate::error::{CodecError, StoreError};
use crate::keys::Key;
use crate::maps::Map;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Most ids (conversations and media) one record holds, so that it stays
/// far below a log entry's size limit.
pub const MAX_IDS: usize = 4_000;

/// One erasure, or one part of a large one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Erasure {
    /// Id (UUIDv7: erasures sort by when they were made).
    pub id: Uuid,
    /// The contact erased.
    pub contact_id: Uuid,
    /// Their conversations.
    pub conversations: Vec<Uuid>,
    /// Their media files (a large erasure is written as several records,
    /// each within [`MAX_IDS`] ids).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub media: Vec<Uuid>,
    /// When.
    pub erased_at: Timestamp,
    /// The node that served it, which has rewritten its files already.
    pub node: String,
}

impl Record for Erasure {
    const KIND: &'static str = "erasure";
}

/// Adds the write of `e` to `batch`.
pub fn put(batch: &mut Batch, e: &Erasure) -> Result<(), CodecError> {
    batch.put(Map::Erasures, Key::new().uuid(e.id), e)?;
    Ok(())
}

/// At most `limit` erasures made after the one with id `after` (all of them
/// from the first when `None`), oldest first.
pub fn after(db: &Db, after: Option<Uuid>, limit: usize) -> Result<Vec<Erasure>, StoreError> {
    let start = match after {
        // The first key past `after`'s.
        Some(id) => {
            let mut k = Key::new().uuid(id).into_bytes();
            k.push(0);
            k
        }
        None => Vec::new(),
    };
    Ok(db.scan::<Erasure>(Map::Erasures, &[], &start, limit)?.into_iter().map(|(_, e)| e).collect())
}

/// This node's own mark (never replicated): the last erasure whose files it rewrote.
const SCRUBBED: &[u8] = b"erasure_scrubbed";

/// The last erasure this node has rewritten its files for.
pub fn scrubbed(db: &Db) -> Result<Option<Uuid>, StoreError> {
    Ok(db.get_raw(Map::Meta, SCRUBBED)?.and_then(|v| Uuid::from_slice(&v).ok()))
}

/// Adds this node's mark that its files are rewritten up to erasure `id`.
pub fn mark_scrubbed(batch: &mut Batch, id: Uuid) {
    batch.put_raw(Map::Meta, SCRUBBED.to_vec(), id.as_bytes().to_vec());
}
