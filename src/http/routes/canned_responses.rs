//! Canned responses: agents' saved replies (`/shortcode` in the console).

use super::{page_of, page_size, Page};
use crate::http::auth::principal::{READERS, WRITERS};
use crate::http::auth::Principal;
use crate::http::error::ApiError;
use crate::http::json::Json;
use crate::services::canned::{self as service, Edit};
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utalk_actors::Registry;
use utalk_storage::model::CannedResponse;
use utalk_storage::{Db, Timestamp};
use uuid::Uuid;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/canned-responses", web::post().to(create))
        .route("/canned-responses", web::get().to(list))
        .route("/canned-responses/{id}", web::get().to(get))
        .route("/canned-responses/{id}", web::patch().to(update))
        .route("/canned-responses/{id}", web::delete().to(delete));
}

/// A saved reply.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CannedResponseView {
    /// Id.
    pub id: Uuid,
    /// What an agent types after `/`.
    pub short_code: String,
    /// The text it expands to.
    pub content: String,
    /// Who made it.
    pub created_by: Uuid,
    /// Made.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// Last changed.
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

impl From<CannedResponse> for CannedResponseView {
    fn from(c: CannedResponse) -> Self {
        Self {
            id: c.id,
            short_code: c.short_code,
            content: c.content,
            created_by: c.created_by,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

/// A new canned response.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"shortCode": "hours", "content": "Abrimos de lunes a viernes de 9 a 18 h."}))]
pub struct NewCannedResponse {
    /// 1 to 32 of `a-z`, `0-9`, `_`, `-`; unique.
    pub short_code: String,
    /// 1 to 4096 characters.
    pub content: String,
}

/// A change of a canned response.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CannedResponseChange {
    /// New short code.
    pub short_code: Option<String>,
    /// New content.
    pub content: Option<String>,
}

/// Query of the list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CannedQuery {
    /// Only short codes that start with this (what an agent typed after `/`).
    pub q: Option<String>,
    /// Page size, 1..200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<usize>,
    /// `nextCursor` of the previous page.
    pub cursor: Option<String>,
}

/// Saves a reply under a short code (admins, operators, agents; audited).
#[utoipa::path(post, path = "/api/v1/canned-responses", tag = "canned-responses", request_body = NewCannedResponse,
    responses((status = 201, body = CannedResponseView), (status = 401), (status = 403),
        (status = 409, description = "short_code_taken, too_many_canned_responses"), (status = 422)),
    security(("bearer" = [])))]
pub async fn create(
    db: web::Data<Db>,
    registry: web::Data<Registry>,
    who: Principal,
    body: Json<NewCannedResponse>,
) -> Result<HttpResponse, ApiError> {
    let (actor, _) = who.require(WRITERS)?;
    let b = body.into_inner();
    let made = service::create(&db, &registry, actor, b.short_code, b.content).await?;
    Ok(HttpResponse::Created().json(CannedResponseView::from(made)))
}

/// Lists canned responses by short code (every staff role but integration keys).
#[utoipa::path(get, path = "/api/v1/canned-responses", tag = "canned-responses", params(CannedQuery),
    responses((status = 200, body = Page<CannedResponseView>), (status = 400), (status = 401), (status = 403)), security(("bearer" = [])))]
pub async fn list(db: web::Data<Db>, who: Principal, q: web::Query<CannedQuery>) -> Result<HttpResponse, ApiError> {
    who.require(READERS)?;
    let limit = page_size(q.limit)?;
    let prefix = q.q.as_deref().unwrap_or("");
    if prefix.len() > 32 {
        return Err(ApiError::bad_request("invalid_query", "q is at most 32 characters"));
    }
    let items = service::list(&db)?
        .into_iter()
        .filter(|c| c.short_code.starts_with(prefix))
        .map(|c| (c.short_code.clone(), CannedResponseView::from(c)))
        .collect();
    Ok(HttpResponse::Ok().json(page_of(items, true, limit, q.cursor.as_deref())?))
}

/// One canned response.
#[utoipa::path(get, path = "/api/v1/canned-responses/{id}", tag = "canned-responses", params(("id" = Uuid, Path)),
    responses((status = 200, body = CannedResponseView), (status = 401), (status = 403), (status = 404)), security(("bearer" = [])))]
pub async fn get(db: web::Data<Db>, who: Principal, id: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    who.require(READERS)?;
    Ok(HttpResponse::Ok().json(CannedResponseView::from(service::get(&db, id.into_inner())?)))
}

/// Changes a canned response's short code or content (admins, operators, agents; audited).
#[utoipa::path(patch, path = "/api/v1/canned-responses/{id}", tag = "canned-responses", params(("id" = Uuid, Path)), request_body = CannedResponseChange,
    responses((status = 200, body = CannedResponseView), (status = 401), (status = 403), (status = 404), (status = 409, description = "short_code_taken"),
        (status = 422)),
    security(("bearer" = [])))]
pub async fn update(
    db: web::Data<Db>,
    registry: web::Data<Registry>,
    who: Principal,
    id: web::Path<Uuid>,
    body: Json<CannedResponseChange>,
) -> Result<HttpResponse, ApiError> {
    let (actor, _) = who.require(WRITERS)?;
    let b = body.into_inner();
    if b.short_code.is_none() && b.content.is_none() {
        return Err(ApiError::invalid("empty_change", "send shortCode and/or content"));
    }
    let edit = Edit { short_code: b.short_code, content: b.content };
    let changed = service::update(&db, &registry, actor, id.into_inner(), edit).await?;
    Ok(HttpResponse::Ok().json(CannedResponseView::from(changed)))
}

/// Deletes a canned response (admins, operators, agents; audited).
#[utoipa::path(delete, path = "/api/v1/canned-responses/{id}", tag = "canned-responses", params(("id" = Uuid, Path)),
    responses((status = 204), (status = 401), (status = 403), (status = 404)), security(("bearer" = [])))]
pub async fn delete(
    db: web::Data<Db>,
    registry: web::Data<Registry>,
    who: Principal,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let (actor, _) = who.require(WRITERS)?;
    service::delete(&db, &registry, actor, id.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}
