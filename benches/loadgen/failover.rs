//! `--mode failover`: a steady load on a three-node cluster while one part
//! of it is killed with SIGKILL, measuring how long writes wait.
//!
//! - `--kill node`: the third utalk node dies. Every socket is on the first
//!   two nodes, so what is measured is how soon the dead node's
//!   conversations (about a third) are served by a new owner; requests
//!   forwarded to it are asked again of the new owner.
//! - `--kill nats-leader` / `--kill nats-follower`: the NATS server that
//!   leads the log stream (`UTALK_LOG`), or one that follows it, dies.
//!   Sockets are on all three nodes; nodes connected to the dead server
//!   connect to another.
//!
//! The kill comes `--kill-at` seconds into `--seconds` of sending.

use super::cluster::{start_cluster, Cluster};
use super::{percentile, run_load, sorted_latencies, Args, Sample};
use serde_json::{json, Value};
use std::process::Command;
use std::time::{Duration, Instant};

/// What was killed and when.
struct Killed {
    what: String,
    at: Instant,
}

/// SIGKILLs `pid` (the process is a child of this one; it is reaped when the cluster is dropped).
fn sigkill(pid: u32) {
    let ok = Command::new("kill").args(["-KILL", &pid.to_string()]).status().is_ok_and(|s| s.success());
    assert!(ok, "kill -KILL {pid} failed");
}

/// The name (`n0`, `n1`, `n2`) of the NATS server leading the log stream, from the monitoring endpoint.
async fn log_leader(c: &Cluster) -> Option<String> {
    let http = super::http_client();
    for port in &c.nats_http {
        let Ok(r) = http.get(format!("http://127.0.0.1:{port}/jsz?accounts=true&streams=true")).send().await else { continue };
        let Ok(v) = r.json::<Value>().await else { continue };
        for account in v["account_details"].as_array().into_iter().flatten() {
            for stream in account["stream_detail"].as_array().into_iter().flatten() {
                if stream["name"] == "UTALK_LOG" {
                    if let Some(leader) = stream["cluster"]["leader"].as_str() {
                        return Some(leader.to_string());
                    }
                }
            }
        }
    }
    None
}

/// The pid to kill and what it is, per `--kill`; for a node, the node is
/// taken out of `c.nodes` (its sockets would die with it) and returned.
async fn victim(args: &Args, c: &mut Cluster) -> (u32, String, Option<super::Server>) {
    match args.kill.as_str() {
        "node" => {
            let node = c.nodes.pop().expect("a node to kill");
            (node.child.id(), format!("utalk node n{} (SIGKILL)", c.nodes.len() + 1), Some(node))
        }
        "nats-leader" | "nats-follower" => {
            let leader = log_leader(c).await.expect("the log stream's leader, from NATS monitoring");
            let index = |name: &str| name.trim_start_matches('n').parse::<usize>().expect("server name n<i>");
            let i = if args.kill == "nats-leader" { index(&leader) } else { (index(&leader) + 1) % c.nats.len() };
            let role = if args.kill == "nats-leader" { "leader" } else { "a follower" };
            (c.nats[i].id(), format!("NATS server n{i}, {role} of the log stream (SIGKILL)"), None)
        }
        other => panic!("--kill is node, nats-leader or nats-follower, not {other}"),
    }
}

/// The longest time any conversation went without an ack after the kill:
/// for each sender, from the kill to the ack of its first message sent at
/// or after the kill (the dead owner's conversations wait for a new one).
fn recovered_ms(samples: &[Sample], senders: usize, at: Instant) -> (f64, usize) {
    let mut first = vec![None::<Instant>; senders];
    for s in samples.iter().filter(|s| s.sent >= at) {
        let done = s.sent + Duration::from_micros(s.us);
        let f = &mut first[s.sender];
        if f.is_none_or(|d| done < d) {
            *f = Some(done);
        }
    }
    let never = first.iter().filter(|f| f.is_none()).count();
    let worst = first.iter().flatten().map(|d| d.duration_since(at).as_secs_f64() * 1000.0).fold(0.0, f64::max);
    (worst, never)
}

pub(super) async fn run(args: &Args) -> Value {
    assert!(args.nodes == 3, "--mode failover runs on --nodes 3");
    assert!(args.kill_at < args.seconds, "--kill-at must fall within --seconds");
    let mut cluster = start_cluster(args).await;
    let (pid, what, _dead) = victim(args, &mut cluster).await;
    let kill_at = Duration::from_secs(args.kill_at);
    let kill = async move {
        tokio::time::sleep(kill_at).await;
        sigkill(pid);
        Killed { what, at: Instant::now() }
    };
    // A stalled write may wait up to the forward timeout (20 s by default): wait longer.
    let f = run_load(args, &cluster.nodes, Duration::from_secs(30), kill).await;
    let Killed { what, at } = f.during;
    let before = sorted_latencies(f.samples.iter().filter(|s| s.sent < at - Duration::from_secs(1)));
    let after = sorted_latencies(f.samples.iter().filter(|s| s.sent >= at));
    let all = sorted_latencies(f.samples.iter());
    let (recovered, never) = recovered_ms(&f.samples, args.conversations, at);
    let over = |ms: u64| all.iter().filter(|&&us| us > ms * 1000).count();
    json!({
        "mode": "failover",
        "killed": what,
        "killedAtSec": at.duration_since(f.started).as_secs_f64(),
        "conversations": args.conversations,
        "offeredRate": args.rate,
        "seconds": args.seconds,
        "acked": all.len(),
        "errors": f.errors,
        "ackLatencyMs": {
            "beforeKill": { "p50": percentile(&before, 0.5), "p99": percentile(&before, 0.99) },
            "afterKill": { "p50": percentile(&after, 0.5), "p99": percentile(&after, 0.99) },
            "max": percentile(&all, 1.0),
        },
        "acksOver1s": over(1000),
        "acksOver3s": over(3000),
        "longestConversationWaitAfterKillMs": recovered,
        "conversationsNeverAckedAfterKill": never,
        "deliveredFanout": f.delivered,
    })
}
