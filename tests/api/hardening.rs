//! What an anonymous client can make the server spend: login attempts,
//! forwarded addresses, metric labels.

use crate::helpers::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Duration;

fn rss_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.trim().strip_suffix("kB")?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} missing in /proc/{pid}/status"))
}

async fn login_from(s: &TestServer, email: &str, password: &str, forwarded_for: Option<&str>) -> reqwest::Response {
    let mut r = s.http.post(s.url("/api/v1/auth/login")).json(&json!({"email": email, "password": password}));
    if let Some(ip) = forwarded_for {
        r = r.header("x-forwarded-for", ip);
    }
    r.send().await.unwrap()
}

#[tokio::test]
async fn concurrent_wrong_passwords_get_at_most_the_limit_then_429_and_cost_little_memory() {
    // A short window, so that the right password can be shown to work again.
    let s = TestServer::start_with(&[("UTALK_AUTH__FAILURE_WINDOW_SECS", "4")]).await;
    // Warm up: one right login (the argon2 threads, the connection pool).
    s.login(ADMIN).await;
    let pid = s.child.id();
    let before = rss_kib(pid, "VmRSS:");
    let client = reqwest::Client::builder().pool_max_idle_per_host(0).timeout(Duration::from_secs(60)).build().unwrap();
    let started = std::time::Instant::now();
    let tasks: Vec<_> = (0..400)
        .map(|_| {
            let (client, url) = (client.clone(), s.url("/api/v1/auth/login"));
            tokio::spawn(async move {
                let r = client.post(url).json(&json!({"email": ADMIN.0, "password": "wrong-password-1"})).send().await.unwrap();
                let status = r.status().as_u16();
                let retry_after = r.headers().contains_key("retry-after");
                let code = r.json::<Value>().await.unwrap()["error"]["code"].as_str().unwrap_or_default().to_string();
                (status, retry_after, code)
            })
        })
        .collect();
    let mut unauthorized = 0;
    for t in tasks {
        let (status, retry_after, code) = t.await.unwrap();
        match status {
            401 => unauthorized += 1,
            429 => {
                assert!(retry_after, "a 429 says when to retry");
                assert!(code == "too_many_attempts" || code == "server_busy", "{code}");
            }
            other => panic!("unexpected status {other} ({code})"),
        }
    }
    let peak = rss_kib(pid, "VmHWM:");
    eprintln!("400 wrong logins at once: {unauthorized} answers of 401; RSS {before} KiB before, peak {peak} KiB");
    assert!(unauthorized <= 5, "{unauthorized} attempts were checked; the limit is 5");
    assert!(unauthorized >= 1, "some attempts were checked");
    assert!(peak.saturating_sub(before) < 200 * 1024, "RSS rose from {before} KiB to a peak of {peak} KiB");
    // The right password is refused while the account is throttled...
    assert_eq!(TestServer::error_code(login_from(&s, ADMIN.0, ADMIN.1, None).await, 429).await, "too_many_attempts");
    // ...and works again once the window (4 s here) has passed.
    let wait = Duration::from_secs(5).saturating_sub(started.elapsed());
    tokio::time::sleep(wait).await;
    assert_eq!(login_from(&s, ADMIN.0, ADMIN.1, None).await.status(), 200);
}

#[tokio::test]
async fn over_long_emails_and_passwords_are_refused_before_any_work() {
    let s = TestServer::start().await;
    let long_email = format!("{}@example.com", "a".repeat(300));
    let r = login_from(&s, &long_email, "whatever-password", None).await;
    assert_eq!(TestServer::error_code(r, 422).await, "validation_failed");
    let r = login_from(&s, ADMIN.0, &"p".repeat(10_000), None).await;
    assert_eq!(TestServer::error_code(r, 422).await, "validation_failed");
    // Neither counted against the account: five wrong passwords still get 401.
    for _ in 0..5 {
        assert_eq!(login_from(&s, ADMIN.0, "wrong-password-1", None).await.status(), 401);
    }
}

#[tokio::test]
async fn behind_a_trusted_proxy_one_clients_failures_do_not_block_another() {
    let s = TestServer::start_with(&[("UTALK_HTTP__TRUSTED_PROXIES", "[\"127.0.0.1\"]")]).await;
    // 20 wrong logins (the per-address limit) from one client behind the proxy,
    // spread over accounts so that no account reaches its own limit.
    for i in 0..20 {
        let r = login_from(&s, &format!("guess{}@example.com", i % 5), "wrong-password", Some("203.0.113.7")).await;
        assert_eq!(r.status(), 401);
    }
    let r = login_from(&s, ADMIN.0, ADMIN.1, Some("203.0.113.7")).await;
    assert_eq!(TestServer::error_code(r, 429).await, "too_many_attempts", "the attacker's own address is blocked");
    // Another client behind the same proxy logs in.
    assert_eq!(login_from(&s, ADMIN.0, ADMIN.1, Some("198.51.100.9")).await.status(), 200);
    // A client cannot pose as another by writing the header itself: the proxy
    // appends what it saw, and the rightmost untrusted hop is the client.
    let r = login_from(&s, AGENT.0, AGENT.1, Some("198.51.100.9, 203.0.113.7")).await;
    assert_eq!(TestServer::error_code(r, 429).await, "too_many_attempts");
    // The address is in the request's log lines.
    assert!(s.log_text().contains("203.0.113.7"), "the client's address is logged");
}

#[tokio::test]
async fn without_trusted_proxies_forwarding_headers_are_ignored() {
    let s = TestServer::start().await;
    for i in 0..20 {
        let r = login_from(&s, &format!("guess{}@example.com", i % 5), "wrong-password", Some(&format!("203.0.113.{i}"))).await;
        assert_eq!(r.status(), 401);
    }
    // Each made-up address was not a new client: the peer is blocked.
    let r = login_from(&s, ADMIN.0, ADMIN.1, Some("198.51.100.9")).await;
    assert_eq!(TestServer::error_code(r, 429).await, "too_many_attempts");
}

#[tokio::test]
async fn made_up_http_methods_add_at_most_one_method_label() {
    let s = TestServer::start().await;
    let paths = ["/health", "/api/v1/conversations", "/nowhere"];
    let sent: Vec<_> = (0..10_000usize)
        .collect::<Vec<_>>()
        .chunks(250)
        .map(|chunk| {
            let (http, base, chunk) = (s.http.clone(), s.base.clone(), chunk.to_vec());
            tokio::spawn(async move {
                for i in chunk {
                    let method = reqwest::Method::from_bytes(format!("X{i}M").as_bytes()).unwrap();
                    let r = http.request(method, format!("{base}{}", paths[i % paths.len()])).send().await.unwrap();
                    assert!(r.status().is_client_error(), "{}", r.status());
                }
            })
        })
        .collect();
    for t in sent {
        t.await.unwrap();
    }
    let text = s.http.get(s.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let methods: BTreeSet<&str> =
        text.lines().filter(|l| !l.starts_with('#')).filter_map(|l| l.split("method=\"").nth(1)?.split('"').next()).collect();
    let standard = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "CONNECT", "TRACE"];
    let new: Vec<&&str> = methods.iter().filter(|m| !standard.contains(m)).collect();
    assert!(new.len() <= 1, "method labels beyond the standard ones: {} (first: {:?})", new.len(), new.first());
    assert!(methods.contains("other"), "made-up methods are counted as `other`: {methods:?}");
    // The server still serves.
    s.login(ADMIN).await;
}

#[tokio::test]
async fn a_transaction_for_a_store_that_does_not_exist_is_404_and_leaves_no_trace() {
    let s = TestServer::start().await;
    let token = s.login(ADMIN).await;
    let ghost = uuid::Uuid::new_v4().to_string();
    // Invalid in every other way too: the missing store is what is answered.
    for body in [
        json!({"transactionId": uuid::Uuid::new_v4(), "storeId": ghost, "sku": "", "type": "SALE", "quantity": -3}),
        json!({"transactionId": uuid::Uuid::new_v4(), "storeId": ghost, "sku": "CAFE-500", "type": "SALE", "quantity": 0}),
        json!({"transactionId": uuid::Uuid::new_v4(), "storeId": ghost, "sku": "CAFE-500", "type": "PURCHASE", "quantity": 5}),
    ] {
        let r = s.http.post(s.url("/api/v1/inventory/transactions")).bearer_auth(&token).json(&body).send().await.unwrap();
        assert_eq!(TestServer::error_code(r, 404).await, "store_not_found", "{body}");
    }
    let text = s.http.get(s.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(!text.contains(&ghost), "the made-up store id became a metric label");
    let report = s.get_json("/api/v1/reports/inventory", &token).await;
    assert!(!report.to_string().contains(&ghost), "the made-up store id was stored: {report}");
}
