//! Erasing a customer on a cluster: the node that serves the erasure
//! rewrites its files, and so does every other node once the erasure reaches
//! it through the log, so that no node's data directory or search index
//! keeps a byte of what the customer said or their name, and each node's
//! ledger has the erasure for a restore of its own backups.

use crate::cluster_nodes::{login_polling, post_message, Three, NODE_IDS};
use crate::erasure::holding;
use crate::helpers::{ADMIN, AGENT};
use crate::search::{found, found_within, CONTACTS, CONVERSATIONS};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Longest the other nodes take to rewrite their files before the test fails.
const BOUND: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erasure_on_one_node_leaves_no_byte_on_any_node_and_is_in_every_ledger() {
    let three = Three::start(&[(ADMIN.0, "admin", ADMIN.1), (AGENT.0, "agent", AGENT.1)]).await;
    let agents = three.logins(AGENT).await;
    let (nodes, dirs, bases, http) = (&three.nodes, &three.dirs, three.bases.clone(), three.http.clone());
    let admin = login_polling(&http, &bases[0], ADMIN, Duration::from_secs(20)).await;

    // Words no other test writes: the name and what the customer said.
    let tag = Uuid::new_v4().simple().to_string()[..10].to_string();
    let name = format!("Quorvaldname{tag}");
    let said = format!("dijemarker{tag}");
    let r = http
        .post(format!("{}/api/v1/conversations", bases[0]))
        .bearer_auth(&agents[0])
        .json(&json!({"channel": "web", "customer": {"name": name, "email": format!("{tag}@example.com")}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let conv: Value = r.json().await.unwrap();
    let (conv_id, contact) = (conv["id"].as_str().unwrap().to_string(), conv["contactId"].as_str().unwrap().to_string());
    post_message(&http, &bases[0], &agents[0], &conv_id, &Uuid::new_v4().to_string(), &format!("mi clave es {said}"))
        .await
        .unwrap_or_else(|f| panic!("message on node 1: {}", f.what));

    // Every node holds and finds both before: the checks below are able to fail.
    for (i, n) in nodes.iter().enumerate() {
        found_within(n, &agents[i], CONVERSATIONS, &said, &conv_id, BOUND).await;
        found_within(n, &agents[i], CONTACTS, &name, &contact, BOUND).await;
        for m in [&name, &said] {
            assert!(!holding(dirs[i].path(), m.as_bytes()).is_empty(), "node {} holds {m} before", NODE_IDS[i]);
        }
    }

    let r = http.delete(format!("{}/api/v1/contacts/{contact}", bases[0])).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());

    // Node 1 has rewritten its files when it answers; the others within the bound.
    let started = Instant::now();
    for (i, dir) in dirs.iter().enumerate() {
        loop {
            let left: Vec<String> = [&name, &said].iter().flat_map(|m| holding(&dir.path().join("data"), m.as_bytes())).collect();
            if left.is_empty() {
                break;
            }
            assert!(i > 0, "node 1 answered before rewriting its files: {left:?}");
            assert!(started.elapsed() < BOUND, "node {} still holds the erased words after {BOUND:?}: {left:?}", NODE_IDS[i]);
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let ledger = std::fs::read_to_string(dir.path().join("data-backups/erasures.jsonl")).unwrap_or_default();
        assert!(ledger.contains(&contact), "node {}'s ledger names the erased contact: {ledger}", NODE_IDS[i]);
        assert_eq!(ledger.lines().filter(|l| l.contains(&contact)).count(), 1, "once: {ledger}");
        assert!(found(&nodes[i], &agents[i], CONVERSATIONS, &said).await.is_empty(), "node {} still finds the words", NODE_IDS[i]);
        assert!(found(&nodes[i], &agents[i], CONTACTS, &name).await.is_empty());
    }
    eprintln!("every node rewrote its files within {:?} of the erasure's answer", started.elapsed());

    // The conversation itself stays on every node, for the KPIs.
    for (i, base) in bases.iter().enumerate() {
        let r = http.get(format!("{base}/api/v1/conversations/{conv_id}")).bearer_auth(&agents[i]).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
}
