//! The one error shape of the API: `{"error": {"code", "message", "requestId"}}`.

use crate::http::request_id;
use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utalk_actors::ConversationError;
use utalk_storage::StoreError;

/// An error answered to a client.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable snake_case code clients branch on.
    pub code: &'static str,
    /// Human-readable explanation.
    pub message: String,
    /// Seconds to wait before retrying (429, 503).
    pub retry_after: Option<u64>,
    /// Figures a client acts on (the stock left of a refused sale), as `error.details`.
    pub details: Option<serde_json::Value>,
    /// The methods a 405 lists in `Allow`.
    pub allow: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Inner<'a> {
    code: &'a str,
    message: &'a str,
    request_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<&'a serde_json::Value>,
}

impl ApiError {
    /// An error with any status.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), retry_after: None, details: None, allow: None }
    }
    /// 400: the request could not be parsed.
    /// 405 `method_not_allowed` with `Allow: <allowed>`.
    pub fn method_not_allowed(method: &str, path: &str, allowed: &[&str]) -> Self {
        let allow = allowed.join(", ");
        Self {
            allow: Some(allow.clone()),
            ..Self::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", format!("{method} is not a method of {path}; use {allow}"))
        }
    }
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    /// 401: no or bad credentials.
    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
    }
    /// 403: authenticated, but not allowed.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    /// 404.
    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", format!("{what} not found"))
    }
    /// 409.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }
    /// 422: well-formed but invalid.
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }
    /// 429 with a retry hint.
    pub fn rate_limited(code: &'static str, message: impl Into<String>, retry_after: u64) -> Self {
        Self { retry_after: Some(retry_after.max(1)), ..Self::new(StatusCode::TOO_MANY_REQUESTS, code, message) }
    }
    /// 503.
    pub fn unavailable(code: &'static str, message: impl Into<String>) -> Self {
        Self { retry_after: Some(1), ..Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message) }
    }
    /// 500, logged with its cause; the client sees no internals.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error; the request id identifies it in the logs")
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }
    fn error_response(&self) -> HttpResponse {
        let body = Body {
            error: Inner {
                code: self.code,
                message: &self.message,
                request_id: request_id::current().unwrap_or_default(),
                details: self.details.as_ref(),
            },
        };
        let mut res = HttpResponse::build(self.status);
        if let Some(s) = self.retry_after {
            res.insert_header((header::RETRY_AFTER, s.to_string()));
        }
        if let Some(a) = &self.allow {
            res.insert_header((header::ALLOW, a.as_str()));
        }
        res.json(body)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::WriterStopped => ApiError::unavailable("storage_unavailable", "storage is not accepting writes"),
            other => ApiError::internal(other),
        }
    }
}

impl From<utalk_storage::CodecError> for ApiError {
    fn from(e: utalk_storage::CodecError) -> Self {
        ApiError::internal(e)
    }
}

impl From<utalk_actors::WriteError> for ApiError {
    fn from(e: utalk_actors::WriteError) -> Self {
        tracing::error!(error = %e, "write failed");
        ApiError::unavailable("storage_unavailable", "the write did not reach storage; retry later")
    }
}

impl From<utalk_actors::channels::media_store::MediaFileError> for ApiError {
    fn from(e: utalk_actors::channels::media_store::MediaFileError) -> Self {
        use utalk_actors::channels::media_store::MediaFileError;
        match e {
            MediaFileError::Cluster(c) => c.into(),
            // A full disk refuses writes until space returns, like the store does.
            MediaFileError::Io(io) if io.kind() == std::io::ErrorKind::StorageFull => {
                tracing::warn!(error = %io, "media file not written: the disk is full");
                ApiError::unavailable("storage_unavailable", "the disk is full; retry later")
            }
            io => ApiError::internal(io),
        }
    }
}

impl From<utalk_actors::cluster::ClusterError> for ApiError {
    fn from(e: utalk_actors::cluster::ClusterError) -> Self {
        tracing::warn!(error = %e, "cluster refused or could not take a change");
        ApiError::unavailable("cluster_unavailable", "the cluster could not take the change now; retry (with the same messageId)")
    }
}

impl From<utalk_actors::durability::JournalError> for ApiError {
    fn from(e: utalk_actors::durability::JournalError) -> Self {
        match e {
            utalk_actors::durability::JournalError::Write(w) => w.into(),
            utalk_actors::durability::JournalError::Cluster(c) => c.into(),
            behind => utalk_actors::cluster::ClusterError::Unavailable(behind.to_string()).into(),
        }
    }
}

impl From<crate::services::ServiceError> for ApiError {
    fn from(e: crate::services::ServiceError) -> Self {
        use crate::services::ServiceError as E;
        match e {
            E::Codec(e) => e.into(),
            E::Store(e) => e.into(),
            E::Journal(e) => e.into(),
            E::Conversation(e) => e.into(),
            E::Inbound(e) => e.into(),
            E::NotFound(what) => ApiError::not_found(what),
            E::Forbidden(m) => ApiError::forbidden(m),
            E::Invalid { code, message } => ApiError::invalid(code, message),
            E::Conflict { code, message } => ApiError::conflict(code, message),
            E::BadQuery(m) => ApiError::bad_request("invalid_query", m),
            E::SearchUnavailable(m) => ApiError::unavailable("search_unavailable", m),
            E::Internal(m) => ApiError::internal(m),
        }
    }
}

impl From<utalk_actors::channels::whatsapp::InboundError> for ApiError {
    fn from(e: utalk_actors::channels::whatsapp::InboundError) -> Self {
        use utalk_actors::channels::whatsapp::InboundError;
        match e {
            InboundError::NoPhone => ApiError::invalid("validation_failed", e.to_string()),
            InboundError::Store(e) => e.into(),
            InboundError::Codec(e) => e.into(),
            InboundError::Journal(e) => e.into(),
            InboundError::Conversation(e) => e.into(),
            InboundError::Cluster(e) => e.into(),
            InboundError::Contact(e) => crate::services::ServiceError::from(e).into(),
        }
    }
}

impl From<ConversationError> for ApiError {
    fn from(e: ConversationError) -> Self {
        match e {
            ConversationError::NotFound => ApiError::not_found("conversation"),
            ConversationError::MessageNotFound => ApiError::not_found("message"),
            ConversationError::MessagePending => ApiError::unavailable("message_pending", "the message is not durable yet; retry"),
            ConversationError::BotPaused => ApiError::conflict("bot_paused", "the bot is paused in this conversation"),
            ConversationError::Closed => {
                ApiError::conflict("conversation_closed", "the conversation is closed; a customer message reopens it")
            }
            ConversationError::WindowClosed => ApiError::conflict(
                "whatsapp_window_closed",
                "the customer has not written on WhatsApp in 24 hours: send an approved template ({template: {contentSid, variables}})",
            ),
            ConversationError::TemplateNotWhatsapp => ApiError::invalid("template_not_supported", "templates are sent on WhatsApp only"),
            ConversationError::MediaNotFound => {
                ApiError::invalid("media_not_found", "mediaId names no media uploaded to this conversation")
            }
            ConversationError::MessageIdConflict => {
                ApiError::conflict("message_id_conflict", "messageId is already used in another conversation")
            }
            ConversationError::Overloaded => ApiError::unavailable("overloaded", "the conversation has too many writes in flight; retry"),
            ConversationError::Write(w) => w.into(),
            ConversationError::Read(m) => ApiError::internal(m),
            ConversationError::InvalidSeq(seq) => {
                ApiError::invalid("invalid_seq", format!("seq {seq} is past the conversation's last message"))
            }
            ConversationError::Cluster(c) => c.into(),
            ConversationError::Restarted | ConversationError::Retired => ApiError::unavailable(
                "conversation_restarted",
                "the conversation restarted while handling the request; retry with the same messageId",
            ),
        }
    }
}

/// A signed URL that does not verify: 403 `bad_signature` or `url_expired`.
impl From<utalk_actors::channels::media_store::UrlError> for ApiError {
    fn from(e: utalk_actors::channels::media_store::UrlError) -> Self {
        use utalk_actors::channels::media_store::UrlError;
        let code = match e {
            UrlError::BadSignature => "bad_signature",
            UrlError::Expired => "url_expired",
        };
        ApiError::new(actix_web::http::StatusCode::FORBIDDEN, code, e.to_string())
    }
}

impl From<utalk_actors::inventory::InventoryError> for ApiError {
    fn from(e: utalk_actors::inventory::InventoryError) -> Self {
        use utalk_actors::inventory::InventoryError as E;
        let code = e.code();
        match &e {
            E::UnknownStore(_) | E::UnknownSku { .. } => ApiError::new(StatusCode::NOT_FOUND, code, e.to_string()),
            E::InvalidQuantity(_) | E::InvalidTransfer(_) => ApiError::invalid(code, e.to_string()),
            E::InsufficientStock { sku, stock, wanted } => ApiError {
                details: Some(serde_json::json!({ "sku": sku, "stock": stock, "wanted": wanted })),
                ..ApiError::conflict(code, e.to_string())
            },
            E::IdReused(_) | E::ProductExists { .. } => ApiError::conflict(code, e.to_string()),
            E::UnknownAlert(_) => ApiError::not_found("alert"),
            E::Storage(m) => ApiError::internal(m),
            E::Unavailable | E::Contended | E::Cluster(_) => ApiError::unavailable(code, e.to_string()),
        }
    }
}

impl From<crate::services::inventory::TxnRefused> for ApiError {
    fn from(e: crate::services::inventory::TxnRefused) -> Self {
        match e {
            crate::services::inventory::TxnRefused::Service(s) => s.into(),
            crate::services::inventory::TxnRefused::Inventory(i) => i.into(),
        }
    }
}

impl From<crate::services::media::UploadError> for ApiError {
    fn from(e: crate::services::media::UploadError) -> Self {
        match e {
            crate::services::media::UploadError::File(f) => f.into(),
            crate::services::media::UploadError::Record(r) => r.into(),
        }
    }
}
