//! Socket.IO load generator: our own protocol client over websockets.
//!
//! It starts a utalk server (release build by default) on a free loopback
//! port with a fresh data dir and a user, then either
//!
//! - `--mode throughput`: opens `--conversations` pairs of connections (a
//!   sender and a receiver joined to the same conversation), sends at
//!   `--rate` messages/s in total for `--seconds`, and reports acked
//!   messages/s, ack latency p50/p99/p999, delivered fan-out and errors; or
//! - `--mode idle`: opens `--connections` authenticated connections spread
//!   over `--workers` processes (a process may hold at most 20,000 files),
//!   holds them, and reports the server's RSS and memory per connection.
//!
//! It prints one JSON object. Everything talks to 127.0.0.1 and stops by itself.
//!
//! `cargo bench --bench loadgen -- --mode throughput --conversations 64 --rate 5000 --seconds 10`

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

#[derive(Debug, Clone)]
struct Args {
    mode: String,
    server: String,
    conversations: usize,
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
    child: std::process::Child,
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

async fn start_server(bin: &str) -> Server {
    use std::io::{BufRead, Write};
    let dir = tempfile::tempdir_in(std::env::var("UTALK_BENCH_DIR").unwrap_or_else(|_| ".".into())).expect("tempdir");
    let data = dir.path().join("data");
    let mut add = Command::new(bin)
        .args(["user", "add", "--email", "load@example.com", "--role", "agent", "--password-stdin", "--data-dir"])
        .arg(&data)
        .env("UTALK_LOG", "warn")
        .stdin(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {bin}: {e} (build it with cargo build --release)"));
    add.stdin.take().expect("stdin").write_all(b"load-test-password\n").expect("password");
    assert!(add.wait().expect("user add").success());
    let mut child = Command::new(bin)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .env("UTALK_LOG", "warn,utalk::app=info")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("serve");
    let stdout = child.stdout.take().expect("stdout");
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
    let base = format!("http://{addr}");
    let http = reqwest::Client::new();
    let login: Value = http
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"email": "load@example.com", "password": "load-test-password"}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("login body");
    let token = login["accessToken"].as_str().expect("token").to_string();
    Server { child, base, token, _dir: dir }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)).and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

async fn throughput(args: &Args) -> Value {
    let server = start_server(&args.server).await;
    let http = reqwest::Client::new();
    let mut convs = Vec::new();
    for _ in 0..args.conversations {
        let c: Value = http
            .post(format!("{}/api/v1/conversations", server.base))
            .bearer_auth(&server.token)
            .json(&json!({"channel": "api"}))
            .send()
            .await
            .expect("create")
            .json()
            .await
            .expect("body");
        convs.push(c["id"].as_str().expect("id").to_string());
    }
    let delivered = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let latencies: Arc<Mutex<Vec<u64>>> = Arc::default();
    // Every sender starts at once, after all connections are set up; the
    // deadline is sent with the start signal.
    let (go_tx, go_rx) = tokio::sync::watch::channel(None::<Instant>);
    let per_sender = args.rate / args.conversations as f64;
    let text = "x".repeat(args.text_bytes);
    let mut receivers = Vec::new();
    let mut senders = Vec::new();
    for conv in &convs {
        let mut rx = connect(&server.base, &server.token).await.expect("receiver connects");
        join(&mut rx, conv).await.expect("receiver joins");
        let d = delivered.clone();
        let mut go = go_rx.clone();
        receivers.push(tokio::spawn(async move {
            let Ok(deadline) = go.wait_for(Option::is_some).await.map(|d| d.unwrap_or_else(Instant::now)) else { return };
            let stop = deadline + Duration::from_secs(5);
            while let Ok(Some(frame)) = tokio::time::timeout_at(stop.into(), rx.next()).await {
                match frame {
                    Ok(Message::Text(t)) if t.as_str() == "2" => {
                        let _ = rx.send(Message::text("3")).await;
                    }
                    Ok(Message::Text(t)) if t.starts_with("42[\"message:new\"") => {
                        d.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        }));
        let mut tx = connect(&server.base, &server.token).await.expect("sender connects");
        join(&mut tx, conv).await.expect("sender joins");
        let (conv, text, lat, errs) = (conv.clone(), text.clone(), latencies.clone(), errors.clone());
        let mut go = go_rx.clone();
        senders.push(tokio::spawn(async move {
            let Ok(deadline) = go.wait_for(Option::is_some).await.map(|d| d.unwrap_or_else(Instant::now)) else { return };
            let (mut sink, mut stream) = tx.split();
            let sent_at: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
            let reader = {
                let sent_at = sent_at.clone();
                let lat = lat.clone();
                let errs = errs.clone();
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
                                        errs.fetch_add(1, Ordering::Relaxed);
                                    }
                                }
                            }
                        }
                    }
                    lat.lock().expect("lock").extend(local);
                })
            };
            let interval = Duration::from_secs_f64(1.0 / per_sender.max(0.001));
            let mut next = Instant::now();
            let mut id = 1u64;
            while Instant::now() < deadline {
                let frame = format!(
                    "42{id}{}",
                    json!(["message:send", { "conversationId": conv, "messageId": uuid::Uuid::new_v4(), "text": text }])
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
            let _ = reader.await;
            errs.fetch_add(sent_at.lock().expect("lock").len() as u64, Ordering::Relaxed);
        }));
    }
    let started = Instant::now();
    let _ = go_tx.send(Some(started + Duration::from_secs(args.seconds)));
    let rss_during = {
        tokio::time::sleep(Duration::from_secs(args.seconds / 2)).await;
        rss_kib(server.child.id())
    };
    for s in senders {
        let _ = s.await;
    }
    let elapsed = started.elapsed().min(Duration::from_secs(args.seconds)).as_secs_f64();
    for r in receivers {
        let _ = r.await;
    }
    let mut lat = latencies.lock().expect("lock").clone();
    lat.sort_unstable();
    json!({
        "mode": "throughput",
        "conversations": args.conversations,
        "connections": args.conversations * 2,
        "offeredRate": args.rate,
        "seconds": args.seconds,
        "acked": lat.len(),
        "ackedPerSec": (lat.len() as f64 / elapsed).round(),
        "ackLatencyMs": { "p50": percentile(&lat, 0.50), "p99": percentile(&lat, 0.99), "p999": percentile(&lat, 0.999) },
        "deliveredFanout": delivered.load(Ordering::Relaxed),
        "errors": errors.load(Ordering::Relaxed),
        "serverRssMiB": rss_during as f64 / 1024.0,
    })
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
