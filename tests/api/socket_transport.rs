//! The websocket transport on raw TCP: the upgrade answered before routing,
//! bytes that arrive with the upgrade request, and frames that announce more
//! than the server accepts.

use crate::helpers::TestServer;
use serde_json::Value;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
// RFC 6455's example: the accept value for KEY.
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

fn upgrade_request(s: &TestServer, path: &str) -> Vec<u8> {
    let host = s.base.trim_start_matches("http://");
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .into_bytes()
}

/// A masked client text frame.
fn text_frame(text: &str) -> Vec<u8> {
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let payload = text.as_bytes();
    assert!(payload.len() < 126);
    let mut f = vec![0x81, 0x80 | payload.len() as u8];
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

/// Reads until the HTTP head ends; returns the head and any bytes after it.
async fn read_head(io: &mut TcpStream) -> (String, Vec<u8>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return (String::from_utf8(buf).unwrap(), rest);
        }
        let n = tokio::time::timeout(Duration::from_secs(10), io.read(&mut chunk)).await.expect("answer in time").unwrap();
        assert!(n > 0, "connection closed before the answer's head: {:?}", String::from_utf8_lossy(&buf));
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Reads one unmasked server frame: (opcode, payload).
async fn read_frame(io: &mut TcpStream, pending: &mut Vec<u8>) -> (u8, Vec<u8>) {
    let mut chunk = [0u8; 4096];
    loop {
        if pending.len() >= 2 {
            let (op, len7) = (pending[0] & 0x0f, (pending[1] & 0x7f) as usize);
            let (len, at) = match len7 {
                126 if pending.len() >= 4 => (u16::from_be_bytes([pending[2], pending[3]]) as usize, 4),
                127 if pending.len() >= 10 => (u64::from_be_bytes(pending[2..10].try_into().unwrap()) as usize, 10),
                126 | 127 => (usize::MAX, 0),
                n => (n, 2),
            };
            if len != usize::MAX && pending.len() >= at + len {
                let payload = pending[at..at + len].to_vec();
                pending.drain(..at + len);
                return (op, payload);
            }
        }
        let n = tokio::time::timeout(Duration::from_secs(10), io.read(&mut chunk)).await.expect("frame in time").unwrap();
        assert!(n > 0, "connection closed while a frame was expected");
        pending.extend_from_slice(&chunk[..n]);
    }
}

#[tokio::test]
async fn a_frame_sent_together_with_the_upgrade_request_is_not_lost() {
    let s = TestServer::start().await;
    let mut io = TcpStream::connect(s.base.trim_start_matches("http://")).await.unwrap();
    // One write: the HTTP layer reads the frame with the request's head and must hand it over.
    let mut bytes = upgrade_request(&s, "/socket.io/?EIO=4&transport=websocket");
    bytes.extend(text_frame("40"));
    io.write_all(&bytes).await.unwrap();
    let (head, mut rest) = read_head(&mut io).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(head.to_ascii_lowercase().contains(&format!("sec-websocket-accept: {}", ACCEPT.to_ascii_lowercase())), "{head}");
    let (op, open) = read_frame(&mut io, &mut rest).await;
    assert_eq!(op, 1);
    let open = String::from_utf8(open).unwrap();
    assert!(open.starts_with("0{"), "Engine.IO open first: {open}");
    // The CONNECT that came with the request is answered (accepted or refused, it was read).
    let (op, answer) = read_frame(&mut io, &mut rest).await;
    let answer = String::from_utf8(answer).unwrap();
    assert_eq!(op, 1);
    assert!(answer.starts_with("40") || answer.starts_with("44"), "an answer to the CONNECT: {answer}");
}

#[tokio::test]
async fn upgrades_of_other_paths_and_plain_gets_are_refused_and_the_server_serves_on() {
    let s = TestServer::start().await;
    let addr = s.base.trim_start_matches("http://").to_string();
    match tokio_tungstenite::connect_async(format!("ws://{addr}/health")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status().as_u16(), 404);
            let body: Value = serde_json::from_slice(resp.body().as_deref().unwrap_or_default()).unwrap();
            assert_eq!(body["error"]["code"], "not_found");
        }
        other => panic!("upgrade of /health not refused: {:?}", other.map(|_| ())),
    }
    // A wrong Engine.IO version on the websocket transport: Engine.IO's own error.
    match tokio_tungstenite::connect_async(format!("ws://{addr}/socket.io/?EIO=3&transport=websocket")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status().as_u16(), 400);
            let body: Value = serde_json::from_slice(resp.body().as_deref().unwrap_or_default()).unwrap();
            assert_eq!(body["code"], 5);
        }
        other => panic!("EIO=3 not refused: {:?}", other.map(|_| ())),
    }
    // Without the upgrade headers the websocket transport is a bad request, not a hang.
    let plain = reqwest::get(s.url("/socket.io/?EIO=4&transport=websocket")).await.unwrap();
    assert_eq!(plain.status().as_u16(), 400);
    assert_eq!(reqwest::get(s.url("/health")).await.unwrap().status().as_u16(), 200);
}

#[tokio::test]
async fn a_frame_announcing_more_than_the_payload_limit_is_closed_with_1009_at_once() {
    let s = TestServer::start().await;
    let mut io = TcpStream::connect(s.base.trim_start_matches("http://")).await.unwrap();
    io.write_all(&upgrade_request(&s, "/socket.io/?EIO=4&transport=websocket")).await.unwrap();
    let (head, mut rest) = read_head(&mut io).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let (_, open) = read_frame(&mut io, &mut rest).await;
    assert!(open.starts_with(b"0{"));
    // A text frame that says it carries 1 TiB, and then nothing: the server
    // must refuse on the header, not wait for (or buffer) the payload.
    let mut header = vec![0x81, 0x80 | 127];
    header.extend_from_slice(&(1u64 << 40).to_be_bytes());
    header.extend_from_slice(&[1, 2, 3, 4]);
    io.write_all(&header).await.unwrap();
    let (op, payload) = read_frame(&mut io, &mut rest).await;
    assert_eq!(op, 8, "a close frame");
    assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), 1009);
    assert_eq!(reqwest::get(s.url("/health")).await.unwrap().status().as_u16(), 200);
}
