//! SIGKILL under load: every acknowledged message is there after restart.

use crate::helpers::*;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
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
    // message id → (conversation, seq) of every 201/200 the clients got.
    let acked: Arc<Mutex<HashMap<String, (String, u64)>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = Vec::new();
    for c in 0..8 {
        let (http, base, agent, conv, acked, stop) =
            (s.http.clone(), s.base.clone(), agent.clone(), convs[c % convs.len()].clone(), acked.clone(), stop.clone());
        clients.push(tokio::spawn(async move {
            let mut sent = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let id = uuid::Uuid::new_v4().to_string();
                let r = http
                    .post(format!("{base}/api/v1/conversations/{conv}/messages"))
                    .bearer_auth(&agent)
                    .json(&json!({"messageId": id, "text": format!("client {c}")}))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status().is_success() => {
                        if let Ok(v) = r.json::<Value>().await {
                            acked.lock().unwrap().insert(id, (conv.clone(), v["seq"].as_u64().unwrap()));
                            sent += 1;
                        }
                    }
                    _ => break,
                }
            }
            sent
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    s.kill();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 50, "too little load before the kill: {}", acked.len());

    let s = TestServer::start_on(&data, &[]).await;
    let agent = s.login(AGENT).await;
    for conv in &convs {
        let stored = s.messages(&agent, conv).await;
        let seqs: Vec<u64> = stored.iter().map(|m| m["seq"].as_u64().unwrap()).collect();
        assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "seqs of {conv} have a gap");
        let by_id: HashMap<&str, u64> = stored.iter().map(|m| (m["id"].as_str().unwrap(), m["seq"].as_u64().unwrap())).collect();
        for (id, (c, seq)) in acked.iter().filter(|(_, (c, _))| c == conv) {
            assert_eq!(by_id.get(id.as_str()), Some(seq), "acknowledged message {id} in {c} lost or moved");
        }
    }
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
