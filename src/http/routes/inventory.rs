//! Stores, products with their stock, stock transactions and stock alerts.

use super::Page;
use crate::http::auth::principal::READERS;
use crate::http::auth::Principal;
use crate::http::error::ApiError;
use crate::http::json::Json;
use crate::services::inventory as service;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use utalk_actors::inventory::Inventory;
use utalk_actors::inventory::TxnRequest;
use utalk_actors::views;
use utalk_actors::Registry;
use utalk_storage::model::{AlertStatus, Role};
use utalk_storage::model::{Product, Store, TxnType};
use utalk_storage::Db;
use utalk_storage::Timestamp;
use uuid::Uuid;

/// Who changes stores, products and stock.
const STOCK_KEEPERS: &[Role] = &[Role::Admin, Role::Operator];

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/stores", web::get().to(list_stores))
        .route("/stores", web::post().to(create_store))
        .route("/stores/{id}/products", web::get().to(list_products))
        .route("/stores/{id}/products", web::post().to(create_product))
        .route("/inventory/transactions", web::post().to(transaction))
        .route("/alerts", web::get().to(list_alerts))
        .route("/alerts/{id}/ack", web::post().to(ack))
        .route("/alerts/{id}/resolve", web::post().to(resolve));
}

/// Body of `POST /stores`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewStore {
    /// Name (1–200 characters).
    pub name: String,
    /// Whether a sale may take stock below zero (an alert is raised) or is refused with 409.
    #[serde(default)]
    pub allow_negative_stock: bool,
    /// The manager's email: they get the store's alerts on their socket.
    pub manager_email: Option<String>,
}

fn check_text(field: &str, v: &str, max: usize) -> Result<String, ApiError> {
    let t = v.trim();
    if t.is_empty() || t.chars().count() > max || t.chars().any(char::is_control) {
        return Err(ApiError::invalid("validation_failed", format!("{field} must be 1 to {max} characters without control characters")));
    }
    Ok(t.to_string())
}

/// Stores in id (creation) order (any staff role).
#[utoipa::path(get, path = "/api/v1/stores", tag = "inventory", params(super::PageQuery),
    responses((status = 200, body = Page<views::Store>), (status = 400), (status = 401), (status = 403)), security(("bearer" = [])))]
pub async fn list_stores(db: web::Data<Db>, who: Principal, q: web::Query<super::PageQuery>) -> Result<HttpResponse, ApiError> {
    who.require(READERS)?;
    let limit = super::page_size(q.limit)?;
    let items = service::stores(&db, super::id_cursor(q.cursor.as_deref())?, limit)?;
    let next = (items.len() == limit).then(|| items.last().map(|s| s.id.to_string())).flatten();
    Ok(HttpResponse::Ok().json(Page { items: super::viewed::<_, views::Store>(items), next_cursor: next }))
}

/// Creates a store (admins, operators).
#[utoipa::path(post, path = "/api/v1/stores", tag = "inventory", request_body = NewStore,
    responses((status = 201, body = views::Store), (status = 401), (status = 403), (status = 422)), security(("bearer" = [])))]
pub async fn create_store(registry: web::Data<Registry>, who: Principal, body: Json<NewStore>) -> Result<HttpResponse, ApiError> {
    let (user, _) = who.require(STOCK_KEEPERS)?;
    let name = check_text("name", &body.name, 200)?;
    let manager_email = match body.manager_email.as_deref() {
        Some(e) if !(e.contains('@') && e.len() <= 254) => {
            return Err(ApiError::invalid("validation_failed", "managerEmail must be an email address"))
        }
        other => other.map(crate::services::accounts::normalize_email),
    };
    let s =
        Store { id: Uuid::now_v7(), name, allow_negative_stock: body.allow_negative_stock, manager_email, created_at: Timestamp::now() };
    service::create_store(registry.journal(), user, &s).await?;
    Ok(HttpResponse::Created().json(views::Store::from(s)))
}

/// A store's products with their stock, in SKU order (any staff role).
#[utoipa::path(get, path = "/api/v1/stores/{id}/products", tag = "inventory", params(("id" = Uuid, Path), super::PageQuery),
    responses((status = 200, body = Page<views::Product>), (status = 400), (status = 401), (status = 403), (status = 404)), security(("bearer" = [])))]
pub async fn list_products(
    db: web::Data<Db>,
    who: Principal,
    id: web::Path<Uuid>,
    q: web::Query<super::PageQuery>,
) -> Result<HttpResponse, ApiError> {
    who.require(READERS)?;
    let limit = super::page_size(q.limit)?;
    super::text_cursor(q.cursor.as_deref())?;
    let items = service::products(&db, *id, q.cursor.as_deref().filter(|c| !c.is_empty()), limit)?;
    let next = (items.len() == limit).then(|| items.last().map(|p| p.sku.clone())).flatten();
    Ok(HttpResponse::Ok().json(Page { items: super::viewed::<_, views::Product>(items), next_cursor: next }))
}

/// Body of `POST /stores/{id}/products`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewProduct {
    /// Stock keeping unit, unique in the store (1–64 characters).
    pub sku: String,
    /// Name.
    pub name: String,
    /// Unit price, zero or more.
    pub price: f64,
    /// At or below this stock the product is low (an alert is raised).
    #[serde(default)]
    pub low_stock_threshold: i64,
}

/// Adds a product to a store with stock 0; stock then changes by transactions (admins, operators).
#[utoipa::path(post, path = "/api/v1/stores/{id}/products", tag = "inventory", params(("id" = Uuid, Path)), request_body = NewProduct,
    responses((status = 201, body = views::Product), (status = 401), (status = 403), (status = 404), (status = 409, description = "product_exists"),
        (status = 422)),
    security(("bearer" = [])))]
pub async fn create_product(
    inventory: web::Data<Inventory>,
    who: Principal,
    id: web::Path<Uuid>,
    body: Json<NewProduct>,
) -> Result<HttpResponse, ApiError> {
    who.require(STOCK_KEEPERS)?;
    let sku = check_text("sku", &body.sku, 64)?;
    let name = check_text("name", &body.name, 200)?;
    if !body.price.is_finite() || body.price < 0.0 {
        return Err(ApiError::invalid("validation_failed", "price must be a number, zero or more"));
    }
    if body.low_stock_threshold < 0 {
        return Err(ApiError::invalid("validation_failed", "lowStockThreshold must be zero or more"));
    }
    let p = Product {
        store_id: *id,
        sku,
        name,
        price: body.price,
        low_stock_threshold: body.low_stock_threshold,
        stock: 0,
        updated_at: Timestamp::now(),
    };
    Ok(HttpResponse::Created().json(views::Product::from(inventory.add_product(p).await?)))
}

/// Body of `POST /inventory/transactions`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewTransaction {
    /// The client's id: sending it again returns the first result and changes nothing.
    pub transaction_id: Uuid,
    /// The store (the source of a transfer).
    pub store_id: Uuid,
    /// The product.
    pub sku: String,
    /// SALE, PURCHASE, RETURN, ADJUSTMENT or TRANSFER.
    #[serde(rename = "type")]
    pub kind: views::TxnType,
    /// Units: positive; for an ADJUSTMENT, signed.
    pub quantity: i64,
    /// The receiving store of a TRANSFER.
    pub to_store_id: Option<Uuid>,
    /// The conversation a sale was taken in (required when an agent records it).
    pub conversation_id: Option<Uuid>,
}

/// Applies a stock transaction: 201 with it, or 200 with the first result when the `transactionId` was applied
/// before. Admins and operators record any type; agents record SALEs from a conversation.
#[utoipa::path(post, path = "/api/v1/inventory/transactions", tag = "inventory", request_body = NewTransaction,
    responses((status = 201, body = views::StockTxn), (status = 200, body = views::StockTxn, description = "already applied"), (status = 401),
        (status = 403), (status = 404, description = "store_not_found, product_not_found or conversation not found"),
        (status = 409, description = "insufficient_stock (error.details.stock is the stock left) or transaction_id_reused"),
        (status = 422, description = "invalid_quantity, invalid_transfer")),
    security(("bearer" = [])))]
pub async fn transaction(
    db: web::Data<Db>,
    registry: web::Data<Registry>,
    inventory: web::Data<Inventory>,
    who: Principal,
    body: Json<NewTransaction>,
) -> Result<HttpResponse, ApiError> {
    let (user, role) = who.require(&[Role::Admin, Role::Operator, Role::Agent])?;
    let body = body.into_inner();
    let kind = TxnType::from(body.kind);
    let req = TxnRequest {
        id: body.transaction_id,
        kind,
        store_id: body.store_id,
        sku: body.sku,
        quantity: body.quantity,
        to_store_id: body.to_store_id,
        conversation_id: body.conversation_id,
        by: user,
    };
    let outcome = service::transaction(&db, registry.journal(), &inventory, role, req).await?;
    let code = if outcome.created { actix_web::http::StatusCode::CREATED } else { actix_web::http::StatusCode::OK };
    Ok(HttpResponse::build(code).json(views::StockTxn::from(outcome.txn)))
}

/// Query of `GET /alerts`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AlertQuery {
    /// `open`, `acknowledged` or `resolved`; default all.
    #[param(pattern = "^(open|acknowledged|resolved)$")]
    pub status: Option<String>,
    /// Page size, 1..200 (default 50), newest first.
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<usize>,
    /// `nextCursor` of the previous page.
    pub cursor: Option<String>,
}

/// Stock alerts, newest first (any staff role).
#[utoipa::path(get, path = "/api/v1/alerts", tag = "inventory", params(AlertQuery),
    responses((status = 200, body = Page<views::Alert>), (status = 400), (status = 401), (status = 403)), security(("bearer" = [])))]
pub async fn list_alerts(db: web::Data<Db>, who: Principal, q: web::Query<AlertQuery>) -> Result<HttpResponse, ApiError> {
    who.require(READERS)?;
    let status = match q.status.as_deref() {
        None => None,
        Some("open") => Some(AlertStatus::Open),
        Some("acknowledged") => Some(AlertStatus::Acknowledged),
        Some("resolved") => Some(AlertStatus::Resolved),
        Some(other) => {
            return Err(ApiError::bad_request("invalid_query", format!("status must be open, acknowledged or resolved, got {other:?}")))
        }
    };
    let limit = super::page_size(q.limit)?;
    let (items, next) = service::alerts(&db, status, super::id_cursor(q.cursor.as_deref())?, limit)?;
    Ok(HttpResponse::Ok().json(Page { items: super::viewed::<_, views::Alert>(items), next_cursor: next.map(|n| n.to_string()) }))
}

async fn update(registry: &Registry, inventory: &Inventory, who: Principal, id: Uuid, resolve: bool) -> Result<HttpResponse, ApiError> {
    let (user, _) = who.require(STOCK_KEEPERS)?;
    let a = service::update_alert(registry.journal(), inventory, user, id, resolve).await?;
    Ok(HttpResponse::Ok().json(views::Alert::from(a)))
}

/// Acknowledges an alert: someone is on it (admins, operators).
#[utoipa::path(post, path = "/api/v1/alerts/{id}/ack", tag = "inventory", params(("id" = Uuid, Path)),
    responses((status = 200, body = views::Alert), (status = 401), (status = 403), (status = 404)), security(("bearer" = [])))]
pub async fn ack(
    registry: web::Data<Registry>,
    inventory: web::Data<Inventory>,
    who: Principal,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    update(&registry, &inventory, who, *id, false).await
}

/// Resolves an alert by hand; it is raised again if the stock is still short at the next check (admins, operators).
#[utoipa::path(post, path = "/api/v1/alerts/{id}/resolve", tag = "inventory", params(("id" = Uuid, Path)),
    responses((status = 200, body = views::Alert), (status = 401), (status = 403), (status = 404)), security(("bearer" = [])))]
pub async fn resolve(
    registry: web::Data<Registry>,
    inventory: web::Data<Inventory>,
    who: Principal,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    update(&registry, &inventory, who, *id, true).await
}
