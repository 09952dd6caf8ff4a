//! The parsers utalk runs on untrusted input, included from the crates that
//! use them (by path, so that nothing else of those crates is compiled), and
//! one entry point per fuzz target. Each entry point feeds the input through
//! the parser the way the server does and checks properties that must hold
//! for every input; a panic (or a failed check) is a crash.

#[path = "../../../actors/src/socket/engineio.rs"]
pub mod engineio;
#[path = "../../../actors/src/socket/event_args.rs"]
pub mod event_args;
#[path = "../../../actors/src/socket/socketio.rs"]
pub mod socketio;
#[path = "../../../actors/src/channels/twilio_form.rs"]
pub mod twilio_form;
#[path = "../../../actors/src/channels/twilio_signature.rs"]
pub mod twilio_signature;

use serde_json::Value;

/// Engine.IO: a websocket text frame, or a polling POST body (split on the
/// record separator), each packet's Socket.IO message decoded as the session does.
pub fn engineio(data: &[u8]) {
    // The server refuses bodies that are not UTF-8 before parsing (and websocket text frames are UTF-8).
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(engineio::Packet::Message(m)) = engineio::decode(text) {
        let _ = socketio::decode(m);
    }
    if let Ok(packets) = engineio::decode_payload(text) {
        assert_eq!(packets.len(), text.split(engineio::SEPARATOR).count());
        for p in packets {
            if let engineio::Packet::Message(m) = p {
                let _ = socketio::decode(m);
            }
        }
    }
    // Packets without the separator survive a round trip through a payload.
    let parts: Vec<String> = text.split(engineio::SEPARATOR).filter(|p| !p.is_empty()).map(str::to_owned).collect();
    if !parts.is_empty() {
        let joined = engineio::encode_payload(&parts);
        let back = engineio::decode_payload(&joined).map(|v| v.len());
        let each: Result<Vec<_>, _> = parts.iter().map(|p| engineio::decode(p)).collect();
        assert_eq!(back, each.map(|v| v.len()));
    }
}

/// Socket.IO: one packet (after the Engine.IO `4`); what decodes also survives
/// being answered: an ack to its id in its namespace decodes back to the same.
pub fn socketio(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(p) = socketio::decode(text) else { return };
    assert!(p.nsp.starts_with('/'), "namespace {:?}", p.nsp);
    let payload = p.data.clone().unwrap_or(Value::Null);
    let encoded = socketio::ack(&p.nsp, p.id.unwrap_or(0), &payload);
    let back = socketio::decode(&encoded[1..]).unwrap_or_else(|e| panic!("our own ack {encoded:?} does not decode: {e}"));
    assert_eq!((back.kind, back.nsp.as_str(), back.id), (socketio::Kind::Ack, p.nsp.as_str(), Some(p.id.unwrap_or(0))));
    // serde_json reads floats to within one ulp (no `float_roundtrip`), so
    // only payloads without floats must come back identical.
    if !has_float(&payload) {
        assert_eq!(back.data, Some(Value::Array(vec![payload])));
    }
}

fn has_float(v: &Value) -> bool {
    match v {
        Value::Number(n) => n.is_f64(),
        Value::Array(a) => a.iter().any(has_float),
        Value::Object(o) => o.values().any(has_float),
        _ => false,
    }
}

/// Socket event arguments: an Engine.IO frame carrying a Socket.IO EVENT, its
/// arguments read into typed fields as the session does for every event.
pub fn event_args(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // Bare JSON arguments reach the extraction too, not only well-formed frames.
    let args = match socketio::decode(text.strip_prefix('4').unwrap_or(text)) {
        Ok(socketio::Packet { kind: socketio::Kind::Event, data: Some(Value::Array(a)), .. }) => a,
        _ => match serde_json::from_str::<Value>(text) {
            Ok(Value::Array(a)) => a,
            Ok(v) => vec![Value::String("message:send".into()), v],
            Err(_) => return,
        },
    };
    let (_name, payload) = event_args::name_and_payload(args);
    if let Some(r) = event_args::request_id(&payload) {
        assert!(!r.is_empty() && r.len() <= 128);
    }
    let conv = event_args::conversation_id(&payload);
    let _ = event_args::since_seq(&payload);
    let _ = event_args::read_seq(&payload);
    if let Ok(f) = event_args::send_fields(&payload) {
        assert_eq!(Ok(f.conversation_id), conv);
    }
    let _ = event_args::presence_status(&payload);
    let _ = event_args::scores(&payload);
    let auth = event_args::connect_auth(&payload);
    assert!(auth.recover.is_none() || payload.get("pid").is_some());
}

const TOKEN: &str = "fuzz-auth-token";
const URL: &str = "https://chat.example.test/webhooks/twilio/whatsapp";

/// Twilio's webhook: `<signature header>\n<form body>`. The form is parsed,
/// the signature checked, and the message read, as the webhook does; a
/// signature we compute always verifies, on the URL and its port variant.
pub fn twilio_form(data: &[u8]) {
    let (header, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&[][..], data),
    };
    let header = String::from_utf8_lossy(header);
    let Ok(params) = twilio_form::parse_form(body) else { return };
    let _ = twilio_signature::verify(TOKEN, URL, &params, &header);
    let sig = twilio_signature::signature(TOKEN, URL, &params);
    assert!(twilio_signature::verify(TOKEN, URL, &params, &sig));
    if let Some(with_port) = twilio_signature::port_variant(URL) {
        assert!(twilio_signature::verify(TOKEN, &with_port, &params, &sig));
    }
    // A URL from the input: the port variant never panics and toggles back.
    if let Some(v) = twilio_signature::port_variant(&header) {
        let _ = twilio_signature::port_variant(&v);
    }
    if let Ok(m) = twilio_form::InboundMessage::parse(&params, 4096) {
        assert!(m.media.len() <= twilio_form::MAX_MEDIA);
        assert!(m.phone.starts_with('+') && m.phone.len() <= 21);
        assert!(m.text.as_ref().is_none_or(|t| t.chars().count() <= 4096 || t.starts_with("Location: ")));
    }
}
