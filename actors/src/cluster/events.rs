//! Events between nodes: fire-and-forget fan-out, nothing kept.

use super::{BoxFuture, ClusterError};
use bytes::Bytes;
use futures_util::stream::{BoxStream, StreamExt};
use std::sync::Arc;
use std::time::Duration;

/// Publishes to every other node and listens to what they publish.
pub trait Events: Send + Sync + 'static {
    /// Sends `payload` to every node listening on `topic`; nothing is kept.
    fn publish<'a>(&'a self, topic: &'a str, payload: Bytes) -> BoxFuture<'a, Result<(), ClusterError>>;

    /// What is published on `topic` from now on.
    fn listen<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<BoxStream<'static, Bytes>, ClusterError>>;
}

/// Hands `on` everything other nodes publish on `topic` from now on,
/// listening again a second after a refused or broken subscription, until
/// `on` returns false. Must run inside a tokio runtime.
pub fn listen_forever(events: Arc<dyn Events>, topic: &'static str, mut on: impl FnMut(Bytes) -> bool + Send + 'static) {
    tokio::spawn(async move {
        loop {
            match events.listen(topic).await {
                Ok(mut stream) => {
                    while let Some(bytes) = stream.next().await {
                        if !on(bytes) {
                            return;
                        }
                    }
                }
                Err(e) => tracing::warn!(topic, error = %e, "cannot listen to other nodes' events; trying again"),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
}
