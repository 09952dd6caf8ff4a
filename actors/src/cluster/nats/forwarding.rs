//! Forwarding over NATS: core request/reply on `utalk.req.<shard>`,
//! subscribed only by the shard's owner.

use super::{unavailable, NatsCluster};
use crate::cluster::{BoxFuture, ClusterError, Forwarded, Forwarding};
use async_nats::RequestErrorKind;
use bytes::Bytes;
use futures_util::stream::{BoxStream, StreamExt};
use std::time::{Duration, Instant};

impl Forwarding for NatsCluster {
    fn forward(&self, shard: u32, payload: Bytes, timeout: Duration) -> BoxFuture<'_, Result<Bytes, ClusterError>> {
        Box::pin(async move {
            let deadline = Instant::now() + timeout;
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                let req = async_nats::Request::new().payload(payload.clone()).timeout(Some(left.max(Duration::from_millis(1))));
                let connects = self.inner.connects();
                let mut answer = Box::pin(self.inner.client.send_request(format!("utalk.req.{shard}"), req));
                // Who held the shard's lease while the request was out, read only once it is slow.
                let mut holder: Option<Option<Bytes>> = None;
                let answered = loop {
                    tokio::select! {
                        r = &mut answer => break Some(r),
                        _ = tokio::time::sleep(self.inner.lease / 8) => {
                            if self.inner.connects() != connects {
                                // An answer sent while the connection was being made again is lost.
                                break None;
                            }
                            // Unreadable now (NATS electing a leader): compare at the next turn.
                            let Ok(now) = self.inner.shards.get(format!("s.{shard}")).await else { continue };
                            match &holder {
                                None => holder = Some(now),
                                // The lease changed hands: the node that took the request died or was deposed.
                                Some(then) if *then != now => break None,
                                Some(_) => {}
                            }
                        }
                    }
                };
                let Some(answered) = answered else {
                    // No answer will come: ask the shard's next owner, as a client
                    // retrying with the same request would (messages are idempotent).
                    tracing::debug!(shard, "the forwarded request's owner changed or the connection was made again; asking again");
                    if Instant::now() >= deadline {
                        return Err(ClusterError::NoOwner { shard });
                    }
                    continue;
                };
                match answered {
                    Ok(m) => return Ok(m.payload),
                    // A new owner's subscription takes a moment to reach every server: ask again until the time is up.
                    Err(e) if matches!(e.kind(), RequestErrorKind::NoResponders) => {
                        if Instant::now() + Duration::from_millis(50) >= deadline {
                            return Err(ClusterError::NoOwner { shard });
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Err(e) => return Err(unavailable(e)),
                }
            }
        })
    }

    fn serve(&self, shard: u32) -> BoxFuture<'_, Result<BoxStream<'static, Forwarded>, ClusterError>> {
        Box::pin(async move {
            if !self.inner.owns(shard) {
                return Err(ClusterError::NotOwner { shard });
            }
            let sub = self.inner.client.subscribe(format!("utalk.req.{shard}")).await.map_err(unavailable)?;
            // The subscription counts once the server has it: a request sent right after must find it.
            self.inner.client.flush().await.map_err(unavailable)?;
            let inner = self.inner.clone();
            let stream = futures_util::stream::unfold((sub, inner), move |(mut sub, inner)| async move {
                loop {
                    // Dropping the subscription unsubscribes: a deposed owner hears no more requests.
                    if !inner.owns(shard) {
                        return None;
                    }
                    let recheck = tokio::time::sleep(inner.lease / 8);
                    tokio::select! {
                        m = sub.next() => {
                            let m = m?;
                            let Some(reply_to) = m.reply.clone() else { continue };
                            if !inner.owns(shard) {
                                return None;
                            }
                            let client = inner.client.clone();
                            let reply: Box<dyn FnOnce(Bytes) -> BoxFuture<'static, ()> + Send> = Box::new(move |answer: Bytes| {
                                Box::pin(async move {
                                    if let Err(e) = client.publish(reply_to, answer).await {
                                        tracing::warn!(error = %e, "could not answer a forwarded request");
                                    }
                                }) as BoxFuture<'static, ()>
                            });
                            return Some((Forwarded { payload: m.payload, reply }, (sub, inner)));
                        }
                        _ = inner.changed.notified() => {}
                        _ = recheck => {}
                    }
                }
            });
            Ok(stream.boxed())
        })
    }
}
