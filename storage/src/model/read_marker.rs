//! How far each reader has read a conversation.

use crate::batch::Batch;
use crate::db::Db;
use crate::error::StoreError;
use crate::keys::Key;
use crate::maps::Map;
use uuid::Uuid;

fn key(conversation: Uuid, reader: Option<Uuid>) -> Key {
    Key::new().uuid(conversation).uuid(reader.unwrap_or(Uuid::nil()))
}

/// The last seq `reader` (none: the customer) has read in `conversation`.
pub fn get(db: &Db, conversation: Uuid, reader: Option<Uuid>) -> Result<Option<u64>, StoreError> {
    Ok(db
        .get_raw(Map::ReadMarkers, key(conversation, reader))?
        .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
        .map(u64::from_be_bytes))
}

/// Adds the marker to `batch`.
pub fn put(batch: &mut Batch, conversation: Uuid, reader: Option<Uuid>, seq: u64) {
    batch.put_raw(Map::ReadMarkers, key(conversation, reader).into_bytes(), seq.to_be_bytes().to_vec());
}
