//! Three `utalk` nodes over three NATS JetStream servers: users added on one
//! node (or through the cluster from the CLI) log in on every node, a
//! conversation keeps one order whichever node takes its writes, and clients
//! that retry their `messageId` on another node lose nothing when a node and
//! then a NATS server die. A node restarted on its data dir catches up.

use crate::helpers::{bin, TestServer, ADMIN, AGENT};
use crate::nats::Nats;
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

const JWT_SECRET: &str = "k3J9xQ2vL8mN4pR7tY1wZ5aB6cD0eF2gH8";
pub(crate) const NODE_IDS: [&str; 3] = ["n1", "n2", "n3"];
const SHARDS: u32 = 64;
const CLIENTS: usize = 8;

/// The environment of node `id`: cluster mode over `urls`, short leases, the
/// shared signing secret, and login throttling out of the way of polling.
pub(crate) fn node_env(urls: &str, id: &str) -> Vec<(String, String)> {
    [
        ("UTALK_CLUSTER_URL", urls),
        ("UTALK_NODE_ID", id),
        // Short leases so that failover fits the test; a request waits for a new owner less than a client waits for it.
        ("UTALK_CLUSTER__LEASE_MS", "3000"),
        ("UTALK_CLUSTER__FORWARD_TIMEOUT_MS", "8000"),
        ("UTALK_JWT_SECRET", JWT_SECRET),
        ("UTALK_AUTH__MAX_FAILURES_PER_ACCOUNT", "100000"),
        ("UTALK_AUTH__MAX_FAILURES_PER_IP", "100000"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

pub(crate) async fn start_node(data: &Path, env: &[(String, String)]) -> TestServer {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    TestServer::start_on(data, &env).await
}

/// Nodes n1, n2 and n3 over `urls`, each on a data dir in its own of `dirs`, with `extra` in their environment.
pub(crate) async fn start_three(urls: &str, dirs: &[tempfile::TempDir], extra: &[(&str, &str)]) -> Vec<TestServer> {
    let mut nodes = Vec::new();
    for (dir, id) in dirs.iter().zip(NODE_IDS) {
        let mut env = node_env(urls, id);
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        nodes.push(start_node(&dir.path().join("data"), &env).await);
    }
    nodes
}

/// Three NATS servers, nodes n1–n3 on them with their shards spread, and
/// `users` (email, role, password) added through the log.
pub(crate) struct Three {
    pub(crate) _nats: Nats,
    pub(crate) dirs: Vec<tempfile::TempDir>,
    pub(crate) nodes: Vec<TestServer>,
    pub(crate) bases: Vec<String>,
    pub(crate) http: reqwest::Client,
}

impl Three {
    pub(crate) async fn start(users: &[(&str, &str, &str)]) -> Three {
        let nats = Nats::start().await;
        let urls = nats.urls();
        let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
        let nodes = start_three(&urls, &dirs, &[]).await;
        let bases: Vec<String> = nodes.iter().map(|n| n.base.clone()).collect();
        let http = http_client();
        wait_spread(&http, &bases, &NODE_IDS, Duration::from_secs(60)).await;
        for (email, role, password) in users {
            cluster_add_user(dirs[0].path(), &urls, email, role, password).await;
        }
        Three { _nats: nats, dirs, nodes, bases, http }
    }

    /// `who`'s access token on each node, in order.
    pub(crate) async fn logins(&self, who: (&str, &str)) -> Vec<String> {
        let mut tokens = Vec::new();
        for base in &self.bases {
            tokens.push(login_polling(&self.http, base, who, Duration::from_secs(20)).await);
        }
        tokens
    }
}

pub(crate) fn http_client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(10)).connect_timeout(Duration::from_secs(2)).build().unwrap()
}

/// `utalk user add` in cluster mode: the user goes into the replicated log, the data dir is not opened.
pub(crate) async fn cluster_add_user(data_dir: &Path, urls: &str, email: &str, role: &str, password: &str) {
    let mut child = Command::new(bin())
        .args(["user", "add", "--email", email, "--role", role, "--password-stdin", "--data-dir"])
        .arg(data_dir)
        .env("UTALK_LOG", "warn")
        .env("UTALK_CLUSTER_URL", urls)
        .env("UTALK_JWT_SECRET", JWT_SECRET)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn utalk user add");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(format!("{password}\n").as_bytes()).unwrap();
    }
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() >= until {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "user add through the cluster did not finish in 30s: {} {}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "user add through the cluster failed ({}): {} {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub(crate) async fn health(http: &reqwest::Client, base: &str) -> Result<Value, String> {
    let r = http.get(format!("{base}/health/cluster")).send().await.map_err(|e| format!("{base}: {e}"))?;
    let status = r.status();
    let body = r.text().await.map_err(|e| format!("{base}: {e}"))?;
    if status != 200 {
        return Err(format!("{base}: /health/cluster answered {status}: {body}"));
    }
    serde_json::from_str(&body).map_err(|e| format!("{base}: /health/cluster is not JSON ({e}): {body}"))
}

/// Checks that the nodes at `bases` (named `ids`) are all in NATS mode,
/// connected, see exactly each other, and own every shard exactly once between them.
fn spread_problem(ids: &[&str], healths: &[Value]) -> Option<String> {
    let mut seen = BTreeSet::new();
    let mut total = 0;
    let want_live: Vec<&str> = {
        let mut v = ids.to_vec();
        v.sort();
        v
    };
    for (id, h) in ids.iter().zip(healths) {
        if h["mode"] != "nats" || h["nodeId"] != *id || h["nats"]["connected"] != true {
            return Some(format!("{id} is not a connected NATS node: {h}"));
        }
        let mut live: Vec<&str> = h["liveNodes"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
        live.sort();
        if live != want_live {
            return Some(format!("{id} sees live nodes {live:?}, not {want_live:?}"));
        }
        let owned: Vec<u32> =
            h["ownedShards"].as_array().map(|a| a.iter().filter_map(|s| s.as_u64().map(|s| s as u32)).collect()).unwrap_or_default();
        if owned.is_empty() {
            return Some(format!("{id} owns no shard"));
        }
        total += owned.len();
        seen.extend(owned);
    }
    if total != SHARDS as usize || seen != (0..SHARDS).collect::<BTreeSet<u32>>() {
        return Some(format!("shards are not owned exactly once: {total} owned, {} distinct", seen.len()));
    }
    None
}

/// Waits until the nodes at `bases` share the shards between them (see [`spread_problem`]).
pub(crate) async fn wait_spread(http: &reqwest::Client, bases: &[String], ids: &[&str], within: Duration) {
    let until = Instant::now() + within;
    loop {
        let mut healths = Vec::new();
        let mut problem = None;
        for base in bases {
            match health(http, base).await {
                Ok(h) => healths.push(h),
                Err(e) => {
                    problem = Some(e);
                    break;
                }
            }
        }
        let problem = problem.or_else(|| spread_problem(ids, &healths));
        let Some(problem) = problem else { return };
        assert!(Instant::now() < until, "shards never settled over {ids:?} within {within:?}: {problem}; health: {healths:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn try_login(http: &reqwest::Client, base: &str, who: (&str, &str)) -> Result<String, String> {
    let r = http
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"email": who.0, "password": who.1}))
        .send()
        .await
        .map_err(|e| format!("{base}: {e}"))?;
    let status = r.status();
    let body = r.text().await.map_err(|e| format!("{base}: {e}"))?;
    if status != 200 {
        return Err(format!("{base}: login of {} answered {status}: {body}", who.0));
    }
    let v: Value = serde_json::from_str(&body).map_err(|e| format!("{base}: login answer is not JSON ({e}): {body}"))?;
    v["accessToken"].as_str().map(str::to_string).ok_or_else(|| format!("{base}: no accessToken in {body}"))
}

/// Logs in on `base`, retrying until the user has reached that node.
pub(crate) async fn login_polling(http: &reqwest::Client, base: &str, who: (&str, &str), within: Duration) -> String {
    let until = Instant::now() + within;
    loop {
        match try_login(http, base, who).await {
            Ok(token) => return token,
            Err(e) => assert!(Instant::now() < until, "{} could not log in within {within:?}: {e}", who.0),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

pub(crate) async fn create_conversation(http: &reqwest::Client, base: &str, token: &str) -> Result<String, String> {
    let r = http
        .post(format!("{base}/api/v1/conversations"))
        .bearer_auth(token)
        .json(&json!({"channel": "api", "customer": {"name": "Ana", "phone": "+5215550001"}}))
        .send()
        .await
        .map_err(|e| format!("{base}: {e}"))?;
    let status = r.status();
    let body = r.text().await.map_err(|e| format!("{base}: {e}"))?;
    if status != 201 {
        return Err(format!("{base}: create conversation answered {status}: {body}"));
    }
    let v: Value = serde_json::from_str(&body).map_err(|e| format!("{base}: not JSON ({e}): {body}"))?;
    v["id"].as_str().map(str::to_string).ok_or_else(|| format!("{base}: no id in {body}"))
}

/// One failed attempt to send: whether another node may be tried with the same id, and what happened.
pub(crate) struct Failure {
    pub(crate) retryable: bool,
    pub(crate) what: String,
}

/// Posts one message to `base`; 200/201 with a JSON body, else the failure.
pub(crate) async fn post_message(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    conv: &str,
    id: &str,
    text: &str,
) -> Result<(u16, Value), Failure> {
    let r = http
        .post(format!("{base}/api/v1/conversations/{conv}/messages"))
        .bearer_auth(token)
        .json(&json!({"messageId": id, "text": text}))
        .send()
        .await
        .map_err(|e| Failure { retryable: true, what: format!("{base}: {e}") })?;
    let status = r.status().as_u16();
    let body = r.text().await.map_err(|e| Failure { retryable: true, what: format!("{base}: {status}, body lost: {e}") })?;
    if status == 200 || status == 201 {
        let v = serde_json::from_str(&body)
            .map_err(|e| Failure { retryable: false, what: format!("{base}: {status} with a body that is not JSON ({e}): {body}") })?;
        return Ok((status, v));
    }
    let retryable = status >= 500 || status == 408 || status == 429;
    Err(Failure { retryable, what: format!("{base}: {status} {body}") })
}

/// What a client was told about one of its messages.
struct Sent {
    seq: u64,
    /// Each refused attempt: when it ended (from the first send) and why.
    failures: Vec<String>,
}

/// Sends `id` starting at node `first`, moving to the next node after each
/// retryable failure, until one acknowledges it or 60 s have passed.
async fn send_until_acked(
    http: &reqwest::Client,
    bases: &[String],
    first: usize,
    token: &str,
    conv: &str,
    id: &str,
    text: &str,
) -> Result<Sent, String> {
    let started = Instant::now();
    let until = started + Duration::from_secs(60);
    let mut node = first;
    let mut failures: Vec<String> = Vec::new();
    loop {
        match post_message(http, &bases[node], token, conv, id, text).await {
            Ok((_, v)) => {
                if v["id"].as_str() != Some(id) {
                    return Err(format!("{}: sending {id} acknowledged another message: {v}", bases[node]));
                }
                let Some(seq) = v["seq"].as_u64().filter(|s| *s >= 1) else {
                    return Err(format!("{}: acknowledgement of {id} without a seq: {v}", bases[node]));
                };
                return Ok(Sent { seq, failures });
            }
            Err(f) if !f.retryable => return Err(format!("{id} in {conv} refused for good: {} (after {failures:?})", f.what)),
            Err(f) => failures.push(format!("+{:.1}s {}", started.elapsed().as_secs_f64(), f.what)),
        }
        if Instant::now() >= until {
            let last: Vec<&String> = failures.iter().rev().take(6).collect();
            return Err(format!("{id} in {conv} not acknowledged within 60s after {} failures; last: {last:?}", failures.len()));
        }
        node = (node + 1) % bases.len();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every message of `conv` on `base`, paging by seq.
async fn list_messages(http: &reqwest::Client, base: &str, token: &str, conv: &str) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    let mut after = 0u64;
    loop {
        let url = format!("{base}/api/v1/conversations/{conv}/messages?afterSeq={after}&limit=200");
        let r = http.get(&url).bearer_auth(token).send().await.map_err(|e| format!("{url}: {e}"))?;
        let status = r.status();
        let body = r.text().await.map_err(|e| format!("{url}: {e}"))?;
        if status != 200 {
            return Err(format!("{url}: {status} {body}"));
        }
        let v: Value = serde_json::from_str(&body).map_err(|e| format!("{url}: not JSON ({e}): {body}"))?;
        let items = v["items"].as_array().ok_or_else(|| format!("{url}: no items: {body}"))?.clone();
        let Some(last) = items.last() else { return Ok(out) };
        let last = last["seq"].as_u64().ok_or_else(|| format!("{url}: an item without a seq: {body}"))?;
        if last <= after {
            return Err(format!("{url}: a page that does not move forward: {body}"));
        }
        after = last;
        out.extend(items);
    }
}

/// A message a client had acknowledged: its id, the seq it was given, its text.
#[derive(Clone, Debug)]
pub(crate) struct Expected {
    pub(crate) id: String,
    pub(crate) seq: u64,
    pub(crate) text: String,
}

/// Checks one node's list of a conversation against its acknowledgements:
/// seqs 1..=n without gaps, each message once, every acknowledged message at
/// its seq with its text, and nothing that was never acknowledged.
fn check_list(list: &[Value], expected: &[Expected]) -> Result<(), String> {
    let seqs: Vec<u64> = list.iter().map(|m| m["seq"].as_u64().unwrap_or(0)).collect();
    if seqs != (1..=list.len() as u64).collect::<Vec<_>>() {
        return Err(format!("seqs are not 1..={} without gaps: {seqs:?}", list.len()));
    }
    let mut by_id: HashMap<&str, &Value> = HashMap::new();
    for m in list {
        let id = m["id"].as_str().ok_or_else(|| format!("a message without an id: {m}"))?;
        if by_id.insert(id, m).is_some() {
            return Err(format!("message {id} is stored twice"));
        }
    }
    for e in expected {
        let Some(m) = by_id.get(e.id.as_str()) else {
            return Err(format!("acknowledged message {} (seq {}) is missing; stored seqs 1..={}", e.id, e.seq, list.len()));
        };
        if m["seq"].as_u64() != Some(e.seq) || m["text"].as_str() != Some(e.text.as_str()) {
            return Err(format!("acknowledged message {} was seq {} text {:?}, stored as {m}", e.id, e.seq, e.text));
        }
    }
    if list.len() != expected.len() {
        let acked: HashSet<&str> = expected.iter().map(|e| e.id.as_str()).collect();
        let extra: Vec<&Value> = list.iter().filter(|m| !m["id"].as_str().is_some_and(|id| acked.contains(id))).collect();
        return Err(format!("{} stored, {} acknowledged; never acknowledged: {extra:?}", list.len(), expected.len()));
    }
    Ok(())
}

/// Whether every node in `bases` holds every conversation of `expected` as acknowledged, identically.
async fn converged(http: &reqwest::Client, bases: &[String], token: &str, expected: &HashMap<String, Vec<Expected>>) -> Result<(), String> {
    for (conv, exp) in expected {
        let mut first: Option<Vec<Value>> = None;
        for base in bases {
            let list = list_messages(http, base, token, conv).await?;
            check_list(&list, exp).map_err(|e| format!("{base}, conversation {conv}: {e}"))?;
            match &first {
                None => first = Some(list),
                Some(f) if *f != list => {
                    let at = f.iter().zip(&list).position(|(a, b)| a != b).unwrap_or(f.len().min(list.len()));
                    return Err(format!("{base} differs from {} on {conv} at index {at}: {:?} vs {:?}", bases[0], f.get(at), list.get(at)));
                }
                Some(_) => {}
            }
        }
    }
    Ok(())
}

pub(crate) async fn wait_converged(
    http: &reqwest::Client,
    bases: &[String],
    token: &str,
    expected: &HashMap<String, Vec<Expected>>,
    within: Duration,
    what: &str,
) {
    let until = Instant::now() + within;
    loop {
        match converged(http, bases, token, expected).await {
            Ok(()) => return,
            Err(e) => assert!(Instant::now() < until, "{what}: not converged within {within:?}: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// One acknowledgement under load.
#[derive(Clone, Debug)]
struct Ack {
    conv: String,
    seq: u64,
    text: String,
    /// When the client first sent the message.
    started: Instant,
    /// When it was acknowledged.
    acked: Instant,
    /// The attempts refused before it was.
    failures: Vec<String>,
}

type Acks = Arc<Mutex<HashMap<String, Ack>>>;

/// Clients each writing to their own conversation through every node in
/// turn, retrying a failed message with the same id on the next node.
struct Clients {
    acks: Acks,
    failures: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<Result<usize, String>>>,
}

impl Clients {
    fn start(http: &reqwest::Client, bases: &[String], token: &str, convs: &[String]) -> Clients {
        let acks: Acks = Arc::default();
        let failures = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let bases = Arc::new(bases.to_vec());
        let tasks = convs
            .iter()
            .enumerate()
            .map(|(c, conv)| {
                let (http, bases, token, conv) = (http.clone(), bases.clone(), token.to_string(), conv.clone());
                let (acks, failures, stop) = (acks.clone(), failures.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut n = 0usize;
                    while !stop.load(Ordering::Relaxed) {
                        let id = Uuid::new_v4().to_string();
                        let text = format!("client {c} message {n}");
                        let started = Instant::now();
                        let sent = send_until_acked(&http, &bases, (c + n) % bases.len(), &token, &conv, &id, &text).await?;
                        failures.fetch_add(sent.failures.len(), Ordering::Relaxed);
                        let ack = Ack { conv: conv.clone(), seq: sent.seq, text, started, acked: Instant::now(), failures: sent.failures };
                        acks.lock().unwrap().insert(id, ack);
                        n += 1;
                    }
                    Ok::<usize, String>(n)
                })
            })
            .collect();
        Clients { acks, failures, stop, tasks }
    }

    fn snapshot(&self) -> HashMap<String, Ack> {
        self.acks.lock().unwrap().clone()
    }

    /// Stops the clients, asserting each ended without giving up on a message.
    async fn stop(self) -> (HashMap<String, Ack>, usize) {
        self.stop.store(true, Ordering::Relaxed);
        for (c, t) in self.tasks.into_iter().enumerate() {
            match tokio::time::timeout(Duration::from_secs(90), t).await {
                Ok(Ok(Ok(_))) => {}
                Ok(Ok(Err(e))) => panic!("client {c} gave up: {e}"),
                Ok(Err(e)) => panic!("client {c} panicked: {e}"),
                Err(_) => panic!("client {c} did not finish its last message within 90s"),
            }
        }
        let acks = self.acks.lock().unwrap().clone();
        (acks, self.failures.load(Ordering::Relaxed))
    }
}

/// Acknowledgements of messages first sent at or after `from` and acknowledged before `to`.
fn sent_between(acks: &HashMap<String, Ack>, from: Instant, to: Instant) -> usize {
    acks.values().filter(|a| a.started >= from && a.acked < to).count()
}

fn expected_by_conv(acks: &HashMap<String, Ack>, convs: &[String]) -> HashMap<String, Vec<Expected>> {
    let mut out: HashMap<String, Vec<Expected>> = convs.iter().map(|c| (c.clone(), Vec::new())).collect();
    for (id, a) in acks {
        out.get_mut(&a.conv).unwrap_or_else(|| panic!("an acknowledgement for unknown conversation {}", a.conv)).push(Expected {
            id: id.clone(),
            seq: a.seq,
            text: a.text.clone(),
        });
    }
    for v in out.values_mut() {
        v.sort_by_key(|e| e.seq);
    }
    out
}

async fn wait_caught_up(http: &reqwest::Client, base: &str, within: Duration) -> Value {
    let until = Instant::now() + within;
    loop {
        let h = health(http, base).await;
        match &h {
            Ok(v) if v["mode"] == "nats" && v["nats"]["connected"] == true && v["lag"].as_u64() == Some(0) => return v.clone(),
            _ => assert!(Instant::now() < until, "restarted node never caught up within {within:?}: {h:?}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_share_users_order_and_survive_a_node_and_a_nats_server_dying() {
    let mut nats = Nats::start().await;
    let urls = nats.urls();
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let data: Vec<PathBuf> = dirs.iter().map(|d| d.path().join("data")).collect();
    let envs: Vec<Vec<(String, String)>> = NODE_IDS.iter().map(|id| node_env(&urls, id)).collect();
    let mut n1 = start_node(&data[0], &envs[0]).await;
    let n2 = start_node(&data[1], &envs[1]).await;
    let n3 = start_node(&data[2], &envs[2]).await;
    let bases = [n1.base.clone(), n2.base.clone(), n3.base.clone()];
    let http = http_client();

    // 1. The shards spread over the three nodes; an admin added through the
    //    cluster while they run logs in on each of them.
    wait_spread(&http, &bases, &NODE_IDS, Duration::from_secs(60)).await;
    cluster_add_user(&data[0], &urls, ADMIN.0, "admin", ADMIN.1).await;
    let mut admin_tokens = Vec::new();
    for base in &bases {
        admin_tokens.push(login_polling(&http, base, ADMIN, Duration::from_secs(20)).await);
    }

    // 2. A user created over REST on node 2 logs in on nodes 1 and 3.
    let r = http
        .post(format!("{}/api/v1/users", bases[1]))
        .bearer_auth(&admin_tokens[1])
        .json(&json!({"email": AGENT.0, "role": "agent", "password": AGENT.1}))
        .send()
        .await
        .unwrap();
    let status = r.status();
    assert_eq!(status, 201, "creating the agent on node 2: {}", r.text().await.unwrap_or_default());
    let agent = login_polling(&http, &bases[0], AGENT, Duration::from_secs(10)).await;
    login_polling(&http, &bases[2], AGENT, Duration::from_secs(10)).await;
    // A token from one node is good on another (one signing secret).
    let me = http.get(format!("{}/api/v1/auth/me", bases[2])).bearer_auth(&agent).send().await.unwrap();
    assert_eq!(me.status(), 200, "node 1's token on node 3: {}", me.text().await.unwrap_or_default());

    // 3. One conversation written through all three nodes in turn keeps one order.
    let first_conv = create_conversation(&http, &bases[0], &agent).await.expect("create a conversation on node 1");
    let mut first_expected = Vec::new();
    for i in 0..30u64 {
        let (id, text, node) = (Uuid::new_v4().to_string(), format!("round robin {i}"), (i as usize) % 3);
        let (status, v) = post_message(&http, &bases[node], &agent, &first_conv, &id, &text)
            .await
            .unwrap_or_else(|f| panic!("message {i} through node {}: {}", node + 1, f.what));
        assert_eq!(status, 201, "message {i} through node {}: {v}", node + 1);
        assert_eq!(v["id"].as_str(), Some(id.as_str()), "message {i} through node {}: {v}", node + 1);
        assert_eq!(v["seq"].as_u64(), Some(i + 1), "message {i} through node {} got another seq: {v}", node + 1);
        first_expected.push(Expected { id, seq: i + 1, text });
    }
    // Resending the first message through another node gives back the stored message.
    let (status, again) = post_message(&http, &bases[2], &agent, &first_conv, &first_expected[0].id, &first_expected[0].text)
        .await
        .unwrap_or_else(|f| panic!("resending the first message through node 3: {}", f.what));
    assert_eq!((status, again["seq"].as_u64()), (200, Some(1)), "resending the first message through node 3: {again}");
    let mut expected: HashMap<String, Vec<Expected>> = HashMap::from([(first_conv.clone(), first_expected.clone())]);
    wait_converged(&http, &bases, &agent, &expected, Duration::from_secs(15), "the round-robin conversation").await;

    // 4. Clients under load through every node; node 1 dies, then a NATS server.
    let mut convs = Vec::new();
    for c in 0..CLIENTS {
        let base = &bases[c % 3];
        convs.push(create_conversation(&http, base, &agent).await.unwrap_or_else(|e| panic!("conversation {c}: {e}")));
    }
    let n1_shards = health(&http, &bases[0]).await.map(|h| h["ownedShards"].clone()).unwrap_or_default();
    let clients = Clients::start(&http, &bases, &agent, &convs);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before_kill = clients.snapshot().len();
    assert!(before_kill > 0, "no message acknowledged in 2s of load on a healthy cluster");
    let node_killed = Instant::now();
    n1.kill();
    tokio::time::sleep(Duration::from_secs(8)).await;

    nats.kill(0);
    let nats_down = Instant::now();
    tokio::time::sleep(Duration::from_secs(4)).await;
    // Stay down a little longer while nothing sent since has been acknowledged yet, so
    // that the check below is about writes going on, not about how fast a leader is elected.
    while sent_between(&clients.snapshot(), nats_down, Instant::now()) == 0 && nats_down.elapsed() < Duration::from_secs(15) {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let nats_restarting = Instant::now();
    nats.restart(0).await;
    // Every conversation, node 1's included, must take a write sent after
    // node 1 died. A message in flight through both failures can take most
    // of the time above, so the clients go on until each has one (checked below).
    let until = Instant::now() + Duration::from_secs(45);
    while Instant::now() < until {
        let acks = clients.snapshot();
        if convs.iter().all(|c| acks.values().any(|a| a.conv == *c && a.started >= node_killed)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (acks, failures) = clients.stop().await;

    // What a failure below needs to be understood: times from node 1's death,
    // each conversation's messages around the failures, the survivors' warnings.
    let at = |t: Instant| t.saturating_duration_since(node_killed).as_secs_f64() - node_killed.saturating_duration_since(t).as_secs_f64();
    let story = || {
        let mut out = format!(
            "node 1 owned shards {n1_shards}; NATS server 0 died at {:+.1}s and restarted at {:+.1}s\n",
            at(nats_down),
            at(nats_restarting)
        );
        for conv in &convs {
            let shard = Uuid::parse_str(conv).map(utalk_actors::cluster::shard_of).ok();
            let mut mine: Vec<&Ack> = acks.values().filter(|a| a.conv == *conv && a.acked >= node_killed).collect();
            mine.sort_by_key(|a| a.started);
            let slow: Vec<String> = mine
                .iter()
                .filter(|a| !a.failures.is_empty())
                .take(3)
                .map(|a| format!("sent {:+.1}s acked {:+.1}s after {:?}", at(a.started), at(a.acked), a.failures))
                .collect();
            out += &format!("conversation {conv} (shard {shard:?}): {} acked after the kill; retried: {slow:?}\n", mine.len());
        }
        for (name, n) in [("node 2", &n2), ("node 3", &n3)] {
            let text = n.log_text();
            let warnings: Vec<&str> = text.lines().filter(|l| l.contains("\"WARN\"") || l.contains("\"ERROR\"")).collect();
            out += &format!("{name}'s last warnings:\n{}\n", warnings[warnings.len().saturating_sub(15)..].join("\n"));
        }
        out
    };
    let after_kill = sent_between(&acks, node_killed, nats_down);
    let while_nats_down = sent_between(&acks, nats_down, nats_restarting);
    assert!(
        after_kill > 0,
        "no message sent after node 1 died was acknowledged before the NATS server died ({} acked in all, {before_kill} before the kill)\n{}",
        acks.len(),
        story()
    );
    assert!(
        while_nats_down > 0,
        "no message sent while NATS server 0 was down ({:?}) was acknowledged ({} acked in all, {after_kill} after the node died)\n{}",
        nats_restarting - nats_down,
        acks.len(),
        story()
    );
    assert!(failures > 0, "clients never had to retry, so node 1 cannot have been down ({} acked)", acks.len());
    for conv in &convs {
        let later = acks.values().filter(|a| a.conv == *conv && a.started >= node_killed).count();
        assert!(later > 0, "conversation {conv} took no write after node 1 died\n{}", story());
    }

    // The two survivors own every shard between them and hold every acknowledged message once, at its seq.
    let survivors = [bases[1].clone(), bases[2].clone()];
    wait_spread(&http, &survivors, &NODE_IDS[1..], Duration::from_secs(30)).await;
    expected.extend(expected_by_conv(&acks, &convs));
    wait_converged(&http, &survivors, &agent, &expected, Duration::from_secs(30), "nodes 2 and 3 after the failures").await;

    // 5. Node 1 restarts on its data dir and catches up from the log.
    let n1 = start_node(&data[0], &envs[0]).await;
    let restarted = [n1.base.clone(), bases[1].clone()];
    let h = wait_caught_up(&http, &n1.base, Duration::from_secs(60)).await;
    assert_eq!(h["nodeId"], "n1", "{h}");
    wait_converged(&http, &restarted, &agent, &expected, Duration::from_secs(60), "node 1 after its restart, against node 2").await;

    // And writes through it carry on from where the conversation was.
    let conv = &convs[0];
    let last = expected[conv].last().map_or(0, |e| e.seq);
    let (id, text) = (Uuid::new_v4().to_string(), "after the restart".to_string());
    let all = [n1.base.clone(), bases[1].clone(), bases[2].clone()];
    let sent =
        send_until_acked(&http, &all, 0, &agent, conv, &id, &text).await.unwrap_or_else(|e| panic!("a write after the restart: {e}"));
    assert_eq!(sent.seq, last + 1, "the first write after the restart to {conv} does not follow seq {last}");
    let one: HashMap<String, Vec<Expected>> = HashMap::from([(conv.clone(), {
        let mut v = expected[conv].clone();
        v.push(Expected { id, seq: sent.seq, text });
        v
    })]);
    wait_converged(&http, &all, &agent, &one, Duration::from_secs(20), "all three nodes after a write through node 1").await;

    drop((n1, n2, n3));
}

/// Stock of `sku` in `store` as node `base` has it.
async fn stock_on(http: &reqwest::Client, base: &str, token: &str, store: &str, sku: &str) -> Result<i64, String> {
    let r = http.get(format!("{base}/api/v1/stores/{store}/products")).bearer_auth(token).send().await.map_err(|e| e.to_string())?;
    let v: Value = r.json().await.map_err(|e| e.to_string())?;
    let items = v["items"].as_array().ok_or_else(|| format!("no items: {v}"))?;
    items.iter().find(|p| p["sku"] == sku).and_then(|p| p["stock"].as_i64()).ok_or_else(|| format!("no {sku}: {v}"))
}

pub(crate) async fn post_json(http: &reqwest::Client, url: String, token: &str, body: Value) -> (u16, Value) {
    let r = http.post(url).bearer_auth(token).json(&body).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_tokens_and_stock_hold_across_three_nodes() {
    let three = Three::start(&[(ADMIN.0, "admin", ADMIN.1)]).await;
    let tokens = three.logins(ADMIN).await;
    let (bases, http) = (three.bases.clone(), three.http.clone());

    // A refresh token is exchanged once cluster-wide: on node 2 it works, on node 3 it is then a reuse.
    let r =
        http.post(format!("{}/api/v1/auth/login", bases[0])).json(&json!({"email": ADMIN.0, "password": ADMIN.1})).send().await.unwrap();
    let refresh = r.json::<Value>().await.unwrap()["refreshToken"].as_str().unwrap().to_string();
    let mut exchanged = None;
    let until = Instant::now() + Duration::from_secs(10);
    while exchanged.is_none() {
        // Node 2 may not have applied the token yet: it is unknown there for a moment.
        let (status, v) = post_json(&http, format!("{}/api/v1/auth/refresh", bases[1]), "", json!({"refreshToken": refresh})).await;
        match status {
            200 => exchanged = Some(v),
            401 if Instant::now() < until => tokio::time::sleep(Duration::from_millis(100)).await,
            _ => panic!("refresh on node 2: {status} {v}"),
        }
    }
    let (status, v) = post_json(&http, format!("{}/api/v1/auth/refresh", bases[2]), "", json!({"refreshToken": refresh})).await;
    assert_eq!((status, v["error"]["code"].as_str()), (401, Some("refresh_token_reused")), "the used token on node 3: {v}");

    // A store made on node 1, its product on node 2, stock bought on node 3.
    let (status, s) =
        post_json(&http, format!("{}/api/v1/stores", bases[0]), &tokens[0], json!({"name": "Centro", "allowNegativeStock": false})).await;
    assert_eq!(status, 201, "store: {s}");
    let store = s["id"].as_str().unwrap().to_string();
    let product = json!({"sku": "CF-500", "name": "Café 500 g", "price": 89.5, "lowStockThreshold": 10});
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        // Node 2 may not have applied the store yet.
        let (status, v) = post_json(&http, format!("{}/api/v1/stores/{store}/products", bases[1]), &tokens[1], product.clone()).await;
        if status == 201 {
            break;
        }
        assert!(status == 404 && Instant::now() < until, "product on node 2: {status} {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let txn =
        |kind: &str, qty: i64| json!({"transactionId": Uuid::new_v4(), "storeId": store, "sku": "CF-500", "type": kind, "quantity": qty});
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, v) = post_json(&http, format!("{}/api/v1/inventory/transactions", bases[2]), &tokens[2], txn("PURCHASE", 40)).await;
        if status == 201 {
            break;
        }
        assert!(status == 404 && Instant::now() < until, "purchase on node 3: {status} {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // 45 sales of one unit race through all three nodes, each sent twice: 40 go through, 5 find no stock.
    let mut sales = Vec::new();
    for i in 0..45usize {
        let (http, base, token, body) = (http.clone(), bases[i % 3].clone(), tokens[i % 3].clone(), txn("SALE", 1));
        sales.push(tokio::spawn(async move {
            let first = post_json(&http, format!("{base}/api/v1/inventory/transactions"), &token, body.clone()).await;
            let again = post_json(&http, format!("{base}/api/v1/inventory/transactions"), &token, body).await;
            (first, again)
        }));
    }
    let (mut sold, mut refused) = (0, 0);
    for s in sales {
        let ((status, v), (again, v2)) = s.await.unwrap();
        match status {
            201 => {
                sold += 1;
                assert_eq!(again, 200, "a repeated sale answers the first: {v2}");
                assert_eq!(v2["id"], v["id"]);
            }
            409 => {
                refused += 1;
                assert_eq!(v["error"]["code"], "insufficient_stock", "{v}");
            }
            other => panic!("sale answered {other}: {v}"),
        }
    }
    assert_eq!((sold, refused), (40, 5), "every unit sold once, none twice");
    for (i, base) in bases.iter().enumerate() {
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            let left = stock_on(&http, base, &tokens[i], &store, "CF-500").await;
            if left == Ok(0) {
                break;
            }
            assert!(Instant::now() < until, "node {} has stock {left:?}, not 0", i + 1);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    // Assigned and unassigned through each node: at least two of the three
    // forward the change to the conversation's owner, and an unassignment
    // must arrive as one, not as "leave the assignee alone".
    let conv = create_conversation(&http, &bases[0], &tokens[0]).await.expect("a conversation");
    let me: Value = http.get(format!("{}/api/v1/auth/me", bases[0])).bearer_auth(&tokens[0]).send().await.unwrap().json().await.unwrap();
    let admin = me["id"].as_str().expect("my id").to_string();
    for (i, base) in bases.iter().enumerate() {
        for assignee in [json!(admin), Value::Null] {
            let until = Instant::now() + Duration::from_secs(10);
            loop {
                let r = http
                    .patch(format!("{base}/api/v1/conversations/{conv}"))
                    .bearer_auth(&tokens[i])
                    .json(&json!({"assigneeId": assignee}))
                    .send()
                    .await
                    .unwrap();
                let status = r.status().as_u16();
                let v: Value = r.json().await.unwrap_or(Value::Null);
                if status == 200 {
                    assert_eq!(v["assigneeId"], assignee, "node {} set the assignee to {assignee}: {v}", i + 1);
                    break;
                }
                // The node may not have applied the conversation yet.
                assert!(status == 404 && Instant::now() < until, "assign on node {}: {status} {v}", i + 1);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Two veth links into a network namespace: one for clients, one for NATS,
/// so that NATS can be cut off while clients still reach the node.
struct Netns {
    name: String,
    client_host: String,
    nats_host: String,
}

const NS_CLIENT_NET: (&str, &str) = ("10.213.1.1", "10.213.1.2");
const NS_NATS_NET: (&str, &str) = ("10.213.2.1", "10.213.2.2");

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip").args(args).output().map_err(|e| format!("ip {args:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("ip {args:?}: {}", String::from_utf8_lossy(&out.stderr)))
    }
}

/// Why network namespaces cannot be made here, if they cannot: no `ip`, or
/// a root without the right to make them (some containers).
fn netns_unavailable() -> Option<String> {
    let probe = format!("utalkprobe{}", std::process::id() % 10_000);
    match ip(&["netns", "add", &probe]) {
        Ok(()) => {
            let _ = ip(&["netns", "del", &probe]);
            None
        }
        Err(e) => Some(e),
    }
}

/// Removes the links and namespaces an earlier run that was killed left
/// behind, whose addresses would otherwise shadow this run's.
fn remove_leftovers() {
    let links = Command::new("ip").args(["-o", "link", "show"]).output().map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    for line in links.unwrap_or_default().lines() {
        let name = line.split(':').nth(1).map(|n| n.trim().split('@').next().unwrap_or("").to_string()).unwrap_or_default();
        if (name.starts_with("utc") || name.starts_with("utn")) && name.ends_with('h') {
            let _ = ip(&["link", "del", &name]);
        }
    }
    let spaces = Command::new("ip").args(["netns", "list"]).output().map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    for line in spaces.unwrap_or_default().lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        if name.starts_with("utalk") {
            let _ = ip(&["netns", "del", name]);
        }
    }
}

impl Netns {
    fn create() -> Result<Netns, String> {
        remove_leftovers();
        let tag = std::process::id() % 10_000;
        let ns = Netns { name: format!("utalk{tag}"), client_host: format!("utc{tag}h"), nats_host: format!("utn{tag}h") };
        ip(&["netns", "add", &ns.name])?;
        for (host, (host_ip, ns_ip)) in [(&ns.client_host, NS_CLIENT_NET), (&ns.nats_host, NS_NATS_NET)] {
            let inner = format!("{}n", &host[..host.len() - 1]);
            ip(&["link", "add", host, "type", "veth", "peer", "name", &inner])?;
            ip(&["link", "set", &inner, "netns", &ns.name])?;
            ip(&["addr", "add", &format!("{host_ip}/24"), "dev", host])?;
            ip(&["link", "set", host, "up"])?;
            ip(&["netns", "exec", &ns.name, "ip", "addr", "add", &format!("{ns_ip}/24"), "dev", &inner])?;
            ip(&["netns", "exec", &ns.name, "ip", "link", "set", &inner, "up"])?;
        }
        ip(&["netns", "exec", &ns.name, "ip", "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Cuts (or restores) the node's link to NATS; clients keep theirs.
    fn nats_link(&self, up: bool) {
        ip(&["link", "set", &self.nats_host, if up { "up" } else { "down" }]).unwrap();
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["link", "del", &self.client_host]);
        let _ = ip(&["link", "del", &self.nats_host]);
        let _ = ip(&["netns", "del", &self.name]);
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}

/// The shards `base` owns now.
async fn owned(http: &reqwest::Client, base: &str) -> Vec<u64> {
    health(http, base)
        .await
        .ok()
        .and_then(|v| v["ownedShards"].as_array().map(|a| a.iter().filter_map(Value::as_u64).collect()))
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_cut_off_from_nats_stops_acknowledging_before_its_lease_ends_and_loses_nothing() {
    if !is_root() {
        eprintln!("the partition test needs root for network namespaces; it did not run");
        return;
    }
    if let Some(why) = netns_unavailable() {
        eprintln!("the partition test needs network namespaces, which this machine refuses ({why}); it did not run");
        return;
    }
    let ns = Netns::create().expect("network namespaces are needed for the partition test");
    let nats = Nats::start_for("0.0.0.0").await;
    let lease = Duration::from_millis(3000);
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    // Node 1 lives in the namespace: clients reach it on one link, NATS on the other.
    let env1 = node_env(&nats.urls_via(NS_NATS_NET.0), "n1");
    let env1: Vec<(&str, &str)> = env1.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let listen = format!("{}:0", NS_CLIENT_NET.1);
    let n1 = TestServer::start_via(&["ip", "netns", "exec", &ns.name], &listen, &dirs[0].path().join("data"), &env1).await;
    let local = nats.urls_via("127.0.0.1");
    let n2 = start_node(&dirs[1].path().join("data"), &node_env(&local, "n2")).await;
    let n3 = start_node(&dirs[2].path().join("data"), &node_env(&local, "n3")).await;
    let bases = vec![n1.base.clone(), n2.base.clone(), n3.base.clone()];
    let http = http_client();
    wait_spread(&http, &bases, &NODE_IDS, Duration::from_secs(60)).await;
    cluster_add_user(dirs[1].path(), &local, ADMIN.0, "admin", ADMIN.1).await;
    let token = login_polling(&http, &bases[1], ADMIN, Duration::from_secs(20)).await;
    login_polling(&http, &bases[0], ADMIN, Duration::from_secs(20)).await;

    // A conversation whose shard node 1 owns.
    let mine = owned(&http, &bases[0]).await;
    let conv = loop {
        let c = create_conversation(&http, &bases[1], &token).await.unwrap();
        let shard = utalk_actors::cluster::shard_of(Uuid::parse_str(&c).unwrap());
        if mine.contains(&u64::from(shard)) {
            break c;
        }
    };
    let mut expected = Vec::new();
    let send = |base: String, i: usize| {
        let (http, token, conv) = (http.clone(), token.clone(), conv.clone());
        async move {
            let (id, text) = (Uuid::new_v4().to_string(), format!("partition {i}"));
            let sent = Instant::now();
            let r = post_message(&http, &base, &token, &conv, &id, &text).await;
            (sent, Instant::now(), id, text, r)
        }
    };
    for i in 0..10 {
        let (_, _, id, text, r) = send(bases[0].clone(), i).await;
        let (status, v) = r.unwrap_or_else(|f| panic!("before the cut: {}", f.what));
        assert_eq!(status, 201, "{v}");
        expected.push(Expected { id, seq: v["seq"].as_u64().unwrap(), text });
    }

    // Cut node 1 off from NATS while a client keeps writing to it.
    ns.nats_link(false);
    let cut = Instant::now();
    let mut acked_after_cut = Vec::new();
    let mut i = 10;
    while cut.elapsed() < lease * 2 {
        let (sent, answered, id, text, r) = send(bases[0].clone(), i).await;
        i += 1;
        if let Ok((_, v)) = r {
            acked_after_cut.push((sent - cut, answered - cut));
            expected.push(Expected { id, seq: v["seq"].as_u64().unwrap(), text });
        }
    }
    assert!(
        acked_after_cut.iter().all(|(_, answered)| *answered < lease),
        "node 1 acknowledged after its lease ran out: {acked_after_cut:?}"
    );
    let until = cut + lease;
    loop {
        let left = owned(&http, &bases[0]).await;
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < until, "node 1 still counts {} shards as its own a lease after the cut", left.len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The other nodes take the conversation over and go on from its last acknowledged seq.
    let until = Instant::now() + Duration::from_secs(30);
    let mut after = 0;
    while after < 10 {
        let (_, _, id, text, r) = send(bases[1 + after % 2].clone(), 100 + after).await;
        match r {
            Ok((_, v)) => {
                expected.push(Expected { id, seq: v["seq"].as_u64().unwrap(), text });
                after += 1;
            }
            Err(f) => {
                assert!(f.retryable && Instant::now() < until, "writes through nodes 2 and 3 after the cut: {}", f.what);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    let by_conv = HashMap::from([(conv.clone(), expected.clone())]);
    wait_converged(&http, &bases[1..], &token, &by_conv, Duration::from_secs(20), "nodes 2 and 3 after the cut").await;

    // Healed, node 1 catches up and holds the same conversation.
    ns.nats_link(true);
    wait_caught_up(&http, &bases[0], Duration::from_secs(60)).await;
    wait_converged(&http, &bases, &token, &by_conv, Duration::from_secs(30), "all nodes after healing").await;
}

/// Runs `utalk <args>` with the cluster's environment to its end: (success, stdout, stderr).
async fn cluster_cli(urls: &str, args: &[&str], data_dir: &Path) -> (bool, String, String) {
    let mut cmd = tokio::process::Command::new(bin());
    cmd.args(args).arg("--data-dir").arg(data_dir);
    for (k, v) in node_env(urls, "tool") {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.env("UTALK_LOG", "warn").output())
        .await
        .unwrap_or_else(|_| panic!("utalk {args:?} did not finish in 60 s"))
        .unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Uploads `bytes` as a PNG through `base`; returns the signed path that serves it.
pub(crate) async fn upload_media(http: &reqwest::Client, base: &str, token: &str, bytes: &[u8]) -> String {
    let boundary = "utalk-test-boundary";
    let mut body =
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"p.png\"\r\nContent-Type: image/png\r\n\r\n")
            .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let r = http
        .post(format!("{base}/api/v1/media"))
        .bearer_auth(token)
        .header("content-type", format!("multipart/form-data; boundary={boundary}"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "upload through {base}");
    let v: Value = r.json().await.unwrap();
    let url = v["url"].as_str().unwrap();
    // The URL is absolute only with a public URL configured; keep its path and query.
    url[url.find("/api/v1/media/").unwrap()..].to_string()
}

/// The bytes a signed media path serves on `base`, asking for up to 10 s:
/// a node has the record a few milliseconds after the node that took it.
pub(crate) async fn fetch_media(http: &reqwest::Client, base: &str, path: &str) -> Result<Vec<u8>, String> {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let r = http.get(format!("{base}{path}")).send().await.map_err(|e| e.to_string())?;
        let status = r.status();
        let bytes = r.bytes().await.map_err(|e| e.to_string())?;
        if status == 200 {
            return Ok(bytes.to_vec());
        }
        if status != 404 || Instant::now() >= until {
            return Err(format!("{status}: {}", String::from_utf8_lossy(&bytes)));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_cluster_is_restored_from_a_log_backup() {
    let nats = Nats::start().await;
    let urls = nats.urls();
    let dirs: Vec<tempfile::TempDir> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let data: Vec<PathBuf> = dirs.iter().map(|d| d.path().join("data")).collect();
    let mut n1 = start_node(&data[0], &node_env(&urls, "n1")).await;
    let mut n2 = start_node(&data[1], &node_env(&urls, "n2")).await;
    let bases = vec![n1.base.clone(), n2.base.clone()];
    let http = http_client();
    wait_spread(&http, &bases, &["n1", "n2"], Duration::from_secs(60)).await;
    cluster_add_user(&data[3], &urls, ADMIN.0, "admin", ADMIN.1).await;
    let token = login_polling(&http, &bases[0], ADMIN, Duration::from_secs(20)).await;
    login_polling(&http, &bases[1], ADMIN, Duration::from_secs(20)).await;
    let conv = create_conversation(&http, &bases[0], &token).await.unwrap();
    // A file uploaded through node 1 is served by node 2, which never had it.
    let picture: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let media_path = upload_media(&http, &bases[0], &token, &picture).await;
    let got = fetch_media(&http, &bases[1], &media_path).await.unwrap_or_else(|e| panic!("node 2 serves node 1's upload: {e}"));
    assert!(got == picture, "node 2 served {} bytes that are not the upload's", got.len());
    let mut expected = Vec::new();
    for i in 0..25u64 {
        let (id, text) = (Uuid::new_v4().to_string(), format!("kept {i}"));
        let (status, v) =
            post_message(&http, &bases[(i % 2) as usize], &token, &conv, &id, &text).await.unwrap_or_else(|f| panic!("{}", f.what));
        assert_eq!(status, 201, "{v}");
        expected.push(Expected { id, seq: i + 1, text });
        if i == 19 {
            // The backup is taken while the nodes run, after 20 messages.
            let file = dirs[3].path().join("log.backup");
            let (ok, out, err) = cluster_cli(&urls, &["cluster", "backup", "--to", file.to_str().unwrap()], &data[3]).await;
            assert!(ok, "backup: {out} {err}");
            let (ok, out, err) = cluster_cli(&urls, &["cluster", "backup", "--to", file.to_str().unwrap()], &data[3]).await;
            assert!(!ok && err.contains("exists"), "a second backup onto the same file is refused: {out} {err}");
        }
    }
    wait_converged(&http, &bases, &token, &HashMap::from([(conv.clone(), expected.clone())]), Duration::from_secs(20), "before the loss")
        .await;
    let file = dirs[3].path().join("log.backup");
    let (ok, out, err) = cluster_cli(&urls, &["cluster", "verify", "--file", file.to_str().unwrap()], &data[3]).await;
    assert!(ok && out.contains(" and 1 files") && out.contains("checksum good"), "verify: {out} {err}");

    // The whole cluster is lost: nodes and NATS servers with their data.
    n1.kill();
    n2.kill();
    drop(nats);

    // A new NATS cluster gets the log back; a second restore is refused.
    let fresh = Nats::start().await;
    let urls = fresh.urls();
    let (ok, out, err) = cluster_cli(&urls, &["cluster", "restore", "--from", file.to_str().unwrap()], &data[3]).await;
    assert!(ok, "restore: {out} {err}");
    let (ok, _, err) = cluster_cli(&urls, &["cluster", "restore", "--from", file.to_str().unwrap()], &data[3]).await;
    assert!(!ok && err.contains("not empty"), "a restore into a log that is not empty is refused: {err}");

    // A node on an empty data directory rebuilds everything the backup holds.
    let n3 = start_node(&data[2], &node_env(&urls, "n3")).await;
    wait_spread(&http, std::slice::from_ref(&n3.base), &["n3"], Duration::from_secs(60)).await;
    let token = login_polling(&http, &n3.base, ADMIN, Duration::from_secs(20)).await;
    let kept = HashMap::from([(conv.clone(), expected[..20].to_vec())]);
    wait_converged(&http, std::slice::from_ref(&n3.base), &token, &kept, Duration::from_secs(20), "a node rebuilt from the log").await;
    let got = fetch_media(&http, &n3.base, &media_path).await.unwrap_or_else(|e| panic!("the restored cluster serves the file: {e}"));
    assert!(got == picture, "the restored cluster served {} bytes that are not the upload's", got.len());

    // Node 1's store is ahead of the restored log (it has the last 5 messages): it refuses to start.
    let mut serve = tokio::process::Command::new(bin());
    serve.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"]).arg(&data[0]);
    for (k, v) in node_env(&urls, "n1") {
        serve.env(k, v);
    }
    let out = tokio::time::timeout(Duration::from_secs(60), serve.env("UTALK_LOG", "warn").output()).await.expect("node 1 exits").unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success() && text.contains("the cluster's log ends at"), "node 1 ahead of the log: {text}");

    // A damaged backup is refused before anything is appended.
    let mut bytes = std::fs::read(&file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    let damaged = dirs[3].path().join("damaged.backup");
    std::fs::write(&damaged, bytes).unwrap();
    let (ok, _, err) = cluster_cli(&urls, &["cluster", "verify", "--file", damaged.to_str().unwrap()], &data[3]).await;
    assert!(!ok && err.contains("damaged"), "a damaged backup: {err}");
}
