//! Integrators' API keys: made, listed and revoked by admins.

use super::{page_size, Page};
use crate::http::auth::{AuthService, Principal};
use crate::http::error::ApiError;
use crate::http::json::Json;
use crate::services::api_keys::{self as service, KeyInfo};
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utalk_actors::Registry;
use utalk_storage::model::{ApiKey, Role};
use utalk_storage::{Db, Timestamp};
use uuid::Uuid;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api-keys", web::post().to(create))
        .route("/api-keys", web::get().to(list))
        .route("/api-keys/{id}", web::delete().to(revoke));
}

/// A new API key.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"name": "shop backend", "role": "integration", "expiresAt": "2027-12-31T00:00:00Z"}))]
pub struct NewApiKey {
    /// What it is for, 1 to 100 characters.
    pub name: String,
    /// admin, operator, agent, readonly, or integration (`api` conversations only, as the customer).
    pub role: String,
    /// When it stops working (RFC 3339, in the future); never when absent.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Timestamp>,
}

/// An API key as listed; the key itself is never shown again.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyView {
    /// Id; also the caller's id in audit records when the key is used.
    pub id: Uuid,
    /// What it is for.
    pub name: String,
    /// What it may do.
    pub role: String,
    /// The key's first characters, to tell keys apart.
    pub prefix: String,
    /// Made.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// Made by.
    pub created_by: Uuid,
    /// Stops working.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Timestamp>,
    /// Revoked.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<Timestamp>,
    /// Last used, to the minute.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_used_at: Option<Timestamp>,
}

/// A key just made, with the key itself: shown this once.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedApiKey {
    /// The key.
    #[serde(flatten)]
    pub view: ApiKeyView,
    /// Send as `Authorization: Bearer <key>` (or as the socket's `auth.token`). Not shown again.
    pub key: String,
}

fn view(k: &ApiKey, last_used_at: Option<Timestamp>) -> ApiKeyView {
    ApiKeyView {
        id: k.id,
        name: k.name.clone(),
        role: k.role.as_str().into(),
        prefix: k.prefix.clone(),
        created_at: k.created_at,
        created_by: k.created_by,
        expires_at: k.expires_at,
        revoked_at: k.revoked_at,
        last_used_at,
    }
}

/// Makes an API key (admin only; audited). The key is in the answer, once.
#[utoipa::path(post, path = "/api/v1/api-keys", tag = "api-keys", request_body = NewApiKey,
    responses((status = 201, body = CreatedApiKey), (status = 403), (status = 409, description = "too_many_keys"), (status = 422)),
    security(("bearer" = [])))]
pub async fn create(
    db: web::Data<Db>,
    registry: web::Data<Registry>,
    auth: web::Data<AuthService>,
    who: Principal,
    body: Json<NewApiKey>,
) -> Result<HttpResponse, ApiError> {
    let (actor, _) = who.require(&[Role::Admin])?;
    let role = Role::parse_for_key(&body.role)
        .ok_or_else(|| ApiError::invalid("invalid_role", "role must be admin, operator, agent, readonly or integration"))?;
    let made = service::create(&db, registry.journal(), actor, &body.name, role, body.expires_at, auth.max_api_keys()).await?;
    Ok(HttpResponse::Created().json(CreatedApiKey { view: view(&made.record, None), key: made.secret }))
}

/// Lists API keys, revoked ones included (admin only).
#[utoipa::path(get, path = "/api/v1/api-keys", tag = "api-keys", params(super::PageQuery),
    responses((status = 200, body = Page<ApiKeyView>), (status = 403)), security(("bearer" = [])))]
pub async fn list(db: web::Data<Db>, who: Principal, q: web::Query<super::PageQuery>) -> Result<HttpResponse, ApiError> {
    who.require(&[Role::Admin])?;
    let limit = page_size(q.limit)?;
    let keys = service::list(&db, super::id_cursor(q.cursor.as_deref())?, limit)?;
    let next = (keys.len() == limit).then(|| keys.last().map(|k| k.record.id.to_string())).flatten();
    let items = keys.iter().map(|KeyInfo { record, last_used_at }| view(record, *last_used_at)).collect();
    Ok(HttpResponse::Ok().json(Page { items, next_cursor: next }))
}

/// Revokes an API key (admin only; audited): it stops working on every node within seconds.
#[utoipa::path(delete, path = "/api/v1/api-keys/{id}", tag = "api-keys", params(("id" = Uuid, Path)),
    responses((status = 200, body = ApiKeyView), (status = 403), (status = 404)), security(("bearer" = [])))]
pub async fn revoke(
    db: web::Data<Db>,
    registry: web::Data<Registry>,
    who: Principal,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let (actor, _) = who.require(&[Role::Admin])?;
    let k = service::revoke(&db, registry.journal(), actor, id.into_inner()).await?;
    Ok(HttpResponse::Ok().json(view(&k, service::last_used(&db, k.id)?)))
}
