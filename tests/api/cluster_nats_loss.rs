//! Nodes whose NATS server dies connect to another one and go on applying
//! the log. Every node starts connected to NATS server 0 (it learns of the
//! others from it), so when that server dies each node's subscription to the
//! log goes with it: a write through any node must still be acknowledged, and
//! seen on every node, within seconds of the servers electing new leaders,
//! not once the lost subscription times out on its own (it used to take
//! about 45 s, and writes waiting for it failed).

use crate::cluster_nodes::{
    cluster_add_user, create_conversation, http_client, login_polling, post_message, start_three, wait_converged, wait_spread, Expected,
    NODE_IDS,
};
use crate::helpers::AGENT;
use crate::nats::Nats;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Posts `text` as `id` through `base` until it is acknowledged or `within` has passed; its seq.
async fn acked_through(http: &reqwest::Client, base: &str, token: &str, conv: &str, id: &str, text: &str, within: Duration) -> u64 {
    let until = Instant::now() + within;
    let mut last = String::new();
    while Instant::now() < until {
        match post_message(http, base, token, conv, id, text).await {
            Ok((_, v)) => return v["seq"].as_u64().unwrap_or_else(|| panic!("{base}: acknowledgement of {id} without a seq: {v}")),
            Err(f) if !f.retryable => panic!("{base}: {id} refused for good: {}", f.what),
            Err(f) => last = f.what,
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{base}: {id} in {conv} not acknowledged within {within:?}; last failure: {last}");
}

/// Writes each conversation once through every node, noting what was acknowledged.
async fn write_round(
    http: &reqwest::Client,
    bases: &[String],
    tokens: &[String],
    convs: &[String],
    round: &str,
    within: Duration,
    expected: &mut HashMap<String, Vec<Expected>>,
) {
    for conv in convs {
        for (i, (base, token)) in bases.iter().zip(tokens).enumerate() {
            let (id, text) = (Uuid::new_v4().to_string(), format!("{round} through node {}", i + 1));
            let seq = acked_through(http, base, token, conv, &id, &text, within).await;
            expected.entry(conv.clone()).or_default().push(Expected { id, seq, text });
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_whose_nats_server_dies_go_on_applying_the_log() {
    let mut nats = Nats::start().await;
    let first = format!("nats://127.0.0.1:{}", nats.client_port(0));
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let nodes = start_three(&first, &dirs, &[]).await;
    let bases: Vec<String> = nodes.iter().map(|n| n.base.clone()).collect();
    let http = http_client();
    wait_spread(&http, &bases, &NODE_IDS, Duration::from_secs(60)).await;
    cluster_add_user(&dirs[0].path().join("data"), &first, AGENT.0, "agent", AGENT.1).await;
    let mut tokens = Vec::new();
    for base in &bases {
        tokens.push(login_polling(&http, base, AGENT, Duration::from_secs(20)).await);
    }

    // One conversation created through each node, each written once through every node.
    let mut convs = Vec::new();
    for (base, token) in bases.iter().zip(&tokens) {
        convs.push(create_conversation(&http, base, token).await.expect("create a conversation"));
    }
    let mut expected: HashMap<String, Vec<Expected>> = HashMap::new();
    write_round(&http, &bases, &tokens, &convs, "before", Duration::from_secs(20), &mut expected).await;
    wait_converged(&http, &bases, &tokens[0], &expected, Duration::from_secs(20), "before NATS server 0 died").await;

    // Server 0 dies under load: writers go on through every node meanwhile.
    // NATS elects new leaders for what it led within about 4 to 9 s; every
    // write is then acknowledged, and every node sees them all.
    let stop = Instant::now() + Duration::from_secs(14);
    let shared = std::sync::Arc::new(tokio::sync::Mutex::new(expected));
    let mut writers = Vec::new();
    for w in 0..6 {
        let (http, shared) = (http.clone(), shared.clone());
        let (base, token, conv) = (bases[w % 3].clone(), tokens[w % 3].clone(), convs[(w / 3 + w) % 3].clone());
        writers.push(tokio::spawn(async move {
            let mut n = 0;
            while Instant::now() < stop {
                let (id, text) = (Uuid::new_v4().to_string(), format!("writer {w} message {n}"));
                let seq = acked_through(&http, &base, &token, &conv, &id, &text, Duration::from_secs(25)).await;
                shared.lock().await.entry(conv.clone()).or_default().push(Expected { id, seq, text });
                n += 1;
            }
            n
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    nats.kill(0);
    let mut written = 0;
    for w in writers {
        written += w.await.expect("a writer failed");
    }
    assert!(written > 6, "the writers wrote only {written} messages");
    let mut expected = std::mem::take(&mut *shared.lock().await);
    write_round(&http, &bases, &tokens, &convs, "after", Duration::from_secs(25), &mut expected).await;
    wait_converged(&http, &bases, &tokens[0], &expected, Duration::from_secs(15), "after NATS server 0 died").await;
}
