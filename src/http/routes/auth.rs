use super::client_ip;
use crate::http::auth::{AuthService, Principal, TokenPair, UserView};
use crate::http::error::ApiError;
use crate::http::json::Json;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use utalk_storage::Db;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/auth/login", web::post().to(login))
        .route("/auth/refresh", web::post().to(refresh))
        .route("/auth/me", web::get().to(me))
        .route("/auth/password", web::post().to(change_password));
}

/// Login with email and password.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "ana@example.com", "password": "a-long-password"}))]
pub struct LoginRequest {
    /// Email.
    pub email: String,
    /// Password.
    pub password: String,
}

impl std::fmt::Debug for LoginRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginRequest").field("email", &self.email).finish_non_exhaustive()
    }
}

/// Exchange of a refresh token.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RefreshRequest {
    /// The refresh token from login or the last refresh.
    pub refresh_token: String,
}

/// Logs a staff user in.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = TokenPair), (status = 401, description = "invalid_credentials"), (status = 429, description = "too_many_attempts")))]
pub async fn login(req: HttpRequest, auth: web::Data<AuthService>, body: Json<LoginRequest>) -> Result<HttpResponse, ApiError> {
    let pair = auth.login(&body.email, &body.password, &client_ip(&req)).await?;
    Ok(HttpResponse::Ok().json(pair))
}

/// Exchanges a refresh token for a new pair; the old token stops working.
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, body = TokenPair), (status = 401, description = "invalid_refresh_token or refresh_token_reused")))]
pub async fn refresh(auth: web::Data<AuthService>, body: Json<RefreshRequest>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(auth.refresh(&body.refresh_token).await?))
}

/// The calling user.
#[utoipa::path(get, path = "/api/v1/auth/me", tag = "auth", responses((status = 200, body = UserView), (status = 401)), security(("bearer" = [])))]
pub async fn me(db: web::Data<Db>, who: Principal) -> Result<HttpResponse, ApiError> {
    let (id, _) = who.require(crate::http::auth::principal::READERS)?;
    let u = crate::services::accounts::user(&db, id)?.ok_or_else(|| ApiError::unauthorized("invalid_token", "user no longer exists"))?;
    Ok(HttpResponse::Ok().json(UserView::from(&u)))
}

/// A user's change of their own password.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PasswordChange {
    /// The password now.
    pub current_password: String,
    /// The new one: at least 10 characters.
    pub new_password: String,
}

impl std::fmt::Debug for PasswordChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordChange").finish_non_exhaustive()
    }
}

/// Changes the caller's own password. Every session of the old password
/// ends (access and refresh tokens, open sockets); the answer is a new pair.
#[utoipa::path(post, path = "/api/v1/auth/password", tag = "auth", request_body = PasswordChange,
    responses((status = 200, body = TokenPair), (status = 401, description = "invalid_credentials: the current password is wrong"),
        (status = 403, description = "an API key has no password"), (status = 422, description = "weak_password"), (status = 429)),
    security(("bearer" = [])))]
pub async fn change_password(auth: web::Data<AuthService>, who: Principal, body: Json<PasswordChange>) -> Result<HttpResponse, ApiError> {
    let (id, _) = who.require(crate::http::auth::principal::READERS)?;
    Ok(HttpResponse::Ok().json(auth.change_own_password(id, &body.current_password, &body.new_password).await?))
}
