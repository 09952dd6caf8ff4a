//! Traces: a local OTLP/HTTP receiver decodes what the server exports and
//! checks that one request or socket event is one trace down to the store writer.

use crate::helpers::*;
use crate::socket::{joined_client, next_text};
use futures_util::SinkExt;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;

/// A span as received, with the resource it came from.
#[derive(Debug, Clone)]
struct Got {
    span: Span,
    service: String,
}

impl Got {
    fn attr(&self, key: &str) -> Option<String> {
        self.span.attributes.iter().find(|kv| kv.key == key).and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            AnyValue::StringValue(s) => Some(s.clone()),
            AnyValue::IntValue(i) => Some(i.to_string()),
            other => Some(format!("{other:?}")),
        })
    }
}

/// Collects the spans posted to `/v1/traces`; anything else gets 404.
struct Receiver {
    url: String,
    spans: Arc<Mutex<Vec<Got>>>,
    bad: Arc<Mutex<Vec<String>>>,
}

impl Receiver {
    async fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let spans = Arc::new(Mutex::new(Vec::new()));
        let bad = Arc::new(Mutex::new(Vec::new()));
        let (s, b) = (spans.clone(), bad.clone());
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(serve(conn, s.clone(), b.clone()));
            }
        });
        Receiver { url, spans, bad }
    }

    /// Waits until `pred` holds of the spans received so far.
    async fn wait_for(&self, what: &str, pred: impl Fn(&[Got]) -> bool) -> Vec<Got> {
        for _ in 0..150 {
            let now = self.spans.lock().unwrap().clone();
            if pred(&now) {
                return now;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let names: Vec<String> = self.spans.lock().unwrap().iter().map(|g| g.span.name.clone()).collect();
        panic!("{what}: not received; got {names:?}; refused requests: {:?}", self.bad.lock().unwrap());
    }
}

/// One keep-alive HTTP/1.1 connection from the exporter.
async fn serve(mut conn: TcpStream, spans: Arc<Mutex<Vec<Got>>>, bad: Arc<Mutex<Vec<String>>>) {
    let mut buf = Vec::new();
    loop {
        let Some((head, body)) = crate::helpers::next_request(&mut conn, &mut buf).await else { return };
        let header = |name: &str| {
            head.lines().find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim().to_string()))
        };
        let request_line = head.lines().next().unwrap_or_default().to_string();
        let status = if !request_line.starts_with("POST /v1/traces ") {
            bad.lock().unwrap().push(request_line);
            "404 Not Found"
        } else if header("content-type").as_deref() != Some("application/x-protobuf") {
            bad.lock().unwrap().push(format!("content-type {:?}", header("content-type")));
            "415 Unsupported Media Type"
        } else {
            match ExportTraceServiceRequest::decode(body.as_slice()) {
                Ok(req) => {
                    let mut got = spans.lock().unwrap();
                    for rs in req.resource_spans {
                        let service = rs
                            .resource
                            .iter()
                            .flat_map(|r| r.attributes.iter())
                            .find(|kv| kv.key == "service.name")
                            .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                                AnyValue::StringValue(s) => Some(s.clone()),
                                _ => None,
                            })
                            .unwrap_or_default();
                        for ss in rs.scope_spans {
                            got.extend(ss.spans.into_iter().map(|span| Got { span, service: service.clone() }));
                        }
                    }
                    "200 OK"
                }
                Err(e) => {
                    bad.lock().unwrap().push(format!("undecodable body: {e}"));
                    "400 Bad Request"
                }
            }
        };
        let reply = format!("HTTP/1.1 {status}\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n");
        if conn.write_all(reply.as_bytes()).await.is_err() {
            return;
        }
    }
}

fn find<'a>(spans: &'a [Got], trace: &[u8], name: &str) -> Option<&'a Got> {
    spans.iter().find(|g| g.span.trace_id == trace && g.span.name == name)
}

/// The chain request → conversation actor → store writer within one trace.
fn chain_complete(spans: &[Got], trace: &[u8], root: &str, actor: &str) -> bool {
    let (Some(r), Some(a)) = (find(spans, trace, root), find(spans, trace, actor)) else { return false };
    a.span.parent_span_id == r.span.span_id
        && spans.iter().any(|g| g.span.trace_id == trace && g.span.name == "store.commit" && g.span.parent_span_id == a.span.span_id)
}

#[tokio::test]
async fn a_rest_call_and_a_socket_event_are_each_one_trace_down_to_the_store_writer() {
    let rx = Receiver::start().await;
    let s = TestServer::start_with(&[("UTALK_OTLP_ENDPOINT", &rx.url), ("OTEL_BSP_SCHEDULE_DELAY", "100")]).await;
    let admin = s.login(ADMIN).await;
    let conv = s.create_conversation(&admin).await;

    // A caller's traceparent is continued: the request span is its child, in its trace.
    let trace_hex = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent_hex = "00f067aa0ba902b7";
    let r = s
        .http
        .post(s.url(&format!("/api/v1/conversations/{conv}/messages")))
        .bearer_auth(&admin)
        .header("traceparent", format!("00-{trace_hex}-{parent_hex}-01"))
        .json(&json!({"messageId": uuid::Uuid::new_v4(), "text": "traced"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let trace = hex_bytes(trace_hex);
    let root_name = "POST /api/v1/conversations/{id}/messages";
    let spans = rx.wait_for("the REST trace", |g| chain_complete(g, &trace, root_name, "conversation.append")).await;
    let root = find(&spans, &trace, root_name).unwrap();
    assert_eq!(root.span.parent_span_id, hex_bytes(parent_hex), "the request continues the caller's span");
    assert_eq!(root.service, "utalk");
    assert_eq!(root.attr("http.route").as_deref(), Some("/api/v1/conversations/{id}/messages"));
    assert_eq!(root.attr("http.response.status_code").as_deref(), Some("201"));
    assert!(root.attr("request_id").is_some_and(|id| !id.is_empty()));
    let actor = find(&spans, &trace, "conversation.append").unwrap();
    assert_eq!(actor.attr("conversation_id").as_deref(), Some(conv.as_str()));
    let commit = spans.iter().find(|g| g.span.trace_id == trace && g.span.name == "store.commit").unwrap();
    assert!(commit.attr("group").is_some_and(|n| n.parse::<u64>().is_ok_and(|n| n >= 1)), "{:?}", commit.span.attributes);
    // The request span covers the actor's and the writer's.
    assert!(root.span.start_time_unix_nano <= actor.span.start_time_unix_nano);
    assert!(commit.span.end_time_unix_nano <= root.span.end_time_unix_nano);

    // A socket event starts a trace of its own that reaches the writer the same way.
    let mut ws = joined_client(&s.base, &admin, &conv, None).await;
    ws.send(Message::text(format!(
        "422{}",
        json!(["message:send", {"conversationId": conv, "messageId": uuid::Uuid::new_v4(), "text": "hi"}])
    )))
    .await
    .unwrap();
    loop {
        let t = next_text(&mut ws).await;
        if t.starts_with("432[") {
            assert!(t.contains("\"ok\":true"), "{t}");
            break;
        }
    }
    let spans = rx
        .wait_for("the socket trace", |g| {
            g.iter()
                .filter(|x| x.span.name == "socket message:send")
                .any(|x| chain_complete(g, &x.span.trace_id, "socket message:send", "conversation.append"))
        })
        .await;
    let ev = spans.iter().find(|g| g.span.name == "socket message:send").unwrap();
    assert!(ev.span.parent_span_id.is_empty(), "a socket event is a root span");
    assert_eq!(ev.attr("event").as_deref(), Some("message:send"));

    // Every export the server made was a well-formed OTLP request.
    assert!(rx.bad.lock().unwrap().is_empty(), "{:?}", rx.bad.lock().unwrap());
}

#[tokio::test]
async fn a_bad_trace_endpoint_or_sample_ratio_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    for (endpoint, says) in [("https://collector:4318", "http:// URL"), ("collector:4318", "http:// URL"), ("http://", "names no host")] {
        let out = std::process::Command::new(bin())
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join("d"))
            .env("UTALK_OTLP_ENDPOINT", endpoint)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{endpoint} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says) && err.contains("otlp_endpoint"), "{endpoint}: {err}");
    }
    let out = std::process::Command::new(bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("d"))
        .env("UTALK_OTLP_SAMPLE_RATIO", "1.5")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("otlp_sample_ratio"));
    assert!(!dir.path().join("d").exists(), "a refused start creates nothing");
}

fn hex_bytes(h: &str) -> Vec<u8> {
    (0..h.len()).step_by(2).map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap()).collect()
}
