//! The replicated log: fenced appends per subject, and following it.
//!
//! A node alone has no replicated log: its store is the log, written by the
//! store writer (`durability::store_writer`), so [`super::Cluster::log`]
//! answers `None` there rather than a log that makes positions up.

use super::{shard_of, BoxFuture, ClusterError};
use bytes::Bytes;
use futures_util::stream::BoxStream;
use uuid::Uuid;

/// What kind of entity a log subject belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntityKind {
    /// A conversation and its messages.
    Conversation,
    /// An inventory store.
    Store,
}

impl EntityKind {
    /// The subject token of the kind.
    pub fn token(self) -> &'static str {
        match self {
            EntityKind::Conversation => "conv",
            EntityKind::Store => "store",
        }
    }
}

/// The log subject of one entity: `utalk.log.<shard>.<kind>.<id>`, so that a
/// shard's whole log is one filter and each entity has a fence of its own.
pub fn log_subject(kind: EntityKind, id: Uuid) -> String {
    format!("utalk.log.{}.{}.{}", shard_of(id), kind.token(), id.simple())
}

/// The log subject of state every node shares (users, tokens, flags, settings).
pub const SHARED_SUBJECT: &str = "utalk.log.shared";

/// The filter that matches the whole log.
pub const LOG_FILTER: &str = "utalk.log.>";

/// The filter that matches every log subject of `shard`.
pub fn shard_filter(shard: u32) -> String {
    format!("utalk.log.{shard}.>")
}

/// One entry of the replicated log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// Its subject.
    pub subject: String,
    /// Its position in the whole log; the fence value of the next append to its subject.
    pub position: u64,
    /// What was appended.
    pub payload: Bytes,
}

/// A log replicated beyond this process, with a fence per subject.
pub trait LogStream: Send + Sync + 'static {
    /// Appends `payload` to `subject` if its last entry is at `expected`
    /// (0: the subject is empty; `None`: wherever it is), deduplicated by
    /// `id`: a retry with the same id returns the first append's position,
    /// whatever the fence says now.
    fn append<'a>(
        &'a self,
        subject: &'a str,
        expected: Option<u64>,
        id: &'a str,
        payload: Bytes,
    ) -> BoxFuture<'a, Result<u64, ClusterError>>;

    /// Every entry matching `filter` after `position`, in order, and then
    /// each new one as it is appended; an error item means the stream broke
    /// and the caller follows again from the last position it saw.
    fn follow<'a>(
        &'a self,
        filter: &'a str,
        after: u64,
    ) -> BoxFuture<'a, Result<BoxStream<'static, Result<LogEntry, ClusterError>>, ClusterError>>;

    /// The position of the last entry of the whole log, 0 if it is empty.
    fn log_end(&self) -> BoxFuture<'_, Result<u64, ClusterError>>;

    /// The position of the last entry of `subject`, 0 if it has none.
    fn last_position<'a>(&'a self, subject: &'a str) -> BoxFuture<'a, Result<u64, ClusterError>>;
}
