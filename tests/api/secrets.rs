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
