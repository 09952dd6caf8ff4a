//! Uploaded and fetched media as stored: their records, a conversation's
//! uploads, and storing an upload (the file, then its record).

use super::ServiceError;
use std::sync::Arc;
use utalk_actors::channels::media_store::{MediaFileError, MediaStore};
use utalk_actors::Journal;
use utalk_storage::model::{media, MediaRecord, MediaSource, MediaStatus};
use utalk_storage::{Batch, Db, Timestamp};
use uuid::Uuid;

/// A media record.
pub fn get(db: &Db, id: Uuid) -> Result<MediaRecord, ServiceError> {
    media::get(db, id)?.ok_or(ServiceError::NotFound("media"))
}

/// A media record, if `id` names one.
pub fn find(db: &Db, id: Uuid) -> Result<Option<MediaRecord>, ServiceError> {
    Ok(media::get(db, id)?)
}

/// The files and bytes uploaded to `conversation`, counted up to `cap` files.
pub fn uploads(db: &Db, conversation: Uuid, cap: usize) -> Result<(usize, u64), ServiceError> {
    Ok(media::uploads(db, conversation, cap)?)
}

/// A checked upload, not stored yet.
pub struct Upload {
    /// Its content type, allowed by the media settings.
    pub content_type: String,
    /// The file.
    pub bytes: Vec<u8>,
    /// The conversation whose quota it counts against.
    pub conversation_id: Option<Uuid>,
    /// The staff user who sent it (none for a widget).
    pub uploaded_by: Option<Uuid>,
}

/// Why an upload was not stored.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The file could not be written.
    #[error(transparent)]
    File(#[from] MediaFileError),
    /// Its record could not be written (the file is removed again).
    #[error(transparent)]
    Record(#[from] ServiceError),
}

/// Writes the file, then its record (counted against its conversation's
/// quota when it has one); a file whose record fails is removed, so that no
/// file is left that nothing points to.
pub async fn store_upload(journal: &Journal, files: &Arc<MediaStore>, upload: Upload) -> Result<MediaRecord, UploadError> {
    let id = Uuid::now_v7();
    let size = upload.bytes.len() as u64;
    let sha256 = files.save(id, upload.bytes.into()).await?;
    let record = MediaRecord {
        id,
        content_type: upload.content_type,
        size,
        sha256,
        status: MediaStatus::Stored,
        error: None,
        source: MediaSource::Upload,
        conversation_id: upload.conversation_id,
        message_id: None,
        uploaded_by: upload.uploaded_by,
        created_at: Timestamp::now(),
    };
    if let Err(e) = record_upload(journal, &record).await {
        files.remove(id).await;
        return Err(e.into());
    }
    Ok(record)
}

async fn record_upload(journal: &Journal, record: &MediaRecord) -> Result<(), ServiceError> {
    let mut b = Batch::new();
    media::put(&mut b, record)?;
    if let Some(c) = record.conversation_id {
        media::put_upload(&mut b, c, record.id, record.size);
    }
    Ok(journal.commit(b).await?)
}
