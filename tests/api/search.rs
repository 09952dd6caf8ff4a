//! Search: conversations by a word of a message or their customer, contacts
//! by name, phone, email or external id; Spanish and English forms, accents
//! folded; fresh within seconds; paged; bounded; kept across restarts and
//! rebuilt from the store when missing or behind.

use crate::helpers::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use uuid::Uuid;

async fn open(s: &TestServer, token: &str, customer: Value) -> String {
    let r = s
        .http
        .post(s.url("/api/v1/conversations"))
        .bearer_auth(token)
        .json(&json!({"channel": "web", "customer": customer}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string()
}

pub(crate) async fn search(s: &TestServer, token: &str, path: &str, q: &str) -> reqwest::Response {
    s.http.get(s.url(path)).query(&[("q", q)]).bearer_auth(token).send().await.unwrap()
}

/// The ids a search finds now.
pub(crate) async fn found(s: &TestServer, token: &str, path: &str, q: &str) -> Vec<String> {
    let r = search(s, token, path, q).await;
    assert_eq!(r.status(), 200, "{path}?q={q}");
    let page: Value = r.json().await.unwrap();
    page["items"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap().to_string()).collect()
}

/// Waits until `q` finds `id` (at most `within`), and says how long it took.
pub(crate) async fn found_within(s: &TestServer, token: &str, path: &str, q: &str, id: &str, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        if found(s, token, path, q).await.iter().any(|f| f == id) {
            return started.elapsed();
        }
        assert!(started.elapsed() < within, "{path}?q={q} did not find {id} within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(crate) const CONVERSATIONS: &str = "/api/v1/conversations";
pub(crate) const CONTACTS: &str = "/api/v1/contacts";

#[tokio::test]
async fn a_word_written_a_second_ago_is_found_in_spanish_and_english_forms_with_or_without_accents() {
    let s = TestServer::start().await;
    let agent = s.login(AGENT).await;
    let reader = s.login(READONLY).await;
    let es = open(&s, &agent, json!({"name": "Lucía Gómez", "email": "lucia@example.com"})).await;
    let en = open(&s, &agent, json!({"name": "John Smith", "phone": "+34600112233"})).await;
    let other = open(&s, &agent, json!({"name": "Nadie"})).await;
    s.send_text(&agent, &es, "La facturación de mi canción favorita no llegó").await;
    s.send_text(&agent, &en, "I want refunds for my orders").await;
    s.send_text(&agent, &other, "nothing to see here").await;

    // Within seconds of the write; the default commit interval is one second.
    let took = found_within(&s, &agent, CONVERSATIONS, "facturación", &es, Duration::from_secs(5)).await;
    assert!(took < Duration::from_secs(3), "found after {took:?}");
    // The other two may have landed in the next commit.
    found_within(&s, &agent, CONVERSATIONS, "refunds", &en, Duration::from_secs(5)).await;
    found_within(&s, &agent, CONVERSATIONS, "nothing", &other, Duration::from_secs(5)).await;
    for q in ["facturacion", "FACTURACIONES", "canción", "cancion", "canciones", "llego"] {
        assert_eq!(found(&s, &agent, CONVERSATIONS, q).await, vec![es.clone()], "q={q}");
    }
    for q in ["refund", "refunding", "ordered", "orders"] {
        assert_eq!(found(&s, &agent, CONVERSATIONS, q).await, vec![en.clone()], "q={q}");
    }
    // Every word must be found; the customer's fields count too.
    assert!(found(&s, &agent, CONVERSATIONS, "refund canción").await.is_empty());
    assert_eq!(found(&s, &agent, CONVERSATIONS, "lucia gomez").await, vec![es.clone()]);
    assert_eq!(found(&s, &agent, CONVERSATIONS, "lucia@example.com").await, vec![es.clone()]);
    assert_eq!(found(&s, &agent, CONVERSATIONS, "600112233").await, vec![en.clone()], "a phone by its national digits");
    // The list's filters still apply.
    let r = s.http.get(s.url(CONVERSATIONS)).query(&[("q", "refund"), ("status", "closed")]).bearer_auth(&agent).send().await.unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["items"], json!([]));

    // Ranked: the conversation saying it most comes first.
    let many = open(&s, &agent, json!({"name": "Repetido"})).await;
    s.send_text(&agent, &many, "refund refund refund, refund please").await;
    found_within(&s, &agent, CONVERSATIONS, "refund", &many, Duration::from_secs(5)).await;
    assert_eq!(found(&s, &agent, CONVERSATIONS, "refund").await, [many.clone(), en.clone()]);

    // Private notes: found by staff who read notes, read-only staff included.
    let note = json!({"messageId": Uuid::new_v4(), "text": "nota interna: zanahoria", "private": true});
    let r = s.http.post(s.url(&format!("/api/v1/conversations/{other}/messages"))).bearer_auth(&agent).json(&note).send().await.unwrap();
    assert_eq!(r.status(), 201);
    found_within(&s, &agent, CONVERSATIONS, "zanahoria", &other, Duration::from_secs(5)).await;
    assert_eq!(found(&s, &reader, CONVERSATIONS, "zanahoria").await, vec![other.clone()]);
    assert_eq!(found(&s, &reader, CONVERSATIONS, "facturacion").await, vec![es.clone()]);

    // Who may not list conversations may not search them either.
    let widget: Value = s.http.post(s.url("/api/v1/widget/sessions")).json(&json!({})).send().await.unwrap().json().await.unwrap();
    let wtoken = widget["token"].as_str().unwrap();
    assert_eq!(TestServer::error_code(search(&s, wtoken, CONVERSATIONS, "zanahoria").await, 403).await, "forbidden");
    let admin = s.login(ADMIN).await;
    let r = s
        .http
        .post(s.url("/api/v1/api-keys"))
        .bearer_auth(&admin)
        .json(&json!({"name": "crm", "role": "integration"}))
        .send()
        .await
        .unwrap();
    let key = r.json::<Value>().await.unwrap()["key"].as_str().unwrap().to_string();
    assert_eq!(TestServer::error_code(search(&s, &key, CONVERSATIONS, "zanahoria").await, 403).await, "forbidden");
    assert_eq!(TestServer::error_code(search(&s, &key, CONTACTS, "lucia").await, 403).await, "forbidden");
    assert!(s.http.get(s.url(CONVERSATIONS)).query(&[("q", "x")]).send().await.unwrap().status() == 401);
}

#[tokio::test]
async fn contacts_are_found_by_name_phone_email_and_external_id_and_follow_their_changes() {
    let s = TestServer::start().await;
    let agent = s.login(AGENT).await;
    let mk = |body: Value| {
        let (s, agent) = (&s, agent.clone());
        async move {
            let r = s.http.post(s.url(CONTACTS)).bearer_auth(&agent).json(&body).send().await.unwrap();
            assert_eq!(r.status(), 201);
            r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string()
        }
    };
    let ana = mk(json!({"name": "Ana Núñez", "phone": "+5215550101", "email": "ana@example.com"})).await;
    let bob = mk(json!({"name": "Bob Stone", "externalId": "CRM-42"})).await;
    found_within(&s, &agent, CONTACTS, "nunez", &ana, Duration::from_secs(5)).await;
    for (q, id) in [
        ("Núñez", &ana),
        ("ana", &ana),
        ("+52 1 555 0101", &ana),
        ("5550101", &ana),
        ("ana@example.com", &ana),
        ("crm-42", &bob),
        ("stone", &bob),
    ] {
        assert_eq!(found(&s, &agent, CONTACTS, q).await, vec![id.clone()], "q={q}");
    }
    assert!(found(&s, &agent, CONTACTS, "0101 stone").await.is_empty());

    // A change is found by its new name, not the old one, within seconds.
    let r = s
        .http
        .patch(s.url(&format!("/api/v1/contacts/{bob}")))
        .bearer_auth(&agent)
        .json(&json!({"name": "Robert Stein"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    found_within(&s, &agent, CONTACTS, "stein", &bob, Duration::from_secs(5)).await;
    assert!(found(&s, &agent, CONTACTS, "stone").await.is_empty());
}

#[tokio::test]
async fn search_pages_and_refuses_what_it_cannot_search_without_changing_anything() {
    let s = TestServer::start().await;
    let agent = s.login(AGENT).await;
    let mut convs = Vec::new();
    for i in 0..3 {
        let c = open(&s, &agent, json!({"name": format!("Cliente {i}")})).await;
        s.send_text(&agent, &c, "pregunta sobre paginado").await;
        convs.push(c);
    }
    found_within(&s, &agent, CONVERSATIONS, "paginado", &convs[2], Duration::from_secs(5)).await;
    let page = |cursor: Option<&str>| {
        let mut q = vec![("q", "paginado".to_string()), ("limit", "2".to_string())];
        if let Some(c) = cursor {
            q.push(("cursor", c.to_string()));
        }
        let (s, agent) = (&s, agent.clone());
        async move { s.http.get(s.url(CONVERSATIONS)).query(&q).bearer_auth(&agent).send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let first = page(None).await;
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    let next = first["nextCursor"].as_str().expect("a second page").to_string();
    let second = page(Some(&next)).await;
    assert_eq!(second["items"].as_array().unwrap().len(), 1);
    assert!(second["nextCursor"].is_null());
    let mut all: Vec<&str> =
        first["items"].as_array().unwrap().iter().chain(second["items"].as_array().unwrap()).map(|c| c["id"].as_str().unwrap()).collect();
    all.sort();
    let mut want: Vec<&str> = convs.iter().map(String::as_str).collect();
    want.sort();
    assert_eq!(all, want, "every match once across the pages");

    // Bad input: a typed error, and the server goes on serving.
    let long = "a".repeat(257);
    let words = vec!["w"; 17].join(" ");
    for (query, code) in [
        (vec![("q", long.as_str())], "invalid_query"),
        (vec![("q", words.as_str())], "invalid_query"),
        (vec![("q", "   ")], "invalid_query"),
        (vec![("q", "x"), ("sort", "created")], "invalid_query"),
        (vec![("q", "x"), ("order", "asc")], "invalid_query"),
        (vec![("q", "x"), ("updatedSince", "2026-01-01T00:00:00Z")], "invalid_query"),
        (vec![("q", "x"), ("cursor", "abc")], "invalid_cursor"),
        (vec![("q", "x"), ("cursor", "5000")], "invalid_query"),
        (vec![("q", "x"), ("cursor", "1001")], "invalid_query"),
        (vec![("q", "x"), ("limit", "0")], "invalid_limit"),
    ] {
        for path in [CONVERSATIONS, CONTACTS] {
            if path == CONTACTS && query.iter().any(|(k, _)| ["sort", "order", "updatedSince"].contains(k)) {
                continue;
            }
            let r = s.http.get(s.url(path)).query(&query).bearer_auth(&agent).send().await.unwrap();
            assert_eq!(TestServer::error_code(r, 400).await, code, "{path} {query:?}");
        }
    }
    // The deepest page is served, empty here, at the largest limit.
    for path in [CONVERSATIONS, CONTACTS] {
        let r = s
            .http
            .get(s.url(path))
            .query(&[("q", "paginado"), ("cursor", "1000"), ("limit", "200")])
            .bearer_auth(&agent)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.json::<Value>().await.unwrap()["items"], json!([]), "{path}");
    }
    assert_eq!(found(&s, &agent, CONVERSATIONS, "paginado").await.len(), 3);
}

#[tokio::test]
async fn the_index_survives_a_clean_restart_and_is_rebuilt_when_missing_or_behind() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    add_user(&data, AGENT.0, "agent", AGENT.1);
    let mut s = TestServer::start_on(&data, &[]).await;
    let agent = s.login(AGENT).await;
    let conv = open(&s, &agent, json!({"name": "Persistente"})).await;
    s.send_text(&agent, &conv, "arándano").await;
    found_within(&s, &agent, CONVERSATIONS, "arandano", &conv, Duration::from_secs(5)).await;

    // A clean stop records where the store was: no rebuild, found at once.
    s.terminate();
    let mut s = TestServer::start_on(&data, &[]).await;
    let agent = s.login(AGENT).await;
    assert_eq!(found(&s, &agent, CONVERSATIONS, "arandano").await, vec![conv.clone()]);
    assert!(!s.log_text().contains("rebuilding the search index"), "a current index is not rebuilt");

    // Killed after a write the index had not committed: rebuilt from the store.
    s.send_text(&agent, &conv, "frambuesa").await;
    s.kill();
    let mut s = TestServer::start_on(&data, &[]).await;
    let agent = s.login(AGENT).await;
    found_within(&s, &agent, CONVERSATIONS, "frambuesa", &conv, Duration::from_secs(10)).await;
    assert!(s.log_text().contains("rebuilding the search index"));
    assert_eq!(found(&s, &agent, CONVERSATIONS, "arandano").await, vec![conv.clone()]);

    // Missing altogether: rebuilt too.
    s.terminate();
    std::fs::remove_dir_all(data.join("search")).unwrap();
    let s = TestServer::start_on(&data, &[]).await;
    let agent = s.login(AGENT).await;
    found_within(&s, &agent, CONVERSATIONS, "frambuesa", &conv, Duration::from_secs(10)).await;

    // Turned off: a typed answer, the rest serves.
    drop(s);
    let s = TestServer::start_on(&data, &[("UTALK_SEARCH__ENABLED", "false")]).await;
    let agent = s.login(AGENT).await;
    assert_eq!(TestServer::error_code(search(&s, &agent, CONVERSATIONS, "frambuesa").await, 503).await, "search_unavailable");
    assert_eq!(s.messages(&agent, &conv).await.len(), 2);
}

/// The search index backfill's item in `GET /api/v1/admin/migrations`.
async fn backfill_item(s: &TestServer, admin: &str) -> Value {
    let view = s.get_json("/api/v1/admin/migrations", admin).await;
    let items = view["items"].as_array().unwrap();
    items.iter().find(|m| m["name"] == "search_index").cloned().unwrap_or_else(|| panic!("no search_index item: {view}"))
}

#[tokio::test]
async fn the_backfill_runs_in_the_background_at_its_pace_and_a_clean_stop_resumes_it_from_its_cursor() {
    use utalk_storage::model::{conversation, Channel, Conversation, Customer};
    const RECORDS: usize = 8_000;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    add_user(&data, ADMIN.0, "admin", ADMIN.1);
    // Written straight to the store, with no index beside it: the first start fills one.
    let convs: Vec<Conversation> = (0..RECORDS)
        .map(|n| {
            let customer = Customer { name: Some(format!("Cliente{n:05}")), ..Customer::default() };
            Conversation::new(Channel::Web, customer, None)
        })
        .collect();
    {
        let db = utalk_storage::Db::open(&data, &utalk_storage::DbOptions::default()).unwrap();
        let batches: Vec<_> = convs.iter().map(|c| conversation::put_batch(None, c).unwrap()).collect();
        db.write_group(batches.iter(), true).unwrap();
    }

    // At 1% of the time the backfill pauses ~99 times as long as each step: it is caught halfway.
    // The cluster's migrations stay off: linking these conversations to
    // contacts would add records for the backfill to count.
    const NO_MIGRATIONS: (&str, &str) = ("UTALK_JOBS__DATA_MIGRATIONS", "0 0 0 1 1 *");
    let mut s = TestServer::start_on(&data, &[("UTALK_SEARCH__BACKFILL_DUTY_PERCENT", "1"), NO_MIGRATIONS]).await;
    let admin = s.login(ADMIN).await;
    let started = Instant::now();
    let halfway = loop {
        let item = backfill_item(&s, &admin).await;
        assert_eq!(item["scope"], "node", "{item}");
        let processed = item["processed"].as_u64().unwrap();
        if processed > 0 {
            assert_eq!(item["state"], "running", "{item}");
            assert!(item["startedAt"].is_string() && item["finishedAt"].is_null(), "{item}");
            break processed;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "the backfill did not start: {item}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(halfway < RECORDS as u64, "{halfway}");
    // The server serves meanwhile: a new conversation is found at once, an old one not yet walked is not.
    let fresh = open(&s, &admin, json!({"name": "Recienllegada"})).await;
    found_within(&s, &admin, CONVERSATIONS, "recienllegada", &fresh, Duration::from_secs(5)).await;
    assert!(found(&s, &admin, CONVERSATIONS, &format!("cliente{:05}", RECORDS - 1)).await.is_empty(), "the last record is not walked yet");
    s.terminate();

    // The clean stop recorded the cursor: the CLI says so, and the next start goes on from it.
    let (ok, out, err) = utalk(&data, &["migrate", "status"], "");
    assert!(ok, "{out} {err}");
    let line = out.lines().find(|l| l.starts_with("background search_index")).unwrap_or_else(|| panic!("{out}"));
    assert!(line.contains(": running,"), "{line}");
    let s = TestServer::start_on(&data, &[NO_MIGRATIONS]).await;
    let admin = s.login(ADMIN).await;
    let started = Instant::now();
    let done = loop {
        let item = backfill_item(&s, &admin).await;
        if item["state"] == "done" {
            break item;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "the backfill did not finish: {item}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(s.log_text().contains("resuming the search index backfill"), "resumed, not started over");
    assert!(!s.log_text().contains("rebuilding the search index from the store"), "not started over");
    // The count goes on from where the clean stop left it, to the store's
    // 8,000 and what was written meanwhile (the conversation, and its contact if one was made).
    let processed = done["processed"].as_u64().unwrap();
    assert!((RECORDS as u64 + 1..=RECORDS as u64 + 2).contains(&processed), "{done}");
    assert!(done["finishedAt"].is_string() && done["lastError"].is_null(), "{done}");
    for n in [0, RECORDS / 2, RECORDS - 1] {
        assert_eq!(found(&s, &admin, CONVERSATIONS, &format!("cliente{n:05}")).await, vec![convs[n].id.to_string()], "{n}");
    }
    assert_eq!(found(&s, &admin, CONVERSATIONS, "recienllegada").await, vec![fresh]);
}
