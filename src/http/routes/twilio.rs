//! Twilio's webhooks: inbound WhatsApp messages and message status callbacks.
//!
//! Both are form-encoded and signed (`X-Twilio-Signature`); anything not
//! signed with the account's auth token over our public URL is refused with
//! 403 before it is read further. A valid request is answered with an empty
//! TwiML document: a plain-text body would be sent to the customer.

use crate::http::error::ApiError;
use crate::state::Twilio;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use utalk_actors::channels::twilio;
use utalk_actors::channels::twilio_form::FormError;
use utalk_actors::channels::whatsapp::Inbound;
use utalk_actors::channels::whatsapp::InboundMessage;
use utalk_actors::conversation::MAX_TEXT_CHARS;
use utalk_actors::Registry;
use utalk_actors::{ConversationError, MessageChange};
use utalk_storage::model::MessageStatus;
use uuid::Uuid;

/// Path of the inbound message webhook.
pub const INBOUND_PATH: &str = "/webhooks/twilio/whatsapp";
/// Path of the status callback.
pub const STATUS_PATH: &str = "/webhooks/twilio/status";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(INBOUND_PATH, web::post().to(inbound)).route(STATUS_PATH, web::post().to(status));
}

/// The empty TwiML answer: "received, say nothing".
fn twiml() -> HttpResponse {
    HttpResponse::Ok().content_type("text/xml; charset=utf-8").body("<Response></Response>")
}

/// Checks the request's signature and returns its parameters.
fn verified(twilio: &Twilio, req: &HttpRequest, body: &[u8]) -> Result<Vec<(String, String)>, ApiError> {
    let account = twilio.0.clone().ok_or_else(|| {
        ApiError::unavailable(
            "whatsapp_not_configured",
            "Twilio is not configured on this server; set the twilio_* settings and public_url",
        )
    })?;
    let form = req.headers().get(actix_web::http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !form.starts_with("application/x-www-form-urlencoded") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Twilio webhooks are application/x-www-form-urlencoded",
        ));
    }
    let signature = req
        .headers()
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::new(StatusCode::FORBIDDEN, "missing_signature", "X-Twilio-Signature is required"))?;
    let params =
        utalk_actors::channels::twilio_form::parse_form(body).map_err(|e| ApiError::bad_request("malformed_form", e.to_string()))?;
    let path = req.uri().path_and_query().map(|p| p.as_str()).unwrap_or(req.path());
    let url = account.public(path);
    if !twilio::verify(&account.auth_token, &url, &params, signature) {
        tracing::warn!(url = %url, "twilio webhook with a bad signature refused");
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "invalid_signature",
            "X-Twilio-Signature does not match; check public_url and the auth token",
        ));
    }
    if let Some((_, sid)) = params.iter().find(|(k, _)| k == "AccountSid") {
        if *sid != account.account_sid {
            return Err(ApiError::new(StatusCode::FORBIDDEN, "wrong_account", "AccountSid is not this server's account"));
        }
    }
    Ok(params)
}

/// Receives a customer's WhatsApp message; answers once it is durable.
#[utoipa::path(post, path = "/webhooks/twilio/whatsapp", tag = "whatsapp",
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "Twilio's inbound message parameters"),
    params(("X-Twilio-Signature" = String, Header, description = "Twilio's signature of the request")),
    responses((status = 200, description = "stored (or already stored): an empty TwiML document", content_type = "text/xml"),
        (status = 400, description = "missing MessageSid or From"), (status = 403, description = "missing or invalid signature"),
        (status = 415), (status = 503, description = "Twilio is not configured")))]
pub async fn inbound(
    twilio: web::Data<Twilio>,
    inbound: web::Data<Inbound>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let params = verified(&twilio, &req, &body)?;
    let msg = inbound_message(&params)?;
    let sid = msg.sid.clone();
    let token = req.headers().get("i-twilio-idempotency-token").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let appended = inbound.store(msg).await?;
    let m = appended.message();
    tracing::info!(conversation = %m.conversation_id, seq = m.seq, sid = %sid, idempotency_token = %token,
        redelivery = matches!(appended, utalk_actors::Appended::Existing(_)), media = m.media.len(), "whatsapp message received");
    Ok(twiml())
}

/// Reads an inbound message from the webhook's parameters.
fn inbound_message(params: &[(String, String)]) -> Result<InboundMessage, ApiError> {
    InboundMessage::parse(params, MAX_TEXT_CHARS).map_err(|e| match e {
        FormError::Missing(_) => ApiError::bad_request("missing_parameter", e.to_string()),
        FormError::NotWhatsApp => ApiError::bad_request("invalid_parameter", e.to_string()),
        FormError::Malformed(_) => ApiError::bad_request("malformed_form", e.to_string()),
    })
}

/// Where our status callback URLs point.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StatusTarget {
    conversation_id: Option<Uuid>,
    message_id: Option<Uuid>,
}

/// Twilio's status word as ours; `None` for words that say nothing about an outbound message.
pub fn twilio_status(word: &str) -> Option<MessageStatus> {
    match word {
        "accepted" | "scheduled" | "queued" => Some(MessageStatus::Queued),
        "sending" => Some(MessageStatus::Sending),
        "sent" => Some(MessageStatus::Sent),
        "delivered" => Some(MessageStatus::Delivered),
        "read" => Some(MessageStatus::Read),
        "undelivered" => Some(MessageStatus::Undelivered),
        "failed" | "canceled" => Some(MessageStatus::Failed),
        _ => None,
    }
}

/// Receives a status callback for a message we sent.
#[utoipa::path(post, path = "/webhooks/twilio/status", tag = "whatsapp",
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "MessageSid, MessageStatus, ErrorCode"),
    params(("X-Twilio-Signature" = String, Header, description = "Twilio's signature of the request"),
        ("conversationId" = Option<Uuid>, Query), ("messageId" = Option<Uuid>, Query)),
    responses((status = 200, description = "recorded or ignored: an empty TwiML document", content_type = "text/xml"),
        (status = 403, description = "missing or invalid signature"), (status = 503)))]
pub async fn status(
    registry: web::Data<Registry>,
    twilio: web::Data<Twilio>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let params = verified(&twilio, &req, &body)?;
    let get = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty());
    let word = get("MessageStatus").or_else(|| get("SmsStatus")).unwrap_or("");
    let sid = get("MessageSid").or_else(|| get("SmsSid"));
    let target = web::Query::<StatusTarget>::from_query(req.query_string()).map(|q| q.into_inner()).ok();
    let (Some(conv), Some(msg)) = (target.as_ref().and_then(|t| t.conversation_id), target.as_ref().and_then(|t| t.message_id)) else {
        tracing::info!(sid = ?sid, status = %word, "status callback for a message utalk did not send; ignored");
        return Ok(twiml());
    };
    let Some(new) = twilio_status(word) else {
        tracing::info!(sid = ?sid, status = %word, "status callback with a status utalk does not track; ignored");
        return Ok(twiml());
    };
    let mut change = MessageChange::new(msg);
    change.status = Some(new);
    change.provider_id = sid.map(str::to_owned);
    if new.is_failure() {
        change.error_code = get("ErrorCode").map(str::to_owned);
        change.error_message = get("ErrorMessage").map(str::to_owned);
    }
    match registry.call(conv, change).await {
        Ok(m) => {
            tracing::info!(conversation = %conv, message = %msg, reported = %word, status = m.status.as_str(), "whatsapp status callback");
            Ok(twiml())
        }
        Err(ConversationError::NotFound | ConversationError::MessageNotFound) => {
            tracing::warn!(conversation = %conv, message = %msg, "status callback for an unknown message; ignored");
            Ok(twiml())
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_twilio_status_word_maps() {
        for (w, s) in [
            ("queued", MessageStatus::Queued),
            ("sending", MessageStatus::Sending),
            ("sent", MessageStatus::Sent),
            ("delivered", MessageStatus::Delivered),
            ("read", MessageStatus::Read),
            ("undelivered", MessageStatus::Undelivered),
            ("failed", MessageStatus::Failed),
        ] {
            assert_eq!(twilio_status(w), Some(s));
        }
        assert_eq!(twilio_status("received"), None);
    }
}
