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
