//! Backups copied off the machine, encrypted: the drill. Back up to a
//! second directory, lose the data and backup directories, restore from the
//! archive alone and find every message and file; the archive holds no
//! readable byte, and a wrong key or a changed byte restores nothing.

use crate::erasure::holding;
use crate::helpers::*;
use std::path::Path;
use std::process::{Command, Stdio};
use uuid::Uuid;

const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const OTHER_KEY: &str = "HxwdHh8AAQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRo=";
const SAID: &str = "offsitemarker-7f3a";
const FILE: &[u8] = b"offsite-file-bytes-marker-2b9e-only-here";

/// `utalk` with the off-machine settings in its environment.
fn cli(data: &Path, offsite: &Path, key: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(bin())
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .env("UTALK_LOG", "warn")
        .env("UTALK_BACKUP__OFFSITE__DIR", offsite)
        .env("UTALK_BACKUP__OFFSITE__KEY", key)
        .stdin(Stdio::null())
        .output()
        .expect("spawn utalk");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// What a restore must bring back of each message (signed media URLs differ by when they were made).
fn shape(messages: &[serde_json::Value]) -> Vec<String> {
    messages.iter().map(|m| format!("{} {} {} {} {}", m["id"], m["seq"], m["text"], m["mediaId"], m["createdAt"])).collect()
}

fn archives(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(Result::ok).map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| n.ends_with(".ubk")).collect())
        .unwrap_or_default();
    v.sort();
    v
}

#[tokio::test]
async fn the_restore_drill_finds_every_message_from_the_encrypted_copy_alone() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let offsite = dir.path().join("other-mount/utalk");
    add_user(&data, ADMIN.0, "admin", ADMIN.1);
    add_user(&data, AGENT.0, "agent", AGENT.1);
    let env = [("UTALK_BACKUP__OFFSITE__DIR", offsite.to_str().unwrap()), ("UTALK_BACKUP__OFFSITE__KEY", KEY)];
    let mut s = TestServer::start_on(&data, &env).await;
    let admin = s.login(ADMIN).await;
    let agent = s.login(AGENT).await;

    let mut convs = Vec::new();
    for c in 0..3 {
        let conv = s.create_conversation(&agent).await;
        for i in 0..10 {
            s.send_text(&agent, &conv, &format!("{SAID} {c}-{i}")).await;
        }
        convs.push(conv);
    }
    let media = crate::media_limits::uploaded(&s, &agent, Some(&convs[0]), FILE).await;
    let r = s
        .http
        .post(s.url(&format!("/api/v1/conversations/{}/messages", convs[0])))
        .bearer_auth(&agent)
        .json(&serde_json::json!({"messageId": Uuid::new_v4(), "mediaId": media}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let mut before = Vec::new();
    for conv in &convs {
        before.push(shape(&s.messages(&agent, conv).await));
    }

    // A backup, then the offsite_copy job copies it off the machine, encrypted.
    let r = s.http.post(s.url("/api/v1/admin/backups")).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
    assert!(archives(&offsite).is_empty(), "the backup job itself copies nothing");
    let copy = || {
        let (s, admin) = (&s, admin.clone());
        async move {
            let r = s.http.post(s.url("/api/v1/admin/jobs/offsite_copy/run")).bearer_auth(&admin).send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.json::<serde_json::Value>().await.unwrap()
        }
    };
    let run = copy().await;
    assert_eq!((run["outcome"].as_str(), run["figures"]["shipped"].as_f64()), (Some("ok"), Some(1.0)), "{run}");
    let shipped = archives(&offsite);
    assert_eq!(shipped.len(), 1, "{shipped:?}");
    assert!(shipped[0].ends_with("-local.ubk"), "named by its node: {shipped:?}");
    // The same backup is not copied twice.
    let run = copy().await;
    assert_eq!(run["figures"]["shipped"], 0.0, "{run}");
    assert_eq!(archives(&offsite), shipped);
    let (ok, out, err) = cli(&data, &offsite, KEY, &["backup", "offsite"]);
    assert!(ok && out.starts_with(&shipped[0]), "{out} {err}");

    // The local backup can be read; the archive cannot without the key.
    let backups = dir.path().join("data-backups");
    assert!(!holding(&backups, FILE).is_empty(), "the local backup holds the file: the check is able to fail");
    for m in [SAID.as_bytes(), FILE] {
        assert!(holding(&offsite, m).is_empty(), "{} is readable in the archive", String::from_utf8_lossy(m));
    }

    // The machine is lost: the data and backup directories go.
    s.kill();
    std::fs::remove_dir_all(&data).unwrap();
    std::fs::remove_dir_all(&backups).unwrap();

    // Another key, or one changed byte, restores nothing.
    let (ok, _, err) =
        cli(&data, &offsite, OTHER_KEY, &["backup", "restore", "--from-offsite", &shipped[0], "--to", data.to_str().unwrap()]);
    assert!(!ok && err.contains("another key"), "{err}");
    assert!(!data.exists(), "a refused restore leaves nothing behind");
    let damaged = dir.path().join("damaged.ubk");
    let mut bytes = std::fs::read(offsite.join(&shipped[0])).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&damaged, bytes).unwrap();
    let (ok, _, err) =
        cli(&data, &offsite, KEY, &["backup", "restore", "--from-offsite", damaged.to_str().unwrap(), "--to", data.to_str().unwrap()]);
    assert!(!ok && err.contains("damaged"), "{err}");
    assert!(!data.exists(), "a damaged archive leaves nothing behind");

    // The archive alone brings everything back.
    let (ok, out, err) = cli(&data, &offsite, KEY, &["backup", "restore", "--from-offsite", &shipped[0], "--to", data.to_str().unwrap()]);
    assert!(ok, "{out} {err}");
    assert!(out.contains("every chunk verified"), "{out}");
    assert!(!holding(&data, FILE).is_empty(), "the media file is restored");
    let s = TestServer::start_on(&data, &env).await;
    let agent = s.login(AGENT).await;
    for (conv, was) in convs.iter().zip(&before) {
        assert_eq!(&shape(&s.messages(&agent, conv).await), was, "every message, as it was");
    }
}
