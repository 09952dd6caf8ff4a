//! Three real NATS JetStream servers on loopback, clustered, for the cluster tests.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The nats-server binary: `NATS_SERVER_BIN` (scripts/test installs it), else `nats-server` on the PATH.
fn binary() -> String {
    std::env::var("NATS_SERVER_BIN").unwrap_or_else(|_| "nats-server".into())
}

/// `n` distinct free ports: all held open together so the kernel cannot hand
/// out one of them twice, then let go for the servers to take.
fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<std::net::TcpListener> = (0..n).map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    held.iter().map(|l| l.local_addr().unwrap().port()).collect()
}

struct Server {
    config: PathBuf,
    client_port: u16,
    http_port: u16,
    child: Option<Child>,
}

/// One NATS cluster at a time in this test binary: three servers and up to
/// three nodes fill both cores, and two such tests at once starve each other.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A three-server JetStream cluster with `sync_interval: always`.
pub struct Nats {
    _turn: tokio::sync::MutexGuard<'static, ()>,
    servers: Vec<Server>,
    host: String,
    _dir: tempfile::TempDir,
}

impl Nats {
    /// Starts the servers and waits until JetStream has a meta leader.
    pub async fn start() -> Nats {
        Self::start_for("127.0.0.1").await
    }

    /// Like [`Nats::start`], with client connections accepted on `client_host`
    /// (an address of a test network namespace's link) instead of loopback.
    pub async fn start_for(client_host: &str) -> Nats {
        let turn = ONE_AT_A_TIME.lock().await;
        let dir = tempfile::tempdir().unwrap();
        let ports: Vec<(u16, u16, u16)> = free_ports(9).chunks(3).map(|p| (p[0], p[1], p[2])).collect();
        let routes: Vec<String> = ports.iter().map(|(_, _, c)| format!("nats-route://127.0.0.1:{c}")).collect();
        let mut servers = Vec::new();
        for (i, (client, http, cluster)) in ports.iter().enumerate() {
            let store = dir.path().join(format!("n{i}"));
            let config = dir.path().join(format!("n{i}.conf"));
            std::fs::write(
                &config,
                format!(
                    "server_name: n{i}\nlisten: {client_host}:{client}\nhttp: 127.0.0.1:{http}\n\
                     jetstream {{\n  store_dir: \"{}\"\n  sync_interval: always\n  max_memory_store: 256MB\n  max_file_store: 2GB\n}}\n\
                     cluster {{\n  name: utalk\n  listen: 127.0.0.1:{cluster}\n  routes: [\n    {}\n  ]\n}}\n",
                    store.display(),
                    routes.join("\n    ")
                ),
            )
            .unwrap();
            servers.push(Server { config, client_port: *client, http_port: *http, child: None });
        }
        let mut n = Nats { _turn: turn, servers, host: client_host.to_string(), _dir: dir };
        for i in 0..3 {
            n.spawn(i);
        }
        n.wait_healthy(&[0, 1, 2]).await;
        n
    }

    /// One JetStream server whose configuration also holds `extra` (TLS,
    /// authorization), for tests of how a node connects. Reach it with
    /// [`Nats::client_port`].
    pub async fn start_single(extra: &str) -> Nats {
        let turn = ONE_AT_A_TIME.lock().await;
        let dir = tempfile::tempdir().unwrap();
        let ports = free_ports(2);
        let store = dir.path().join("n0");
        let config = dir.path().join("n0.conf");
        std::fs::write(
            &config,
            format!(
                "server_name: n0\nlisten: 127.0.0.1:{}\nhttp: 127.0.0.1:{}\n\
                 jetstream {{\n  store_dir: \"{}\"\n  sync_interval: always\n  max_memory_store: 256MB\n  max_file_store: 1GB\n}}\n{extra}\n",
                ports[0],
                ports[1],
                store.display()
            ),
        )
        .unwrap();
        let servers = vec![Server { config, client_port: ports[0], http_port: ports[1], child: None }];
        let mut n = Nats { _turn: turn, servers, host: "127.0.0.1".into(), _dir: dir };
        n.spawn(0);
        n.wait_healthy(&[0]).await;
        n
    }

    /// The client port of server `i`.
    pub fn client_port(&self, i: usize) -> u16 {
        self.servers[i].client_port
    }

    fn spawn(&mut self, i: usize) {
        let s = &mut self.servers[i];
        let log = std::fs::OpenOptions::new().create(true).append(true).open(s.config.with_extension("log")).unwrap();
        let child =
            Command::new(binary()).arg("-c").arg(&s.config).stdout(Stdio::null()).stderr(Stdio::from(log)).spawn().unwrap_or_else(|e| {
                panic!("cannot start {} ({e}): run scripts/test, which installs nats-server, or set NATS_SERVER_BIN", binary())
            });
        s.child = Some(child);
    }

    /// Waits until each of `which` answers `/healthz` with 200 (JetStream current).
    pub async fn wait_healthy(&self, which: &[usize]) {
        let http = reqwest::Client::new();
        let until = Instant::now() + Duration::from_secs(60);
        for &i in which {
            let url = format!("http://127.0.0.1:{}/healthz", self.servers[i].http_port);
            loop {
                if let Ok(r) = http.get(&url).send().await {
                    if r.status() == 200 {
                        break;
                    }
                }
                if Instant::now() >= until {
                    let log = std::fs::read_to_string(self.servers[i].config.with_extension("log")).unwrap_or_default();
                    let tail: Vec<&str> = log.lines().rev().take(30).collect();
                    panic!("NATS server {i} did not become healthy; its last log lines, newest first:\n{}", tail.join("\n"));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    /// The comma-separated URLs of all three servers.
    pub fn urls(&self) -> String {
        self.servers.iter().map(|s| format!("nats://{}:{}", self.host, s.client_port)).collect::<Vec<_>>().join(",")
    }

    /// The URLs of all three servers at `host` (for servers started with [`Nats::start_for`] on `0.0.0.0`).
    pub fn urls_via(&self, host: &str) -> String {
        self.servers.iter().map(|s| format!("nats://{host}:{}", s.client_port)).collect::<Vec<_>>().join(",")
    }

    /// Kills server `i` with SIGKILL.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.servers[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts server `i` again on its data.
    pub async fn restart(&mut self, i: usize) {
        self.spawn(i);
        self.wait_healthy(&[i]).await;
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        for i in 0..self.servers.len() {
            self.kill(i);
        }
    }
}
