use super::client_ip;
use crate::http::auth::AuthService;
use crate::http::error::ApiError;
use crate::http::json::Json;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utalk_actors::channels::whatsapp::Inbound;
use utalk_actors::Registry;
use utalk_storage::model::{Channel, Customer};
use utalk_storage::Db;
use uuid::Uuid;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/widget/sessions", web::post().to(create));
}

/// A web chat customer starting a chat.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWidgetSession {
    /// Name.
    pub name: Option<String>,
    /// Email.
    pub email: Option<String>,
    /// Phone.
    pub phone: Option<String>,
}

/// The customer's token and conversation.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WidgetSession {
    /// Bearer token scoped to the conversation.
    pub token: String,
    /// The conversation opened for the customer.
    pub conversation_id: Uuid,
    /// Seconds the token lives.
    pub expires_in: u64,
}

/// Opens a web chat conversation for an anonymous customer.
#[utoipa::path(post, path = "/api/v1/widget/sessions", tag = "widget", request_body = NewWidgetSession,
    responses((status = 201, body = WidgetSession), (status = 422), (status = 429)))]
pub async fn create(
    req: HttpRequest,
    db: web::Data<Db>,
    registry: web::Data<Registry>,
    inbound: web::Data<Inbound>,
    auth: web::Data<AuthService>,
    body: Json<NewWidgetSession>,
) -> Result<HttpResponse, ApiError> {
    auth.admit_widget_session(&client_ip(&req))?;
    let b = body.into_inner();
    let conv = super::conversations::open(
        &db,
        &registry,
        &inbound,
        Channel::Web,
        Customer { name: b.name, phone: b.phone, email: b.email, external_id: None },
        None,
    )
    .await?;
    let (token, expires_in) = auth.widget_token(conv.id)?;
    Ok(HttpResponse::Created().json(WidgetSession { token, conversation_id: conv.id, expires_in }))
}
