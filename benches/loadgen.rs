//! Socket.IO load generator: our own protocol client over websockets.
//!
//! It starts a utalk server (release build by default) on a free loopback
//! port with a fresh data dir and a user, then either
//!
//! - `--mode throughput`: opens `--conversations` pairs of connections (a
//!   sender and a receiver joined to the same conversation), sends at
//!   `--rate` messages/s in total for `--seconds`, and reports acked
//!   messages/s, ack latency p50/p99/p999, delivered fan-out and errors; with
//!   `--nodes N` (default 1) above 1 it starts, instead of the one server, a
//!   cluster of three NATS JetStream servers (`sync_interval: always`; the
//!   binary is `NATS_SERVER_BIN`, else `nats-server` on the PATH, else
//!   `~/.cache/utalk/nats-server-2.15.1/bin/nats-server`) and N utalk nodes
//!   on it, adds the user through the cluster, and connects the sender of
//!   conversation i to node i % N and its receiver to node (i + 1) % N, so
//!   that every message crosses nodes; RSS is then the sum over the nodes,
//!   with the NATS servers' sum reported apart; or
//! - `--mode idle`: opens `--connections` authenticated connections spread
//!   over `--workers` processes (a process may hold at most 20,000 files),
//!   holds them, and reports the server's RSS and memory per connection.
//!
//! It prints one JSON object. Everything talks to 127.0.0.1 and stops by itself.
//!
//! `cargo bench --bench loadgen -- --mode throughput --conversations 64 --rate 5000 --seconds 10`
//! `cargo bench --bench loadgen -- --mode throughput --nodes 3 --conversations 64 --rate 2000 --seconds 10`

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

#[derive(Debug, Clone)]
struct Args {
    mode: String,
    server: String,
    conversations: usize,
    nodes: usize,
    connections: usize,
    workers: usize,
    rate: f64,
    seconds: u64,
    text_bytes: usize,
    // Set in worker processes.
    url: Option<String>,
    token: Option<String>,
}

fn parse_args() -> Args {
    let mut a = Args {
        mode: "throughput".into(),
        server: format!(
            "{}/release/utalk",
            std::env::var("CARGO_TARGET_DIR")
                .unwrap_or_else(|_| format!("{}/.cache/utalk/target", std::env::var("HOME").unwrap_or_default()))
        ),
        conversations: 64,
        nodes: 1,
        connections: 1000,
        workers: 2,
        rate: 5000.0,
        seconds: 10,
        text_bytes: 100,
        url: None,
        token: None,
    };
    let argv: Vec<String> = std::env::args().skip(1).filter(|x| x != "--bench").collect();
    let mut i = 0;
    while i < argv.len() {
        let v = argv.get(i + 1).cloned().unwrap_or_default();
        match argv[i].as_str() {
            "--mode" => a.mode = v,
            "--server" => a.server = v,
            "--conversations" => a.conversations = v.parse().expect("--conversations N"),
            "--nodes" => a.nodes = v.parse().expect("--nodes N"),
            "--connections" => a.connections = v.parse().expect("--connections N"),
            "--workers" => a.workers = v.parse().expect("--workers N"),
            "--rate" => a.rate = v.parse().expect("--rate MSGS_PER_SEC"),
            "--seconds" => a.seconds = v.parse().expect("--seconds S"),
            "--text-bytes" => a.text_bytes = v.parse().expect("--text-bytes N"),
            "--url" => a.url = Some(v),
            "--token" => a.token = Some(v),
            other => panic!("unknown argument {other}"),
        }
        i += 2;
    }
    a
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Connects, reads the open packet, sends CONNECT with the token and waits for its answer.
async fn connect(base: &str, token: &str) -> Result<Ws, String> {
    let url = format!("{}/socket.io/?EIO=4&transport=websocket", base.replacen("http", "ws", 1));
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url, None, true).await.map_err(|e| e.to_string())?;
    next_text(&mut ws).await?;
    ws.send(Message::text(format!("40{}", json!({ "token": token })))).await.map_err(|e| e.to_string())?;
    loop {
        let t = next_text(&mut ws).await?;
        if t.starts_with("40") {
            return Ok(ws);
        }
        if t.starts_with("44") {
            return Err(t);
        }
    }
}

async fn next_text(ws: &mut Ws) -> Result<String, String> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) if t.as_str() == "2" => ws.send(Message::text("3")).await.map_err(|e| e.to_string())?,
            Some(Ok(Message::Text(t))) => return Ok(t.to_string()),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.to_string()),
            None => return Err("closed".into()),
        }
    }
}

async fn join(ws: &mut Ws, conv: &str) -> Result<(), String> {
    ws.send(Message::text(format!("420{}", json!(["conversation:join", { "conversationId": conv }])))).await.map_err(|e| e.to_string())?;
    loop {
        if next_text(ws).await?.starts_with("430") {
            return Ok(());
        }
    }
}

struct Server {
    child: Child,
    base: String,
    token: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const EMAIL: &str = "load@example.com";
const PASSWORD: &str = "load-test-password";

/// Where data dirs and other files of a run go: `UTALK_BENCH_DIR`, else the working directory.
fn bench_dir() -> String {
    std::env::var("UTALK_BENCH_DIR").unwrap_or_else(|_| ".".into())
}

/// `utalk user add` for the load user with `role` and the extra `env`, waited on for at most a minute.
async fn add_user(bin: &str, data: &Path, role: &str, env: &[(&str, &str)]) {
    use std::io::Write;
    let mut add = Command::new(bin)
        .args(["user", "add", "--email", EMAIL, "--role", role, "--password-stdin", "--data-dir"])
        .arg(data)
        .env("UTALK_LOG", "warn")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {bin}: {e} (build it with cargo build --release)"));
    add.stdin.take().expect("stdin").write_all(format!("{PASSWORD}\n").as_bytes()).expect("password");
    let until = Instant::now() + Duration::from_secs(60);
    while add.try_wait().expect("user add").is_none() {
        if Instant::now() >= until {
            let _ = add.kill();
            let _ = add.wait();
            panic!("user add did not finish within a minute");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(add.wait().expect("user add").success(), "user add failed");
}

/// Starts `utalk serve` on a free loopback port over `dir`/data with the extra
/// `env`, and waits until it says where it listens. The token is left empty.
fn serve(bin: &str, dir: tempfile::TempDir, env: &[(&str, &str)]) -> Server {
    use std::io::BufRead;
    let child = Command::new(bin)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .env("UTALK_LOG", "warn,utalk::app=info")
        // Every generated connection comes from loopback, hundreds at once before their CONNECT.
        .env("UTALK_SOCKET__MAX_ANONYMOUS_SESSIONS_PER_IP", "1000000")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("serve");
    // Owned from here on, so that it is stopped if it never says where it listens.
    let mut server = Server { child, base: String::new(), token: String::new(), _dir: dir };
    let stdout = server.child.stdout.take().expect("stdout");
    let mut lines = std::io::BufReader::new(stdout).lines();
    let addr = loop {
        let line = lines.next().expect("server output").expect("line");
        if let Ok(v) = serde_json::from_str::<Value>(&line) {
            if let Some(a) = v.get("addr").and_then(Value::as_str) {
                break a.to_string();
            }
        }
    };
    std::thread::spawn(move || for _ in lines {});
    server.base = format!("http://{addr}");
    server
}

/// Logs the load user in on `base` and returns the access token.
async fn login(http: &reqwest::Client, base: &str) -> Result<String, String> {
    let r = http
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"email": EMAIL, "password": PASSWORD}))
        .send()
        .await
        .map_err(|e| format!("{base}: {e}"))?;
    let status = r.status();
    let v: Value = r.json().await.map_err(|e| format!("{base}: login answered {status}: {e}"))?;
    v["accessToken"].as_str().map(str::to_string).ok_or_else(|| format!("{base}: login answered {status}: {v}"))
}

async fn start_server(bin: &str) -> Server {
    let dir = tempfile::tempdir_in(bench_dir()).expect("tempdir");
    add_user(bin, &dir.path().join("data"), "agent", &[]).await;
    let mut server = serve(bin, dir, &[]);
    server.token = login(&reqwest::Client::new(), &server.base).await.expect("login");
    server
}

/// NATS servers and utalk nodes on loopback. Dropping it stops the nodes,
/// then the NATS servers, then removes their files.
struct Cluster {
    nats: Vec<Child>,
    nodes: Vec<Server>,
    dir: tempfile::TempDir,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.nodes.clear();
        for c in &mut self.nats {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("http client")
}

/// The nats-server binary: `NATS_SERVER_BIN`, else `nats-server` on the PATH,
/// else the one under ~/.cache/utalk if it is there.
fn nats_bin() -> String {
    if let Ok(bin) = std::env::var("NATS_SERVER_BIN") {
        return bin;
    }
    let on_path = std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("nats-server").is_file()));
    let cached = format!("{}/.cache/utalk/nats-server-2.15.1/bin/nats-server", std::env::var("HOME").unwrap_or_default());
    if !on_path && Path::new(&cached).is_file() {
        cached
    } else {
        "nats-server".into()
    }
}

/// `n` distinct free loopback ports, held together while picked so that none repeats.
fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<_> = (0..n).map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("free port")).collect();
    held.iter().map(|l| l.local_addr().expect("port").port()).collect()
}

/// Writes the config of NATS server `i` with `ports` (client, monitoring, cluster) into `dir`.
fn nats_config(dir: &Path, i: usize, ports: &[u16], routes: &str) -> PathBuf {
    let (client, http, cluster) = (ports[0], ports[1], ports[2]);
    let config = dir.join(format!("n{i}.conf"));
    std::fs::write(
        &config,
        format!(
            "server_name: n{i}\nlisten: 127.0.0.1:{client}\nhttp: 127.0.0.1:{http}\n\
             jetstream {{\n  store_dir: \"{}\"\n  sync_interval: always\n  max_memory_store: 256MB\n  max_file_store: 2GB\n}}\n\
             cluster {{\n  name: utalk\n  listen: 127.0.0.1:{cluster}\n  routes: [\n    {routes}\n  ]\n}}\n",
            dir.join(format!("n{i}")).display(),
        ),
    )
    .expect("nats config");
    config
}

/// Waits until NATS server `i` answers `/healthz` on `http_port` with 200 (JetStream current).
async fn wait_nats_healthy(c: &mut Cluster, i: usize, http_port: u16, log: &Path) {
    let http = http_client();
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = http.get(format!("http://127.0.0.1:{http_port}/healthz")).send().await {
            if r.status() == 200 {
                return;
            }
        }
        let exited = c.nats[i].try_wait().ok().flatten();
        if exited.is_some() || Instant::now() >= until {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            panic!("NATS server n{i} did not become healthy ({exited:?}); its last log lines, newest first:\n{}", tail.join("\n"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Starts three clustered JetStream servers into `c`, waits until each is
/// healthy, and returns their comma-separated client URLs.
async fn start_nats(c: &mut Cluster) -> String {
    let root = std::fs::canonicalize(c.dir.path()).expect("nats dir");
    let ports = free_ports(9);
    let routes: Vec<String> = ports.chunks(3).map(|p| format!("nats-route://127.0.0.1:{}", p[2])).collect();
    let bin = nats_bin();
    for (i, p) in ports.chunks(3).enumerate() {
        let config = nats_config(&root, i, p, &routes.join("\n    "));
        let log = std::fs::File::create(config.with_extension("log")).expect("nats log");
        let child = Command::new(&bin)
            .arg("-c")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {bin} ({e}): set NATS_SERVER_BIN or put nats-server on the PATH"));
        c.nats.push(child);
    }
    for (i, p) in ports.chunks(3).enumerate() {
        wait_nats_healthy(c, i, p[1], &root.join(format!("n{i}.log"))).await;
    }
    ports.chunks(3).map(|p| format!("nats://127.0.0.1:{}", p[0])).collect::<Vec<_>>().join(",")
}

/// A random 48-character alphanumeric secret.
fn random_secret() -> String {
    const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    (0..3)
        .flat_map(|_| {
            let mut n = uuid::Uuid::new_v4().as_u128();
            (0..16).map(move |_| {
                let c = ALNUM[(n % 62) as usize] as char;
                n /= 62;
                c
            })
        })
        .collect()
}

/// Starts `n` utalk nodes (n1, n2, …) on the NATS servers at `urls`, each on a data dir of its own.
fn start_nodes(c: &mut Cluster, bin: &str, urls: &str, secret: &str, n: usize) {
    for i in 1..=n {
        let dir = tempfile::tempdir_in(bench_dir()).expect("tempdir");
        let id = format!("n{i}");
        let env = [("UTALK_CLUSTER_URL", urls), ("UTALK_NODE_ID", id.as_str()), ("UTALK_JWT_SECRET", secret)];
        c.nodes.push(serve(bin, dir, &env));
    }
}

/// Whether the nodes' `/health/cluster` answers show every node live on each
/// and their owned shards covering the 64 shards, each once.
fn settled(healths: &[Value]) -> bool {
    let mut owned = Vec::new();
    for h in healths {
        if h["liveNodes"].as_array().map(Vec::len) != Some(healths.len()) {
            return false;
        }
        owned.extend(h["ownedShards"].as_array().into_iter().flatten().filter_map(Value::as_u64));
    }
    owned.len() == 64 && owned.iter().collect::<BTreeSet<_>>().len() == 64
}

/// Waits until the nodes of `c` have settled (see [`settled`]), failing if one exits.
async fn wait_settled(c: &mut Cluster, http: &reqwest::Client) {
    let until = Instant::now() + Duration::from_secs(120);
    loop {
        let mut healths = Vec::new();
        for node in &c.nodes {
            let r = http.get(format!("{}/health/cluster", node.base)).send().await;
            healths.push(match r {
                Ok(r) => r.json::<Value>().await.unwrap_or_default(),
                Err(_) => Value::Null,
            });
        }
        if settled(&healths) {
            return;
        }
        for (i, node) in c.nodes.iter_mut().enumerate() {
            if let Ok(Some(status)) = node.child.try_wait() {
                panic!("node n{} exited ({status})", i + 1);
            }
        }
        assert!(Instant::now() < until, "the cluster never settled: {healths:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Logs in on every node, keeping each node's token. Failed logins are
/// throttled per node, so each node gets only a few tries, spaced out.
async fn login_everywhere(c: &mut Cluster, http: &reqwest::Client) {
    for node in &mut c.nodes {
        let mut last = Err(String::new());
        for wait in [0, 300, 1000, 3000] {
            tokio::time::sleep(Duration::from_millis(wait)).await;
            last = login(http, &node.base).await;
            if last.is_ok() {
                break;
            }
        }
        node.token = last.unwrap_or_else(|e| panic!("the load user cannot log in on every node: {e}"));
    }
}

/// Three NATS servers and `args.nodes` utalk nodes on them sharing the shards,
/// with the load user added through the cluster and logged in on every node.
async fn start_cluster(args: &Args) -> Cluster {
    let mut c = Cluster { nats: Vec::new(), nodes: Vec::new(), dir: tempfile::tempdir_in(bench_dir()).expect("tempdir") };
    let urls = start_nats(&mut c).await;
    let secret = random_secret();
    start_nodes(&mut c, &args.server, &urls, &secret, args.nodes);
    let http = http_client();
    wait_settled(&mut c, &http).await;
    // In cluster mode the user goes into the cluster's log; this data dir is not opened.
    let cli_data = c.dir.path().join("cli").join("data");
    add_user(&args.server, &cli_data, "admin", &[("UTALK_CLUSTER_URL", urls.as_str()), ("UTALK_JWT_SECRET", secret.as_str())]).await;
    login_everywhere(&mut c, &http).await;
    c
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)).and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

fn rss_sum(pids: &[u32]) -> u64 {
    pids.iter().map(|&p| rss_kib(p)).sum()
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

/// The start signal: the deadline, sent to every task once all connections are set up.
type Go = tokio::sync::watch::Receiver<Option<Instant>>;
/// When each message awaiting its ack was sent, by ack id.
type SentAt = Arc<Mutex<HashMap<u64, Instant>>>;

/// What the load tasks count, shared between them.
#[derive(Clone, Default)]
struct Tally {
    delivered: Arc<AtomicU64>,
    errors: Arc<AtomicU64>,
    latencies: Arc<Mutex<Vec<u64>>>,
}

/// One sender's share of the load: its conversation, the text it sends and its rate.
struct Share {
    conv: String,
    text: String,
    rate: f64,
}

/// Waits for the start signal and returns its deadline (None when the signal is gone).
async fn start_signal(go: &mut Go) -> Option<Instant> {
    go.wait_for(Option::is_some).await.ok().map(|d| d.unwrap_or_else(Instant::now))
}

async fn create_conversations(node: &Server, n: usize) -> Vec<String> {
    let http = reqwest::Client::new();
    let mut convs = Vec::new();
    for _ in 0..n {
        let c: Value = http
            .post(format!("{}/api/v1/conversations", node.base))
            .bearer_auth(&node.token)
            .json(&json!({"channel": "api"}))
            .send()
            .await
            .expect("create")
            .json()
            .await
            .expect("body");
        convs.push(c["id"].as_str().expect("id").to_string());
    }
    convs
}

/// Waits until every node has every conversation (a node joins only those it has).
async fn wait_visible(nodes: &[Server], convs: &[String]) {
    let http = http_client();
    let until = Instant::now() + Duration::from_secs(60);
    for node in nodes {
        for conv in convs {
            loop {
                let r = http.get(format!("{}/api/v1/conversations/{conv}", node.base)).bearer_auth(&node.token).send().await;
                if r.is_ok_and(|r| r.status() == 200) {
                    break;
                }
                assert!(Instant::now() < until, "conversation {conv} never reached {}", node.base);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Counts the `message:new` events `rx` receives until 5 s past the deadline.
fn spawn_receiver(mut rx: Ws, delivered: Arc<AtomicU64>, mut go: Go) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let Some(deadline) = start_signal(&mut go).await else { return };
        let stop = deadline + Duration::from_secs(5);
        while let Ok(Some(frame)) = tokio::time::timeout_at(stop.into(), rx.next()).await {
            match frame {
                Ok(Message::Text(t)) if t.as_str() == "2" => {
                    let _ = rx.send(Message::text("3")).await;
                }
                Ok(Message::Text(t)) if t.starts_with("42[\"message:new\"") => {
                    delivered.fetch_add(1, Ordering::Relaxed);
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    })
}

/// Reads acks until 5 s past the deadline, recording the latency of the good ones and counting the others.
fn spawn_ack_reader(
    mut stream: futures_util::stream::SplitStream<Ws>,
    sent_at: SentAt,
    tally: Tally,
    deadline: Instant,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut local = Vec::new();
        let stop = deadline + Duration::from_secs(5);
        while let Ok(Some(Ok(Message::Text(t)))) = tokio::time::timeout_at(stop.into(), stream.next()).await {
            if let Some(rest) = t.strip_prefix("43") {
                let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
                if let Ok(id) = digits.parse::<u64>() {
                    if let Some(at) = sent_at.lock().expect("lock").remove(&id) {
                        if rest.contains("\"ok\":true") {
                            local.push(at.elapsed().as_micros() as u64);
                        } else {
                            tally.errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
        }
        tally.latencies.lock().expect("lock").extend(local);
    })
}

/// Sends `message:send` at the share's rate until the deadline, noting when each one left.
async fn send_at_rate(
    mut sink: futures_util::stream::SplitSink<Ws, Message>,
    share: &Share,
    sent_at: &SentAt,
    errs: &AtomicU64,
    deadline: Instant,
) {
    let interval = Duration::from_secs_f64(1.0 / share.rate.max(0.001));
    let mut next = Instant::now();
    let mut id = 1u64;
    while Instant::now() < deadline {
        let frame = format!(
            "42{id}{}",
            json!(["message:send", { "conversationId": share.conv, "messageId": uuid::Uuid::new_v4(), "text": share.text }])
        );
        sent_at.lock().expect("lock").insert(id, Instant::now());
        if sink.send(Message::text(frame)).await.is_err() {
            errs.fetch_add(1, Ordering::Relaxed);
            break;
        }
        id += 1;
        next += interval;
        let now = Instant::now();
        if next > now {
            tokio::time::sleep(next - now).await;
        } else if now - next > Duration::from_millis(200) {
            // Too far behind the schedule: do not burst to catch up.
            next = now;
        }
    }
}

/// Sends on `tx` from the start signal to the deadline; messages never acked count as errors.
fn spawn_sender(tx: Ws, share: Share, tally: Tally, mut go: Go) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let Some(deadline) = start_signal(&mut go).await else { return };
        let (sink, stream) = tx.split();
        let sent_at: SentAt = Arc::default();
        let reader = spawn_ack_reader(stream, sent_at.clone(), tally.clone(), deadline);
        send_at_rate(sink, &share, &sent_at, &tally.errors, deadline).await;
        let _ = reader.await;
        tally.errors.fetch_add(sent_at.lock().expect("lock").len() as u64, Ordering::Relaxed);
    })
}

async fn throughput(args: &Args) -> Value {
    assert!(args.nodes >= 1, "--nodes must be at least 1");
    if args.nodes > 1 {
        let cluster = start_cluster(args).await;
        let nats: Vec<u32> = cluster.nats.iter().map(Child::id).collect();
        return load(args, &cluster.nodes, &nats).await;
    }
    let server = start_server(&args.server).await;
    load(args, std::slice::from_ref(&server), &[]).await
}

/// Runs the throughput load against `nodes`: conversations are created on the
/// first; the sender of conversation i connects to node i % n and its receiver
/// to node (i + 1) % n. `nats` are the NATS servers' pids, if any.
async fn load(args: &Args, nodes: &[Server], nats: &[u32]) -> Value {
    let convs = create_conversations(&nodes[0], args.conversations).await;
    if nodes.len() > 1 {
        wait_visible(nodes, &convs).await;
    }
    let tally = Tally::default();
    // Every sender starts at once, after all connections are set up; the
    // deadline is sent with the start signal.
    let (go_tx, go_rx) = tokio::sync::watch::channel(None::<Instant>);
    let per_sender = args.rate / args.conversations as f64;
    let text = "x".repeat(args.text_bytes);
    let mut receivers = Vec::new();
    let mut senders = Vec::new();
    for (i, conv) in convs.iter().enumerate() {
        let (to, from) = (&nodes[i % nodes.len()], &nodes[(i + 1) % nodes.len()]);
        let mut rx = connect(&from.base, &from.token).await.expect("receiver connects");
        join(&mut rx, conv).await.expect("receiver joins");
        receivers.push(spawn_receiver(rx, tally.delivered.clone(), go_rx.clone()));
        let mut tx = connect(&to.base, &to.token).await.expect("sender connects");
        join(&mut tx, conv).await.expect("sender joins");
        let share = Share { conv: conv.clone(), text: text.clone(), rate: per_sender };
        senders.push(spawn_sender(tx, share, tally.clone(), go_rx.clone()));
    }
    let started = Instant::now();
    let _ = go_tx.send(Some(started + Duration::from_secs(args.seconds)));
    let pids: Vec<u32> = nodes.iter().map(|s| s.child.id()).collect();
    let (rss_during, nats_rss) = {
        tokio::time::sleep(Duration::from_secs(args.seconds / 2)).await;
        (rss_sum(&pids), rss_sum(nats))
    };
    for s in senders {
        let _ = s.await;
    }
    let elapsed = started.elapsed().min(Duration::from_secs(args.seconds)).as_secs_f64();
    for r in receivers {
        let _ = r.await;
    }
    let mut lat = tally.latencies.lock().expect("lock").clone();
    lat.sort_unstable();
    let mut out = json!({
        "mode": "throughput",
        "nodes": nodes.len(),
        "conversations": args.conversations,
        "connections": args.conversations * 2,
        "offeredRate": args.rate,
        "seconds": args.seconds,
        "acked": lat.len(),
        "ackedPerSec": (lat.len() as f64 / elapsed).round(),
        "ackLatencyMs": { "p50": percentile(&lat, 0.50), "p99": percentile(&lat, 0.99), "p999": percentile(&lat, 0.999) },
        "deliveredFanout": tally.delivered.load(Ordering::Relaxed),
        "errors": tally.errors.load(Ordering::Relaxed),
        "serverRssMiB": rss_during as f64 / 1024.0,
    });
    if !nats.is_empty() {
        out["natsRssMiB"] = json!(nats_rss as f64 / 1024.0);
    }
    out
}

/// A worker process: holds `connections` connections until stdin closes, printing how many it opened.
async fn idle_worker(args: &Args) {
    let url = args.url.clone().expect("--url");
    let token = args.token.clone().expect("--token");
    let mut held = Vec::with_capacity(args.connections);
    let mut failed = 0;
    let chunks = futures_util::stream::iter(0..args.connections).map(|_| connect(&url, &token)).buffer_unordered(64);
    let results: Vec<_> = chunks.collect().await;
    for r in results {
        match r {
            Ok(ws) => held.push(ws),
            Err(_) => failed += 1,
        }
    }
    println!("{}", json!({ "opened": held.len(), "failed": failed }));
    // Answer pings until told to stop (stdin closes).
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::stdin().read_line(&mut s);
        let _ = stop_tx.send(());
    });
    let tasks: Vec<_> = held
        .into_iter()
        .map(|mut ws| {
            tokio::spawn(async move {
                while let Some(Ok(m)) = ws.next().await {
                    if matches!(&m, Message::Text(t) if t.as_str() == "2") && ws.send(Message::text("3")).await.is_err() {
                        break;
                    }
                }
            })
        })
        .collect();
    let _ = (&mut stop_rx).await;
    for t in tasks {
        t.abort();
    }
}

async fn idle(args: &Args) -> Value {
    use std::io::{BufRead, BufReader};
    assert_eq!(args.nodes, 1, "--nodes is for --mode throughput");
    let server = start_server(&args.server).await;
    let rss_before = rss_kib(server.child.id());
    let me = std::env::current_exe().expect("exe");
    let per = args.connections.div_ceil(args.workers);
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..args.workers {
        let child = Command::new(&me)
            .args(["--mode", "idle-worker", "--connections", &per.to_string(), "--url", &server.base, "--token", &server.token])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("worker");
        workers.push(child);
    }
    let mut opened = 0;
    let mut failed = 0;
    for w in &mut workers {
        let mut line = String::new();
        BufReader::new(w.stdout.as_mut().expect("stdout")).read_line(&mut line).expect("worker report");
        let v: Value = serde_json::from_str(&line).unwrap_or_default();
        opened += v["opened"].as_u64().unwrap_or(0);
        failed += v["failed"].as_u64().unwrap_or(0);
    }
    let connect_secs = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    let rss = rss_kib(server.child.id());
    let health: Value = reqwest::get(format!("{}/health/socket", server.base)).await.expect("health").json().await.expect("json");
    for mut w in workers {
        drop(w.stdin.take());
        let _ = w.wait();
    }
    json!({
        "mode": "idle",
        "connections": opened,
        "failed": failed,
        "serverSaw": health["connections"]["connections"],
        "connectSeconds": connect_secs,
        "serverRssMiB": rss as f64 / 1024.0,
        "serverRssBeforeMiB": rss_before as f64 / 1024.0,
        "kibPerConnection": if opened > 0 { (rss.saturating_sub(rss_before)) as f64 / opened as f64 } else { 0.0 },
    })
}

fn main() {
    let args = parse_args();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let out = rt.block_on(async {
        match args.mode.as_str() {
            "throughput" => Some(throughput(&args).await),
            "idle" => Some(idle(&args).await),
            "idle-worker" => {
                idle_worker(&args).await;
                None
            }
            other => panic!("unknown mode {other}"),
        }
    });
    if let Some(v) = out {
        println!("{}", serde_json::to_string_pretty(&v).expect("json"));
    }
}
