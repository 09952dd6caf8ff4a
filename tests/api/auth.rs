use crate::helpers::*;
use serde_json::{json, Value};

async fn login_raw(s: &TestServer, email: &str, password: &str) -> reqwest::Response {
    s.http.post(s.url("/api/v1/auth/login")).json(&json!({"email": email, "password": password})).send().await.unwrap()
}

#[tokio::test]
async fn login_returns_tokens_and_the_user() {
    let s = TestServer::start().await;
    let r = login_raw(&s, "AGENT@example.com", AGENT.1).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["user"]["email"], AGENT.0);
    assert_eq!(v["user"]["role"], "agent");
    assert_eq!(v["expiresIn"], 900);
    let me: Value =
        s.http.get(s.url("/api/v1/auth/me")).bearer_auth(v["accessToken"].as_str().unwrap()).send().await.unwrap().json().await.unwrap();
    assert_eq!(me["email"], AGENT.0);
}

#[tokio::test]
async fn wrong_passwords_and_unknown_users_get_the_same_401_then_429() {
    let s = TestServer::start().await;
    assert_eq!(TestServer::error_code(login_raw(&s, AGENT.0, "not-the-password").await, 401).await, "invalid_credentials");
    assert_eq!(TestServer::error_code(login_raw(&s, "nobody@example.com", "whatever-pass").await, 401).await, "invalid_credentials");
    for _ in 0..4 {
        login_raw(&s, AGENT.0, "not-the-password").await;
    }
    let r = login_raw(&s, AGENT.0, AGENT.1).await;
    assert!(r.headers().get("retry-after").is_some());
    assert_eq!(TestServer::error_code(r, 429).await, "too_many_attempts");
    // Other accounts are not locked by this one's failures.
    assert_eq!(login_raw(&s, ADMIN.0, ADMIN.1).await.status(), 200);
}

#[tokio::test]
async fn many_failures_from_one_address_block_it_for_every_account() {
    let s = TestServer::start().await;
    // 20 failures spread over accounts, none of which reaches its own limit of 5.
    for i in 0..20 {
        let r = login_raw(&s, &format!("guess{}@example.com", i % 5), "wrong-password").await;
        assert_eq!(r.status(), 401);
    }
    let r = login_raw(&s, ADMIN.0, ADMIN.1).await;
    assert_eq!(TestServer::error_code(r, 429).await, "too_many_attempts");
}

#[tokio::test]
async fn refresh_rotates_and_a_reused_token_revokes_its_family() {
    let s = TestServer::start().await;
    let first: Value = login_raw(&s, ADMIN.0, ADMIN.1).await.json().await.unwrap();
    let rt1 = first["refreshToken"].as_str().unwrap().to_string();
    let r = s.http.post(s.url("/api/v1/auth/refresh")).json(&json!({"refreshToken": rt1})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let second: Value = r.json().await.unwrap();
    let rt2 = second["refreshToken"].as_str().unwrap().to_string();
    assert_ne!(rt1, rt2);
    assert!(second["accessToken"].as_str().is_some());

    let reuse = s.http.post(s.url("/api/v1/auth/refresh")).json(&json!({"refreshToken": rt1})).send().await.unwrap();
    assert_eq!(TestServer::error_code(reuse, 401).await, "refresh_token_reused");
    // The reuse revoked the token that replaced it as well.
    let after = s.http.post(s.url("/api/v1/auth/refresh")).json(&json!({"refreshToken": rt2})).send().await.unwrap();
    assert_eq!(TestServer::error_code(after, 401).await, "invalid_refresh_token");
    let unknown = s.http.post(s.url("/api/v1/auth/refresh")).json(&json!({"refreshToken": "rt_nope"})).send().await.unwrap();
    assert_eq!(TestServer::error_code(unknown, 401).await, "invalid_refresh_token");
}

#[tokio::test]
async fn tokens_signed_with_a_rotated_secret_verify_during_the_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    add_user(&data, ADMIN.0, "admin", ADMIN.1);
    let old = "oLd7Qw2Er9Ty4Ui1Op6As3Df8Gh5Jk0Zx";
    let new = "nEw3Mb8Vc1Xz6Lk9Jh2Gf5Ds0Ap4Oi7Uy";
    let token = {
        let s = TestServer::start_on(&data, &[("UTALK_JWT_SECRET", old)]).await;
        s.login(ADMIN).await
    };
    let cfg = dir.path().join("rotated.toml");
    std::fs::write(
        &cfg,
        format!("jwt_secret = \"{new}\"\n[[auth.previous_jwt_secrets]]\nsecret = \"{old}\"\nvalid_until = \"2999-01-01T00:00:00Z\"\n"),
    )
    .unwrap();
    let cfg_s = cfg.to_str().unwrap().to_string();
    {
        let s = TestServer::start_on(&data, &[("UTALK_CONFIG", &cfg_s)]).await;
        let r = s.http.get(s.url("/api/v1/auth/me")).bearer_auth(&token).send().await.unwrap();
        assert_eq!(r.status(), 200, "old token within grace");
    }
    std::fs::write(
        &cfg,
        format!("jwt_secret = \"{new}\"\n[[auth.previous_jwt_secrets]]\nsecret = \"{old}\"\nvalid_until = \"2000-01-01T00:00:00Z\"\n"),
    )
    .unwrap();
    let s = TestServer::start_on(&data, &[("UTALK_CONFIG", &cfg_s)]).await;
    let r = s.http.get(s.url("/api/v1/auth/me")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(TestServer::error_code(r, 401).await, "invalid_token");
}

#[tokio::test]
async fn widget_tokens_reach_only_their_own_conversation() {
    let s = TestServer::start().await;
    let r = s.http.post(s.url("/api/v1/widget/sessions")).json(&json!({"name": "Luis"})).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let w: Value = r.json().await.unwrap();
    let token = w["token"].as_str().unwrap().to_string();
    let conv = w["conversationId"].as_str().unwrap().to_string();

    let own = s.http.get(s.url(&format!("/api/v1/conversations/{conv}"))).bearer_auth(&token).send().await.unwrap();
    assert_eq!(own.status(), 200);
    let sent = s
        .http
        .post(s.url(&format!("/api/v1/conversations/{conv}/messages")))
        .bearer_auth(&token)
        .json(&json!({"messageId": uuid::Uuid::new_v4(), "text": "hola"}))
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 201);
    let m: Value = sent.json().await.unwrap();
    assert_eq!(m["direction"], "inbound");
    assert_eq!(m["author"]["type"], "customer");

    let admin = s.login(ADMIN).await;
    let other = s.create_conversation(&admin).await;
    let r = s.http.get(s.url(&format!("/api/v1/conversations/{other}"))).bearer_auth(&token).send().await.unwrap();
    assert_eq!(TestServer::error_code(r, 403).await, "forbidden");
    let r = s
        .http
        .post(s.url(&format!("/api/v1/conversations/{other}/messages")))
        .bearer_auth(&token)
        .json(&json!({"messageId": uuid::Uuid::new_v4(), "text": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(TestServer::error_code(r, 403).await, "forbidden");
    assert_eq!(s.last_seq(&admin, &other).await, 0);
    let r = s.http.get(s.url("/api/v1/conversations")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(TestServer::error_code(r, 403).await, "forbidden");
}

#[tokio::test]
async fn only_admins_manage_users() {
    let s = TestServer::start().await;
    let admin = s.login(ADMIN).await;
    let agent = s.login(AGENT).await;
    let body = json!({"email": "new@example.com", "role": "agent", "password": "new-user-password"});
    let r = s.http.post(s.url("/api/v1/users")).bearer_auth(&agent).json(&body).send().await.unwrap();
    assert_eq!(TestServer::error_code(r, 403).await, "forbidden");
    let r = s.http.post(s.url("/api/v1/users")).bearer_auth(&admin).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let r = s.http.post(s.url("/api/v1/users")).bearer_auth(&admin).json(&body).send().await.unwrap();
    assert_eq!(TestServer::error_code(r, 409).await, "user_exists");
    let weak = json!({"email": "weak@example.com", "role": "agent", "password": "short"});
    let r = s.http.post(s.url("/api/v1/users")).bearer_auth(&admin).json(&weak).send().await.unwrap();
    assert_eq!(TestServer::error_code(r, 422).await, "weak_password");
    assert!(s.login(("new@example.com", "new-user-password")).await.len() > 20);
    let list: Value = s.get_json("/api/v1/users", &admin).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 4);
}

#[tokio::test]
async fn rotate_jwt_keeps_old_tokens_working_until_the_grace_ends() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    add_user(&data, ADMIN.0, "admin", ADMIN.1);
    let old_token = {
        let s = TestServer::start_on(&data, &[]).await;
        s.login(ADMIN).await
    };
    let (ok, out, err) = utalk(&data, &["secrets", "rotate-jwt", "--grace-secs", "4"], "");
    assert!(ok && out.contains("rotated the token signing secret"), "{out} {err}");
    let started = std::time::Instant::now();
    let s = TestServer::start_on(&data, &[]).await;
    let me = |t: String| {
        let s = &s;
        async move { s.http.get(s.url("/api/v1/auth/me")).bearer_auth(t).send().await.unwrap() }
    };
    assert_eq!(me(old_token.clone()).await.status(), 200, "the old key verifies during the grace");
    let new_token = s.login(ADMIN).await;
    assert_eq!(me(new_token.clone()).await.status(), 200);
    assert_ne!(new_token.split('.').next(), old_token.split('.').next(), "a new key id in the header");
    tokio::time::sleep(std::time::Duration::from_secs(4).saturating_sub(started.elapsed()) + std::time::Duration::from_millis(300)).await;
    assert_eq!(TestServer::error_code(me(old_token).await, 401).await, "invalid_token", "past the grace");
    assert_eq!(me(new_token).await.status(), 200);

    // While the server runs it refuses, and says why.
    let (ok, _, err) = utalk(&data, &["secrets", "rotate-jwt"], "");
    assert!(!ok && err.contains("stop the server first"), "{err}");
    drop(s);
    // A secret from the configuration is rotated there, not by the command.
    let mut cmd = std::process::Command::new(bin());
    let out = cmd
        .args(["secrets", "rotate-jwt", "--data-dir"])
        .arg(&data)
        .env("UTALK_JWT_SECRET", "3qJ9vX2mLp8TzR4wYc6NbF1hKd5GsA7e")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("previous_jwt_secrets"), "{err}");
}

#[tokio::test]
async fn production_refuses_a_placeholder_signing_secret() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let run = |env: &[(&str, &str)]| {
        let mut cmd = std::process::Command::new(bin());
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"]).arg(&data).env("UTALK_LOG", "warn");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd
    };
    let out = run(&[("UTALK_JWT_SECRET", "change-me-change-me-change-me-change-me")]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("looks like a placeholder"), "{stderr}");
    // Outside production it is only a development convenience and starts.
    let mut child = run(&[("UTALK_JWT_SECRET", "change-me-change-me-change-me-change-me"), ("UTALK_ENVIRONMENT", "development")])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(800));
    assert!(child.try_wait().unwrap().is_none(), "it runs");
    child.kill().unwrap();
    let _ = child.wait();
}
