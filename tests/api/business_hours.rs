//! Business hours through the real server: the bot says when people are
//! back, an escalation made while closed waits for the opening and is
//! assigned then, and `GET /api/v1/business-hours` shows the state.
//!
//! The server's clock is the real one: each test configures hours in UTC
//! relative to now (closed for days, or opening a few seconds after the
//! server starts), so nothing in the server is faked.

use crate::helpers::*;
use futures_util::SinkExt;
use serde_json::{json, Value};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio_tungstenite::tungstenite::Message;

const DAYS: [&str; 7] = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];
const DAYS_ES: [&str; 7] = ["lunes", "martes", "miércoles", "jueves", "viernes", "sábado", "domingo"];

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// Monday-first weekday of a UTC day number (1970-01-01 was a Thursday).
fn weekday(day: u64) -> usize {
    ((day + 3) % 7) as usize
}

fn clock(secs_of_day: u64) -> String {
    format!("{:02}:{:02}:{:02}", secs_of_day / 3600, secs_of_day / 60 % 60, secs_of_day % 60)
}

/// A widget customer's conversation: (token, conversation id).
async fn customer(s: &TestServer) -> (String, String) {
    let w: Value = s.http.post(s.url("/api/v1/widget/sessions")).json(&json!({})).send().await.unwrap().json().await.unwrap();
    (w["token"].as_str().unwrap().to_string(), w["conversationId"].as_str().unwrap().to_string())
}

/// The bot's messages in `conv`, waiting until there are at least `n`.
async fn bot_messages(s: &TestServer, token: &str, conv: &str, n: usize) -> Vec<String> {
    for _ in 0..200 {
        let texts: Vec<String> = s
            .messages(token, conv)
            .await
            .into_iter()
            .filter(|m| m["author"]["type"] == "bot")
            .filter_map(|m| m["text"].as_str().map(str::to_owned))
            .collect();
        if texts.len() >= n {
            return texts;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the bot did not answer {n} time(s) in {conv}");
}

/// A staff Socket.IO connection kept alive (pings answered) until dropped: the user counts as online.
async fn online(s: &TestServer, token: &str) -> tokio::task::JoinHandle<()> {
    let addr = s.base.trim_start_matches("http://").to_string();
    let stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(format!("ws://{addr}/socket.io/?EIO=4&transport=websocket"), stream).await.unwrap();
    assert!(crate::socket::next_text(&mut ws).await.starts_with("0{"));
    ws.send(Message::text(format!("40{}", json!({ "token": token })))).await.unwrap();
    assert!(crate::socket::next_text(&mut ws).await.starts_with("40{"));
    tokio::spawn(async move {
        loop {
            crate::socket::next_text(&mut ws).await;
        }
    })
}

#[tokio::test]
async fn outside_hours_the_bot_says_when_people_are_back_once_per_closed_period() {
    // Open only three days from now (UTC), 09:00-10:00: closed now.
    let today = now_secs() / 86_400;
    let open_day = weekday(today + 3);
    let s = TestServer::start_with(&[
        ("UTALK_BUSINESS_HOURS__TIMEZONE", "UTC"),
        (&format!("UTALK_BUSINESS_HOURS__{}", DAYS[open_day].to_uppercase()), "09:00-10:00"),
    ])
    .await;
    let admin = s.login(ADMIN).await;
    let state = s.get_json("/api/v1/business-hours", &admin).await;
    assert_eq!(
        (state["enabled"].as_bool(), state["open"].as_bool(), state["timezone"].as_str()),
        (Some(true), Some(false), Some("UTC")),
        "{state}"
    );
    let opens = (today + 3) * 86_400 + 9 * 3600;
    let expected = utalk_storage::Timestamp((opens * 1000) as i64).to_rfc3339();
    assert_eq!(state["nextOpening"], expected.as_str(), "{state}");
    assert_eq!(state["week"][DAYS[open_day]], json!(["09:00-10:00"]));
    assert!(state["closesAt"].is_null());

    let (token, conv) = customer(&s).await;
    // Customers may read it too (a widget can show it).
    assert_eq!(s.get_json("/api/v1/business-hours", &token).await["open"], false);
    s.send_text(&token, &conv, "Hola, buenos días").await;
    let first = bot_messages(&s, &token, &conv, 1).await;
    assert!(first[0].starts_with("¡Hola!"), "the answer itself comes first: {first:?}");
    let note = format!("Ahora estamos fuera de horario; nuestro equipo vuelve el {} a las 09:00 (UTC).", DAYS_ES[open_day]);
    assert!(first[0].ends_with(&note), "{first:?}");
    // Told once this closed period.
    s.send_text(&token, &conv, "gracias").await;
    let second = bot_messages(&s, &token, &conv, 2).await;
    assert!(!second[1].contains("fuera de horario"), "{second:?}");
    // Without a token: 401.
    assert_eq!(s.http.get(s.url("/api/v1/business-hours")).send().await.unwrap().status(), 401);
}

#[tokio::test]
async fn an_escalation_while_closed_waits_for_the_opening_and_is_assigned_then() {
    // Opens 15 s from now (UTC) until the end of that day (and on through the
    // first hour of the next, should the opening fall just before midnight).
    let opening = now_secs() + 15;
    let (day, secs) = (opening / 86_400, opening % 86_400);
    let open_key = format!("UTALK_BUSINESS_HOURS__{}", DAYS[weekday(day)].to_uppercase());
    let next_key = format!("UTALK_BUSINESS_HOURS__{}", DAYS[weekday(day + 1)].to_uppercase());
    let interval = format!("{}-24:00", clock(secs));
    let mut env = vec![("UTALK_BUSINESS_HOURS__TIMEZONE", "UTC"), (open_key.as_str(), interval.as_str())];
    if 86_400 - secs < 120 {
        env.push((next_key.as_str(), "00:00-01:00"));
    }
    let s = TestServer::start_with(&env).await;
    let admin = s.login(ADMIN).await;
    let state = s.get_json("/api/v1/business-hours", &admin).await;
    assert_eq!(state["open"], false, "the server took too long to start: {state}");

    // An agent is online, so only the hours keep the assignment back.
    let login: Value = s
        .http
        .post(s.url("/api/v1/auth/login"))
        .json(&json!({"email": AGENT.0, "password": AGENT.1}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let agent_id = login["user"]["id"].as_str().unwrap().to_string();
    let presence = online(&s, login["accessToken"].as_str().unwrap()).await;

    let (token, conv) = customer(&s).await;
    s.send_text(&token, &conv, "Quiero hablar con un agente, por favor").await;
    let handoff = bot_messages(&s, &token, &conv, 1).await;
    let when = if day == now_secs() / 86_400 { "hoy" } else { "mañana" };
    let opens_at = &clock(secs)[..5];
    assert!(handoff[0].contains("fuera de horario"), "{handoff:?}");
    assert!(handoff[0].ends_with(&format!("cuando abramos, {when} a las {opens_at} (UTC).")), "{handoff:?}");

    // Escalated at once, so the queue shows it, and not assigned while closed.
    let queue = s.get_json("/api/v1/conversations?status=escalated", &admin).await;
    assert!(queue["items"].as_array().unwrap().iter().any(|c| c["id"] == conv.as_str()), "{queue}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let c = s.get_json(&format!("/api/v1/conversations/{conv}"), &admin).await;
    assert!(now_secs() < opening, "the check ran after the opening");
    assert_eq!((c["status"].as_str(), c["assigneeId"].is_null()), (Some("escalated"), true), "{c}");

    // Assigned once it opens, to the agent online.
    let assigned = loop {
        let c = s.get_json(&format!("/api/v1/conversations/{conv}"), &admin).await;
        if !c["assigneeId"].is_null() {
            break c;
        }
        assert!(now_secs() < opening + 20, "not assigned 20 s after the opening: {c}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(now_secs() >= opening, "assigned before the opening");
    assert_eq!(assigned["assigneeId"], agent_id.as_str());
    assert_eq!(s.get_json("/api/v1/business-hours", &admin).await["open"], true);
    presence.abort();
}

#[tokio::test]
async fn without_business_hours_the_business_is_always_open() {
    let s = TestServer::start().await;
    let admin = s.login(ADMIN).await;
    let state = s.get_json("/api/v1/business-hours", &admin).await;
    assert_eq!((state["enabled"].as_bool(), state["open"].as_bool()), (Some(false), Some(true)), "{state}");
    assert!(state["timezone"].is_null() && state["nextOpening"].is_null() && state["closesAt"].is_null(), "{state}");
    let (token, conv) = customer(&s).await;
    s.send_text(&token, &conv, "hola").await;
    let answer = bot_messages(&s, &token, &conv, 1).await;
    assert!(!answer[0].contains("fuera de horario"), "{answer:?}");
    let v: Value = s.http.get(s.url("/api/v1/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert!(v["paths"]["/api/v1/business-hours"]["get"].is_object());
}
