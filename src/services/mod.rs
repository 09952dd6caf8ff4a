//! Domain work the HTTP routes and the command line call, one module per
//! concern. Each function takes the parts of the state it needs; the reads
//! go to storage from here and the writes build their batch here and commit
//! it through the journal, so that no route or command touches storage or
//! decides how a write reaches the log.

pub mod accounts;
pub mod api_keys;
pub mod api_version;
pub mod backfill;
pub mod bot;
pub mod business_hours;
pub mod canned;
pub mod contacts;
pub mod conversations;
pub mod erasure;
pub mod flags;
pub mod inventory;
pub mod media;
pub(crate) mod message_format;
pub mod operations;
pub mod records;
pub mod reports;
pub mod search;
pub mod secrets;
pub mod webhooks;

use utalk_actors::channels::whatsapp::InboundError;
use utalk_actors::durability::JournalError;
use utalk_actors::ConversationError;
use utalk_storage::{CodecError, StoreError};

/// A domain read or write that failed.
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
    /// The conversation refused the change or could not be reached.
    #[error(transparent)]
    Conversation(#[from] ConversationError),
    /// Opening a WhatsApp conversation failed.
    #[error(transparent)]
    Inbound(#[from] InboundError),
    /// The named thing does not exist.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The caller's role may not do this.
    #[error("{0}")]
    Forbidden(&'static str),
    /// The request names something that cannot be used for it.
    #[error("{message}")]
    Invalid {
        /// Machine-readable code.
        code: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The request is sound but the state refuses it.
    #[error("{message}")]
    Conflict {
        /// Machine-readable code.
        code: &'static str,
        /// What is in the way.
        message: String,
    },
    /// A search's words cannot be searched for (400 `invalid_query`).
    #[error("{0}")]
    BadQuery(String),
    /// A part the request needs is off or failing (503 `search_unavailable`).
    #[error("{0}")]
    SearchUnavailable(String),
    /// Blocking work could not run to its end.
    #[error("{0}")]
    Internal(String),
}

/// Runs blocking storage work (a scan, a report) off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, ServiceError> + Send + 'static) -> Result<T, ServiceError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| ServiceError::Internal(e.to_string()))?
}
