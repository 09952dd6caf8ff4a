//! Scheduled jobs: listed, run on demand, fired by their schedules, caught up once after downtime.

use crate::helpers::*;
use serde_json::Value;
use std::time::Duration;

async fn runs(s: &TestServer, token: &str, name: &str) -> Vec<Value> {
    s.get_json(&format!("/api/v1/admin/jobs/{name}/runs"), token).await["items"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn jobs_are_listed_run_now_and_recorded() {
    let s = TestServer::start().await;
    let admin = s.login(ADMIN).await;
    let agent = s.login(AGENT).await;
    let jobs = s.get_json("/api/v1/admin/jobs", &admin).await;
    let names: Vec<&str> = jobs["items"].as_array().unwrap().iter().map(|j| j["name"].as_str().unwrap()).collect();
    // By name, as every list pages.
    assert_eq!(
        names,
        vec!["backup", "daily_report", "data_migrations", "kpi_rollup", "offsite_copy", "retention", "secret_rotation", "stock_negative"]
    );
    assert_eq!(jobs["items"][0]["schedule"], "0 */15 * * * *");
    assert!(jobs["items"][0]["nextRunAt"].is_string());
    assert!(jobs["items"][0]["lastRun"].is_null());

    let r = s.http.post(s.url("/api/v1/admin/jobs/backup/run")).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let run: Value = r.json().await.unwrap();
    assert_eq!(run["outcome"], "ok");
    assert_eq!(run["trigger"], "manual");
    assert_eq!(run["figures"]["backupId"], 1.0);
    assert!(run["figures"]["files"].as_f64().unwrap() > 0.0);
    let r = s.http.post(s.url("/api/v1/admin/jobs/retention/run")).bearer_auth(&admin).send().await.unwrap();
    let run: Value = r.json().await.unwrap();
    assert_eq!(run["outcome"], "ok");
    assert_eq!(run["figures"]["auditRemoved"], 0.0, "nothing is two years old");
    assert_eq!(run["figures"]["resolvedAlertsRemoved"], 0.0);
    assert_eq!(run["figures"]["refusedTransactionsRemoved"], 0.0);

    let jobs = s.get_json("/api/v1/admin/jobs", &admin).await;
    assert_eq!(jobs["items"][0]["lastRun"]["outcome"], "ok");

    // Runs are exported as metrics.
    let m = s.http.get(s.url("/metrics")).send().await.unwrap();
    assert!(m.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
    let m = m.text().await.unwrap();
    for line in [
        "job_runs_total{job_name=\"backup\",outcome=\"ok\"} 1",
        "job_runs_total{job_name=\"retention\",outcome=\"ok\"} 1",
        "job_duration_seconds_bucket{job_name=\"backup\",le=\"+Inf\"} 1",
    ] {
        assert!(m.lines().any(|l| l == line), "{line} in\n{m}");
    }
    let last =
        m.lines().find_map(|l| l.strip_prefix("job_last_success_timestamp_seconds{job_name=\"backup\"} ")).expect("last success gauge");
    let last: f64 = last.parse().unwrap();
    assert!((last - utalk_storage::Timestamp::now().millis() as f64 / 1000.0).abs() < 60.0, "{last}");
    assert_eq!(runs(&s, &admin, "backup").await.len(), 1);

    let r = s.http.post(s.url("/api/v1/admin/jobs/nope/run")).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(TestServer::error_code(r, 404).await, "not_found");
    let r = s.http.post(s.url("/api/v1/admin/jobs/backup/run")).bearer_auth(&agent).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let r = s.http.get(s.url("/api/v1/admin/jobs")).bearer_auth(&agent).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let r = s.http.get(s.url("/api/v1/admin/migrations")).bearer_auth(&agent).send().await.unwrap();
    assert_eq!(r.status(), 403);
}

#[tokio::test]
async fn schedules_fire_and_a_missed_run_is_caught_up_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    add_user(&data, ADMIN.0, "admin", ADMIN.1);
    // Once a year: only the manual run happens.
    let mut s = TestServer::start_on(&data, &[("UTALK_JOBS__RETENTION", "0 0 0 1 1 *")]).await;
    let admin = s.login(ADMIN).await;
    let r = s.http.post(s.url("/api/v1/admin/jobs/retention/run")).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(r.status(), 200);
    s.kill();
    tokio::time::sleep(Duration::from_millis(2_100)).await;

    // Every second: at least two scheduled times passed while it was down; one catch-up covers them.
    let s = TestServer::start_on(&data, &[("UTALK_JOBS__RETENTION", "* * * * * *")]).await;
    let admin = s.login(ADMIN).await;
    let mut got = Vec::new();
    for _ in 0..100 {
        got = runs(&s, &admin, "retention").await;
        if got.iter().any(|r| r["trigger"] == "schedule") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let triggers: Vec<&str> = got.iter().map(|r| r["trigger"].as_str().unwrap()).collect();
    assert_eq!(triggers.iter().filter(|t| **t == "catch_up").count(), 1, "{triggers:?}");
    assert!(triggers.contains(&"schedule"), "the schedule fires: {triggers:?}");
    // A tick that found the catch-up still running was skipped, never run beside it.
    assert!(got.iter().all(|r| r["outcome"] == "ok" || r["outcome"] == "skipped"), "{got:?}");
}

#[tokio::test]
async fn a_bad_schedule_stops_the_server_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = std::process::Command::new(bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .env("UTALK_JOBS__BACKUP", "every fifteen minutes")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(all.contains("job `backup`") && all.contains("every fifteen minutes"), "{all}");
}

/// Refresh tokens kept in the store.
fn stored_refresh_tokens(data: &std::path::Path) -> usize {
    let db = utalk_storage::Db::open_read_only(data).unwrap();
    db.scan_raw(utalk_storage::Map::RefreshTokens, &[], &[], 10_000).unwrap().len()
}

#[tokio::test]
async fn retention_removes_expired_refresh_tokens_and_keeps_valid_ones() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    add_user(&data, ADMIN.0, "admin", ADMIN.1);
    add_user(&data, AGENT.0, "agent", AGENT.1);
    // A login whose refresh token lives one second.
    let mut s = TestServer::start_on(&data, &[("UTALK_AUTH__REFRESH_TTL_SECS", "1")]).await;
    s.login(AGENT).await;
    s.kill();
    tokio::time::sleep(Duration::from_millis(1_500)).await;

    let s = TestServer::start_on(&data, &[]).await;
    let r =
        s.http.post(s.url("/api/v1/auth/login")).json(&serde_json::json!({"email": ADMIN.0, "password": ADMIN.1})).send().await.unwrap();
    let pair: Value = r.json().await.unwrap();
    let admin = pair["accessToken"].as_str().unwrap().to_string();
    let valid = pair["refreshToken"].as_str().unwrap().to_string();
    assert_eq!(stored_refresh_tokens(&data), 2, "the expired token and the valid one");

    let r = s.http.post(s.url("/api/v1/admin/jobs/retention/run")).bearer_auth(&admin).send().await.unwrap();
    let run: Value = r.json().await.unwrap();
    assert_eq!(run["outcome"], "ok", "{run}");
    assert_eq!(run["figures"]["expiredRefreshTokensRemoved"], 1.0, "{run}");
    assert_eq!(stored_refresh_tokens(&data), 1, "only the valid token is left");
    let r = s.http.post(s.url("/api/v1/auth/refresh")).json(&serde_json::json!({"refreshToken": valid})).send().await.unwrap();
    assert_eq!(r.status(), 200, "the valid token still refreshes");

    // Nothing left to remove: a second run counts none.
    let r = s.http.post(s.url("/api/v1/admin/jobs/retention/run")).bearer_auth(&admin).send().await.unwrap();
    let run: Value = r.json().await.unwrap();
    assert_eq!(run["figures"]["expiredRefreshTokensRemoved"], 0.0, "{run}");
}
