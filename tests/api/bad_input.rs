//! Bad input gets the documented status and error body, changes nothing, and the server keeps serving.

use crate::helpers::*;
use serde_json::{json, Value};

#[tokio::test]
async fn each_bad_send_gets_its_status_and_changes_nothing() {
    let s = TestServer::start().await;
    let agent = s.login(AGENT).await;
    let readonly = s.login(READONLY).await;
    let conv = s.create_conversation(&agent).await;
    let url = s.url(&format!("/api/v1/conversations/{conv}/messages"));
    s.http.post(&url).bearer_auth(&agent).json(&json!({"messageId": uuid::Uuid::new_v4(), "text": "before"})).send().await.unwrap();

    let cases: Vec<(&str, reqwest::RequestBuilder, u16, &str)> = vec![
        (
            "malformed JSON",
            s.http.post(&url).bearer_auth(&agent).header("content-type", "application/json").body("{\"messageId\": "),
            400,
            "malformed_json",
        ),
        ("missing messageId", s.http.post(&url).bearer_auth(&agent).json(&json!({"text": "no id"})), 422, "validation_failed"),
        (
            "messageId not a UUID",
            s.http.post(&url).bearer_auth(&agent).json(&json!({"messageId": "abc", "text": "x"})),
            422,
            "validation_failed",
        ),
        (
            "no text nor media",
            s.http.post(&url).bearer_auth(&agent).json(&json!({"messageId": uuid::Uuid::new_v4()})),
            422,
            "empty_message",
        ),
        (
            "text too long",
            s.http.post(&url).bearer_auth(&agent).json(&json!({"messageId": uuid::Uuid::new_v4(), "text": "x".repeat(5000)})),
            422,
            "text_too_long",
        ),
        (
            "2 MiB body",
            s.http.post(&url).bearer_auth(&agent).json(&json!({"messageId": uuid::Uuid::new_v4(), "text": "x".repeat(2 << 20)})),
            413,
            "payload_too_large",
        ),
        (
            "not JSON",
            s.http.post(&url).bearer_auth(&agent).header("content-type", "text/plain").body("hello"),
            415,
            "unsupported_media_type",
        ),
        ("no token", s.http.post(&url).json(&json!({"messageId": uuid::Uuid::new_v4(), "text": "x"})), 401, "missing_token"),
        (
            "not a bearer",
            s.http.post(&url).header("authorization", "Basic abc").json(&json!({"messageId": uuid::Uuid::new_v4(), "text": "x"})),
            401,
            "missing_token",
        ),
        (
            "tampered token",
            s.http.post(&url).bearer_auth(tamper(&agent)).json(&json!({"messageId": uuid::Uuid::new_v4(), "text": "x"})),
            401,
            "invalid_token",
        ),
        (
            "garbage token",
            s.http.post(&url).bearer_auth("a.b.c").json(&json!({"messageId": uuid::Uuid::new_v4(), "text": "x"})),
            401,
            "invalid_token",
        ),
        (
            "readonly user",
            s.http.post(&url).bearer_auth(&readonly).json(&json!({"messageId": uuid::Uuid::new_v4(), "text": "x"})),
            403,
            "forbidden",
        ),
        (
            "unknown field",
            s.http.post(&url).bearer_auth(&agent).json(&json!({"messageId": uuid::Uuid::new_v4(), "text": "x", "seq": 99})),
            422,
            "validation_failed",
        ),
    ];
    for (name, req, status, code) in cases {
        let r = req.send().await.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(r.status().as_u16(), status, "{name}");
        assert_eq!(TestServer::error_code(r, status).await, code, "{name}");
        assert_eq!(s.last_seq(&agent, &conv).await, 1, "{name} changed the conversation");
    }
    // Still serving.
    let r = s.http.post(&url).bearer_auth(&agent).json(&json!({"messageId": uuid::Uuid::new_v4(), "text": "after"})).send().await.unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.json::<Value>().await.unwrap()["seq"], 2);
}

#[tokio::test]
async fn an_expired_token_is_refused_with_its_own_code() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    add_user(&data, AGENT.0, "agent", AGENT.1);
    let s = TestServer::start_on(&data, &[("UTALK_AUTH__ACCESS_TTL_SECS", "1")]).await;
    let token = s.login(AGENT).await;
    // Past the lifetime plus the verifier's leeway.
    tokio::time::sleep(std::time::Duration::from_secs(7)).await;
    let r = s.http.get(s.url("/api/v1/conversations")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(TestServer::error_code(r, 401).await, "token_expired");
}

fn tamper(token: &str) -> String {
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    // Claim to be an admin with the original signature.
    let claims = base64_decode(&parts[1]);
    let forged = claims.replace("\"agent\"", "\"admin\"");
    parts[1] = base64_encode(&forged);
    parts.join(".")
}

fn base64_decode(s: &str) -> String {
    use base64::Engine;
    String::from_utf8(base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).unwrap()).unwrap()
}

fn base64_encode(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

/// Cases schemathesis found: each was a 500 or a body the schema does not allow, accepted.
#[tokio::test]
async fn odd_bodies_and_methods_get_typed_answers() {
    let s = TestServer::start().await;
    let admin = s.login(ADMIN).await;
    // An email no key can hold is simply nobody's.
    let r = s
        .http
        .post(s.url("/api/v1/auth/login"))
        .json(&json!({"email": "a\u{0}@example.com", "password": "whatever-it-is"}))
        .send()
        .await
        .unwrap();
    assert_eq!(TestServer::error_code(r, 401).await, "invalid_credentials");
    // A body must be an object: an array is not filled into the fields by position.
    let r = s.http.post(s.url("/api/v1/conversations")).bearer_auth(&admin).json(&json!({"channel": "web"})).send().await.unwrap();
    let conv = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let r =
        s.http.patch(s.url(&format!("/api/v1/conversations/{conv}"))).bearer_auth(&admin).json(&json!([null, null])).send().await.unwrap();
    assert_eq!(TestServer::error_code(r, 422).await, "validation_failed");
    // An optional body is still checked when there is one.
    let escalate = s.url(&format!("/api/v1/conversations/{conv}/escalate"));
    let r = s.http.post(&escalate).bearer_auth(&admin).json(&json!({"reason": null, "extra": 1})).send().await.unwrap();
    assert_eq!(TestServer::error_code(r, 422).await, "validation_failed");
    let r = s.http.post(&escalate).bearer_auth(&admin).header("content-type", "application/json").body("{").send().await.unwrap();
    assert_eq!(TestServer::error_code(r, 400).await, "malformed_json");
    assert_eq!(s.get_json(&format!("/api/v1/conversations/{conv}"), &admin).await["status"], "open", "nothing changed");
    // A route under another method: 405 with Allow, also where a template would take the path.
    for (method, path, allow) in [
        (reqwest::Method::DELETE, "/api/v1/webhooks".to_string(), "GET, POST"),
        (reqwest::Method::GET, "/api/v1/media/regenerate-urls".to_string(), "POST"),
        (reqwest::Method::PUT, format!("/api/v1/conversations/{conv}"), "GET, PATCH"),
    ] {
        let r = s.http.request(method.clone(), s.url(&path)).bearer_auth(&admin).send().await.unwrap();
        let got = r.headers().get("allow").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        assert_eq!(TestServer::error_code(r, 405).await, "method_not_allowed", "{method} {path}");
        assert_eq!(got, allow, "{method} {path}");
    }
    let r = s.http.get(s.url("/api/v1/nothing-here")).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(TestServer::error_code(r, 404).await, "route_not_found");
}
