//! A node reaches NATS over TLS with a user and password: the URL carries
//! them, `cluster.tls_ca_file` names the authority of the server's
//! certificate. A wrong password or an unknown authority stops the start with
//! a message that says why and never shows the password.

use crate::helpers::{bin, TestServer};
use crate::nats::Nats;
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const JWT_SECRET: &str = "k3J9xQ2vL8mN4pR7tY1wZ5aB6cD0eF2gH8";
const PASSWORD: &str = "n4ts-p@ss:word";
/// PASSWORD as it goes into a URL.
const PASSWORD_IN_URL: &str = "n4ts-p%40ss%3Aword";

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl (scripts/test installs it)");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A certificate authority and a server certificate for 127.0.0.1 signed by it.
fn certificates(dir: &Path) {
    std::fs::write(dir.join("san.cnf"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n").unwrap();
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    openssl(
        dir,
        &[&["req", "-x509"], &ec[..], &["-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=utalk test CA"]].concat(),
    );
    openssl(dir, &[&["req"], &ec[..], &["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"]].concat());
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "san.cnf",
        ],
    );
    // A second authority, which did not sign the server's certificate.
    openssl(
        dir,
        &[&["req", "-x509"], &ec[..], &["-keyout", "other.key", "-out", "other.pem", "-days", "2", "-subj", "/CN=other CA"]].concat(),
    );
}

fn env(url: &str, ca: &Path) -> Vec<(String, String)> {
    [
        ("UTALK_CLUSTER_URL", url.to_string()),
        ("UTALK_NODE_ID", "n1".into()),
        ("UTALK_CLUSTER__REPLICAS", "1".into()),
        ("UTALK_CLUSTER__LEASE_MS", "3000".into()),
        ("UTALK_CLUSTER__FORWARD_TIMEOUT_MS", "8000".into()),
        ("UTALK_CLUSTER__TLS_CA_FILE", ca.display().to_string()),
        ("UTALK_JWT_SECRET", JWT_SECRET.into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// Runs `utalk serve` to its end (it is expected to refuse to start): (success, everything it printed).
async fn serve_to_end(data: &Path, env: &[(String, String)]) -> (bool, String) {
    let mut cmd = tokio::process::Command::new(bin());
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"]).arg(data).env("UTALK_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output()).await.expect("utalk serve gives up within 60 s").unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_reaches_nats_over_tls_with_a_password_and_says_why_when_it_cannot() {
    let certs = tempfile::tempdir().unwrap();
    certificates(certs.path());
    let p = |f: &str| certs.path().join(f).display().to_string();
    let nats = Nats::start_single(&format!(
        "tls {{\n  cert_file: \"{}\"\n  key_file: \"{}\"\n}}\nauthorization {{\n  user: utalk\n  password: \"{PASSWORD}\"\n}}",
        p("server.pem"),
        p("server.key")
    ))
    .await;
    let port = nats.client_port(0);
    let url = format!("tls://utalk:{PASSWORD_IN_URL}@127.0.0.1:{port}");
    let ca = certs.path().join("ca.pem");

    // The right password and authority: the node joins and owns every shard.
    let dir = tempfile::tempdir().unwrap();
    let node_env = env(&url, &ca);
    let env_refs: Vec<(&str, &str)> = node_env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let node = TestServer::start_on(&dir.path().join("data"), &env_refs).await;
    let http = reqwest::Client::new();
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let v: Value = http.get(format!("{}/health/cluster", node.base)).send().await.unwrap().json().await.unwrap();
        if v["status"] == "ok" && v["ownedShards"].as_array().map(Vec::len) == Some(64) {
            assert_eq!(v["mode"], "nats", "{v}");
            break;
        }
        assert!(Instant::now() < until, "the node over TLS did not take its shards: {v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let logs = node.log_text();
    assert!(!logs.contains(PASSWORD) && !logs.contains(PASSWORD_IN_URL), "the password reached the logs");
    drop(node);

    // A wrong password: refused, with the reason and without the password.
    let wrong = format!("tls://utalk:not-it@127.0.0.1:{port}");
    let (ok, out) = serve_to_end(&dir.path().join("wrong"), &env(&wrong, &ca)).await;
    assert!(!ok && out.contains("cannot join the cluster") && out.to_lowercase().contains("authoriz"), "wrong password: {out}");
    assert!(!out.contains("not-it"), "the password was printed: {out}");

    // An authority that did not sign the server's certificate: refused.
    let (ok, out) = serve_to_end(&dir.path().join("untrusted"), &env(&url, &certs.path().join("other.pem"))).await;
    assert!(!ok && out.contains("cannot join the cluster"), "unknown authority: {out}");
    assert!(!out.contains(PASSWORD) && !out.contains(PASSWORD_IN_URL), "the password was printed: {out}");

    // A CA file that does not exist stops the start before any connection.
    let (ok, out) = serve_to_end(&dir.path().join("missing"), &env(&url, &certs.path().join("missing.pem"))).await;
    assert!(!ok && out.contains("tls_ca_file"), "missing CA file: {out}");
}
