use crate::helpers::*;
use serde_json::Value;

#[tokio::test]
async fn health_endpoints_answer_and_echo_a_sane_request_id() {
    let s = TestServer::start().await;
    let r = s.http.get(s.url("/health")).header("X-Request-ID", "trace-abc.123").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-request-id"], "trace-abc.123");
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "ok");

    let r = s.http.get(s.url("/health")).header("X-Request-ID", "bad id with spaces").send().await.unwrap();
    let rid = r.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_ne!(rid, "bad id with spaces");
    assert!(uuid::Uuid::parse_str(&rid).is_ok(), "a fresh UUID replaces an insane id: {rid}");

    let db: Value = s.http.get(s.url("/health/database")).send().await.unwrap().json().await.unwrap();
    assert_eq!(db["status"], "ok");
    assert_eq!(db["schemaVersion"], utalk_storage::SCHEMA_VERSION);
    assert_eq!(db["durability"], "sync");
    let sock = s.http.get(s.url("/health/socket")).send().await.unwrap();
    assert_eq!(sock.status(), 200);
    let cl: Value = s.http.get(s.url("/health/cluster")).send().await.unwrap().json().await.unwrap();
    assert_eq!(cl["mode"], "single");
    assert_eq!(cl["nodeId"], "local");
    assert_eq!(cl["ownedShards"].as_array().map(Vec::len), Some(64), "a single node owns every shard: {cl}");
    assert_eq!(cl["liveNodes"], serde_json::json!(["local"]));
    assert!(cl["nats"].is_null());
}

#[tokio::test]
async fn unknown_routes_get_the_error_shape() {
    let s = TestServer::start().await;
    let r = s.http.get(s.url("/api/v1/nope")).send().await.unwrap();
    assert_eq!(TestServer::error_code(r, 404).await, "route_not_found");
}

#[tokio::test]
async fn the_openapi_document_lists_the_routes() {
    let s = TestServer::start().await;
    let v: Value = s.http.get(s.url("/api/v1/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert!(v["openapi"].as_str().unwrap().starts_with('3'));
    let paths = v["paths"].as_object().unwrap();
    for p in [
        "/api/v1/auth/login",
        "/api/v1/auth/refresh",
        "/api/v1/widget/sessions",
        "/api/v1/conversations",
        "/api/v1/conversations/{id}",
        "/api/v1/conversations/{id}/messages",
        "/health",
    ] {
        assert!(paths.contains_key(p), "missing {p}");
    }
    assert!(v["components"]["schemas"]["Message"].is_object());
}

#[tokio::test]
async fn logs_are_json_with_service_fields_and_request_ids_but_no_secrets() {
    let s = TestServer::start().await;
    let login = s
        .http
        .post(s.url("/api/v1/auth/login"))
        .header("X-Request-ID", "login-req-1")
        .json(&serde_json::json!({"email": ADMIN.0, "password": ADMIN.1}))
        .send()
        .await
        .unwrap();
    let body: Value = login.json().await.unwrap();
    let access = body["accessToken"].as_str().unwrap().to_string();
    let refresh = body["refreshToken"].as_str().unwrap().to_string();
    let _ = s.http.post(s.url("/api/v1/auth/refresh")).json(&serde_json::json!({"refreshToken": refresh})).send().await.unwrap();
    let _ = s
        .http
        .post(s.url("/api/v1/auth/login"))
        .json(&serde_json::json!({"email": ADMIN.0, "password": "wrong-password-x"}))
        .send()
        .await
        .unwrap();
    let _ = s.http.get(s.url("/health")).header("X-Request-ID", "health-req-1").send().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let text = s.log_text();
    assert!(!text.contains(ADMIN.1), "password in logs");
    assert!(!text.contains(&access), "access token in logs");
    assert!(!text.contains(&refresh), "refresh token in logs");
    assert!(!text.contains("health-req-1"), "health requests are not logged");
    let line: Value = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["request_id"] == "login-req-1")
        .expect("the login request is logged with its request id");
    assert_eq!(line["service"], "utalk");
    assert_eq!(line["version"], env!("CARGO_PKG_VERSION"));
    assert!(line["environment"].is_string());
    assert_eq!(line["status"], 200);
}

#[tokio::test]
async fn the_log_file_rotates_by_size_and_keeps_the_configured_number() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    add_user(&data, ADMIN.0, "admin", ADMIN.1);
    let log = dir.path().join("logs/utalk.log");
    let s = TestServer::start_on(
        &data,
        &[("UTALK_LOG_FILE__PATH", log.to_str().unwrap()), ("UTALK_LOG_FILE__MAX_BYTES", "4096"), ("UTALK_LOG_FILE__KEEP", "2")],
    )
    .await;
    let admin = s.login(ADMIN).await;
    for _ in 0..60 {
        let r = s.http.get(s.url("/api/v1/conversations")).bearer_auth(&admin).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(s.http.get(s.url("/health")).send().await.unwrap().status(), 200);
    }
    let numbered = |n: usize| dir.path().join(format!("logs/utalk.log.{n}"));
    let mut files = vec![log.clone(), numbered(1), numbered(2)];
    for _ in 0..50 {
        if files.iter().all(|f| f.exists()) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(!numbered(3).exists(), "only two rotated files are kept");
    let mut text = String::new();
    for f in files.drain(..) {
        let t = std::fs::read_to_string(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        assert!(t.len() <= 4096, "{} is {} bytes", f.display(), t.len());
        text.push_str(&t);
    }
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let requests: Vec<&serde_json::Value> = lines.iter().filter(|l| l["path"] == "/api/v1/conversations").collect();
    assert!(!requests.is_empty() && requests.iter().all(|l| l["request_id"].is_string() && l["service"] == "utalk"));
    assert!(!text.contains("\"path\":\"/health\""), "health checks are not logged");
    assert!(!text.contains(ADMIN.1), "no password in the log");
}

#[tokio::test]
async fn log_lines_say_who_leave_monitors_out_trace_each_socket_message_and_errors_have_their_own_file() {
    use futures_util::SinkExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    add_user(&data, AGENT.0, "agent", AGENT.1);
    // An erasure ledger that cannot be read: the server logs an error at start, and goes on.
    std::fs::create_dir_all(dir.path().join("data-backups/erasures.jsonl")).unwrap();
    let log = dir.path().join("logs/utalk.log");
    let s = TestServer::start_on(&data, &[("UTALK_LOG_FILE__PATH", log.to_str().unwrap())]).await;
    let agent = s.login(AGENT).await;
    let me = s.get_json("/api/v1/auth/me", &agent).await["id"].as_str().unwrap().to_string();
    let get = |ua: &'static str| {
        let (s, agent) = (&s, agent.clone());
        async move { s.http.get(s.url("/api/v1/conversations")).header("user-agent", ua).bearer_auth(&agent).send().await.unwrap().status() }
    };
    assert_eq!(get("curl/8.5.0").await, 200);
    assert_eq!(get("kube-probe/1.29").await, 200);
    // A message over the socket: received, then processed.
    let conv = s.create_conversation(&agent).await;
    let mut ws = crate::socket::joined_client(&s.base, &agent, &conv, None).await;
    let message_id = uuid::Uuid::new_v4().to_string();
    let send = serde_json::json!(["message:send", {"conversationId": conv, "messageId": message_id, "text": "hola"}]);
    ws.send(tokio_tungstenite::tungstenite::Message::text(format!("427{send}"))).await.unwrap();
    while !crate::socket::next_text(&mut ws).await.starts_with("437[") {}

    let errors = dir.path().join("logs/utalk.error.log");
    let read = |p: &std::path::Path| -> Vec<serde_json::Value> {
        std::fs::read_to_string(p).unwrap_or_default().lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
    };
    let mut lines = Vec::new();
    for _ in 0..50 {
        lines = read(&log);
        if lines.iter().any(|l| l["message"] == "message processed") && !read(&errors).is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let requests: Vec<&serde_json::Value> = lines.iter().filter(|l| l["path"] == "/api/v1/conversations" && l["method"] == "GET").collect();
    assert_eq!(requests.len(), 1, "the monitoring agent's request is left out: {requests:?}");
    let r = requests[0];
    assert_eq!(
        (r["user_id"].as_str(), r["user_agent"].as_str(), r["client_ip"].as_str()),
        (Some(me.as_str()), Some("curl/8.5.0"), Some("127.0.0.1")),
        "{r}"
    );
    for what in ["message received", "message processed"] {
        let l = lines.iter().find(|l| l["message"] == what).unwrap_or_else(|| panic!("no `{what}` line"));
        assert_eq!(
            (l["message_id"].as_str(), l["conversation_id"].as_str(), l["user_id"].as_str()),
            (Some(message_id.as_str()), Some(conv.as_str()), Some(me.as_str())),
            "{l}"
        );
        assert!(l["sid"].is_string() && l["level"] == "INFO", "{l}");
    }
    assert_eq!(lines.iter().find(|l| l["message"] == "message processed").unwrap()["outcome"], "created");
    // The error file holds the errors, and only them; the combined file has them too.
    let errs = read(&errors);
    assert!(errs.iter().any(|l| l["message"].as_str().is_some_and(|m| m.contains("erasure ledger"))), "{errs:?}");
    assert!(errs.iter().all(|l| l["level"] == "ERROR"), "{errs:?}");
    assert!(lines.iter().any(|l| l["message"].as_str().is_some_and(|m| m.contains("erasure ledger"))));
}
