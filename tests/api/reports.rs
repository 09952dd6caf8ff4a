//! KPI reports over REST and the CLI, and the daily report pages at `/reports/`.

use crate::helpers::*;
use serde_json::{json, Value};

async fn traffic(s: &TestServer, token: &str) -> String {
    let conv = s.create_conversation(token).await;
    for i in 0..3 {
        s.send_text(token, &conv, &format!("hola {i}")).await;
    }
    conv
}

/// The rollup and the daily report run only when asked: what is read before is known not to be rolled up yet.
pub const NO_SCHEDULED_ROLLUP: &[(&str, &str)] = &[("UTALK_JOBS__KPI_ROLLUP", "0 0 0 1 1 *"), ("UTALK_JOBS__DAILY_REPORT", "0 0 0 1 1 *")];

fn sum(items: &[Value], field: &str) -> u64 {
    items.iter().map(|i| i[field].as_u64().unwrap()).sum()
}

#[tokio::test]
async fn kpis_are_rolled_up_by_the_job_and_read_per_bucket() {
    let s = TestServer::start_with(NO_SCHEDULED_ROLLUP).await;
    let admin = s.login(ADMIN).await;
    let viewer = s.login(READONLY).await;
    traffic(&s, &admin).await;

    // Before the rollup the figures are not there yet, and say so.
    let before = s.get_json("/api/v1/reports/kpis", &viewer).await;
    assert!(before["asOf"].is_null());
    assert_eq!(sum(before["items"].as_array().unwrap(), "messages"), 0);

    let r = s.http.post(s.url("/api/v1/admin/jobs/kpi_rollup/run")).bearer_auth(&admin).send().await.unwrap();
    let run: Value = r.json().await.unwrap();
    assert_eq!(run["outcome"], "ok", "{run}");
    assert!(run["figures"]["hoursRolledUp"].as_f64().unwrap() >= 1.0, "{run}");

    let v = s.get_json("/api/v1/reports/kpis", &viewer).await;
    assert!(v["asOf"].is_string(), "{v}");
    let items = v["items"].as_array().unwrap();
    assert!((24..=25).contains(&items.len()), "a day of hours: {}", items.len());
    assert_eq!((sum(items, "conversations"), sum(items, "messages")), (1, 3));
    let busy: Vec<&Value> = items.iter().filter(|i| i["messages"].as_u64() > Some(0)).collect();
    assert_eq!(busy[0]["granularity"], "hour");
    assert_eq!(busy[0]["deliveryFailureRate"], 0.0, "three sent, none failed");
    assert_eq!(busy[0]["mediaMessageRate"], 0.0);
    assert_eq!(busy[0]["csat"], Value::Null, "nobody rated");
    let quiet = items.iter().find(|i| i["messages"] == 0 && i["conversations"] == 0).unwrap();
    for k in ["botResponseTimeMs", "firstContactResolution", "escalationRate", "deliveryFailureRate", "csat", "nps"] {
        assert_eq!(quiet[k], Value::Null, "{k} of an empty hour");
    }

    let days = s.get_json("/api/v1/reports/kpis?granularity=day", &viewer).await;
    let days = days["items"].as_array().unwrap();
    assert_eq!(days.len(), 31, "30 days back from now touches 31 days");
    assert_eq!(days.last().unwrap()["conversations"], 1);
    let api = s.get_json("/api/v1/reports/kpis?channel=api", &viewer).await;
    assert_eq!(sum(api["items"].as_array().unwrap(), "messages"), 3);
    let wa = s.get_json("/api/v1/reports/kpis?channel=whatsapp", &viewer).await;
    assert_eq!(sum(wa["items"].as_array().unwrap(), "messages"), 0);
}

#[tokio::test]
async fn bad_report_queries_get_typed_errors_and_change_nothing() {
    let s = TestServer::start_with(NO_SCHEDULED_ROLLUP).await;
    let admin = s.login(ADMIN).await;
    let agent = s.login(AGENT).await;
    let get = |q: &'static str, token: String| {
        let s = &s;
        async move { s.http.get(s.url(&format!("/api/v1/reports/kpis{q}"))).bearer_auth(token).send().await.unwrap() }
    };
    for (q, code) in [
        ("?granularity=week", "invalid_query"),
        ("?from=yesterday", "invalid_query"),
        ("?from=2026-11-02T00:00:00Z&to=2026-11-01T00:00:00Z", "invalid_query"),
        ("?from=2000-01-01T00:00:00Z", "range_too_large"),
        ("?channel=fax", "invalid_query"),
        ("?agentId=not-a-uuid", "invalid_query"),
        ("?bogus=1", "invalid_query"),
    ] {
        assert_eq!(TestServer::error_code(get(q, admin.clone()).await, 400).await, code, "{q}");
    }
    assert_eq!(get("", agent.clone()).await.status(), 403, "agents do not read reports");
    assert_eq!(s.http.get(s.url("/api/v1/reports/kpis")).send().await.unwrap().status(), 401);
    let r = s.http.post(s.url("/api/v1/reports/daily")).bearer_auth(&admin).json(&json!({"date": "2026-02-30"})).send().await.unwrap();
    assert_eq!(TestServer::error_code(r, 400).await, "invalid_date");
    let r = s.http.post(s.url("/api/v1/reports/daily")).bearer_auth(&admin).json(&json!({"data": "2026-11-02"})).send().await.unwrap();
    assert_eq!(TestServer::error_code(r, 422).await, "validation_failed", "a misspelt field is refused, not ignored");
    let r = s.http.post(s.url("/api/v1/reports/daily")).bearer_auth(&agent).json(&json!({})).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let list = s.get_json("/api/v1/reports", &admin).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 0, "nothing was written");
    assert_eq!(get("", admin).await.status(), 200, "still serving");
}

#[tokio::test]
async fn the_daily_report_is_written_listed_and_served_with_signed_links() {
    let s = TestServer::start().await;
    let admin = s.login(ADMIN).await;
    let viewer = s.login(READONLY).await;
    traffic(&s, &admin).await;
    let today = utalk_storage::Timestamp::now().to_rfc3339()[..10].to_string();
    let r = s.http.post(s.url("/api/v1/reports/daily")).bearer_auth(&admin).json(&json!({"date": today})).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let made: Value = r.json().await.unwrap();
    assert_eq!(made["date"], today.as_str());
    assert!(s.data_dir().join("reports").join(format!("daily-{today}.html")).exists());

    let list = s.get_json("/api/v1/reports", &viewer).await;
    let url = list["items"][0]["url"].as_str().unwrap().to_string();
    assert!(url.starts_with(&format!("/reports/daily-{today}.html?expires=")), "{url}");

    // The signed link opens without a token, as a browser would.
    let r = s.http.get(s.url(&url)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(r.headers()["content-security-policy"].to_str().unwrap().contains("default-src 'none'"));
    let page = r.text().await.unwrap();
    assert_eq!(page.matches("data-kpi=").count(), 9);
    assert!(page.contains("1 conversations · 3 messages"), "the day's volume is on the page");

    // Anything else is refused.
    let tampered = url.replace("sig=", "sig=00");
    assert_eq!(TestServer::error_code(s.http.get(s.url(&tampered)).send().await.unwrap(), 403).await, "bad_signature");
    let other_day = url.replace(&today, "2020-01-01");
    assert_eq!(TestServer::error_code(s.http.get(s.url(&other_day)).send().await.unwrap(), 403).await, "bad_signature");
    let bare = format!("/reports/daily-{today}.html");
    assert_eq!(s.http.get(s.url(&bare)).send().await.unwrap().status(), 401);
    assert_eq!(s.http.get(s.url(&bare)).bearer_auth(&viewer).send().await.unwrap().status(), 200);
    let agent = s.login(AGENT).await;
    assert_eq!(s.http.get(s.url(&bare)).bearer_auth(&agent).send().await.unwrap().status(), 403);
    for path in ["/reports/..%2Fdata%2FCURRENT", "/reports/daily-2026-13-01.html", "/reports/knowledge.toml"] {
        assert_eq!(s.http.get(s.url(path)).bearer_auth(&viewer).send().await.unwrap().status(), 404, "{path}");
    }

    // The index lists it, with links that work without a token.
    let index = s.http.get(s.url("/reports/")).bearer_auth(&viewer).send().await.unwrap().text().await.unwrap();
    let href = index.split("href=\"").nth(1).and_then(|h| h.split('"').next()).unwrap().replace("&amp;", "&");
    assert_eq!(s.http.get(s.url(&href)).send().await.unwrap().status(), 200, "{href}");
}
