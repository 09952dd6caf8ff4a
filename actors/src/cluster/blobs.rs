//! Blobs: media files every node can read.

use super::{BoxFuture, ClusterError};
use bytes::Bytes;

/// Files kept where every node can read them.
pub trait Blobs: Send + Sync + 'static {
    /// Keeps the file `name` where every node can read it (media), replicated
    /// like the log; answers only once the copy is durable.
    fn put_blob<'a>(&'a self, name: &'a str, bytes: Bytes) -> BoxFuture<'a, Result<(), ClusterError>>;

    /// The file [`Blobs::put_blob`] kept under `name`; `None` when there is
    /// none (always on a single node, whose files are only its own).
    fn get_blob<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<Bytes>, ClusterError>>;

    /// The names of every file [`Blobs::put_blob`] keeps (for backups).
    fn list_blobs(&self) -> BoxFuture<'_, Result<Vec<String>, ClusterError>>;

    /// Removes the file kept under `name`, if any.
    fn delete_blob<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), ClusterError>>;
}
