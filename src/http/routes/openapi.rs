//! The OpenAPI document, generated from the handlers' annotations.

use actix_web::{web, HttpResponse};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
    }
}

/// utalk's REST API.
#[derive(OpenApi)]
#[openapi(
    info(title = "utalk", description = "Customer-conversation backend. Every error is {\"error\": {\"code\", \"message\", \"requestId\"}}."),
    paths(
        super::auth::login, super::auth::refresh, super::auth::me, super::auth::change_password,
        super::widget::create,
        super::conversations::create, super::conversations::list, super::conversations::get, super::conversations::patch,
        super::messages::send, super::messages::list,
        super::lifecycle::escalate, super::lifecycle::close, super::lifecycle::rating, super::lifecycle::force_pause_bot,
        super::ai::get, super::ai::put, super::ai::runs,
        super::backups::list, super::backups::create, super::jobs::list, super::jobs::runs, super::jobs::run,
        super::reports::kpis, super::reports::inventory_report, super::reports::list, super::reports::create,
        super::inventory::list_stores, super::inventory::create_store, super::inventory::list_products, super::inventory::create_product,
        super::flags::list, super::flags::get, super::flags::put,
        super::inventory::transaction, super::inventory::list_alerts, super::inventory::ack, super::inventory::resolve,
        super::users::create, super::users::list, super::users::patch, super::users::reset_password,
        super::api_keys::create, super::api_keys::list, super::api_keys::revoke,
        super::webhooks::create, super::webhooks::list, super::webhooks::get, super::webhooks::update, super::webhooks::delete,
        super::webhooks::deliveries, super::webhooks::redeliver,
        super::media::upload, super::media::get, super::media::regenerate,
        super::outbox::list,
        super::twilio::inbound, super::twilio::status,
        super::health::health, super::health::database, super::health::socket, super::health::cluster, super::outbox::health,
    ),
    components(schemas(utalk_actors::views::Customer, utalk_actors::views::Author, utalk_actors::views::Attachment)),
    modifiers(&BearerAuth),
)]
pub struct ApiDoc;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/openapi.json", web::get().to(document));
}

/// The OpenAPI document.
pub async fn document() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}
