//! Reports for operators: KPI series over REST and the daily HTML pages.
//!
//! The report pages under `/reports/` open with a bearer token or with a
//! signed link (`?expires=…&sig=…`) from `GET /api/v1/reports` or the index,
//! so that a browser can show them without a token.

use crate::config::Config;
use crate::http::auth::principal::authenticate;
use crate::http::auth::{AuthService, Principal};
use crate::http::error::ApiError;
use crate::http::json::Json;
use crate::services::reports::{self as service, DailyError, KpiRange, RangeError};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::time::Duration;
use utalk_actors::channels::media_store::MediaStore;
use utalk_actors::Registry;
use utalk_schedules::daily_report::{self, ReportFile};
use utalk_storage::model::Granularity;
use utalk_storage::model::Role;
use utalk_storage::Timestamp;
use utalk_storage::{BusinessHours, Db};
use uuid::Uuid;

/// Who reads reports.
const READERS: &[Role] = &[Role::Admin, Role::Operator, Role::Readonly];
/// How long a signed report link works.
const LINK_TTL: Duration = Duration::from_secs(3_600);

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/reports/kpis", web::get().to(kpis))
        .route("/reports/inventory", web::get().to(inventory_report))
        .route("/reports", web::get().to(list))
        .route("/reports/daily", web::post().to(create));
}

/// The pages, outside the API prefix.
pub fn configure_pages(cfg: &mut web::ServiceConfig) {
    cfg.route("/reports/", web::get().to(index)).route("/reports/{file}", web::get().to(page));
}

/// Query of `GET /reports/kpis`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct KpiQuery {
    /// Start (RFC 3339), rounded down to its bucket; default `to` minus 24 hours (hour) or 30 days (day).
    pub from: Option<String>,
    /// End (RFC 3339, exclusive); default now.
    pub to: Option<String>,
    /// `hour` (default) or `day` (UTC days).
    pub granularity: Option<String>,
    /// Only this channel: `web`, `whatsapp` or `api`.
    pub channel: Option<String>,
    /// Only the conversations assigned to this agent (conversation KPIs and ratings).
    pub agent_id: Option<Uuid>,
}

/// KPI buckets.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KpiSeries {
    /// Every bucket from `from` to `to`, oldest first; a bucket without data has null KPIs and zero volumes.
    pub items: Vec<utalk_actors::views::KpiRow>,
    /// When the last rollup finished (null before the first): the figures are as of then.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub as_of: Option<Timestamp>,
}

impl From<RangeError> for ApiError {
    fn from(e: RangeError) -> Self {
        let code = match e {
            RangeError::Invalid(_) => "invalid_query",
            RangeError::TooLarge(_) => "range_too_large",
        };
        ApiError::bad_request(code, e.to_string())
    }
}

/// KPIs per hour or day, overall, for a channel or for an agent (admins, operators, read-only).
#[utoipa::path(get, path = "/api/v1/reports/kpis", tag = "reports", params(KpiQuery),
    responses((status = 200, body = KpiSeries), (status = 400, description = "invalid_query or range_too_large"), (status = 401), (status = 403)),
    security(("bearer" = [])))]
pub async fn kpis(db: web::Data<Db>, who: Principal, q: web::Query<KpiQuery>) -> Result<HttpResponse, ApiError> {
    who.require(READERS)?;
    let range =
        KpiRange::parse(q.from.as_deref(), q.to.as_deref(), q.granularity.as_deref(), q.channel.as_deref(), q.agent_id, Timestamp::now())?;
    let (items, as_of) = service::kpis(&db, range).await?;
    Ok(HttpResponse::Ok().json(KpiSeries { items: super::viewed(items), as_of }))
}

/// Query of `GET /reports/inventory`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct InventoryQuery {
    /// Start (RFC 3339), rounded down to its hour; default 24 hours before `to`.
    pub from: Option<String>,
    /// End (RFC 3339, exclusive); default now.
    pub to: Option<String>,
}

/// Transactions per hour, products low or below zero now, and refused transactions per store (admins, operators, read-only).
#[utoipa::path(get, path = "/api/v1/reports/inventory", tag = "reports", params(InventoryQuery),
    responses((status = 200, body = utalk_actors::views::InventoryReport), (status = 400, description = "invalid_query or range_too_large"),
        (status = 401), (status = 403)),
    security(("bearer" = [])))]
pub async fn inventory_report(db: web::Data<Db>, who: Principal, q: web::Query<InventoryQuery>) -> Result<HttpResponse, ApiError> {
    who.require(READERS)?;
    let range = KpiRange::parse(q.from.as_deref(), q.to.as_deref(), Some("hour"), None, None, Timestamp::now())?;
    let report = service::inventory(&db, range).await?;
    Ok(HttpResponse::Ok().json(utalk_actors::views::InventoryReport::from(report)))
}

/// A daily report with a link that opens it without a token.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReportLink {
    /// The page.
    #[serde(flatten)]
    pub file: ReportFile,
    /// Signed link (relative to the server, or absolute with `public_url`).
    pub url: String,
    /// When the link stops working.
    #[schema(value_type = String, format = DateTime)]
    pub url_expires_at: Timestamp,
}

fn link(config: &Config, media: &MediaStore, file: ReportFile) -> ReportLink {
    let path = format!("/reports/{}", file.file);
    let (query, expires) = media.sign_path(&path, LINK_TTL);
    let base = config.public_url.as_deref().unwrap_or("").trim_end_matches('/');
    ReportLink { url: format!("{base}{path}?{query}"), url_expires_at: expires, file }
}

fn reports_dir(config: &Config) -> std::path::PathBuf {
    config.data_dir.join("reports")
}

/// The daily reports kept, newest first, with signed links (admins, operators, read-only).
#[utoipa::path(get, path = "/api/v1/reports", tag = "reports", params(super::PageQuery),
    responses((status = 200, body = super::Page<ReportLink>), (status = 400), (status = 401), (status = 403)), security(("bearer" = [])))]
pub async fn list(
    config: web::Data<Config>,
    media: web::Data<MediaStore>,
    who: Principal,
    q: web::Query<super::PageQuery>,
) -> Result<HttpResponse, ApiError> {
    who.require(READERS)?;
    let limit = super::page_size(q.limit)?;
    let dir = reports_dir(&config);
    let files = web::block(move || daily_report::list(&dir)).await.map_err(ApiError::internal)?.map_err(ApiError::internal)?;
    let items = files.into_iter().map(|f| (f.date.clone(), link(&config, &media, f))).collect();
    Ok(HttpResponse::Ok().json(super::page_of(items, false, limit, q.cursor.as_deref())?))
}

/// Body of `POST /reports/daily` (`{}` for yesterday).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DailyRequest {
    /// The UTC day, `YYYY-MM-DD`; default yesterday.
    pub date: Option<String>,
}

/// Rolls the KPIs up and writes the report of a day now (admins and operators); 503 `rollup_failed` when the rollup cannot finish.
#[utoipa::path(post, path = "/api/v1/reports/daily", tag = "reports", request_body = DailyRequest,
    responses((status = 201, body = ReportLink), (status = 400, description = "invalid_date"), (status = 401), (status = 403),
        (status = 503, description = "rollup_failed")),
    security(("bearer" = [])))]
pub async fn create(
    db: web::Data<Db>,
    registry: web::Data<Registry>,
    config: web::Data<Config>,
    media: web::Data<MediaStore>,
    hours: web::Data<BusinessHours>,
    who: Principal,
    req: Json<DailyRequest>,
) -> Result<HttpResponse, ApiError> {
    who.require(&[Role::Admin, Role::Operator])?;
    let day = match req.date.as_deref() {
        Some(d) => daily_report::parse_date(d)
            .ok_or_else(|| ApiError::bad_request("invalid_date", format!("date must be a day as YYYY-MM-DD, got {d:?}")))?,
        None => Granularity::Day.bucket_start(Timestamp::now()) - Granularity::Day.millis(),
    };
    let path = service::daily(&db, registry.journal(), &hours.into_inner(), &reports_dir(&config), day).await.map_err(|e| match e {
        DailyError::Rollup(_) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "rollup_failed", e.to_string()),
        DailyError::Write(_) => ApiError::internal(e),
    })?;
    let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let file = ReportFile { date: daily_report::date_of(day), file: daily_report::file_name(day), bytes };
    Ok(HttpResponse::Created().json(link(&config, &media, file)))
}

/// `expires` and `sig` of a signed link.
#[derive(Debug, Deserialize)]
pub struct Signed {
    expires: Option<i64>,
    sig: Option<String>,
}

/// Lets the request through with a reader's bearer token or a valid signature for `path`.
fn allow(media: &MediaStore, auth: &AuthService, req: &HttpRequest, path: &str, q: &Signed) -> Result<(), ApiError> {
    match (q.expires, q.sig.as_deref()) {
        (Some(expires), Some(sig)) => Ok(media.verify_path(path, expires, sig, Timestamp::now())?),
        (None, None) => {
            let header = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
            authenticate(auth, header)?.require(READERS).map(|_| ())
        }
        _ => Err(ApiError::bad_request("invalid_query", "send both expires and sig, or neither")),
    }
}

fn html(body: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        // Pages are self-contained: inline styles and SVG, nothing to fetch, no script.
        .insert_header((header::CONTENT_SECURITY_POLICY, "default-src 'none'; style-src 'unsafe-inline'; img-src data:"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::CACHE_CONTROL, "private, max-age=300"))
        .body(body)
}

/// The list of daily reports as a page, each with a signed link (a reader's bearer token).
pub async fn index(
    config: web::Data<Config>,
    media: web::Data<MediaStore>,
    auth: web::Data<AuthService>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let header = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    authenticate(&auth, header)?.require(READERS)?;
    let dir = reports_dir(&config);
    let files = web::block(move || daily_report::list(&dir)).await.map_err(ApiError::internal)?.map_err(ApiError::internal)?;
    let mut body = String::from(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>utalk reports</title>\
         <style>body{font:15px/1.5 system-ui,sans-serif;margin:24px auto;max-width:720px}li{margin:4px 0}</style></head>\
         <body><h1>Daily reports</h1>",
    );
    if files.is_empty() {
        body.push_str("<p>No report yet: the first is written after midnight UTC, or now with POST /api/v1/reports/daily.</p>");
    }
    body.push_str("<ul>");
    for f in files {
        let l = link(&config, &media, f);
        let _ =
            write!(body, "<li><a href=\"{}\">{}</a> ({} KB)</li>", l.url.replace('&', "&amp;"), l.file.date, l.file.bytes.div_ceil(1024));
    }
    body.push_str("</ul></body></html>");
    Ok(html(body))
}

/// One daily report page.
pub async fn page(
    config: web::Data<Config>,
    media: web::Data<MediaStore>,
    auth: web::Data<AuthService>,
    req: HttpRequest,
    file: web::Path<String>,
    q: web::Query<Signed>,
) -> Result<HttpResponse, ApiError> {
    let name = file.into_inner();
    // Only names the report writer makes are served: nothing else of the data directory can be reached.
    let valid = name.strip_prefix("daily-").and_then(|n| n.strip_suffix(".html")).and_then(daily_report::parse_date).is_some();
    if !valid {
        return Err(ApiError::not_found("report"));
    }
    allow(&media, &auth, &req, &format!("/reports/{name}"), &q)?;
    let path = reports_dir(&config).join(&name);
    match web::block(move || std::fs::read_to_string(path)).await.map_err(ApiError::internal)? {
        Ok(body) => Ok(html(body)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ApiError::not_found("report")),
        Err(e) => Err(ApiError::internal(e)),
    }
}
