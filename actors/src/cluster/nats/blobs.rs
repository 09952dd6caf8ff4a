//! Media files over NATS: the object store `utalk_media`, replicated like the log.

use super::{unavailable, NatsCluster, FILES_BUCKET};
use crate::cluster::{Blobs, BoxFuture, ClusterError};
use async_nats::jetstream::object_store;
use bytes::Bytes;
use futures_util::stream::StreamExt;

impl Blobs for NatsCluster {
    fn put_blob<'a>(&'a self, name: &'a str, bytes: Bytes) -> BoxFuture<'a, Result<(), ClusterError>> {
        Box::pin(async move {
            let mut reader: &[u8] = &bytes;
            self.inner.files.put(name, &mut reader).await.map_err(unavailable)?;
            Ok(())
        })
    }

    fn get_blob<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<Bytes>, ClusterError>> {
        Box::pin(async move {
            use tokio::io::AsyncReadExt;
            let mut object = match self.inner.files.get(name).await {
                Ok(o) => o,
                Err(e) if matches!(e.kind(), object_store::GetErrorKind::NotFound) => return Ok(None),
                Err(e) => return Err(unavailable(e)),
            };
            let mut out = Vec::with_capacity(object.info.size);
            // The reader checks the object's digest at its end and fails on a mismatch.
            object.read_to_end(&mut out).await.map_err(unavailable)?;
            Ok(Some(Bytes::from(out)))
        })
    }

    fn list_blobs(&self) -> BoxFuture<'_, Result<Vec<String>, ClusterError>> {
        Box::pin(async move {
            // A listing of an empty store never ends: ask the stream first.
            let mut stream = self.inner.js.get_stream(format!("OBJ_{FILES_BUCKET}")).await.map_err(unavailable)?;
            if stream.info().await.map_err(unavailable)?.state.messages == 0 {
                return Ok(Vec::new());
            }
            let mut list = self.inner.files.list().await.map_err(unavailable)?;
            let mut names = Vec::new();
            while let Some(info) = list.next().await {
                names.push(info.map_err(unavailable)?.name);
            }
            Ok(names)
        })
    }

    fn delete_blob<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), ClusterError>> {
        Box::pin(async move {
            match self.inner.files.delete(name).await {
                Ok(()) => Ok(()),
                Err(e) if matches!(e.kind(), object_store::DeleteErrorKind::NotFound) => Ok(()),
                Err(e) => Err(unavailable(e)),
            }
        })
    }
}
