//! The session stash: a dropped socket session, kept for any node to recover.

use super::{BoxFuture, ClusterError};
use bytes::Bytes;

/// Short-lived values any node may take once.
pub trait SessionStash: Send + Sync + 'static {
    /// Keeps `value` under `key` for any node to take within a few minutes
    /// (a dropped socket session, for recovery on another node).
    fn stash<'a>(&'a self, key: &'a str, value: Bytes) -> BoxFuture<'a, Result<(), ClusterError>>;

    /// Takes what [`SessionStash::stash`] kept under `key`, if it is still there.
    fn unstash<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Bytes>, ClusterError>>;
}
