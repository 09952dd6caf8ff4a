//! Every list an integrator syncs from pages the same way: `limit` 1..200
//! (default 50, else 400 `invalid_limit`), and a `nextCursor` that, passed
//! back, gives the next page until it is null, each item once.

use crate::helpers::*;
use serde_json::{json, Value};
use std::collections::HashSet;

/// Every item of `path` (which may carry a query), one page of `limit` at a time.
async fn walk(s: &TestServer, path: &str, token: &str, limit: usize) -> Vec<Value> {
    let sep = if path.contains('?') { '&' } else { '?' };
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..1000 {
        let mut url = format!("{path}{sep}limit={limit}");
        if let Some(c) = &cursor {
            url += &format!("&cursor={}", urlencoding(c));
        }
        let page = s.get_json(&url, token).await;
        let items = page["items"].as_array().unwrap_or_else(|| panic!("{url}: {page}"));
        assert!(items.len() <= limit, "{url}: more than the limit: {page}");
        out.extend(items.iter().cloned());
        match page["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return out,
        }
    }
    panic!("{path}: the cursor never ended");
}

fn urlencoding(s: &str) -> String {
    s.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

async fn bad_paging_is_400(s: &TestServer, path: &str, token: &str) {
    let sep = if path.contains('?') { '&' } else { '?' };
    for (query, code) in [
        ("limit=0", "invalid_limit"),
        ("limit=201", "invalid_limit"),
        ("limit=many", "invalid_query"),
        ("cursor=%00nope%00", "invalid_cursor"),
    ] {
        let r = s.http.get(s.url(&format!("{path}{sep}{query}"))).bearer_auth(token).send().await.unwrap();
        assert_eq!(r.status(), 400, "{path} {query}");
        assert_eq!(TestServer::error_code(r, 400).await, code, "{path} {query}");
    }
}

fn unique(items: &[Value], key: &str) -> usize {
    items.iter().map(|i| i[key].to_string()).collect::<HashSet<_>>().len()
}

#[tokio::test]
async fn every_list_pages_with_the_same_rules_and_its_cursor_works() {
    let s = TestServer::start().await;
    let admin = s.login(ADMIN).await;
    let post = |path: &str, body: Value| s.http.post(s.url(path)).bearer_auth(&admin).json(&body).send();

    let mut store = String::new();
    for i in 0..3 {
        let r = post("/api/v1/stores", json!({"name": format!("Tienda {i}"), "allowNegativeStock": false})).await.unwrap();
        assert_eq!(r.status(), 201);
        store = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    }
    for sku in ["A-1", "B 2", "C/3"] {
        let r = post(&format!("/api/v1/stores/{store}/products"), json!({"sku": sku, "name": sku, "price": 1.0})).await.unwrap();
        assert_eq!(r.status(), 201, "{sku}");
    }
    for name in ["alpha", "beta", "gamma"] {
        let r =
            s.http.put(s.url(&format!("/api/v1/flags/{name}"))).bearer_auth(&admin).json(&json!({"enabled": true})).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    for _ in 0..2 {
        assert_eq!(post("/api/v1/admin/backups", json!({})).await.unwrap().status(), 201);
    }
    // Three bot runs: each widget message gets an answer.
    for i in 0..3 {
        let w: Value = post("/api/v1/widget/sessions", json!({"name": format!("Ana {i}")})).await.unwrap().json().await.unwrap();
        let conv = w["conversationId"].as_str().unwrap();
        let r = s
            .http
            .post(s.url(&format!("/api/v1/conversations/{conv}/messages")))
            .bearer_auth(w["token"].as_str().unwrap())
            .json(&json!({"messageId": uuid::Uuid::new_v4(), "text": "hola"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while s.get_json("/api/v1/ai/runs?limit=200", &admin).await["items"].as_array().unwrap().len() < 3 {
        assert!(std::time::Instant::now() < until, "the bot did not run three times");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    let jobs = s.get_json("/api/v1/admin/jobs?limit=200", &admin).await["items"].as_array().unwrap().clone();
    let job = jobs.iter().find(|j| j["name"] == "backup").map(|j| j["name"].as_str().unwrap().to_string()).expect("a backup job");
    for (path, key, at_least) in [
        ("/api/v1/stores".to_string(), "id", 3),
        (format!("/api/v1/stores/{store}/products"), "sku", 3),
        ("/api/v1/flags".to_string(), "name", 3),
        ("/api/v1/admin/backups".to_string(), "id", 2),
        ("/api/v1/admin/jobs".to_string(), "name", jobs.len()),
        (format!("/api/v1/admin/jobs/{job}/runs"), "id", 2),
        ("/api/v1/ai/runs".to_string(), "id", 3),
        ("/api/v1/users".to_string(), "id", 3),
        ("/api/v1/conversations".to_string(), "id", 3),
        ("/api/v1/alerts".to_string(), "id", 0),
    ] {
        let items = walk(&s, &path, &admin, 1).await;
        assert!(items.len() >= at_least, "{path}: {} items, expected at least {at_least}", items.len());
        assert_eq!(unique(&items, key), items.len(), "{path}: an item came twice");
        let whole = walk(&s, &path, &admin, 200).await;
        assert_eq!(whole.len(), items.len(), "{path}: paging by one and by 200 disagree");
        bad_paging_is_400(&s, &path, &admin).await;
    }
    let r = s.http.get(s.url("/api/v1/stores/not-a-uuid/products")).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(TestServer::error_code(r, 400).await, "invalid_path");
}

#[tokio::test]
async fn conversations_sync_incrementally_by_last_activity() {
    let s = TestServer::start().await;
    let agent = s.login(AGENT).await;
    let open = || s.http.post(s.url("/api/v1/conversations")).bearer_auth(&agent).json(&json!({"channel": "api"})).send();
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(open().await.unwrap().json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string());
    }
    let ids_of = |page: &Value| page["items"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap().to_string()).collect::<Vec<_>>();
    // Newest activity first: the last opened, on ties of the second the later id.
    let page = s.get_json("/api/v1/conversations?sort=lastActivity", &agent).await;
    assert_eq!(ids_of(&page), vec![ids[2].clone(), ids[1].clone(), ids[0].clone()]);

    // A message moves the first one to the front, in a later second.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let r = s
        .http
        .post(s.url(&format!("/api/v1/conversations/{}/messages", ids[0])))
        .bearer_auth(&agent)
        .json(&json!({"messageId": uuid::Uuid::new_v4(), "text": "hola"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let page = s.get_json("/api/v1/conversations?sort=lastActivity&order=desc", &agent).await;
    assert_eq!(ids_of(&page)[0], ids[0]);
    let since = s.get_json(&format!("/api/v1/conversations/{}", ids[0]), &agent).await["lastActivityAt"].as_str().unwrap().to_string();

    // What changed since: only it; oldest activity first, for a sync loop.
    let q = format!("/api/v1/conversations?updatedSince={}", urlencoding(&since));
    assert_eq!(ids_of(&s.get_json(&q, &agent).await), vec![ids[0].clone()]);
    let page = s.get_json(&format!("{q}&channel=web"), &agent).await;
    assert!(ids_of(&page).is_empty(), "filters apply too");
    // Every conversation once, a page of one at a time, both ways.
    for order in ["asc", "desc"] {
        let items = walk(&s, &format!("/api/v1/conversations?sort=lastActivity&order={order}"), &agent, 1).await;
        assert_eq!(unique(&items, "id"), 3, "{order}");
        assert_eq!(items.len(), 3, "{order}");
    }
    for (query, code) in [
        ("sort=newest", "invalid_query"),
        ("sort=", "invalid_query"),
        ("sort=created&order=desc", "invalid_query"),
        ("sort=created&updatedSince=2026-01-01T00:00:00Z", "invalid_query"),
        ("updatedSince=yesterday", "invalid_query"),
        ("sort=lastActivity&cursor=12_nope", "invalid_cursor"),
    ] {
        let r = s.http.get(s.url(&format!("/api/v1/conversations?{query}"))).bearer_auth(&agent).send().await.unwrap();
        assert_eq!(TestServer::error_code(r, 400).await, code, "{query}");
    }
}
