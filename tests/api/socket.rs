//! Socket.IO behaviour that needs control of the client's TCP socket.

use crate::helpers::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::time::Duration;
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{client_async, WebSocketStream};

pub(crate) type Ws = WebSocketStream<tokio::net::TcpStream>;

/// A websocket Socket.IO client, connected and joined to `conv`; `recv_buf` shrinks its TCP receive buffer.
pub(crate) async fn joined_client(base: &str, token: &str, conv: &str, recv_buf: Option<u32>) -> Ws {
    let addr: std::net::SocketAddr = base.trim_start_matches("http://").parse().unwrap();
    let socket = TcpSocket::new_v4().unwrap();
    if let Some(n) = recv_buf {
        socket.set_recv_buffer_size(n).unwrap();
    }
    let stream = socket.connect(addr).await.unwrap();
    let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
    let (mut ws, _) = client_async(url, stream).await.unwrap();
    let open = next_text(&mut ws).await;
    assert!(open.starts_with("0{"), "{open}");
    ws.send(Message::text(format!("40{}", json!({ "token": token })))).await.unwrap();
    assert!(next_text(&mut ws).await.starts_with("40{"));
    ws.send(Message::text(format!("421{}", json!(["conversation:join", { "conversationId": conv }])))).await.unwrap();
    // Presence events for staff may come first.
    let ack = loop {
        let t = next_text(&mut ws).await;
        if t.starts_with("431[") {
            break t;
        }
    };
    assert!(ack.contains("\"ok\":true"), "{ack}");
    ws
}

pub(crate) async fn next_text(ws: &mut Ws) -> String {
    loop {
        match tokio::time::timeout(Duration::from_secs(30), ws.next()).await.expect("frame in time") {
            Some(Ok(Message::Text(t))) if t.as_str() == "2" => ws.send(Message::text("3")).await.unwrap(),
            Some(Ok(Message::Text(t))) => return t.to_string(),
            // A close is the server's answer (slow consumer, ping timeout): say which.
            Some(Ok(Message::Close(frame))) => panic!("the server closed the connection: {frame:?}"),
            Some(Ok(_)) => {}
            other => panic!("connection ended: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_consumer_that_stops_reading_is_dropped_as_slow_and_others_are_not_slowed() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    add_user(&data, AGENT.0, "agent", AGENT.1);
    // A queue of 256 events (1 MiB of these) is far less than the slow
    // consumer is sent (10 MB, past the kernel's buffers), and leaves the fast
    // one room when a busy machine holds up its session for a moment: with 64
    // the fast one was once closed too, under the whole suite's load.
    let s = TestServer::start_on(&data, &[("UTALK_SOCKET__MAX_QUEUED", "256")]).await;
    let token = s.login(AGENT).await;
    let conv = s.create_conversation(&token).await;

    let mut slow = joined_client(&s.base, &token, &conv, Some(4096)).await;
    let mut fast = joined_client(&s.base, &token, &conv, None).await;
    // More than the kernel can buffer on loopback (send buffers grow to 4 MiB).
    let total = 2500usize;
    let reader = tokio::spawn(async move {
        let mut seen = 0;
        while seen < total {
            if next_text(&mut fast).await.starts_with("42[\"message:new\"") {
                seen += 1;
            }
        }
        seen
    });

    // Senders keep going at full speed while `slow` reads nothing.
    let big = "y".repeat(4000);
    s.send_many(&token, &conv, total, &big).await;
    let seen = tokio::time::timeout(Duration::from_secs(60), reader).await.expect("fast consumer kept up").unwrap();
    assert_eq!(seen, total);

    // Now read the slow one: what was buffered, then the close with its reason.
    let close = loop {
        match tokio::time::timeout(Duration::from_secs(30), slow.next()).await.expect("close in time") {
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(_)) => {}
            other => panic!("ended without a close frame: {other:?}"),
        }
    };
    let close = close.expect("close frame has a reason");
    assert_eq!(close.code, CloseCode::Policy);
    assert_eq!(close.reason.as_str(), "slow_consumer");
    let health: Value = s.http.get(s.url("/health/socket")).send().await.unwrap().json().await.unwrap();
    assert!(health["connections"]["droppedSlow"].as_u64().unwrap() >= 1, "{health}");
}

#[tokio::test]
async fn a_client_that_never_answers_pings_is_closed_with_ping_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    add_user(&data, AGENT.0, "agent", AGENT.1);
    let s = TestServer::start_on(&data, &[("UTALK_SOCKET__PING_INTERVAL_MS", "200"), ("UTALK_SOCKET__PING_TIMEOUT_MS", "300")]).await;
    let token = s.login(AGENT).await;
    let addr = s.base.trim_start_matches("http://").to_string();
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/socket.io/?EIO=4&transport=websocket")).await.unwrap();
    let open = match ws.next().await {
        Some(Ok(Message::Text(t))) => t.to_string(),
        other => panic!("{other:?}"),
    };
    let open: Value = serde_json::from_str(&open[1..]).unwrap();
    assert_eq!(open["pingInterval"], 200);
    assert_eq!(open["pingTimeout"], 300);
    ws.send(Message::text(format!("40{}", json!({ "token": token })))).await.unwrap();
    let started = std::time::Instant::now();
    let mut pings = 0;
    // Read everything, answer nothing.
    let close = loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await.expect("closed in time") {
            Some(Ok(Message::Text(t))) if t.as_str() == "2" => pings += 1,
            Some(Ok(Message::Close(frame))) => break frame.expect("reason"),
            Some(Ok(_)) => {}
            other => panic!("ended without a close frame: {other:?}"),
        }
    };
    assert_eq!(close.reason.as_str(), "ping_timeout");
    assert!(pings >= 1);
    assert!(started.elapsed() < Duration::from_secs(2), "closed after {:?}", started.elapsed());
}

/// Connects a websocket Socket.IO client and returns the frames that follow its CONNECT answer within `wait`.
async fn frames_after_connect(base: &str, token: &str, wait: Duration) -> Vec<String> {
    let addr: std::net::SocketAddr = base.trim_start_matches("http://").parse().unwrap();
    let stream = TcpSocket::new_v4().unwrap().connect(addr).await.unwrap();
    let (mut ws, _) = client_async(format!("ws://{addr}/socket.io/?EIO=4&transport=websocket"), stream).await.unwrap();
    assert!(next_text(&mut ws).await.starts_with("0{"));
    ws.send(Message::text(format!("40{}", json!({ "token": token })))).await.unwrap();
    assert!(next_text(&mut ws).await.starts_with("40{"));
    let mut out = Vec::new();
    while let Ok(t) = tokio::time::timeout(wait, next_text(&mut ws)).await {
        out.push(t);
    }
    out
}

#[tokio::test]
async fn sockets_hear_about_a_new_api_version_and_deprecated_routes_say_when_they_go() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    add_user(&data, ADMIN.0, "admin", ADMIN.1);
    {
        // The data directory last served an older API.
        let db = utalk_storage::Db::open(&data, &utalk_storage::DbOptions::default()).unwrap();
        let mut b = utalk_storage::Batch::new();
        b.put_raw(utalk_storage::Map::Meta, b"api_version".to_vec(), b"1.1.0".to_vec());
        db.write_group([&b], true).unwrap();
    }
    let config = dir.path().join("utalk.toml");
    std::fs::write(
        &config,
        "[[api.deprecations]]\nroute = \"/api/v1/conversations/{id}\"\ndeprecated = \"2026-11-01T00:00:00Z\"\nsunset = \"2027-06-30T00:00:00Z\"\nlink = \"https://docs.example.com/api/v2\"\n",
    )
    .unwrap();
    let mut s = TestServer::start_on(&data, &[("UTALK_CONFIG", config.to_str().unwrap())]).await;
    let admin = s.login(ADMIN).await;
    let frames = frames_after_connect(&s.base, &admin, Duration::from_millis(500)).await;
    let changes = frames.iter().find(|f| f.starts_with("42[\"api:changes\"")).unwrap_or_else(|| panic!("{frames:?}"));
    let v: Value = serde_json::from_str(&changes[2..]).unwrap();
    assert_eq!(v[1]["version"], utalk::http::api_version::API_VERSION);
    assert_eq!(v[1]["previous"], "1.1.0");
    assert!(v[1]["changes"].as_array().unwrap().len() >= 2, "what changed since 1.1.0: {v}");

    let conv = s.create_conversation(&admin).await;
    let r = s.http.get(s.url(&format!("/api/v1/conversations/{conv}"))).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["deprecation"], "@1793491200", "2026-11-01T00:00:00Z");
    assert_eq!(r.headers()["sunset"], "Wed, 30 Jun 2027 00:00:00 GMT");
    assert_eq!(r.headers()["link"], "<https://docs.example.com/api/v2>; rel=\"deprecation\"; type=\"text/html\"");
    let list = s.http.get(s.url("/api/v1/conversations")).bearer_auth(&admin).send().await.unwrap();
    assert!(list.headers().get("deprecation").is_none(), "other routes are not deprecated");

    // The next start is on the same version: nothing to announce.
    s.kill();
    let s = TestServer::start_on(&data, &[]).await;
    let admin = s.login(ADMIN).await;
    let frames = frames_after_connect(&s.base, &admin, Duration::from_millis(500)).await;
    assert!(!frames.iter().any(|f| f.contains("api:changes")), "{frames:?}");
}
