//! What browsers and integrators are told at the edge: only the origins in
//! `http.allowed_origins` get CORS headers, on REST and on Socket.IO
//! polling, preflights included; every caller has a stated rate limit.

use crate::helpers::*;

const SHOP: &str = "https://shop.example";

async fn preflight(s: &TestServer, path: &str, origin: &str, method: &str, headers: &str) -> reqwest::Response {
    s.http
        .request(reqwest::Method::OPTIONS, s.url(path))
        .header("Origin", origin)
        .header("Access-Control-Request-Method", method)
        .header("Access-Control-Request-Headers", headers)
        .send()
        .await
        .unwrap()
}

fn allow_origin(r: &reqwest::Response) -> Option<String> {
    r.headers().get("access-control-allow-origin").map(|v| v.to_str().unwrap().to_string())
}

#[tokio::test]
async fn listed_origins_pass_preflights_and_read_answers_and_others_do_not() {
    let s = TestServer::start_with(&[("UTALK_HTTP__ALLOWED_ORIGINS", "https://shop.example, http://localhost:8080")]).await;
    let r = preflight(&s, "/api/v1/conversations", SHOP, "POST", "authorization,content-type").await;
    assert_eq!(r.status(), 204);
    assert_eq!(allow_origin(&r).as_deref(), Some(SHOP));
    let methods = r.headers()["access-control-allow-methods"].to_str().unwrap().to_string();
    assert!(methods.contains("POST") && methods.contains("PATCH"), "{methods}");
    assert!(r.headers()["access-control-allow-headers"].to_str().unwrap().contains("Authorization"));
    assert!(r.headers().get("access-control-allow-credentials").is_none(), "no cookies across origins");

    // Not listed, another scheme, a header we do not take, a method we do not serve.
    for (origin, method, headers) in [
        ("https://evil.example", "POST", "authorization"),
        ("http://shop.example", "POST", "authorization"),
        (SHOP, "POST", "authorization,x-evil"),
        (SHOP, "TRACE", "authorization"),
    ] {
        let r = preflight(&s, "/api/v1/conversations", origin, method, headers).await;
        assert!(allow_origin(&r).is_none(), "{origin} {method} {headers}");
        assert_eq!(TestServer::error_code(r, 403).await, "origin_not_allowed");
    }

    // An actual call from the page: the answer (errors too) is readable by it, with the request id.
    let token = s.login(AGENT).await;
    let r = s.http.get(s.url("/api/v1/conversations")).header("Origin", SHOP).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(allow_origin(&r).as_deref(), Some(SHOP));
    assert!(r.headers()["access-control-expose-headers"].to_str().unwrap().contains("X-Request-ID"));
    assert!(r.headers().get_all("vary").iter().any(|v| v.to_str().unwrap().contains("Origin")));
    let r = s.http.get(s.url("/api/v1/conversations")).header("Origin", SHOP).send().await.unwrap();
    assert_eq!(allow_origin(&r).as_deref(), Some(SHOP), "a 401 is readable too");
    assert_eq!(TestServer::error_code(r, 401).await, "missing_token");
    let r = s.http.get(s.url("/api/v1/conversations")).header("Origin", "https://evil.example").bearer_auth(&token).send().await.unwrap();
    assert!(allow_origin(&r).is_none());

    // Socket.IO long-polling from the page.
    let r = s.http.get(s.url("/socket.io/?EIO=4&transport=polling")).header("Origin", "http://localhost:8080").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(allow_origin(&r).as_deref(), Some("http://localhost:8080"));
    assert!(r.text().await.unwrap().starts_with("0{"), "an Engine.IO open packet");
}

#[tokio::test]
async fn nothing_is_allowed_by_default_and_a_bad_origin_stops_the_start() {
    let s = TestServer::start().await;
    let r = preflight(&s, "/api/v1/conversations", SHOP, "GET", "authorization").await;
    assert!(allow_origin(&r).is_none());
    assert_eq!(r.status(), 403);
    let r = s.http.get(s.url("/health")).header("Origin", SHOP).send().await.unwrap();
    assert!(allow_origin(&r).is_none());

    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("UTALK_HTTP__ALLOWED_ORIGINS", "*")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("http.allowed_origins") && err.contains("`*`"), "{err}");
}

#[tokio::test]
async fn each_caller_is_told_its_rate_limit_and_refused_past_it_alone() {
    let s = TestServer::start_with(&[("UTALK_HTTP__REQUESTS_PER_MINUTE", "5")]).await;
    let agent = s.login(AGENT).await;
    let admin = s.login(ADMIN).await;
    for left in (0..5).rev() {
        let r = s.http.get(s.url("/api/v1/conversations")).bearer_auth(&agent).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["ratelimit-policy"], "\"per-caller\";q=5;w=60");
        let state = r.headers()["ratelimit"].to_str().unwrap().to_string();
        assert!(state.starts_with(&format!("\"per-caller\";r={left};t=")), "{state}");
    }
    let r = s.http.get(s.url("/api/v1/conversations")).bearer_auth(&agent).send().await.unwrap();
    let wait: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    assert!(r.headers()["ratelimit"].to_str().unwrap().starts_with("\"per-caller\";r=0;"));
    assert_eq!(TestServer::error_code(r, 429).await, "rate_limited");
    // Another caller is not held back by this one.
    let r = s.http.get(s.url("/api/v1/conversations")).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // Answers to unauthenticated routes carry no quota.
    let r = s.http.get(s.url("/health")).send().await.unwrap();
    assert!(r.headers().get("ratelimit").is_none());
}
