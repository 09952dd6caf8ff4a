//! Socket event arguments read into typed fields: the event name and
//! payload, the request id, conversation ids and sequence numbers, CONNECT's
//! auth, `message:send`, `presence:set` and `conversation:rate`. It depends
//! on serde_json and uuid alone, so that it can be fuzzed on its own
//! (`tests/fuzz`); `session` answers the errors as refused events.

use serde_json::Value;
use uuid::Uuid;

/// A field of the payload is missing or malformed; the ack answers it as
/// `invalid_request` with this message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Invalid(pub &'static str);

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for Invalid {}

/// Longest client-chosen request id kept.
const MAX_REQUEST_ID: usize = 128;

/// The event's name and its payload (`Null` when absent); a name that is not a string is empty.
pub(crate) fn name_and_payload(args: Vec<Value>) -> (String, Value) {
    let mut args = args.into_iter();
    let name = match args.next() {
        Some(Value::String(s)) => s,
        _ => String::new(),
    };
    (name, args.next().unwrap_or(Value::Null))
}

/// The client's `requestId`, when it is 1–128 characters of `[A-Za-z0-9-_.:]`.
pub(crate) fn request_id(payload: &Value) -> Option<String> {
    payload
        .get("requestId")
        .and_then(Value::as_str)
        .filter(|r| !r.is_empty() && r.len() <= MAX_REQUEST_ID && r.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b)))
        .map(str::to_owned)
}

/// `conversationId`, a UUID.
pub(crate) fn conversation_id(payload: &Value) -> Result<Uuid, Invalid> {
    payload
        .get("conversationId")
        .and_then(Value::as_str)
        .and_then(|s| Uuid::parse_str(s).ok())
        .ok_or(Invalid("conversationId must be a UUID"))
}

/// `sinceSeq` of `conversation:join`: absent or null is 0.
pub(crate) fn since_seq(payload: &Value) -> Result<Option<u64>, Invalid> {
    match payload.get("sinceSeq") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or(Invalid("sinceSeq must be a non-negative integer")),
    }
}

/// `seq` of `message:read`.
pub(crate) fn read_seq(payload: &Value) -> Result<u64, Invalid> {
    payload.get("seq").and_then(Value::as_u64).ok_or(Invalid("seq must be a non-negative integer"))
}

/// The fields of `message:send`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SendFields {
    /// The conversation.
    pub conversation_id: Uuid,
    /// The client's id of the message (idempotency).
    pub message_id: Uuid,
    /// Text, when sent.
    pub text: Option<String>,
    /// An uploaded media item, when sent.
    pub media_id: Option<Uuid>,
    /// A private note (staff only).
    pub private: bool,
    /// An approved WhatsApp template.
    pub template: Option<TemplateFields>,
}

/// A template `message:send` names: its Content SID and variables, as
/// given (the conversation core checks them).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TemplateFields {
    /// Twilio's `ContentSid`.
    pub content_sid: String,
    /// Name → value.
    pub variables: Vec<(String, String)>,
}

/// Reads `{contentSid, variables?}`.
fn template_fields(v: &Value) -> Result<TemplateFields, Invalid> {
    let bad = Invalid("template must be {contentSid, variables} with string values");
    let obj = v.as_object().ok_or(bad)?;
    if obj.keys().any(|k| k != "contentSid" && k != "variables") {
        return Err(bad);
    }
    let content_sid = obj.get("contentSid").and_then(Value::as_str).ok_or(bad)?.to_string();
    let variables = match obj.get("variables") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(m)) => {
            m.iter().map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())).ok_or(bad)).collect::<Result<_, _>>()?
        }
        Some(_) => return Err(bad),
    };
    Ok(TemplateFields { content_sid, variables })
}

/// Reads `message:send`'s `{conversationId, messageId, text?, mediaId?, private?}`.
pub(crate) fn send_fields(payload: &Value) -> Result<SendFields, Invalid> {
    let conversation_id = conversation_id(payload)?;
    let message_id = payload
        .get("messageId")
        .and_then(Value::as_str)
        .and_then(|s| Uuid::parse_str(s).ok())
        .ok_or(Invalid("messageId must be a UUID"))?;
    let text = match payload.get("text") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(Invalid("text must be a string")),
    };
    let media_id = match payload.get("mediaId") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_str().and_then(|s| Uuid::parse_str(s).ok()).ok_or(Invalid("mediaId must be a UUID"))?),
    };
    let private = match payload.get("private") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(Invalid("private must be a boolean")),
    };
    let template = match payload.get("template") {
        None | Some(Value::Null) => None,
        Some(v) => Some(template_fields(v)?),
    };
    Ok(SendFields { conversation_id, message_id, text, media_id, private, template })
}

/// What CONNECT's auth object carries: the token, and the session to
/// recover (Socket.IO's `pid` and the last `offset` the client saw, when it
/// is a number).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct ConnectAuth {
    /// The access or widget token.
    pub token: Option<String>,
    /// `pid` and `offset` of the session to recover.
    pub recover: Option<(String, Option<u64>)>,
}

/// Reads CONNECT's `{token?, pid?, offset?}`; anything else is ignored.
pub(crate) fn connect_auth(data: &Value) -> ConnectAuth {
    let text = |k: &str| data.get(k).and_then(Value::as_str);
    let recover = match (text("pid"), text("offset")) {
        (Some(pid), Some(offset)) => Some((pid.to_string(), offset.parse::<u64>().ok())),
        _ => None,
    };
    ConnectAuth { token: text("token").map(str::to_owned), recover }
}

/// `status` of `presence:set`: `online` or `away`.
pub(crate) fn presence_status(payload: &Value) -> Result<&'static str, Invalid> {
    match payload.get("status").and_then(Value::as_str) {
        Some("online") => Ok("online"),
        Some("away") => Ok("away"),
        _ => Err(Invalid("status must be online or away")),
    }
}

/// One rating field of `conversation:rate`: absent (or null), a small
/// non-negative integer, or something else (refused by the caller with the
/// field's range).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Score {
    /// Not sent.
    Absent,
    /// A number 0–255.
    Given(u8),
    /// Not a number 0–255.
    Malformed,
}

/// The `csat` and `nps` fields of `conversation:rate`.
pub(crate) fn scores(payload: &Value) -> [(&'static str, Score); 2] {
    ["csat", "nps"].map(|field| {
        let score = match payload.get(field) {
            None | Some(Value::Null) => Score::Absent,
            Some(v) => v.as_u64().and_then(|n| u8::try_from(n).ok()).map_or(Score::Malformed, Score::Given),
        };
        (field, score)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_are_read_or_refused_with_a_code() {
        let conv = Uuid::new_v4();
        let (name, payload) =
            name_and_payload(vec![json!("message:send"), json!({"conversationId": conv, "messageId": conv, "text": "hi"})]);
        assert_eq!(name, "message:send");
        let f = send_fields(&payload).unwrap();
        assert_eq!((f.conversation_id, f.text.as_deref(), f.media_id), (conv, Some("hi"), None));
        assert_eq!(name_and_payload(vec![json!(7)]), (String::new(), Value::Null));
        assert_eq!(
            send_fields(&json!({"conversationId": conv, "messageId": conv, "text": 1})).unwrap_err(),
            Invalid("text must be a string")
        );
        assert!(send_fields(&json!({"conversationId": conv, "messageId": conv, "mediaId": "x"})).is_err());
        assert!(conversation_id(&json!("not an object")).is_err());
        assert_eq!(since_seq(&json!({})), Ok(None));
        assert_eq!(since_seq(&json!({"sinceSeq": 0})), Ok(Some(0)));
        assert!(since_seq(&json!({"sinceSeq": -1})).is_err());
        assert!(read_seq(&json!({"seq": 1.5})).is_err());
        assert_eq!(request_id(&json!({"requestId": "a-1.b:c_d"})).as_deref(), Some("a-1.b:c_d"));
        assert_eq!(request_id(&json!({"requestId": "x".repeat(129)})), None);
        assert_eq!(request_id(&json!({"requestId": "a b"})), None);
    }

    #[test]
    fn connect_presence_and_ratings_are_read_typed() {
        assert_eq!(connect_auth(&Value::Null), ConnectAuth::default());
        let a = connect_auth(&json!({"token": "t", "pid": "p", "offset": "12"}));
        assert_eq!((a.token.as_deref(), a.recover), (Some("t"), Some(("p".to_string(), Some(12)))));
        assert_eq!(connect_auth(&json!({"pid": "p"})).recover, None);
        assert_eq!(connect_auth(&json!({"token": 5})).token, None);
        assert_eq!(presence_status(&json!({"status": "away"})), Ok("away"));
        assert!(presence_status(&json!({"status": "busy"})).is_err());
        assert_eq!(scores(&json!({"csat": 5})), [("csat", Score::Given(5)), ("nps", Score::Absent)]);
        assert_eq!(scores(&json!({"csat": 256, "nps": "9"})), [("csat", Score::Malformed), ("nps", Score::Malformed)]);
    }
}
