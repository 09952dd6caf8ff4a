//! What waits to go out over WhatsApp, for operators.

use crate::http::auth::Principal;
use crate::http::error::ApiError;
use crate::services::operations as service;
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use std::sync::atomic::Ordering;
use utalk_actors::channels::delivery::Delivery;
use utalk_actors::channels::media_fetch::MediaFetcher;
use utalk_storage::model::Role;
use utalk_storage::Db;
use uuid::Uuid;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/outbox", web::get().to(list));
}

/// Paging of the outbox.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OutboxQuery {
    /// Page size, 1..200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<usize>,
    /// `nextCursor` of the previous page.
    pub cursor: Option<String>,
}

/// The delivery worker's state and a page of the outbox, by conversation and seq.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OutboxPage {
    /// Whether Twilio is configured (entries wait as not_configured when not).
    pub configured: bool,
    /// Circuit breaker: closed, open or half_open.
    pub breaker: &'static str,
    /// Entries of this page.
    pub items: Vec<utalk_actors::views::OutboxEntry>,
    /// Pass as `cursor` for the next page.
    pub next_cursor: Option<String>,
}

/// Lists the outbox (admins and operators).
#[utoipa::path(get, path = "/api/v1/admin/outbox", tag = "whatsapp", params(OutboxQuery),
    responses((status = 200, body = OutboxPage), (status = 401), (status = 403)), security(("bearer" = [])))]
pub async fn list(
    db: web::Data<Db>,
    delivery: web::Data<Delivery>,
    who: Principal,
    q: web::Query<OutboxQuery>,
) -> Result<HttpResponse, ApiError> {
    who.require(&[Role::Admin, Role::Operator])?;
    let limit = super::page_size(q.limit)?;
    let after = match q.cursor.as_deref().filter(|c| !c.is_empty()) {
        Some(c) => Some(
            c.split_once(':')
                .and_then(|(conv, seq)| Some((Uuid::parse_str(conv).ok()?, seq.parse::<u64>().ok()?)))
                .ok_or_else(|| ApiError::bad_request("invalid_cursor", "cursor is not one this server returned"))?,
        ),
        None => None,
    };
    let items = service::outbox(&db, after, limit)?;
    let next_cursor = (items.len() == limit).then(|| items.last().map(|e| format!("{}:{}", e.conversation_id, e.seq))).flatten();
    Ok(HttpResponse::Ok().json(OutboxPage {
        configured: delivery.configured(),
        breaker: delivery.breaker_state().as_str(),
        items: super::viewed(items),
        next_cursor,
    }))
}

/// WhatsApp delivery health: configuration, breaker, queue depths, counters.
#[utoipa::path(get, path = "/health/whatsapp", tag = "health", responses((status = 200)))]
pub async fn health(db: web::Data<Db>, delivery: web::Data<Delivery>, fetcher: web::Data<MediaFetcher>) -> Result<HttpResponse, ApiError> {
    // Counted up to a cap: this endpoint is public and must stay cheap.
    const CAP: usize = 1_000;
    let (depth, downloads) = service::queue_depths(&db, CAP + 1)?;
    let d = &delivery.stats;
    let f = &fetcher.stats;
    let breaker = delivery.breaker_state().as_str();
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "status": if !delivery.configured() { "not_configured" } else if breaker == "closed" { "ok" } else { "degraded" },
        "configured": delivery.configured(),
        "breaker": breaker,
        "outbox": { "depth": depth.min(CAP), "atLeast": depth > CAP },
        "mediaDownloads": { "pending": downloads.min(CAP), "atLeast": downloads > CAP },
        "sent": d.sent.load(Ordering::Relaxed),
        "failed": d.failed.load(Ordering::Relaxed),
        "retried": d.retried.load(Ordering::Relaxed),
        "mediaStored": f.stored.load(Ordering::Relaxed),
        "mediaFailed": f.failed.load(Ordering::Relaxed),
    })))
}
