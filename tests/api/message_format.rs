//! Message format 2 through the running server: the `message_format`
//! background migration turns it on, the messages stored before are
//! rewritten by their conversations and read the same, new ones are written
//! in it, and `utalk migrate rollback` takes every message back to format 1
//! for the release before.

use crate::helpers::*;
use serde_json::Value;
use utalk_storage::codec::version_of;
use utalk_storage::{Db, Map};

/// How many stored messages are in each envelope version, read beside the running server.
fn versions(data: &std::path::Path) -> std::collections::BTreeMap<u16, usize> {
    let db = Db::open_read_only(data).unwrap();
    let mut out = std::collections::BTreeMap::new();
    for (_, v) in db.scan_raw(Map::Messages, &[], &[], 1_000_000).unwrap() {
        *out.entry(version_of(&v).unwrap_or(0)).or_default() += 1;
    }
    out
}

fn item<'a>(migrations: &'a Value, name: &str) -> &'a Value {
    migrations["items"].as_array().unwrap().iter().find(|i| i["name"] == name).unwrap_or_else(|| panic!("{name} in {migrations}"))
}

#[tokio::test]
async fn format_2_is_turned_on_by_its_migration_rewrites_every_message_once_and_rolls_back() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    add_user(&data, ADMIN.0, "admin", ADMIN.1);
    // Run by hand below, never by the schedule meanwhile.
    let never = [("UTALK_JOBS__DATA_MIGRATIONS", "0 0 0 1 1 *")];
    let mut s = TestServer::start_on(&data, &never).await;
    let admin = s.login(ADMIN).await;
    let convs = [s.create_conversation(&admin).await, s.create_conversation(&admin).await, s.create_conversation(&admin).await];
    for (i, c) in convs.iter().enumerate() {
        s.send_many(&admin, c, 150 + i * 100, "¿tienen envío a Puebla?").await;
    }
    let stored: usize = 150 + 250 + 350;
    let before: Vec<Vec<Value>> = futures_util::future::join_all(convs.iter().map(|c| s.messages(&admin, c))).await;
    let list = || s.get_json("/api/v1/conversations?sort=lastActivity&limit=10", &admin);
    let listed = list().await;
    assert_eq!(versions(&data), [(1, stored)].into(), "format 1 until the migration turns 2 on");
    let m = s.get_json("/api/v1/admin/migrations", &admin).await;
    assert_eq!((item(&m, "message_format")["state"].as_str(), m["readableFrom"].as_u64()), (Some("pending"), Some(5)), "{m}");

    let r = s.http.post(s.url("/api/v1/admin/jobs/data_migrations/run")).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let run: Value = r.json().await.unwrap();
    assert_eq!((run["outcome"].as_str(), run["figures"]["pending"].as_f64()), (Some("ok"), Some(0.0)), "{run}");
    let m = s.get_json("/api/v1/admin/migrations", &admin).await;
    let f = item(&m, "message_format");
    assert_eq!((f["state"].as_str(), f["processed"].as_u64()), (Some("done"), Some(stored as u64)), "each message walked once: {m}");
    assert_eq!(m["readableFrom"], 7, "builds before schema 7 cannot read format 2: {m}");
    assert_eq!(versions(&data), [(2, stored)].into(), "every message rewritten");
    let after: Vec<Vec<Value>> = futures_util::future::join_all(convs.iter().map(|c| s.messages(&admin, c))).await;
    assert_eq!(after, before, "and reads as before, status and times included");
    assert_eq!(list().await, listed, "a rewrite is no activity: the conversations keep their times and order");

    // New messages are written in format 2, and a later run walks nothing.
    s.send_text(&admin, &convs[0], "después").await;
    assert_eq!(versions(&data), [(2, stored + 1)].into());
    let r = s.http.post(s.url("/api/v1/admin/jobs/data_migrations/run")).bearer_auth(&admin).send().await.unwrap();
    let again: Value = r.json().await.unwrap();
    assert_eq!(again["figures"]["migrated"], 0.0, "{again}");
    s.terminate();

    // Back to the release before: every message in format 1, readable by schema 5 again.
    let (ok, out, err) = utalk(&data, &["migrate", "rollback", "--to", "6"], "");
    assert!(ok && out.contains("rolled back from schema version 7 to 6"), "{out} {err}");
    assert_eq!(versions(&data), [(1, stored + 1)].into());
    {
        let db = Db::open_read_only(&data).unwrap();
        assert_eq!((db.schema_version().unwrap(), db.readable_from().unwrap()), (Some(6), Some(5)));
    }
    // Up again: the messages read as they were, and the migration starts over.
    let s = TestServer::start_on(&data, &never).await;
    let admin = s.login(ADMIN).await;
    let reread: Vec<Vec<Value>> = futures_util::future::join_all(convs.iter().map(|c| s.messages(&admin, c))).await;
    assert_eq!(reread[1..], before[1..]);
    assert_eq!(reread[0].len(), before[0].len() + 1);
    let m = s.get_json("/api/v1/admin/migrations", &admin).await;
    assert_eq!(item(&m, "message_format")["state"], "pending", "{m}");
}

#[tokio::test]
async fn a_sigkill_halfway_through_the_rewrite_resumes_from_its_cursor_and_loses_nothing() {
    const CONVERSATIONS: usize = 8;
    const EACH: usize = 500;
    let total = CONVERSATIONS * EACH;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    add_user(&data, ADMIN.0, "admin", ADMIN.1);
    let never = ("UTALK_JOBS__DATA_MIGRATIONS", "0 0 0 1 1 *");
    // Slowly: after each step a pause of 19 times its length, so that the kill lands halfway.
    let mut s = TestServer::start_on(&data, &[never, ("UTALK_JOBS__DATA_MIGRATION_DUTY_PERCENT", "5")]).await;
    let admin = s.login(ADMIN).await;
    let mut convs = Vec::new();
    for _ in 0..CONVERSATIONS {
        let c = s.create_conversation(&admin).await;
        s.send_many(&admin, &c, EACH, "¿a qué hora abren?").await;
        convs.push(c);
    }
    let before: Vec<Vec<Value>> = futures_util::future::join_all(convs.iter().map(|c| s.messages(&admin, c))).await;

    // The job's run answers only at its end: it is left running when the server dies.
    let run = {
        let req = s.http.post(s.url("/api/v1/admin/jobs/data_migrations/run")).bearer_auth(&admin);
        tokio::spawn(async move { req.send().await })
    };
    let started = std::time::Instant::now();
    loop {
        let m = s.get_json("/api/v1/admin/migrations", &admin).await;
        let f = item(&m, "message_format");
        let processed = f["processed"].as_u64().unwrap_or(0);
        assert!(f["state"] != "done", "finished before it could be killed: {m}");
        if processed >= 1_000 {
            break;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(90), "no progress: {m}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    s.kill();
    run.abort();
    let halfway = versions(&data);
    assert!(halfway.get(&1).is_some_and(|n| *n > 0) && halfway.get(&2).is_some_and(|n| *n >= 1_000), "killed halfway: {halfway:?}");
    let recorded = {
        let db = Db::open_read_only(&data).unwrap();
        utalk_storage::model::data_migration::get(&db, "message_format").unwrap().expect("progress on record")
    };
    assert!(recorded.finished_at.is_none() && recorded.processed < total as u64, "{recorded:?}");

    // Started again, flat out: it goes on from its cursor to the end.
    let s = TestServer::start_on(&data, &[never, ("UTALK_JOBS__DATA_MIGRATION_DUTY_PERCENT", "100")]).await;
    let admin = s.login(ADMIN).await;
    let r = s.http.post(s.url("/api/v1/admin/jobs/data_migrations/run")).bearer_auth(&admin).send().await.unwrap();
    let run: Value = r.json().await.unwrap();
    assert_eq!((run["outcome"].as_str(), run["figures"]["pending"].as_f64()), (Some("ok"), Some(0.0)), "{run}");
    let m = s.get_json("/api/v1/admin/migrations", &admin).await;
    let f = item(&m, "message_format");
    assert_eq!(f["state"], "done", "{m}");
    assert_eq!(f["processed"].as_u64(), Some(total as u64), "each message walked once, the killed step's included: {m}");
    assert!(f["steps"].as_u64().unwrap() > recorded.steps, "resumed, not started over: {m}");
    assert_eq!(versions(&data), [(2, total)].into());
    let after: Vec<Vec<Value>> = futures_util::future::join_all(convs.iter().map(|c| s.messages(&admin, c))).await;
    assert_eq!(after, before, "nothing lost or changed by the kill");
}
