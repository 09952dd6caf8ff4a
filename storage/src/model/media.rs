use crate::batch::Batch;
use crate::codec::Record;
use crate::db::Db;
use crate::error::{CodecError, StoreError};
use crate::keys::Key;
use crate::maps::Map;
use crate::model::message::MediaStatus;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// How a media file reached us.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaSource {
    /// Uploaded over REST.
    Upload,
    /// Downloaded from the channel (Twilio's media URL).
    Channel,
}

/// A media file's description; the bytes live in the media directory under its id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MediaRecord {
    /// Id.
    pub id: Uuid,
    /// MIME type.
    pub content_type: String,
    /// Size in bytes (0 until stored).
    pub size: u64,
    /// SHA-256 of the bytes, hex (empty until stored).
    pub sha256: String,
    /// Download state.
    pub status: MediaStatus,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Upload or channel.
    pub source: MediaSource,
    /// The conversation it belongs to, if any.
    pub conversation_id: Option<Uuid>,
    /// The message it is attached to, if any.
    pub message_id: Option<Uuid>,
    /// Uploader (staff user), if any.
    pub uploaded_by: Option<Uuid>,
    /// Created.
    pub created_at: Timestamp,
}

impl Record for MediaRecord {
    const KIND: &'static str = "media";
}

/// A download of inbound media still to do; removed when it succeeds or gives up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MediaFetch {
    /// The media id the file will have.
    pub media_id: Uuid,
    /// Conversation of the message.
    pub conversation_id: Uuid,
    /// Message the media is attached to.
    pub message_id: Uuid,
    /// Where the channel offers it.
    pub url: String,
    /// MIME type the channel announced.
    pub content_type: String,
    /// Attempts so far.
    pub attempts: u32,
    /// Not before this time.
    pub next_attempt_at: Timestamp,
    /// Last transient error.
    pub last_error: Option<String>,
}

impl Record for MediaFetch {
    const KIND: &'static str = "media_fetch";
}

/// Reads a media record.
pub fn get(db: &Db, id: Uuid) -> Result<Option<MediaRecord>, StoreError> {
    db.get(Map::Media, Key::new().uuid(id))
}

/// Adds the write of `record` to `batch`.
pub fn put(batch: &mut Batch, record: &MediaRecord) -> Result<(), CodecError> {
    batch.put(Map::Media, Key::new().uuid(record.id), record)?;
    Ok(())
}

/// Adds the removal of media record `id` to `batch` (an erasure).
pub fn delete(batch: &mut Batch, id: Uuid) {
    batch.delete(Map::Media, Key::new().uuid(id));
}

/// Adds the write of a pending download to `batch`.
pub fn put_fetch(batch: &mut Batch, fetch: &MediaFetch) -> Result<(), CodecError> {
    batch.put(Map::MediaFetches, Key::new().uuid(fetch.media_id), fetch)?;
    Ok(())
}

/// Adds the removal of a finished download to `batch`.
pub fn delete_fetch(batch: &mut Batch, media_id: Uuid) {
    batch.delete(Map::MediaFetches, Key::new().uuid(media_id));
}

/// Pending downloads after `after` (exclusive), at most `limit`.
pub fn fetches(db: &Db, after: Option<Uuid>, limit: usize) -> Result<Vec<MediaFetch>, StoreError> {
    let start = match after {
        Some(a) => Key::new().uuid(a).u8(0).into_bytes(),
        None => Vec::new(),
    };
    Ok(db.scan::<MediaFetch>(Map::MediaFetches, &[], &start, limit)?.into_iter().map(|(_, f)| f).collect())
}

/// Number of pending downloads, counting at most `cap`.
pub fn count_fetches(db: &Db, cap: usize) -> Result<usize, StoreError> {
    Ok(db.scan_raw(Map::MediaFetches, &[], &[], cap)?.len())
}

/// Records an upload of `size` bytes as media `id` of `conversation`, for its quota.
pub fn put_upload(batch: &mut Batch, conversation: Uuid, id: Uuid, size: u64) {
    batch.put_raw(Map::ConvidMedia, Key::new().uuid(conversation).uuid(id).into_bytes(), size.to_be_bytes().to_vec());
}

/// Uploads of `conversation`: how many and their bytes, counting at most `cap` files.
pub fn uploads(db: &Db, conversation: Uuid, cap: usize) -> Result<(usize, u64), StoreError> {
    let rows = db.scan_raw(Map::ConvidMedia, &Key::new().uuid(conversation).into_bytes(), &[], cap)?;
    let bytes = rows.iter().filter_map(|(_, v)| <[u8; 8]>::try_from(v.as_slice()).ok()).map(u64::from_be_bytes).sum();
    Ok((rows.len(), bytes))
}
