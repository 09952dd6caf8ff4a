//! Request forwarding: a request for a shard reaches the node that owns it.

use super::{BoxFuture, ClusterError};
use bytes::Bytes;
use futures_util::stream::BoxStream;
use std::time::Duration;

/// A request forwarded to a shard's owner, with the way to answer it.
pub struct Forwarded {
    /// The request.
    pub payload: Bytes,
    /// Answers the request; dropping it leaves the sender to time out.
    pub reply: Box<dyn FnOnce(Bytes) -> BoxFuture<'static, ()> + Send>,
}

/// Sends requests to a shard's owner and serves those sent to this node's shards.
pub trait Forwarding: Send + Sync + 'static {
    /// Sends `payload` to the current owner of `shard` and waits for its answer;
    /// while no node serves the shard it asks again until `timeout`.
    fn forward(&self, shard: u32, payload: Bytes, timeout: Duration) -> BoxFuture<'_, Result<Bytes, ClusterError>>;

    /// Requests forwarded to `shard` while this node owns it; the stream ends when it stops owning it.
    fn serve(&self, shard: u32) -> BoxFuture<'_, Result<BoxStream<'static, Forwarded>, ClusterError>>;
}
