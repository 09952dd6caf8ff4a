//! Escalation, close, ratings, and pausing the bot.

use super::conversations::view;
use crate::http::auth::Principal;
use crate::http::error::ApiError;
use crate::http::json::Json;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use utalk_actors::conversation::lifecycle::{CloseRequest, EscalateRequest};
use utalk_actors::ConversationChange;
use utalk_actors::Registry;
use utalk_storage::model::{EscalationReason, RatingKind, RatingSource, Role};
use utalk_storage::Db;
use uuid::Uuid;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/conversations/force-pause-bot", web::post().to(force_pause_bot))
        .route("/conversations/{id}/escalate", web::post().to(escalate))
        .route("/conversations/{id}/close", web::post().to(close))
        .route("/conversations/{id}/rating", web::post().to(rating));
}

/// Why staff escalates.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EscalateBody {
    /// A note kept with the escalation (at most 500 characters).
    pub reason: Option<String>,
}

/// Hands the conversation to people: status escalated, the bot paused, an escalation record; agents get `conversation:updated`.
#[utoipa::path(post, path = "/api/v1/conversations/{id}/escalate", tag = "conversations", params(("id" = Uuid, Path)), request_body = Option<EscalateBody>,
    responses((status = 200, body = super::conversations::ConversationView), (status = 401), (status = 403), (status = 404), (status = 422)),
    security(("bearer" = [])))]
pub async fn escalate(
    db: web::Data<Db>,
    registry: web::Data<Registry>,
    who: Principal,
    id: web::Path<Uuid>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let user = super::may_change(&db, &who, id)?;
    // The body is optional; when there is one it is checked like any other.
    let reason = if body.iter().all(u8::is_ascii_whitespace) { None } else { crate::http::json::parse::<EscalateBody>(&body)?.reason };
    if reason.as_ref().is_some_and(|r| r.chars().count() > 500) {
        return Err(ApiError::invalid("validation_failed", "reason must have at most 500 characters"));
    }
    let change = ConversationChange {
        escalate: Some(EscalateRequest { reason: EscalationReason::Manual, detail: reason, by: Some(user), handoff: None }),
        ..ConversationChange::default()
    };
    let c = registry.call(id, change).await?;
    Ok(HttpResponse::Ok().json(view(&db, (*c).clone())?))
}

/// How a conversation ended.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CloseBody {
    /// Resolution (1–500 characters).
    pub resolution: String,
    /// Resolved at first contact; default: it was never reopened.
    pub first_contact_resolution: Option<bool>,
    /// Ask the customer for CSAT then NPS (default true).
    pub ask_rating: Option<bool>,
}

/// Closes with a resolution and asks the customer for a rating.
#[utoipa::path(post, path = "/api/v1/conversations/{id}/close", tag = "conversations", params(("id" = Uuid, Path)), request_body = CloseBody,
    responses((status = 200, body = super::conversations::ConversationView), (status = 401), (status = 403), (status = 404), (status = 422)),
    security(("bearer" = [])))]
pub async fn close(
    db: web::Data<Db>,
    registry: web::Data<Registry>,
    who: Principal,
    id: web::Path<Uuid>,
    body: Json<CloseBody>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    super::may_change(&db, &who, id)?;
    let b = body.into_inner();
    let resolution = b.resolution.trim().to_string();
    if resolution.is_empty() || resolution.chars().count() > 500 {
        return Err(ApiError::invalid("validation_failed", "resolution must have 1 to 500 characters"));
    }
    let change = ConversationChange {
        close: Some(CloseRequest {
            resolution,
            first_contact_resolution: b.first_contact_resolution,
            ask_rating: b.ask_rating.unwrap_or(true),
        }),
        ..ConversationChange::default()
    };
    let c = registry.call(id, change).await?;
    Ok(HttpResponse::Ok().json(view(&db, (*c).clone())?))
}

/// A rating: CSAT, NPS or both.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RatingBody {
    /// Satisfaction, 1–5.
    pub csat: Option<u8>,
    /// Recommendation, 0–10.
    pub nps: Option<u8>,
}

/// The ratings of a body, checked.
pub fn ratings(csat: Option<u8>, nps: Option<u8>, source: RatingSource) -> Result<Vec<(RatingKind, u8, RatingSource)>, ApiError> {
    let mut out = Vec::new();
    for (kind, v) in [(RatingKind::Csat, csat), (RatingKind::Nps, nps)] {
        if let Some(v) = v {
            if !kind.range().contains(&v) {
                return Err(ApiError::invalid("invalid_rating", "csat must be 1 to 5 and nps 0 to 10"));
            }
            out.push((kind, v, source));
        }
    }
    if out.is_empty() {
        return Err(ApiError::invalid("invalid_rating", "send csat, nps or both"));
    }
    Ok(out)
}

/// Stores a rating (staff, or the conversation's own widget).
#[utoipa::path(post, path = "/api/v1/conversations/{id}/rating", tag = "conversations", params(("id" = Uuid, Path)), request_body = RatingBody,
    responses((status = 200, body = super::conversations::ConversationView), (status = 401), (status = 403), (status = 404), (status = 422)),
    security(("bearer" = [])))]
pub async fn rating(
    db: web::Data<Db>,
    registry: web::Data<Registry>,
    who: Principal,
    id: web::Path<Uuid>,
    body: Json<RatingBody>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    match who {
        Principal::Widget { .. } => who.may_read(id)?,
        Principal::Staff { .. } => {
            super::may_change(&db, &who, id)?;
        }
    }
    let source = if matches!(who, Principal::Widget { .. }) { RatingSource::Widget } else { RatingSource::Api };
    let change = ConversationChange { ratings: ratings(body.csat, body.nps, source)?, ..ConversationChange::default() };
    let c = registry.call(id, change).await?;
    Ok(HttpResponse::Ok().json(view(&db, (*c).clone())?))
}

/// Pauses the bot on every escalated conversation where it is still on.
#[utoipa::path(post, path = "/api/v1/conversations/force-pause-bot", tag = "conversations",
    responses((status = 200, description = "`{checked, paused}`"), (status = 401), (status = 403)), security(("bearer" = [])))]
pub async fn force_pause_bot(db: web::Data<Db>, registry: web::Data<Registry>, who: Principal) -> Result<HttpResponse, ApiError> {
    let (user, _) = who.require(&[Role::Admin, Role::Operator])?;
    let (checked, paused) = crate::services::conversations::force_pause_bot(&db, &registry).await?;
    tracing::warn!(user = %user, checked, paused, "bot force-paused on escalated conversations");
    Ok(HttpResponse::Ok().json(serde_json::json!({ "checked": checked, "paused": paused })))
}
