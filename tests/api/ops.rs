//! The files of ops/: dashboards use only metrics utalk exports (as listed
//! in docs/observability.md, itself checked against a scrape in metrics.rs),
//! and the systemd unit starts the server.

use std::collections::BTreeSet;

fn root() -> std::path::PathBuf {
    crate::helpers::repo_root()
}

/// Metric names in the documentation's table (first column).
fn documented() -> BTreeSet<String> {
    let doc = std::fs::read_to_string(root().join("docs/observability.md")).unwrap();
    let mut out = BTreeSet::new();
    for line in doc.lines().filter(|l| l.starts_with("| `")) {
        let first = line.split('|').nth(1).unwrap_or("");
        for name in first.split('`').skip(1).step_by(2) {
            out.insert(name.to_string());
        }
    }
    out
}

/// Identifiers in a PromQL expression that look like utalk metric names.
fn metrics_in(expr: &str) -> Vec<String> {
    let families = [
        "http_",
        "socket_",
        "process_",
        "machine_",
        "rocksdb_",
        "store_writer_",
        "job_",
        "inventory_",
        "alert_",
        "conversations_",
        "messages_",
        "escalations_",
        "bot_",
        "user_",
        "login_",
        "webhook_",
    ];
    let mut out = Vec::new();
    let mut word = String::new();
    let mut last = String::new();
    let (mut in_braces, mut in_grouping) = (false, false);
    for c in expr.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_alphanumeric() || c == '_' {
            word.push(c);
            continue;
        }
        // Label names inside {…} and in `by (…)` are not metrics; the word before `{` is.
        if !in_braces && !in_grouping && families.iter().any(|f| word.starts_with(f)) {
            let base = ["_bucket", "_count", "_sum"].iter().fold(word.clone(), |w, s| w.strip_suffix(s).map(String::from).unwrap_or(w));
            out.push(base);
        }
        if !word.is_empty() {
            last = std::mem::take(&mut word);
        }
        match c {
            '{' => in_braces = true,
            '}' => in_braces = false,
            '(' if last == "by" || last == "without" => in_grouping = true,
            ')' => in_grouping = false,
            _ => {}
        }
    }
    out
}

#[test]
fn dashboards_use_only_metrics_that_exist() {
    let known = documented();
    assert!(known.contains("http_requests_total") && known.len() > 20, "{known:?}");
    for name in ["system-health", "business", "websocket"] {
        let path = root().join(format!("ops/grafana/{name}.json"));
        let d: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let panels = d["panels"].as_array().unwrap();
        assert!(!panels.is_empty(), "{name}");
        let ids: BTreeSet<u64> = panels.iter().map(|p| p["id"].as_u64().unwrap()).collect();
        assert_eq!(ids.len(), panels.len(), "{name}: panel ids are unique");
        for p in panels {
            let targets = p["targets"].as_array().unwrap();
            assert!(!targets.is_empty(), "{name}: {} has no query", p["title"]);
            for t in targets {
                let expr = t["expr"].as_str().unwrap();
                let used = metrics_in(expr);
                assert!(!used.is_empty() || expr.contains("up{"), "{name}: no metric in {expr}");
                for m in used {
                    assert!(known.contains(&m), "{name}: {m} (in {expr}) is not a metric utalk exports");
                }
            }
        }
    }
}

#[test]
fn the_expression_reader_finds_metrics_and_ignores_labels() {
    assert_eq!(
        metrics_in(r#"histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{job="utalk",socket_x="y"}[5m])))"#),
        vec!["http_request_duration_seconds"]
    );
    assert_eq!(metrics_in("time() - job_last_success_timestamp_seconds"), vec!["job_last_success_timestamp_seconds"]);
    assert_eq!(metrics_in("sum by (job_name, outcome) (increase(job_runs_total[1h]))"), vec!["job_runs_total"]);
}

#[test]
fn the_systemd_unit_starts_the_server_and_stops_it_gracefully() {
    let unit = std::fs::read_to_string(root().join("ops/utalk.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/local/bin/utalk serve"));
    assert!(unit.contains("KillSignal=SIGTERM"));
    assert!(unit.lines().any(|l| l.starts_with("LimitNOFILE=")));
}
