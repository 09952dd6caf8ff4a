//! Starts the real `utalk` binary on a free loopback port with a temp data dir.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const ADMIN: (&str, &str) = ("admin@example.com", "admin-password-1");
pub const AGENT: (&str, &str) = ("agent@example.com", "agent-password-1");
pub const READONLY: (&str, &str) = ("viewer@example.com", "viewer-password-1");

/// The repository's root. Read at run time: the build cache is shared by
/// clones, and a test binary cargo reuses from another clone would
/// otherwise read that clone's files.
pub fn repo_root() -> std::path::PathBuf {
    std::path::PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()))
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_utalk")
}

/// Runs `utalk` with `args` on `data_dir`, feeding `stdin`; returns (success, stdout, stderr).
pub fn utalk(data_dir: &Path, args: &[&str], stdin: &str) -> (bool, String, String) {
    let mut child = Command::new(bin())
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env("UTALK_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn utalk");
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The audit log in `data_dir`, as `utalk export` writes it (JSON lines); the server may be running.
pub fn exported_audit(data_dir: &Path) -> String {
    use std::io::Read;
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("audit");
    let (ok, stdout, stderr) = utalk(data_dir, &["export", "--collections", "audit", "--out", dir.to_str().unwrap()], "");
    assert!(ok, "{stdout} {stderr}");
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(dir.join("audit.jsonl.gz")).unwrap()).read_to_string(&mut text).unwrap();
    text
}

pub fn add_user(data_dir: &Path, email: &str, role: &str, password: &str) {
    let (ok, out, err) = utalk(data_dir, &["user", "add", "--email", email, "--role", role, "--password-stdin"], &format!("{password}\n"));
    assert!(ok, "user add failed: {out} {err}");
}

/// A running server.
pub struct TestServer {
    pub child: Child,
    pub base: String,
    pub logs: Arc<Mutex<Vec<String>>>,
    pub http: reqwest::Client,
    data_dir: std::path::PathBuf,
    _dir: Option<tempfile::TempDir>,
}

impl TestServer {
    /// A fresh data dir with an admin, an agent and a readonly user, and a server on it.
    pub async fn start() -> TestServer {
        Self::start_with(&[]).await
    }

    /// Like [`start`](Self::start), with extra environment.
    pub async fn start_with(env: &[(&str, &str)]) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        add_user(&data, ADMIN.0, "admin", ADMIN.1);
        add_user(&data, AGENT.0, "agent", AGENT.1);
        add_user(&data, READONLY.0, "readonly", READONLY.1);
        let mut s = Self::start_on(&data, env).await;
        s._dir = Some(dir);
        s
    }

    /// A server on an existing data dir, with extra environment.
    pub async fn start_on(data_dir: &Path, env: &[(&str, &str)]) -> TestServer {
        Self::start_via(&[], "127.0.0.1:0", data_dir, env).await
    }

    /// A server started through `prefix` (say `ip netns exec NS`), listening on `listen`.
    pub async fn start_via(prefix: &[&str], listen: &str, data_dir: &Path, env: &[(&str, &str)]) -> TestServer {
        let mut cmd = match prefix.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(bin());
                c
            }
            None => Command::new(bin()),
        };
        cmd.args(["serve", "--listen", listen, "--data-dir"]).arg(data_dir).env("UTALK_LOG", "info").env("UTALK_HTTP__WORKERS", "2");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().expect("spawn utalk serve");
        let stdout = child.stdout.take().unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        {
            let logs = logs.clone();
            std::thread::spawn(move || {
                let mut tx = Some(tx);
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if let Ok(v) = serde_json::from_str::<Value>(&line) {
                        if let Some(addr) = v.get("addr").and_then(Value::as_str) {
                            if let Some(tx) = tx.take() {
                                let _ = tx.send(addr.to_string());
                            }
                        }
                    }
                    logs.lock().unwrap().push(line);
                }
            });
        }
        let addr = rx.recv_timeout(Duration::from_secs(60)).expect("server did not say where it listens");
        TestServer {
            child,
            base: format!("http://{addr}"),
            logs,
            http: reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap(),
            data_dir: data_dir.to_path_buf(),
            _dir: None,
        }
    }

    /// The server's data directory.
    pub fn data_dir(&self) -> std::path::PathBuf {
        self.data_dir.clone()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// GET `path` with `token`, expecting 200 and JSON.
    pub async fn get_json(&self, path: &str, token: &str) -> Value {
        let r = self.http.get(self.url(path)).bearer_auth(token).send().await.unwrap();
        assert_eq!(r.status(), 200, "GET {path}");
        r.json().await.unwrap()
    }

    pub async fn login(&self, who: (&str, &str)) -> String {
        let r = self.http.post(self.url("/api/v1/auth/login")).json(&json!({"email": who.0, "password": who.1})).send().await.unwrap();
        assert_eq!(r.status(), 200, "login of {} failed", who.0);
        r.json::<Value>().await.unwrap()["accessToken"].as_str().unwrap().to_string()
    }

    pub async fn create_conversation(&self, token: &str) -> String {
        let r = self
            .http
            .post(self.url("/api/v1/conversations"))
            .bearer_auth(token)
            .json(&json!({"channel": "api", "customer": {"name": "Ana", "phone": "+5215550001"}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string()
    }

    /// Sends a text message to `conv` and returns it (asserts 201).
    pub async fn send_text(&self, token: &str, conv: &str, text: &str) -> Value {
        let r = self
            .http
            .post(self.url(&format!("/api/v1/conversations/{conv}/messages")))
            .bearer_auth(token)
            .json(&json!({"messageId": uuid::Uuid::new_v4(), "text": text}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        r.json().await.unwrap()
    }

    /// Sends `n` messages of `text` to `conv`, 16 at a time; asserts each is 201.
    pub async fn send_many(&self, token: &str, conv: &str, n: usize, text: &str) {
        use futures_util::StreamExt;
        let url = self.url(&format!("/api/v1/conversations/{conv}/messages"));
        let statuses = futures_util::stream::iter(0..n)
            .map(|_| {
                let req = self.http.post(&url).bearer_auth(token).json(&json!({"messageId": uuid::Uuid::new_v4(), "text": text}));
                async move { req.send().await.unwrap().status() }
            })
            .buffer_unordered(16)
            .collect::<Vec<_>>()
            .await;
        assert!(statuses.iter().all(|st| st.as_u16() == 201), "{statuses:?}");
    }

    pub async fn messages(&self, token: &str, conv: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut after = 0u64;
        loop {
            let v = self.get_json(&format!("/api/v1/conversations/{conv}/messages?afterSeq={after}&limit=200"), token).await;
            let items = v["items"].as_array().unwrap().clone();
            let Some(last) = items.last() else { return out };
            after = last["seq"].as_u64().unwrap();
            out.extend(items);
        }
    }

    pub async fn last_seq(&self, token: &str, conv: &str) -> u64 {
        self.get_json(&format!("/api/v1/conversations/{conv}"), token).await["lastSeq"].as_u64().unwrap()
    }

    /// Asserts the error body shape and returns the code.
    pub async fn error_code(resp: reqwest::Response, status: u16) -> String {
        assert_eq!(resp.status().as_u16(), status);
        let rid = resp.headers().get("x-request-id").expect("X-Request-ID on every response").to_str().unwrap().to_string();
        let v: Value = resp.json().await.expect("error body is JSON");
        let e = &v["error"];
        assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
        assert_eq!(e["requestId"].as_str(), Some(rid.as_str()), "requestId matches the header");
        e["code"].as_str().unwrap().to_string()
    }

    pub fn log_text(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    /// SIGTERM, and waits for the server to finish its graceful stop.
    pub fn terminate(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let _ = self.child.wait();
    }

    /// SIGKILL, no chance to flush anything.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Clients sending messages as fast as they are answered, recording every acknowledgement.
pub struct Load {
    /// message id → (conversation, seq) of every 201/200 the clients got.
    pub acked: Arc<Mutex<std::collections::HashMap<String, (String, u64)>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    clients: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// Starts `n` clients spread over `convs`.
    pub fn start(s: &TestServer, token: &str, convs: &[String], n: usize) -> Load {
        let acked: Arc<Mutex<std::collections::HashMap<String, (String, u64)>>> = Arc::default();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let clients = (0..n)
            .map(|c| {
                let (http, base, token, conv, acked, stop) =
                    (s.http.clone(), s.base.clone(), token.to_string(), convs[c % convs.len()].clone(), acked.clone(), stop.clone());
                tokio::spawn(async move {
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let id = uuid::Uuid::new_v4().to_string();
                        let r = http
                            .post(format!("{base}/api/v1/conversations/{conv}/messages"))
                            .bearer_auth(&token)
                            .json(&json!({"messageId": id, "text": format!("client {c}")}))
                            .send()
                            .await;
                        match r {
                            Ok(r) if r.status().is_success() => {
                                if let Ok(v) = r.json::<Value>().await {
                                    if let Some(seq) = v["seq"].as_u64() {
                                        acked.lock().unwrap().insert(id, (conv.clone(), seq));
                                    }
                                }
                            }
                            _ => break,
                        }
                    }
                })
            })
            .collect();
        Load { acked, stop, clients }
    }

    /// The acknowledgements so far.
    pub fn snapshot(&self) -> std::collections::HashMap<String, (String, u64)> {
        self.acked.lock().unwrap().clone()
    }

    /// Stops the clients and returns every acknowledgement.
    pub async fn stop(self) -> std::collections::HashMap<String, (String, u64)> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for c in self.clients {
            let _ = c.await;
        }
        self.acked.lock().unwrap().clone()
    }
}

/// Checks that each conversation's seqs are gap-free and that every acknowledged
/// message is stored with the seq it was acknowledged with.
pub async fn assert_acknowledged_stored(
    s: &TestServer,
    token: &str,
    convs: &[String],
    acked: &std::collections::HashMap<String, (String, u64)>,
) {
    for conv in convs {
        let stored = s.messages(token, conv).await;
        let seqs: Vec<u64> = stored.iter().map(|m| m["seq"].as_u64().unwrap()).collect();
        assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "seqs of {conv} have a gap");
        let by_id: std::collections::HashMap<&str, u64> =
            stored.iter().map(|m| (m["id"].as_str().unwrap(), m["seq"].as_u64().unwrap())).collect();
        for (id, (c, seq)) in acked.iter().filter(|(_, (c, _))| c == conv) {
            assert_eq!(by_id.get(id.as_str()), Some(seq), "acknowledged message {id} in {c} lost or moved");
        }
    }
}

/// One HTTP/1.1 request from a keep-alive connection to a test receiver:
/// its head (request line and headers) and body, or `None` when the peer
/// closed. `buf` holds what was read past it, for the next request.
pub async fn next_request(conn: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> Option<(String, Vec<u8>)> {
    use tokio::io::AsyncReadExt;
    async fn more(conn: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> Option<()> {
        let mut chunk = [0u8; 8192];
        match conn.read(&mut chunk).await {
            Ok(0) | Err(_) => None,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                Some(())
            }
        }
    }
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        more(conn, buf).await?;
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let len: usize = head
        .lines()
        .find_map(|l| l.split_once(':').filter(|(k, _)| k.trim().eq_ignore_ascii_case("content-length")).map(|(_, v)| v.trim().to_string()))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        more(conn, buf).await?;
    }
    let body = buf.drain(..head_end + len).skip(head_end).collect();
    Some((head, body))
}
