//! Twilio's inbound message form: the form-encoded body read into the
//! message's fields. It depends on serde_urlencoded and thiserror alone, so
//! that it can be fuzzed on its own (`tests/fuzz`); `whatsapp` maps its errors
//! to API errors.

/// Twilio sends at most ten media items per message.
pub const MAX_MEDIA: usize = 10;

/// Longest profile name kept, characters.
const MAX_PROFILE_NAME_CHARS: usize = 200;

/// Why a webhook body or its parameters were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    /// The body is not `application/x-www-form-urlencoded`.
    #[error("body is not form-encoded: {0}")]
    Malformed(String),
    /// A parameter the message cannot do without.
    #[error("{0} is required")]
    Missing(&'static str),
    /// `From` is not a WhatsApp number.
    #[error("From must be whatsapp:+<digits>; this endpoint takes WhatsApp only")]
    NotWhatsApp,
}

/// The parameters of a form-encoded body, in order, repeated names kept.
pub fn parse_form(body: &[u8]) -> Result<Vec<(String, String)>, FormError> {
    serde_urlencoded::from_bytes(body).map_err(|e| FormError::Malformed(e.to_string()))
}

/// A phone number as `+<digits>` (E.164), from digits with or without the `+`.
pub fn normalize_phone(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let digits = raw.strip_prefix('+').unwrap_or(raw);
    (!digits.is_empty() && digits.len() <= 20 && digits.chars().all(|c| c.is_ascii_digit())).then(|| format!("+{digits}"))
}

/// A customer's WhatsApp message as Twilio describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundMessage {
    /// Twilio's MessageSid.
    pub sid: String,
    /// The customer's number, E.164 (`+…`).
    pub phone: String,
    /// The customer's WhatsApp profile name.
    pub profile_name: Option<String>,
    /// Text (a shared location becomes text).
    pub text: Option<String>,
    /// Media: URL and announced type.
    pub media: Vec<(String, String)>,
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
}

impl InboundMessage {
    /// Reads the webhook's parameters; text is cut to `max_text_chars`.
    pub fn parse(params: &[(String, String)], max_text_chars: usize) -> Result<InboundMessage, FormError> {
        let sid = param(params, "MessageSid").or_else(|| param(params, "SmsMessageSid")).ok_or(FormError::Missing("MessageSid"))?;
        let from = param(params, "From").ok_or(FormError::Missing("From"))?;
        let phone = from.strip_prefix("whatsapp:").and_then(normalize_phone).ok_or(FormError::NotWhatsApp)?;
        let mut text = param(params, "Body").map(|b| b.chars().take(max_text_chars).collect::<String>());
        if text.is_none() {
            if let (Some(lat), Some(lon)) = (param(params, "Latitude"), param(params, "Longitude")) {
                let label = param(params, "Label").or_else(|| param(params, "Address")).map(|l| format!(" ({l})")).unwrap_or_default();
                text = Some(format!("Location: {lat}, {lon}{label}"));
            }
        }
        let n: usize = param(params, "NumMedia").and_then(|n| n.parse().ok()).unwrap_or(0).min(MAX_MEDIA);
        let media = (0..n)
            .filter_map(|i| {
                let url = param(params, &format!("MediaUrl{i}"))?;
                let ct = param(params, &format!("MediaContentType{i}")).unwrap_or("application/octet-stream");
                Some((url.to_string(), ct.to_string()))
            })
            .collect();
        let profile_name = param(params, "ProfileName").map(|p| p.chars().take(MAX_PROFILE_NAME_CHARS).collect());
        Ok(InboundMessage { sid: sid.to_string(), phone, profile_name, text, media })
    }
}
