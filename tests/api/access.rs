//! Users' lifecycle and API keys: admins change roles, lock users out and
//! reset passwords; users change their own; integrators call with keys that
//! admins make, list and revoke. Every change is audited.

use crate::helpers::*;
use serde_json::{json, Value};
use std::time::Duration;

type Answer = std::pin::Pin<Box<dyn std::future::Future<Output = reqwest::Response> + Send>>;

/// The request is built at once, so the answer borrows nothing.
fn send(s: &TestServer, method: reqwest::Method, path: &str, token: &str, body: Option<Value>) -> Answer {
    let mut r = s.http.request(method, s.url(path)).bearer_auth(token);
    if let Some(b) = body {
        r = r.json(&b);
    }
    Box::pin(async move { r.send().await.unwrap() })
}

async fn login_pair(s: &TestServer, who: (&str, &str)) -> Value {
    let r = s.http.post(s.url("/api/v1/auth/login")).json(&json!({"email": who.0, "password": who.1})).send().await.unwrap();
    assert_eq!(r.status(), 200, "login of {}", who.0);
    r.json().await.unwrap()
}

async fn status_of(s: &TestServer, path: &str, token: &str) -> u16 {
    s.http.get(s.url(path)).bearer_auth(token).send().await.unwrap().status().as_u16()
}

/// The audit records' actions and targets, read with `utalk export` while the server runs.
pub fn audit(s: &TestServer) -> Vec<(String, String)> {
    exported_audit(&s.data_dir())
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|v| (v["action"].as_str().unwrap_or_default().to_string(), v["target"].as_str().unwrap_or_default().to_string()))
        .collect()
}

#[tokio::test]
async fn an_admin_disables_a_user_whose_tokens_stop_at_once_and_enables_them_again() {
    let s = TestServer::start().await;
    let admin = s.login(ADMIN).await;
    let agent = login_pair(&s, AGENT).await;
    let (access, refresh) = (agent["accessToken"].as_str().unwrap(), agent["refreshToken"].as_str().unwrap());
    let id = agent["user"]["id"].as_str().unwrap().to_string();
    assert_eq!(status_of(&s, "/api/v1/conversations", access).await, 200);

    let r = send(&s, reqwest::Method::PATCH, &format!("/api/v1/users/{id}"), &admin, Some(json!({"disabled": true}))).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!((v["disabled"].as_bool(), v["role"].as_str()), (Some(true), Some("agent")), "{v}");

    let r = s.http.get(s.url("/api/v1/conversations")).bearer_auth(access).send().await.unwrap();
    assert_eq!(TestServer::error_code(r, 401).await, "token_revoked");
    let r = s.http.post(s.url("/api/v1/auth/refresh")).json(&json!({"refreshToken": refresh})).send().await.unwrap();
    assert_eq!(TestServer::error_code(r, 401).await, "invalid_refresh_token");
    let r = s.http.post(s.url("/api/v1/auth/login")).json(&json!({"email": AGENT.0, "password": AGENT.1})).send().await.unwrap();
    assert_eq!(TestServer::error_code(r, 401).await, "invalid_credentials");

    let r = send(&s, reqwest::Method::PATCH, &format!("/api/v1/users/{id}"), &admin, Some(json!({"disabled": false, "name": "Ana"}))).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!((v["disabled"].as_bool(), v["name"].as_str()), (Some(false), Some("Ana")), "{v}");
    // Tokens from before the lock-out stay dead; a new login works.
    assert_eq!(status_of(&s, "/api/v1/conversations", access).await, 401);
    let fresh = s.login(AGENT).await;
    assert_eq!(status_of(&s, "/api/v1/conversations", &fresh).await, 200);

    let actions = audit(&s);
    let updates: Vec<&str> = actions.iter().filter(|(a, _)| a == "user.update").map(|(_, t)| t.as_str()).collect();
    assert_eq!(updates, [format!("{} disabled", AGENT.0), format!("{} name changed, enabled", AGENT.0)], "{actions:?}");
}

#[tokio::test]
async fn a_new_role_applies_to_tokens_already_issued() {
    let s = TestServer::start().await;
    let admin = s.login(ADMIN).await;
    let viewer = login_pair(&s, READONLY).await;
    let token = viewer["accessToken"].as_str().unwrap();
    let id = viewer["user"]["id"].as_str().unwrap();
    let open = json!({"channel": "api", "customer": {"name": "Ana"}});
    assert_eq!(send(&s, reqwest::Method::POST, "/api/v1/conversations", token, Some(open.clone())).await.status(), 403);
    let r = send(&s, reqwest::Method::PATCH, &format!("/api/v1/users/{id}"), &admin, Some(json!({"role": "agent"}))).await;
    assert_eq!(r.status(), 200);
    assert_eq!(send(&s, reqwest::Method::POST, "/api/v1/conversations", token, Some(open)).await.status(), 201);
}

#[tokio::test]
async fn user_changes_refuse_bad_requests_and_change_nothing() {
    let s = TestServer::start().await;
    let admin = login_pair(&s, ADMIN).await;
    let token = admin["accessToken"].as_str().unwrap();
    let me = admin["user"]["id"].as_str().unwrap();
    let agent = login_pair(&s, AGENT).await;
    let agent_id = agent["user"]["id"].as_str().unwrap();
    let patch = |id: String, body: Value| send(&s, reqwest::Method::PATCH, &format!("/api/v1/users/{id}"), token, Some(body));
    for (body, status, code) in [
        (json!({"disabled": true}), 409, "cannot_change_self"),
        (json!({"role": "agent"}), 409, "cannot_change_self"),
        (json!({}), 422, "empty_change"),
        (json!({"role": "owner"}), 422, "invalid_role"),
        (json!({"name": "x".repeat(101)}), 422, "validation_failed"),
    ] {
        assert_eq!(TestServer::error_code(patch(me.to_string(), body.clone()).await, status).await, code, "{body}");
    }
    let r = patch(agent_id.to_string(), json!({"email": "x@example.com"})).await;
    assert_eq!(TestServer::error_code(r, 422).await, "validation_failed", "unknown fields are refused");
    assert_eq!(patch(uuid::Uuid::new_v4().to_string(), json!({"disabled": true})).await.status(), 404);
    assert_eq!(TestServer::error_code(patch("not-a-uuid".into(), json!({"disabled": true})).await, 400).await, "invalid_path");
    // Only admins.
    let r = send(
        &s,
        reqwest::Method::PATCH,
        &format!("/api/v1/users/{me}"),
        agent["accessToken"].as_str().unwrap(),
        Some(json!({"disabled": true})),
    )
    .await;
    assert_eq!(r.status(), 403);
    // Nothing changed: the admin is still an enabled admin.
    let list = s.get_json("/api/v1/users", token).await;
    let mine = list["items"].as_array().unwrap().iter().find(|u| u["id"] == me).unwrap().clone();
    assert_eq!((mine["role"].as_str(), mine["disabled"].as_bool()), (Some("admin"), Some(false)));
    assert!(!audit(&s).iter().any(|(a, _)| a == "user.update"));
}

#[tokio::test]
async fn passwords_reset_by_an_admin_or_changed_by_their_user_sign_out_every_session() {
    let s = TestServer::start().await;
    let admin = s.login(ADMIN).await;
    let agent = login_pair(&s, AGENT).await;
    let id = agent["user"]["id"].as_str().unwrap();
    let old_access = agent["accessToken"].as_str().unwrap();

    let reset = |body: Value| send(&s, reqwest::Method::POST, &format!("/api/v1/users/{id}/password"), &admin, Some(body));
    assert_eq!(TestServer::error_code(reset(json!({"password": "short"})).await, 422).await, "weak_password");
    assert_eq!(status_of(&s, "/api/v1/conversations", old_access).await, 200, "a refused reset changes nothing");
    assert_eq!(reset(json!({"password": "reset-password-2"})).await.status(), 204);
    assert_eq!(status_of(&s, "/api/v1/conversations", old_access).await, 401);
    let r = s.http.post(s.url("/api/v1/auth/login")).json(&json!({"email": AGENT.0, "password": AGENT.1})).send().await.unwrap();
    assert_eq!(r.status(), 401, "the old password no longer logs in");

    // The user's own change: the current password is checked, the answer is a new pair.
    let pair = login_pair(&s, (AGENT.0, "reset-password-2")).await;
    let (access, refresh) = (pair["accessToken"].as_str().unwrap(), pair["refreshToken"].as_str().unwrap());
    let own = |body: Value| send(&s, reqwest::Method::POST, "/api/v1/auth/password", access, Some(body));
    let r = own(json!({"currentPassword": "not-it-at-all", "newPassword": "own-password-3"})).await;
    assert_eq!(TestServer::error_code(r, 401).await, "invalid_credentials");
    let r = own(json!({"currentPassword": "reset-password-2", "newPassword": "tiny"})).await;
    assert_eq!(TestServer::error_code(r, 422).await, "weak_password");
    let r = own(json!({"currentPassword": "reset-password-2", "newPassword": "own-password-3"})).await;
    assert_eq!(r.status(), 200);
    let new_pair: Value = r.json().await.unwrap();
    assert_eq!(status_of(&s, "/api/v1/conversations", new_pair["accessToken"].as_str().unwrap()).await, 200);
    assert_eq!(status_of(&s, "/api/v1/conversations", access).await, 401, "the session that changed it got a new pair instead");
    let r = s.http.post(s.url("/api/v1/auth/refresh")).json(&json!({"refreshToken": refresh})).send().await.unwrap();
    assert_eq!(r.status(), 401);
    login_pair(&s, (AGENT.0, "own-password-3")).await;

    let actions: Vec<String> = audit(&s).into_iter().map(|(a, _)| a).filter(|a| a.starts_with("user.password")).collect();
    assert_eq!(actions, ["user.password_reset", "user.password_change"]);
}

#[tokio::test]
async fn an_api_key_is_shown_once_works_until_revoked_and_records_its_use() {
    let s = TestServer::start().await;
    let admin = s.login(ADMIN).await;
    let r = send(&s, reqwest::Method::POST, "/api/v1/api-keys", &admin, Some(json!({"name": "CRM sync", "role": "agent"}))).await;
    assert_eq!(r.status(), 201);
    let made: Value = r.json().await.unwrap();
    let key = made["key"].as_str().unwrap().to_string();
    assert!(key.starts_with("utk_") && key.len() > 40, "{key}");
    assert!(key.starts_with(made["prefix"].as_str().unwrap()));
    assert_eq!((made["role"].as_str(), made["name"].as_str()), (Some("agent"), Some("CRM sync")));

    // The key acts with its role on REST.
    assert_eq!(status_of(&s, "/api/v1/conversations", &key).await, 200);
    let conv = s.create_conversation(&key).await;
    s.send_text(&key, &conv, "hola desde el CRM").await;
    assert_eq!(status_of(&s, "/api/v1/api-keys", &key).await, 403, "an agent key may not manage keys");

    let list = s.get_json("/api/v1/api-keys", &admin).await;
    let item = &list["items"][0];
    assert!(item.get("key").is_none() && !list.to_string().contains(&key), "the key is never shown again: {list}");
    assert!(item["lastUsedAt"].is_string(), "the use is recorded: {item}");

    let r = send(&s, reqwest::Method::DELETE, &format!("/api/v1/api-keys/{}", made["id"].as_str().unwrap()), &admin, None).await;
    assert_eq!(r.status(), 200);
    assert!(r.json::<Value>().await.unwrap()["revokedAt"].is_string());
    let r = s.http.get(s.url("/api/v1/conversations")).bearer_auth(&key).send().await.unwrap();
    assert_eq!(TestServer::error_code(r, 401).await, "invalid_token");
    let list = s.get_json("/api/v1/api-keys", &admin).await;
    assert!(list["items"][0]["revokedAt"].is_string(), "revoked keys stay listed: {list}");

    let actions: Vec<String> = audit(&s).into_iter().map(|(a, _)| a).filter(|a| a.starts_with("api_key")).collect();
    assert_eq!(actions, ["api_key.create", "api_key.revoke"]);
}

#[tokio::test]
async fn api_keys_expire_are_bounded_in_number_and_refuse_bad_input() {
    let s = TestServer::start_with(&[("UTALK_AUTH__MAX_API_KEYS", "2")]).await;
    let admin = s.login(ADMIN).await;
    let agent = s.login(AGENT).await;
    let create = |token: String, body: Value| send(&s, reqwest::Method::POST, "/api/v1/api-keys", &token, Some(body));
    assert_eq!(create(agent.clone(), json!({"name": "x", "role": "agent"})).await.status(), 403);
    for (body, code) in [
        (json!({"name": "", "role": "agent"}), "validation_failed"),
        (json!({"name": "n".repeat(101), "role": "agent"}), "validation_failed"),
        (json!({"name": "x", "role": "root"}), "invalid_role"),
        (json!({"name": "x", "role": "agent", "expiresAt": "2020-01-01T00:00:00Z"}), "validation_failed"),
    ] {
        assert_eq!(TestServer::error_code(create(admin.clone(), body.clone()).await, 422).await, code, "{body}");
    }
    let r = create(admin.clone(), json!({"name": "x", "role": "agent", "expiresAt": "soon"})).await;
    assert_eq!(TestServer::error_code(r, 422).await, "validation_failed");

    let soon = utalk_storage::Timestamp::now().plus_secs(2).to_rfc3339();
    let r = create(admin.clone(), json!({"name": "short-lived", "role": "readonly", "expiresAt": soon})).await;
    assert_eq!(r.status(), 201);
    let short: Value = r.json().await.unwrap();
    let short_key = short["key"].as_str().unwrap().to_string();
    assert_eq!(status_of(&s, "/api/v1/conversations", &short_key).await, 200);
    let r = create(admin.clone(), json!({"name": "second", "role": "readonly"})).await;
    assert_eq!(r.status(), 201);
    let second: Value = r.json().await.unwrap();
    let r = create(admin.clone(), json!({"name": "third", "role": "readonly"})).await;
    assert_eq!(TestServer::error_code(r, 409).await, "too_many_keys");

    tokio::time::sleep(Duration::from_millis(2500)).await;
    let r = s.http.get(s.url("/api/v1/conversations")).bearer_auth(&short_key).send().await.unwrap();
    assert_eq!(TestServer::error_code(r, 401).await, "token_expired");
    // The expired key no longer counts; nor does a revoked one.
    assert_eq!(create(admin.clone(), json!({"name": "third", "role": "readonly"})).await.status(), 201);
    send(&s, reqwest::Method::DELETE, &format!("/api/v1/api-keys/{}", second["id"].as_str().unwrap()), &admin, None).await;
    assert_eq!(create(admin.clone(), json!({"name": "fourth", "role": "readonly"})).await.status(), 201);

    for garbage in ["utk_", "utk_not-a-key", &format!("utk_{}", "a".repeat(5000))] {
        let r = s.http.get(s.url("/api/v1/conversations")).bearer_auth(garbage).send().await.unwrap();
        assert_eq!(TestServer::error_code(r, 401).await, "invalid_token", "{}", &garbage[..garbage.len().min(12)]);
    }
}
