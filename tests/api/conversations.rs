use crate::helpers::*;
use serde_json::{json, Value};

#[tokio::test]
async fn conversations_are_created_read_patched_and_filtered() {
    let s = TestServer::start().await;
    let admin = s.login(ADMIN).await;
    let agent_login: Value = s
        .http
        .post(s.url("/api/v1/auth/login"))
        .json(&json!({"email": AGENT.0, "password": AGENT.1}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let agent = agent_login["accessToken"].as_str().unwrap().to_string();
    let agent_id = agent_login["user"]["id"].as_str().unwrap().to_string();

    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(s.create_conversation(&agent).await);
    }
    let c: Value = s.get_json(&format!("/api/v1/conversations/{}", ids[0]), &agent).await;
    assert_eq!(c["status"], "open");
    assert_eq!(c["botEnabled"], true);
    assert_eq!(c["lastSeq"], 0);
    assert_eq!(c["channel"], "api");
    assert!(c["createdAt"].as_str().unwrap().ends_with('Z'));

    let r = s
        .http
        .patch(s.url(&format!("/api/v1/conversations/{}", ids[1])))
        .bearer_auth(&agent)
        .json(&json!({"status": "escalated", "assigneeId": agent_id}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["status"], "escalated");
    assert_eq!(p["botEnabled"], false);
    assert!(p["escalatedAt"].is_string());
    assert_eq!(p["assigneeId"], agent_id.as_str());
    s.http
        .patch(s.url(&format!("/api/v1/conversations/{}", ids[2])))
        .bearer_auth(&agent)
        .json(&json!({"status": "closed"}))
        .send()
        .await
        .unwrap();

    let by_status: Value = s.get_json("/api/v1/conversations?status=escalated", &admin).await;
    let got: Vec<&str> = by_status["items"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(got, vec![ids[1].as_str()]);
    let by_assignee: Value = s.get_json(&format!("/api/v1/conversations?assigneeId={agent_id}"), &admin).await;
    assert_eq!(by_assignee["items"].as_array().unwrap().len(), 1);
    let open: Value = s.get_json("/api/v1/conversations?status=open&botEnabled=true", &admin).await;
    assert_eq!(open["items"].as_array().unwrap().len(), 3);
    // Escalating and closing by PATCH pause the bot, as the dedicated routes do.
    let bot_off: Value = s.get_json("/api/v1/conversations?botEnabled=false", &admin).await;
    assert_eq!(bot_off["items"].as_array().unwrap().len(), 2);

    // Unassigning with null moves it out of the assignee index.
    s.http
        .patch(s.url(&format!("/api/v1/conversations/{}", ids[1])))
        .bearer_auth(&agent)
        .json(&json!({"assigneeId": null}))
        .send()
        .await
        .unwrap();
    let by_assignee: Value = s.get_json(&format!("/api/v1/conversations?assigneeId={agent_id}"), &admin).await;
    assert_eq!(by_assignee["items"].as_array().unwrap().len(), 0);

    // Cursor pagination walks every conversation once, oldest first.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(c) => format!("/api/v1/conversations?limit=2&cursor={c}"),
            None => "/api/v1/conversations?limit=2".to_string(),
        };
        let page: Value = s.get_json(&url, &admin).await;
        seen.extend(page["items"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap().to_string()));
        match page["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen, ids);
}

#[tokio::test]
async fn bad_conversation_requests_are_refused_without_changes() {
    let s = TestServer::start().await;
    let agent = s.login(AGENT).await;
    let conv = s.create_conversation(&agent).await;
    let r = s.http.post(s.url("/api/v1/conversations")).bearer_auth(&agent).json(&json!({"channel": "pigeon"})).send().await.unwrap();
    assert_eq!(TestServer::error_code(r, 422).await, "validation_failed");
    let r = s
        .http
        .post(s.url("/api/v1/conversations"))
        .bearer_auth(&agent)
        .json(&json!({"channel": "web", "customer": {"phone": "call me"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(TestServer::error_code(r, 422).await, "validation_failed");
    let r = s.http.get(s.url("/api/v1/conversations?status=sleeping")).bearer_auth(&agent).send().await.unwrap();
    assert_eq!(TestServer::error_code(r, 400).await, "invalid_status");
    let r = s.http.get(s.url("/api/v1/conversations?limit=0")).bearer_auth(&agent).send().await.unwrap();
    assert_eq!(TestServer::error_code(r, 400).await, "invalid_limit");
    let r = s.http.get(s.url("/api/v1/conversations?channel=fax")).bearer_auth(&agent).send().await.unwrap();
    assert_eq!(TestServer::error_code(r, 400).await, "invalid_channel");
    let r = s.http.get(s.url("/api/v1/conversations/not-a-uuid")).bearer_auth(&agent).send().await.unwrap();
    assert_eq!(TestServer::error_code(r, 400).await, "invalid_path");
    let r = s.http.get(s.url(&format!("/api/v1/conversations/{}", uuid::Uuid::now_v7()))).bearer_auth(&agent).send().await.unwrap();
    assert_eq!(TestServer::error_code(r, 404).await, "not_found");
    let r = s
        .http
        .patch(s.url(&format!("/api/v1/conversations/{conv}")))
        .bearer_auth(&agent)
        .json(&json!({"assigneeId": uuid::Uuid::new_v4()}))
        .send()
        .await
        .unwrap();
    assert_eq!(TestServer::error_code(r, 422).await, "unknown_assignee");
    let r = s.http.patch(s.url(&format!("/api/v1/conversations/{conv}"))).bearer_auth(&agent).json(&json!({})).send().await.unwrap();
    assert_eq!(TestServer::error_code(r, 422).await, "empty_change");
    let c: Value = s.get_json(&format!("/api/v1/conversations/{conv}"), &agent).await;
    assert_eq!(c["status"], "open");
    assert!(c["assigneeId"].is_null());
    let readonly = s.login(READONLY).await;
    let r = s.http.post(s.url("/api/v1/conversations")).bearer_auth(&readonly).json(&json!({"channel": "api"})).send().await.unwrap();
    assert_eq!(TestServer::error_code(r, 403).await, "forbidden");
    let list: Value = s.get_json("/api/v1/conversations", &readonly).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "readonly can read; nothing new was created");
}
