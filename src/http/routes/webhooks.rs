//! Event webhook subscriptions and their delivery log (admins).

use super::{page_size, Page};
use crate::http::auth::Principal;
use crate::http::error::ApiError;
use crate::http::json::Json;
use crate::services::webhooks::{self as service, Limits, Spec};
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utalk_actors::webhooks::WebhookTap;
use utalk_actors::Registry;
use utalk_storage::model::Role;
use utalk_storage::model::{Delivery, DeliveryState, Webhook};
use utalk_storage::{Db, Timestamp};
use uuid::Uuid;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/webhooks", web::post().to(create))
        .route("/webhooks", web::get().to(list))
        .route("/webhooks/{id}", web::get().to(get))
        .route("/webhooks/{id}", web::patch().to(update))
        .route("/webhooks/{id}", web::delete().to(delete))
        .route("/webhooks/{id}/deliveries", web::get().to(deliveries))
        .route("/webhooks/{id}/deliveries/{delivery}/redeliver", web::post().to(redeliver));
}

/// A new subscription.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"url": "https://hooks.example.com/utalk", "events": ["message.created", "conversation.closed"]}))]
pub struct NewWebhook {
    /// The receiver: http or https, at most 2048 characters, no credentials.
    pub url: String,
    /// Event names, for example `["message.created", "conversation.closed"]`.
    pub events: Vec<String>,
    /// Whether it receives events now (default true).
    pub active: Option<bool>,
}

/// A change of a subscription; at least one field.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookChange {
    /// New receiver.
    pub url: Option<String>,
    /// New event names.
    pub events: Option<Vec<String>>,
    /// On or off; turning it on clears `disabledReason`.
    pub active: Option<bool>,
}

/// A subscription; the secret is never shown again.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookView {
    /// Id.
    pub id: Uuid,
    /// Receiver.
    pub url: String,
    /// Event names.
    pub events: Vec<String>,
    /// Whether events are queued and sent.
    pub active: bool,
    /// Why the server turned it off (every delivery failing for `webhooks.disable_after_secs`).
    pub disabled_reason: Option<String>,
    /// Since when every attempt has failed.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub failing_since: Option<Timestamp>,
    /// Made.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// Made by; null for the one made from the `[alerts]` webhook settings.
    pub created_by: Option<Uuid>,
    /// Last change.
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

/// A subscription just made, with its signing secret: shown this once.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedWebhook {
    /// The subscription.
    #[serde(flatten)]
    pub view: WebhookView,
    /// Key of `X-Utalk-Signature` (HMAC-SHA256). Not shown again.
    pub secret: String,
}

/// One delivery of an event to a subscription.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryView {
    /// Id, sent as `X-Utalk-Delivery`.
    pub id: Uuid,
    /// The event's id (the body's `id`), the same in a redelivery.
    pub event_id: Uuid,
    /// Event name.
    pub event: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    /// Attempts so far.
    pub attempts: u32,
    /// The receiver's last status code.
    pub response_code: Option<u16>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// Queued.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// Last attempt.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_attempt_at: Option<Timestamp>,
    /// Next attempt, while pending.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_attempt_at: Option<Timestamp>,
    /// Taken by the receiver.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub delivered_at: Option<Timestamp>,
    /// The delivery this one sends again.
    pub redelivery_of: Option<Uuid>,
    /// The JSON body sent.
    pub body: String,
}

fn view(w: &Webhook) -> WebhookView {
    WebhookView {
        id: w.id,
        url: w.url.clone(),
        events: w.events.clone(),
        active: w.active,
        disabled_reason: w.disabled_reason.clone(),
        failing_since: w.failing_since,
        created_at: w.created_at,
        created_by: w.created_by,
        updated_at: w.updated_at,
    }
}

fn delivery_view(d: Delivery) -> DeliveryView {
    let pending = d.state == DeliveryState::Pending;
    DeliveryView {
        id: d.id,
        event_id: d.event_id,
        event: d.event,
        status: match d.state {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
        }
        .into(),
        attempts: d.attempts,
        response_code: d.response_code,
        last_error: d.last_error,
        created_at: d.created_at,
        last_attempt_at: d.last_attempt_at,
        next_attempt_at: pending.then_some(d.next_attempt_at),
        delivered_at: d.delivered_at,
        redelivery_of: d.redelivery_of,
        body: d.body,
    }
}

const ADMIN: &[Role] = &[Role::Admin];

/// Subscribes a receiver to events (admin only; audited). The secret is in the answer, once.
#[utoipa::path(post, path = "/api/v1/webhooks", tag = "webhooks", request_body = NewWebhook,
    responses((status = 201, body = CreatedWebhook), (status = 401), (status = 403),
        (status = 409, description = "too_many_webhooks"), (status = 422, description = "validation_failed, unknown_event, url_not_allowed")),
    security(("bearer" = [])))]
pub async fn create(
    db: web::Data<Db>,
    registry: web::Data<Registry>,
    tap: web::Data<WebhookTap>,
    limits: web::Data<Limits>,
    who: Principal,
    body: Json<NewWebhook>,
) -> Result<HttpResponse, ApiError> {
    let (actor, _) = who.require(ADMIN)?;
    let body = body.into_inner();
    let spec = Spec { url: Some(body.url), events: Some(body.events), active: body.active };
    let w = service::create(&db, registry.journal(), &tap, actor, spec, **limits).await?;
    Ok(HttpResponse::Created().json(CreatedWebhook { view: view(&w), secret: w.secret.clone() }))
}

/// Subscriptions in creation order (admin only).
#[utoipa::path(get, path = "/api/v1/webhooks", tag = "webhooks", params(super::PageQuery),
    responses((status = 200, body = Page<WebhookView>), (status = 400), (status = 401), (status = 403)), security(("bearer" = [])))]
pub async fn list(db: web::Data<Db>, who: Principal, q: web::Query<super::PageQuery>) -> Result<HttpResponse, ApiError> {
    who.require(ADMIN)?;
    let limit = page_size(q.limit)?;
    let items = service::list(&db, super::id_cursor(q.cursor.as_deref())?, limit)?;
    let next = (items.len() == limit).then(|| items.last().map(|w| w.id.to_string())).flatten();
    Ok(HttpResponse::Ok().json(Page { items: items.iter().map(view).collect(), next_cursor: next }))
}

/// One subscription (admin only).
#[utoipa::path(get, path = "/api/v1/webhooks/{id}", tag = "webhooks", params(("id" = Uuid, Path)),
    responses((status = 200, body = WebhookView), (status = 401), (status = 403), (status = 404)), security(("bearer" = [])))]
pub async fn get(db: web::Data<Db>, who: Principal, id: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    who.require(ADMIN)?;
    Ok(HttpResponse::Ok().json(view(&service::get(&db, *id)?)))
}

/// Changes a subscription's receiver, events or state (admin only; audited).
#[utoipa::path(patch, path = "/api/v1/webhooks/{id}", tag = "webhooks", params(("id" = Uuid, Path)), request_body = WebhookChange,
    responses((status = 200, body = WebhookView), (status = 401), (status = 403), (status = 404), (status = 422)), security(("bearer" = [])))]
pub async fn update(
    db: web::Data<Db>,
    registry: web::Data<Registry>,
    tap: web::Data<WebhookTap>,
    limits: web::Data<Limits>,
    who: Principal,
    id: web::Path<Uuid>,
    body: Json<WebhookChange>,
) -> Result<HttpResponse, ApiError> {
    let (actor, _) = who.require(ADMIN)?;
    let body = body.into_inner();
    let spec = Spec { url: body.url, events: body.events, active: body.active };
    let w = service::update(&db, registry.journal(), &tap, actor, *id, spec, **limits).await?;
    Ok(HttpResponse::Ok().json(view(&w)))
}

/// Removes a subscription and the deliveries it had still to send (admin only; audited).
#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", tag = "webhooks", params(("id" = Uuid, Path)),
    responses((status = 204), (status = 401), (status = 403), (status = 404)), security(("bearer" = [])))]
pub async fn delete(
    db: web::Data<Db>,
    registry: web::Data<Registry>,
    tap: web::Data<WebhookTap>,
    who: Principal,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let (actor, _) = who.require(ADMIN)?;
    service::delete(&db, registry.journal(), &tap, actor, *id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// A subscription's deliveries, newest first, with status, response code and attempts (admin only).
#[utoipa::path(get, path = "/api/v1/webhooks/{id}/deliveries", tag = "webhooks", params(("id" = Uuid, Path), super::PageQuery),
    responses((status = 200, body = Page<DeliveryView>), (status = 400), (status = 401), (status = 403), (status = 404)),
    security(("bearer" = [])))]
pub async fn deliveries(
    db: web::Data<Db>,
    who: Principal,
    id: web::Path<Uuid>,
    q: web::Query<super::PageQuery>,
) -> Result<HttpResponse, ApiError> {
    who.require(ADMIN)?;
    let limit = page_size(q.limit)?;
    let items = service::deliveries(&db, *id, super::id_cursor(q.cursor.as_deref())?, limit)?;
    let next = (items.len() == limit).then(|| items.last().map(|d| d.id.to_string())).flatten();
    Ok(HttpResponse::Ok().json(Page { items: items.into_iter().map(delivery_view).collect(), next_cursor: next }))
}

/// Sends a finished delivery again, as a new delivery of the same event after
/// everything queued (admin only; audited).
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/deliveries/{delivery}/redeliver", tag = "webhooks",
    params(("id" = Uuid, Path), ("delivery" = Uuid, Path)),
    responses((status = 202, body = DeliveryView), (status = 401), (status = 403), (status = 404), (status = 409, description = "delivery_pending")),
    security(("bearer" = [])))]
pub async fn redeliver(
    db: web::Data<Db>,
    registry: web::Data<Registry>,
    who: Principal,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (actor, _) = who.require(ADMIN)?;
    let (id, delivery) = path.into_inner();
    let d = service::redeliver(&db, registry.journal(), actor, id, delivery).await?;
    Ok(HttpResponse::Accepted().json(delivery_view(d)))
}
