//! Domain work the HTTP routes call: feature flags ([`flags`]), and the writes of records ([`records`]): each function takes the parts of the
//! state it needs, builds its storage batch and commits it through the
//! journal, so that no route builds a batch or decides how a write reaches
//! the log. Reads stay where they are (the routes read storage directly).

pub mod flags;
pub mod records;

use utalk_actors::durability::JournalError;
use utalk_storage::{CodecError, StoreError};

/// A domain write that failed.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// A record could not be encoded.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// Reading the store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The journal did not take the write.
    #[error(transparent)]
    Journal(#[from] JournalError),
}
