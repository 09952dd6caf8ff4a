//! Socket.IO v5 packets: `<type>[<attachments>-][<nsp>,][<ackId>][<JSON>]`.

use serde_json::Value;

/// Packet types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// 0
    Connect,
    /// 1
    Disconnect,
    /// 2
    Event,
    /// 3
    Ack,
    /// 4
    ConnectError,
    /// 5
    BinaryEvent,
    /// 6
    BinaryAck,
}

/// A decoded packet.
#[derive(Debug, Clone, PartialEq)]
pub struct Packet {
    /// Type.
    pub kind: Kind,
    /// Namespace (`/` by default).
    pub nsp: String,
    /// Ack id, if the sender wants an answer.
    pub id: Option<u64>,
    /// JSON payload.
    pub data: Option<Value>,
}

/// Why a packet was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// Not a Socket.IO packet.
    #[error("malformed packet: {0}")]
    Malformed(&'static str),
    /// Binary events are not supported.
    #[error("binary packets are not supported")]
    Binary,
}

const RESERVED: [&str; 6] = ["connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"];

/// Decodes a packet (without the Engine.IO `4` prefix).
pub fn decode(s: &str) -> Result<Packet, PacketError> {
    let bytes = s.as_bytes();
    let kind = match bytes.first() {
        Some(b'0') => Kind::Connect,
        Some(b'1') => Kind::Disconnect,
        Some(b'2') => Kind::Event,
        Some(b'3') => Kind::Ack,
        Some(b'4') => Kind::ConnectError,
        Some(b'5') => Kind::BinaryEvent,
        Some(b'6') => Kind::BinaryAck,
        _ => return Err(PacketError::Malformed("unknown type")),
    };
    if matches!(kind, Kind::BinaryEvent | Kind::BinaryAck) {
        return Err(PacketError::Binary);
    }
    let mut i = 1;
    let mut nsp = "/".to_string();
    if bytes.get(i) == Some(&b'/') {
        let end = s[i..].find(',').map(|p| i + p).unwrap_or(s.len());
        nsp = s[i..end].to_string();
        i = if end < s.len() { end + 1 } else { end };
    }
    let digits = bytes[i..].iter().take_while(|b| b.is_ascii_digit()).count();
    let id = if digits > 0 {
        let v = s[i..i + digits].parse::<u64>().map_err(|_| PacketError::Malformed("ack id out of range"))?;
        i += digits;
        Some(v)
    } else {
        None
    };
    let data = if i < s.len() {
        Some(serde_json::from_str::<Value>(&s[i..]).map_err(|_| PacketError::Malformed("payload is not JSON"))?)
    } else {
        None
    };
    let valid = match kind {
        Kind::Connect => data.as_ref().is_none_or(Value::is_object),
        Kind::Disconnect => data.is_none(),
        Kind::ConnectError => data.as_ref().is_some_and(|d| d.is_object() || d.is_string()),
        Kind::Event => match data.as_ref().and_then(Value::as_array).and_then(|a| a.first()) {
            Some(Value::String(name)) => !RESERVED.contains(&name.as_str()),
            Some(Value::Number(_)) => true,
            _ => false,
        },
        Kind::Ack => id.is_some() && data.as_ref().is_some_and(Value::is_array),
        Kind::BinaryEvent | Kind::BinaryAck => false,
    };
    if !valid {
        return Err(PacketError::Malformed("payload does not fit the packet type"));
    }
    Ok(Packet { kind, nsp, id, data })
}

fn prefix(kind: u8, nsp: &str, id: Option<u64>) -> String {
    let mut out = String::with_capacity(64);
    out.push('4');
    out.push((b'0' + kind) as char);
    if nsp != "/" {
        out.push_str(nsp);
        out.push(',');
    }
    if let Some(id) = id {
        out.push_str(&id.to_string());
    }
    out
}

/// `40{...}`: the CONNECT answer, as an Engine.IO message.
pub fn connect(nsp: &str, payload: &Value) -> String {
    prefix(0, nsp, None) + &payload.to_string()
}

/// `44{"message": ...}`: a refused CONNECT, as an Engine.IO message.
pub fn connect_error(nsp: &str, message: &str) -> String {
    prefix(4, nsp, None) + &serde_json::json!({ "message": message }).to_string()
}

/// `43<id>[payload]`: an ack, as an Engine.IO message.
pub fn ack(nsp: &str, id: u64, payload: &Value) -> String {
    ack_raw(nsp, id, &payload.to_string())
}

/// `43<id>[<json>]` with `json` already serialized, as an Engine.IO message.
pub fn ack_raw(nsp: &str, id: u64, json: &str) -> String {
    let mut out = prefix(3, nsp, Some(id));
    out.reserve(json.len() + 2);
    out.push('[');
    out.push_str(json);
    out.push(']');
    out
}

/// `42["event", <json>, "offset"?]` with `json` already serialized, as an Engine.IO message.
pub fn event_raw(event: &str, json: &str, offset: Option<&str>) -> String {
    let mut out = String::with_capacity(json.len() + event.len() + 32);
    out.push_str("42[\"");
    out.push_str(event);
    out.push_str("\",");
    out.push_str(json);
    if let Some(o) = offset {
        out.push_str(",\"");
        out.push_str(o);
        out.push('"');
    }
    out.push(']');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn decodes_the_reference_examples() {
        let p = decode(r#"0{"token":"123"}"#).unwrap();
        assert_eq!((p.kind, p.nsp.as_str(), p.id, p.data), (Kind::Connect, "/", None, Some(json!({"token": "123"}))));
        let p = decode("0/admin,").unwrap();
        assert_eq!((p.kind, p.nsp.as_str()), (Kind::Connect, "/admin"));
        let p = decode("0/random").unwrap();
        assert_eq!(p.nsp, "/random");
        let p = decode(r#"212["foo",{"a":1}]"#).unwrap();
        assert_eq!((p.kind, p.id), (Kind::Event, Some(12)));
        let p = decode(r#"2/admin,13["foo"]"#).unwrap();
        assert_eq!((p.nsp.as_str(), p.id), ("/admin", Some(13)));
        let p = decode("1").unwrap();
        assert_eq!(p.kind, Kind::Disconnect);
        let p = decode("35[]").unwrap();
        assert_eq!((p.kind, p.id), (Kind::Ack, Some(5)));
    }

    #[test]
    fn refuses_what_the_reference_server_refuses() {
        for bad in
            ["", "9", "abc", "2{}", "2abc[", r#"2["connect"]"#, "2[]", "0[1]", "1{}", "3[]", "2[true]", r#"299999999999999999999999["x"]"#]
        {
            assert!(decode(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(decode(r#"51-["x",{"_placeholder":true,"num":0}]"#), Err(PacketError::Binary));
    }

    #[test]
    fn encodes_server_packets() {
        assert_eq!(connect("/", &json!({"sid": "s"})), r#"40{"sid":"s"}"#);
        assert_eq!(connect_error("/x", "Invalid namespace"), r#"44/x,{"message":"Invalid namespace"}"#);
        assert_eq!(ack("/", 7, &json!({"ok": true})), r#"437[{"ok":true}]"#);
        assert_eq!(event_raw("message:new", r#"{"a":1}"#, Some("12")), r#"42["message:new",{"a":1},"12"]"#);
        assert_eq!(event_raw("typing", "{}", None), r#"42["typing",{}]"#);
    }
}
