//! The log over NATS: the stream `UTALK_LOG` on `utalk.log.>`, appends
//! fenced with `Nats-Expected-Last-Subject-Sequence` and deduplicated by
//! `Nats-Msg-Id` within two minutes.

use super::{js_code, unavailable, NatsCluster, TRANSIENT, WRONG_LAST_SEQUENCE};
use crate::cluster::{BoxFuture, ClusterError, LogEntry, LogStream};
use async_nats::jetstream::consumer::{pull, DeliverPolicy};
use async_nats::jetstream::context::{PublishError, PublishErrorKind};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream;
use bytes::Bytes;
use futures_util::stream::{BoxStream, StreamExt};
use std::time::{Duration, Instant};

fn publish_error(subject: &str, expected: u64, e: &PublishError) -> ClusterError {
    let code = js_code(e);
    if matches!(e.kind(), PublishErrorKind::WrongLastSequence) || code.is_some_and(|c| WRONG_LAST_SEQUENCE.contains(&c)) {
        return ClusterError::Fenced { subject: subject.to_string(), expected };
    }
    if matches!(e.kind(), PublishErrorKind::TimedOut | PublishErrorKind::BrokenPipe | PublishErrorKind::StreamNotFound)
        || code.is_some_and(|c| TRANSIENT.contains(&c))
    {
        return unavailable(e);
    }
    ClusterError::Protocol(e.to_string())
}

impl LogStream for NatsCluster {
    fn append<'a>(
        &'a self,
        subject: &'a str,
        expected: Option<u64>,
        id: &'a str,
        payload: Bytes,
    ) -> BoxFuture<'a, Result<u64, ClusterError>> {
        Box::pin(async move {
            let started = Instant::now();
            let mut msg = PublishMessage::build().payload(payload).message_id(id);
            if let Some(e) = expected {
                msg = msg.expected_last_subject_sequence(e);
            }
            let fenced = expected.unwrap_or(0);
            // Registered before sending, so that a reconnection during the wait is seen.
            let reconnected = self.inner.reconnected.notified();
            tokio::pin!(reconnected);
            reconnected.as_mut().enable();
            let ack = self.inner.js.send_publish(subject.to_string(), msg).await.map_err(|e| publish_error(subject, fenced, &e))?;
            let ack = tokio::select! {
                ack = ack => ack.map_err(|e| publish_error(subject, fenced, &e))?,
                // The ack of a publish sent on the old connection never comes: the caller
                // asks again with the same id, which the stream keeps once.
                () = reconnected => return Err(unavailable("the connection to NATS was made again while an append awaited its ack")),
            };
            metrics::histogram!("cluster_log_append_duration_seconds").record(started.elapsed().as_secs_f64());
            Ok(ack.sequence)
        })
    }

    fn follow<'a>(
        &'a self,
        filter: &'a str,
        after: u64,
    ) -> BoxFuture<'a, Result<BoxStream<'static, Result<LogEntry, ClusterError>>, ClusterError>> {
        Box::pin(async move {
            let consumer = self
                .inner
                .log
                .create_consumer(pull::OrderedConfig {
                    filter_subject: filter.to_string(),
                    deliver_policy: DeliverPolicy::ByStartSequence { start_sequence: after + 1 },
                    // Short pulls make heartbeats a second apart, so a consumer lost with
                    // its server is noticed (two missed beats) and made again in seconds.
                    max_expires: Duration::from_secs(2),
                    ..Default::default()
                })
                .await
                .map_err(unavailable)?;
            let messages = consumer.messages().await.map_err(unavailable)?;
            // A consumer made on the old connection may never deliver again:
            // the stream ends when the connection is made again, and the
            // follower follows anew from what it applied.
            let reconnected = self.inner.reconnected.clone();
            let ended = async move { reconnected.notified().await };
            Ok(messages
                .take_until(ended)
                .map(|m| {
                    let m = m.map_err(unavailable)?;
                    let info = m.info().map_err(|e| ClusterError::Protocol(e.to_string()))?;
                    Ok(LogEntry { subject: m.subject.to_string(), position: info.stream_sequence, payload: m.payload.clone() })
                })
                .boxed())
        })
    }

    fn log_end(&self) -> BoxFuture<'_, Result<u64, ClusterError>> {
        Box::pin(async move {
            let mut log = self.inner.log.clone();
            let info = log.info().await.map_err(unavailable)?;
            Ok(info.state.last_sequence)
        })
    }

    fn last_position<'a>(&'a self, subject: &'a str) -> BoxFuture<'a, Result<u64, ClusterError>> {
        Box::pin(async move {
            match self.inner.log.get_last_raw_message_by_subject(subject).await {
                Ok(m) => Ok(m.sequence),
                Err(e) if matches!(e.kind(), stream::LastRawMessageErrorKind::NoMessageFound) => Ok(0),
                Err(e) => Err(unavailable(e)),
            }
        })
    }
}
