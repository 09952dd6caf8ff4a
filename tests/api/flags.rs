//! Feature flags: changed at runtime by admins, read by staff with whether they are on for them, audited.

use crate::helpers::*;
use serde_json::{json, Value};

async fn put(s: &TestServer, token: &str, name: &str, body: Value) -> reqwest::Response {
    s.http.put(s.url(&format!("/api/v1/flags/{name}"))).bearer_auth(token).json(&body).send().await.unwrap()
}

#[tokio::test]
async fn flags_change_at_runtime_per_user_and_workspace_and_are_audited() {
    let mut s = TestServer::start().await;
    let admin = s.login(ADMIN).await;
    let agent = s.login(AGENT).await;
    let agent_id = s.get_json("/api/v1/auth/me", &agent).await["id"].as_str().unwrap().to_string();

    let r = s.http.get(s.url("/api/v1/flags/new_console")).bearer_auth(&agent).send().await.unwrap();
    assert_eq!(TestServer::error_code(r, 404).await, "not_found");

    // On for nobody by percentage, but for this agent by name.
    let r = put(
        &s,
        &admin,
        "new_console",
        json!({"enabled": true, "percent": 0, "users": {agent_id.clone(): true}, "description": "the new agent console"}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["version"], 1);
    let seen = s.get_json("/api/v1/flags/new_console", &agent).await;
    assert_eq!(seen["on"], true, "{seen}");
    let seen = s.get_json("/api/v1/flags/new_console", &admin).await;
    assert_eq!(seen["on"], false, "0% and no override");
    assert_eq!(s.get_json("/api/v1/flags/new_console?workspace=norte", &admin).await["on"], false);

    // Changed at runtime, no restart: a workspace on for everyone in it; then the master switch off.
    let r = put(&s, &admin, "new_console", json!({"enabled": true, "workspaces": {"norte": true}, "version": 1})).await;
    assert_eq!(r.status(), 200);
    assert_eq!(s.get_json("/api/v1/flags/new_console?workspace=norte", &admin).await["on"], true);
    let r = put(&s, &admin, "new_console", json!({"enabled": false, "workspaces": {"norte": true}, "version": 2})).await;
    assert_eq!(r.status(), 200);
    assert_eq!(s.get_json("/api/v1/flags/new_console?workspace=norte", &admin).await["on"], false);

    // A stale version, bad input and other roles change nothing.
    let stale = put(&s, &admin, "new_console", json!({"enabled": true, "version": 1})).await;
    assert_eq!(TestServer::error_code(stale, 409).await, "version_conflict");
    assert_eq!(
        TestServer::error_code(put(&s, &admin, "new_console", json!({"enabled": true, "percent": 101})).await, 422).await,
        "validation_failed"
    );
    assert_eq!(TestServer::error_code(put(&s, &admin, "Bad Name", json!({"enabled": true})).await, 400).await, "invalid_flag_name");
    assert_eq!(TestServer::error_code(put(&s, &admin, "x", json!({"enabled": true, "extra": 1})).await, 422).await, "validation_failed");
    assert_eq!(put(&s, &agent, "new_console", json!({"enabled": true})).await.status(), 403);
    assert_eq!(s.http.get(s.url("/api/v1/flags")).bearer_auth(&agent).send().await.unwrap().status(), 403);
    let list = s.get_json("/api/v1/flags", &admin).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(list["items"][0]["version"], 3);
    assert_eq!(list["items"][0]["enabled"], false);

    // Kept across a restart, and every change is in the audit log.
    let data = s.data_dir();
    s.kill();
    let text = exported_audit(&data);
    assert_eq!(text.lines().filter(|l| l.contains("flag.update")).count(), 3, "{text}");
    let again = TestServer::start_on(&data, &[]).await;
    let admin = again.login(ADMIN).await;
    assert_eq!(again.get_json("/api/v1/flags/new_console", &admin).await["version"], 3);
}
