//! Limits on media uploads, checked before a byte is stored: a rate per
//! bearer identity (a staff user, or a widget's conversation) and a quota per
//! conversation (files and bytes).

use crate::config::MediaSection;
use crate::http::auth::limiter::Limiter;
use crate::http::auth::Principal;
use crate::http::error::ApiError;
use actix_web::http::StatusCode;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use utalk_storage::Db;
use uuid::Uuid;

/// The upload limits in force, with their counters.
pub struct UploadLimits {
    per_minute: u32,
    max_files: usize,
    max_bytes: u64,
    rate: Limiter,
    /// Uploads admitted but not yet recorded, per conversation (files,
    /// bytes): counted so that concurrent uploads cannot together overshoot.
    pending: Mutex<HashMap<Uuid, (usize, u64)>>,
}

/// An admitted upload's share of its conversation's quota, held until its record is written (or not).
pub(crate) struct Reservation<'a> {
    limits: &'a UploadLimits,
    conversation: Uuid,
    size: u64,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        let mut pending = self.limits.pending.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = pending.get_mut(&self.conversation) {
            e.0 = e.0.saturating_sub(1);
            e.1 = e.1.saturating_sub(self.size);
            if e.0 == 0 {
                pending.remove(&self.conversation);
            }
        }
    }
}

fn quota_exceeded(message: String) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, "media_quota_exceeded", message)
}

impl UploadLimits {
    /// Limits from the `[media]` settings.
    pub(crate) fn new(c: &MediaSection) -> Self {
        Self {
            per_minute: c.uploads_per_minute,
            max_files: c.max_files_per_conversation,
            max_bytes: c.max_bytes_per_conversation,
            // Keys are staff ids and widget conversations: authenticated callers only.
            rate: Limiter::new(Duration::from_secs(60), 100_000),
            pending: Mutex::new(HashMap::new()),
        }
    }

    /// Counts an upload of `who`; refuses it (429 `rate_limited`) past the per-minute rate.
    pub(crate) fn admit(&self, who: &Principal) -> Result<(), ApiError> {
        let key = match who {
            Principal::Staff { user_id, .. } => format!("u:{user_id}"),
            Principal::Widget { conversation_id } => format!("w:{conversation_id}"),
        };
        self.rate.try_hit(&key, self.per_minute).map(drop).map_err(|r| {
            ApiError::rate_limited(
                "rate_limited",
                format!("at most {} media uploads a minute per token; retry later", self.per_minute),
                r.wait_secs(),
            )
        })
    }

    /// Takes `size` bytes and one file of `conversation`'s quota, or refuses
    /// (409 `media_quota_exceeded`) when its stored and pending uploads leave no room.
    pub(crate) fn reserve(&self, db: &Db, conversation: Uuid, size: u64) -> Result<Reservation<'_>, ApiError> {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let (files, bytes) = crate::services::media::uploads(db, conversation, self.max_files.saturating_add(1))?;
        let (p_files, p_bytes) = pending.get(&conversation).copied().unwrap_or((0, 0));
        if files + p_files >= self.max_files {
            return Err(quota_exceeded(format!("the conversation already holds {} uploaded media, the most allowed", self.max_files)));
        }
        if bytes.saturating_add(p_bytes).saturating_add(size) > self.max_bytes {
            return Err(quota_exceeded(format!(
                "the conversation's uploads would exceed {} bytes (it holds {bytes}; this file has {size})",
                self.max_bytes
            )));
        }
        let e = pending.entry(conversation).or_insert((0, 0));
        e.0 += 1;
        e.1 += size;
        Ok(Reservation { limits: self, conversation, size })
    }
}
