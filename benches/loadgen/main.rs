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
//!   holds them, and reports the server's RSS and memory per connection; or
//! - `--mode failover` (`--nodes 3`): the throughput load on a cluster while
//!   `--kill node|nats-leader|nats-follower` is SIGKILLed `--kill-at`
//!   seconds in, reporting how long writes waited (see `failover.rs`).
//!
//! `UTALK_BENCH_LOG` sets the servers' log filter and puts their logs on
//! stderr; `UTALK_BENCH_NATS_SYNC` the NATS servers' `sync_interval`.
//!
//! It prints one JSON object. Everything talks to 127.0.0.1 and stops by itself.
//!
//! `cargo bench --bench loadgen -- --mode throughput --conversations 64 --rate 5000 --seconds 10`
//! `cargo bench --bench loadgen -- --mode throughput --nodes 3 --conversations 64 --rate 2000 --seconds 10`
//! `cargo bench --bench loadgen -- --mode failover --nodes 3 --kill node --rate 1000 --seconds 25 --kill-at 8`

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

mod cluster;
mod failover;

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
    /// `--mode failover`: what is killed (`node`, `nats-leader`, `nats-follower`) and when.
    kill: String,
    kill_at: u64,
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
        kill: "node".into(),
        kill_at: 5,
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
            "--kill" => a.kill = v,
            "--kill-at" => a.kill_at = v.parse().expect("--kill-at SECONDS"),
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
        // UTALK_BENCH_LOG sets the servers' log filter and puts their logs on stderr, to see what they did during a run.
        .env("UTALK_LOG", std::env::var("UTALK_BENCH_LOG").unwrap_or_else(|_| "warn,utalk::app=info".into()))
        .env_remove("UTALK_BENCH_LOG")
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
    let shown = std::env::var_os("UTALK_BENCH_LOG").is_some();
    let who = addr.clone();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if shown {
                eprintln!("{who} {line}");
            }
        }
    });
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

fn http_client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("http client")
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

/// One acked message: its sender's index, when it was sent, and its ack latency in µs.
#[derive(Clone, Copy)]
struct Sample {
    sender: usize,
    sent: Instant,
    us: u64,
}

/// What the load tasks count, shared between them.
#[derive(Clone)]
struct Tally {
    delivered: Arc<AtomicU64>,
    errors: Arc<AtomicU64>,
    samples: Arc<Mutex<Vec<Sample>>>,
    /// How long acks and deliveries are awaited after the deadline.
    grace: Duration,
}

impl Tally {
    fn new(grace: Duration) -> Tally {
        Tally { delivered: Arc::default(), errors: Arc::default(), samples: Arc::default(), grace }
    }
}

/// One sender's share of the load: its index, its conversation, the text it sends and its rate.
struct Share {
    index: usize,
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

/// Counts the `message:new` events `rx` receives until `grace` past the deadline.
fn spawn_receiver(mut rx: Ws, delivered: Arc<AtomicU64>, grace: Duration, mut go: Go) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let Some(deadline) = start_signal(&mut go).await else { return };
        let stop = deadline + grace;
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

/// Reads acks until the tally's grace past the deadline, recording the latency of the good ones and counting the others.
fn spawn_ack_reader(
    mut stream: futures_util::stream::SplitStream<Ws>,
    sender: usize,
    sent_at: SentAt,
    tally: Tally,
    deadline: Instant,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut local = Vec::new();
        let stop = deadline + tally.grace;
        while let Ok(Some(Ok(Message::Text(t)))) = tokio::time::timeout_at(stop.into(), stream.next()).await {
            if let Some(rest) = t.strip_prefix("43") {
                let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
                if let Ok(id) = digits.parse::<u64>() {
                    if let Some(at) = sent_at.lock().expect("lock").remove(&id) {
                        if rest.contains("\"ok\":true") {
                            local.push(Sample { sender, sent: at, us: at.elapsed().as_micros() as u64 });
                        } else {
                            tally.errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
        }
        tally.samples.lock().expect("lock").extend(local);
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
        let reader = spawn_ack_reader(stream, share.index, sent_at.clone(), tally.clone(), deadline);
        send_at_rate(sink, &share, &sent_at, &tally.errors, deadline).await;
        let _ = reader.await;
        tally.errors.fetch_add(sent_at.lock().expect("lock").len() as u64, Ordering::Relaxed);
    })
}

async fn throughput(args: &Args) -> Value {
    assert!(args.nodes >= 1, "--nodes must be at least 1");
    if args.nodes > 1 {
        let cluster = cluster::start_cluster(args).await;
        let nats: Vec<u32> = cluster.nats.iter().map(Child::id).collect();
        return load(args, &cluster.nodes, &nats).await;
    }
    let server = start_server(&args.server).await;
    load(args, std::slice::from_ref(&server), &[]).await
}

/// What a load run left: every acked message, the counts, and what ran beside it.
struct Finished<T> {
    samples: Vec<Sample>,
    delivered: u64,
    errors: u64,
    started: Instant,
    /// Seconds of sending (the deadline, or less if the senders stopped early).
    elapsed: f64,
    during: T,
}

/// Runs the load against `nodes`: conversations are created on the first;
/// the sender of conversation i connects to node i % n and its receiver to
/// node (i + 1) % n. `during` runs beside the senders from the start signal
/// on; acks are awaited `grace` past the deadline.
async fn run_load<T>(args: &Args, nodes: &[Server], grace: Duration, during: impl std::future::Future<Output = T>) -> Finished<T> {
    let convs = create_conversations(&nodes[0], args.conversations).await;
    if nodes.len() > 1 {
        wait_visible(nodes, &convs).await;
    }
    let tally = Tally::new(grace);
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
        receivers.push(spawn_receiver(rx, tally.delivered.clone(), grace, go_rx.clone()));
        let mut tx = connect(&to.base, &to.token).await.expect("sender connects");
        join(&mut tx, conv).await.expect("sender joins");
        let share = Share { index: i, conv: conv.clone(), text: text.clone(), rate: per_sender };
        senders.push(spawn_sender(tx, share, tally.clone(), go_rx.clone()));
    }
    let started = Instant::now();
    let _ = go_tx.send(Some(started + Duration::from_secs(args.seconds)));
    let during = during.await;
    for s in senders {
        let _ = s.await;
    }
    let elapsed = started.elapsed().min(Duration::from_secs(args.seconds)).as_secs_f64();
    for r in receivers {
        let _ = r.await;
    }
    let samples = std::mem::take(&mut *tally.samples.lock().expect("lock"));
    Finished {
        samples,
        delivered: tally.delivered.load(Ordering::Relaxed),
        errors: tally.errors.load(Ordering::Relaxed),
        started,
        elapsed,
        during,
    }
}

/// Ack latencies of `samples` in µs, sorted.
fn sorted_latencies<'a>(samples: impl Iterator<Item = &'a Sample>) -> Vec<u64> {
    let mut lat: Vec<u64> = samples.map(|s| s.us).collect();
    lat.sort_unstable();
    lat
}

/// The throughput load against `nodes`, with their RSS (and that of the
/// NATS servers `nats`, if any) read halfway through.
async fn load(args: &Args, nodes: &[Server], nats: &[u32]) -> Value {
    let pids: Vec<u32> = nodes.iter().map(|s| s.child.id()).collect();
    let half = Duration::from_secs(args.seconds) / 2;
    let rss = async move {
        tokio::time::sleep(half).await;
        (rss_sum(&pids), rss_sum(nats))
    };
    let f = run_load(args, nodes, Duration::from_secs(5), rss).await;
    let (rss_during, nats_rss) = f.during;
    let lat = sorted_latencies(f.samples.iter());
    let mut out = json!({
        "mode": "throughput",
        "nodes": nodes.len(),
        "conversations": args.conversations,
        "connections": args.conversations * 2,
        "offeredRate": args.rate,
        "seconds": args.seconds,
        "acked": lat.len(),
        "ackedPerSec": (lat.len() as f64 / f.elapsed).round(),
        "ackLatencyMs": { "p50": percentile(&lat, 0.50), "p99": percentile(&lat, 0.99), "p999": percentile(&lat, 0.999) },
        "deliveredFanout": f.delivered,
        "errors": f.errors,
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
            "failover" => Some(failover::run(&args).await),
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
