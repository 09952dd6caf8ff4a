//! Jobs over three `utalk` nodes: the scheduled KPI rollup runs on the
//! leading node only and its figures reach every node through the log, the
//! same on each; on-demand rollups on other nodes, even at once, are fenced
//! and leave one set of figures; retention trims the shared records once,
//! on the leading node, and each node's own job history on each node.

use crate::cluster_nodes::{
    cluster_add_user, create_conversation, health, http_client, login_polling, post_json, post_message, start_three, wait_spread, NODE_IDS,
};
use crate::helpers::{utalk, ADMIN, AGENT};
use crate::nats::Nats;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use uuid::Uuid;

async fn get(http: &reqwest::Client, url: String, token: &str) -> Value {
    let r = http.get(&url).bearer_auth(token).send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
    let status = r.status();
    let v: Value = r.json().await.unwrap_or_else(|e| panic!("{url}: {status}, not JSON: {e}"));
    assert_eq!(status, 200, "{url}: {v}");
    v
}

/// The hourly and daily KPI rows a node serves, without the time they are as of.
async fn figures(http: &reqwest::Client, base: &str, token: &str) -> (Value, Value) {
    let hours = get(http, format!("{base}/api/v1/reports/kpis"), token).await;
    let days = get(http, format!("{base}/api/v1/reports/kpis?granularity=day"), token).await;
    (hours["items"].clone(), days["items"].clone())
}

fn messages_in(rows: &Value) -> u64 {
    rows.as_array().map_or(0, |a| a.iter().filter_map(|r| r["messages"].as_u64()).sum())
}

/// Waits until every node serves the same figures, counting `messages` messages.
async fn wait_same_figures(http: &reqwest::Client, bases: &[String], token: &str, messages: u64, within: Duration, what: &str) -> Value {
    let until = Instant::now() + within;
    loop {
        let mut all = Vec::new();
        for base in bases {
            all.push(figures(http, base, token).await);
        }
        let counted: Vec<u64> = all.iter().map(|(h, _)| messages_in(h)).collect();
        if counted.iter().all(|n| *n == messages) && all.iter().all(|f| *f == all[0]) {
            return all[0].0.clone();
        }
        assert!(
            Instant::now() < until,
            "{what}: the nodes' figures differ or miss messages within {within:?}: messages counted {counted:?}, want {messages}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Scheduled runs of `job` a node has on record.
async fn scheduled_runs(http: &reqwest::Client, base: &str, token: &str, job: &str) -> usize {
    let v = get(http, format!("{base}/api/v1/admin/jobs/{job}/runs"), token).await;
    v["items"].as_array().map_or(0, |a| a.iter().filter(|r| r["trigger"] != "manual").count())
}

/// Which node owns shard 0 and so leads the run-once work.
async fn leader(http: &reqwest::Client, bases: &[String]) -> usize {
    for (i, base) in bases.iter().enumerate() {
        let h = health(http, base).await.unwrap_or_else(|e| panic!("{e}"));
        if h["ownedShards"].as_array().is_some_and(|a| a.iter().any(|s| s == 0)) {
            return i;
        }
    }
    panic!("no node owns shard 0");
}

async fn send(http: &reqwest::Client, base: &str, token: &str, conv: &str, text: &str) {
    let id = Uuid::new_v4().to_string();
    let (status, v) =
        post_message(http, base, token, conv, &id, text).await.unwrap_or_else(|f| panic!("{text} through {base}: {}", f.what));
    assert_eq!(status, 201, "{text} through {base}: {v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kpi_rollups_and_retention_run_once_and_every_node_holds_the_same_figures() {
    let nats = Nats::start().await;
    let urls = nats.urls();
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let nodes = start_three(
        &urls,
        &dirs,
        &[
            // Every 2 seconds, so that the test sees many chances to run twice.
            ("UTALK_JOBS__KPI_ROLLUP", "*/2 * * * * *"),
            ("UTALK_JOBS__DAILY_REPORT", "0 0 0 1 1 *"),
            ("UTALK_JOBS__RETENTION", "0 0 0 1 1 *"),
            // Every audit record is past its age, so that a retention run has something shared to remove.
            ("UTALK_RETENTION__AUDIT_DAYS", "0"),
        ],
    )
    .await;
    let bases: Vec<String> = nodes.iter().map(|n| n.base.clone()).collect();
    let http = http_client();
    wait_spread(&http, &bases, &NODE_IDS, Duration::from_secs(60)).await;
    cluster_add_user(dirs[0].path(), &urls, ADMIN.0, "admin", ADMIN.1).await;
    let mut admin = Vec::new();
    for base in &bases {
        admin.push(login_polling(&http, base, ADMIN, Duration::from_secs(20)).await);
    }
    let (status, v) =
        post_json(&http, format!("{}/api/v1/users", bases[0]), &admin[0], json!({"email": AGENT.0, "role": "agent", "password": AGENT.1}))
            .await;
    assert_eq!(status, 201, "the agent: {v}");
    let agent = login_polling(&http, &bases[2], AGENT, Duration::from_secs(10)).await;

    // Runs on record before the traffic: shard 0 may have moved while the nodes joined.
    let lead = leader(&http, &bases).await;
    let mut before = Vec::new();
    for (i, base) in bases.iter().enumerate() {
        before.push(scheduled_runs(&http, base, &admin[i], "kpi_rollup").await);
    }

    // 1. Traffic through every node; the leader's scheduled rollups bring every node the same figures.
    let mut convs = Vec::new();
    for base in &bases {
        convs.push(create_conversation(&http, base, &agent).await.unwrap_or_else(|e| panic!("{e}")));
    }
    let mut sent = 0u64;
    for (i, conv) in convs.iter().enumerate() {
        for n in 0..4 {
            send(&http, &bases[(i + n) % 3], &agent, conv, &format!("hello {i}.{n}")).await;
            sent += 1;
        }
    }
    let hours = wait_same_figures(&http, &bases, &admin[0], sent, Duration::from_secs(30), "after the scheduled rollups").await;
    assert!(
        hours.as_array().is_some_and(|a| a.iter().any(|r| r["conversations"].as_u64() == Some(3))),
        "three conversations opened: {hours}"
    );

    // Let a few more scheduled runs go by: only the leader runs them.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(leader(&http, &bases).await, lead, "shard 0 moved during the test; the counts below would not mean anything");
    for (i, base) in bases.iter().enumerate() {
        let runs = scheduled_runs(&http, base, &admin[i], "kpi_rollup").await - before[i];
        if i == lead {
            assert!(runs >= 3, "the leading node {} ran the rollup {runs} times in over 5 s of a 2 s schedule", NODE_IDS[i]);
        } else {
            assert_eq!(runs, 0, "node {} does not lead, yet ran the scheduled rollup", NODE_IDS[i]);
        }
    }

    // 2. Rollups on demand on the other nodes, all at once, through the daily
    //    report: each is fenced on the rollups' log subject, so one set of figures stands.
    for (i, conv) in convs.iter().enumerate() {
        send(&http, &bases[i], &agent, conv, &format!("late {i}")).await;
        sent += 1;
    }
    let reports: Vec<_> = (0..3)
        .map(|i| {
            let (http, url, token) = (http.clone(), format!("{}/api/v1/reports/daily", bases[i]), admin[i].clone());
            tokio::spawn(async move { post_json(&http, url, &token, json!({})).await })
        })
        .collect();
    for (i, r) in reports.into_iter().enumerate() {
        let (status, v) = r.await.unwrap();
        assert_eq!(status, 201, "the daily report on {}: {v}", NODE_IDS[i]);
    }
    wait_same_figures(&http, &bases, &admin[0], sent, Duration::from_secs(30), "after three rollups at once").await;

    // The daily report job on a node that does not lead waits for the
    // leader's next scheduled rollup instead of rolling up itself, and its
    // report counts what was sent before it started.
    let other = (lead + 1) % 3;
    send(&http, &bases[other], &agent, &convs[0], "before the report").await;
    sent += 1;
    let (status, run) = post_json(&http, format!("{}/api/v1/admin/jobs/daily_report/run", bases[other]), &admin[other], json!({})).await;
    assert_eq!((status, run["outcome"].as_str()), (200, Some("ok")), "the daily report job on {}: {run}", NODE_IDS[other]);
    let hours = figures(&http, &bases[other], &admin[other]).await.0;
    assert_eq!(messages_in(&hours), sent, "the report's rollup missed a message sent before it started");

    // 3. Retention: on a node that does not lead it trims only its own job
    //    history; on the leader it also removes the shared audit records.
    let (status, run) = post_json(&http, format!("{}/api/v1/admin/jobs/retention/run", bases[other]), &admin[other], json!({})).await;
    assert_eq!((status, run["outcome"].as_str()), (200, Some("ok")), "retention on {}: {run}", NODE_IDS[other]);
    assert_eq!(run["figures"]["sharedLeftToLeader"], 1.0, "{run}");
    assert!(run["figures"]["auditRemoved"].is_null(), "a node that does not lead removed audit records: {run}");
    let (status, run) = post_json(&http, format!("{}/api/v1/admin/jobs/retention/run", bases[lead]), &admin[lead], json!({})).await;
    assert_eq!((status, run["outcome"].as_str()), (200, Some("ok")), "retention on the leader: {run}");
    assert!(run["figures"]["sharedLeftToLeader"].is_null(), "{run}");
    assert!(run["figures"]["auditRemoved"].as_f64() >= Some(1.0), "the leader found no audit record past an age of 0 days: {run}");

    // The figures are untouched by retention and still the same everywhere.
    let served = wait_same_figures(&http, &bases, &admin[0], sent, Duration::from_secs(10), "after retention").await;

    // `utalk report` on a stopped node's data directory reads the cluster's
    // figures as they are: a rollup there would be that node's alone.
    let mut nodes = nodes;
    nodes[other].kill();
    let (ok, out, err) = utalk(&dirs[other].path().join("data"), &["report", "kpis", "--format", "json"], "");
    assert!(ok, "utalk report on a stopped cluster node: {err}");
    assert!(err.contains("belongs to a cluster node") && !err.contains("rolled up"), "{err}");
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"));
    assert_eq!(v["items"], served, "the CLI's figures differ from what the nodes served");
    drop(nodes);
}

/// How many stored messages of the node in `dir` are in each envelope version.
fn message_versions(dir: &std::path::Path) -> std::collections::BTreeMap<u16, usize> {
    let db = utalk_storage::Db::open_read_only(&dir.join("data")).expect("a node's store reads beside it");
    let mut out = std::collections::BTreeMap::new();
    for (_, v) in db.scan_raw(utalk_storage::Map::Messages, &[], &[], 100_000).expect("scan") {
        *out.entry(utalk_storage::codec::version_of(&v).unwrap_or(0)).or_default() += 1;
    }
    out
}

/// Waits until the store of every node in `dirs` holds `want` (version → messages).
async fn wait_versions(dirs: &[tempfile::TempDir], want: &[(u16, usize)], what: &str) {
    let want: std::collections::BTreeMap<u16, usize> = want.iter().copied().collect();
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let now: Vec<_> = dirs.iter().map(|d| message_versions(d.path())).collect();
        if now.iter().all(|v| *v == want) {
            return;
        }
        assert!(Instant::now() < until, "{what}: {now:?}, not {want:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_format_2_is_turned_on_once_for_the_cluster_and_every_node_stores_it() {
    let nats = Nats::start().await;
    let urls = nats.urls();
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    // Run by hand below, never by the schedule meanwhile.
    let nodes = start_three(&urls, &dirs, &[("UTALK_JOBS__DATA_MIGRATIONS", "0 0 0 1 1 *")]).await;
    let bases: Vec<String> = nodes.iter().map(|n| n.base.clone()).collect();
    let http = http_client();
    wait_spread(&http, &bases, &NODE_IDS, Duration::from_secs(60)).await;
    cluster_add_user(dirs[0].path(), &urls, ADMIN.0, "admin", ADMIN.1).await;
    let mut admin = Vec::new();
    for base in &bases {
        admin.push(login_polling(&http, base, ADMIN, Duration::from_secs(20)).await);
    }
    // Conversations owned all over the cluster, each written through every node.
    let mut convs = Vec::new();
    for base in &bases {
        convs.push(create_conversation(&http, base, &admin[0]).await.unwrap_or_else(|e| panic!("{e}")));
    }
    let mut sent = 0;
    for (i, conv) in convs.iter().enumerate() {
        for n in 0..30 {
            send(&http, &bases[(i + n) % 3], &admin[0], conv, &format!("hola {i}.{n}")).await;
            sent += 1;
        }
    }
    wait_versions(&dirs, &[(1, sent)], "format 1 on every node").await;

    // Run on the last node: the rewrites go to each conversation's owner.
    let (status, run) = post_json(&http, format!("{}/api/v1/admin/jobs/data_migrations/run", bases[2]), &admin[2], json!({})).await;
    assert_eq!((status, run["outcome"].as_str()), (200, Some("ok")), "{run}");
    wait_versions(&dirs, &[(2, sent)], "format 2 on every node").await;
    for (i, base) in bases.iter().enumerate() {
        let m = get(&http, format!("{base}/api/v1/admin/migrations"), &admin[i]).await;
        let f = m["items"].as_array().unwrap().iter().find(|x| x["name"] == "message_format").unwrap().clone();
        assert_eq!(
            (f["state"].as_str(), f["processed"].as_u64(), m["readableFrom"].as_u64()),
            (Some("done"), Some(sent as u64), Some(7)),
            "{m}"
        );
    }
    // Each node writes format 2 from now on, and the messages read as sent.
    send(&http, &bases[1], &admin[1], &convs[0], "después").await;
    wait_versions(&dirs, &[(2, sent + 1)], "the new message in format 2 everywhere").await;
    let items = get(&http, format!("{}/api/v1/conversations/{}/messages?limit=200", bases[0], convs[1]), &admin[0]).await;
    let texts: Vec<&str> = items["items"].as_array().unwrap().iter().filter_map(|m| m["text"].as_str()).collect();
    assert_eq!(texts, (0..30).map(|n| format!("hola 1.{n}")).collect::<Vec<_>>());
}
