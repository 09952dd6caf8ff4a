//! What a KPI rollup costs: recomputing one hour that holds 100,000 messages
//! in 2,000 conversations (with bot runs, escalations and ratings), and the
//! day built from its hours. The hour is what the `kpi_rollup` job redoes for
//! the current hour on every run under constant traffic.
//!
//! `cargo bench --bench kpi_rollup` (set `UTALK_BENCH_QUICK=1` for a short run).

#[path = "common/bench_dir.rs"]
mod bench_dir;

use criterion::Criterion;
use std::collections::BTreeMap;
use std::time::Duration;
use utalk_storage::model::kpi::{self, HOUR_MS};
use utalk_storage::model::{
    bot, conversation, message, Author, AuthorType, BotOutcome, BotRun, Channel, Conversation, Customer, Direction, Message, MessageFormat,
    MessageStatus,
};
use utalk_storage::{Db, DbOptions, Timestamp};
use uuid::Uuid;

const CONVERSATIONS: u64 = 2_000;
const PER_CONVERSATION: u64 = 50;
/// 2026-11-02T10:00:00Z.
const HOUR: i64 = 1_793_613_600_000;

fn fill(db: &Db) {
    for c in 0..CONVERSATIONS {
        let at = HOUR + (c as i64 * HOUR_MS / CONVERSATIONS as i64);
        let mut conv = Conversation::new(if c % 3 == 0 { Channel::Web } else { Channel::Whatsapp }, Customer::default(), None);
        conv.id = Uuid::new_v7(uuid::Timestamp::from_unix(uuid::NoContext, (at / 1000) as u64, 0));
        conv.created_at = Timestamp(at);
        let mut b = conversation::put_batch(None, &conv).expect("encode");
        let mut known = None;
        for seq in 1..=PER_CONVERSATION {
            let inbound = seq % 2 == 1;
            let direction = if inbound { Direction::Inbound } else { Direction::Outbound };
            let author = Author { kind: if inbound { AuthorType::Customer } else { AuthorType::Bot }, id: None };
            let status = if inbound { MessageStatus::Received } else { MessageStatus::Delivered };
            let m = Message {
                id: Uuid::new_v4(),
                media_id: (seq % 10 == 0).then(Uuid::new_v4),
                ..Message::text(conv.id, seq, direction, author, status, &"x".repeat(200), Timestamp(at + seq as i64))
            };
            b.extend(message::append_batch(&m, MessageFormat::Compact).expect("encode"));
            known = kpi::index_messages(db, &mut b, std::slice::from_ref(&m), known).expect("index");
            if !inbound {
                let run = BotRun {
                    id: Uuid::now_v7(),
                    conversation_id: conv.id,
                    message_id: Uuid::new_v4(),
                    reply_id: Some(m.id),
                    received_at: Timestamp(at),
                    finished_at: Timestamp(at + seq as i64),
                    latency_ms: 900,
                    intent: "faq".into(),
                    confidence: 0.8,
                    provider: "rules".into(),
                    outcome: BotOutcome::Answered,
                    escalation_reason: None,
                };
                bot::put_run(&mut b, &run).expect("encode");
            }
        }
        db.write_group([&b], false).expect("write");
    }
}

fn main() {
    let quick = std::env::var("UTALK_BENCH_QUICK").is_ok();
    let dir = bench_dir::temp_dir();
    let db = Db::open(dir.path(), &DbOptions::default()).expect("open");
    fill(&db);
    let rows = kpi::compute_hour(&db, HOUR, &utalk_storage::BusinessHours::always_open()).expect("rollup");
    let all = &rows[&kpi::Dimension::All];
    assert_eq!(all.messages, CONVERSATIONS * PER_CONVERSATION);
    assert_eq!(all.conversations, CONVERSATIONS);

    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(if quick { 1 } else { 3 }))
        .measurement_time(Duration::from_secs(if quick { 5 } else { 20 }));
    c.bench_function("kpi_rollup/hour_100k_messages", |b| {
        b.iter(|| kpi::compute_hour(&db, HOUR, &utalk_storage::BusinessHours::always_open()).expect("rollup"))
    });
    let fresh = BTreeMap::from([(HOUR, rows)]);
    let day = HOUR - HOUR % kpi::DAY_MS;
    c.bench_function("kpi_rollup/day_from_hours", |b| b.iter(|| kpi::compute_day(&db, day, &fresh).expect("day")));
    c.final_summary();
}
