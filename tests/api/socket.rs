//! Socket.IO behaviour that needs control of the client's TCP socket.

use crate::helpers::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::time::Duration;
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{client_async, WebSocketStream};

type Ws = WebSocketStream<tokio::net::TcpStream>;

/// A websocket Socket.IO client, connected and joined to `conv`; `recv_buf` shrinks its TCP receive buffer.
async fn joined_client(base: &str, token: &str, conv: &str, recv_buf: Option<u32>) -> Ws {
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

async fn next_text(ws: &mut Ws) -> String {
    loop {
        match tokio::time::timeout(Duration::from_secs(30), ws.next()).await.expect("frame in time") {
            Some(Ok(Message::Text(t))) if t.as_str() == "2" => ws.send(Message::text("3")).await.unwrap(),
            Some(Ok(Message::Text(t))) => return t.to_string(),
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
    let s = TestServer::start_on(&data, &[("UTALK_SOCKET__MAX_QUEUED", "64")]).await;
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
    let sends = futures_util::stream::iter(0..total)
        .map(|_| {
            let (http, url, token, big) =
                (s.http.clone(), s.url(&format!("/api/v1/conversations/{conv}/messages")), token.clone(), big.clone());
            async move {
                http.post(url)
                    .bearer_auth(token)
                    .json(&json!({"messageId": uuid::Uuid::new_v4(), "text": big}))
                    .send()
                    .await
                    .unwrap()
                    .status()
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    assert!(sends.iter().all(|st| st.as_u16() == 201));
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
