//! Events over NATS: core publish on `utalk.ev.<topic>`, nothing kept.

use super::{unavailable, NatsCluster};
use crate::cluster::{BoxFuture, ClusterError, Events};
use bytes::Bytes;
use futures_util::stream::{BoxStream, StreamExt};

impl Events for NatsCluster {
    fn publish<'a>(&'a self, topic: &'a str, payload: Bytes) -> BoxFuture<'a, Result<(), ClusterError>> {
        Box::pin(async move { self.inner.client.publish(format!("utalk.ev.{topic}"), payload).await.map_err(unavailable) })
    }

    fn listen<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<BoxStream<'static, Bytes>, ClusterError>> {
        Box::pin(async move {
            let sub = self.inner.client.subscribe(format!("utalk.ev.{topic}")).await.map_err(unavailable)?;
            self.inner.client.flush().await.map_err(unavailable)?;
            Ok(sub.map(|m| m.payload).boxed())
        })
    }
}
