//! Bounded memory per socket and in total: queue bytes, rejoins, replay bytes,
//! session caps and token expiry, against the real server.

use crate::helpers::*;
use crate::socket::{joined_client, next_text, Ws};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

/// A long-polling Engine.IO client speaking raw HTTP.
struct Polling {
    http: reqwest::Client,
    url: String,
}

impl Polling {
    /// Opens a session (the handshake GET) and returns it, or the refused response.
    async fn open(s: &TestServer) -> Result<Polling, reqwest::Response> {
        let r = s.http.get(s.url("/socket.io/?EIO=4&transport=polling")).send().await.unwrap();
        if r.status() != 200 {
            return Err(r);
        }
        let body = r.text().await.unwrap();
        assert!(body.starts_with("0{"), "{body}");
        let open: Value = serde_json::from_str(&body[1..]).unwrap();
        let sid = open["sid"].as_str().unwrap();
        Ok(Polling { http: s.http.clone(), url: s.url(&format!("/socket.io/?EIO=4&transport=polling&sid={sid}")) })
    }

    async fn post(&self, packets: &[String]) -> reqwest::Response {
        self.http.post(&self.url).body(packets.join("\u{1e}")).send().await.unwrap()
    }

    async fn poll(&self) -> reqwest::Response {
        self.http.get(&self.url).send().await.unwrap()
    }

    /// Sends CONNECT with `token` and reads its answer.
    async fn connect(&self, token: &str) {
        assert_eq!(self.post(&[format!("40{}", json!({ "token": token }))]).await.status(), 200);
        let body = self.poll().await.text().await.unwrap();
        assert!(body.starts_with("40{"), "{body}");
    }
}

fn join(ack: u64, payload: Value) -> String {
    format!("42{ack}{}", json!(["conversation:join", payload]))
}

/// Resident memory of process `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Emits an event with ack id `id` on a websocket client and waits for its ack, skipping other frames.
async fn ws_ack(ws: &mut Ws, id: u64, event: &str, payload: Value) -> Value {
    ws.send(Message::text(format!("42{id}{}", json!([event, payload])))).await.unwrap();
    let prefix = format!("43{id}[");
    loop {
        let t = next_text(ws).await;
        if let Some(rest) = t.strip_prefix(&prefix) {
            let v: Value = serde_json::from_str(&format!("[{rest}")).unwrap();
            return v[0].clone();
        }
    }
}

/// How much the server's resident memory may grow while one client floods
/// joins: that client's queue (`socket.max_queue_bytes`, 4 MiB) and one
/// replay being read and serialized, with room for the allocator and caches.
/// Re-sending the history per join would grow it by about 1 GiB.
const FLOOD_RSS_GROWTH_KIB: u64 = 96 * 1024;

#[tokio::test]
async fn a_polling_client_flooding_joins_without_polling_is_dropped_as_slow_and_memory_stays_bounded() {
    let s = TestServer::start().await;
    let token = s.login(AGENT).await;
    let conv = s.create_conversation(&token).await;
    s.send_many(&token, &conv, 500, &"x".repeat(2000)).await;

    // Another client keeps sending in its own conversation and times each ack.
    let other_conv = s.create_conversation(&token).await;
    let mut other = joined_client(&s.base, &token, &other_conv, None).await;
    let stop = Arc::new(AtomicBool::new(false));
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let sender = {
        let (stop, latencies, conv) = (stop.clone(), latencies.clone(), other_conv.clone());
        tokio::spawn(async move {
            let mut id = 10;
            while !stop.load(Ordering::Relaxed) {
                id += 1;
                let started = Instant::now();
                let payload = json!({"conversationId": conv, "messageId": uuid::Uuid::new_v4(), "text": "still here"});
                let ack = ws_ack(&mut other, id, "message:send", payload).await;
                assert_eq!(ack["ok"], true, "{ack}");
                latencies.lock().unwrap().push(started.elapsed());
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };

    let pid = s.child.id();
    let before = rss_kib(pid);
    let offender = Polling::open(&s).await.unwrap();
    offender.connect(&token).await;
    let joins: Vec<String> = (1..=1100).map(|i| join(i, json!({ "conversationId": conv }))).collect();
    assert_eq!(offender.post(&joins).await.status(), 200);

    // Watch memory while the server works through the joins and drops the client.
    let mut peak = before;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        peak = peak.max(rss_kib(pid));
        let health: Value = s.http.get(s.url("/health/socket")).send().await.unwrap().json().await.unwrap();
        if health["connections"]["droppedSlow"].as_u64() == Some(1) {
            break;
        }
        assert!(Instant::now() < deadline, "the flooding client was not dropped: {health}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for _ in 0..25 {
        peak = peak.max(rss_kib(pid));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("server RSS {before} KiB before the flood, {peak} KiB at most during it");
    assert!(peak < before + FLOOD_RSS_GROWTH_KIB, "RSS grew from {before} KiB to {peak} KiB");

    // Its next poll says why, and then the session is gone.
    let body = offender.poll().await.text().await.unwrap();
    assert!(body.contains(r#"42["session:closed",{"reason":"slow_consumer"}]"#), "{body}");
    assert!(body.ends_with("\u{1e}1"), "then the Engine.IO close: {body}");
    let gone = offender.poll().await;
    assert_eq!(gone.status(), 400);
    assert_eq!(gone.json::<Value>().await.unwrap()["message"], "Session ID unknown");

    stop.store(true, Ordering::Relaxed);
    sender.await.unwrap();
    let latencies = latencies.lock().unwrap().clone();
    assert!(latencies.len() >= 10, "the other client was answered {} times", latencies.len());
    let slowest = latencies.iter().max().unwrap();
    assert!(*slowest < Duration::from_secs(1), "the other client waited {slowest:?} for an ack");
}

#[tokio::test]
async fn a_rejoin_replays_only_when_asked_and_replays_are_bounded_in_bytes() {
    let s = TestServer::start_with(&[("UTALK_SOCKET__MAX_REPLAY_BYTES", "65536"), ("UTALK_SOCKET__MAX_QUEUE_BYTES", "131072")]).await;
    let token = s.login(AGENT).await;
    let conv = s.create_conversation(&token).await;
    s.send_many(&token, &conv, 100, &"x".repeat(2000)).await;

    let mut ws = crate::socket::joined_client(&s.base, &token, &s.create_conversation(&token).await, None).await;
    let first = ws_ack(&mut ws, 2, "conversation:join", json!({ "conversationId": conv })).await;
    assert_eq!((first["ok"].clone(), first["alreadyJoined"].clone(), first["hasMore"].clone()), (json!(true), json!(false), json!(true)));
    let page = first["messages"].as_array().unwrap();
    assert!(!page.is_empty() && page.len() < 100, "{} messages", page.len());
    assert!(first["messages"].to_string().len() <= 65536 + 8, "the replay is cut at 64 KiB");
    assert_eq!(first["lastSeq"], 100);

    // The same join again: already in the room, nothing is read or sent again.
    let again = ws_ack(&mut ws, 3, "conversation:join", json!({ "conversationId": conv })).await;
    assert_eq!(again["alreadyJoined"], true, "{again}");
    assert_eq!(again["messages"], json!([]));
    assert_eq!((again["lastSeq"].clone(), again["hasMore"].clone()), (json!(100), json!(false)));

    // `sinceSeq` asks for a replay: page through the rest.
    let mut seqs: Vec<u64> = page.iter().map(|m| m["seq"].as_u64().unwrap()).collect();
    let mut id = 4;
    loop {
        let since = *seqs.last().unwrap();
        let next = ws_ack(&mut ws, id, "conversation:join", json!({ "conversationId": conv, "sinceSeq": since })).await;
        id += 1;
        assert_eq!(next["alreadyJoined"], true);
        let items = next["messages"].as_array().unwrap();
        assert!(!items.is_empty(), "{next}");
        seqs.extend(items.iter().map(|m| m["seq"].as_u64().unwrap()));
        if next["hasMore"] == false {
            break;
        }
        assert!(id < 20, "paging does not end");
    }
    assert_eq!(seqs, (1..=100).collect::<Vec<u64>>());

    // A client that asks for replays and never polls fills its 128 KiB queue
    // with two of them, far below the packet bound, and is dropped.
    let greedy = Polling::open(&s).await.unwrap();
    greedy.connect(&token).await;
    let joins: Vec<String> = (1..=10).map(|i| join(i, json!({ "conversationId": conv, "sinceSeq": 0 }))).collect();
    assert_eq!(greedy.post(&joins).await.status(), 200);
    let body = greedy.poll().await.text().await.unwrap();
    assert!(body.contains(r#""reason":"slow_consumer""#), "{body}");
    assert!(body.len() < 140_000, "no more than the queue bound went out: {} bytes", body.len());
}

/// A websocket handshake's refusal: status and the body's error code.
async fn ws_refusal(s: &TestServer) -> (u16, String) {
    let addr = s.base.trim_start_matches("http://");
    match tokio_tungstenite::connect_async(format!("ws://{addr}/socket.io/?EIO=4&transport=websocket")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            let body: Value = serde_json::from_slice(resp.body().as_deref().unwrap_or_default()).unwrap();
            (resp.status().as_u16(), body["error"]["code"].as_str().unwrap().to_string())
        }
        other => panic!("websocket handshake not refused: {:?}", other.map(|_| ())),
    }
}

#[tokio::test]
async fn handshakes_beyond_the_session_caps_are_refused_with_too_many_sessions() {
    let s = TestServer::start_with(&[("UTALK_SOCKET__MAX_SESSIONS", "4"), ("UTALK_SOCKET__MAX_ANONYMOUS_SESSIONS_PER_IP", "2")]).await;
    let token = s.login(AGENT).await;
    let a = Polling::open(&s).await.unwrap();
    let b = Polling::open(&s).await.unwrap();
    // Two unauthenticated sessions from this address: a third is refused, on either transport.
    let refused = Polling::open(&s).await.err().expect("third anonymous session refused");
    assert!(refused.headers().get("retry-after").is_some());
    assert_eq!(TestServer::error_code(refused, 429).await, "too_many_sessions");
    assert_eq!(ws_refusal(&s).await, (429, "too_many_sessions".to_string()));

    // Authenticating gives the address its place back.
    a.connect(&token).await;
    let c = Polling::open(&s).await.unwrap();
    b.connect(&token).await;
    let _d = Polling::open(&s).await.unwrap();
    // Four sessions in all (a, b, c, d): the server is full for everyone.
    let full = Polling::open(&s).await.err().expect("fifth session refused");
    assert_eq!(TestServer::error_code(full, 503).await, "too_many_sessions");
    assert_eq!(ws_refusal(&s).await, (503, "too_many_sessions".to_string()));

    // A session that ends frees its place.
    assert_eq!(c.post(&["1".to_string()]).await.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match Polling::open(&s).await {
            Ok(_) => break,
            Err(r) => assert!(Instant::now() < deadline, "place not given back: {}", r.status()),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Nothing else was affected: a refused handshake changed nothing for the others.
    let health: Value = s.http.get(s.url("/health/socket")).send().await.unwrap().json().await.unwrap();
    assert_eq!(health["connections"]["connections"], 4, "{health}");
}

#[tokio::test]
async fn a_socket_whose_token_expires_is_told_token_expired_and_closed() {
    let s = TestServer::start_with(&[("UTALK_AUTH__ACCESS_TTL_SECS", "5")]).await;
    let token = s.login(AGENT).await;
    let issued = Instant::now();
    let conv = s.create_conversation(&token).await;
    let mut ws = joined_client(&s.base, &token, &conv, None).await;
    let polling = Polling::open(&s).await.unwrap();
    polling.connect(&token).await;
    let held = tokio::spawn(async move {
        // Long polls end with pings or presence events until the reason comes.
        loop {
            let body = polling.poll().await.text().await.unwrap();
            if body.contains("session:closed") {
                return body;
            }
            if body.split('\u{1e}').any(|p| p == "2") {
                assert_eq!(polling.post(&["3".to_string()]).await.status(), 200);
            }
        }
    });

    let mut told = false;
    let close = loop {
        match tokio::time::timeout(Duration::from_secs(15), ws.next()).await.expect("closed in time") {
            Some(Ok(Message::Text(t))) if t.as_str() == "2" => ws.send(Message::text("3")).await.unwrap(),
            Some(Ok(Message::Text(t))) => told |= t.as_str() == r#"42["session:closed",{"reason":"token_expired"}]"#,
            Some(Ok(Message::Close(frame))) => break frame.expect("a reason"),
            Some(Ok(_)) => {}
            other => panic!("ended without a close frame: {other:?}"),
        }
    };
    let after = issued.elapsed();
    assert!(told, "the session:closed event comes before the close");
    assert_eq!((close.code, close.reason.as_str()), (CloseCode::Policy, "token_expired"));
    assert!(after > Duration::from_secs(3) && after < Duration::from_secs(8), "closed {after:?} after the token was issued");

    let body = tokio::time::timeout(Duration::from_secs(10), held).await.expect("the poll ended").unwrap();
    assert_eq!(body, "42[\"session:closed\",{\"reason\":\"token_expired\"}]\u{1e}1");
}

/// Opens a websocket session and sends CONNECT with `auth`; returns the socket.
async fn ws_connect(s: &TestServer, auth: Value) -> Ws {
    let addr: std::net::SocketAddr = s.base.trim_start_matches("http://").parse().unwrap();
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(format!("ws://{addr}/socket.io/?EIO=4&transport=websocket"), stream).await.unwrap();
    assert!(next_text(&mut ws).await.starts_with("0{"));
    ws.send(Message::text(format!("40{auth}"))).await.unwrap();
    ws
}

#[tokio::test]
async fn a_recovery_replay_is_bounded_in_bytes_and_says_where_to_page_from() {
    let s = TestServer::start_with(&[("UTALK_SOCKET__MAX_REPLAY_BYTES", "65536"), ("UTALK_SOCKET__MAX_QUEUE_BYTES", "131072")]).await;
    let token = s.login(AGENT).await;
    let conv = s.create_conversation(&token).await;

    let mut first = ws_connect(&s, json!({ "token": token })).await;
    let answer = loop {
        let t = next_text(&mut first).await;
        if let Some(rest) = t.strip_prefix("40") {
            break serde_json::from_str::<Value>(rest).unwrap();
        }
    };
    let pid = answer["pid"].as_str().unwrap().to_string();
    let joined = ws_ack(&mut first, 1, "conversation:join", json!({ "conversationId": conv })).await;
    assert_eq!(joined["ok"], true);
    s.send_text(&token, &conv, "before the drop").await;
    let offset = loop {
        let t = next_text(&mut first).await;
        if t.starts_with("42[\"message:new\"") {
            let v: Value = serde_json::from_str(&t[2..]).unwrap();
            break v[2].as_str().unwrap().to_string();
        }
    };
    // The transport goes away without a goodbye: the session is kept for recovery.
    drop(first);
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.send_many(&token, &conv, 60, &"x".repeat(2000)).await;

    let mut back = ws_connect(&s, json!({ "token": token, "pid": pid, "offset": offset })).await;
    let (mut replayed, mut bytes, mut truncated) = (Vec::new(), 0, None);
    let answer = loop {
        let t = next_text(&mut back).await;
        if let Some(rest) = t.strip_prefix("40") {
            break serde_json::from_str::<Value>(rest).unwrap();
        }
        let v: Value = serde_json::from_str(&t[2..]).unwrap();
        match v[0].as_str() {
            Some("message:new") => {
                bytes += v[1].to_string().len();
                replayed.push(v[1]["message"]["seq"].as_u64().unwrap());
            }
            Some("replay:truncated") => truncated = Some(v[1].clone()),
            _ => {}
        }
    };
    assert_eq!(answer["pid"], pid.as_str(), "recovered");
    assert!(!replayed.is_empty() && replayed.len() < 60, "{} messages replayed", replayed.len());
    assert!(bytes <= 65536, "{bytes} bytes replayed");
    assert_eq!(replayed, (2..2 + replayed.len() as u64).collect::<Vec<u64>>());
    let truncated = truncated.expect("replay:truncated says the replay was cut");
    assert_eq!(truncated["conversationId"], conv.as_str());
    assert_eq!(truncated["sinceSeq"], *replayed.last().unwrap());

    // Paging from there brings the rest.
    let rest = ws_ack(&mut back, 1, "conversation:join", json!({ "conversationId": conv, "sinceSeq": truncated["sinceSeq"] })).await;
    assert_eq!(rest["messages"][0]["seq"], replayed.last().unwrap() + 1, "{}", rest["messages"][0]);
}
