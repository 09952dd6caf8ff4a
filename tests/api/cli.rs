use crate::helpers::*;

#[tokio::test]
async fn user_add_refuses_bad_input_and_a_locked_data_dir_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (ok, _, err) = utalk(&data, &["user", "add", "--email", "a@example.com", "--role", "agent"], "pw\n");
    assert!(!ok);
    assert!(err.contains("--password-stdin"), "{err}");
    let (ok, _, err) = utalk(&data, &["user", "add", "--email", "a@example.com", "--role", "boss", "--password-stdin"], "long-enough-pw\n");
    assert!(!ok);
    assert!(err.contains("unknown role"), "{err}");
    let (ok, _, err) = utalk(&data, &["user", "add", "--email", "not-an-email", "--role", "agent", "--password-stdin"], "long-enough-pw\n");
    assert!(!ok);
    assert!(err.contains("not valid"), "{err}");
    let (ok, _, err) = utalk(&data, &["user", "add", "--email", "a@example.com", "--role", "agent", "--password-stdin"], "short\n");
    assert!(!ok);
    assert!(err.contains("at least"), "{err}");
    add_user(&data, "a@example.com", "agent", "long-enough-pw");
    let (ok, _, err) =
        utalk(&data, &["user", "add", "--email", "A@example.com", "--role", "agent", "--password-stdin"], "long-enough-pw\n");
    assert!(!ok);
    assert!(err.contains("already exists"), "{err}");

    let _server = TestServer::start_on(&data, &[]).await;
    // A running server takes the command over its control socket.
    let (ok, out, err) =
        utalk(&data, &["user", "add", "--email", "b@example.com", "--role", "agent", "--password-stdin"], "long-enough-pw\n");
    assert!(ok && out.contains("created user b@example.com"), "{out} {err}");
    let (ok, out, err) =
        utalk(&data, &["user", "add", "--email", "B@example.com", "--role", "agent", "--password-stdin"], "long-enough-pw\n");
    assert!(!ok && err.contains("already exists"), "{out} {err}");
    // Without the socket (say, removed by hand) the locked directory is said plainly.
    std::fs::remove_file(data.join("control.sock")).unwrap();
    let (ok, _, err) =
        utalk(&data, &["user", "add", "--email", "c@example.com", "--role", "agent", "--password-stdin"], "long-enough-pw\n");
    assert!(!ok);
    assert!(err.contains("in use by another process"), "{err}");
}

#[tokio::test]
async fn user_commands_change_users_while_the_server_runs_and_while_it_is_stopped() {
    use std::os::unix::fs::PermissionsExt;
    let mut s = TestServer::start().await;
    let data = s.data_dir();
    let mode = std::fs::metadata(data.join("control.sock")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "only the owner may use the control socket");
    let token = s.login(AGENT).await;
    let works = |token: String| {
        let http = s.http.clone();
        let url = s.url("/api/v1/conversations");
        async move { http.get(url).bearer_auth(token).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(works(token.clone()).await, 200);

    let (ok, out, err) = utalk(&data, &["user", "disable", "--email", AGENT.0], "");
    assert!(ok && out.contains("agent@example.com is agent (disabled)"), "{out} {err}");
    assert_eq!(works(token.clone()).await, 401, "a disabled user's token stops at once");
    let (ok, out, _) = utalk(&data, &["user", "list"], "");
    assert!(ok && out.lines().any(|l| l.contains(AGENT.0) && l.contains("\tdisabled\t")), "{out}");

    let (ok, out, err) = utalk(&data, &["user", "enable", "--email", AGENT.0], "");
    assert!(ok && out.contains("(enabled)"), "{out} {err}");
    let (ok, out, err) = utalk(&data, &["user", "set-role", "--email", AGENT.0, "--role", "operator"], "");
    assert!(ok && out.contains("is operator"), "{out} {err}");
    let (ok, out, err) = utalk(&data, &["user", "passwd", "--email", AGENT.0, "--password-stdin"], "a-new-password-9\n");
    assert!(ok, "{out} {err}");
    let r = s
        .http
        .post(s.url("/api/v1/auth/login"))
        .json(&serde_json::json!({"email": AGENT.0, "password": "a-new-password-9"}))
        .send()
        .await
        .unwrap();
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["user"]["role"], "operator", "{v}");

    for (args, stdin, needle) in [
        (vec!["user", "disable", "--email", "nobody@example.com"], "", "no user with email nobody@example.com"),
        (vec!["user", "set-role", "--email", AGENT.0, "--role", "boss"], "", "unknown role"),
        (vec!["user", "passwd", "--email", AGENT.0, "--password-stdin"], "short\n", "at least"),
        (vec!["user", "passwd", "--email", AGENT.0], "", "--password-stdin"),
    ] {
        let (ok, out, err) = utalk(&data, &args, stdin);
        assert!(!ok && err.contains(needle), "{args:?}: {out} {err}");
    }

    // Garbage on the control socket gets an answer and leaves the server serving.
    {
        use std::io::{BufRead, Write};
        let mut sock = std::os::unix::net::UnixStream::connect(data.join("control.sock")).unwrap();
        sock.write_all(b"{\"op\": \"drop_tables\"}\n").unwrap();
        let mut answer = String::new();
        std::io::BufReader::new(&sock).read_line(&mut answer).unwrap();
        assert!(answer.contains("\"ok\":false") && answer.contains("not a user operation"), "{answer}");
    }
    assert_eq!(works(v["accessToken"].as_str().unwrap().to_string()).await, 200);

    // Stopped, the same commands open the data directory themselves.
    s.child.kill().unwrap();
    s.child.wait().unwrap();
    let (ok, out, err) = utalk(&data, &["user", "disable", "--email", AGENT.0], "");
    assert!(ok && out.contains("(disabled)"), "{out} {err}");
    let (ok, out, _) = utalk(&data, &["user", "list"], "");
    assert!(ok && out.lines().any(|l| l.contains(AGENT.0) && l.contains("\tdisabled\t")), "{out}");
}

#[test]
fn serve_refuses_a_bad_configuration_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(bin()).args(["serve", "--listen", "nowhere", "--data-dir"]).arg(dir.path()).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("listen"), "{err}");
}

#[tokio::test]
async fn export_writes_gzipped_json_lines_without_secrets_while_the_server_runs() {
    use std::io::Read;
    let s = TestServer::start().await;
    let agent = s.login(AGENT).await;
    let conv = s.create_conversation(&agent).await;
    for i in 0..3 {
        let r = s
            .http
            .post(s.url(&format!("/api/v1/conversations/{conv}/messages")))
            .bearer_auth(&agent)
            .json(&serde_json::json!({"messageId": uuid::Uuid::new_v4(), "text": format!("m{i}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("export");
    let data = s.data_dir();
    let (ok, stdout, stderr) =
        utalk(&data, &["export", "--collections", "users,conversations,messages", "--out", dir.to_str().unwrap()], "");
    assert!(ok, "{stdout} {stderr}");
    assert!(stderr.contains("messages: 3 records"), "{stderr}");
    let read = |name: &str| {
        let mut text = String::new();
        flate2::read::GzDecoder::new(std::fs::File::open(dir.join(format!("{name}.jsonl.gz"))).unwrap()).read_to_string(&mut text).unwrap();
        text.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()).collect::<Vec<_>>()
    };
    let users = read("users");
    assert_eq!(users.len(), 3);
    assert!(users.iter().all(|u| u.get("passwordHash").is_none() && u["email"].is_string()));
    assert_eq!(read("messages").len(), 3);
    assert_eq!(read("conversations")[0]["id"], conv.as_str());
    let (ok, _, stderr) = utalk(&data, &["export", "--collections", "refresh_tokens", "--out", dir.to_str().unwrap()], "");
    assert!(!ok && stderr.contains("unknown collection"), "{stderr}");
}

#[test]
fn migrate_status_and_up_report_the_schema() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    add_user(&data, ADMIN.0, "admin", ADMIN.1);
    let (ok, out, err) = utalk(&data, &["migrate", "status"], "");
    assert!(ok, "{err}");
    let v = utalk_storage::SCHEMA_VERSION;
    let r = utalk_storage::READABLE_FROM;
    assert!(
        out.contains(&format!("schema version {v}, readable by builds of version {r} or newer; this build writes {v}"))
            && out.contains("up to date"),
        "{out}"
    );
    assert!(out.contains("background contact_links: pending, 0 records in 0 steps"), "{out}");
    let (ok, out, err) = utalk(&data, &["migrate", "up", "--dry-run"], "");
    assert!(ok && out.contains("up to date"), "{out} {err}");
    let (ok, out, err) = utalk(&data, &["migrate", "up"], "");
    assert!(ok && out.contains("up to date"), "{out} {err}");
    // Back to the release before, in place, and up again.
    let (ok, out, err) = utalk(&data, &["migrate", "rollback", "--to", &(v - 1).to_string()], "");
    assert!(ok && out.contains(&format!("rolled back from schema version {v} to {}", v - 1)), "{out} {err}");
    assert!(err.contains("backing up first"), "{err}");
    let (ok, out, _) = utalk(&data, &["migrate", "status"], "");
    assert!(ok && out.contains(&format!("pending {v}:")), "{out}");
    // A step with no way back is refused before anything changes.
    let (ok, _, err) = utalk(&data, &["migrate", "rollback", "--to", "1"], "");
    assert!(!ok && err.contains("cannot be reversed in place"), "{err}");
    let (ok, out, err) = utalk(&data, &["migrate", "up"], "");
    assert!(ok && out.contains(&format!("migrated from schema version {} to {v}", v - 1)), "{out} {err}");
}

#[tokio::test]
async fn report_kpis_reads_a_running_server_and_rolls_up_a_stopped_one() {
    let mut s = TestServer::start_with(crate::reports::NO_SCHEDULED_ROLLUP).await;
    let admin = s.login(ADMIN).await;
    let conv = s.create_conversation(&admin).await;
    s.send_text(&admin, &conv, "hola").await;
    let data = s.data_dir();
    // While it runs: its rollups as they are (none yet), read without a lock.
    let (ok, out, err) = utalk(&data, &["report", "kpis", "--format", "csv"], "");
    assert!(ok, "{err}");
    assert!(err.contains("the server is running"), "{err}");
    assert!(out.starts_with("bucketStart,granularity,conversations,messages,botResponseTimeMs,"), "{out}");
    assert!(out.lines().skip(1).all(|l| l.split(',').nth(3) == Some("0")), "nothing rolled up yet: {out}");

    // Stopped: it rolls up first.
    s.kill();
    let (ok, out, err) = utalk(&data, &["report", "kpis", "--granularity", "day", "--format", "json"], "");
    assert!(ok, "{err}");
    assert!(err.contains("rolled up"), "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let today = v["items"].as_array().unwrap().last().unwrap().clone();
    assert_eq!((today["conversations"].as_u64(), today["messages"].as_u64()), (Some(1), Some(1)), "{today}");
    let (ok, table, _) = utalk(&data, &["report", "kpis"], "");
    assert!(ok && table.lines().next().unwrap().starts_with("bucket") && table.contains("target"), "{table}");

    let date = utalk_storage::Timestamp::now().to_rfc3339()[..10].to_string();
    let (ok, out, err) = utalk(&data, &["report", "daily", "--date", &date], "");
    assert!(ok, "{err}");
    assert!(out.contains(&format!("daily-{date}.html")) && out.contains("1 conversations"), "{out}");
    assert!(data.join("reports").join(format!("daily-{date}.html")).exists());

    for (args, says) in [
        (vec!["report", "kpis", "--granularity", "week"], "granularity must be hour or day"),
        (vec!["report", "kpis", "--from", "last tuesday"], "from must be an RFC 3339 time"),
        (vec!["report", "kpis", "--format", "xml"], "invalid value 'xml'"),
        (vec!["report", "daily", "--date", "2026-02-30"], "--date must be a day"),
    ] {
        let (ok, _, err) = utalk(&data, &args, "");
        assert!(!ok && err.contains(says), "{args:?}: {err}");
    }
}
