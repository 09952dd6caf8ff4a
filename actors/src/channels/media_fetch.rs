//! The media fetcher: downloads the media of inbound WhatsApp messages.
//!
//! The webhook stores the message with its media `pending` and a durable
//! download job in the same batch, answers Twilio, and wakes this actor,
//! so that slow downloads never hold up the webhook. Each download uses
//! the account's credentials (Twilio's media URLs may require them; they
//! are not sent on to another host after a redirect), checks the type and
//! size limits, writes the file durably, and then records the outcome on
//! the message (`stored` or `failed` with the reason) through its
//! conversation actor, removing the job in the same batch. 5xx, 429 and
//! timeouts are retried with backoff; anything else fails at once.
//!
//! The credentials go only to hosts of `twilio_media_hosts`: a `MediaUrlN`
//! naming any other host is not requested at all (not even without
//! credentials, so that a webhook cannot make the server call hosts of its
//! choosing) and its media is marked failed with the reason.

use crate::channels::media_store::MediaStore;
use crate::channels::twilio::TwilioAccount;
use crate::conversation::registry::Registry;
use crate::conversation::{ConversationError, MessageChange};
use crate::durability::Journal;
use crate::hosts::HostList;
use crate::jobs::retry::Backoff;
use crate::jobs::signal::JobSignal;
use crate::jobs::worker::{run_passes, wait_for, Worker};
use futures_util::StreamExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use utalk_storage::model::{media, MediaFetch, MediaRecord, MediaSource, MediaStatus};
use utalk_storage::{Batch, Db, Timestamp};

/// What the fetcher has done.
#[derive(Debug, Default)]
pub struct FetchStats {
    /// Files stored.
    pub stored: AtomicU64,
    /// Downloads that failed for good.
    pub failed: AtomicU64,
    /// Transient failures retried.
    pub retried: AtomicU64,
}

/// The fetcher's shared state.
pub struct MediaFetcher {
    db: Db,
    journal: Journal,
    registry: Registry,
    account: Option<Arc<TwilioAccount>>,
    media: Arc<MediaStore>,
    client: reqwest::Client,
    signal: Arc<JobSignal>,
    backoff: Backoff,
    timeout: Duration,
    media_hosts: HostList,
    /// Counters.
    pub stats: FetchStats,
}

enum Failure {
    Permanent(String),
    Transient(String),
}

const PAGE: usize = 1_000;
const MAX_DUE: usize = 64;
const CONCURRENCY: usize = 4;

impl MediaFetcher {
    /// The fetcher's state.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        db: Db,
        registry: Registry,
        account: Option<Arc<TwilioAccount>>,
        media: Arc<MediaStore>,
        client: reqwest::Client,
        signal: Arc<JobSignal>,
        backoff: Backoff,
        timeout: Duration,
        media_hosts: HostList,
    ) -> Arc<Self> {
        let journal = registry.journal().clone();
        Arc::new(Self {
            db,
            journal,
            registry,
            account,
            media,
            client,
            signal,
            backoff,
            timeout,
            media_hosts,
            stats: FetchStats::default(),
        })
    }

    /// The wake-up to call after writing a job.
    pub fn signal(&self) -> &Arc<JobSignal> {
        &self.signal
    }

    async fn work(self: Arc<Self>) {
        run_passes("media download", &self.signal, &**self.registry.journal().cluster(), || self.pass()).await;
    }

    async fn pass(&self) -> Result<Duration, utalk_storage::StoreError> {
        // Every job is looked at, so jobs waiting out a backoff never hide due ones.
        let now = Timestamp::now();
        let mut due = Vec::new();
        let mut next: Option<i64> = None;
        let mut after = None;
        loop {
            let page = media::fetches(&self.db, after, PAGE)?;
            after = page.last().map(|j| j.media_id);
            let full = page.len() == PAGE;
            for j in page {
                if j.next_attempt_at <= now {
                    if due.len() < MAX_DUE {
                        due.push(j);
                    }
                } else {
                    let ms = j.next_attempt_at.millis() - now.millis();
                    next = Some(next.map_or(ms, |n| n.min(ms)));
                }
            }
            if !full {
                break;
            }
        }
        if !due.is_empty() {
            futures_util::stream::iter(due).for_each_concurrent(CONCURRENCY, |j| self.attempt(j)).await;
            return Ok(Duration::ZERO);
        }
        Ok(wait_for(next))
    }

    async fn attempt(&self, job: MediaFetch) {
        let outcome = match self.download(&job).await {
            Ok((bytes, content_type)) => {
                let size = bytes.len() as u64;
                match self.media.save(job.media_id, bytes.into()).await {
                    Ok(sha) => Ok((size, sha, content_type)),
                    Err(e) => Err(Failure::Transient(format!("keeping the file failed: {e}"))),
                }
            }
            Err(f) => Err(f),
        };
        match outcome {
            Ok((size, sha256, content_type)) => {
                self.stats.stored.fetch_add(1, Ordering::Relaxed);
                tracing::info!(media = %job.media_id, message = %job.message_id, size, "inbound media stored");
                self.record(&job, MediaStatus::Stored, None, size, sha256, content_type).await;
            }
            Err(Failure::Permanent(why)) => self.give_up(&job, why).await,
            Err(Failure::Transient(why)) => {
                let attempts = job.attempts + 1;
                match self.backoff.next_attempt(attempts, Timestamp::now()) {
                    Some(at) => {
                        self.stats.retried.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(media = %job.media_id, attempts, error = %why, "media download failed; will retry");
                        let mut next = job.clone();
                        next.attempts = attempts;
                        next.next_attempt_at = at;
                        next.last_error = Some(why);
                        self.save(&next).await;
                    }
                    None => self.give_up(&job, format!("gave up after {attempts} attempts: {why}")).await,
                }
            }
        }
    }

    async fn give_up(&self, job: &MediaFetch, why: String) {
        self.stats.failed.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(media = %job.media_id, message = %job.message_id, reason = %why, "inbound media not stored");
        self.record(job, MediaStatus::Failed, Some(why), 0, String::new(), job.content_type.clone()).await;
    }

    async fn record(&self, job: &MediaFetch, status: MediaStatus, error: Option<String>, size: u64, sha256: String, content_type: String) {
        let record = MediaRecord {
            id: job.media_id,
            content_type,
            size,
            sha256,
            status,
            error: error.clone(),
            source: MediaSource::Channel,
            conversation_id: Some(job.conversation_id),
            message_id: Some(job.message_id),
            uploaded_by: None,
            created_at: Timestamp::now(),
        };
        let mut change = MessageChange::new(job.message_id);
        change.media = Some((job.media_id, status, error));
        media::delete_fetch(&mut change.extra, job.media_id);
        if let Err(e) = media::put(&mut change.extra, &record) {
            tracing::error!(error = %e, "encoding a media record failed");
            return;
        }
        match self.registry.call(job.conversation_id, change).await {
            Ok(_) => {}
            Err(ConversationError::NotFound | ConversationError::MessageNotFound) => {
                tracing::warn!(media = %job.media_id, "media download of a missing message dropped");
                let mut b = Batch::new();
                media::delete_fetch(&mut b, job.media_id);
                self.journal.commit_node_or_log(Ok(b), "dropping a media download job").await;
            }
            Err(e) => {
                // Try again shortly (the file, if stored, is simply written again).
                tracing::warn!(media = %job.media_id, error = %e, "recording a media download failed; will retry");
                let mut next = job.clone();
                next.next_attempt_at = Timestamp(Timestamp::now().millis() + 1_000);
                self.save(&next).await;
            }
        }
    }

    async fn save(&self, job: &MediaFetch) {
        let mut b = Batch::new();
        let built = media::put_fetch(&mut b, job).map(|_| b);
        self.journal.commit_node_or_log(built, "saving a media download job").await;
    }

    async fn download(&self, job: &MediaFetch) -> Result<(Vec<u8>, String), Failure> {
        // Checked at download time, so jobs stored before the list (or under a wider one) obey it too.
        if let Err(e) = self.media_hosts.check_url(&job.url) {
            tracing::warn!(media = %job.media_id, error = %e, "media URL outside twilio_media_hosts; not downloaded");
            return Err(Failure::Permanent(format!("not downloaded: {e} (twilio_media_hosts)")));
        }
        let mut req = self.client.get(&job.url).timeout(self.timeout);
        if let Some(a) = &self.account {
            req = req.basic_auth(&a.account_sid, Some(&a.auth_token));
        }
        let mut res = req.send().await.map_err(|e| {
            if e.is_timeout() {
                Failure::Transient(format!("no answer within {} ms", self.timeout.as_millis()))
            } else {
                Failure::Transient(format!("request failed: {e}"))
            }
        })?;
        let status = res.status();
        if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408 {
            return Err(Failure::Transient(format!("HTTP {} from the media URL", status.as_u16())));
        }
        if !status.is_success() {
            return Err(Failure::Permanent(format!("HTTP {} from the media URL", status.as_u16())));
        }
        let announced = res.headers().get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or(&job.content_type);
        let content_type = self.media.check_type(announced).map_err(|e| Failure::Permanent(e.to_string()))?;
        if let Some(len) = res.content_length() {
            self.media.check_size(len).map_err(|e| Failure::Permanent(e.to_string()))?;
        }
        let mut bytes = Vec::new();
        loop {
            match res.chunk().await {
                Ok(Some(c)) => {
                    bytes.extend_from_slice(&c);
                    self.media.check_size(bytes.len() as u64).map_err(|e| Failure::Permanent(e.to_string()))?;
                }
                Ok(None) => break,
                Err(e) if e.is_timeout() => {
                    return Err(Failure::Transient(format!("download did not finish within {} ms", self.timeout.as_millis())))
                }
                Err(e) => return Err(Failure::Transient(format!("download broke off: {e}"))),
            }
        }
        Ok((bytes, content_type))
    }
}

impl Worker for MediaFetcher {
    const NAME: &'static str = "media_fetch";
    fn run(self: Arc<Self>) -> impl std::future::Future<Output = ()> + 'static {
        self.work()
    }
}
