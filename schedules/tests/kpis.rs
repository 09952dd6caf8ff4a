//! KPI rollups over a fixed set of conversations in a real RocksDB, checked
//! against figures worked out by hand (in the comments beside each check).

use std::collections::BTreeMap;
use utalk_actors::durability::Journal;
use utalk_actors::{Durability, StoreWriter};
use utalk_schedules::daily_report;
use utalk_schedules::kpi_rollup::roll_up;
use utalk_storage::model::kpi::{self, Dimension, Granularity, KpiRow, DAY_MS, HOUR_MS};
use utalk_storage::model::{
    bot, conversation, message, Author, AuthorType, BotOutcome, BotRun, Channel, Conversation, ConversationStatus, Customer, Direction,
    Escalation, EscalationReason, Message, MessageFormat, MessageStatus, RatingKind, RatingSource,
};
use utalk_storage::{Batch, Db, DbOptions, Timestamp};
use uuid::Uuid;

/// 2026-11-02T00:00:00Z.
const DAY: i64 = 1_793_577_600_000;
const H10: i64 = DAY + 10 * HOUR_MS;
const H11: i64 = DAY + 11 * HOUR_MS;
const MIN: i64 = 60_000;

struct Fixture {
    _dir: tempfile::TempDir,
    db: Db,
    writer: StoreWriter,
    journal: Journal,
    hours: std::sync::Arc<utalk_storage::BusinessHours>,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), &DbOptions::default()).unwrap();
    let writer = StoreWriter::start(db.clone(), Durability::Sync).unwrap();
    let journal = Journal::standalone(&db, writer.clone(), "test");
    Fixture { _dir: dir, db, writer, journal, hours: Default::default() }
}

/// What happens to a conversation of the fixture.
struct Story {
    channel: Channel,
    /// Minutes after the hour it starts in.
    at: i64,
    status: ConversationStatus,
    fcr: Option<bool>,
    /// Minutes from start to escalation.
    escalated_after: Option<i64>,
    /// Agent and seconds from escalation to the agent's first reply.
    agent: Option<(Uuid, i64)>,
}

fn conversation_at(ms: i64, s: &Story) -> Conversation {
    let mut c = Conversation::new(s.channel, Customer::default(), None);
    let ts = uuid::Timestamp::from_unix(uuid::NoContext, (ms / 1000) as u64, ((ms % 1000) * 1_000_000) as u32);
    c.id = Uuid::new_v7(ts);
    c.created_at = Timestamp(ms);
    c.status = s.status;
    c.first_contact_resolution = s.fcr;
    c.escalated_at = s.escalated_after.map(|m| Timestamp(ms + m * MIN));
    if let Some((agent, secs)) = s.agent {
        c.assignee_id = Some(agent);
        c.first_agent_reply_at = c.escalated_at.map(|e| Timestamp(e.millis() + secs * 1000));
    }
    c
}

fn msg(c: &Conversation, seq: u64, at: i64, direction: Direction, status: MessageStatus, media: bool) -> Message {
    let author = Author { kind: if direction == Direction::Inbound { AuthorType::Customer } else { AuthorType::Bot }, id: None };
    Message {
        id: Uuid::new_v4(),
        media_id: media.then(Uuid::new_v4),
        ..Message::text(c.id, seq, direction, author, status, "x", Timestamp(at))
    }
}

fn run(c: &Conversation, at: i64, latency_ms: u64, replied: bool) -> BotRun {
    BotRun {
        id: Uuid::now_v7(),
        conversation_id: c.id,
        message_id: Uuid::new_v4(),
        reply_id: replied.then(Uuid::new_v4),
        received_at: Timestamp(at - latency_ms as i64),
        finished_at: Timestamp(at),
        latency_ms,
        intent: "greeting".into(),
        confidence: 0.9,
        provider: "rules".into(),
        outcome: if replied { BotOutcome::Answered } else { BotOutcome::Paused },
        escalation_reason: None,
    }
}

fn rate(b: &mut Batch, c: &Conversation, kind: RatingKind, score: u8, at: i64) {
    let r = utalk_storage::model::Rating {
        conversation_id: c.id,
        kind,
        score,
        source: RatingSource::Api,
        at: Timestamp(at),
        agent_id: c.assignee_id,
    };
    bot::put_rating(b, &r).unwrap();
}

fn close(a: f64, b: Option<f64>) -> bool {
    b.is_some_and(|b| (a - b).abs() < 1e-9)
}

fn row(db: &Db, g: Granularity, start: i64, dim: Dimension) -> KpiRow {
    let s = kpi::series(db, g, start, start + 1, dim).unwrap().remove(&start).unwrap_or_default();
    KpiRow::new(start, g, &s)
}

/// Writes the fixture; returns the conversations c1..c6 and agents A and B.
async fn feed(f: &Fixture) -> (Vec<Conversation>, Uuid, Uuid) {
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    use ConversationStatus::*;
    let stories = [
        // c1: WhatsApp, bot only, closed at first contact.
        (H10, Story { channel: Channel::Whatsapp, at: 1, status: Closed, fcr: Some(true), escalated_after: None, agent: None }),
        // c2: WhatsApp, escalated after 6 min, A answers 20 s later, closed at first contact.
        (H10, Story { channel: Channel::Whatsapp, at: 2, status: Closed, fcr: Some(true), escalated_after: Some(6), agent: Some((a, 20)) }),
        // c3: web, escalated after 2 min, B answers 50 s later, still with people.
        (H10, Story { channel: Channel::Web, at: 3, status: Escalated, fcr: None, escalated_after: Some(2), agent: Some((b, 50)) }),
        // c4: web, open, nothing else.
        (H10, Story { channel: Channel::Web, at: 4, status: Open, fcr: None, escalated_after: None, agent: None }),
        // c5: WhatsApp, escalated after 10 min, A answers 10 s later, closed but reopened before (not first contact).
        (
            H10,
            Story { channel: Channel::Whatsapp, at: 5, status: Closed, fcr: Some(false), escalated_after: Some(10), agent: Some((a, 10)) },
        ),
        // c6: web in the next hour, B's, closed at first contact, never escalated.
        (H11, Story { channel: Channel::Web, at: 1, status: Closed, fcr: Some(true), escalated_after: None, agent: None }),
    ];
    let mut convs = Vec::new();
    let mut batch = Batch::new();
    for (hour, s) in &stories {
        let mut c = conversation_at(hour + s.at * MIN, s);
        if convs.len() == 5 {
            c.assignee_id = Some(b);
        }
        batch.extend(conversation::put_batch(None, &c).unwrap());
        if let Some(after) = s.escalated_after {
            let e = Escalation {
                id: Uuid::now_v7(),
                conversation_id: c.id,
                reason: EscalationReason::Keyword,
                detail: None,
                by: None,
                conversation_created_at: c.created_at,
                escalated_at: Timestamp(c.created_at.millis() + after * MIN),
                after_seq: 1,
            };
            bot::put_escalation(&mut batch, &e).unwrap();
        }
        convs.push(c);
    }
    use Direction::{Inbound as In, Outbound as Out};
    use MessageStatus::*;
    let t = |c: &Conversation, s: i64| c.created_at.millis() + s * 1000;
    let (c1, c2, c3, c4, c6) = (&convs[0], &convs[1], &convs[2], &convs[3], &convs[5]);
    let messages = [
        msg(c1, 1, t(c1, 1), In, Received, false),
        msg(c1, 2, t(c1, 2), Out, Sent, false),
        msg(c1, 3, t(c1, 3), In, Received, true),
        msg(c1, 4, t(c1, 4), Out, Delivered, false),
        msg(c2, 1, t(c2, 1), In, Received, false),
        msg(c2, 2, t(c2, 2), Out, Failed, false),
        msg(c2, 3, t(c2, 3), Out, Sent, false),
        msg(c3, 1, t(c3, 1), In, Received, true),
        msg(c3, 2, t(c3, 2), Out, Undelivered, false),
        msg(c4, 1, t(c4, 1), In, Received, false),
        msg(c6, 1, t(c6, 1), In, Received, false),
        msg(c6, 2, t(c6, 2), Out, Sent, false),
    ];
    let mut indexed = std::collections::HashMap::new();
    for m in &messages {
        batch.extend(message::append_batch(m, MessageFormat::Compact).unwrap());
        // As a conversation's actor does: the hour index once per conversation and hour.
        let known = indexed.get(&m.conversation_id).copied().flatten();
        let hour = kpi::index_messages(&f.db, &mut batch, std::slice::from_ref(m), known).unwrap();
        indexed.insert(m.conversation_id, hour);
    }
    for r in [
        run(c1, t(c1, 2), 1_000, true),
        run(c1, t(c1, 4), 1_500, true),
        run(c3, t(c3, 2), 3_500, true),
        // Stored nothing (paused before the answer): not a bot response.
        run(c3, t(c3, 3), 9_999, false),
        run(c6, t(c6, 2), 500, true),
    ] {
        bot::put_run(&mut batch, &r).unwrap();
    }
    let r10 = H10 + 40 * MIN;
    let c5 = &convs[4];
    rate(&mut batch, c1, RatingKind::Csat, 5, r10);
    rate(&mut batch, c2, RatingKind::Csat, 4, r10 + 1);
    rate(&mut batch, c5, RatingKind::Csat, 2, r10 + 2);
    rate(&mut batch, c1, RatingKind::Nps, 10, r10 + 3);
    rate(&mut batch, c2, RatingKind::Nps, 9, r10 + 4);
    rate(&mut batch, c5, RatingKind::Nps, 3, r10 + 5);
    rate(&mut batch, c6, RatingKind::Csat, 5, H11 + 40 * MIN);
    rate(&mut batch, c6, RatingKind::Nps, 9, H11 + 41 * MIN);
    f.writer.commit(batch).await.unwrap();
    (convs, a, b)
}

#[actix::test]
async fn every_kpi_matches_the_figures_worked_out_by_hand() {
    let f = fixture();
    let (_, a, b) = feed(&f).await;
    // The first rollup of a database covers everything from its oldest record.
    let rolled = roll_up(&f.db, &f.journal, &f.hours).await.unwrap();
    assert!(rolled.hours >= 24 && rolled.days >= 1, "{rolled:?}");
    assert!(kpi::dirty_hours(&f.db, 10).unwrap().is_empty() && kpi::claimed_hours(&f.db, 10).unwrap().is_empty());

    let h10 = row(&f.db, Granularity::Hour, H10, Dimension::All);
    assert_eq!((h10.conversations, h10.messages), (5, 10));
    // Bot replies 1000, 1500, 3500 ms (the paused run stored nothing): mean 2000.
    assert!(close(2_000.0, h10.bot_response_time_ms), "{h10:?}");
    // c1 and c2 closed at first contact, of 5 started.
    assert!(close(0.4, h10.first_contact_resolution));
    // Waits 20 s, 50 s, 10 s.
    assert!(close(80_000.0 / 3.0, h10.agent_speed_of_answer_ms));
    // c2, c3, c5 escalated, of 5.
    assert!(close(0.6, h10.escalation_rate));
    // 6, 2 and 10 minutes: mean 6 min.
    assert!(close(360_000.0, h10.time_to_escalation_ms));
    // Outbound: c1 ×2, c2 ×2, c3 ×1; failed: c2's failed and c3's undelivered.
    assert!(close(0.4, h10.delivery_failure_rate));
    // Media on c1's third and c3's first of 10.
    assert!(close(0.2, h10.media_message_rate));
    // CSAT 5, 4, 2: two of three positive.
    assert!(close(2.0 / 3.0, h10.csat));
    // NPS 10, 9, 3: two promoters, one detractor, of three.
    assert!(close(100.0 / 3.0, h10.nps));

    let day = row(&f.db, Granularity::Day, DAY, Dimension::All);
    assert_eq!((day.conversations, day.messages), (6, 12));
    assert!(close(1_625.0, day.bot_response_time_ms), "(1000+1500+3500+500)/4: {day:?}");
    assert!(close(0.5, day.first_contact_resolution), "c1, c2, c6 of 6");
    assert!(close(80_000.0 / 3.0, day.agent_speed_of_answer_ms));
    assert!(close(0.5, day.escalation_rate), "3 of 6");
    assert!(close(360_000.0, day.time_to_escalation_ms));
    assert!(close(2.0 / 6.0, day.delivery_failure_rate), "2 of 6 outbound");
    assert!(close(2.0 / 12.0, day.media_message_rate));
    assert!(close(0.75, day.csat), "5, 4, 2, 5");
    assert!(close(50.0, day.nps), "10, 9, 3, 9: (3 − 1) / 4");

    // Against the targets: bot 2000 ms is not under 2 s; NPS 50 is not over 50.
    let verdicts: BTreeMap<&str, bool> = kpi::KPIS.iter().filter_map(|k| (k.value)(&day).map(|v| (k.field, k.meets(v)))).collect();
    let expected: BTreeMap<&str, bool> = [
        ("botResponseTimeMs", true),
        ("firstContactResolution", false),
        ("agentSpeedOfAnswerMs", true),
        ("escalationRate", false),
        ("timeToEscalationMs", true),
        ("deliveryFailureRate", false),
        ("mediaMessageRate", true),
        ("csat", false),
        ("nps", false),
    ]
    .into_iter()
    .collect();
    assert_eq!(verdicts, expected);
    assert_eq!(kpi::KPIS.iter().filter(|k| (k.value)(&h10).is_some_and(|v| k.meets(v))).count(), 3, "ASA, time to escalation, media");

    // By channel: WhatsApp holds c1, c2, c5.
    let wa = row(&f.db, Granularity::Hour, H10, Dimension::Channel(Channel::Whatsapp));
    assert_eq!((wa.conversations, wa.messages), (3, 7));
    assert!(close(1_250.0, wa.bot_response_time_ms));
    assert!(close(2.0 / 3.0, wa.first_contact_resolution));
    assert!(close(15_000.0, wa.agent_speed_of_answer_ms));
    assert!(close(480_000.0, wa.time_to_escalation_ms));
    assert!(close(0.25, wa.delivery_failure_rate));
    assert!(close(1.0 / 7.0, wa.media_message_rate));
    let web = row(&f.db, Granularity::Day, DAY, Dimension::Channel(Channel::Web));
    assert_eq!((web.conversations, web.messages), (3, 5));
    assert!(close(2_000.0, web.bot_response_time_ms), "3500 and 500");

    // By agent: A has c2 and c5; B has c3 and c6.
    let agent_a = row(&f.db, Granularity::Day, DAY, Dimension::Agent(a));
    assert_eq!(agent_a.conversations, 2);
    assert!(close(0.5, agent_a.first_contact_resolution));
    assert!(close(15_000.0, agent_a.agent_speed_of_answer_ms));
    assert!(close(0.5, agent_a.csat));
    assert!(close(0.0, agent_a.nps), "9 and 3");
    assert_eq!(agent_a.messages, 0);
    assert_eq!(agent_a.media_message_rate, None, "messages are not counted per agent");
    let agent_b = row(&f.db, Granularity::Day, DAY, Dimension::Agent(b));
    assert!(close(50_000.0, agent_b.agent_speed_of_answer_ms));
    assert!(close(1.0, agent_b.csat));
    assert!(close(100.0, agent_b.nps));

    // The daily report shows the same verdicts.
    let out = tempfile::tempdir().unwrap();
    let (path, figures) = daily_report::make(&f.db, out.path(), DAY + 5 * HOUR_MS).unwrap();
    assert_eq!(path.file_name().unwrap(), "daily-2026-11-02.html");
    assert_eq!(figures.total, day);
    let html = std::fs::read_to_string(&path).unwrap();
    for (field, met) in &verdicts {
        let status = if *met { "met" } else { "missed" };
        assert!(html.contains(&format!("data-kpi=\"{field}\" data-status=\"{status}\"")), "{field} is {status} on the page");
    }
    assert!(html.contains("4 of 9 measured KPIs meet their targets · 6 conversations · 12 messages"));
    assert!(html.contains("<td>whatsapp</td><td>3</td><td>7</td>"), "the WhatsApp row");

    // An hour with nothing has no rollup: every KPI is null.
    let empty = row(&f.db, Granularity::Hour, DAY, Dimension::All);
    assert_eq!((empty.conversations, empty.csat, empty.nps, empty.bot_response_time_ms), (0, None, None, None));
}

#[actix::test]
async fn late_data_re_rolls_only_the_buckets_it_falls_in() {
    let f = fixture();
    let (convs, _, _) = feed(&f).await;
    roll_up(&f.db, &f.journal, &f.hours).await.unwrap();
    let h11_before = kpi::bucket(&f.db, Granularity::Hour, H11).unwrap();

    // A day later: c1's "sent" bot message is reported failed, and c4 is closed at first contact.
    let mut late = message::get(&f.db, convs[0].id, 2).unwrap().unwrap();
    late.status = MessageStatus::Failed;
    let mut batch = message::replace_batch(&late, MessageFormat::Compact).unwrap();
    let mut c4 = convs[3].clone();
    c4.status = ConversationStatus::Closed;
    c4.first_contact_resolution = Some(true);
    batch.extend(conversation::put_batch(Some(&convs[3]), &c4).unwrap());
    f.writer.commit(batch).await.unwrap();
    assert_eq!(kpi::dirty_hours(&f.db, 10).unwrap(), vec![H10]);

    // 10:00 and its day, besides the hour or two around now that every rollup takes.
    let rolled = roll_up(&f.db, &f.journal, &f.hours).await.unwrap();
    assert!(rolled.hours <= 3 && rolled.days <= 3, "{rolled:?}");
    let h10 = row(&f.db, Granularity::Hour, H10, Dimension::All);
    assert!(close(0.6, h10.delivery_failure_rate), "3 of 5 now");
    assert!(close(0.6, h10.first_contact_resolution), "c1, c2, c4 of 5 now");
    let day = row(&f.db, Granularity::Day, DAY, Dimension::All);
    assert!(close(0.5, day.delivery_failure_rate), "3 of 6");
    assert!(close(4.0 / 6.0, day.first_contact_resolution));
    assert_eq!(kpi::bucket(&f.db, Granularity::Hour, H11).unwrap(), h11_before, "11:00 was not touched");

    // Nothing new: the stored figures stay as they are.
    let before = kpi::bucket(&f.db, Granularity::Day, DAY).unwrap();
    roll_up(&f.db, &f.journal, &f.hours).await.unwrap();
    assert_eq!(kpi::bucket(&f.db, Granularity::Day, DAY).unwrap(), before);

    // The customer writes again in c2 (escalated, answered by A, closed): a reopen
    // starts a new contact, and the first contact's figures stay as they were.
    let c2 = conversation::get(&f.db, convs[1].id).unwrap().unwrap();
    let fx = utalk_actors::conversation::lifecycle::on_append(&c2, AuthorType::Customer, Some("otra pregunta"), Timestamp(H11 + 30 * MIN))
        .unwrap();
    let reopened = fx.conversation.unwrap();
    assert_eq!((reopened.status, reopened.escalated_at, reopened.assignee_id), (ConversationStatus::Open, None, None));
    f.writer.commit(conversation::put_batch(Some(&c2), &reopened).unwrap()).await.unwrap();
    roll_up(&f.db, &f.journal, &f.hours).await.unwrap();
    let h10_after = row(&f.db, Granularity::Hour, H10, Dimension::All);
    assert!(close(0.6, h10_after.escalation_rate), "c2 still counts as escalated: {h10_after:?}");
    assert!(close(80_000.0 / 3.0, h10_after.agent_speed_of_answer_ms), "its wait still counts");
    assert!(close(0.4, h10_after.first_contact_resolution), "open again, so not resolved: c1 and c4 of 5");
    let a = convs[1].assignee_id.unwrap();
    assert_eq!(row(&f.db, Granularity::Hour, H10, Dimension::Agent(a)).conversations, 2, "A keeps c2");
}

#[actix::test]
async fn rollups_started_together_run_one_after_the_other() {
    let f = fixture();
    feed(&f).await;
    let (a, b) = futures_util::future::join(roll_up(&f.db, &f.journal, &f.hours), roll_up(&f.db, &f.journal, &f.hours)).await;
    let (a, b) = (a.unwrap(), b.unwrap());
    // The second waited for the first, and took only the hours around now.
    assert!(a.hours.min(b.hours) <= 2 && a.hours.max(b.hours) >= 24, "{a:?} {b:?}");
    assert_eq!(row(&f.db, Granularity::Day, DAY, Dimension::All).conversations, 6);
    assert!(kpi::rolled_up_at(&f.db).unwrap().is_some());
}

#[actix::test]
async fn hours_claimed_by_a_run_that_stopped_are_finished_by_the_next() {
    let f = fixture();
    feed(&f).await;
    // A run claimed both hours and stopped before writing anything.
    let dirty = kpi::dirty_hours(&f.db, 10).unwrap();
    f.writer.commit(kpi::claim_batch(&dirty)).await.unwrap();
    assert!(kpi::dirty_hours(&f.db, 10).unwrap().is_empty());
    assert_eq!(kpi::claimed_hours(&f.db, 10).unwrap(), vec![H10, H11]);

    let rolled = roll_up(&f.db, &f.journal, &f.hours).await.unwrap();
    assert!(rolled.hours >= 2, "{rolled:?}");
    assert!(kpi::claimed_hours(&f.db, 10).unwrap().is_empty());
    assert_eq!(row(&f.db, Granularity::Day, DAY, Dimension::All).conversations, 6);
    assert_eq!(kpi::series(&f.db, Granularity::Hour, DAY, DAY + DAY_MS, Dimension::All).unwrap().len(), 2);
}

#[actix::test]
async fn agent_speed_of_answer_counts_only_business_time() {
    let f = fixture();
    feed(&f).await;
    // Monday 2026-11-02 opens at 10:07:30 UTC. c3 waited 10:05:00-10:05:50,
    // before the opening: no business time. c2 (10:08:00, 20 s) and c5
    // (10:15:00, 10 s) waited while open.
    let open = vec!["10:07:30-24:00".to_string()];
    let none = Vec::new();
    let hours = utalk_storage::BusinessHours::new("UTC", [&open, &none, &none, &none, &none, &none, &none], &[]).unwrap();
    let sums = kpi::compute_hour(&f.db, H10, &hours).unwrap();
    let all = &sums[&Dimension::All];
    assert_eq!((all.agent_answers, all.agent_answer_ms), (3, 30_000), "{all:?}");
    assert!(close(10_000.0, KpiRow::new(H10, Granularity::Hour, all).agent_speed_of_answer_ms));
    // Wall-clock time when always open, as before business hours.
    let always = kpi::compute_hour(&f.db, H10, &f.hours).unwrap();
    assert_eq!(always[&Dimension::All].agent_answer_ms, 80_000);
    // Nothing else changes: the time to escalation stays wall-clock.
    assert_eq!(all.escalation_ms, always[&Dimension::All].escalation_ms);
}
