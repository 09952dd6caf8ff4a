use crate::helpers::*;
use serde_json::{json, Value};
use std::sync::Arc;

#[tokio::test]
async fn two_hundred_concurrent_sends_get_gap_free_seqs() {
    let s = Arc::new(TestServer::start().await);
    let agent = s.login(AGENT).await;
    let conv = s.create_conversation(&agent).await;
    let mut tasks = Vec::new();
    for i in 0..200 {
        let (s, agent, conv) = (s.clone(), agent.clone(), conv.clone());
        tasks.push(tokio::spawn(async move {
            let r = s
                .http
                .post(s.url(&format!("/api/v1/conversations/{conv}/messages")))
                .bearer_auth(&agent)
                .json(&json!({"messageId": uuid::Uuid::new_v4(), "text": format!("message {i}")}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
            r.json::<Value>().await.unwrap()["seq"].as_u64().unwrap()
        }));
    }
    let mut seqs = Vec::new();
    for t in tasks {
        seqs.push(t.await.unwrap());
    }
    seqs.sort();
    assert_eq!(seqs, (1..=200).collect::<Vec<u64>>());
    let stored = s.messages(&agent, &conv).await;
    assert_eq!(stored.iter().map(|m| m["seq"].as_u64().unwrap()).collect::<Vec<_>>(), (1..=200).collect::<Vec<u64>>());
    assert_eq!(s.last_seq(&agent, &conv).await, 200);
}

#[tokio::test]
async fn resending_a_message_id_answers_200_with_the_same_message_and_stores_nothing() {
    let s = TestServer::start().await;
    let agent = s.login(AGENT).await;
    let conv = s.create_conversation(&agent).await;
    let id = uuid::Uuid::new_v4();
    let url = s.url(&format!("/api/v1/conversations/{conv}/messages"));
    let first = s.http.post(&url).bearer_auth(&agent).json(&json!({"messageId": id, "text": "hola"})).send().await.unwrap();
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["id"], id.to_string());
    assert_eq!(first["seq"], 1);
    assert_eq!(first["direction"], "outbound");
    assert_eq!(first["author"]["type"], "agent");
    assert_eq!(first["status"], "sent");
    assert!(first["providerId"].is_null());
    for _ in 0..3 {
        let again = s.http.post(&url).bearer_auth(&agent).json(&json!({"messageId": id, "text": "hola"})).send().await.unwrap();
        assert_eq!(again.status(), 200);
        assert_eq!(again.json::<Value>().await.unwrap(), first);
    }
    assert_eq!(s.messages(&agent, &conv).await.len(), 1);
    // The same id in another conversation is a conflict, not a second message.
    let other = s.create_conversation(&agent).await;
    let r = s
        .http
        .post(s.url(&format!("/api/v1/conversations/{other}/messages")))
        .bearer_auth(&agent)
        .json(&json!({"messageId": id, "text": "hola"}))
        .send()
        .await
        .unwrap();
    assert_eq!(TestServer::error_code(r, 409).await, "message_id_conflict");
    assert_eq!(s.last_seq(&agent, &other).await, 0);
}

#[tokio::test]
async fn message_lists_page_by_seq() {
    let s = TestServer::start().await;
    let agent = s.login(AGENT).await;
    let conv = s.create_conversation(&agent).await;
    for i in 0..7 {
        s.http
            .post(s.url(&format!("/api/v1/conversations/{conv}/messages")))
            .bearer_auth(&agent)
            .json(&json!({"messageId": uuid::Uuid::new_v4(), "text": format!("m{i}")}))
            .send()
            .await
            .unwrap();
    }
    let page: Value = s.get_json(&format!("/api/v1/conversations/{conv}/messages?afterSeq=2&limit=3"), &agent).await;
    let seqs: Vec<u64> = page["items"].as_array().unwrap().iter().map(|m| m["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, vec![3, 4, 5]);
    assert_eq!(page["nextCursor"], "5");
    let rest: Value = s.get_json(&format!("/api/v1/conversations/{conv}/messages?cursor=5&limit=3"), &agent).await;
    assert_eq!(rest["items"].as_array().unwrap().len(), 2);
    assert!(rest["nextCursor"].is_null());
}
