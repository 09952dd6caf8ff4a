//! Prometheus metrics: the process-wide recorder behind `GET /metrics`.
//!
//! Code records with the `metrics` macros wherever the event happens; this
//! module installs the recorder once and renders the text format.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use utalk_actors::{Registry, SocketHub};
use utalk_storage::Db;

/// Bucket bounds (seconds) of every `*_duration_seconds` histogram.
const DURATION_BUCKETS: &[f64] = &[0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];

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

/// Sets the figures read at scrape time: process, storage, sockets.
pub fn sample(db: &Db, registry: &Registry, sockets: &SocketHub) {
    if let Some((rss, cpu)) = process_figures() {
        metrics::gauge!("process_resident_memory_bytes").set(rss);
        metrics::gauge!("process_cpu_seconds_total").set(cpu);
    }
    if let Some(total) = machine_memory() {
        metrics::gauge!("machine_memory_bytes").set(total);
    }
    let db = db.stats();
    metrics::gauge!("rocksdb_write_stalled").set(if db.write_stopped { 1.0 } else { 0.0 });
    metrics::gauge!("rocksdb_pending_compaction_bytes").set(db.pending_compaction_bytes as f64);
    metrics::gauge!("rocksdb_estimated_keys").set(db.estimated_keys as f64);
    let w = registry.journal().store_stats();
    metrics::counter!("store_writer_batches_total").absolute(w.batches.load(std::sync::atomic::Ordering::Relaxed));
    metrics::counter!("rocksdb_wal_syncs_total").absolute(w.groups.load(std::sync::atomic::Ordering::Relaxed));
    let sockets = sockets.counts();
    metrics::gauge!("socket_connections_active", "transport" => "websocket").set(sockets.websocket as f64);
    metrics::gauge!("socket_connections_active", "transport" => "polling").set(sockets.polling as f64);
    metrics::counter!("socket_connections_total").absolute(sockets.total);
}

/// Every recorded metric in the Prometheus text format.
pub fn render() -> String {
    install().map(|h| h.render()).unwrap_or_default()
}
