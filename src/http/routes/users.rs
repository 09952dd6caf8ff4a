use super::{page_size, Page};
use crate::http::auth::{Principal, UserView};
use crate::http::error::ApiError;
use crate::services::accounts::{self as service, CreateUserError};
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use utalk_actors::Registry;
use utalk_storage::model::Role;
use utalk_storage::Db;
use uuid::Uuid;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/users", web::post().to(create)).route("/users", web::get().to(list));
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

/// Query of the user list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Page size, 1..200.
    pub limit: Option<usize>,
    /// `nextCursor` of the previous page.
    pub cursor: Option<Uuid>,
}

/// Creates a staff user (admin only).
#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = NewUser,
    responses((status = 201, body = UserView), (status = 403), (status = 409, description = "user_exists"), (status = 422)), security(("bearer" = [])))]
pub async fn create(
    db: web::Data<Db>,
    registry: web::Data<Registry>,
    who: Principal,
    body: web::Json<NewUser>,
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
#[utoipa::path(get, path = "/api/v1/users", tag = "users", params(ListQuery), responses((status = 200, body = Page<UserView>), (status = 403)), security(("bearer" = [])))]
pub async fn list(db: web::Data<Db>, who: Principal, q: web::Query<ListQuery>) -> Result<HttpResponse, ApiError> {
    who.require(&[Role::Admin])?;
    let limit = page_size(q.limit)?;
    let users = service::users(&db, q.cursor, limit)?;
    let next = (users.len() == limit).then(|| users.last().map(|u| u.id.to_string())).flatten();
    Ok(HttpResponse::Ok().json(Page { items: users.iter().map(UserView::from).collect(), next_cursor: next }))
}
