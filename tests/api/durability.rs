//! SIGKILL under load: every acknowledged message is there after restart.

use crate::helpers::*;
use serde_json::{json, Value};
use std::time::Duration;

#[tokio::test]
async fn every_acknowledged_message_survives_sigkill_under_load() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    add_user(&data, AGENT.0, "agent", AGENT.1);
    let mut s = TestServer::start_on(&data, &[]).await;
    let agent = s.login(AGENT).await;
    let mut convs = Vec::new();
    for _ in 0..4 {
        convs.push(s.create_conversation(&agent).await);
    }
    let load = Load::start(&s, &agent, &convs, 8);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    s.kill();
    let acked = load.stop().await;
    assert!(acked.len() > 50, "too little load before the kill: {}", acked.len());

    let s = TestServer::start_on(&data, &[]).await;
    let agent = s.login(AGENT).await;
    assert_acknowledged_stored(&s, &agent, &convs, &acked).await;
    // And the conversations keep going from where they were.
    let conv = &convs[0];
    let before = s.last_seq(&agent, conv).await;
    let r = s
        .http
        .post(s.url(&format!("/api/v1/conversations/{conv}/messages")))
        .bearer_auth(&agent)
        .json(&json!({"messageId": uuid::Uuid::new_v4(), "text": "after restart"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["seq"].as_u64().unwrap(), before + 1);
}
