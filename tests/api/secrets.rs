//! Credentials go only where the configuration sends them: the model's base
//! URL, settable over the API, must name a host of `bot.allowed_model_hosts`.

use crate::helpers::*;
use serde_json::{json, Value};

#[tokio::test]
async fn a_model_base_url_outside_the_allowed_hosts_is_refused_and_nothing_is_stored() {
    let s = TestServer::start().await;
    let admin = s.login(ADMIN).await;
    let cur = s.get_json("/api/v1/ai/config", &admin).await;
    let mut body = cur.clone();
    let o = body.as_object_mut().unwrap();
    o.remove("updatedAt");
    o.remove("updatedBy");
    o.insert("provider".into(), json!("openai"));
    let put = |base_url: &str| {
        let mut b = body.clone();
        b["baseUrl"] = json!(base_url);
        s.http.put(s.url("/api/v1/ai/config")).bearer_auth(&admin).json(&b).send()
    };
    // By default only api.openai.com: another host, the allowed name as user
    // info or as a subdomain of another, and an address are all refused.
    for bad in [
        "https://evil.example/v1",
        "https://api.openai.com@evil.example/v1",
        "https://api.openai.com.evil.example/v1",
        "http://127.0.0.1:9/v1",
        "https://evil.example\\@api.openai.com/v1",
    ] {
        let code = TestServer::error_code(put(bad).await.unwrap(), 422).await;
        assert_eq!(code, "model_host_not_allowed", "{bad}");
    }
    let after = s.get_json("/api/v1/ai/config", &admin).await;
    assert_eq!(after["version"], cur["version"], "nothing stored");
    assert_eq!(after["baseUrl"], cur["baseUrl"]);
    assert_eq!(after["provider"], cur["provider"]);

    let ok = put("https://API.openai.com/v1/").await.unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    let v: Value = ok.json().await.unwrap();
    assert_eq!(v["version"].as_u64(), cur["version"].as_u64().map(|n| n + 1));
    assert_eq!(v["provider"], "openai");
}

#[tokio::test]
async fn the_allowed_model_hosts_come_from_the_configuration() {
    let s = TestServer::start_with(&[("UTALK_BOT__ALLOWED_MODEL_HOSTS", "[\"*.models.example\"]")]).await;
    let admin = s.login(ADMIN).await;
    let mut body = s.get_json("/api/v1/ai/config", &admin).await;
    let o = body.as_object_mut().unwrap();
    o.remove("updatedAt");
    o.remove("updatedBy");
    body["baseUrl"] = json!("https://api.openai.com/v1");
    let r = s.http.put(s.url("/api/v1/ai/config")).bearer_auth(&admin).json(&body).send().await.unwrap();
    assert_eq!(TestServer::error_code(r, 422).await, "model_host_not_allowed", "the default host is no longer allowed");
    body["baseUrl"] = json!("https://eu.models.example/v1");
    let r = s.http.put(s.url("/api/v1/ai/config")).bearer_auth(&admin).json(&body).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

/// The `kid` in a token's header.
fn kid(token: &str) -> String {
    use base64::Engine;
    let header = token.split('.').next().unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header).unwrap();
    serde_json::from_slice::<Value>(&bytes).unwrap()["kid"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn the_rotation_job_replaces_an_old_generated_key_and_the_running_server_takes_it_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    add_user(&data, ADMIN.0, "admin", ADMIN.1);
    let mut s = TestServer::start_on(&data, &[]).await;
    let old_token = s.login(ADMIN).await;
    s.kill();

    // The generated key, made 100 days ago.
    {
        use utalk_storage::{Batch, Db, DbOptions, Map};
        let db = Db::open(&data, &DbOptions::default()).unwrap();
        let mut keys: Value =
            serde_json::from_slice(&db.get_raw(Map::Meta, b"signing_keys").unwrap().expect("the shared signing keys")).unwrap();
        keys["created_ms"] = json!(keys["created_ms"].as_i64().unwrap() - 100 * 86_400_000);
        let mut b = Batch::new();
        b.put_raw(Map::Meta, b"signing_keys".to_vec(), serde_json::to_vec(&keys).unwrap());
        db.write_group([&b], true).unwrap();
    }
    let s = TestServer::start_on(&data, &[]).await;
    let me = |token: String| {
        let s = &s;
        async move { s.http.get(s.url("/api/v1/auth/me")).bearer_auth(token).send().await.unwrap().status() }
    };
    assert_eq!(me(old_token.clone()).await, 200);
    let age =
        |text: &str| text.lines().find_map(|l| l.strip_prefix("secret_age_seconds{secret=\"jwt\"} ")).and_then(|v| v.parse::<f64>().ok());
    let metrics = s.http.get(s.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(age(&metrics).unwrap() > 99.0 * 86_400.0, "the age shows before the job runs");

    let r = s.http.post(s.url("/api/v1/admin/jobs/secret_rotation/run")).bearer_auth(&old_token).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let run: Value = r.json().await.unwrap();
    assert_eq!((run["outcome"].as_str(), run["figures"]["rotated"].as_f64()), (Some("ok"), Some(1.0)), "{run}");

    // The running server signs with the new key at once, and the old one still verifies.
    let new_token = s.login(ADMIN).await;
    assert_ne!(kid(&new_token), kid(&old_token));
    assert_eq!(me(new_token.clone()).await, 200);
    assert_eq!(me(old_token.clone()).await, 200, "tokens signed with the old key verify through the grace");
    let metrics = s.http.get(s.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(age(&metrics).unwrap() < 600.0, "the new key is young");
    // Nothing more to do the next time.
    let run: Value =
        s.http.post(s.url("/api/v1/admin/jobs/secret_rotation/run")).bearer_auth(&new_token).send().await.unwrap().json().await.unwrap();
    assert_eq!(run["figures"]["rotated"], 0.0, "{run}");
}
