//! Backups while clients write, restored into a new data directory.

use crate::helpers::*;
use std::time::Duration;

#[tokio::test]
async fn a_backup_taken_under_load_restores_every_message_acknowledged_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    add_user(&data, ADMIN.0, "admin", ADMIN.1);
    add_user(&data, AGENT.0, "agent", AGENT.1);
    let mut s = TestServer::start_on(&data, &[]).await;
    let admin = s.login(ADMIN).await;
    let agent = s.login(AGENT).await;
    let mut convs = Vec::new();
    for _ in 0..4 {
        convs.push(s.create_conversation(&agent).await);
    }
    let load = Load::start(&s, &agent, &convs, 8);
    tokio::time::sleep(Duration::from_millis(700)).await;
    // Everything acknowledged before the backup begins must be in it.
    let before = load.snapshot();
    let r = s.http.post(s.url("/api/v1/admin/backups")).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
    let taken: serde_json::Value = r.json().await.unwrap();
    assert!(taken["files"].as_u64().unwrap() > 0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let all = load.stop().await;
    assert!(before.len() > 20 && all.len() > before.len(), "too little load: {} then {}", before.len(), all.len());
    let denied = s.http.post(s.url("/api/v1/admin/backups")).bearer_auth(&agent).send().await.unwrap();
    assert_eq!(denied.status(), 403);
    let listed = s.get_json("/api/v1/admin/backups", &admin).await;
    assert_eq!(listed["items"][0]["id"], taken["id"]);

    // The CLI refuses to back up a data directory the server holds, and says what to do.
    let (ok, _, err) = utalk(&data, &["backup", "create"], "");
    assert!(!ok);
    assert!(err.contains("POST /api/v1/admin/backups"), "{err}");
    s.kill();

    let (ok, out, err) = utalk(&data, &["backup", "list"], "");
    assert!(ok, "{err}");
    assert!(out.starts_with(&format!("{}\t", taken["id"])), "{out}");
    let (ok, out, err) = utalk(&data, &["backup", "verify"], "");
    assert!(ok && out.contains(": ok"), "{out} {err}");
    let restored = dir.path().join("restored");
    let (ok, out, err) = utalk(&data, &["backup", "restore", "--to", restored.to_str().unwrap()], "");
    assert!(ok, "{out} {err}");
    assert!(err.contains("restoring database files"), "progress is shown: {err}");
    let (ok, _, err) = utalk(&data, &["backup", "restore", "--to", restored.to_str().unwrap()], "");
    assert!(!ok && err.contains("not empty"), "{err}");
    let (ok, _, err) = utalk(&data, &["backup", "verify", "--backup-id", "999"], "");
    assert!(!ok, "{err}");

    let s = TestServer::start_on(&restored, &[]).await;
    let agent = s.login(AGENT).await;
    assert_acknowledged_stored(&s, &agent, &convs, &before).await;
}

#[tokio::test]
async fn an_offline_backup_is_taken_by_the_cli_with_progress() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    add_user(&data, ADMIN.0, "admin", ADMIN.1);
    let (ok, out, err) = utalk(&data, &["backup", "create"], "");
    assert!(ok, "{out} {err}");
    assert!(out.contains("taken and verified"), "{out}");
    assert!(err.contains("verifying"), "{err}");
    let (ok, out, _) = utalk(&data, &["backup", "list"], "");
    assert!(ok && out.lines().count() == 1, "{out}");
}
