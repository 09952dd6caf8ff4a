use super::{page_size, Page};
use crate::http::auth::principal::{READERS, WRITERS};
use crate::http::auth::Principal;
use crate::http::error::ApiError;
use crate::http::json::Json;
use crate::services::conversations::{self as service, valid_label, Listed, MAX_LABELS};
use crate::state::Search;
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Deserializer, Serialize};
use utalk_actors::channels::whatsapp::Inbound;
use utalk_actors::conversation::lifecycle::{CloseRequest, EscalateRequest};
use utalk_actors::views;
use utalk_actors::ConversationChange;
use utalk_actors::Registry;
use utalk_storage::model::{Channel, Conversation, ConversationFilter, ConversationStatus, Customer, EscalationReason, Role};
use utalk_storage::{Db, Timestamp};
use uuid::Uuid;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/conversations", web::post().to(create))
        .route("/conversations", web::get().to(list))
        .route("/conversations/{id}", web::get().to(get))
        .route("/conversations/{id}", web::patch().to(patch));
}

/// A conversation with its last seq.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConversationView {
    /// The stored conversation.
    #[serde(flatten)]
    pub conversation: views::Conversation,
    /// Seq of its last durable message (0 when none).
    pub last_seq: u64,
    /// The start of the second of its last activity (a message, a status, a change); pass it as `updatedSince` to sync.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_activity_at: Option<Timestamp>,
}

impl From<Listed> for ConversationView {
    fn from(l: Listed) -> Self {
        ConversationView { conversation: l.conversation.into(), last_seq: l.last_seq, last_activity_at: l.last_activity_at }
    }
}

/// The view of a conversation just changed, with its last seq.
pub fn view(db: &Db, c: Conversation) -> Result<ConversationView, ApiError> {
    Ok(service::with_last_seq(db, c)?.into())
}

/// A new conversation.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"channel": "api", "customer": {"name": "Ana", "email": "ana@example.com"}, "subject": "Order 1042"}))]
pub struct NewConversation {
    /// web, whatsapp or api.
    pub channel: views::Channel,
    /// Who the customer is.
    #[serde(default)]
    pub customer: views::Customer,
    /// Subject line.
    pub subject: Option<String>,
}

fn check_len(field: &str, v: &Option<String>, max: usize) -> Result<(), ApiError> {
    match v {
        Some(s) if s.chars().count() > max => {
            Err(ApiError::invalid("validation_failed", format!("{field} must have at most {max} characters")))
        }
        _ => Ok(()),
    }
}

/// Validates customer fields.
pub fn check_customer(c: &Customer) -> Result<(), ApiError> {
    check_len("customer.name", &c.name, 200)?;
    check_len("customer.email", &c.email, 254)?;
    check_len("customer.phone", &c.phone, 32)?;
    check_len("customer.externalId", &c.external_id, 200)?;
    if let Some(p) = &c.phone {
        let digits = p.strip_prefix('+').unwrap_or(p);
        if digits.is_empty() || !digits.chars().all(|ch| ch.is_ascii_digit()) {
            return Err(ApiError::invalid("validation_failed", "customer.phone must be digits, optionally with a leading +"));
        }
    }
    Ok(())
}

/// Checks and stores a new conversation.
pub async fn open(
    db: &Db,
    registry: &Registry,
    inbound: &Inbound,
    channel: Channel,
    customer: Customer,
    subject: Option<String>,
) -> Result<Conversation, ApiError> {
    check_customer(&customer)?;
    check_len("subject", &subject, 200)?;
    Ok(service::open(db, registry, inbound, channel, customer, subject).await?)
}

/// Opens a conversation.
#[utoipa::path(post, path = "/api/v1/conversations", tag = "conversations", request_body = NewConversation,
    responses((status = 201, body = ConversationView), (status = 401), (status = 403), (status = 422)), security(("bearer" = [])))]
pub async fn create(
    db: web::Data<Db>,
    registry: web::Data<Registry>,
    inbound: web::Data<Inbound>,
    who: Principal,
    body: Json<NewConversation>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let channel: Channel = body.channel.into();
    match who {
        // An integrator opens conversations for its own customers, on its own channel.
        Principal::Staff { role: Role::Integration, .. } if channel != Channel::Api => {
            return Err(ApiError::forbidden("integration keys open api conversations only"))
        }
        Principal::Staff { role: Role::Integration, .. } => {}
        _ => {
            who.require(WRITERS)?;
        }
    }
    let c = open(&db, &registry, &inbound, channel, body.customer.into(), body.subject).await?;
    let active = Some(Timestamp(c.created_at.millis().div_euclid(1000) * 1000));
    Ok(HttpResponse::Created().json(ConversationView { conversation: c.into(), last_seq: 0, last_activity_at: active }))
}

/// Filters and paging of the conversation list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListQuery {
    /// open, escalated or closed.
    #[param(pattern = "^(open|escalated|closed)$")]
    pub status: Option<String>,
    /// Assigned agent.
    pub assignee_id: Option<Uuid>,
    /// Bot on or off.
    pub bot_enabled: Option<bool>,
    /// web, whatsapp or api.
    #[param(pattern = "^(web|whatsapp|api)$")]
    pub channel: Option<String>,
    /// Page size, 1..200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<usize>,
    /// `nextCursor` of the previous page.
    pub cursor: Option<String>,
    /// `created` (by id, the default) or `lastActivity` (by the second of the last message or change).
    #[param(pattern = "^(created|lastActivity)$")]
    pub sort: Option<String>,
    /// `asc` or `desc`; by creation only `asc`, by activity `desc` by default.
    #[param(pattern = "^(asc|desc)$")]
    pub order: Option<String>,
    /// Only conversations active in or after this time (RFC 3339, to the second); sorts by activity.
    pub updated_since: Option<String>,
    /// Only conversations with this label.
    #[param(pattern = "^[a-z0-9_-]{1,32}$")]
    pub label: Option<String>,
    /// Words to search for in the messages and the customer's fields (up to
    /// 256 bytes, 16 words): ranked best first, Spanish and English forms and
    /// accents alike; the other filters still apply; not with `sort`, `order`
    /// or `updatedSince`.
    #[param(max_length = 256)]
    pub q: Option<String>,
}

/// Lists conversations, oldest first, or by last activity (`sort=lastActivity`, `updatedSince`), or those matching `q` best first.
#[utoipa::path(get, path = "/api/v1/conversations", tag = "conversations", params(ListQuery),
    responses((status = 200, body = Page<ConversationView>), (status = 400), (status = 401), (status = 403),
        (status = 503, description = "search_unavailable")), security(("bearer" = [])))]
pub async fn list(
    db: web::Data<Db>,
    search: web::Data<Search>,
    who: Principal,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    who.require(READERS)?;
    let status = match &q.status {
        Some(s) => Some(
            ConversationStatus::parse(s)
                .ok_or_else(|| ApiError::bad_request("invalid_status", "status must be open, escalated or closed"))?,
        ),
        None => None,
    };
    let channel = match q.channel.as_deref() {
        None => None,
        Some("web") => Some(Channel::Web),
        Some("whatsapp") => Some(Channel::Whatsapp),
        Some("api") => Some(Channel::Api),
        Some(_) => return Err(ApiError::bad_request("invalid_channel", "channel must be web, whatsapp or api")),
    };
    let limit = page_size(q.limit)?;
    if q.label.as_deref().is_some_and(|l| !valid_label(l)) {
        return Err(ApiError::bad_request("invalid_query", "label must be 1 to 32 of a-z, 0-9, _ and -"));
    }
    let filter = ConversationFilter { status, assignee_id: q.assignee_id, bot_enabled: q.bot_enabled, channel, label: q.label.clone() };
    if let Some(words) = q.q.as_deref() {
        if q.sort.is_some() || q.order.is_some() || q.updated_since.is_some() {
            return Err(ApiError::bad_request("invalid_query", "q lists by relevance: drop sort, order and updatedSince"));
        }
        let offset = super::offset_cursor(q.cursor.as_deref())?;
        let (items, next) =
            crate::services::search::conversations(&db, search.index(), utalk_actors::Identity::from(who), words, &filter, offset, limit)?;
        let items: Vec<ConversationView> = items.into_iter().map(Into::into).collect();
        return Ok(HttpResponse::Ok().json(Page { items, next_cursor: next.map(|n| n.to_string()) }));
    }
    let since = match q.updated_since.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => Some(
            Timestamp::parse_rfc3339(s).ok_or_else(|| ApiError::bad_request("invalid_query", "updatedSince must be an RFC 3339 time"))?,
        ),
        None => None,
    };
    let by_activity = match q.sort.as_deref() {
        None => since.is_some(),
        Some("created") if since.is_none() => false,
        Some("created") => return Err(ApiError::bad_request("invalid_query", "updatedSince lists by activity: drop sort=created")),
        Some("lastActivity") => true,
        Some(_) => return Err(ApiError::bad_request("invalid_query", "sort must be created or lastActivity")),
    };
    let descending = match q.order.as_deref() {
        None => by_activity && since.is_none(),
        Some("asc") => false,
        Some("desc") if by_activity => true,
        Some("desc") => return Err(ApiError::bad_request("invalid_query", "order=desc goes with sort=lastActivity")),
        Some(_) => return Err(ApiError::bad_request("invalid_query", "order must be asc or desc")),
    };
    if !by_activity {
        let (items, next) = service::list(&db, &filter, super::id_cursor(q.cursor.as_deref())?, limit)?;
        let items: Vec<ConversationView> = items.into_iter().map(Into::into).collect();
        return Ok(HttpResponse::Ok().json(Page { items, next_cursor: next.map(|n| n.to_string()) }));
    }
    let cursor = match q.cursor.as_deref().filter(|c| !c.is_empty()) {
        Some(c) => {
            let (at, id) = super::parse_time_cursor(c)?;
            Some((at.millis().div_euclid(1000), id))
        }
        None => None,
    };
    let by = service::ByActivity { since: since.map(|s| s.millis().div_euclid(1000)), cursor, descending };
    let (items, next) = service::list_by_activity(&db, &filter, &by, limit)?;
    let items: Vec<ConversationView> = items.into_iter().map(Into::into).collect();
    let next_cursor = next.map(|(sec, id)| super::time_cursor(Timestamp(sec.saturating_mul(1000)), id));
    Ok(HttpResponse::Ok().json(Page { items, next_cursor }))
}

/// Reads a conversation.
#[utoipa::path(get, path = "/api/v1/conversations/{id}", tag = "conversations", params(("id" = Uuid, Path)),
    responses((status = 200, body = ConversationView), (status = 401), (status = 403), (status = 404)), security(("bearer" = [])))]
pub async fn get(db: web::Data<Db>, who: Principal, id: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    super::may_reach(&db, &who, id)?;
    Ok(HttpResponse::Ok().json(ConversationView::from(service::get(&db, id)?)))
}

/// Distinguishes a field set to null from a field left out.
pub(super) fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// A change of status, assignee, the bot or labels.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"assigneeId": "0193f2a4-5b6c-7d8e-9f01-23456789abcd", "labels": ["billing", "vip"]}))]
pub struct PatchConversation {
    /// open, escalated or closed.
    pub status: Option<views::ConversationStatus>,
    /// Agent to assign; null unassigns.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Uuid>)]
    pub assignee_id: Option<Option<Uuid>>,
    /// Pause (false) or resume (true) the bot.
    pub bot_enabled: Option<bool>,
    /// The conversation's labels, replacing the current ones: at most 10, each 1 to 32 of `a-z`, `0-9`, `_`, `-`.
    pub labels: Option<Vec<String>>,
}

/// Checks labels and gives them sorted, each once.
fn checked_labels(labels: Vec<String>) -> Result<Vec<String>, ApiError> {
    if let Some(bad) = labels.iter().find(|l| !valid_label(l)) {
        let shown: String = bad.chars().take(40).collect();
        return Err(ApiError::invalid("invalid_label", format!("label {shown:?} is not 1 to 32 of a-z, 0-9, _ and -")));
    }
    let mut labels = labels;
    labels.sort();
    labels.dedup();
    if labels.len() > MAX_LABELS {
        return Err(ApiError::invalid("too_many_labels", format!("at most {MAX_LABELS} labels on a conversation")));
    }
    Ok(labels)
}

/// Changes status, assignee, the bot or labels.
#[utoipa::path(patch, path = "/api/v1/conversations/{id}", tag = "conversations", params(("id" = Uuid, Path)), request_body = PatchConversation,
    responses((status = 200, body = ConversationView), (status = 401), (status = 403), (status = 404),
        (status = 422, description = "empty_change, unknown_assignee, invalid_label, too_many_labels")), security(("bearer" = [])))]
pub async fn patch(
    db: web::Data<Db>,
    registry: web::Data<Registry>,
    who: Principal,
    id: web::Path<Uuid>,
    body: Json<PatchConversation>,
) -> Result<HttpResponse, ApiError> {
    let (user_id, _) = who.require(WRITERS)?;
    let id = id.into_inner();
    let body = body.into_inner();
    if body.status.is_none() && body.assignee_id.is_none() && body.bot_enabled.is_none() && body.labels.is_none() {
        return Err(ApiError::invalid("empty_change", "send status, assigneeId, botEnabled and/or labels"));
    }
    let labels = body.labels.map(checked_labels).transpose()?;
    if let Some(Some(a)) = body.assignee_id {
        service::check_assignee(&db, a)?;
    }
    // Escalating or closing by PATCH goes through the same rules as the
    // dedicated routes: the bot paused and an escalation record, or the close
    // fields (without the rating question).
    let (status, escalate, close) = match body.status.map(ConversationStatus::from) {
        Some(ConversationStatus::Escalated) => {
            (None, Some(EscalateRequest { reason: EscalationReason::Manual, detail: None, by: Some(user_id), handoff: None }), None)
        }
        Some(ConversationStatus::Closed) => {
            (None, None, Some(CloseRequest { resolution: "closed".into(), first_contact_resolution: None, ask_rating: false }))
        }
        other => (other, None, None),
    };
    let change = ConversationChange {
        status,
        assignee_id: body.assignee_id,
        bot_enabled: body.bot_enabled,
        escalate,
        close,
        labels,
        ..Default::default()
    };
    let updated = registry.call(id, change).await?;
    Ok(HttpResponse::Ok().json(view(&db, (*updated).clone())?))
}
