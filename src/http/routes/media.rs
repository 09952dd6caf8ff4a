//! Media: uploads, signed expiring URLs, and the files behind them.

use crate::http::auth::principal::{authenticate, READERS, WRITERS};
use crate::http::auth::{AuthService, Principal};
use crate::http::error::ApiError;
use crate::http::json::Json;
use crate::http::routes::media_limits::UploadLimits;
use crate::services::media::{self as service, Upload};
use actix_multipart::Multipart;
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use utalk_actors::channels::media_store::MediaStore;
use utalk_actors::channels::media_store::{MediaRefused, SignedUrl};
use utalk_actors::Registry;
use utalk_storage::model::{MediaRecord, MediaStatus};
use utalk_storage::Db;
use utalk_storage::Timestamp;
use uuid::Uuid;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/media", web::post().to(upload))
        .route("/media/regenerate-urls", web::post().to(regenerate))
        .route("/media/{id}", web::get().to(get));
}

/// A media record with a URL that works without a token until it expires.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MediaView {
    /// The stored record.
    #[serde(flatten)]
    pub media: utalk_actors::views::MediaRecord,
    /// Signed URL of the file.
    pub url: String,
    /// When `url` stops working.
    #[schema(value_type = String, format = DateTime)]
    pub url_expires_at: Timestamp,
}

fn view(media: &MediaStore, m: MediaRecord) -> MediaView {
    let u = media.signed_url(m.id, None);
    MediaView { media: m.into(), url: u.url, url_expires_at: u.expires_at }
}

fn refused(e: MediaRefused) -> ApiError {
    match e {
        MediaRefused::TooLarge { .. } => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "media_too_large", e.to_string()),
        MediaRefused::TypeNotAllowed(_) => ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "media_type_not_allowed", e.to_string()),
    }
}

/// Checks that the caller may see media of `conversation` (none: staff only).
fn may_see(who: &Principal, conversation: Option<Uuid>) -> Result<(), ApiError> {
    match (who, conversation) {
        (Principal::Staff { .. }, _) => Ok(()),
        (Principal::Widget { .. }, Some(c)) => who.may_read(c),
        (Principal::Widget { .. }, None) => Err(ApiError::forbidden("widget tokens reach only their own conversation's media")),
    }
}

/// Uploads a file (multipart field `file`, optional field `conversationId`).
/// Where media files are served, before the id.
const MEDIA_PATH: &str = "/api/v1/media/";

/// What a media URL starts with: the public URL (when set, else a path
/// relative to the server) and the route that serves media.
pub fn url_prefix(public_url: Option<&str>) -> String {
    format!("{}{MEDIA_PATH}", public_url.unwrap_or("").trim_end_matches('/'))
}

#[utoipa::path(post, path = "/api/v1/media", tag = "media",
    request_body(content = String, content_type = "multipart/form-data", description = "`file`: the file with its Content-Type; `conversationId`: optional"),
    responses((status = 201, body = MediaView), (status = 400, description = "no file field or a malformed body"), (status = 401), (status = 403),
        (status = 409, description = "media_quota_exceeded: the conversation holds as many uploaded files or bytes as allowed"),
        (status = 413, description = "media_too_large"), (status = 415, description = "media_type_not_allowed"),
        (status = 429, description = "rate_limited: too many uploads a minute with this token")),
    security(("bearer" = [])))]
pub async fn upload(
    db: web::Data<Db>,
    registry: web::Data<Registry>,
    media: web::Data<MediaStore>,
    limits: web::Data<UploadLimits>,
    who: Principal,
    mut form: Multipart,
) -> Result<HttpResponse, ApiError> {
    limits.admit(&who)?;
    let uploaded_by = match who {
        Principal::Staff { .. } => Some(who.require(WRITERS)?.0),
        Principal::Widget { .. } => None,
    };
    let mut conversation_id = match who {
        Principal::Widget { conversation_id } => Some(conversation_id),
        Principal::Staff { .. } => None,
    };
    let mut file: Option<(String, Vec<u8>)> = None;
    while let Some(field) = form.next().await {
        let mut field = field.map_err(|e| ApiError::bad_request("malformed_multipart", e.to_string()))?;
        let name = field.name().unwrap_or("").to_string();
        match name.as_str() {
            "file" => {
                let ct = field.content_type().map(|m| m.essence_str().to_string()).unwrap_or_default();
                let ct = media.check_type(&ct).map_err(refused)?;
                let mut bytes = Vec::new();
                while let Some(chunk) = field.next().await {
                    let chunk = chunk.map_err(|e| ApiError::bad_request("malformed_multipart", e.to_string()))?;
                    bytes.extend_from_slice(&chunk);
                    media.check_size(bytes.len() as u64).map_err(refused)?;
                }
                file = Some((ct, bytes));
            }
            "conversationId" => {
                let mut v = Vec::new();
                while let Some(chunk) = field.next().await {
                    v.extend_from_slice(&chunk.map_err(|e| ApiError::bad_request("malformed_multipart", e.to_string()))?);
                    if v.len() > 64 {
                        return Err(ApiError::invalid("validation_failed", "conversationId must be a UUID"));
                    }
                }
                let id = std::str::from_utf8(&v)
                    .ok()
                    .and_then(|s| Uuid::parse_str(s.trim()).ok())
                    .ok_or_else(|| ApiError::invalid("validation_failed", "conversationId must be a UUID"))?;
                who.may_read(id)?;
                crate::services::conversations::must_exist(&db, id)?;
                conversation_id = Some(id);
            }
            other => {
                return Err(ApiError::bad_request(
                    "unknown_field",
                    format!("unknown form field `{other}`; send `file` and optionally `conversationId`"),
                ))
            }
        }
    }
    // A widget's uploads always count against its own conversation's quota:
    // widget tokens are free to get, so loose uploads would be unbounded disk.
    if let (None, Principal::Widget { conversation_id: own }) = (conversation_id, &who) {
        conversation_id = Some(*own);
    }
    let (content_type, bytes) = file.ok_or_else(|| ApiError::bad_request("missing_file", "send the file in a form field named `file`"))?;
    if bytes.is_empty() {
        return Err(ApiError::invalid("empty_file", "the file is empty"));
    }
    let size = bytes.len() as u64;
    // Held until the record is written, so concurrent uploads count against the quota.
    let _reserved = match conversation_id {
        Some(c) => Some(limits.reserve(&db, c, size)?),
        None => None,
    };
    let upload = Upload { content_type, bytes, conversation_id, uploaded_by };
    let record = service::store_upload(registry.journal(), &media, upload).await?;
    Ok(HttpResponse::Created().json(view(&media, record)))
}

/// A signed URL's parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SignedQuery {
    /// Unix seconds after which the URL stops working.
    pub expires: Option<i64>,
    /// The URL's signature.
    pub sig: Option<String>,
}

/// With `expires` and `sig` (a signed URL): the file, no token needed. Without: the record, for a token holder.
#[utoipa::path(get, path = "/api/v1/media/{id}", tag = "media", params(("id" = Uuid, Path), SignedQuery),
    responses((status = 200, body = MediaView, description = "the record (bearer token) or the file's bytes (signed URL)"),
        (status = 401), (status = 403, description = "bad_signature, url_expired or a widget outside its conversation"), (status = 404),
        (status = 409, description = "media_not_stored: still pending or failed")),
    security(("bearer" = []), ()))]
pub async fn get(
    db: web::Data<Db>,
    media: web::Data<MediaStore>,
    auth: web::Data<AuthService>,
    req: HttpRequest,
    id: web::Path<Uuid>,
    q: web::Query<SignedQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    match (q.expires, q.sig.as_deref()) {
        (Some(expires), Some(sig)) => {
            media.verify(id, expires, sig, Timestamp::now())?;
            let m = service::get(&db, id)?;
            if m.status != MediaStatus::Stored {
                return Err(ApiError::conflict("media_not_stored", format!("media is {:?}, not stored", m.status).to_lowercase()));
            }
            let bytes = media.load(id).await?.ok_or_else(|| ApiError::internal(format!("media {id} is stored but its file is missing")))?;
            let remaining = (expires - Timestamp::now().millis() / 1000).max(0);
            Ok(HttpResponse::Ok()
                .content_type(m.content_type.as_str())
                .insert_header((header::CACHE_CONTROL, format!("private, max-age={remaining}")))
                .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
                .insert_header((header::CONTENT_DISPOSITION, "inline"))
                // The signed URL is the permission: the widget shows the file on
                // the customer's site, also under a cross-origin embedder policy.
                .insert_header(("cross-origin-resource-policy", "cross-origin"))
                .body(bytes))
        }
        (None, None) => {
            let header = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
            let who = authenticate(&auth, header)?;
            let m = service::get(&db, id)?;
            may_see(&who, m.conversation_id)?;
            if let Principal::Staff { .. } = who {
                who.require(READERS)?;
            }
            Ok(HttpResponse::Ok().json(view(&media, m)))
        }
        _ => Err(ApiError::bad_request("invalid_query", "send both expires and sig, or neither")),
    }
}

/// Media whose URLs to renew.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Regenerate {
    /// Media ids, 1 to 100.
    pub ids: Vec<Uuid>,
    /// Lifetime of the new URLs, 60 s to 7 days (default: the configured lifetime).
    pub ttl_secs: Option<u64>,
}

/// New URLs, and the ids that name no media.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Regenerated {
    /// One per known id.
    pub items: Vec<SignedUrl>,
    /// Ids that name no media (or media the caller may not see).
    pub missing: Vec<Uuid>,
}

/// Issues fresh signed URLs, for example after they expired or the signing secret changed.
#[utoipa::path(post, path = "/api/v1/media/regenerate-urls", tag = "media", request_body = Regenerate,
    responses((status = 200, body = Regenerated), (status = 401), (status = 403), (status = 422)), security(("bearer" = [])))]
pub async fn regenerate(
    db: web::Data<Db>,
    media: web::Data<MediaStore>,
    who: Principal,
    body: Json<Regenerate>,
) -> Result<HttpResponse, ApiError> {
    if let Principal::Staff { .. } = who {
        who.require(READERS)?;
    }
    let body = body.into_inner();
    if body.ids.is_empty() || body.ids.len() > 100 {
        return Err(ApiError::invalid("validation_failed", "ids must hold 1 to 100 media ids"));
    }
    let ttl = match body.ttl_secs {
        Some(t) if !(60..=7 * 24 * 3600).contains(&t) => {
            return Err(ApiError::invalid("validation_failed", "ttlSecs must be between 60 and 604800"));
        }
        t => t.map(Duration::from_secs),
    };
    let mut out = Regenerated { items: Vec::new(), missing: Vec::new() };
    for id in body.ids {
        match service::find(&db, id)? {
            Some(m) if may_see(&who, m.conversation_id).is_ok() => out.items.push(media.signed_url(id, ttl)),
            _ => out.missing.push(id),
        }
    }
    Ok(HttpResponse::Ok().json(out))
}
