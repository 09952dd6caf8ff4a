//! `/metrics` after traffic: each metric is there with the expected labels, and route labels are templates.

use crate::helpers::*;
use serde_json::json;

fn value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
}

#[tokio::test]
async fn metrics_after_traffic_carry_their_labels_and_route_templates() {
    let s = TestServer::start().await;
    let admin = s.login(ADMIN).await;
    let conv = s.create_conversation(&admin).await;
    for i in 0..3 {
        s.send_text(&admin, &conv, &format!("hola {i}")).await;
    }
    let missing = s.http.get(s.url(&format!("/api/v1/conversations/{}", uuid::Uuid::new_v4()))).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(s.http.get(s.url("/no/such/route")).send().await.unwrap().status(), 404);
    let bad = s.http.post(s.url("/api/v1/auth/login")).json(&json!({"email": ADMIN.0, "password": "wrong-password"})).send().await.unwrap();
    assert_eq!(bad.status(), 401);

    let text = s.http.get(s.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let series = [
        r#"http_requests_total{method="POST",route="/api/v1/conversations/{id}/messages",status="201"}"#,
        r#"http_requests_total{method="GET",route="/api/v1/conversations/{id}",status="404"}"#,
        r#"http_requests_total{method="GET",route="unmatched",status="404"}"#,
        r#"http_requests_total{method="POST",route="/api/v1/auth/login",status="401"}"#,
        r#"http_request_duration_seconds_count{method="POST",route="/api/v1/conversations/{id}/messages"}"#,
        // The latency objectives' thresholds are bucket edges (docs/slo.md).
        r#"http_request_duration_seconds_bucket{method="POST",route="/api/v1/conversations/{id}/messages",le="0.4"}"#,
        r#"http_request_duration_seconds_bucket{method="POST",route="/api/v1/conversations/{id}/messages",le="0.2"}"#,
        r#"messages_total{direction="outbound",author="agent"}"#,
        r#"conversations_total{channel="api"}"#,
        r#"user_sessions_total{role="admin"}"#,
        "login_failures_total",
        "http_requests_in_flight",
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "machine_memory_bytes",
        "rocksdb_pending_compaction_bytes",
        "rocksdb_write_stalled",
        "rocksdb_wal_syncs_total",
        r#"socket_connections_active{transport="websocket"}"#,
        "socket_connections_total",
        "memory_limit_bytes",
        "memory_used_ratio",
        "store_writer_up",
        "store_commit_duration_seconds_count",
        r#"filesystem_size_bytes{dir="data"}"#,
        r#"filesystem_avail_bytes{dir="backup"}"#,
        r#"active_users{kind="staff"}"#,
        r#"secret_age_seconds{secret="jwt"}"#,
        r#"secret_max_age_seconds{secret="jwt"}"#,
        r#"active_users{kind="customer"}"#,
    ];
    for name in series {
        assert!(value(&text, name).is_some(), "{name} missing from\n{text}");
    }
    assert_eq!(value(&text, series[0]), Some(3.0));
    assert_eq!(value(&text, r#"messages_total{direction="outbound",author="agent"}"#), Some(3.0));
    assert!(value(&text, "process_resident_memory_bytes").unwrap() > 1_000_000.0);
    assert!(value(&text, "machine_memory_bytes").unwrap() > value(&text, "process_resident_memory_bytes").unwrap());
    assert!(value(&text, "rocksdb_wal_syncs_total").unwrap() >= 1.0);
    assert!(value(&text, "memory_limit_bytes").unwrap() <= value(&text, "machine_memory_bytes").unwrap());
    let ratio = value(&text, "memory_used_ratio").unwrap();
    assert!(ratio > 0.0 && ratio < 1.0, "{ratio}");
    assert_eq!(value(&text, "store_writer_up"), Some(1.0));
    assert!(value(&text, r#"secret_age_seconds{secret="jwt"}"#).unwrap() < 600.0, "the key generated at start is young");
    assert_eq!(value(&text, r#"secret_max_age_seconds{secret="jwt"}"#), Some(90.0 * 86_400.0));
    assert!(value(&text, "store_commit_duration_seconds_count").unwrap() >= 1.0);
    // No raw path made a label of its own.
    assert!(!text.contains(&conv), "a conversation id leaked into a label");
    assert!(!text.contains("/no/such/route"));
}

/// The value of `series` in `/metrics` now.
async fn metric(s: &TestServer, series: &str) -> Option<f64> {
    value(&s.http.get(s.url("/metrics")).send().await.unwrap().text().await.unwrap(), series)
}

#[tokio::test]
async fn active_users_count_staff_online_and_customers_with_an_open_socket() {
    let s = TestServer::start().await;
    let (staff, customers) = (r#"active_users{kind="staff"}"#, r#"active_users{kind="customer"}"#);
    assert_eq!((metric(&s, staff).await, metric(&s, customers).await), (Some(0.0), Some(0.0)));
    let agent = s.login(AGENT).await;
    let conv = s.create_conversation(&agent).await;
    // One agent on two sockets is one staff member online.
    let _a = crate::socket::joined_client(&s.base, &agent, &conv, None).await;
    let _b = crate::socket::joined_client(&s.base, &agent, &conv, None).await;
    let mut widgets = Vec::new();
    for _ in 0..2 {
        let w: serde_json::Value =
            s.http.post(s.url("/api/v1/widget/sessions")).json(&json!({})).send().await.unwrap().json().await.unwrap();
        let (token, conv) = (w["token"].as_str().unwrap(), w["conversationId"].as_str().unwrap());
        widgets.push(crate::socket::joined_client(&s.base, token, conv, None).await);
    }
    assert_eq!((metric(&s, staff).await, metric(&s, customers).await), (Some(1.0), Some(2.0)));
    let mut gone = widgets.pop().unwrap();
    gone.close(None).await.unwrap();
    let started = std::time::Instant::now();
    while metric(&s, customers).await != Some(1.0) {
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "a closed widget socket still counts");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(metric(&s, staff).await, Some(1.0));
}
