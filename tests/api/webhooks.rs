//! Event webhooks as an integrator meets them: a subscription made by an
//! admin, signed deliveries in order with retries, a delivery log with
//! redelivery, a failing receiver disabled and audited, bad subscriptions
//! refused, and deliveries that survive a SIGKILL exactly for the changes
//! that were stored.

use crate::helpers::*;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Hit {
    headers: HashMap<String, String>,
    body: Vec<u8>,
    status: u16,
}

impl Hit {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or_default()
    }
}

/// A receiver answering from a script of statuses (then `default`).
#[derive(Clone)]
struct Receiver {
    url: String,
    hits: Arc<Mutex<Vec<Hit>>>,
    script: Arc<Mutex<VecDeque<u16>>>,
    default: Arc<Mutex<u16>>,
}

impl Receiver {
    async fn start(script: &[u16], default: u16) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let r = Receiver {
            url: format!("http://{}/hooks", listener.local_addr().unwrap()),
            hits: Arc::default(),
            script: Arc::new(Mutex::new(script.iter().copied().collect())),
            default: Arc::new(Mutex::new(default)),
        };
        let me = r.clone();
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(me.clone().serve(conn));
            }
        });
        r
    }

    fn set_default(&self, status: u16) {
        *self.default.lock().unwrap() = status;
    }

    fn delivered(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().iter().filter(|h| h.status == 200).cloned().collect()
    }

    async fn wait(&self, what: &str, pred: impl Fn(&[Hit]) -> bool) -> Vec<Hit> {
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            let hits = self.hits.lock().unwrap().clone();
            if pred(&hits) {
                return hits;
            }
            assert!(
                Instant::now() < until,
                "{what}: got {:?}",
                hits.iter().map(|h| (h.status, h.header("x-utalk-event"))).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn serve(self, mut conn: TcpStream) {
        let mut buf = Vec::new();
        loop {
            let Some((head, body)) = next_request(&mut conn, &mut buf).await else { return };
            let headers: HashMap<String, String> = head
                .lines()
                .skip(1)
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                .collect();
            let status = self.script.lock().unwrap().pop_front().unwrap_or(*self.default.lock().unwrap());
            self.hits.lock().unwrap().push(Hit { headers, body, status });
            let answer = format!("HTTP/1.1 {status} X\r\ncontent-length: 2\r\n\r\nok");
            if conn.write_all(answer.as_bytes()).await.is_err() {
                return;
            }
        }
    }
}

/// HMAC-SHA256 written out (RFC 2104), so the check does not share the server's code.
fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let inner: Vec<u8> = k.iter().map(|b| b ^ 0x36).chain(msg.iter().copied()).collect();
    let inner = Sha256::digest(&inner);
    let outer: Vec<u8> = k.iter().map(|b| b ^ 0x5c).chain(inner.iter().copied()).collect();
    Sha256::digest(&outer).into()
}

fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// What a receiver does (docs/webhooks.md): recompute over "<t>.<body>" and refuse stale times.
fn signed(h: &Hit, secret: &str) -> bool {
    signed_at(h, secret, unix_now())
}

/// [`signed`] on a receiver whose clock reads `now`.
fn signed_at(h: &Hit, secret: &str, now: i64) -> bool {
    let parts: HashMap<&str, &str> = h.header("x-utalk-signature").split(',').filter_map(|p| p.split_once('=')).collect();
    let (Some(t), Some(v1)) = (parts.get("t"), parts.get("v1")) else { return false };
    let Ok(t) = t.parse::<i64>() else { return false };
    let msg = [format!("{t}.").into_bytes(), h.body.clone()].concat();
    (now - t).abs() <= 300 && hex::encode(hmac_sha256(secret.as_bytes(), &msg)) == *v1
}

const FAST: &[(&str, &str)] = &[
    ("UTALK_WEBHOOKS__ALLOW_PRIVATE_TARGETS", "true"),
    ("UTALK_WEBHOOKS__BACKOFF_BASE_MS", "50"),
    ("UTALK_WEBHOOKS__BACKOFF_MAX_MS", "200"),
];

async fn subscribe(s: &TestServer, admin: &str, url: &str, events: &[&str]) -> Value {
    let r = s.http.post(s.url("/api/v1/webhooks")).bearer_auth(admin).json(&json!({"url": url, "events": events})).send().await.unwrap();
    assert_eq!(r.status(), 201);
    r.json().await.unwrap()
}

async fn send(s: &TestServer, token: &str, conv: &str, text: &str) -> reqwest::Response {
    s.http
        .post(s.url(&format!("/api/v1/conversations/{conv}/messages")))
        .bearer_auth(token)
        .json(&json!({"messageId": uuid::Uuid::new_v4(), "text": text}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn events_reach_a_subscriber_signed_in_order_retried_logged_and_redelivered() {
    let s = TestServer::start_with(FAST).await;
    let admin = s.login(ADMIN).await;
    let agent = s.login(AGENT).await;
    // The first two attempts are refused: the first delivery is retried and holds back the rest.
    let rx = Receiver::start(&[500, 503], 200).await;
    let events = ["conversation.created", "message.created", "conversation.assigned", "conversation.escalated", "conversation.closed"];
    let sub = subscribe(&s, &admin, &rx.url, &events).await;
    let secret = sub["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_") && secret.len() > 40, "{sub}");
    let id = sub["id"].as_str().unwrap().to_string();
    let listed = s.get_json("/api/v1/webhooks", &admin).await;
    assert_eq!(listed["items"][0]["id"], id.as_str());
    assert!(listed["items"][0].get("secret").is_none(), "the secret is shown once");
    assert!(!s.get_json(&format!("/api/v1/webhooks/{id}"), &admin).await.to_string().contains(&secret));

    let r = s.http.post(s.url("/api/v1/conversations")).bearer_auth(&agent).json(&json!({"channel": "web"})).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let conv = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    for i in 0..3 {
        assert_eq!(send(&s, &agent, &conv, &format!("hola {i}")).await.status(), 201);
    }
    let me = s.get_json("/api/v1/auth/me", &agent).await["id"].as_str().unwrap().to_string();
    let r = s
        .http
        .patch(s.url(&format!("/api/v1/conversations/{conv}")))
        .bearer_auth(&agent)
        .json(&json!({"assigneeId": me}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r =
        s.http.post(s.url(&format!("/api/v1/conversations/{conv}/escalate"))).bearer_auth(&agent).json(&json!({})).send().await.unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    let r = s
        .http
        .post(s.url(&format!("/api/v1/conversations/{conv}/close")))
        .bearer_auth(&agent)
        .json(&json!({"resolution": "resolved"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text().await);

    let types =
        |hits: &[Hit]| -> Vec<String> { hits.iter().filter(|h| h.status == 200).map(|h| h.header("x-utalk-event").to_string()).collect() };
    let hits = rx.wait("every event", |h| types(h).contains(&"conversation.closed".to_string())).await;
    // In the order the changes were made; the escalation's and closing's own system messages among them.
    let got = types(&hits);
    assert_eq!(got[0], "conversation.created", "{got:?}");
    assert_eq!(&got[1..4], ["message.created"; 3], "{got:?}");
    let pos = |t: &str| got.iter().position(|g| g == t).unwrap_or_else(|| panic!("{t} missing from {got:?}"));
    assert!(
        pos("conversation.assigned") < pos("conversation.escalated") && pos("conversation.escalated") < pos("conversation.closed"),
        "{got:?}"
    );
    assert!(!got.contains(&"conversation.updated".to_string()), "only what was asked for: {got:?}");
    let texts: Vec<String> = hits
        .iter()
        .filter(|h| h.status == 200 && h.header("x-utalk-event") == "message.created")
        .map(|h| h.json()["data"]["message"]["text"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(&texts[..3], ["hola 0", "hola 1", "hola 2"]);
    // Signed, self-describing, and the refused attempts were the same delivery, same bytes.
    for h in &hits {
        assert!(signed(h, &secret), "bad signature on {:?}", h.header("x-utalk-signature"));
        let b = h.json();
        assert_eq!(b["type"], h.header("x-utalk-event"));
        assert!(b["id"].is_string() && b["createdAt"].is_string() && b["data"].is_object(), "{b}");
    }
    // The same delivery replayed ten minutes later is refused by its timestamp; a tampered body by its HMAC.
    assert!(!signed_at(&hits[2], &secret, unix_now() + 600), "a replay is refused");
    let mut tampered = hits[2].clone();
    tampered.body.push(b' ');
    assert!(!signed(&tampered, &secret));
    assert_eq!((hits[0].status, hits[1].status, hits[2].status), (500, 503, 200));
    assert!(hits[..3].iter().all(|h| h.header("x-utalk-delivery") == hits[0].header("x-utalk-delivery") && h.body == hits[0].body));
    let first = hits[0].json();
    assert_eq!(first["data"]["conversation"]["id"], conv.as_str());
    // The delivery log: newest first, with attempts and the receiver's answer.
    // The closing's own system message may still be on its way: wait until nothing is pending.
    let until = Instant::now() + Duration::from_secs(30);
    let all = loop {
        let all = s.get_json(&format!("/api/v1/webhooks/{id}/deliveries?limit=200"), &admin).await["items"].as_array().unwrap().clone();
        if all.iter().all(|d| d["status"] == "delivered") && rx.delivered().len() == all.len() {
            break all;
        }
        assert!(Instant::now() < until, "deliveries still pending: {all:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let delivered = rx.delivered();
    let ids: HashSet<&str> = delivered.iter().map(|h| h.header("x-utalk-delivery")).collect();
    assert_eq!(ids.len(), delivered.len(), "each delivery taken once");
    assert_eq!(all.len(), delivered.len());
    let oldest = all.last().unwrap();
    assert_eq!(oldest["id"], hits[0].header("x-utalk-delivery"));
    assert_eq!(
        (oldest["status"].as_str(), oldest["attempts"].as_u64(), oldest["responseCode"].as_u64()),
        (Some("delivered"), Some(3), Some(200))
    );
    assert_eq!(oldest["event"], "conversation.created");
    let page = s.get_json(&format!("/api/v1/webhooks/{id}/deliveries?limit=1"), &admin).await;
    assert_eq!(page["items"][0]["id"], all[0]["id"]);
    let next =
        s.get_json(&format!("/api/v1/webhooks/{id}/deliveries?limit=1&cursor={}", page["nextCursor"].as_str().unwrap()), &admin).await;
    assert_eq!(next["items"][0]["id"], all[1]["id"]);

    // Redelivery: a new delivery of the same event, after everything queued.
    let oldest_id = oldest["id"].as_str().unwrap();
    let r =
        s.http.post(s.url(&format!("/api/v1/webhooks/{id}/deliveries/{oldest_id}/redeliver"))).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(r.status(), 202);
    let again: Value = r.json().await.unwrap();
    assert_eq!(again["redeliveryOf"], oldest_id);
    let hits = rx.wait("the redelivery", |h| h.iter().any(|h| h.header("x-utalk-delivery") == again["id"].as_str().unwrap())).await;
    let re = hits.iter().find(|h| h.header("x-utalk-delivery") == again["id"].as_str().unwrap()).unwrap();
    assert_eq!(re.json()["id"], first["id"], "the same event id, for receivers that dedupe on it");
    let missing = uuid::Uuid::now_v7();
    let r = s.http.post(s.url(&format!("/api/v1/webhooks/{id}/deliveries/{missing}/redeliver"))).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(TestServer::error_code(r, 404).await, "not_found");

    // A change that is refused queues nothing: escalating a closed conversation.
    let before = s.get_json(&format!("/api/v1/webhooks/{id}/deliveries?limit=200"), &admin).await["items"].as_array().unwrap().len();
    let r =
        s.http.post(s.url(&format!("/api/v1/conversations/{conv}/escalate"))).bearer_auth(&agent).json(&json!({})).send().await.unwrap();
    assert_eq!(r.status(), 409);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = s.get_json(&format!("/api/v1/webhooks/{id}/deliveries?limit=200"), &admin).await["items"].as_array().unwrap().len();
    assert_eq!(after, before);

    // Only admins see or change subscriptions.
    let r = s.http.get(s.url("/api/v1/webhooks")).bearer_auth(&agent).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let metrics = s.http.get(s.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("webhook_deliveries_total{outcome=\"retrying\"} 2"), "{metrics}");
}

#[tokio::test]
async fn bad_subscriptions_are_refused_and_change_nothing() {
    let s = TestServer::start_with(&[("UTALK_WEBHOOKS__MAX_SUBSCRIPTIONS", "2")]).await;
    let admin = s.login(ADMIN).await;
    let post = |body: Value| s.http.post(s.url("/api/v1/webhooks")).bearer_auth(&admin).json(&body).send();
    for (body, code) in [
        // The server's own network is off limits unless the operator allows it.
        (json!({"url": "http://127.0.0.1:9/x", "events": ["message.created"]}), "url_not_allowed"),
        (json!({"url": "http://169.254.169.254/latest", "events": ["message.created"]}), "url_not_allowed"),
        (json!({"url": "http://localhost:8080/x", "events": ["message.created"]}), "url_not_allowed"),
        (json!({"url": "ftp://example.com/x", "events": ["message.created"]}), "url_not_allowed"),
        (json!({"url": "https://u:p@example.com/x", "events": ["message.created"]}), "url_not_allowed"),
        (json!({"url": format!("https://example.com/{}", "a".repeat(3000)), "events": ["message.created"]}), "url_not_allowed"),
        (json!({"url": "https://example.com/x", "events": ["message.deleted"]}), "unknown_event"),
        (json!({"url": "https://example.com/x", "events": []}), "validation_failed"),
        (json!({"url": "https://example.com/x"}), "validation_failed"),
        (json!({"url": "https://example.com/x", "events": ["message.created"], "secret": "mine"}), "validation_failed"),
    ] {
        let r = post(body.clone()).await.unwrap();
        assert_eq!(TestServer::error_code(r, 422).await, code, "{body}");
    }
    assert_eq!(s.get_json("/api/v1/webhooks", &admin).await["items"].as_array().unwrap().len(), 0, "nothing was stored");
    let agent = s.login(AGENT).await;
    let r = s
        .http
        .post(s.url("/api/v1/webhooks"))
        .bearer_auth(&agent)
        .json(&json!({"url": "https://example.com/x", "events": ["message.created"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(TestServer::error_code(r, 403).await, "forbidden");

    let mut ids = Vec::new();
    for _ in 0..2 {
        let r = post(json!({"url": "https://example.com/x", "events": ["message.created", "message.created"]})).await.unwrap();
        assert_eq!(r.status(), 201);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["events"], json!(["message.created"]), "named once");
        ids.push(v["id"].as_str().unwrap().to_string());
    }
    let r = post(json!({"url": "https://example.com/y", "events": ["message.created"]})).await.unwrap();
    assert_eq!(TestServer::error_code(r, 409).await, "too_many_webhooks");
    assert_eq!(s.get_json("/api/v1/webhooks", &admin).await["items"].as_array().unwrap().len(), 2);

    let patch = |id: &str, body: Value| s.http.patch(s.url(&format!("/api/v1/webhooks/{id}"))).bearer_auth(&admin).json(&body).send();
    let r = patch(&ids[0], json!({})).await.unwrap();
    assert_eq!(TestServer::error_code(r, 422).await, "empty_change");
    let r = patch(&ids[0], json!({"url": "http://10.0.0.1/x"})).await.unwrap();
    assert_eq!(TestServer::error_code(r, 422).await, "url_not_allowed");
    assert_eq!(s.get_json(&format!("/api/v1/webhooks/{}", ids[0]), &admin).await["url"], "https://example.com/x");
    let r = patch(&ids[0], json!({"active": false, "events": ["alert.raised"]})).await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!((v["active"].as_bool(), v["events"].clone()), (Some(false), json!(["alert.raised"])));
    let r = s.http.delete(s.url(&format!("/api/v1/webhooks/{}", ids[1]))).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let r = s.http.get(s.url(&format!("/api/v1/webhooks/{}", ids[1]))).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(TestServer::error_code(r, 404).await, "not_found");
    let r = s.http.get(s.url("/api/v1/webhooks/not-a-uuid")).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(TestServer::error_code(r, 400).await, "invalid_path");
    let actions: Vec<String> = crate::access::audit(&s).into_iter().map(|(a, _)| a).filter(|a| a.starts_with("webhook.")).collect();
    assert_eq!(actions, ["webhook.create", "webhook.create", "webhook.update", "webhook.delete"]);
}

#[tokio::test]
async fn a_receiver_that_keeps_failing_is_given_up_then_its_subscription_disabled_and_audited() {
    let mut env = FAST.to_vec();
    env.extend([("UTALK_WEBHOOKS__RETRY_FOR_SECS", "1"), ("UTALK_WEBHOOKS__DISABLE_AFTER_SECS", "2")]);
    let s = TestServer::start_with(&env).await;
    let admin = s.login(ADMIN).await;
    let agent = s.login(AGENT).await;
    let rx = Receiver::start(&[], 500).await;
    let id = subscribe(&s, &admin, &rx.url, &["conversation.created"]).await["id"].as_str().unwrap().to_string();
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let r = s.http.post(s.url("/api/v1/conversations")).bearer_auth(&agent).json(&json!({"channel": "api"})).send().await.unwrap();
        assert_eq!(r.status(), 201);
        let w = s.get_json(&format!("/api/v1/webhooks/{id}"), &admin).await;
        if w["active"] == false {
            assert!(w["disabledReason"].as_str().unwrap().contains("failed for 2 s"), "{w}");
            assert!(w["failingSince"].is_string());
            break;
        }
        assert!(Instant::now() < until, "never disabled: {w}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let log = s.get_json(&format!("/api/v1/webhooks/{id}/deliveries?limit=200"), &admin).await["items"].as_array().unwrap().clone();
    let failed: Vec<&Value> = log.iter().filter(|d| d["status"] == "failed").collect();
    assert!(!failed.is_empty(), "a delivery past its retry period is failed: {log:?}");
    assert!(failed.iter().all(|d| d["responseCode"] == 500 && d["attempts"].as_u64() > Some(1) && d["lastError"].is_string()));
    assert!(crate::access::audit(&s).iter().any(|(a, t)| a == "webhook.disable" && t.starts_with(&id)));
    // While off, new events are not queued; on again, the failing streak starts afresh.
    let n = log.len();
    let r = s.http.post(s.url("/api/v1/conversations")).bearer_auth(&agent).json(&json!({"channel": "api"})).send().await.unwrap();
    assert_eq!(r.status(), 201);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(s.get_json(&format!("/api/v1/webhooks/{id}/deliveries?limit=200"), &admin).await["items"].as_array().unwrap().len(), n);
    rx.set_default(200);
    let r = s.http.patch(s.url(&format!("/api/v1/webhooks/{id}"))).bearer_auth(&admin).json(&json!({"active": true})).send().await.unwrap();
    let w: Value = r.json().await.unwrap();
    assert_eq!((w["active"].as_bool(), w["disabledReason"].is_null(), w["failingSince"].is_null()), (Some(true), true, true));
    let r = s.http.post(s.url("/api/v1/conversations")).bearer_auth(&agent).json(&json!({"channel": "api"})).send().await.unwrap();
    assert_eq!(r.status(), 201);
    rx.wait("a delivery after re-enabling", |h| h.iter().any(|h| h.status == 200)).await;
}

#[tokio::test]
async fn deliveries_survive_a_sigkill_and_exist_exactly_for_the_stored_changes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    add_user(&data, ADMIN.0, "admin", ADMIN.1);
    add_user(&data, AGENT.0, "agent", AGENT.1);
    let mut s = TestServer::start_on(&data, FAST).await;
    let admin = s.login(ADMIN).await;
    let agent = s.login(AGENT).await;
    // Down while the load runs: everything waits in the queue.
    let rx = Receiver::start(&[], 503).await;
    subscribe(&s, &admin, &rx.url, &["message.created"]).await;
    let mut convs = Vec::new();
    for _ in 0..4 {
        let r = s.http.post(s.url("/api/v1/conversations")).bearer_auth(&agent).json(&json!({"channel": "api"})).send().await.unwrap();
        convs.push(r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string());
    }
    let load = Load::start(&s, &agent, &convs, 16);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    s.kill();
    let acked = load.stop().await;
    assert!(acked.len() > 50, "the load ran: {}", acked.len());

    rx.set_default(200);
    let s = TestServer::start_on(&data, FAST).await;
    let agent = s.login(AGENT).await;
    let mut stored = HashSet::new();
    for conv in &convs {
        for m in s.messages(&agent, conv).await {
            stored.insert(m["id"].as_str().unwrap().to_string());
        }
    }
    for id in acked.keys() {
        assert!(stored.contains(id), "acknowledged message {id} lost");
    }
    let hits = rx
        .wait("a delivery for every stored message", |h| {
            h.iter()
                .filter(|h| h.status == 200)
                .map(|h| h.json()["data"]["message"]["id"].as_str().unwrap_or_default().to_string())
                .collect::<HashSet<_>>()
                .len()
                >= stored.len()
        })
        .await;
    let delivered: Vec<String> = hits
        .iter()
        .filter(|h| h.status == 200)
        .map(|h| h.json()["data"]["message"]["id"].as_str().unwrap_or_default().to_string())
        .collect();
    let unique: HashSet<String> = delivered.iter().cloned().collect();
    assert_eq!(unique, stored, "one event per stored message: none lost, none for a message that was not stored");
    // Per conversation, in seq order.
    for conv in &convs {
        let seqs: Vec<u64> = hits
            .iter()
            .filter(|h| h.status == 200)
            .map(|h| h.json())
            .filter(|b| b["data"]["conversation"]["id"] == conv.as_str())
            .map(|b| b["data"]["message"]["seq"].as_u64().unwrap())
            .collect();
        let mut sorted = seqs.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(seqs, sorted, "deliveries of {conv} out of order");
    }
}

#[tokio::test]
async fn alert_deliveries_queued_by_the_previous_version_go_out_through_the_alerts_subscription() {
    use utalk_storage::model::alert::{self, AlertEvent, WebhookDelivery};
    use utalk_storage::model::{Alert, AlertKind};
    use utalk_storage::{Batch, Db, DbOptions, Timestamp};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    add_user(&data, ADMIN.0, "admin", ADMIN.1);
    // What the previous version left in its queue when it stopped.
    let a = Alert::new(AlertKind::NegativeStock, uuid::Uuid::now_v7(), "Sucursal Sur", "PAN-1", -3, Timestamp::now());
    let old = WebhookDelivery {
        id: uuid::Uuid::now_v7(),
        event: AlertEvent::Raised,
        alert: a.clone(),
        store_name: "Sucursal Sur".into(),
        attempts: 4,
        next_attempt_at: Timestamp::now(),
        last_error: Some("receiver answered 503".into()),
    };
    {
        let db = Db::open(&data, &DbOptions::default()).unwrap();
        let mut b = Batch::new();
        alert::put_webhook(&mut b, &old).unwrap();
        db.write_group([&b], true).unwrap();
    }
    let rx = Receiver::start(&[], 200).await;
    let secret = "the-alerts-secret-0123456789";
    let s = TestServer::start_on(&data, &[("UTALK_ALERTS__WEBHOOK_URL", rx.url.as_str()), ("UTALK_ALERTS__WEBHOOK_SECRET", secret)]).await;
    let hits = rx.wait("the old delivery", |h| !h.is_empty()).await;
    let h = &hits[0];
    assert_eq!(h.header("x-utalk-delivery"), old.id.to_string(), "the same delivery id as queued");
    assert_eq!(h.header("x-utalk-event"), "alert.raised");
    assert!(signed(h, secret));
    let b = h.json();
    assert_eq!((b["type"].as_str(), b["data"]["alert"]["id"].as_str()), (Some("alert.raised"), Some(a.id.to_string().as_str())));
    assert_eq!(b["data"]["store"]["name"], "Sucursal Sur");
    // The settings are a subscription like any other, listed and logged.
    let admin = s.login(ADMIN).await;
    let subs = s.get_json("/api/v1/webhooks", &admin).await["items"].as_array().unwrap().clone();
    assert_eq!(subs.len(), 1);
    assert_eq!(subs[0]["createdBy"], Value::Null);
    assert_eq!(subs[0]["events"], json!(["alert.raised", "alert.acknowledged", "alert.resolved"]));
    assert!(s.log_text().contains("webhook_url is deprecated"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_cluster_each_event_is_delivered_once_whichever_node_made_it() {
    use crate::cluster_nodes::{
        cluster_add_user, create_conversation, http_client, login_polling, post_json, start_three, wait_spread, NODE_IDS,
    };
    let nats = crate::nats::Nats::start().await;
    let urls = nats.urls();
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let nodes = start_three(&urls, &dirs, FAST).await;
    let bases: Vec<String> = nodes.iter().map(|n| n.base.clone()).collect();
    let http = http_client();
    wait_spread(&http, &bases, &NODE_IDS, Duration::from_secs(60)).await;
    cluster_add_user(dirs[0].path(), &urls, ADMIN.0, "admin", ADMIN.1).await;
    let mut tokens = Vec::new();
    for base in &bases {
        tokens.push(login_polling(&http, base, ADMIN, Duration::from_secs(20)).await);
    }
    let rx = Receiver::start(&[], 200).await;
    let (status, sub) = post_json(
        &http,
        format!("{}/api/v1/webhooks", bases[0]),
        &tokens[0],
        json!({"url": rx.url, "events": ["conversation.created", "message.created"]}),
    )
    .await;
    assert_eq!(status, 201, "{sub}");
    // The other nodes' writers learn of the subscription within a second.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut convs = Vec::new();
    let mut sent = HashSet::new();
    for (i, base) in bases.iter().enumerate() {
        let conv = create_conversation(&http, base, &tokens[i]).await.unwrap();
        // Each conversation's messages through every node: forwarded to its owner.
        for (j, other) in bases.iter().enumerate() {
            let id = uuid::Uuid::new_v4().to_string();
            let (status, v) = post_json(
                &http,
                format!("{other}/api/v1/conversations/{conv}/messages"),
                &tokens[j],
                json!({"messageId": id, "text": "hola"}),
            )
            .await;
            assert_eq!(status, 201, "{v}");
            sent.insert(id);
        }
        convs.push(conv);
    }
    rx.wait("every event", |h| {
        h.iter().filter(|h| h.header("x-utalk-event") == "message.created").count() >= sent.len()
            && h.iter().filter(|h| h.header("x-utalk-event") == "conversation.created").count() >= convs.len()
    })
    .await;
    // Settle: a second sender would show up as duplicates now.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let hits = rx.hits.lock().unwrap().clone();
    let ids: Vec<&str> = hits.iter().map(|h| h.header("x-utalk-delivery")).collect();
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), ids.len(), "a delivery came twice");
    let messages: HashSet<String> = hits
        .iter()
        .filter(|h| h.header("x-utalk-event") == "message.created")
        .map(|h| h.json()["data"]["message"]["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(messages, sent);
    let opened: HashSet<String> = hits
        .iter()
        .filter(|h| h.header("x-utalk-event") == "conversation.created")
        .map(|h| h.json()["data"]["conversation"]["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(opened, convs.iter().cloned().collect::<HashSet<_>>());
    assert_eq!(hits.len(), sent.len() + convs.len(), "nothing else, nothing twice");
}
