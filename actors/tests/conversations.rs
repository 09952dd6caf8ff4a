//! Conversation actors against a real RocksDB in a temp dir.

use std::sync::Arc;
use std::time::Duration;
use utalk_actors::fanout::broker::{ConversationEvent, LocalBroker, Subscriber};
use utalk_actors::{
    AppendRequest, Appended, Broker, ConversationChange, ConversationError, Durability, MessageChange, Registry, RegistryConfig,
    StoreWriter,
};
use utalk_storage::model::{
    conversation, message, outbox, Attachment, Author, AuthorType, Channel, Conversation, ConversationStatus, Customer, Direction,
    MediaStatus, MessageStatus, OutboxState,
};
use utalk_storage::{Db, DbOptions, Timestamp};
use uuid::Uuid;

struct Fixture {
    _dir: tempfile::TempDir,
    db: Db,
    registry: Registry,
    broker: Arc<LocalBroker>,
}

fn fixture(idle: Duration) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), &DbOptions::default()).unwrap();
    let writer = StoreWriter::start(db.clone(), Durability::Sync).unwrap();
    let broker = Arc::new(LocalBroker::new());
    let cluster = std::sync::Arc::new(utalk_actors::cluster::LocalCluster::new("test"));
    let registry = Registry::start(
        db.clone(),
        utalk_actors::durability::Journal::new(&db, writer, cluster, broker.clone()),
        broker.clone(),
        RegistryConfig { idle_timeout: idle, max_inflight: 4096, threads: 2, ..RegistryConfig::default() },
    );
    Fixture { _dir: dir, db, registry, broker }
}

async fn new_conversation(f: &Fixture) -> Uuid {
    let c = Conversation::new(Channel::Web, Customer::default(), None);
    f.registry.journal().commit_conversation(c.id, conversation::put_batch(None, &c).unwrap(), Vec::new()).await.unwrap();
    c.id
}

fn text(message_id: Uuid, t: &str) -> AppendRequest {
    AppendRequest {
        message_id,
        author: Author { kind: AuthorType::Customer, id: None },
        direction: Direction::Inbound,
        text: Some(t.to_string()),
        media_id: None,
        status: MessageStatus::Received,
        provider_id: None,
        media: Vec::new(),
        extra: utalk_storage::Batch::new(),
        private: false,
        template: None,
    }
}

#[actix::test]
async fn two_hundred_concurrent_appends_get_gap_free_seqs() {
    let f = fixture(Duration::from_secs(60));
    let conv = new_conversation(&f).await;
    let mut tasks = Vec::new();
    for i in 0..200 {
        let r = f.registry.clone();
        tasks.push(actix::spawn(async move { r.call(conv, text(Uuid::new_v4(), &format!("m{i}"))).await }));
    }
    let mut seqs = Vec::new();
    for t in tasks {
        match t.await.unwrap().unwrap() {
            Appended::Created(m) => seqs.push(m.seq),
            other => panic!("expected a new message, got {other:?}"),
        }
    }
    seqs.sort();
    assert_eq!(seqs, (1..=200).collect::<Vec<u64>>());
    assert_eq!(message::last_seq(&f.db, conv).unwrap(), 200);
}

#[actix::test]
async fn the_same_message_id_stores_one_message_even_when_racing() {
    let f = fixture(Duration::from_secs(60));
    let conv = new_conversation(&f).await;
    let id = Uuid::new_v4();
    let (a, b) = futures_join(f.registry.call(conv, text(id, "hello")), f.registry.call(conv, text(id, "hello"))).await;
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.message(), b.message());
    assert!(matches!((&a, &b), (Appended::Created(_), Appended::Existing(_)) | (Appended::Existing(_), Appended::Created(_))));
    let again = f.registry.call(conv, text(id, "hello")).await.unwrap();
    assert!(matches!(again, Appended::Existing(ref m) if m.seq == 1));
    assert_eq!(message::after(&f.db, conv, 0, 100).unwrap().len(), 1);

    let other = new_conversation(&f).await;
    let err = f.registry.call(other, text(id, "hello")).await.unwrap_err();
    assert!(matches!(err, ConversationError::MessageIdConflict));
    assert_eq!(message::last_seq(&f.db, other).unwrap(), 0);
}

async fn futures_join<A: std::future::Future, B: std::future::Future>(a: A, b: B) -> (A::Output, B::Output) {
    futures_util::future::join(a, b).await
}

#[actix::test]
async fn a_panicking_conversation_recovers_from_storage_and_others_never_notice() {
    let f = fixture(Duration::from_secs(60));
    let (a, b) = (new_conversation(&f).await, new_conversation(&f).await);
    for i in 0..5 {
        f.registry.call(a, text(Uuid::new_v4(), &format!("a{i}"))).await.unwrap();
        f.registry.call(b, text(Uuid::new_v4(), &format!("b{i}"))).await.unwrap();
    }
    let starts_before = f.registry.stats().starts;

    // B keeps sending while A panics.
    let reg = f.registry.clone();
    let b_sender = actix::spawn(async move {
        let mut seqs = Vec::new();
        for i in 0..50 {
            seqs.push(reg.call(b, text(Uuid::new_v4(), &format!("b-during-{i}"))).await.map(|m| m.message().seq));
        }
        seqs
    });
    let err = f.registry.inject_panic(a).await.unwrap_err();
    assert!(matches!(err, ConversationError::Restarted));

    let b_seqs: Vec<u64> = b_sender.await.unwrap().into_iter().map(|r| r.expect("B must not see A's panic")).collect();
    assert_eq!(b_seqs, (6..=55).collect::<Vec<u64>>());

    // A was restarted in place, reloaded its state and continues gap-free.
    let next = f.registry.call(a, text(Uuid::new_v4(), "after")).await.unwrap();
    assert!(matches!(next, Appended::Created(ref m) if m.seq == 6), "{next:?}");
    let stats = f.registry.stats();
    assert_eq!(stats.panics, 1);
    assert_eq!(stats.restarts, 1);
    assert_eq!(stats.starts, starts_before, "no conversation actor was started anew");
}

#[actix::test]
async fn idle_actors_retire_and_come_back_from_storage() {
    let f = fixture(Duration::from_millis(100));
    let conv = new_conversation(&f).await;
    f.registry.call(conv, text(Uuid::new_v4(), "one")).await.unwrap();
    assert_eq!(f.registry.stats().active, 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(f.registry.stats().active, 0, "idle actor was not retired");
    let m = f.registry.call(conv, text(Uuid::new_v4(), "two")).await.unwrap();
    assert_eq!(m.message().seq, 2);
    assert_eq!(f.registry.stats().starts, 2);
}

#[actix::test]
async fn subscribers_see_durable_messages_in_seq_order() {
    let f = fixture(Duration::from_secs(60));
    let conv = new_conversation(&f).await;
    let (sub, mut rx, _) = Subscriber::bounded(1024);
    f.broker.subscribe(conv, sub);
    let mut tasks = Vec::new();
    for i in 0..100 {
        let r = f.registry.clone();
        tasks.push(actix::spawn(async move { r.call(conv, text(Uuid::new_v4(), &format!("m{i}"))).await }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let change = ConversationChange { status: Some(ConversationStatus::Escalated), ..Default::default() };
    let updated = f.registry.call(conv, change).await.unwrap();
    assert_eq!(updated.status, ConversationStatus::Escalated);
    let mut seen = Vec::new();
    for _ in 0..100 {
        match &rx.recv().await.unwrap().event {
            ConversationEvent::MessageNew(m) => {
                // Published only once durable: it is already readable.
                assert!(message::get(&f.db, conv, m.seq).unwrap().is_some());
                seen.push(m.seq);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(seen, (1..=100).collect::<Vec<u64>>());
    assert!(
        matches!(&rx.recv().await.unwrap().event, ConversationEvent::ConversationUpdated(c) if c.status == ConversationStatus::Escalated)
    );
    assert_eq!(conversation::get(&f.db, conv).unwrap().unwrap().status, ConversationStatus::Escalated);
}

#[actix::test]
async fn unknown_conversations_are_not_found_and_write_nothing() {
    let f = fixture(Duration::from_millis(100));
    let ghost = Uuid::now_v7();
    let err = f.registry.call(ghost, text(Uuid::new_v4(), "x")).await.unwrap_err();
    assert!(matches!(err, ConversationError::NotFound));
    assert_eq!(message::last_seq(&f.db, ghost).unwrap(), 0);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(f.registry.stats().active, 0);
}

async fn whatsapp_conversation(f: &Fixture, phone: Option<&str>) -> Uuid {
    let c = Conversation::new(Channel::Whatsapp, Customer { phone: phone.map(str::to_owned), ..Customer::default() }, None);
    f.registry.journal().commit_conversation(c.id, conversation::put_batch(None, &c).unwrap(), Vec::new()).await.unwrap();
    c.id
}

fn agent_text(message_id: Uuid, t: &str) -> AppendRequest {
    AppendRequest {
        author: Author { kind: AuthorType::Agent, id: Some(Uuid::new_v4()) },
        direction: Direction::Outbound,
        status: MessageStatus::Sent,
        ..text(message_id, t)
    }
}

#[actix::test]
async fn outbound_whatsapp_messages_enter_the_outbox_with_the_message() {
    let f = fixture(Duration::from_secs(60));
    let conv = whatsapp_conversation(&f, Some("+5215500000001")).await;
    // Before the customer writes, only a template may go out.
    let refused = f.registry.call(conv, agent_text(Uuid::new_v4(), "hola")).await.unwrap_err();
    assert!(matches!(refused, ConversationError::WindowClosed), "{refused:?}");
    f.registry.call(conv, text(Uuid::new_v4(), "buenas")).await.unwrap();
    let id = Uuid::new_v4();
    let m = f.registry.call(conv, agent_text(id, "hola")).await.unwrap();
    // The fixture's channel is not configured: the message waits, and says why.
    assert_eq!(m.message().status, MessageStatus::NotConfigured);
    let entries = outbox::list(&f.db, None, 10).unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].message_id, id);
    assert_eq!(entries[0].to, "whatsapp:+5215500000001");
    assert_eq!(entries[0].state, OutboxState::NotConfigured);
    // A retry of the same messageId adds no second entry.
    assert!(matches!(f.registry.call(conv, agent_text(id, "hola")).await.unwrap(), Appended::Existing(_)));
    assert_eq!(outbox::list(&f.db, None, 10).unwrap().len(), 1);
    // Customer messages and web chat messages never enter it.
    f.registry.call(conv, text(Uuid::new_v4(), "gracias")).await.unwrap();
    // A template goes out whatever the window says, with its Content SID.
    let template = utalk_storage::model::Template {
        content_sid: format!("HX{}", "ab".repeat(16)),
        variables: [("1".to_string(), "Ana".to_string())].into_iter().collect(),
    };
    let mut t = agent_text(Uuid::new_v4(), "");
    t.text = None;
    t.template = Some(template.clone());
    f.registry.call(conv, t).await.unwrap();
    let entries = outbox::list(&f.db, None, 10).unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[1].template.as_ref(), Some(&template));
    // A template outside WhatsApp is refused.
    let web_first = new_conversation(&f).await;
    let mut t = agent_text(Uuid::new_v4(), "x");
    t.template = Some(template);
    assert!(matches!(f.registry.call(web_first, t).await.unwrap_err(), ConversationError::TemplateNotWhatsapp));
    let web = new_conversation(&f).await;
    f.registry.call(web, agent_text(Uuid::new_v4(), "hi")).await.unwrap();
    assert_eq!(outbox::list(&f.db, None, 10).unwrap().len(), 2);
    // No number to send to: failed at once, with the reason.
    let nowhere = whatsapp_conversation(&f, None).await;
    f.registry.call(nowhere, text(Uuid::new_v4(), "hola")).await.unwrap();
    let m = f.registry.call(nowhere, agent_text(Uuid::new_v4(), "hola")).await.unwrap();
    assert_eq!(m.message().status, MessageStatus::Failed);
    assert_eq!(m.message().error_code.as_deref(), Some("no_recipient"));
}

#[actix::test]
async fn message_changes_move_forward_and_none_is_lost_when_they_race() {
    let f = fixture(Duration::from_secs(60));
    let conv = whatsapp_conversation(&f, Some("+5215500000002")).await;
    // The customer writes first, so staff may answer freely.
    f.registry.call(conv, text(Uuid::new_v4(), "hola")).await.unwrap();
    let id = Uuid::new_v4();
    let media_id = Uuid::new_v4();
    let mut req = agent_text(id, "foto");
    req.media = vec![Attachment { id: media_id, content_type: "image/png".into(), status: MediaStatus::Pending, error: None }];
    f.registry.call(conv, req).await.unwrap();
    let (sub, mut rx, _) = Subscriber::bounded(64);
    f.broker.subscribe(conv, sub);
    // Sent back to back, so the second is built while the first is in flight.
    let status = |s: MessageStatus| {
        let mut c = MessageChange::new(id);
        c.status = Some(s);
        c.provider_id = Some("SM1".into());
        c
    };
    let mut media = MessageChange::new(id);
    media.media = Some((media_id, MediaStatus::Stored, None));
    let calls = [status(MessageStatus::Delivered), media, status(MessageStatus::Sent), status(MessageStatus::Read)];
    let mut tasks = Vec::new();
    for c in calls {
        let r = f.registry.clone();
        tasks.push(actix::spawn(async move { r.call(conv, c).await }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let seq = message::locate(&f.db, id).unwrap().unwrap().1;
    let stored = message::get(&f.db, conv, seq).unwrap().unwrap();
    assert_eq!(stored.status, MessageStatus::Read);
    assert_eq!(stored.provider_id.as_deref(), Some("SM1"));
    assert_eq!(stored.media[0].status, MediaStatus::Stored);
    let mut statuses = Vec::new();
    let mut updated = 0;
    // Events follow the answers; wait for the three expected, then for stragglers briefly.
    loop {
        let wait = if statuses.len() + updated >= 3 { Duration::from_millis(200) } else { Duration::from_secs(5) };
        let Ok(Some(env)) = tokio::time::timeout(wait, rx.recv()).await else { break };
        match &env.event {
            ConversationEvent::MessageStatus(m) => statuses.push(m.status),
            ConversationEvent::MessageUpdated(_) => updated += 1,
            // The append's own events (its message, the first agent reply) may follow its answer.
            ConversationEvent::MessageNew(m) if m.id == id => {}
            ConversationEvent::ConversationUpdated(c) if c.first_agent_reply_at.is_some() => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    // The late "sent" changed nothing and published nothing.
    assert_eq!(statuses, vec![MessageStatus::Delivered, MessageStatus::Read]);
    assert_eq!(updated, 1);
    // A change to an unknown message is a typed error.
    let err = f.registry.call(conv, MessageChange::new(Uuid::new_v4())).await.unwrap_err();
    assert!(matches!(err, ConversationError::MessageNotFound));
}

#[actix::test]
async fn no_bot_message_is_stored_after_an_escalation_that_raced_it() {
    use utalk_actors::conversation::lifecycle::EscalateRequest;
    use utalk_storage::model::{bot, EscalationReason};
    let f = fixture(Duration::from_secs(60));
    let (mut refused, mut answered) = (0, 0);
    for round in 0..200u64 {
        let conv = new_conversation(&f).await;
        f.registry.call(conv, text(Uuid::new_v4(), "hola")).await.unwrap();
        let bot_reply = AppendRequest {
            author: Author { kind: AuthorType::Bot, id: None },
            direction: Direction::Outbound,
            status: MessageStatus::Sent,
            ..text(Uuid::new_v4(), "¡Hola!")
        };
        let escalate = ConversationChange {
            escalate: Some(EscalateRequest { reason: EscalationReason::Manual, detail: None, by: None, handoff: None }),
            ..ConversationChange::default()
        };
        let (r1, r2) = (f.registry.clone(), f.registry.clone());
        // Alternate which is sent first; both are in the mailbox before either is handled.
        let (a, e) = if round % 2 == 0 {
            let a = actix::spawn(async move { r1.call(conv, bot_reply).await });
            let e = actix::spawn(async move { r2.call(conv, escalate).await });
            (a, e)
        } else {
            let e = actix::spawn(async move { r2.call(conv, escalate).await });
            let a = actix::spawn(async move { r1.call(conv, bot_reply).await });
            (a, e)
        };
        let escalated = e.await.unwrap().unwrap();
        assert_eq!(escalated.status, ConversationStatus::Escalated);
        assert!(!escalated.bot_enabled);
        match a.await.unwrap() {
            Ok(m) => {
                answered += 1;
                let record = bot::escalations_since(&f.db, Timestamp(0), 10_000)
                    .unwrap()
                    .into_iter()
                    .find(|x| x.conversation_id == conv)
                    .expect("escalation record");
                assert!(
                    m.message().seq <= record.after_seq,
                    "round {round}: bot seq {} after escalation at {}",
                    m.message().seq,
                    record.after_seq
                );
            }
            Err(ConversationError::BotPaused) => refused += 1,
            Err(other) => panic!("round {round}: {other:?}"),
        }
        let stored = message::after(&f.db, conv, 0, 10).unwrap();
        assert!(stored.len() <= 2);
    }
    // Both orders happened: the check above was exercised both ways.
    assert!(refused > 0 && answered > 0, "refused {refused}, answered {answered}");
}

#[actix::test]
async fn each_hour_of_a_conversation_is_indexed_once_for_the_kpis_across_restarts() {
    use utalk_storage::keys::KeyReader;
    use utalk_storage::model::kpi::{self, Dimension};
    use utalk_storage::Map;
    let f = fixture(Duration::from_millis(100));
    let conv = new_conversation(&f).await;
    for i in 0..4 {
        f.registry.call(conv, text(Uuid::new_v4(), &format!("m{i}"))).await.unwrap();
    }
    // The actor retires; its successor must not overwrite the hour's first seq.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(f.registry.stats().active, 0);
    f.registry.call(conv, text(Uuid::new_v4(), "after")).await.unwrap();

    let mut mine = Vec::new();
    for (k, v) in f.db.scan_raw(Map::HourconvSeq, &[], &[], 100).unwrap() {
        let mut r = KeyReader::new(&k);
        let (hour, c) = (r.i64().unwrap(), r.uuid().unwrap());
        if c == conv {
            mine.push((hour, u64::from_be_bytes(v.as_slice().try_into().unwrap())));
        }
    }
    let first = message::get(&f.db, conv, 1).unwrap().unwrap();
    assert_eq!(mine[0], (kpi::Granularity::Hour.bucket_start(first.created_at), 1), "{mine:?}");
    assert!(mine.len() <= 2, "one entry per hour, not per message (an hour may turn during the test): {mine:?}");
    let counted: u64 = mine
        .iter()
        .map(|(h, _)| kpi::compute_hour(&f.db, *h, &utalk_storage::BusinessHours::always_open()).unwrap()[&Dimension::All].messages)
        .sum();
    assert_eq!(counted, 5);
}
