//! Contacts: the customer as one record, with their conversations.

use super::conversations::{present, ConversationView};
use super::{page_size, Page};
use crate::http::auth::principal::{READERS, WRITERS};
use crate::http::auth::Principal;
use crate::http::error::ApiError;
use crate::http::json::Json;
use crate::services::contacts::{self as service, Fields};
use crate::state::Search;
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utalk_actors::views;
use utalk_actors::Registry;
use utalk_storage::model::{Contact, Role};
use utalk_storage::{Db, Timestamp};
use uuid::Uuid;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/contacts", web::post().to(create))
        .route("/contacts", web::get().to(list))
        .route("/contacts/{id}", web::get().to(get))
        .route("/contacts/{id}", web::patch().to(update))
        .route("/contacts/{id}", web::delete().to(erase))
        .route("/contacts/{id}/conversations", web::get().to(conversations))
        .route("/contacts/{id}/merge", web::post().to(merge))
        .route("/contacts/{id}/export", web::get().to(export));
}

/// A customer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContactView {
    /// Id.
    pub id: Uuid,
    /// Name.
    pub name: Option<String>,
    /// Phone (E.164); unique.
    pub phone: Option<String>,
    /// Email (lowercased); unique.
    pub email: Option<String>,
    /// The integrator's id for the customer; unique.
    pub external_id: Option<String>,
    /// Custom attributes.
    pub attributes: BTreeMap<String, String>,
    /// Created.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// Last changed.
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

impl From<Contact> for ContactView {
    fn from(c: Contact) -> Self {
        Self {
            id: c.id,
            name: c.name,
            phone: c.phone,
            email: c.email,
            external_id: c.external_id,
            attributes: c.attributes,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

/// A contact's fields: on creation every one is optional; on a change, a
/// field left out is kept and null clears it.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"name": "Ana Pérez", "phone": "+5215512345678", "email": "ana@example.com", "externalId": "crm-1042", "attributes": {"plan": "gold"}}))]
pub struct ContactFields {
    /// Name, at most 200 characters.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub name: Option<Option<String>>,
    /// Phone: digits with an optional leading `+` (spaces, dashes and brackets are dropped); unique.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub phone: Option<Option<String>>,
    /// Email; unique.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub email: Option<Option<String>>,
    /// The integrator's id, at most 200 characters; unique.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub external_id: Option<Option<String>>,
    /// Custom attributes, replacing the current ones: at most 50, names of 1–64 bytes, values of at most 1,024 characters.
    pub attributes: Option<BTreeMap<String, String>>,
}

impl From<ContactFields> for Fields {
    fn from(f: ContactFields) -> Self {
        Fields { name: f.name, phone: f.phone, email: f.email, external_id: f.external_id, attributes: f.attributes }
    }
}

/// Makes a contact (admins, operators, agents; audited).
#[utoipa::path(post, path = "/api/v1/contacts", tag = "contacts", request_body = ContactFields,
    responses((status = 201, body = ContactView), (status = 401), (status = 403), (status = 409, description = "contact_exists"),
        (status = 422, description = "validation_failed, invalid_phone, invalid_email")),
    security(("bearer" = [])))]
pub async fn create(
    db: web::Data<Db>,
    registry: web::Data<Registry>,
    who: Principal,
    body: Json<ContactFields>,
) -> Result<HttpResponse, ApiError> {
    let (actor, _) = who.require(WRITERS)?;
    let c = service::create(&db, &registry, actor, body.into_inner().into()).await?;
    Ok(HttpResponse::Created().json(ContactView::from(c)))
}

/// Paging of the contact list, and its search.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ContactQuery {
    /// Page size, 1..200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<usize>,
    /// `nextCursor` of the previous page.
    pub cursor: Option<String>,
    /// Words to search for in the name, phone (its digits, or their last six
    /// or more), email and external id (up to 256 bytes, 16 words): ranked best first.
    #[param(max_length = 256)]
    pub q: Option<String>,
}

/// Lists contacts by creation, or those matching `q` best first (staff).
#[utoipa::path(get, path = "/api/v1/contacts", tag = "contacts", params(ContactQuery),
    responses((status = 200, body = Page<ContactView>), (status = 400), (status = 401), (status = 403),
        (status = 503, description = "search_unavailable")), security(("bearer" = [])))]
pub async fn list(
    db: web::Data<Db>,
    search: web::Data<Search>,
    who: Principal,
    q: web::Query<ContactQuery>,
) -> Result<HttpResponse, ApiError> {
    who.require(READERS)?;
    let limit = page_size(q.limit)?;
    if let Some(words) = q.q.as_deref() {
        let offset = super::offset_cursor(q.cursor.as_deref())?;
        let (items, next) = crate::services::search::contacts(&db, search.index(), words, offset, limit)?;
        return Ok(
            HttpResponse::Ok().json(Page { items: super::viewed::<_, ContactView>(items), next_cursor: next.map(|n| n.to_string()) })
        );
    }
    let items = service::list(&db, super::id_cursor(q.cursor.as_deref())?, limit)?;
    let next = (items.len() == limit).then(|| items.last().map(|c| c.id.to_string())).flatten();
    Ok(HttpResponse::Ok().json(Page { items: super::viewed::<_, ContactView>(items), next_cursor: next }))
}

/// One contact (staff).
#[utoipa::path(get, path = "/api/v1/contacts/{id}", tag = "contacts", params(("id" = Uuid, Path)),
    responses((status = 200, body = ContactView), (status = 401), (status = 403), (status = 404)), security(("bearer" = [])))]
pub async fn get(db: web::Data<Db>, who: Principal, id: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    who.require(READERS)?;
    Ok(HttpResponse::Ok().json(ContactView::from(service::get(&db, id.into_inner())?)))
}

/// Changes a contact (admins, operators, agents; audited); its conversations take the new fields.
#[utoipa::path(patch, path = "/api/v1/contacts/{id}", tag = "contacts", params(("id" = Uuid, Path)), request_body = ContactFields,
    responses((status = 200, body = ContactView), (status = 401), (status = 403), (status = 404), (status = 409, description = "contact_exists"),
        (status = 422)),
    security(("bearer" = [])))]
pub async fn update(
    db: web::Data<Db>,
    registry: web::Data<Registry>,
    who: Principal,
    id: web::Path<Uuid>,
    body: Json<ContactFields>,
) -> Result<HttpResponse, ApiError> {
    let (actor, _) = who.require(WRITERS)?;
    let c = service::update(&db, &registry, actor, id.into_inner(), body.into_inner().into()).await?;
    Ok(HttpResponse::Ok().json(ContactView::from(c)))
}

/// The conversations of a contact, oldest first (staff).
#[utoipa::path(get, path = "/api/v1/contacts/{id}/conversations", tag = "contacts", params(("id" = Uuid, Path), super::PageQuery),
    responses((status = 200, body = Page<ConversationView>), (status = 400), (status = 401), (status = 403), (status = 404)),
    security(("bearer" = [])))]
pub async fn conversations(
    db: web::Data<Db>,
    who: Principal,
    id: web::Path<Uuid>,
    q: web::Query<super::PageQuery>,
) -> Result<HttpResponse, ApiError> {
    who.require(READERS)?;
    let limit = page_size(q.limit)?;
    let items = service::conversations(&db, id.into_inner(), super::id_cursor(q.cursor.as_deref())?, limit)?;
    let next = (items.len() == limit).then(|| items.last().map(|c| c.conversation.id.to_string())).flatten();
    Ok(HttpResponse::Ok().json(Page { items: items.into_iter().map(ConversationView::from).collect(), next_cursor: next }))
}

/// Body of a merge.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MergeContacts {
    /// The contact merged into this one and then removed.
    pub contact_id: Uuid,
}

/// Merges another contact into this one (admins, operators, agents; audited): this one keeps
/// its fields and takes the other's where it has none, the other's conversations move here,
/// and the other is removed.
#[utoipa::path(post, path = "/api/v1/contacts/{id}/merge", tag = "contacts", params(("id" = Uuid, Path)), request_body = MergeContacts,
    responses((status = 200, body = ContactView), (status = 401), (status = 403), (status = 404), (status = 409, description = "too_many_conversations"),
        (status = 422)),
    security(("bearer" = [])))]
pub async fn merge(
    db: web::Data<Db>,
    registry: web::Data<Registry>,
    who: Principal,
    id: web::Path<Uuid>,
    body: Json<MergeContacts>,
) -> Result<HttpResponse, ApiError> {
    let (actor, _) = who.require(WRITERS)?;
    let c = service::merge(&db, &registry, actor, id.into_inner(), body.contact_id).await?;
    Ok(HttpResponse::Ok().json(ContactView::from(c)))
}

/// Everything held about one contact.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContactExport {
    /// When it was made.
    #[schema(value_type = String, format = DateTime)]
    pub exported_at: Timestamp,
    /// The contact.
    pub contact: ContactView,
    /// Their conversations, oldest first, each with its messages and media records.
    pub conversations: Vec<ExportedConversationView>,
}

/// One conversation of an export.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExportedConversationView {
    /// The conversation.
    pub conversation: views::Conversation,
    /// Its messages in seq order, private notes included.
    pub messages: Vec<views::Message>,
    /// The records of its media files (the files: `GET /api/v1/media/{id}`).
    pub media: Vec<views::MediaRecord>,
}

/// Everything held about a contact, as JSON (admins; audited): the contact and
/// each of their conversations with its messages and media records.
#[utoipa::path(get, path = "/api/v1/contacts/{id}/export", tag = "contacts", params(("id" = Uuid, Path)),
    responses((status = 200, body = ContactExport), (status = 401), (status = 403), (status = 404), (status = 409, description = "export_too_large")),
    security(("bearer" = [])))]
pub async fn export(
    db: web::Data<Db>,
    registry: web::Data<Registry>,
    who: Principal,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let (actor, _) = who.require(&[Role::Admin])?;
    let id = id.into_inner();
    let e = service::export(&db, &registry, actor, id).await?;
    let body = ContactExport {
        exported_at: Timestamp::now(),
        contact: e.contact.into(),
        conversations: e
            .conversations
            .into_iter()
            .map(|c| ExportedConversationView {
                conversation: c.conversation.into(),
                messages: super::viewed(c.messages),
                media: super::viewed(c.media),
            })
            .collect(),
    };
    Ok(HttpResponse::Ok()
        .insert_header((actix_web::http::header::CONTENT_DISPOSITION, format!("attachment; filename=\"contact-{id}.json\"")))
        .json(body))
}

/// What an erasure touched.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErasedView {
    /// Conversations whose customer was forgotten (they stay, for the KPIs).
    pub conversations: usize,
    /// Messages whose text, template or attachments were erased.
    pub messages: usize,
    /// Media files removed.
    pub media_files: usize,
}

/// Erases a contact (admins; audited as `contact.erase`): the contact, the
/// customer's fields in their conversations, every message's text and
/// template, and the media files; the search index and the database
/// files are rewritten without them; recorded so that a restored older
/// backup is erased again at the next start.
#[utoipa::path(delete, path = "/api/v1/contacts/{id}", tag = "contacts", params(("id" = Uuid, Path)),
    responses((status = 200, body = ErasedView), (status = 401), (status = 403), (status = 404), (status = 409, description = "erase_too_large, too_many_conversations")),
    security(("bearer" = [])))]
pub async fn erase(
    db: web::Data<Db>,
    registry: web::Data<Registry>,
    media: web::Data<utalk_actors::channels::media_store::MediaStore>,
    search: web::Data<Search>,
    config: web::Data<crate::config::Config>,
    who: Principal,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let (actor, _) = who.require(&[Role::Admin])?;
    let backup_dir = config.backup_dir();
    let parts =
        crate::services::erasure::Parts { db: &db, registry: &registry, media: &media, search: search.index(), backup_dir: &backup_dir };
    let e = crate::services::erasure::erase(&parts, actor, id.into_inner()).await?;
    Ok(HttpResponse::Ok().json(ErasedView { conversations: e.conversations, messages: e.messages, media_files: e.media_files }))
}
