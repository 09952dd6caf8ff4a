//! Media uploads are rate-limited per token and counted against a quota per
//! conversation; a message's mediaId must name media of its own conversation.

use crate::helpers::*;
use crate::socket::{joined_client, next_text};
use futures_util::SinkExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

/// Uploads `bytes` as a PNG, into `conversation` when given.
async fn upload(s: &TestServer, token: &str, conversation: Option<&str>, bytes: &[u8]) -> reqwest::Response {
    let boundary = "utalk-test-boundary";
    let mut body = Vec::new();
    if let Some(c) = conversation {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"conversationId\"\r\n\r\n{c}\r\n").as_bytes(),
        );
    }
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"p.png\"\r\nContent-Type: image/png\r\n\r\n")
            .as_bytes(),
    );
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    s.http
        .post(s.url("/api/v1/media"))
        .bearer_auth(token)
        .header("content-type", format!("multipart/form-data; boundary={boundary}"))
        .body(body)
        .send()
        .await
        .unwrap()
}

/// Uploads and returns the new media id (asserts 201).
pub(crate) async fn uploaded(s: &TestServer, token: &str, conversation: Option<&str>, bytes: &[u8]) -> String {
    let r = upload(s, token, conversation, bytes).await;
    assert_eq!(r.status(), 201);
    r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string()
}

/// Media files kept on disk.
fn files_on_disk(s: &TestServer) -> usize {
    fn count(dir: &std::path::Path) -> usize {
        std::fs::read_dir(dir)
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(
                        |e| {
                            if e.path().is_dir() {
                                count(&e.path())
                            } else {
                                usize::from(!e.file_name().to_string_lossy().starts_with('.'))
                            }
                        },
                    )
                    .sum()
            })
            .unwrap_or(0)
    }
    count(&s.data_dir().join("media"))
}

#[tokio::test]
async fn uploads_past_the_per_token_rate_are_refused_before_anything_is_stored() {
    let s = TestServer::start_with(&[("UTALK_MEDIA__UPLOADS_PER_MINUTE", "2")]).await;
    let agent = s.login(AGENT).await;
    let admin = s.login(ADMIN).await;
    uploaded(&s, &agent, None, b"one").await;
    uploaded(&s, &agent, None, b"two").await;
    let r = upload(&s, &agent, None, b"three").await;
    let retry: u64 = r.headers().get("retry-after").expect("Retry-After").to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(TestServer::error_code(r, 429).await, "rate_limited");
    assert_eq!(files_on_disk(&s), 2, "the refused upload left no file");
    // The rate is per identity: another user still uploads.
    uploaded(&s, &admin, None, b"four").await;
    assert_eq!(files_on_disk(&s), 3);
}

#[tokio::test]
async fn a_conversation_holds_at_most_its_quota_of_uploaded_files_and_bytes() {
    let s = TestServer::start_with(&[
        ("UTALK_MEDIA__MAX_BYTES", "1000"),
        ("UTALK_MEDIA__MAX_FILES_PER_CONVERSATION", "2"),
        ("UTALK_MEDIA__MAX_BYTES_PER_CONVERSATION", "1500"),
    ])
    .await;
    let agent = s.login(AGENT).await;
    let a = s.create_conversation(&agent).await;
    let b = s.create_conversation(&agent).await;

    // Files: two fit, the third does not.
    uploaded(&s, &agent, Some(&a), &[1; 100]).await;
    uploaded(&s, &agent, Some(&a), &[2; 100]).await;
    let r = upload(&s, &agent, Some(&a), &[3; 100]).await;
    assert_eq!(TestServer::error_code(r, 409).await, "media_quota_exceeded");
    assert_eq!(files_on_disk(&s), 2, "the refused upload left no file");

    // Bytes: 1000 fit, 600 more would pass 1500; 500 still fit.
    uploaded(&s, &agent, Some(&b), &[4; 1000]).await;
    let r = upload(&s, &agent, Some(&b), &[5; 600]).await;
    assert_eq!(TestServer::error_code(r, 409).await, "media_quota_exceeded");
    uploaded(&s, &agent, Some(&b), &[6; 500]).await;
    assert_eq!(files_on_disk(&s), 4);

    // Staff media outside any conversation is not counted against one.
    uploaded(&s, &agent, None, &[7; 100]).await;

    // A widget's uploads count against its own conversation even without
    // `conversationId`: free widget tokens cannot pile up loose files.
    let w: Value = s.http.post(s.url("/api/v1/widget/sessions")).json(&json!({"name": "Ana"})).send().await.unwrap().json().await.unwrap();
    let widget = w["token"].as_str().unwrap().to_string();
    uploaded(&s, &widget, None, &[8; 100]).await;
    uploaded(&s, &widget, None, &[9; 100]).await;
    let r = upload(&s, &widget, None, &[10; 100]).await;
    assert_eq!(TestServer::error_code(r, 409).await, "media_quota_exceeded");
}

#[tokio::test]
async fn a_message_may_only_reference_media_of_its_own_conversation() {
    let s = TestServer::start().await;
    let agent = s.login(AGENT).await;
    let a = s.create_conversation(&agent).await;
    let b = s.create_conversation(&agent).await;
    let of_a = uploaded(&s, &agent, Some(&a), b"in a").await;
    let of_b = uploaded(&s, &agent, Some(&b), b"in b").await;
    let loose = uploaded(&s, &agent, None, b"no conversation").await;

    let send = |media: String| {
        let (s, agent, a) = (&s, agent.clone(), a.clone());
        async move {
            s.http
                .post(s.url(&format!("/api/v1/conversations/{a}/messages")))
                .bearer_auth(agent)
                .json(&json!({"messageId": uuid::Uuid::new_v4(), "mediaId": media}))
                .send()
                .await
                .unwrap()
        }
    };
    for bad in [uuid::Uuid::new_v4().to_string(), of_b.clone(), loose] {
        let r = send(bad).await;
        assert_eq!(TestServer::error_code(r, 422).await, "media_not_found");
    }
    assert!(s.messages(&agent, &a).await.is_empty(), "a refused message is not stored");
    let r = send(of_a.clone()).await;
    assert_eq!(r.status(), 201);
    assert_eq!(r.json::<Value>().await.unwrap()["mediaId"], of_a.as_str());

    // The socket path goes through the same check.
    let mut ws = joined_client(&s.base, &agent, &a, None).await;
    for (ack, media, ok) in [(2, of_b.as_str(), false), (3, of_a.as_str(), true)] {
        let event = json!(["message:send", {"conversationId": a, "messageId": uuid::Uuid::new_v4(), "mediaId": media}]);
        ws.send(Message::text(format!("42{ack}{event}"))).await.unwrap();
        let answer = loop {
            let t = next_text(&mut ws).await;
            if let Some(rest) = t.strip_prefix(&format!("43{ack}")) {
                break serde_json::from_str::<Value>(rest).unwrap()[0].clone();
            }
        };
        assert_eq!(answer["ok"], ok, "{answer}");
        if !ok {
            assert_eq!(answer["error"]["code"], "media_not_found", "{answer}");
        }
    }
    assert_eq!(s.messages(&agent, &a).await.len(), 2, "the REST and the socket message with media of this conversation");
}
