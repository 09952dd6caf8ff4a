//! An integrator's round trip with API keys only: an `integration` key opens
//! an `api` conversation for its customer and posts the customer's messages
//! (idempotent by `messageId`); the bot's and the agent's replies come back
//! as `message.created` webhooks; escalation, closing and the rating work as
//! on other channels. The key reaches nothing but `api` conversations.

use crate::helpers::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

async fn make_key(s: &TestServer, admin: &str, name: &str, role: &str) -> String {
    let r = s.http.post(s.url("/api/v1/api-keys")).bearer_auth(admin).json(&json!({"name": name, "role": role})).send().await.unwrap();
    assert_eq!(r.status(), 201);
    r.json::<Value>().await.unwrap()["key"].as_str().unwrap().to_string()
}

/// A receiver that keeps every body it is sent (its own small HTTP server).
async fn receiver() -> (String, std::sync::Arc<std::sync::Mutex<Vec<Value>>>) {
    use tokio::io::AsyncWriteExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/events", listener.local_addr().unwrap());
    let got: std::sync::Arc<std::sync::Mutex<Vec<Value>>> = Default::default();
    let keep = got.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let keep = keep.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                while let Some((_, body)) = next_request(&mut conn, &mut buf).await {
                    if let Ok(v) = serde_json::from_slice(&body) {
                        keep.lock().unwrap().push(v);
                    }
                    if conn.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, got)
}

async fn wait_event(got: &std::sync::Mutex<Vec<Value>>, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = got.lock().unwrap().iter().find(|v| pred(v)) {
            return v.clone();
        }
        assert!(Instant::now() < until, "{what}: got {:?}", got.lock().unwrap().iter().map(|v| v["type"].clone()).collect::<Vec<_>>());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn an_integrator_speaks_for_its_customer_and_hears_every_reply_by_webhook() {
    let s = TestServer::start_with(&[("UTALK_WEBHOOKS__ALLOW_PRIVATE_TARGETS", "true")]).await;
    let admin_jwt = s.login(ADMIN).await;
    let admin_key = make_key(&s, &admin_jwt, "deploy", "admin").await;
    let key = make_key(&s, &admin_jwt, "shop backend", "integration").await;
    let (url, got) = receiver().await;
    let events = ["message.created", "conversation.escalated", "conversation.closed", "rating.created"];
    let r =
        s.http.post(s.url("/api/v1/webhooks")).bearer_auth(&admin_key).json(&json!({"url": url, "events": events})).send().await.unwrap();
    assert_eq!(r.status(), 201, "an admin key makes the subscription");

    let post = |path: String, body: Value| s.http.post(s.url(&path)).bearer_auth(&key).json(&body).send();
    let r = post("/api/v1/conversations".into(), json!({"channel": "api", "customer": {"name": "Ana", "email": "ana@example.com"}}))
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let conv = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    assert_eq!(s.http.get(s.url(&format!("/api/v1/conversations/{conv}"))).bearer_auth(&key).send().await.unwrap().status(), 200);

    // The customer's message, posted twice: stored once, as inbound from the customer.
    let mid = uuid::Uuid::new_v4();
    let first = post(format!("/api/v1/conversations/{conv}/messages"), json!({"messageId": mid, "text": "hola, ¿a qué hora abren?"}))
        .await
        .unwrap();
    assert_eq!(first.status(), 201);
    let m: Value = first.json().await.unwrap();
    assert_eq!((m["author"]["type"].as_str(), m["direction"].as_str()), (Some("customer"), Some("inbound")), "{m}");
    let again = post(format!("/api/v1/conversations/{conv}/messages"), json!({"messageId": mid, "text": "hola, ¿a qué hora abren?"}))
        .await
        .unwrap();
    assert_eq!(again.status(), 200, "the same messageId is the same message");

    // The bot answers first, and the integrator hears it by webhook.
    let from = |who: &'static str| move |v: &Value| v["type"] == "message.created" && v["data"]["message"]["author"]["type"] == who;
    let bot = wait_event(&got, "the bot's answer", from("bot")).await;
    assert_eq!(bot["data"]["conversation"]["id"], conv.as_str());
    assert_eq!(bot["data"]["conversation"]["channel"], "api");

    // The customer asks for a person: escalated, the bot paused.
    let r = post(format!("/api/v1/conversations/{conv}/escalate"), json!({"reason": "asked for a person"})).await.unwrap();
    assert_eq!(r.status(), 200);
    wait_event(&got, "conversation.escalated", |v| v["type"] == "conversation.escalated").await;

    // An agent answers; the integrator hears it.
    let agent = s.login(AGENT).await;
    let r = s
        .http
        .post(s.url(&format!("/api/v1/conversations/{conv}/messages")))
        .bearer_auth(&agent)
        .json(&json!({"messageId": uuid::Uuid::new_v4(), "text": "Abrimos a las 9."}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let reply = wait_event(&got, "the agent's reply", from("agent")).await;
    assert_eq!(reply["data"]["message"]["text"], "Abrimos a las 9.");

    // Closed and rated by the integrator's customer.
    let r = post(format!("/api/v1/conversations/{conv}/close"), json!({"resolution": "answered", "askRating": false})).await.unwrap();
    assert_eq!(r.status(), 200);
    wait_event(&got, "conversation.closed", |v| v["type"] == "conversation.closed").await;
    let r = post(format!("/api/v1/conversations/{conv}/rating"), json!({"csat": 5, "nps": 9})).await.unwrap();
    assert_eq!(r.status(), 200);
    let rating = wait_event(&got, "rating.created", |v| v["type"] == "rating.created" && v["data"]["rating"]["kind"] == "csat").await;
    assert_eq!((rating["data"]["rating"]["score"].as_u64(), rating["data"]["rating"]["source"].as_str()), (Some(5), Some("api")));
    wait_event(&got, "the NPS rating", |v| v["type"] == "rating.created" && v["data"]["rating"]["kind"] == "nps").await;
    let texts: Vec<String> = s.messages(&agent, &conv).await.iter().map(|m| m["text"].as_str().unwrap_or_default().to_string()).collect();
    assert_eq!(texts.iter().filter(|t| t.starts_with("hola")).count(), 1, "{texts:?}");
}

#[tokio::test]
async fn an_integration_key_reaches_only_api_conversations_and_only_keys_have_it() {
    let s = TestServer::start().await;
    let admin = s.login(ADMIN).await;
    let agent = s.login(AGENT).await;
    let key = make_key(&s, &admin, "shop backend", "integration").await;
    let r = s.http.post(s.url("/api/v1/conversations")).bearer_auth(&agent).json(&json!({"channel": "web"})).send().await.unwrap();
    let web = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();

    let r = s.http.post(s.url("/api/v1/conversations")).bearer_auth(&key).json(&json!({"channel": "web"})).send().await.unwrap();
    assert_eq!(TestServer::error_code(r, 403).await, "forbidden");
    for path in [
        format!("/api/v1/conversations/{web}"),
        format!("/api/v1/conversations/{web}/messages"),
        "/api/v1/conversations".into(),
        "/api/v1/users".into(),
        "/api/v1/webhooks".into(),
        "/api/v1/stores".into(),
    ] {
        let r = s.http.get(s.url(&path)).bearer_auth(&key).send().await.unwrap();
        assert_eq!(TestServer::error_code(r, 403).await, "forbidden", "{path}");
    }
    for (path, body) in [
        (format!("/api/v1/conversations/{web}/messages"), json!({"messageId": uuid::Uuid::new_v4(), "text": "hola"})),
        (format!("/api/v1/conversations/{web}/escalate"), json!({})),
        (format!("/api/v1/conversations/{web}/close"), json!({"resolution": "x"})),
        (format!("/api/v1/conversations/{web}/rating"), json!({"csat": 1})),
    ] {
        let r = s.http.post(s.url(&path)).bearer_auth(&key).json(&body).send().await.unwrap();
        assert_eq!(TestServer::error_code(r, 403).await, "forbidden", "{path}");
    }
    assert_eq!(s.messages(&agent, &web).await.len(), 0, "nothing was written");
    // A conversation that does not exist is not an api conversation either.
    let r = s.http.get(s.url(&format!("/api/v1/conversations/{}", uuid::Uuid::now_v7()))).bearer_auth(&key).send().await.unwrap();
    assert_eq!(r.status(), 403);
    // The role is for keys: a user cannot have it.
    let r = s
        .http
        .post(s.url("/api/v1/users"))
        .bearer_auth(&admin)
        .json(&json!({"email": "bot@example.com", "password": "a-long-password-1", "role": "integration"}))
        .send()
        .await
        .unwrap();
    assert_eq!(TestServer::error_code(r, 422).await, "invalid_role");
}
