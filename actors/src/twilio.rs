//! Twilio: the account settings, request signatures (`X-Twilio-Signature`)
//! and the Messages API call.

use base64::Engine;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use std::time::Duration;

type HmacSha1 = Hmac<sha1::Sha1>;

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

/// The signature Twilio sends for a form-encoded request to `url` with `params`:
/// base64 of HMAC-SHA1, keyed by the auth token, over the URL followed by every
/// parameter name and value, sorted by name.
pub fn signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    base64::engine::general_purpose::STANDARD.encode(mac(auth_token, url, params).finalize().into_bytes())
}

fn mac(auth_token: &str, url: &str, params: &[(String, String)]) -> HmacSha1 {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    // A repeated name with the same value counts once, as in Twilio's libraries.
    sorted.sort();
    sorted.dedup();
    // HMAC takes keys of any length; new_from_slice cannot fail for it.
    let mut m = HmacSha1::new_from_slice(auth_token.as_bytes()).unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    m.update(url.as_bytes());
    for (k, v) in sorted {
        m.update(k.as_bytes());
        m.update(v.as_bytes());
    }
    m
}

/// Whether `header` is Twilio's signature of the request; compared in
/// constant time. Like Twilio's own libraries, the URL is also tried with
/// its default port added or removed, since proxies differ in which they pass.
pub fn verify(auth_token: &str, url: &str, params: &[(String, String)], header: &str) -> bool {
    let Ok(given) = base64::engine::general_purpose::STANDARD.decode(header.trim()) else {
        return false;
    };
    std::iter::once(url.to_string()).chain(port_variant(url)).any(|u| mac(auth_token, &u, params).verify_slice(&given).is_ok())
}

/// `url` with its scheme's default port toggled: added when absent, removed when present.
fn port_variant(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let port = match scheme {
        "https" => "443",
        "http" => "80",
        _ => return None,
    };
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(split);
    let with = format!(":{port}");
    if let Some(host) = authority.strip_suffix(&with) {
        Some(format!("{scheme}://{host}{tail}"))
    } else if authority.contains(':') && !authority.ends_with(']') {
        None
    } else {
        Some(format!("{scheme}://{authority}{with}{tail}"))
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
}

/// Posts one message to the Messages API.
pub async fn send(client: &reqwest::Client, account: &TwilioAccount, msg: &Outgoing<'_>, timeout: Duration) -> SendOutcome {
    let url = format!("{}/2010-04-01/Accounts/{}/Messages.json", account.api_base.trim_end_matches('/'), account.account_sid);
    let mut form: Vec<(&str, &str)> = vec![("To", msg.to), ("From", account.from.as_str())];
    if let Some(b) = msg.body {
        form.push(("Body", b));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> Vec<(String, String)> {
        [("From", "whatsapp:+14155550100"), ("Body", "hola"), ("MessageSid", "SM1"), ("NumMedia", "0")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn signature_covers_url_and_every_parameter() {
        let url = "https://chat.example.com/webhooks/twilio/whatsapp";
        let sig = signature("token", url, &params());
        assert!(verify("token", url, &params(), &sig));
        assert!(!verify("other-token", url, &params(), &sig));
        assert!(!verify("token", "https://chat.example.com/webhooks/twilio/status", &params(), &sig));
        let mut changed = params();
        changed[1].1 = "adios".into();
        assert!(!verify("token", url, &changed, &sig));
        let mut extra = params();
        extra.push(("X".into(), "1".into()));
        assert!(!verify("token", url, &extra, &sig));
        assert!(!verify("token", url, &params(), "not base64!"));
        assert!(!verify("token", url, &params(), ""));
    }

    #[test]
    fn parameter_order_does_not_matter() {
        let url = "https://chat.example.com/hook";
        let mut reversed = params();
        reversed.reverse();
        assert_eq!(signature("t", url, &params()), signature("t", url, &reversed));
    }

    #[test]
    fn default_port_variants_are_accepted() {
        let sig = signature("t", "https://chat.example.com:443/hook?a=1", &params());
        assert!(verify("t", "https://chat.example.com/hook?a=1", &params(), &sig));
        let sig = signature("t", "http://chat.example.com/hook", &params());
        assert!(verify("t", "http://chat.example.com:80/hook", &params(), &sig));
        let sig = signature("t", "https://chat.example.com:8443/hook", &params());
        assert!(!verify("t", "https://chat.example.com/hook", &params(), &sig));
        assert_eq!(port_variant("https://h:8443/x"), None);
    }
}
