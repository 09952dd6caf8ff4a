use super::{page_size, Page};
use crate::http::auth::{Principal, UserView};
use crate::http::error::ApiError;
use crate::http::json::Json;
use crate::services::accounts::{self as service, CreateUserError};
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use utalk_actors::Registry;
use utalk_storage::model::Role;
use utalk_storage::Db;
use uuid::Uuid;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/users", web::post().to(create))
        .route("/users", web::get().to(list))
        .route("/users/{id}", web::patch().to(patch))
        .route("/users/{id}/password", web::post().to(reset_password));
}

/// A new staff user.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// Email.
    pub email: String,
    /// admin, operator, agent or readonly.
    pub role: String,
    /// At least 10 characters.
    pub password: String,
}

/// Creates a staff user (admin only).
#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = NewUser,
    responses((status = 201, body = UserView), (status = 403), (status = 409, description = "user_exists"), (status = 422)), security(("bearer" = [])))]
pub async fn create(
    db: web::Data<Db>,
    registry: web::Data<Registry>,
    who: Principal,
    body: Json<NewUser>,
) -> Result<HttpResponse, ApiError> {
    let (actor, _) = who.require(&[Role::Admin])?;
    let role =
        Role::parse(&body.role).ok_or_else(|| ApiError::invalid("invalid_role", "role must be admin, operator, agent or readonly"))?;
    let u = service::create_user(&db, registry.journal(), &body.email, role, &body.password, &actor.to_string()).await.map_err(
        |e| match e {
            CreateUserError::BadEmail(_) => ApiError::invalid("invalid_email", e.to_string()),
            CreateUserError::BadPassword(m) => ApiError::invalid("weak_password", m.to_string()),
            CreateUserError::Exists(_) => ApiError::conflict("user_exists", e.to_string()),
            CreateUserError::Store(s) => s.into(),
            CreateUserError::Write(w) => w.into(),
            CreateUserError::Hash(h) => ApiError::internal(h),
        },
    )?;
    Ok(HttpResponse::Created().json(UserView::from(&u)))
}

/// Lists staff users (admin only).
#[utoipa::path(get, path = "/api/v1/users", tag = "users", params(super::PageQuery), responses((status = 200, body = Page<UserView>), (status = 403)), security(("bearer" = [])))]
pub async fn list(db: web::Data<Db>, who: Principal, q: web::Query<super::PageQuery>) -> Result<HttpResponse, ApiError> {
    who.require(&[Role::Admin])?;
    let limit = page_size(q.limit)?;
    let users = service::users(&db, super::id_cursor(q.cursor.as_deref())?, limit)?;
    let next = (users.len() == limit).then(|| users.last().map(|u| u.id.to_string())).flatten();
    Ok(HttpResponse::Ok().json(Page { items: users.iter().map(UserView::from).collect(), next_cursor: next }))
}

/// An admin's change of a user; absent fields stay as they are.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PatchUser {
    /// admin, operator, agent or readonly.
    pub role: Option<String>,
    /// Display name, at most 100 characters; "" removes it.
    pub name: Option<String>,
    /// true locks the user out at once: tokens, refresh tokens and open sockets stop working.
    pub disabled: Option<bool>,
}

/// Changes a user's role, name or disabled flag (admin only; audited).
#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users", params(("id" = Uuid, Path)), request_body = PatchUser,
    responses((status = 200, body = UserView), (status = 403), (status = 404),
        (status = 409, description = "cannot_change_self: admins may not demote or disable themselves"), (status = 422)),
    security(("bearer" = [])))]
pub async fn patch(
    db: web::Data<Db>,
    registry: web::Data<Registry>,
    who: Principal,
    id: web::Path<Uuid>,
    body: Json<PatchUser>,
) -> Result<HttpResponse, ApiError> {
    let (actor, _) = who.require(&[Role::Admin])?;
    let body = body.into_inner();
    if body.role.is_none() && body.name.is_none() && body.disabled.is_none() {
        return Err(ApiError::invalid("empty_change", "send role, name and/or disabled"));
    }
    let role = match body.role.as_deref() {
        Some(r) => {
            Some(Role::parse(r).ok_or_else(|| ApiError::invalid("invalid_role", "role must be admin, operator, agent or readonly"))?)
        }
        None => None,
    };
    let change = service::UserChange { role, name: body.name, disabled: body.disabled };
    let u = service::change_user(&db, registry.journal(), service::ChangedBy::Staff(actor), id.into_inner(), change).await?;
    Ok(HttpResponse::Ok().json(UserView::from(&u)))
}

/// A new password set by an admin.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordReset {
    /// At least 10 characters.
    pub password: String,
}

/// Sets a user's password (admin only; audited). The user is signed out everywhere.
#[utoipa::path(post, path = "/api/v1/users/{id}/password", tag = "users", params(("id" = Uuid, Path)), request_body = PasswordReset,
    responses((status = 204), (status = 403), (status = 404), (status = 422, description = "weak_password")), security(("bearer" = [])))]
pub async fn reset_password(
    db: web::Data<Db>,
    registry: web::Data<Registry>,
    who: Principal,
    id: web::Path<Uuid>,
    body: Json<PasswordReset>,
) -> Result<HttpResponse, ApiError> {
    let (actor, _) = who.require(&[Role::Admin])?;
    if body.password.len() > service::password::MAX_LEN {
        return Err(ApiError::invalid("weak_password", format!("password must have at most {} bytes", service::password::MAX_LEN)));
    }
    service::set_password(
        &db,
        registry.journal(),
        service::ChangedBy::Staff(actor),
        id.into_inner(),
        &body.password,
        "user.password_reset",
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}
