//! Feature flags over REST: read by any staff user (with whether it is on for
//! them), changed by admins at runtime, audited.

use crate::http::auth::principal::READERS;
use crate::http::auth::Principal;
use crate::http::error::ApiError;
use crate::http::json::Json;
use crate::services::flags::Flags;
use crate::state::FlagsLock;
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utalk_actors::views;
use utalk_actors::Registry;
use utalk_storage::model::Role;
use utalk_storage::model::{Flag, Subject};
use utalk_storage::Timestamp;
use uuid::Uuid;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/flags", web::get().to(list)).route("/flags/{name}", web::get().to(get)).route("/flags/{name}", web::put().to(put));
}

/// A flag and whether it is on for the caller.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FlagView {
    /// The flag.
    #[serde(flatten)]
    pub flag: views::Flag,
    /// Whether it is on for the caller (and `workspace`, when asked).
    pub on: bool,
}

/// Query of `GET /flags/{name}`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FlagQuery {
    /// Evaluate for this workspace too.
    pub workspace: Option<String>,
}

/// Flags by name (admins, operators).
#[utoipa::path(get, path = "/api/v1/flags", tag = "operations", params(super::PageQuery),
    responses((status = 200, body = super::Page<views::Flag>), (status = 400), (status = 401), (status = 403)), security(("bearer" = [])))]
pub async fn list(flags: web::Data<Flags>, who: Principal, q: web::Query<super::PageQuery>) -> Result<HttpResponse, ApiError> {
    who.require(&[Role::Admin, Role::Operator])?;
    let limit = super::page_size(q.limit)?;
    let all = flags.list().into_iter().map(|f| (f.name.clone(), views::Flag::from(f))).collect();
    Ok(HttpResponse::Ok().json(super::page_of(all, true, limit, q.cursor.as_deref())?))
}

/// A flag and whether it is on for the caller (any staff user).
#[utoipa::path(get, path = "/api/v1/flags/{name}", tag = "operations", params(("name" = String, Path), FlagQuery),
    responses((status = 200, body = FlagView), (status = 401), (status = 403), (status = 404)), security(("bearer" = [])))]
pub async fn get(
    flags: web::Data<Flags>,
    who: Principal,
    name: web::Path<String>,
    q: web::Query<FlagQuery>,
) -> Result<HttpResponse, ApiError> {
    let (user, _) = who.require(READERS)?;
    let f = flags.get(&name).ok_or_else(|| ApiError::not_found("flag"))?;
    let on = f.is_on(Subject { user: Some(user), workspace: q.workspace.as_deref() });
    Ok(HttpResponse::Ok().json(FlagView { flag: f.into(), on }))
}

/// Body of `PUT /flags/{name}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FlagChange {
    /// What it is for.
    #[serde(default)]
    pub description: String,
    /// Master switch.
    pub enabled: bool,
    /// Share of users, 0–100.
    #[serde(default)]
    pub percent: u8,
    /// Per workspace.
    #[serde(default)]
    pub workspaces: BTreeMap<String, bool>,
    /// Per user.
    #[serde(default)]
    pub users: BTreeMap<Uuid, bool>,
    /// The version this change replaces (omit to create, or to overwrite whatever is there).
    pub version: Option<u64>,
}

/// Creates or changes a flag, at once for every reader (admins); audited.
#[utoipa::path(put, path = "/api/v1/flags/{name}", tag = "operations", params(("name" = String, Path)), request_body = FlagChange,
    responses((status = 200, body = views::Flag), (status = 400, description = "invalid_flag_name"), (status = 401), (status = 403),
        (status = 409, description = "version_conflict"), (status = 422)),
    security(("bearer" = [])))]
pub async fn put(
    registry: web::Data<Registry>,
    flags: web::Data<Flags>,
    flags_lock: web::Data<FlagsLock>,
    who: Principal,
    name: web::Path<String>,
    body: Json<FlagChange>,
) -> Result<HttpResponse, ApiError> {
    let (user, _) = who.require(&[Role::Admin])?;
    if !crate::services::flags::valid_name(&name) {
        return Err(ApiError::bad_request("invalid_flag_name", "flag names are 1 to 64 of a-z, 0-9, _ . -"));
    }
    let c = body.into_inner();
    if c.percent > 100 {
        return Err(ApiError::invalid("validation_failed", "percent must be 0 to 100"));
    }
    if c.workspaces.len() > 1_000
        || c.users.len() > 10_000
        || c.workspaces.keys().any(|w| w.is_empty() || w.len() > 64)
        || c.description.len() > 500
    {
        return Err(ApiError::invalid(
            "validation_failed",
            "at most 1,000 workspaces (1–64 characters each), 10,000 users and a 500-character description",
        ));
    }
    // One change at a time, so that the version check and the write are one step.
    let _one = flags_lock.0.lock().await;
    let current = flags.get(&name);
    if c.version.is_some_and(|v| v > i64::MAX as u64) {
        return Err(ApiError::invalid("validation_failed", "version is out of range"));
    }
    if let (Some(v), Some(cur)) = (c.version, &current) {
        if v != cur.version {
            return Err(ApiError::conflict(
                "version_conflict",
                format!("flag {name} is at version {}, not {v}; read it again", cur.version),
            ));
        }
    }
    let f = Flag {
        name: name.to_string(),
        description: c.description,
        enabled: c.enabled,
        percent: c.percent,
        workspaces: c.workspaces,
        users: c.users,
        version: current.map_or(1, |cur| cur.version + 1),
        updated_at: Timestamp::now(),
        updated_by: user.to_string(),
    };
    crate::services::records::save_flag(registry.journal(), user, &f).await?;
    flags.stored(f.clone());
    Ok(HttpResponse::Ok().json(views::Flag::from(f)))
}
