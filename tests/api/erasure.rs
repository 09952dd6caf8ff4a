//! Erasing one customer: no byte of what they said, their name or their
//! files is left in the data directory, the search index or a backup taken
//! afterwards; what the KPIs count stays; a backup from before is erased
//! again when restored.

use crate::helpers::*;
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};
use uuid::Uuid;

const NAME: &str = "Zebulonmarker Quixotic";
const SAID: &str = "xylophonemarker4711";
const FILE: &[u8] = b"filebytesmarker-9c1f-not-found-elsewhere";

/// Files under `dir` that hold `needle`.
pub(crate) fn holding(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    out.push(p.display().to_string());
                }
            }
        }
    }
    out
}

fn markers() -> [&'static [u8]; 3] {
    [b"Zebulonmarker", SAID.as_bytes(), FILE]
}

/// What the KPIs count of a conversation: each message's seq, author and time.
fn shape(messages: &[Value]) -> Vec<(u64, Value, Value)> {
    messages.iter().map(|m| (m["seq"].as_u64().unwrap(), m["author"].clone(), m["createdAt"].clone())).collect()
}

/// The KPIs of every hour, rolled up now.
async fn kpis(s: &TestServer, admin: &str) -> Value {
    let r = s.http.post(s.url("/api/v1/admin/jobs/kpi_rollup/run")).bearer_auth(admin).send().await.unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["outcome"], "ok");
    let v = s.get_json("/api/v1/reports/kpis", admin).await;
    assert!(v["items"].as_array().unwrap().iter().any(|i| i["messages"].as_u64() > Some(0)), "{v}");
    v["items"].clone()
}

async fn backup(s: &TestServer, admin: &str) -> u64 {
    let r = s.http.post(s.url("/api/v1/admin/backups")).bearer_auth(admin).send().await.unwrap();
    assert_eq!(r.status(), 201);
    r.json::<Value>().await.unwrap()["id"].as_u64().unwrap()
}

#[tokio::test]
async fn an_erased_customer_leaves_no_byte_in_the_store_the_index_or_later_backups_and_a_restore_erases_again() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    add_user(&data, ADMIN.0, "admin", ADMIN.1);
    add_user(&data, AGENT.0, "agent", AGENT.1);
    // Webhook deliveries kept for their history quote what was said: they must go too.
    let mut s = TestServer::start_on(&data, &[("UTALK_WEBHOOKS__ALLOW_PRIVATE_TARGETS", "true")]).await;
    let admin = s.login(ADMIN).await;
    let agent = s.login(AGENT).await;
    let r = s
        .http
        .post(s.url("/api/v1/webhooks"))
        .bearer_auth(&admin)
        .json(&json!({"url": "http://127.0.0.1:9/hook", "events": ["message.created"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let hook = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let deliveries = |s: &TestServer, admin: &str| {
        let (s, admin, path) = (s.http.clone(), admin.to_string(), s.url(&format!("/api/v1/webhooks/{hook}/deliveries?limit=200")));
        async move { s.get(path).bearer_auth(admin).send().await.unwrap().json::<Value>().await.unwrap()["items"].as_array().unwrap().len() }
    };

    // A customer with two conversations, a file, and someone else's conversation.
    let open = |name: &str, email: &str| {
        let body = json!({"channel": "web", "customer": {"name": name, "email": email}});
        let (s, agent) = (&s, agent.clone());
        async move {
            let r = s.http.post(s.url("/api/v1/conversations")).bearer_auth(&agent).json(&body).send().await.unwrap();
            assert_eq!(r.status(), 201);
            r.json::<Value>().await.unwrap()
        }
    };
    let first = open(NAME, "zebulon@example.com").await;
    let second = open(NAME, "zebulon@example.com").await;
    let contact = first["contactId"].as_str().unwrap().to_string();
    assert_eq!(second["contactId"], contact.as_str());
    let (c1, c2) = (first["id"].as_str().unwrap().to_string(), second["id"].as_str().unwrap().to_string());
    let bystander = open("Other Person", "other@example.com").await["id"].as_str().unwrap().to_string();
    s.send_text(&agent, &c1, &format!("mi número secreto es {SAID}")).await;
    s.send_text(&agent, &c2, &format!("again {SAID}")).await;
    let media = crate::media_limits::uploaded(&s, &agent, Some(&c1), FILE).await;
    let r = s
        .http
        .post(s.url(&format!("/api/v1/conversations/{c1}/messages")))
        .bearer_auth(&agent)
        .json(&json!({"messageId": Uuid::new_v4(), "mediaId": media}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    s.send_text(&agent, &bystander, "nothing about them").await;
    let before_shape = (shape(&s.messages(&agent, &c1).await), shape(&s.messages(&agent, &c2).await));
    let old_backup = backup(&s, &admin).await;
    let kpis_before = kpis(&s, &admin).await;

    // One delivery kept per message: the customer's three and the bystander's.
    assert_eq!(deliveries(&s, &admin).await, 4);
    // The scan can see the markers before: the test is able to fail.
    for m in markers() {
        assert!(!holding(&data, m).is_empty(), "{} is in the data directory before", String::from_utf8_lossy(m));
    }
    let started = Instant::now();
    while s.get_json(&format!("/api/v1/conversations?q={SAID}"), &agent).await["items"].as_array().unwrap().is_empty() {
        assert!(started.elapsed() < Duration::from_secs(5), "searchable before");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Only admins erase.
    let path = format!("/api/v1/contacts/{contact}");
    let r = s.http.delete(s.url(&path)).bearer_auth(&agent).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let r = s.http.delete(s.url(&format!("/api/v1/contacts/{}", Uuid::new_v4()))).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let r = s.http.delete(s.url(&path)).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let erased: Value = r.json().await.unwrap();
    assert_eq!(erased, json!({"conversations": 2, "messages": 3, "mediaFiles": 1}));

    // Through the API: gone, yet the conversations and their messages' shape stay for the KPIs.
    assert_eq!(s.http.get(s.url(&path)).bearer_auth(&agent).send().await.unwrap().status(), 404);
    let conv = s.get_json(&format!("/api/v1/conversations/{c1}"), &agent).await;
    assert!(conv["customer"]["name"].is_null() && conv["customer"]["email"].is_null() && conv["contactId"].is_null(), "{conv}");
    let after = s.messages(&agent, &c1).await;
    assert!(after.iter().all(|m| m["text"].is_null()), "{after:?}");
    assert_eq!(after[1]["mediaId"], media.as_str(), "that it carried media stays, the file goes");
    assert_eq!((shape(&after), shape(&s.messages(&agent, &c2).await)), before_shape);
    assert_eq!(s.messages(&agent, &bystander).await[0]["text"], "nothing about them", "others are untouched");
    assert_eq!(kpis(&s, &admin).await, kpis_before, "the KPIs are the same before and after");
    assert!(s.get_json(&format!("/api/v1/conversations?q={SAID}"), &agent).await["items"].as_array().unwrap().is_empty());
    assert!(s.get_json("/api/v1/contacts?q=zebulonmarker", &agent).await["items"].as_array().unwrap().is_empty());
    assert_eq!(s.http.get(s.url(&format!("/api/v1/media/{media}"))).bearer_auth(&agent).send().await.unwrap().status(), 404);

    assert_eq!(deliveries(&s, &admin).await, 1, "only the bystander's delivery is kept");
    // On disk: no byte in the store's files, the search index or the media directory.
    for m in markers() {
        assert_eq!(holding(&data, m), Vec::<String>::new(), "{} is left", String::from_utf8_lossy(m));
    }
    // A backup taken after the erasure holds none either.
    let new_backup = backup(&s, &admin).await;
    s.terminate();
    let restored = dir.path().join("after");
    let (ok, out, err) =
        utalk(&data, &["backup", "restore", "--backup-id", &new_backup.to_string(), "--to", restored.to_str().unwrap()], "");
    assert!(ok, "{out} {err}");
    for m in markers() {
        assert_eq!(holding(&restored, m), Vec::<String>::new(), "{} is in the later backup", String::from_utf8_lossy(m));
    }

    // A backup from before brings it back; the ledger beside the backups
    // erases it again at the first start.
    let older = dir.path().join("before");
    let (ok, out, err) = utalk(&data, &["backup", "restore", "--backup-id", &old_backup.to_string(), "--to", older.to_str().unwrap()], "");
    assert!(ok, "{out} {err}");
    assert!(!holding(&older, SAID.as_bytes()).is_empty(), "the older backup holds the data");
    let backups = dir.path().join("data-backups");
    // A damaged line and one past the length limit before it are skipped; the erasure still applies.
    let ledger = backups.join("erasures.jsonl");
    let good = std::fs::read_to_string(&ledger).unwrap();
    std::fs::write(&ledger, format!("not json at all\n{}\n{good}", "x".repeat((1 << 20) + 10))).unwrap();
    let backup_env = backups.to_str().unwrap().to_string();
    let s = TestServer::start_on(&older, &[("UTALK_BACKUP__DIR", backup_env.as_str())]).await;
    // Applied before the server answers anything: nothing of it is ever served.
    let agent = s.login(AGENT).await;
    assert_eq!(s.http.get(s.url(&path)).bearer_auth(&agent).send().await.unwrap().status(), 404, "the erasure was not applied again");
    let left: Vec<Vec<String>> = markers().iter().map(|m| holding(&older, m)).filter(|h| !h.is_empty()).collect();
    assert!(left.is_empty(), "left after the erasure was applied again: {left:?}");
    assert!(s.messages(&agent, &c1).await.iter().all(|m| m["text"].is_null()));
    let log = s.log_text();
    assert!(log.contains("erasures in the ledger applied again"));
    assert!(log.contains("cannot be read; skipped") && log.contains("is over 1048576 bytes; skipped"), "the bad lines are reported");
}
