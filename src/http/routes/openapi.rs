//! The OpenAPI document, generated from the handlers' annotations.

use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Content, Ref, RefOr};
use utoipa::{Modify, OpenApi, ToSchema};

/// What went wrong.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorDetail {
    /// Machine-readable, snake_case (docs/api.md lists them).
    #[schema(example = "validation_failed")]
    pub code: String,
    /// For people.
    #[schema(example = "text must have at most 4096 characters")]
    pub message: String,
    /// The request's `X-Request-ID`, also on its log lines.
    #[schema(example = "5b1c0c6e-8d0a-4d7e-9d87-2f0c1d9f3a10")]
    pub request_id: String,
}

/// Every error answer.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// The security schemes, the API version, and the error body on every 4xx and 5xx.
struct Conventions;

impl Modify for Conventions {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        api.info.version = crate::services::api_version::API_VERSION.to_string();
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("An access token from POST /api/v1/auth/login (15 minutes; refresh with POST /api/v1/auth/refresh)."))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "apiKey",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("utk_…")
                    .description(Some("An API key made by an admin at POST /api/v1/api-keys, sent as Authorization: Bearer utk_…"))
                    .build(),
            ),
        );
        let error = || Content::new(Some(RefOr::Ref(Ref::from_schema_name("ErrorBody"))));
        for item in api.paths.paths.values_mut() {
            let ops = [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
            for op in ops.into_iter().flatten() {
                // Wherever a bearer token works, an API key does too.
                if let Some(security) = &mut op.security {
                    if !security.is_empty() {
                        security.push(SecurityRequirement::new("apiKey", Vec::<String>::new()));
                    }
                }
                // Any route may also answer a malformed body or query (400), too large (413),
                // the wrong content type (415), too many requests (429) or a store that refuses writes (503).
                op.responses.responses.entry("default".into()).or_insert_with(|| {
                    RefOr::T(
                        utoipa::openapi::ResponseBuilder::new()
                            .description("any other error (400, 413, 415, 429, 503…): see docs/api.md#errors")
                            .content("application/json", error())
                            .build(),
                    )
                });
                for (status, response) in op.responses.responses.iter_mut() {
                    if let (true, RefOr::T(r)) = (status.starts_with('4') || status.starts_with('5') || status == "default", response) {
                        if r.content.is_empty() {
                            r.content.insert("application/json".into(), error());
                        }
                        if r.description.is_empty() {
                            r.description = "an error: see docs/api.md#errors".into();
                        }
                    }
                }
            }
        }
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
        super::canned_responses::create, super::canned_responses::list, super::canned_responses::get, super::canned_responses::update,
        super::canned_responses::delete,
        super::contacts::create, super::contacts::list, super::contacts::get, super::contacts::update, super::contacts::conversations,
        super::contacts::merge, super::contacts::export, super::contacts::erase,
        super::lifecycle::escalate, super::lifecycle::close, super::lifecycle::rating, super::lifecycle::force_pause_bot,
        super::ai::get, super::ai::put, super::ai::runs,
        super::business_hours::get,
        super::backups::list, super::backups::create, super::jobs::list, super::jobs::runs, super::jobs::run, super::jobs::migrations,
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
    components(schemas(utalk_actors::views::Customer, utalk_actors::views::Author, utalk_actors::views::Attachment, ErrorBody, ErrorDetail)),
    modifiers(&Conventions),
)]
pub struct ApiDoc;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/openapi.json", web::get().to(document));
}

/// The OpenAPI document.
pub async fn document() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}

/// The methods the document lists for a request path (`/api/v1/webhooks/…`),
/// matching `{param}` segments to anything; none when it is not a route of the API.
pub fn methods_of(path: &str) -> Vec<&'static str> {
    static ROUTES: std::sync::OnceLock<Vec<(Vec<String>, Vec<&'static str>)>> = std::sync::OnceLock::new();
    let routes = ROUTES.get_or_init(|| {
        ApiDoc::openapi()
            .paths
            .paths
            .iter()
            .map(|(template, item)| {
                let segments = template.split('/').map(str::to_owned).collect();
                let methods = [
                    ("GET", item.get.is_some()),
                    ("PUT", item.put.is_some()),
                    ("POST", item.post.is_some()),
                    ("DELETE", item.delete.is_some()),
                    ("PATCH", item.patch.is_some()),
                ]
                .into_iter()
                .filter_map(|(m, on)| on.then_some(m))
                .collect();
                (segments, methods)
            })
            .collect()
    });
    let parts: Vec<&str> = path.split('/').collect();
    let fits = |segments: &[String], exact: bool| {
        segments.len() == parts.len() && segments.iter().zip(&parts).all(|(s, p)| (!exact && s.starts_with('{') && !p.is_empty()) || s == p)
    };
    // A route named to the letter (`/media/regenerate-urls`) wins over a template (`/media/{id}`), as in the router.
    let exact = routes.iter().any(|(segments, _)| fits(segments, true));
    let mut out: Vec<&'static str> = Vec::new();
    for (segments, methods) in routes {
        if fits(segments, exact) {
            for m in methods {
                if !out.contains(m) {
                    out.push(m);
                }
            }
        }
    }
    out
}
