//! Search over three nodes and three NATS servers: each node indexes every
//! log entry it applies, so a message written through one node is found on
//! all three within seconds, by its word with or without accents and by
//! another form of it; a contact made on one node is found on another; who
//! may read conversations finds it there, a widget token may not search.

use crate::cluster_nodes::{create_conversation, login_polling, post_json, post_message, Three, NODE_IDS};
use crate::helpers::{TestServer, AGENT, READONLY};
use crate::search::{found, found_within, search, CONTACTS, CONVERSATIONS};
use futures_util::future::join_all;
use serde_json::{json, Value};
use std::time::Duration;
use uuid::Uuid;

/// Longest a search waits for a write before the test fails.
const BOUND: Duration = Duration::from_secs(10);
/// What "within seconds" means here: five commit intervals of one second.
const FRESH: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_on_one_node_is_found_on_every_node_within_seconds_by_whoever_may_read_it() {
    let three = Three::start(&[(AGENT.0, "agent", AGENT.1), (READONLY.0, "readonly", READONLY.1)]).await;
    let agents = three.logins(AGENT).await;
    let (nodes, bases, http) = (&three.nodes, three.bases.clone(), three.http.clone());

    // A word no other test writes, so that each search below can only find this test's records.
    let marker = format!("marca{}", &Uuid::new_v4().simple().to_string()[..10]);

    // A conversation that has the marker but not the word: the word, not the marker, must select.
    let other = create_conversation(&http, &bases[1], &agents[1]).await.unwrap();
    post_message(&http, &bases[1], &agents[1], &other, &Uuid::new_v4().to_string(), &format!("mi pedido {marker} no llegó"))
        .await
        .unwrap_or_else(|f| panic!("control message: {}", f.what));

    // The write, through node 1; the clocks below start once it is acknowledged.
    let conv = create_conversation(&http, &bases[0], &agents[0]).await.unwrap();
    let text = format!("La facturación de este mes está mal, referencia {marker}");
    let (status, _) = post_message(&http, &bases[0], &agents[0], &conv, &Uuid::new_v4().to_string(), &text)
        .await
        .unwrap_or_else(|f| panic!("message on node 1: {}", f.what));
    assert_eq!(status, 201);

    // With the accent, without it, and in the plural, on each node, all polled at once.
    let queries = [format!("facturación {marker}"), format!("facturacion {marker}"), format!("FACTURACIONES {marker}")];
    let polls = (0..nodes.len()).flat_map(|i| queries.iter().map(move |q| (i, q)));
    let took = join_all(polls.map(|(i, q)| {
        let (n, agent, conv) = (&nodes[i], &agents[i], &conv);
        async move { (NODE_IDS[i], q, found_within(n, agent, CONVERSATIONS, q, conv, BOUND).await) }
    }))
    .await;
    for (node, q, t) in &took {
        eprintln!("search freshness: {node} found q={q:?} {:.0} ms after the write was acknowledged on n1", t.as_secs_f64() * 1000.0);
    }
    for (node, q, t) in &took {
        assert!(*t < FRESH, "{node}: q={q:?} found only after {t:?}");
    }

    // Each form finds that conversation and nothing else, once the control is searchable too.
    for (i, n) in nodes.iter().enumerate() {
        found_within(n, &agents[i], CONVERSATIONS, &format!("pedido {marker}"), &other, BOUND).await;
        for q in &queries {
            assert_eq!(found(n, &agents[i], CONVERSATIONS, q).await, vec![conv.clone()], "{}: q={q:?}", NODE_IDS[i]);
        }
        let mut both = found(n, &agents[i], CONVERSATIONS, &marker).await;
        both.sort();
        let mut want = vec![conv.clone(), other.clone()];
        want.sort();
        assert_eq!(both, want, "{}: the marker alone finds both", NODE_IDS[i]);
    }

    // A contact made on node 2 is found on node 3, accents folded.
    let (status, contact) = post_json(
        &http,
        format!("{}{CONTACTS}", bases[1]),
        &agents[1],
        json!({"name": "Íñigo Etxeberría", "externalId": format!("CRM-{marker}")}),
    )
    .await;
    assert_eq!(status, 201, "{contact}");
    let contact = contact["id"].as_str().unwrap().to_string();
    let t = found_within(&nodes[2], &agents[2], CONTACTS, "inigo etxeberria", &contact, BOUND).await;
    eprintln!("search freshness: n3 found the contact made on n2 {:.0} ms after it was acknowledged", t.as_secs_f64() * 1000.0);
    assert!(t < FRESH, "the contact was found on n3 only after {t:?}");
    assert_eq!(found(&nodes[2], &agents[2], CONTACTS, "Íñigo").await, vec![contact.clone()]);
    assert_eq!(found(&nodes[2], &agents[2], CONTACTS, &format!("crm-{marker}")).await, vec![contact.clone()]);

    // Read-only staff find the conversation and the contact, on a node other than the writer's.
    let reader = login_polling(&http, &bases[2], READONLY, Duration::from_secs(20)).await;
    assert_eq!(found(&nodes[2], &reader, CONVERSATIONS, &queries[1]).await, vec![conv.clone()]);
    assert_eq!(found(&nodes[2], &reader, CONTACTS, "etxeberria").await, vec![contact.clone()]);

    // A widget token may not search, whichever node it asks.
    let r = http.post(format!("{}/api/v1/widget/sessions", bases[1])).json(&json!({})).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let widget: Value = r.json().await.unwrap();
    let wtoken = widget["token"].as_str().unwrap();
    for n in nodes {
        assert_eq!(TestServer::error_code(search(n, wtoken, CONVERSATIONS, &queries[0]).await, 403).await, "forbidden");
        assert_eq!(TestServer::error_code(search(n, wtoken, CONTACTS, "etxeberria").await, 403).await, "forbidden");
    }
}
