//! The tools agents use every minute: private notes (staff only, never to
//! the customer, a channel, the bot or an integrator), canned responses and
//! labels with the list filter.

use crate::helpers::*;
use serde_json::{json, Value};
use uuid::Uuid;

async fn send(s: &TestServer, token: &str, conv: &str, body: Value) -> reqwest::Response {
    s.http.post(s.url(&format!("/api/v1/conversations/{conv}/messages"))).bearer_auth(token).json(&body).send().await.unwrap()
}

async fn patch(s: &TestServer, token: &str, conv: &str, body: Value) -> reqwest::Response {
    s.http.patch(s.url(&format!("/api/v1/conversations/{conv}"))).bearer_auth(token).json(&body).send().await.unwrap()
}

fn texts(messages: &[Value]) -> Vec<String> {
    messages.iter().filter_map(|m| m["text"].as_str().map(str::to_string)).collect()
}

#[tokio::test]
async fn private_notes_reach_staff_only_and_change_nothing_else() {
    let s = TestServer::start_with(&[("UTALK_WEBHOOKS__ALLOW_PRIVATE_TARGETS", "true")]).await;
    let admin = s.login(ADMIN).await;
    let agent = s.login(AGENT).await;
    add_user_live(&s, &admin, "reader@example.com", "readonly").await;
    let reader = s.login(("reader@example.com", "reader-password-1")).await;
    // An integrator listening to every message.
    let hook = s
        .http
        .post(s.url("/api/v1/webhooks"))
        .bearer_auth(&admin)
        .json(&json!({"url": "http://127.0.0.1:9/hooks", "events": ["message.created"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(hook.status(), 201);
    let hook: Value = hook.json().await.unwrap();

    // A customer on the widget, the bot off so only our messages are there.
    let widget: Value = s.http.post(s.url("/api/v1/widget/sessions")).json(&json!({})).send().await.unwrap().json().await.unwrap();
    let (wtoken, conv) = (widget["token"].as_str().unwrap(), widget["conversationId"].as_str().unwrap());
    assert_eq!(patch(&s, &agent, conv, json!({"botEnabled": false})).await.status(), 200);
    s.send_text(wtoken, conv, "hola, mi pedido no llegó").await;

    let r = send(&s, &agent, conv, json!({"messageId": Uuid::new_v4(), "text": "NOTA-SECRETA: cliente con dos reclamos", "private": true}))
        .await;
    assert_eq!(r.status(), 201);
    let note: Value = r.json().await.unwrap();
    assert_eq!(note["private"], true, "{note}");
    assert_eq!(note["status"], "sent");
    s.send_text(&agent, conv, "Hola, lo reviso ahora").await;

    // Staff read the note in place; the customer never sees it, and the seqs stay gap-free for staff.
    let staff_view = s.messages(&agent, conv).await;
    assert_eq!(texts(&staff_view), ["hola, mi pedido no llegó", "NOTA-SECRETA: cliente con dos reclamos", "Hola, lo reviso ahora"]);
    assert_eq!(staff_view.iter().map(|m| m["seq"].as_u64().unwrap()).collect::<Vec<_>>(), [1, 2, 3]);
    assert!(staff_view[0].get("private").is_none() && staff_view[2].get("private").is_none(), "false is left out");
    assert_eq!(texts(&s.messages(&reader, conv).await).len(), 3, "read-only staff read notes too");
    let customer_view = s.messages(wtoken, conv).await;
    assert_eq!(texts(&customer_view), ["hola, mi pedido no llegó", "Hola, lo reviso ahora"]);
    let page = s.get_json(&format!("/api/v1/conversations/{conv}/messages?limit=1&afterSeq=1"), wtoken).await;
    assert_eq!(texts(page["items"].as_array().unwrap()), ["Hola, lo reviso ahora"], "a page skips the note and stays full");

    // A note is no reply: the first agent reply is the public one.
    let c = s.get_json(&format!("/api/v1/conversations/{conv}"), &agent).await;
    assert_eq!(c["firstAgentReplyAt"], staff_view[2]["createdAt"], "{c}");

    // Who may not write notes: the customer, read-only staff.
    let r = send(&s, wtoken, conv, json!({"messageId": Uuid::new_v4(), "text": "x", "private": true})).await;
    assert_eq!(TestServer::error_code(r, 403).await, "forbidden");
    let r = send(&s, &reader, conv, json!({"messageId": Uuid::new_v4(), "text": "x", "private": true})).await;
    assert_eq!(TestServer::error_code(r, 403).await, "forbidden");
    let r = send(&s, &agent, conv, json!({"messageId": Uuid::new_v4(), "text": "x", "private": "yes"})).await;
    assert_eq!(TestServer::error_code(r, 422).await, "validation_failed");
    assert_eq!(s.messages(&agent, conv).await.len(), 3, "refused notes store nothing");

    // The integrator heard the customer and the reply, never the note.
    let hook_id = hook["id"].as_str().unwrap();
    let mut seen = Vec::new();
    for _ in 0..50 {
        let d = s.get_json(&format!("/api/v1/webhooks/{hook_id}/deliveries?limit=200"), &admin).await;
        seen = d["items"].as_array().unwrap().clone();
        if seen.len() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let bodies = serde_json::to_string(&seen).unwrap();
    assert_eq!(seen.len(), 2, "{bodies}");
    assert!(!bodies.contains("NOTA-SECRETA"), "{bodies}");

    // WhatsApp: a note never reaches the outbox, so never Twilio.
    let wa = s
        .http
        .post(s.url("/api/v1/conversations"))
        .bearer_auth(&agent)
        .json(&json!({"channel": "whatsapp", "customer": {"phone": "+5215550002"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(wa.status(), 201);
    let wa: Value = wa.json().await.unwrap();
    let wa = wa["id"].as_str().unwrap().to_string();
    let r = send(&s, &agent, &wa, json!({"messageId": Uuid::new_v4(), "text": "nota interna", "private": true})).await;
    let note: Value = r.json().await.unwrap();
    assert_eq!(note["status"], "sent", "not queued for the channel: {note}");
    // The customer never wrote: free text is refused, a template goes to the outbox.
    let r = send(&s, &agent, &wa, json!({"messageId": Uuid::new_v4(), "text": "respuesta al cliente"})).await;
    assert_eq!(TestServer::error_code(r, 409).await, "whatsapp_window_closed");
    let template = json!({"contentSid": format!("HX{}", "0f".repeat(16)), "variables": {"1": "Ana"}});
    let r = send(&s, &agent, &wa, json!({"messageId": Uuid::new_v4(), "template": template})).await;
    assert_eq!(r.status(), 201);
    let reply: Value = r.json().await.unwrap();
    assert_eq!(reply["template"], template);
    assert_ne!(reply["status"], "sent", "a public reply goes to the outbox: {reply}");
    for (bad, code) in [
        (json!({"contentSid": "HX12", "variables": {}}), "invalid_template"),
        (json!({"contentSid": format!("HX{}", "0f".repeat(16)), "variables": {"name": "x"}}), "invalid_template"),
    ] {
        let r = send(&s, &agent, &wa, json!({"messageId": Uuid::new_v4(), "template": bad})).await;
        assert_eq!(TestServer::error_code(r, 422).await, code);
    }
    let r = send(&s, &agent, conv, json!({"messageId": Uuid::new_v4(), "template": template})).await;
    assert_eq!(TestServer::error_code(r, 422).await, "template_not_supported");
    let window = s.get_json(&format!("/api/v1/conversations/{wa}"), &agent).await["whatsappWindow"].clone();
    assert_eq!(window, json!({"open": false, "until": null}));
    let outbox = s.get_json("/api/v1/admin/outbox?limit=200", &admin).await;
    let entries: Vec<&Value> = outbox["items"].as_array().unwrap().iter().filter(|e| e["conversationId"] == wa.as_str()).collect();
    assert_eq!(entries.len(), 1, "only the reply: {outbox}");
    assert_eq!(entries[0]["seq"], reply["seq"]);
}

async fn add_user_live(s: &TestServer, admin: &str, email: &str, role: &str) {
    let r = s
        .http
        .post(s.url("/api/v1/users"))
        .bearer_auth(admin)
        .json(&json!({"email": email, "password": "reader-password-1", "role": role}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
}

#[tokio::test]
async fn labels_are_set_checked_and_filter_the_list() {
    let s = TestServer::start().await;
    let agent = s.login(AGENT).await;
    let (a, b, c) = (s.create_conversation(&agent).await, s.create_conversation(&agent).await, s.create_conversation(&agent).await);

    let r = patch(&s, &agent, &a, json!({"labels": ["vip", "billing", "vip"]})).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["labels"], json!(["billing", "vip"]), "sorted, each once");
    assert_eq!(patch(&s, &agent, &b, json!({"labels": ["vip"]})).await.status(), 200);
    assert_eq!(s.get_json(&format!("/api/v1/conversations/{c}"), &agent).await["labels"], json!([]));

    let ids = |v: Value| v["items"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap().to_string()).collect::<Vec<_>>();
    assert_eq!(ids(s.get_json("/api/v1/conversations?label=vip", &agent).await), [a.as_str(), b.as_str()]);
    assert_eq!(ids(s.get_json("/api/v1/conversations?label=billing&sort=lastActivity", &agent).await), [a.as_str()]);
    assert_eq!(ids(s.get_json("/api/v1/conversations?label=vip&status=closed", &agent).await), Vec::<String>::new());

    // Removing a label takes the conversation out of its filter.
    assert_eq!(patch(&s, &agent, &a, json!({"labels": []})).await.status(), 200);
    assert_eq!(ids(s.get_json("/api/v1/conversations?label=vip", &agent).await), [b.as_str()]);

    // Bad labels change nothing.
    let r = patch(&s, &agent, &b, json!({"labels": ["VIP"]})).await;
    assert_eq!(TestServer::error_code(r, 422).await, "invalid_label");
    let r = patch(&s, &agent, &b, json!({"labels": ["x".repeat(33)]})).await;
    assert_eq!(TestServer::error_code(r, 422).await, "invalid_label");
    let many: Vec<String> = (0..11).map(|i| format!("l{i}")).collect();
    let r = patch(&s, &agent, &b, json!({"labels": many})).await;
    assert_eq!(TestServer::error_code(r, 422).await, "too_many_labels");
    let r = patch(&s, &agent, &b, json!({})).await;
    assert_eq!(TestServer::error_code(r, 422).await, "empty_change");
    assert_eq!(s.get_json(&format!("/api/v1/conversations/{b}"), &agent).await["labels"], json!(["vip"]));
    let r = s.http.get(s.url("/api/v1/conversations?label=Bad%20Label")).bearer_auth(&agent).send().await.unwrap();
    assert_eq!(TestServer::error_code(r, 400).await, "invalid_query");

    // The bot is paused and resumed the same way.
    let r: Value = patch(&s, &agent, &b, json!({"botEnabled": false})).await.json().await.unwrap();
    assert_eq!(r["botEnabled"], false);
    let r: Value = patch(&s, &agent, &b, json!({"botEnabled": true})).await.json().await.unwrap();
    assert_eq!(r["botEnabled"], true);
}

async fn canned(s: &TestServer, method: reqwest::Method, path: &str, token: &str, body: Option<Value>) -> reqwest::Response {
    let mut req = s.http.request(method, s.url(&format!("/api/v1/canned-responses{path}"))).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn canned_responses_are_kept_under_unique_short_codes() {
    use reqwest::Method;
    let mut s = TestServer::start().await;
    let admin = s.login(ADMIN).await;
    let agent = s.login(AGENT).await;
    add_user_live(&s, &admin, "reader@example.com", "readonly").await;
    let reader = s.login(("reader@example.com", "reader-password-1")).await;

    let r = canned(&s, Method::POST, "", &agent, Some(json!({"shortCode": "hours", "content": "Abrimos de 9 a 18 h."}))).await;
    assert_eq!(r.status(), 201);
    let hours: Value = r.json().await.unwrap();
    let r = canned(&s, Method::POST, "", &admin, Some(json!({"shortCode": "hello", "content": "¡Hola! ¿En qué te ayudo?"}))).await;
    assert_eq!(r.status(), 201);
    let r = canned(&s, Method::POST, "", &admin, Some(json!({"shortCode": "bye", "content": "¡Hasta pronto!"}))).await;
    assert_eq!(r.status(), 201);

    // Listed by short code, filtered by prefix, paged.
    let codes = |v: &Value| v["items"].as_array().unwrap().iter().map(|i| i["shortCode"].as_str().unwrap().to_string()).collect::<Vec<_>>();
    let all = s.get_json("/api/v1/canned-responses", &reader).await;
    assert_eq!(codes(&all), ["bye", "hello", "hours"]);
    assert_eq!(codes(&s.get_json("/api/v1/canned-responses?q=h", &agent).await), ["hello", "hours"]);
    let first = s.get_json("/api/v1/canned-responses?limit=2", &agent).await;
    assert_eq!(codes(&first), ["bye", "hello"]);
    let rest = s.get_json(&format!("/api/v1/canned-responses?limit=2&cursor={}", first["nextCursor"].as_str().unwrap()), &agent).await;
    assert_eq!(codes(&rest), ["hours"]);
    assert_eq!(rest["nextCursor"], Value::Null);

    // Short codes stay unique; bad ones are refused; nothing changes.
    let r = canned(&s, Method::POST, "", &agent, Some(json!({"shortCode": "hours", "content": "otra"}))).await;
    assert_eq!(TestServer::error_code(r, 409).await, "short_code_taken");
    for bad in [
        json!({"shortCode": "Hours", "content": "x"}),
        json!({"shortCode": "", "content": "x"}),
        json!({"shortCode": "ok", "content": " "}),
        json!({"shortCode": "ok", "content": "x".repeat(4097)}),
        json!({"shortCode": "a/b", "content": "x"}),
    ] {
        let r = canned(&s, Method::POST, "", &agent, Some(bad.clone())).await;
        assert_eq!(TestServer::error_code(r, 422).await, "validation_failed", "{bad}");
    }
    let id = hours["id"].as_str().unwrap();
    let r = canned(&s, Method::PATCH, &format!("/{id}"), &agent, Some(json!({"shortCode": "bye"}))).await;
    assert_eq!(TestServer::error_code(r, 409).await, "short_code_taken");
    let r = canned(&s, Method::PATCH, &format!("/{id}"), &agent, Some(json!({}))).await;
    assert_eq!(TestServer::error_code(r, 422).await, "empty_change");

    // Roles: read-only staff read but do not write; a widget and an integration key get nothing.
    let r = canned(&s, Method::POST, "", &reader, Some(json!({"shortCode": "nope", "content": "x"}))).await;
    assert_eq!(r.status(), 403);
    let r = canned(&s, Method::DELETE, &format!("/{id}"), &reader, None).await;
    assert_eq!(r.status(), 403);
    let widget: Value = s.http.post(s.url("/api/v1/widget/sessions")).json(&json!({})).send().await.unwrap().json().await.unwrap();
    let r = canned(&s, Method::GET, "", widget["token"].as_str().unwrap(), None).await;
    assert_eq!(r.status(), 403);

    // Changed, then deleted; its short code is free again.
    let r = canned(&s, Method::PATCH, &format!("/{id}"), &agent, Some(json!({"content": "Abrimos de 8 a 20 h."}))).await;
    assert_eq!(r.status(), 200);
    assert_eq!(s.get_json(&format!("/api/v1/canned-responses/{id}"), &reader).await["content"], "Abrimos de 8 a 20 h.");
    assert_eq!(canned(&s, Method::DELETE, &format!("/{id}"), &agent, None).await.status(), 204);
    let r = canned(&s, Method::GET, &format!("/{id}"), &agent, None).await;
    assert_eq!(TestServer::error_code(r, 404).await, "not_found");
    let r = canned(&s, Method::DELETE, &format!("/{id}"), &agent, None).await;
    assert_eq!(TestServer::error_code(r, 404).await, "not_found");
    let r = canned(&s, Method::POST, "", &agent, Some(json!({"shortCode": "hours", "content": "De nuevo"}))).await;
    assert_eq!(r.status(), 201);

    // Kept across a restart; every change audited.
    let data = s.data_dir();
    s.kill();
    let text = exported_audit(&data);
    assert_eq!(text.lines().filter(|l| l.contains("canned_response.")).count(), 6, "{text}");
    let again = TestServer::start_on(&data, &[]).await;
    let agent = again.login(AGENT).await;
    assert_eq!(codes(&again.get_json("/api/v1/canned-responses", &agent).await), ["bye", "hello", "hours"]);
}

#[tokio::test]
async fn the_pages_are_served_with_hashes_and_a_strict_policy() {
    let s = TestServer::start().await;
    let r = s.http.get(s.url("/app/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'") && !csp.contains("unsafe"), "{csp}");
    assert_eq!(r.headers()["cache-control"], "no-cache");
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    let page = r.text().await.unwrap();
    let files: Vec<String> = page.split("\"/app/").skip(1).filter_map(|rest| rest.split('"').next()).map(str::to_string).collect();
    assert!(files.iter().any(|f| f.ends_with(".js")) && files.iter().any(|f| f.ends_with(".css")), "{files:?}");
    for f in &files {
        let r = s.http.get(s.url(&format!("/app/{f}"))).send().await.unwrap();
        assert_eq!(r.status(), 200, "{f}");
        assert_eq!(r.headers()["cache-control"], "public, max-age=31536000, immutable", "{f}");
    }
    // Revalidation answers 304 without the body.
    let r = s.http.get(s.url("/app/")).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(r.status(), 304);
    let r = s.http.get(s.url("/app/app.0000.js")).send().await.unwrap();
    assert_eq!(TestServer::error_code(r, 404).await, "not_found");
    let r = s.http.get(s.url("/app")).send().await.unwrap();
    assert_eq!(r.url().path(), "/app/", "redirected to the page");

    // The widget: one script, gzipped on the wire, under 40 KB gzipped.
    let r = s.http.get(s.url("/widget.js")).header("accept-encoding", "gzip").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/javascript"));
    assert_eq!(r.headers()["cross-origin-resource-policy"], "cross-origin");
    assert_eq!(r.headers()["content-encoding"], "gzip");
    let gzipped = r.bytes().await.unwrap();
    assert!(gzipped.len() < 40 * 1024, "the widget is {} bytes gzipped", gzipped.len());
    let mut body = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gzipped[..]), &mut body).unwrap();
    assert!(body.starts_with(b"(function(){"), "the widget adds no globals to the host page");
    let plain = s.http.get(s.url("/widget.js")).send().await.unwrap();
    assert!(plain.headers().get("content-encoding").is_none());
    assert_eq!(plain.bytes().await.unwrap(), body, "the same file either way");
}
