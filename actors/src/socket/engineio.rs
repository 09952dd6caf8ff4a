//! Engine.IO v4 packets: `<type digit><data>`, payloads joined with 0x1E.
//!
//! Types: 0 open, 1 close, 2 ping, 3 pong, 4 message, 5 upgrade, 6 noop.
//! Binary payloads (`b<base64>` in polling, binary websocket frames) are not
//! accepted: utalk's events are JSON, and refusing them is explicit.

/// The record separator between packets of a polling payload.
pub const SEPARATOR: char = '\u{1e}';

/// A decoded inbound packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet<'a> {
    /// `1`
    Close,
    /// `2` with optional data (`2probe`).
    Ping(&'a str),
    /// `3` with optional data (`3probe`).
    Pong(&'a str),
    /// `4<data>`: a Socket.IO packet.
    Message(&'a str),
    /// `5`
    Upgrade,
    /// `6`
    Noop,
}

/// Why an inbound packet was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// Empty packet.
    #[error("empty packet")]
    Empty,
    /// Binary data is not supported.
    #[error("binary packets are not supported")]
    Binary,
    /// Unknown or client-illegal type.
    #[error("unknown packet type `{0}`")]
    UnknownType(char),
}

/// Decodes one packet sent by a client.
pub fn decode(text: &str) -> Result<Packet<'_>, PacketError> {
    let mut chars = text.chars();
    let first = chars.next().ok_or(PacketError::Empty)?;
    let rest = &text[first.len_utf8()..];
    match first {
        '1' => Ok(Packet::Close),
        '2' => Ok(Packet::Ping(rest)),
        '3' => Ok(Packet::Pong(rest)),
        '4' => Ok(Packet::Message(rest)),
        '5' => Ok(Packet::Upgrade),
        '6' => Ok(Packet::Noop),
        'b' => Err(PacketError::Binary),
        other => Err(PacketError::UnknownType(other)),
    }
}

/// Splits a polling payload into packets.
pub fn decode_payload(body: &str) -> Result<Vec<Packet<'_>>, PacketError> {
    body.split(SEPARATOR).map(decode).collect()
}

/// Joins encoded packets into a polling payload.
pub fn encode_payload(packets: &[String]) -> String {
    let len = packets.iter().map(|p| p.len() + 1).sum();
    let mut out = String::with_capacity(len);
    for (i, p) in packets.iter().enumerate() {
        if i > 0 {
            out.push(SEPARATOR);
        }
        out.push_str(p);
    }
    out
}

/// The open packet.
pub fn open_packet(sid: &str, upgrades: bool, ping_interval_ms: u64, ping_timeout_ms: u64, max_payload: usize) -> String {
    let upgrades = if upgrades { r#"["websocket"]"# } else { "[]" };
    format!(
        r#"0{{"sid":"{sid}","upgrades":{upgrades},"pingInterval":{ping_interval_ms},"pingTimeout":{ping_timeout_ms},"maxPayload":{max_payload}}}"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_decode_by_their_type_digit() {
        assert_eq!(decode("2probe"), Ok(Packet::Ping("probe")));
        assert_eq!(decode("3"), Ok(Packet::Pong("")));
        assert_eq!(decode(r#"42["a"]"#), Ok(Packet::Message(r#"2["a"]"#)));
        assert_eq!(decode("5"), Ok(Packet::Upgrade));
        assert_eq!(decode("bAQID"), Err(PacketError::Binary));
        assert_eq!(decode("9"), Err(PacketError::UnknownType('9')));
        assert_eq!(decode(""), Err(PacketError::Empty));
        assert_eq!(decode("é"), Err(PacketError::UnknownType('é')));
    }

    #[test]
    fn payloads_split_and_join_on_the_record_separator() {
        let body = "40\u{1e}42[\"x\"]\u{1e}3";
        assert_eq!(decode_payload(body).unwrap(), vec![Packet::Message("0"), Packet::Message("2[\"x\"]"), Packet::Pong("")]);
        assert_eq!(encode_payload(&["2".into(), "40{}".into()]), "2\u{1e}40{}");
        assert!(decode_payload("4ok\u{1e}bAAA").is_err());
    }

    #[test]
    fn the_open_packet_matches_the_reference_layout() {
        assert_eq!(
            open_packet("abc", true, 25000, 20000, 1000000),
            r#"0{"sid":"abc","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#
        );
    }
}
