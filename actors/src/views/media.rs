//! API views of the media records: the shape REST and the socket show, kept apart
//! from the disk records so a rename here cannot change what is stored.

use super::*;
use serde::{Deserialize, Serialize};
use utalk_storage::model::media as storage;
use utalk_storage::Timestamp;
use utoipa::ToSchema;
use uuid::Uuid;

/// How a media file reached us.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MediaSource {
    /// Uploaded over REST.
    Upload,
    /// Downloaded from the channel (Twilio's media URL).
    Channel,
}

impl From<storage::MediaSource> for MediaSource {
    fn from(r: storage::MediaSource) -> Self {
        match r {
            storage::MediaSource::Upload => MediaSource::Upload,
            storage::MediaSource::Channel => MediaSource::Channel,
        }
    }
}

/// A media file's description; the bytes live in the media directory under its id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
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
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
}

impl From<storage::MediaRecord> for MediaRecord {
    fn from(r: storage::MediaRecord) -> Self {
        Self {
            id: r.id,
            content_type: r.content_type,
            size: r.size,
            sha256: r.sha256,
            status: r.status.into(),
            error: r.error,
            source: r.source.into(),
            conversation_id: r.conversation_id,
            message_id: r.message_id,
            uploaded_by: r.uploaded_by,
            created_at: r.created_at,
        }
    }
}
