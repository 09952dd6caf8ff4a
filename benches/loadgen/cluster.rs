//! Three NATS JetStream servers and utalk nodes on them, on loopback.

use super::{add_user, bench_dir, http_client, login, serve, Args, Server};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// NATS servers and utalk nodes on loopback. Dropping it stops the nodes,
/// then the NATS servers, then removes their files.
pub(super) struct Cluster {
    pub(super) nats: Vec<Child>,
    /// The NATS servers' monitoring ports, in the order of `nats`.
    pub(super) nats_http: Vec<u16>,
    pub(super) nodes: Vec<Server>,
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

/// How often the NATS servers sync their files: `UTALK_BENCH_NATS_SYNC`
/// (a NATS duration such as `2m`, NATS's own default), else `always`, so
/// that an ack means on disk on a majority of the servers.
fn nats_sync() -> String {
    std::env::var("UTALK_BENCH_NATS_SYNC").unwrap_or_else(|_| "always".into())
}

/// Writes the config of NATS server `i` with `ports` (client, monitoring, cluster) into `dir`.
fn nats_config(dir: &Path, i: usize, ports: &[u16], routes: &str) -> PathBuf {
    let (client, http, cluster) = (ports[0], ports[1], ports[2]);
    let config = dir.join(format!("n{i}.conf"));
    std::fs::write(
        &config,
        format!(
            "server_name: n{i}\nlisten: 127.0.0.1:{client}\nhttp: 127.0.0.1:{http}\n\
             jetstream {{\n  store_dir: \"{}\"\n  sync_interval: {sync}\n  max_memory_store: 256MB\n  max_file_store: 2GB\n}}\n\
             cluster {{\n  name: utalk\n  listen: 127.0.0.1:{cluster}\n  routes: [\n    {routes}\n  ]\n}}\n",
            dir.join(format!("n{i}")).display(),
            sync = nats_sync(),
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
        c.nats_http.push(p[1]);
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
pub(super) async fn start_cluster(args: &Args) -> Cluster {
    let mut c =
        Cluster { nats: Vec::new(), nats_http: Vec::new(), nodes: Vec::new(), dir: tempfile::tempdir_in(bench_dir()).expect("tempdir") };
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
