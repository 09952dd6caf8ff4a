//! The bot's settings and its runs.

use crate::config::Config;
use crate::http::auth::principal::READERS;
use crate::http::auth::Principal;
use crate::http::error::ApiError;
use crate::http::json::Json;
use crate::services::bot::{self as service, SettingsError};
use crate::state::BotSettingsLock;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use utalk_actors::bot::answers::Bot;
use utalk_actors::bot::openai::OpenAi;
use utalk_actors::hosts::{HostError, HostList};
use utalk_actors::views;
use utalk_actors::Registry;
use utalk_storage::model::{AiConfig, Role};
use utalk_storage::Db;
use utalk_storage::Timestamp;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/ai/config", web::get().to(get)).route("/ai/config", web::put().to(put)).route("/ai/runs", web::get().to(runs));
}

/// Reads the bot's settings.
#[utoipa::path(get, path = "/api/v1/ai/config", tag = "bot", responses((status = 200, body = views::AiConfig), (status = 401), (status = 403)),
    security(("bearer" = [])))]
pub async fn get(bot: web::Data<Bot>, who: Principal) -> Result<HttpResponse, ApiError> {
    who.require(READERS)?;
    Ok(HttpResponse::Ok().json(views::AiConfig::from((*bot.config()).clone())))
}

/// New bot settings; `version` is the version being replaced.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AiConfigUpdate {
    /// The version these settings replace (from GET); another writer's change in between gives 409.
    pub version: u64,
    /// Whether the bot answers.
    pub enabled: bool,
    /// Escalate on low confidence and after maxBotTurns.
    pub auto_escalate: bool,
    /// Escalation words or phrases (at most 100, each 1–100 characters).
    pub escalation_keywords: Vec<String>,
    /// 0..1.
    pub confidence_threshold: f64,
    /// 1..100.
    pub max_bot_turns: u32,
    /// `rules` or `openai`.
    pub provider: views::Provider,
    /// Model name (1–100 characters).
    pub model: String,
    /// OpenAI-compatible base URL, http(s), on a host of the server's `bot.allowed_model_hosts` (else 422 `model_host_not_allowed`).
    pub base_url: String,
}

fn validate(u: &AiConfigUpdate) -> Result<(), ApiError> {
    let bad = |m: &str| Err(ApiError::invalid("validation_failed", m.to_string()));
    if !(0.0..=1.0).contains(&u.confidence_threshold) {
        return bad("confidenceThreshold must be between 0 and 1");
    }
    if !(1..=100).contains(&u.max_bot_turns) {
        return bad("maxBotTurns must be between 1 and 100");
    }
    if u.escalation_keywords.len() > 100 || u.escalation_keywords.iter().any(|k| k.trim().is_empty() || k.chars().count() > 100) {
        return bad("escalationKeywords: at most 100, each 1 to 100 characters");
    }
    if u.model.trim().is_empty() || u.model.chars().count() > 100 {
        return bad("model must have 1 to 100 characters");
    }
    if !(u.base_url.starts_with("https://") || u.base_url.starts_with("http://")) || u.base_url.len() > 500 {
        return bad("baseUrl must be an http(s) URL");
    }
    Ok(())
}

/// The API key is sent to the base URL: its host must be one the configuration
/// allows, whatever the admin asks (checked on the URL requested, as the HTTP client parses it).
fn check_model_host(allowed: &[String], base_url: &str) -> Result<(), ApiError> {
    match HostList::new(allowed).check_url(&OpenAi::completions_url(base_url)) {
        Ok(_) => Ok(()),
        Err(HostError::NotAllowed(host)) => Err(ApiError::invalid(
            "model_host_not_allowed",
            format!("baseUrl names host `{host}`, which is not in this server's bot.allowed_model_hosts ({})", allowed.join(", ")),
        )),
        Err(HostError::BadUrl(_)) => Err(ApiError::invalid("validation_failed", "baseUrl must be an http(s) URL")),
    }
}

/// Replaces the bot's settings (admins); versioned and audited.
#[utoipa::path(put, path = "/api/v1/ai/config", tag = "bot", request_body = AiConfigUpdate,
    responses((status = 200, body = views::AiConfig), (status = 401), (status = 403), (status = 409, description = "version_conflict"),
        (status = 422, description = "validation_failed, or model_host_not_allowed: baseUrl's host is not in bot.allowed_model_hosts")),
    security(("bearer" = [])))]
pub async fn put(
    db: web::Data<Db>,
    registry: web::Data<Registry>,
    config: web::Data<Config>,
    bot: web::Data<Bot>,
    ai_config_lock: web::Data<BotSettingsLock>,
    who: Principal,
    body: Json<AiConfigUpdate>,
) -> Result<HttpResponse, ApiError> {
    let (user, _) = who.require(&[Role::Admin])?;
    let u = body.into_inner();
    validate(&u)?;
    check_model_host(&config.bot.allowed_model_hosts, &u.base_url)?;
    // Version, time and author are the service's to set.
    let new = AiConfig {
        version: 0,
        enabled: u.enabled,
        auto_escalate: u.auto_escalate,
        escalation_keywords: u.escalation_keywords,
        confidence_threshold: u.confidence_threshold,
        max_bot_turns: u.max_bot_turns,
        provider: u.provider.into(),
        model: u.model,
        base_url: u.base_url,
        updated_at: Timestamp::now(),
        updated_by: String::new(),
    };
    let new = service::change_settings(&db, registry.journal(), &ai_config_lock.0, user, u.version, new).await.map_err(|e| match e {
        SettingsError::VersionConflict(m) => ApiError::conflict("version_conflict", m),
        SettingsError::Service(s) => s.into(),
    })?;
    tracing::info!(version = new.version, enabled = new.enabled, provider = new.provider.as_str(), "bot settings changed");
    bot.use_config(new.clone());
    Ok(HttpResponse::Ok().json(views::AiConfig::from(new)))
}

/// Paging of bot runs.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RunsQuery {
    /// Runs finished at or after this RFC 3339 time (default: the last hour).
    pub since: Option<String>,
    /// Page size, 1..200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<usize>,
    /// `nextCursor` of the previous page (then `since` is not needed).
    pub cursor: Option<String>,
}

/// Bot runs, oldest first: latency, intent, confidence, provider, outcome.
#[utoipa::path(get, path = "/api/v1/ai/runs", tag = "bot", params(RunsQuery),
    responses((status = 200, body = super::Page<views::BotRun>), (status = 401), (status = 403)), security(("bearer" = [])))]
pub async fn runs(db: web::Data<Db>, who: Principal, q: web::Query<RunsQuery>) -> Result<HttpResponse, ApiError> {
    who.require(READERS)?;
    let since = match &q.since {
        Some(s) => Timestamp::parse_rfc3339(s).ok_or_else(|| ApiError::bad_request("invalid_query", "since must be an RFC 3339 time"))?,
        None => Timestamp(Timestamp::now().millis() - 3_600_000),
    };
    let limit = super::page_size(q.limit)?;
    let items = match q.cursor.as_deref().filter(|c| !c.is_empty()) {
        Some(c) => service::runs_after(&db, super::parse_time_cursor(c)?, limit)?,
        None => service::runs(&db, since, limit)?,
    };
    let next = (items.len() == limit).then(|| items.last().map(|r| super::time_cursor(r.finished_at, r.id))).flatten();
    Ok(HttpResponse::Ok().json(super::Page { items: super::viewed::<_, views::BotRun>(items), next_cursor: next }))
}
