use crate::http::auth::Principal;
use crate::http::error::ApiError;
use crate::http::json::Json;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use utalk_actors::conversation::InvalidMessage;
use utalk_actors::views;
use utalk_actors::Registry;
use utalk_actors::{AppendRequest, Appended};
use utalk_storage::Db;
use uuid::Uuid;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/conversations/{id}/messages", web::post().to(send)).route("/conversations/{id}/messages", web::get().to(list));
}

/// A message to send.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"messageId": "0193f2a4-5b6c-7d8e-9f01-23456789abcd", "text": "Hola, ¿en qué te ayudo?"}))]
pub struct SendMessage {
    /// Client-chosen UUID; sending it again returns the stored message.
    pub message_id: Uuid,
    /// Text, up to 4096 characters.
    pub text: Option<String>,
    /// Attached media.
    pub media_id: Option<Uuid>,
    /// A private note: shown to staff only, never sent to the customer, a channel or the bot (staff only; default false).
    #[serde(default)]
    pub private: bool,
    /// Send as an approved WhatsApp template (`contentSid`: `HX` and 32 hex digits; `variables`: at most 20,
    /// named `1`, `2`, …): needed once the customer has not written for 24 hours.
    pub template: Option<views::Template>,
}

/// The append request for a client's message, checked as the socket path checks it.
pub fn request_for(who: &Principal, conversation: Uuid, body: SendMessage) -> Result<AppendRequest, ApiError> {
    let template = body.template.map(Into::into);
    AppendRequest::from_client(&(*who).into(), conversation, body.message_id, body.text, body.media_id, body.private, template).map_err(
        |e| match e {
            InvalidMessage::Forbidden => ApiError::forbidden(e.to_string()),
            _ => ApiError::invalid(e.code(), e.to_string()),
        },
    )
}

/// Sends a message; answered once it is durable.
#[utoipa::path(post, path = "/api/v1/conversations/{id}/messages", tag = "messages", params(("id" = Uuid, Path)), request_body = SendMessage,
    responses((status = 201, body = views::Message, description = "stored now"), (status = 200, body = views::Message, description = "this messageId was already stored"),
        (status = 400), (status = 401), (status = 403), (status = 404), (status = 409, description = "message_id_conflict"), (status = 413), (status = 422)),
    security(("bearer" = [])))]
pub async fn send(
    db: web::Data<Db>,
    registry: web::Data<Registry>,
    who: Principal,
    id: web::Path<Uuid>,
    body: Json<SendMessage>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    if matches!(who, Principal::Staff { role: utalk_storage::model::Role::Integration, .. }) {
        super::may_reach(&db, &who, id)?;
    }
    let req = request_for(&who, id, body.into_inner())?;
    Ok(match registry.call(id, req).await? {
        Appended::Created(m) => HttpResponse::Created().json(views::Message::from((*m).clone())),
        Appended::Existing(m) => HttpResponse::Ok().json(views::Message::from((*m).clone())),
    })
}

/// Paging of the message list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListQuery {
    /// Return messages with a greater seq (default 0: from the start).
    pub after_seq: Option<u64>,
    /// Page size, 1..200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<usize>,
    /// `nextCursor` of the previous page (a seq); same as afterSeq.
    pub cursor: Option<u64>,
}

/// Lists messages in seq order; private notes only to staff.
#[utoipa::path(get, path = "/api/v1/conversations/{id}/messages", tag = "messages", params(("id" = Uuid, Path), ListQuery),
    responses((status = 200, body = super::Page<views::Message>), (status = 401), (status = 403), (status = 404)), security(("bearer" = [])))]
pub async fn list(db: web::Data<Db>, who: Principal, id: web::Path<Uuid>, q: web::Query<ListQuery>) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    super::may_reach(&db, &who, id)?;
    let limit = super::page_size(q.limit)?;
    let after = q.cursor.or(q.after_seq).unwrap_or(0);
    // Seqs are 63-bit in every client's integer type; a larger one is no seq.
    if after > i64::MAX as u64 {
        return Err(ApiError::bad_request("invalid_cursor", "cursor is not one this server returned"));
    }
    let with_notes = utalk_actors::Identity::from(who).sees_private_notes();
    let (items, next) = crate::services::conversations::messages(&db, id, after, limit, with_notes)?;
    let next = next.map(|seq| seq.to_string());
    Ok(HttpResponse::Ok().json(super::Page { items: super::viewed::<_, views::Message>(items), next_cursor: next }))
}
