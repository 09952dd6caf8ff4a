//! API views of the backup records: the shape REST and the socket show, kept apart
//! from the disk records so a rename here cannot change what is stored.

use serde::Serialize;
use utalk_storage::backup as storage;
use utalk_storage::Timestamp;
use utoipa::ToSchema;

/// One backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupInfo {
    /// Id (increasing).
    pub id: u32,
    /// When it was taken.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// Bytes of the files it references (shared files counted in each).
    pub size: u64,
    /// Files it references.
    pub files: u32,
}

impl From<storage::BackupInfo> for BackupInfo {
    fn from(r: storage::BackupInfo) -> Self {
        Self { id: r.id, created_at: r.created_at, size: r.size, files: r.files }
    }
}
