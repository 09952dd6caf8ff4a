use std::path::PathBuf;

/// A value could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The bytes do not start with the envelope's tag.
    #[error("value is not in the utalk envelope (first byte {0:#04x})")]
    BadEnvelope(u8),
    /// The value is shorter than its envelope.
    #[error("value truncated")]
    Truncated,
    /// The record was written by a newer or unknown schema.
    #[error("{kind} record version {found} cannot be read (this build reads up to {supported})")]
    UnknownVersion {
        /// Record kind.
        kind: &'static str,
        /// Version found on disk.
        found: u16,
        /// Newest version this build reads.
        supported: u16,
    },
    /// A field holds a number that names none of its values (written by a
    /// newer build, or damaged).
    #[error("{kind} record: {field} number {code} is not known to this build")]
    UnknownCode {
        /// Record kind.
        kind: &'static str,
        /// The field.
        field: &'static str,
        /// The number found.
        code: u8,
    },
    /// MessagePack decoding failed.
    #[error("decoding {kind}: {source}")]
    Decode {
        /// Record kind.
        kind: &'static str,
        /// Cause.
        source: rmp_serde::decode::Error,
    },
    /// MessagePack encoding failed.
    #[error("encoding {kind}: {source}")]
    Encode {
        /// Record kind.
        kind: &'static str,
        /// Cause.
        source: rmp_serde::encode::Error,
    },
    /// A key did not have the expected layout.
    #[error("malformed key: {0}")]
    BadKey(&'static str),
}

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another process holds the data directory.
    #[error("data directory {path} is in use by another process (is a utalk server running on it?)")]
    Locked {
        /// The data directory.
        path: PathBuf,
    },
    /// The database was written by a newer utalk.
    #[error("database schema version {found} (readable from version {readable_from}) is newer than this build reads ({supported}); use a newer utalk, or roll the data back with it: `utalk migrate rollback --to {supported}`")]
    TooNew {
        /// Version on disk.
        found: u32,
        /// The oldest build version that can read it.
        readable_from: u32,
        /// Version of this build.
        supported: u32,
    },
    /// Opening the database failed.
    #[error("cannot open database at {path}: {message}")]
    Open {
        /// The data directory.
        path: PathBuf,
        /// RocksDB's message.
        message: String,
    },
    /// A read or write failed in RocksDB.
    #[error("storage engine: {0}")]
    Engine(String),
    /// A value could not be encoded or decoded.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The store writer stopped after a failed write; restart the server.
    #[error("store writer has stopped after a failed write")]
    WriterStopped,
}

impl From<rocksdb::Error> for StoreError {
    fn from(e: rocksdb::Error) -> Self {
        StoreError::Engine(e.into_string())
    }
}
