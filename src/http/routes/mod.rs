//! HTTP routes: `/api/v1/*`, health endpoints, and the JSON error plumbing.

pub mod ai;
pub mod api_keys;
pub mod auth;
pub mod backups;
pub mod business_hours;
pub mod canned_responses;
pub mod contacts;
pub mod conversations;
pub mod flags;
pub mod health;
pub mod inventory;
pub mod jobs;
pub mod lifecycle;
pub mod media;
pub(crate) mod media_limits;
pub mod messages;
pub mod metrics;
pub mod openapi;
pub mod outbox;
pub mod pages;
pub mod reports;
pub mod socket;
pub mod twilio;
pub mod users;
pub mod webhooks;
pub mod widget;

use crate::http::auth::Principal;
use crate::http::error::ApiError;
use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::HttpMessage;
use actix_web::{web, HttpRequest};
use utalk_storage::model::Role;
use utalk_storage::{Db, Timestamp};
use uuid::Uuid;

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig, max_body: usize, max_socket_payload: usize) {
    cfg.app_data(web::JsonConfig::default().limit(max_body).error_handler(|e, _| json_error(e).into()))
        .app_data(web::PayloadConfig::new(max_body))
        .app_data(web::QueryConfig::default().error_handler(|e, _| query_error(e).into()))
        .app_data(web::PathConfig::default().error_handler(|e, req| path_error(e, req).into()))
        .service(
            web::scope("/api/v1")
                .configure(auth::configure)
                .configure(widget::configure)
                .configure(lifecycle::configure)
                .configure(conversations::configure)
                .configure(messages::configure)
                .configure(canned_responses::configure)
                .configure(contacts::configure)
                .configure(users::configure)
                .configure(api_keys::configure)
                .configure(webhooks::configure)
                .configure(media::configure)
                .configure(outbox::configure)
                .configure(ai::configure)
                .configure(business_hours::configure)
                .configure(backups::configure)
                .configure(jobs::configure)
                .configure(reports::configure)
                .configure(inventory::configure)
                .configure(flags::configure)
                .configure(openapi::configure),
        )
        .configure(health::configure)
        .configure(reports::configure_pages)
        .configure(pages::configure)
        .route("/metrics", web::get().to(metrics::scrape))
        .route("/health/whatsapp", web::get().to(outbox::health))
        .configure(twilio::configure)
        .configure(|c| socket::configure(c, max_socket_payload))
        .default_service(web::to(not_found));
}

/// No route took the request: 405 with `Allow` when the path is a route of
/// the API under other methods, else 404.
async fn not_found(req: HttpRequest) -> Result<actix_web::HttpResponse, ApiError> {
    let allowed = openapi::methods_of(req.path());
    if !allowed.is_empty() {
        return Err(ApiError::method_not_allowed(req.method().as_str(), req.path(), &allowed));
    }
    Err(ApiError::new(actix_web::http::StatusCode::NOT_FOUND, "route_not_found", format!("no route for {} {}", req.method(), req.path())))
}

/// Maps body errors to the documented statuses: 413 too large, 415 not JSON,
/// 400 malformed JSON, 422 well-formed JSON of the wrong shape.
pub fn json_error(e: JsonPayloadError) -> ApiError {
    match e {
        JsonPayloadError::OverflowKnownLength { length, limit } => ApiError::new(
            actix_web::http::StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("body of {length} bytes exceeds the limit of {limit} bytes"),
        ),
        JsonPayloadError::Overflow { limit } => ApiError::new(
            actix_web::http::StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("body exceeds the limit of {limit} bytes"),
        ),
        JsonPayloadError::ContentType => ApiError::new(
            actix_web::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send Content-Type: application/json",
        ),
        JsonPayloadError::Deserialize(e) if e.is_data() => ApiError::invalid("validation_failed", e.to_string()),
        JsonPayloadError::Deserialize(e) => ApiError::bad_request("malformed_json", e.to_string()),
        other => ApiError::bad_request("malformed_body", other.to_string()),
    }
}

fn query_error(e: QueryPayloadError) -> ApiError {
    ApiError::bad_request("invalid_query", e.to_string())
}

/// A path segment that does not parse, unless the path is a route of its
/// own under other methods (`GET /media/regenerate-urls` reaches `GET
/// /media/{id}` in the router): then 405, as for any other wrong method.
fn path_error(e: PathError, req: &HttpRequest) -> ApiError {
    let allowed = openapi::methods_of(req.path());
    if !allowed.is_empty() && !allowed.contains(&req.method().as_str()) {
        return ApiError::method_not_allowed(req.method().as_str(), req.path(), &allowed);
    }
    ApiError::bad_request("invalid_path", e.to_string())
}

/// The client's address, for throttles and logs: the peer, or whom a trusted
/// proxy forwarded for (`http.trusted_proxies`), as the request middleware found it.
pub fn client_ip(req: &HttpRequest) -> String {
    match req.extensions().get::<crate::http::request_id::ClientIp>() {
        Some(c) => c.0.to_string(),
        None => req.peer_addr().map(|a| a.ip().to_string()).unwrap_or_else(|| "unknown".into()),
    }
}

/// A list page: `{items, nextCursor}`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Page<T: utoipa::ToSchema> {
    /// Items of this page.
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; null at the end.
    pub next_cursor: Option<String>,
}

/// Checks that the caller may reach `conversation`: as [`Principal::may_read`],
/// and an integration key only when it is an `api` conversation.
pub fn may_reach(db: &Db, who: &Principal, conversation: Uuid) -> Result<(), ApiError> {
    match who {
        Principal::Staff { role: Role::Integration, .. } => {
            if crate::services::conversations::is_api(db, conversation)? {
                Ok(())
            } else {
                Err(ApiError::forbidden("integration keys reach only api conversations"))
            }
        }
        _ => who.may_read(conversation),
    }
}

/// The staff user changing a conversation: a writer, or an integration key on an `api` conversation.
pub fn may_change(db: &Db, who: &Principal, conversation: Uuid) -> Result<Uuid, ApiError> {
    match who {
        Principal::Staff { user_id, role: Role::Integration } => {
            may_reach(db, who, conversation)?;
            Ok(*user_id)
        }
        _ => Ok(who.require(crate::http::auth::principal::WRITERS)?.0),
    }
}

/// Paging of a list: every list takes these (docs/api.md, Conventions).
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Page size, 1..200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<usize>,
    /// `nextCursor` of the previous page.
    pub cursor: Option<String>,
}

/// Records as their API views.
pub fn viewed<R, V: From<R>>(records: Vec<R>) -> Vec<V> {
    records.into_iter().map(V::from).collect()
}

/// The page size every list takes: default 50, 1 to 200; anything else is
/// a query error (400 `invalid_limit`), as on every list.
pub fn page_size(limit: Option<usize>) -> Result<usize, ApiError> {
    match limit {
        None => Ok(50),
        Some(n) if (1..=200).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::bad_request("invalid_limit", "limit must be between 1 and 200")),
    }
}

fn bad_cursor() -> ApiError {
    ApiError::bad_request("invalid_cursor", "cursor is not one this server returned")
}

/// Reads a cursor that is an id.
pub fn id_cursor(c: Option<&str>) -> Result<Option<Uuid>, ApiError> {
    // `cursor=` (empty) is the first page, as no cursor is.
    c.filter(|c| !c.is_empty()).map(|c| Uuid::parse_str(c).map_err(|_| bad_cursor())).transpose()
}

/// Reads a search's cursor: how many results the next page skips.
pub fn offset_cursor(c: Option<&str>) -> Result<usize, ApiError> {
    match c.filter(|c| !c.is_empty()) {
        None => Ok(0),
        Some(c) if c.len() <= 10 => c.parse().map_err(|_| bad_cursor()),
        Some(_) => Err(bad_cursor()),
    }
}

/// Checks a cursor that is a key (a name, a SKU): cursors this server
/// hands out are never empty, long or carry control characters.
pub fn text_cursor(c: Option<&str>) -> Result<(), ApiError> {
    match c {
        Some(c) if c.len() > 200 || c.chars().any(char::is_control) => Err(bad_cursor()),
        _ => Ok(()),
    }
}

/// The cursor of a list kept in time order: `<ms>_<id>` of the page's last item.
pub fn time_cursor(at: Timestamp, id: Uuid) -> String {
    format!("{}_{id}", at.millis())
}

/// Reads a [`time_cursor`].
pub fn parse_time_cursor(c: &str) -> Result<(Timestamp, Uuid), ApiError> {
    let (ms, id) = c.split_once('_').ok_or_else(bad_cursor)?;
    Ok((Timestamp(ms.parse().map_err(|_| bad_cursor())?), Uuid::parse_str(id).map_err(|_| bad_cursor())?))
}

/// A page of a short list held whole (jobs, backups, reports, flags):
/// `items` in list order, each with the key its cursor names, `ascending`
/// by that key or not. The page starts after the item `cursor` names.
pub fn page_of<T: utoipa::ToSchema>(
    items: Vec<(String, T)>,
    ascending: bool,
    limit: usize,
    cursor: Option<&str>,
) -> Result<Page<T>, ApiError> {
    text_cursor(cursor)?;
    let cursor = cursor.filter(|c| !c.is_empty());
    let after = |k: &str| match cursor {
        None => true,
        Some(c) if ascending => k > c,
        Some(c) => k < c,
    };
    let mut rest: Vec<(String, T)> = items.into_iter().filter(|(k, _)| after(k)).collect();
    let more = rest.len() > limit;
    rest.truncate(limit);
    let next_cursor = if more { rest.last().map(|(k, _)| k.clone()) } else { None };
    Ok(Page { items: rest.into_iter().map(|(_, t)| t).collect(), next_cursor })
}
