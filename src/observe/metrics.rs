//! Prometheus metrics: the process-wide recorder behind `GET /metrics`.
//!
//! Code records with the `metrics` macros wherever the event happens; this
//! module installs the recorder once and renders the text format.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use utalk_actors::{Registry, SocketHub};
use utalk_storage::Db;

/// Bucket bounds (seconds) of every `*_duration_seconds` histogram.
/// 0.2 and 0.4 are the socket ack and REST latency objectives (docs/slo.md):
/// measured at a bucket's edge, not interpolated.
const DURATION_BUCKETS: &[f64] = &[0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.25, 0.4, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the recorder (first call) and returns its handle; `None` if another recorder was installed first.
pub fn install() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let built = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("duration_seconds".into()), DURATION_BUCKETS)
                .and_then(|b| b.install_recorder());
            match built {
                Ok(h) => Some(h),
                Err(e) => {
                    tracing::warn!(error = %e, "metrics recorder not installed; /metrics will be empty");
                    None
                }
            }
        })
        .clone()
}

/// Resident memory (bytes) and CPU time (seconds) of this process, from `/proc` (Linux).
fn process_figures() -> Option<(f64, f64)> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: f64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    // Linux reports in pages of 4 KiB and clock ticks of 1/100 s on every platform utalk runs on.
    Some((pages * 4096.0, ticks / 100.0))
}

/// The machine's memory in bytes (`MemTotal`), against which the memory alert compares the process.
fn machine_memory() -> Option<f64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb: f64 = info.lines().find_map(|l| l.strip_prefix("MemTotal:"))?.trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kb * 1024.0)
}

/// The memory limit of this process's cgroup (v2 `memory.max`, or v1
/// `memory.limit_in_bytes`), when one is set below the machine's memory.
fn cgroup_memory_limit() -> Option<f64> {
    let v2 = std::fs::read_to_string("/proc/self/cgroup").ok().and_then(|c| {
        c.lines().find_map(|l| l.strip_prefix("0::")).map(|p| format!("/sys/fs/cgroup{}/memory.max", p.trim_end_matches('/')))
    });
    let candidates =
        v2.into_iter().chain(["/sys/fs/cgroup/memory.max".to_string(), "/sys/fs/cgroup/memory/memory.limit_in_bytes".to_string()]);
    // "max", or v1's "no limit" (a huge number), mean none.
    candidates.filter_map(|p| std::fs::read_to_string(p).ok()).find_map(|v| v.trim().parse::<f64>().ok()).filter(|l| *l < 1e18)
}

/// The age of secret `name` (when known) and the age it must not reach.
pub fn secret_age(name: &'static str, age: Option<std::time::Duration>, limit: std::time::Duration) {
    metrics::gauge!("secret_max_age_seconds", "secret" => name).set(limit.as_secs_f64());
    if let Some(age) = age {
        metrics::gauge!("secret_age_seconds", "secret" => name).set(age.as_secs_f64());
    }
}

/// Where the data lives, for the filesystem gauges.
pub struct Dirs<'a> {
    /// The data directory.
    pub data: &'a std::path::Path,
    /// The backup directory.
    pub backup: &'a std::path::Path,
}

/// Sets the figures read at scrape time: process, memory against its limit,
/// filesystems, storage, sockets.
pub fn sample(db: &Db, registry: &Registry, sockets: &SocketHub, dirs: &Dirs<'_>) {
    let rss = process_figures().map(|(rss, cpu)| {
        metrics::gauge!("process_resident_memory_bytes").set(rss);
        metrics::gauge!("process_cpu_seconds_total").set(cpu);
        rss
    });
    let machine = machine_memory();
    if let Some(total) = machine {
        metrics::gauge!("machine_memory_bytes").set(total);
    }
    // The limit the kernel enforces: a container's, else the machine's.
    let limit = match (cgroup_memory_limit(), machine) {
        (Some(c), Some(m)) => Some(c.min(m)),
        (c, m) => c.or(m),
    };
    if let Some(limit) = limit {
        metrics::gauge!("memory_limit_bytes").set(limit);
        if let Some(rss) = rss {
            metrics::gauge!("memory_used_ratio").set(rss / limit);
        }
    }
    for (name, dir) in [("data", dirs.data), ("backup", dirs.backup)] {
        // The backup directory may not exist before the first backup: its parent's filesystem is where it will be.
        let at = if dir.exists() { Some(dir) } else { dir.parent() };
        if let Some(u) = at.and_then(|d| utalk_storage::free_space::usage(d).ok()) {
            metrics::gauge!("filesystem_size_bytes", "dir" => name).set(u.size as f64);
            metrics::gauge!("filesystem_avail_bytes", "dir" => name).set(u.available as f64);
        }
    }
    let db = db.stats();
    metrics::gauge!("rocksdb_write_stalled").set(if db.write_stopped { 1.0 } else { 0.0 });
    metrics::gauge!("rocksdb_pending_compaction_bytes").set(db.pending_compaction_bytes as f64);
    metrics::gauge!("rocksdb_estimated_keys").set(db.estimated_keys as f64);
    let w = registry.journal().store_stats();
    metrics::counter!("store_writer_batches_total").absolute(w.batches.load(std::sync::atomic::Ordering::Relaxed));
    metrics::counter!("rocksdb_wal_syncs_total").absolute(w.groups.load(std::sync::atomic::Ordering::Relaxed));
    metrics::gauge!("store_writer_up").set(if registry.journal().store_health().accepting { 1.0 } else { 0.0 });
    let sockets = sockets.counts();
    metrics::gauge!("socket_connections_active", "transport" => "websocket").set(sockets.websocket as f64);
    metrics::gauge!("socket_connections_active", "transport" => "polling").set(sockets.polling as f64);
    metrics::counter!("socket_connections_total").absolute(sockets.total);
    metrics::gauge!("active_users", "kind" => "staff").set(sockets.staff_online as f64);
    metrics::gauge!("active_users", "kind" => "customer").set(sockets.customer_sessions as f64);
}

/// Every recorded metric in the Prometheus text format.
pub fn render() -> String {
    install().map(|h| h.render()).unwrap_or_default()
}
