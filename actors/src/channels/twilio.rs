//! Twilio: the account settings, request signatures (`X-Twilio-Signature`)
//! and the Messages API call.

use serde::Deserialize;
use std::time::Duration;

pub use crate::channels::twilio_signature::{signature, verify};

/// Everything needed to talk to Twilio and check what it sends.
#[derive(Clone)]
pub struct TwilioAccount {
    /// Account SID (`AC…`).
    pub account_sid: String,
    /// Auth token: signs webhooks, authenticates API calls.
    pub auth_token: String,
    /// WhatsApp sender, `whatsapp:+…`.
    pub from: String,
    /// API base, `https://api.twilio.com` unless pointed elsewhere.
    pub api_base: String,
    /// Our public base URL, as Twilio calls it.
    pub public_url: String,
}

impl std::fmt::Debug for TwilioAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwilioAccount")
            .field("account_sid", &self.account_sid)
            .field("auth_token", &"[redacted]")
            .field("from", &self.from)
            .field("api_base", &self.api_base)
            .field("public_url", &self.public_url)
            .finish()
    }
}

impl TwilioAccount {
    /// The URL Twilio calls for `path_and_query` (which starts with `/`).
    pub fn public(&self, path_and_query: &str) -> String {
        format!("{}{}", self.public_url.trim_end_matches('/'), path_and_query)
    }
}

/// What the Messages API did with a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// Accepted: Twilio's sid and its status (`queued`, `accepted`, …).
    Accepted {
        /// MessageSid; `None` when the answer could not be read (the status
        /// callback, which names our message, brings it later).
        sid: Option<String>,
        /// Twilio's status word.
        status: String,
    },
    /// Refused for good (4xx): do not retry.
    Rejected {
        /// Twilio's error code, or the HTTP status when it gave none.
        code: String,
        /// Twilio's explanation.
        message: String,
    },
    /// Failed in a way a retry may fix (5xx, 429, timeout, unreachable).
    Transient(String),
}

#[derive(Deserialize)]
struct Created {
    sid: String,
    #[serde(default)]
    status: Option<String>,
}

#[derive(Deserialize)]
struct ApiError {
    #[serde(default)]
    code: Option<serde_json::Value>,
    #[serde(default)]
    message: Option<String>,
}

/// One outbound message.
#[derive(Debug, Clone)]
pub struct Outgoing<'a> {
    /// `whatsapp:+…`.
    pub to: &'a str,
    /// Text.
    pub body: Option<&'a str>,
    /// Public URLs of media to attach.
    pub media_urls: Vec<String>,
    /// Where Twilio reports the message's status.
    pub status_callback: Option<String>,
    /// Send this approved template (`ContentSid`, `ContentVariables`) instead of `body`.
    pub template: Option<&'a utalk_storage::model::Template>,
}

/// Posts one message to the Messages API.
pub async fn send(client: &reqwest::Client, account: &TwilioAccount, msg: &Outgoing<'_>, timeout: Duration) -> SendOutcome {
    let outcome = send_once(client, account, msg, timeout).await;
    let label = match &outcome {
        SendOutcome::Accepted { .. } => "ok",
        SendOutcome::Rejected { .. } => "rejected",
        SendOutcome::Transient(_) => "error",
    };
    metrics::counter!("twilio_requests_total", "outcome" => label).increment(1);
    outcome
}

async fn send_once(client: &reqwest::Client, account: &TwilioAccount, msg: &Outgoing<'_>, timeout: Duration) -> SendOutcome {
    let url = format!("{}/2010-04-01/Accounts/{}/Messages.json", account.api_base.trim_end_matches('/'), account.account_sid);
    let mut form: Vec<(&str, &str)> = vec![("To", msg.to), ("From", account.from.as_str())];
    // Twilio's Content API: the template and its variables as a JSON object.
    let variables = msg.template.map(|t| serde_json::to_string(&t.variables).unwrap_or_else(|_| "{}".into()));
    match (msg.template, &variables) {
        (Some(t), Some(v)) => {
            form.push(("ContentSid", t.content_sid.as_str()));
            form.push(("ContentVariables", v.as_str()));
        }
        _ => {
            if let Some(b) = msg.body {
                form.push(("Body", b));
            }
        }
    }
    for m in &msg.media_urls {
        form.push(("MediaUrl", m.as_str()));
    }
    if let Some(cb) = &msg.status_callback {
        form.push(("StatusCallback", cb.as_str()));
    }
    let res = client.post(&url).basic_auth(&account.account_sid, Some(&account.auth_token)).form(&form).timeout(timeout).send().await;
    let res = match res {
        Ok(r) => r,
        Err(e) if e.is_timeout() => return SendOutcome::Transient(format!("no answer within {} ms", timeout.as_millis())),
        Err(e) => return SendOutcome::Transient(format!("request failed: {e}")),
    };
    let status = res.status();
    let body = res.bytes().await;
    if status.is_success() {
        // Accepted, whatever the body says: retrying would send it twice.
        let created = body.ok().and_then(|b| serde_json::from_slice::<Created>(&b).ok());
        return SendOutcome::Accepted {
            sid: created.as_ref().map(|c| c.sid.clone()),
            status: created.and_then(|c| c.status).unwrap_or_else(|| "queued".into()),
        };
    }
    let body = match body {
        Ok(b) => b,
        Err(e) => return SendOutcome::Transient(format!("HTTP {}; reading the answer failed: {e}", status.as_u16())),
    };
    let err = serde_json::from_slice::<ApiError>(&body).ok();
    let message = err.as_ref().and_then(|e| e.message.clone()).unwrap_or_else(|| format!("HTTP {status}"));
    if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408 {
        return SendOutcome::Transient(format!("HTTP {}: {message}", status.as_u16()));
    }
    if matches!(status.as_u16(), 401 | 403 | 404) {
        // Our credentials or account SID are wrong, not the message: keep it
        // for when the operator fixes the settings.
        return SendOutcome::Transient(format!("Twilio refused the account's credentials or SID (HTTP {}): {message}", status.as_u16()));
    }
    let code = match err.and_then(|e| e.code) {
        Some(serde_json::Value::Number(n)) => n.to_string(),
        Some(serde_json::Value::String(s)) => s,
        _ => status.as_u16().to_string(),
    };
    SendOutcome::Rejected { code, message }
}
