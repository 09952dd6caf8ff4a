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
    let (ok, _, err) =
        utalk(&data, &["user", "add", "--email", "b@example.com", "--role", "agent", "--password-stdin"], "long-enough-pw\n");
    assert!(!ok);
    assert!(err.contains("in use by another process"), "{err}");
    let (ok, out, _) = utalk(&data, &["user", "list"], "");
    assert!(!ok, "list also needs the directory: {out}");
}

#[test]
fn serve_refuses_a_bad_configuration_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(bin()).args(["serve", "--listen", "nowhere", "--data-dir"]).arg(dir.path()).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("listen"), "{err}");
}
