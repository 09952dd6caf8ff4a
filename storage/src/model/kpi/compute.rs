//! Computing a bucket from the stored records: an hour from its
//! conversations, messages, bot runs, escalations and ratings; a day from
//! its hours; and the backfill of the time index.

use super::*;
use crate::batch::Batch;
use crate::codec::Record;
use crate::db::Db;
use crate::error::StoreError;
use crate::hours::BusinessHours;
use crate::keys::{Key, KeyReader};
use crate::maps::Map;
use crate::model::bot::{BotRun, Escalation, Rating};
use crate::model::conversation::{Channel, Conversation, ConversationStatus, FirstContact, RatingKind};
use crate::model::message::{Direction, Message};
use crate::time::Timestamp;
use std::collections::{BTreeMap, HashMap};
use uuid::Uuid;

#[derive(Clone, Copy)]
struct ConvFacts {
    channel: Channel,
    assignee: Option<Uuid>,
}

struct Rollup<'a> {
    db: &'a Db,
    convs: HashMap<Uuid, Option<ConvFacts>>,
    rows: BTreeMap<Dimension, KpiSums>,
}

impl<'a> Rollup<'a> {
    fn facts(&mut self, id: Uuid) -> Result<Option<ConvFacts>, StoreError> {
        if let Some(f) = self.convs.get(&id) {
            return Ok(*f);
        }
        let f = crate::model::conversation::get(self.db, id)?.map(|c| ConvFacts { channel: c.channel, assignee: c.assignee_id });
        self.convs.insert(id, f);
        Ok(f)
    }

    /// Applies `f` to the overall row, the channel's and (when one is given) the agent's.
    fn count(&mut self, facts: Option<ConvFacts>, agent: Option<Uuid>, f: impl Fn(&mut KpiSums)) {
        f(self.rows.entry(Dimension::All).or_default());
        if let Some(c) = facts {
            f(self.rows.entry(Dimension::Channel(c.channel)).or_default());
        }
        if let Some(a) = agent {
            f(self.rows.entry(Dimension::Agent(a)).or_default());
        }
    }
}

fn ms_between(from: Timestamp, to: Timestamp) -> Option<u64> {
    u64::try_from(to.millis() - from.millis()).ok()
}

/// The smallest conversation key created at or after `ms` (ids are UUIDv7: time first).
fn conversation_key_at(ms: i64) -> Vec<u8> {
    let mut k = vec![0u8; 16];
    k[..6].copy_from_slice(&(ms.max(0) as u64).to_be_bytes()[2..]);
    k
}

/// Recomputes one hour from the stored records.
///
/// Attribution: conversation KPIs (volume, first contact resolution,
/// escalation rate, agent speed of answer) count in the hour the
/// conversation started; messages in the hour they were stored; bot replies
/// when the run finished; escalations when they happened; ratings when given.
///
/// The agent speed of answer counts only the open time of `hours` (all of it
/// when always open): a customer waiting overnight for the opening is not an
/// agent being slow.
pub fn compute_hour(db: &Db, hour: i64, hours: &BusinessHours) -> Result<BTreeMap<Dimension, KpiSums>, StoreError> {
    let end = hour + HOUR_MS;
    let mut r = Rollup { db, convs: HashMap::new(), rows: BTreeMap::new() };

    // Conversations: ids and creation stamps are taken together, a minute of slack is plenty.
    let mut cursor = conversation_key_at(hour - 60_000);
    'convs: loop {
        let chunk = db.scan_raw(Map::Conversations, &[], &cursor, 512)?;
        let Some((last, _)) = chunk.last() else { break };
        cursor = Key::new().bytes(last).u8(0).into_bytes();
        for (k, v) in chunk {
            let Some(c) = readable::<Conversation>(Map::Conversations, &k, &v) else { continue };
            if c.created_at.millis() >= end + 60_000 {
                break 'convs;
            }
            if c.created_at.millis() < hour || c.created_at.millis() >= end {
                continue;
            }
            let facts = ConvFacts { channel: c.channel, assignee: c.assignee_id };
            r.convs.insert(c.id, Some(facts));
            // Conversation KPIs describe the first contact; a reopen keeps its figures.
            let first = FirstContact::of(&c);
            let fcr = c.status == ConversationStatus::Closed && c.first_contact_resolution == Some(true);
            let answer_wait = first.answer_wait_in(hours);
            r.count(Some(facts), first.agent_id, |s| {
                s.conversations += 1;
                s.resolved_first_contact += u64::from(fcr);
                s.escalated += u64::from(first.escalated);
                if let Some(ms) = answer_wait {
                    s.agent_answers += 1;
                    s.agent_answer_ms += ms;
                }
            });
        }
    }

    // Messages: the conversations with messages this hour, each from its first seq in it.
    let mut cursor = Key::new().i64(hour).into_bytes();
    'convs_of_hour: loop {
        let chunk = db.scan_raw(Map::HourconvSeq, &[], &cursor, 1024)?;
        let Some((last, _)) = chunk.last() else { break };
        cursor = Key::new().bytes(last).u8(0).into_bytes();
        for (k, v) in chunk {
            let mut kr = KeyReader::new(&k);
            if kr.i64()? >= end {
                break 'convs_of_hour;
            }
            let conv = kr.uuid()?;
            let first = <[u8; 8]>::try_from(v.as_slice()).map(u64::from_be_bytes).unwrap_or(1);
            let facts = r.facts(conv)?;
            let prefix = Key::new().uuid(conv).into_bytes();
            let mut from = crate::model::message::key(conv, first).into_bytes();
            'messages: loop {
                let page = db.scan_raw(Map::Messages, &prefix, &from, 256)?;
                let Some((last, _)) = page.last() else { break };
                from = Key::new().bytes(last).u8(0).into_bytes();
                for (mk, mv) in page {
                    let Some(m) = readable::<Message>(Map::Messages, &mk, &mv) else { continue };
                    // Seqs follow time within a conversation: the first message past the hour ends it.
                    if m.created_at.millis() >= end {
                        break 'messages;
                    }
                    if m.created_at.millis() < hour {
                        continue;
                    }
                    let media = m.media_id.is_some() || !m.media.is_empty();
                    let outbound = m.direction == Direction::Outbound;
                    let failed = m.status.is_failure();
                    r.count(facts, None, |s| {
                        s.messages += 1;
                        s.media_messages += u64::from(media);
                        if outbound {
                            s.outbound += 1;
                            s.outbound_failed += u64::from(failed);
                        }
                    });
                }
            }
        }
    }

    let from = Key::new().i64(hour).into_bytes();
    for (_, run) in scan_until::<BotRun>(db, Map::BotRuns, &from, end)? {
        if run.reply_id.is_some() {
            let facts = r.facts(run.conversation_id)?;
            r.count(facts, None, |s| {
                s.bot_replies += 1;
                s.bot_reply_ms += run.latency_ms;
            });
        }
    }
    for (_, e) in scan_until::<Escalation>(db, Map::Escalations, &from, end)? {
        let facts = r.facts(e.conversation_id)?;
        let ms = ms_between(e.conversation_created_at, e.escalated_at).unwrap_or(0);
        r.count(facts, None, |s| {
            s.escalations += 1;
            s.escalation_ms += ms;
        });
    }
    for (_, rating) in scan_until::<Rating>(db, Map::Ratings, &from, end)? {
        let facts = r.facts(rating.conversation_id)?;
        let score = rating.score;
        // The agent of the conversation when it was rated (older ratings: the one assigned now).
        let agent = rating.agent_id.or(facts.and_then(|f| f.assignee));
        r.count(facts, agent, |s| match rating.kind {
            RatingKind::Csat => {
                s.csat_answers += 1;
                s.csat_positive += u64::from(score >= 4);
            }
            RatingKind::Nps => {
                s.nps_answers += 1;
                s.promoters += u64::from(score >= 9);
                s.detractors += u64::from(score <= 6);
            }
        });
    }
    Ok(r.rows)
}

/// Decodes a record, or logs and skips it: one unreadable record must not stop every later rollup.
fn readable<V: Record>(map: Map, key: &[u8], value: &[u8]) -> Option<V> {
    match crate::codec::decode::<V>(value) {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::warn!(map = map.name(), key = %hex_key(key), error = %e, "unreadable record left out of the KPIs");
            None
        }
    }
}

fn hex_key(key: &[u8]) -> String {
    key.iter().map(|b| format!("{b:02x}")).collect()
}

/// Records of a map keyed by time first, from `from` to before `end` ms.
fn scan_until<V: Record>(db: &Db, map: Map, from: &[u8], end: i64) -> Result<Vec<(Vec<u8>, V)>, StoreError> {
    let mut out = Vec::new();
    let mut cursor = from.to_vec();
    loop {
        let chunk = db.scan_raw(map, &[], &cursor, 1024)?;
        let Some((last, _)) = chunk.last() else { return Ok(out) };
        cursor = Key::new().bytes(last).u8(0).into_bytes();
        for (k, v) in chunk {
            if KeyReader::new(&k).i64()? >= end {
                return Ok(out);
            }
            if let Some(v) = readable::<V>(map, &k, &v) {
                out.push((k, v));
            }
        }
    }
}

/// Builds a day from its hours: the stored ones, with `fresh` taking the place of those recomputed.
pub fn compute_day(
    db: &Db,
    day: i64,
    fresh: &BTreeMap<i64, BTreeMap<Dimension, KpiSums>>,
) -> Result<BTreeMap<Dimension, KpiSums>, StoreError> {
    let mut out: BTreeMap<Dimension, KpiSums> = BTreeMap::new();
    for hour in (day..day + DAY_MS).step_by(HOUR_MS as usize) {
        let stored;
        let rows = match fresh.get(&hour) {
            Some(rows) => rows,
            None => {
                stored = bucket(db, Granularity::Hour, hour)?;
                &stored
            }
        };
        for (d, s) in rows {
            out.entry(*d).or_default().add(s);
        }
    }
    Ok(out)
}

/// Indexes the hours of every conversation's messages and marks every hour
/// holding data (the migration that introduced rollups).
pub fn backfill(db: &Db, batch: &mut Batch) -> Result<u64, StoreError> {
    let mut n = 0u64;
    let mut hours = std::collections::BTreeSet::new();
    let mut hours_of = std::collections::HashSet::new();
    let mut cursor = Vec::new();
    loop {
        let chunk = db.scan::<Message>(Map::Messages, &[], &cursor, 4096)?;
        let Some((last, _)) = chunk.last() else { break };
        cursor = Key::new().bytes(last).u8(0).into_bytes();
        for (_, m) in chunk {
            let hour = Granularity::Hour.bucket_start(m.created_at);
            // Messages come in conversation and seq order: the first of an hour has its lowest seq.
            if hours_of.insert((m.conversation_id, hour)) {
                batch.put_raw(Map::HourconvSeq, hour_key(hour, m.conversation_id), m.seq.to_be_bytes().to_vec());
            }
            hours.insert(hour);
            n += 1;
        }
    }
    for (_, c) in db.scan::<Conversation>(Map::Conversations, &[], &[], usize::MAX)? {
        hours.insert(Granularity::Hour.bucket_start(c.created_at));
    }
    for map in [Map::BotRuns, Map::Escalations, Map::Ratings] {
        for (k, _) in db.scan_raw(map, &[], &[], usize::MAX)? {
            hours.insert(Granularity::Hour.bucket_start(Timestamp(KeyReader::new(&k).i64()?)));
        }
    }
    // One mark per hour, not per record: the batch holds the whole migration.
    for h in hours {
        touch(batch, Timestamp(h));
    }
    // Everything older is marked; later records fall in the rollups' recent hours.
    let now = Timestamp::now();
    set_rolled_up(batch, now, now);
    Ok(n)
}

/// Whether every stored message is reachable through the hour index (the migration's check).
pub fn time_index_complete(db: &Db) -> Result<bool, StoreError> {
    let mut cursor = Vec::new();
    loop {
        let chunk = db.scan::<Message>(Map::Messages, &[], &cursor, 4096)?;
        let Some((last, _)) = chunk.last() else { return Ok(true) };
        cursor = Key::new().bytes(last).u8(0).into_bytes();
        for (_, m) in chunk {
            let first = db.get_raw(Map::HourconvSeq, hour_key(Granularity::Hour.bucket_start(m.created_at), m.conversation_id))?;
            match first.and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok()).map(u64::from_be_bytes) {
                Some(seq) if seq <= m.seq => {}
                _ => return Ok(false),
            }
        }
    }
}
