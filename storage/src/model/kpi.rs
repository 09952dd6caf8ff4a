//! KPI rollups: sums per hour and per day (UTC), overall, per channel and per agent.
//!
//! Every rollup recomputes the hours since shortly before the last one
//! started ([`recent_hours`]): records stamped as they are written (new
//! conversations, messages, bot runs) always fall there. A change to an older
//! record (a failure callback a day later, a conversation closed or
//! escalated, a rating) also marks the hour it counts in as dirty ([`touch`],
//! added by the batch builders in the same batch). The rollup claims the dirty
//! hours, recomputes them with the recent ones from the stored records and
//! rebuilds the days that hold them from their hours; so late data re-rolls
//! exactly the buckets it falls in.
//!
//! Rollups store sums and counts, never averages, so a day is the sum of its
//! hours and the ratios are taken only when a bucket is read ([`KpiRow`]).

use crate::batch::Batch;
use crate::codec::Record;
use crate::db::Db;
use crate::error::{CodecError, StoreError};
use crate::keys::{Key, KeyReader};
use crate::maps::Map;
use crate::model::bot::{BotRun, Escalation, Rating};
use crate::model::conversation::{Channel, Conversation, ConversationStatus, FirstContact, RatingKind};
use crate::model::message::{Direction, Message};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use uuid::Uuid;

/// One hour in milliseconds.
pub const HOUR_MS: i64 = 3_600_000;
/// One day in milliseconds.
pub const DAY_MS: i64 = 86_400_000;

/// The size of a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Granularity {
    /// One UTC hour.
    Hour,
    /// One UTC day.
    Day,
}

impl Granularity {
    /// The bucket length in milliseconds.
    pub const fn millis(self) -> i64 {
        match self {
            Granularity::Hour => HOUR_MS,
            Granularity::Day => DAY_MS,
        }
    }
    const fn code(self) -> u8 {
        match self {
            Granularity::Hour => 1,
            Granularity::Day => 2,
        }
    }
    /// The start of the bucket holding `at`.
    pub fn bucket_start(self, at: Timestamp) -> i64 {
        at.millis() - at.millis().rem_euclid(self.millis())
    }
    /// The API name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Granularity::Hour => "hour",
            Granularity::Day => "day",
        }
    }
    /// Parses an API name.
    pub fn parse(s: &str) -> Option<Self> {
        [Granularity::Hour, Granularity::Day].into_iter().find(|g| g.as_str() == s)
    }
}

/// What a rollup row is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Dimension {
    /// Everything.
    All,
    /// One channel.
    Channel(Channel),
    /// The conversations assigned to one agent (conversation KPIs and ratings only).
    Agent(Uuid),
}

impl Dimension {
    fn encode(self, key: Key) -> Key {
        match self {
            Dimension::All => key.u8(0),
            Dimension::Channel(c) => key.u8(1).u8(c.code()),
            Dimension::Agent(a) => key.u8(2).uuid(a),
        }
    }
    fn decode(r: &mut KeyReader<'_>) -> Result<Self, CodecError> {
        match r.u8()? {
            0 => Ok(Dimension::All),
            1 => {
                let code = r.u8()?;
                [Channel::Web, Channel::Whatsapp, Channel::Api]
                    .into_iter()
                    .find(|c| c.code() == code)
                    .map(Dimension::Channel)
                    .ok_or(CodecError::BadKey("unknown channel code"))
            }
            2 => Ok(Dimension::Agent(r.uuid()?)),
            _ => Err(CodecError::BadKey("unknown KPI dimension")),
        }
    }
}

/// The sums and counts a bucket's KPIs are computed from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct KpiSums {
    /// Bot runs that stored a reply.
    pub bot_replies: u64,
    /// Their response times, summed (ms).
    pub bot_reply_ms: u64,
    /// Conversations started.
    pub conversations: u64,
    /// Of those, closed and resolved at first contact.
    pub resolved_first_contact: u64,
    /// Of those, escalated to people at some point.
    pub escalated: u64,
    /// Of those, answered by an agent.
    pub agent_answers: u64,
    /// Waits from escalation (or start) to the first agent reply, summed (ms).
    pub agent_answer_ms: u64,
    /// Escalations.
    pub escalations: u64,
    /// Times from conversation start to escalation, summed (ms).
    pub escalation_ms: u64,
    /// Messages stored.
    pub messages: u64,
    /// Of those, with media.
    pub media_messages: u64,
    /// Of those, outbound.
    pub outbound: u64,
    /// Of the outbound, failed or undelivered.
    pub outbound_failed: u64,
    /// CSAT answers.
    pub csat_answers: u64,
    /// CSAT answers of 4 or 5.
    pub csat_positive: u64,
    /// NPS answers.
    pub nps_answers: u64,
    /// NPS answers of 9 or 10.
    pub promoters: u64,
    /// NPS answers of 0 to 6.
    pub detractors: u64,
}

impl Record for KpiSums {
    const KIND: &'static str = "kpi_sums";
}

impl KpiSums {
    /// Adds `o` into `self`.
    pub fn add(&mut self, o: &KpiSums) {
        self.bot_replies += o.bot_replies;
        self.bot_reply_ms += o.bot_reply_ms;
        self.conversations += o.conversations;
        self.resolved_first_contact += o.resolved_first_contact;
        self.escalated += o.escalated;
        self.agent_answers += o.agent_answers;
        self.agent_answer_ms += o.agent_answer_ms;
        self.escalations += o.escalations;
        self.escalation_ms += o.escalation_ms;
        self.messages += o.messages;
        self.media_messages += o.media_messages;
        self.outbound += o.outbound;
        self.outbound_failed += o.outbound_failed;
        self.csat_answers += o.csat_answers;
        self.csat_positive += o.csat_positive;
        self.nps_answers += o.nps_answers;
        self.promoters += o.promoters;
        self.detractors += o.detractors;
    }
}

fn ratio(num: u64, den: u64) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

/// A bucket's KPIs as the API shows them: rates are fractions 0..1, NPS
/// −100..100, times in ms; a KPI with nothing to measure is null.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KpiRow {
    /// Start of the bucket.
    pub bucket_start: Timestamp,
    /// `hour` or `day`.
    pub granularity: Granularity,
    /// Mean time from a customer message to the bot's stored reply.
    pub bot_response_time_ms: Option<f64>,
    /// Conversations closed at first contact over conversations started.
    pub first_contact_resolution: Option<f64>,
    /// Mean wait from escalation to the first agent reply.
    pub agent_speed_of_answer_ms: Option<f64>,
    /// Conversations escalated over conversations started.
    pub escalation_rate: Option<f64>,
    /// Mean time from conversation start to escalation.
    pub time_to_escalation_ms: Option<f64>,
    /// Outbound messages failed or undelivered over outbound messages.
    pub delivery_failure_rate: Option<f64>,
    /// Messages with media over messages.
    pub media_message_rate: Option<f64>,
    /// CSAT answers of 4–5 over CSAT answers.
    pub csat: Option<f64>,
    /// (Promoters − detractors) / answers × 100.
    pub nps: Option<f64>,
    /// Conversations started.
    pub conversations: u64,
    /// Messages stored.
    pub messages: u64,
}

impl KpiRow {
    /// The KPIs of `s` for the bucket starting at `start`.
    pub fn new(start: i64, granularity: Granularity, s: &KpiSums) -> KpiRow {
        KpiRow {
            bucket_start: Timestamp(start),
            granularity,
            bot_response_time_ms: ratio(s.bot_reply_ms, s.bot_replies),
            first_contact_resolution: ratio(s.resolved_first_contact, s.conversations),
            agent_speed_of_answer_ms: ratio(s.agent_answer_ms, s.agent_answers),
            escalation_rate: ratio(s.escalated, s.conversations),
            time_to_escalation_ms: ratio(s.escalation_ms, s.escalations),
            delivery_failure_rate: ratio(s.outbound_failed, s.outbound),
            media_message_rate: ratio(s.media_messages, s.messages),
            csat: ratio(s.csat_positive, s.csat_answers),
            nps: (s.nps_answers > 0).then(|| (s.promoters as f64 - s.detractors as f64) / s.nps_answers as f64 * 100.0),
            conversations: s.conversations,
            messages: s.messages,
        }
    }
}

/// Which side of its target a KPI should be on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Goal {
    /// Good when below the target.
    Below,
    /// Good when above the target.
    Above,
}

/// How a KPI's value reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Milliseconds, shown as seconds or minutes.
    Millis,
    /// A fraction, shown as a percentage.
    Fraction,
    /// A score (NPS).
    Score,
}

/// One of the nine KPIs with its target.
#[derive(Debug, Clone, Copy)]
pub struct Kpi {
    /// Field name in [`KpiRow`] (camelCase, as in the API).
    pub field: &'static str,
    /// Title for people.
    pub title: &'static str,
    /// The target.
    pub target: f64,
    /// Which side of the target is good.
    pub goal: Goal,
    /// Unit.
    pub unit: Unit,
    /// Reads the KPI from a row.
    pub value: fn(&KpiRow) -> Option<f64>,
}

impl Kpi {
    /// Whether `v` meets the target (strictly, as the targets are stated).
    pub fn meets(&self, v: f64) -> bool {
        match self.goal {
            Goal::Below => v < self.target,
            Goal::Above => v > self.target,
        }
    }
    /// `v` for people: "350 ms", "1.4 s", "6.0 min", "72.5%", "48".
    pub fn format(&self, v: f64) -> String {
        match self.unit {
            Unit::Millis if v >= 60_000.0 => format!("{:.1} min", v / 60_000.0),
            Unit::Millis if v < 1_000.0 => format!("{v:.0} ms"),
            Unit::Millis => format!("{:.1} s", v / 1000.0),
            Unit::Fraction => format!("{:.1}%", v * 100.0),
            Unit::Score => format!("{v:.0}"),
        }
    }
    /// The target for people: "< 2.0 s".
    pub fn target_text(&self) -> String {
        let op = match self.goal {
            Goal::Below => "<",
            Goal::Above => ">",
        };
        format!("{op} {}", self.format(self.target))
    }
}

/// The nine KPIs of the operations manual, with its targets.
pub const KPIS: [Kpi; 9] = [
    Kpi {
        field: "botResponseTimeMs",
        title: "Bot response time",
        target: 2_000.0,
        goal: Goal::Below,
        unit: Unit::Millis,
        value: |r| r.bot_response_time_ms,
    },
    Kpi {
        field: "firstContactResolution",
        title: "First contact resolution",
        target: 0.70,
        goal: Goal::Above,
        unit: Unit::Fraction,
        value: |r| r.first_contact_resolution,
    },
    Kpi {
        field: "agentSpeedOfAnswerMs",
        title: "Agent speed of answer",
        target: 30_000.0,
        goal: Goal::Below,
        unit: Unit::Millis,
        value: |r| r.agent_speed_of_answer_ms,
    },
    Kpi {
        field: "escalationRate",
        title: "Escalation rate",
        target: 0.20,
        goal: Goal::Below,
        unit: Unit::Fraction,
        value: |r| r.escalation_rate,
    },
    Kpi {
        field: "timeToEscalationMs",
        title: "Time to escalation",
        target: 300_000.0,
        goal: Goal::Above,
        unit: Unit::Millis,
        value: |r| r.time_to_escalation_ms,
    },
    Kpi {
        field: "deliveryFailureRate",
        title: "Delivery failure rate",
        target: 0.01,
        goal: Goal::Below,
        unit: Unit::Fraction,
        value: |r| r.delivery_failure_rate,
    },
    Kpi {
        field: "mediaMessageRate",
        title: "Messages with media",
        target: 0.30,
        goal: Goal::Below,
        unit: Unit::Fraction,
        value: |r| r.media_message_rate,
    },
    Kpi { field: "csat", title: "CSAT (4–5 of 5)", target: 0.85, goal: Goal::Above, unit: Unit::Fraction, value: |r| r.csat },
    Kpi { field: "nps", title: "NPS", target: 50.0, goal: Goal::Above, unit: Unit::Score, value: |r| r.nps },
];

// ---- dirty hours ----

const DIRTY: u8 = 0;
const CLAIMED: u8 = 1;

/// Adds "the hour holding `at` must be rolled up again" to `batch`.
pub fn touch(batch: &mut Batch, at: Timestamp) {
    let hour = Granularity::Hour.bucket_start(at);
    batch.put_raw(Map::KpiDirty, Key::new().u8(DIRTY).i64(hour).into_bytes(), Vec::new());
}

fn hours_in(db: &Db, state: u8, limit: usize) -> Result<Vec<i64>, StoreError> {
    let prefix = [state];
    db.scan_raw(Map::KpiDirty, &prefix, &[], limit)?
        .into_iter()
        .map(|(k, _)| {
            let mut r = KeyReader::new(&k);
            r.u8()?;
            Ok(r.i64()?)
        })
        .collect()
}

/// Hours marked dirty and not claimed yet, oldest first, at most `limit`.
pub fn dirty_hours(db: &Db, limit: usize) -> Result<Vec<i64>, StoreError> {
    hours_in(db, DIRTY, limit)
}

/// Hours claimed by a rollup that did not finish (it stopped midway), oldest first.
pub fn claimed_hours(db: &Db, limit: usize) -> Result<Vec<i64>, StoreError> {
    hours_in(db, CLAIMED, limit)
}

/// The writes that claim `hours` for a rollup: a write after this marks them dirty again.
pub fn claim_batch(hours: &[i64]) -> Batch {
    let mut b = Batch::new();
    for &h in hours {
        b.delete_raw(Map::KpiDirty, Key::new().u8(DIRTY).i64(h).into_bytes());
        b.put_raw(Map::KpiDirty, Key::new().u8(CLAIMED).i64(h).into_bytes(), Vec::new());
    }
    b
}

/// Adds "the claim on `hour` is done" to `batch`.
pub fn release(batch: &mut Batch, hour: i64) {
    batch.delete_raw(Map::KpiDirty, Key::new().u8(CLAIMED).i64(hour).into_bytes());
}

const ROLLED_UP_AT: &[u8] = b"kpi_rolled_up_at";
const WATERMARK: &[u8] = b"kpi_watermark";
/// How far before the last rollup's start the next one looks again: a record
/// stamped just before that start may have been committed just after it.
pub const WATERMARK_MARGIN_MS: i64 = 5 * 60_000;

fn meta_time(db: &Db, key: &[u8]) -> Result<Option<Timestamp>, StoreError> {
    Ok(db.get_raw(Map::Meta, key)?.and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok()).map(|b| Timestamp(i64::from_be_bytes(b))))
}

/// Adds "a rollup that started at `started` finished at `finished`" to `batch`.
pub fn set_rolled_up(batch: &mut Batch, started: Timestamp, finished: Timestamp) {
    batch.put_raw(Map::Meta, WATERMARK.to_vec(), started.millis().to_be_bytes().to_vec());
    batch.put_raw(Map::Meta, ROLLED_UP_AT.to_vec(), finished.millis().to_be_bytes().to_vec());
}

/// When the last rollup finished, if one ever did: the figures are as of then.
pub fn rolled_up_at(db: &Db) -> Result<Option<Timestamp>, StoreError> {
    meta_time(db, ROLLED_UP_AT)
}

/// When the last finished rollup started, if one ever did.
pub fn last_rollup_started(db: &Db) -> Result<Option<Timestamp>, StoreError> {
    meta_time(db, WATERMARK)
}

/// The time of the oldest record a KPI counts, if any.
fn earliest(db: &Db) -> Result<Option<i64>, StoreError> {
    let mut first = Vec::new();
    for map in [Map::HourconvSeq, Map::BotRuns, Map::Escalations, Map::Ratings] {
        if let Some((k, _)) = db.scan_raw(map, &[], &[], 1)?.into_iter().next() {
            first.push(KeyReader::new(&k).i64()?);
        }
    }
    if let Some((k, _)) = db.scan_raw(Map::Conversations, &[], &[], 1)?.into_iter().next() {
        let uuid = KeyReader::new(&k).uuid()?;
        if let Some((secs, nanos)) = uuid.get_timestamp().map(|t| t.to_unix()) {
            first.push(secs as i64 * 1000 + i64::from(nanos / 1_000_000));
        }
    }
    Ok(first.into_iter().min())
}

/// The hours every rollup recomputes: from shortly before the last rollup
/// started (or from the oldest record, before the first) to the hour of `now`.
///
/// Records stamped at the moment they are written (new conversations,
/// messages, bot runs) always fall here, so their writes need no dirty mark;
/// a change to an older record marks its hour with [`touch`].
pub fn recent_hours(db: &Db, now: Timestamp) -> Result<Vec<i64>, StoreError> {
    let from = match meta_time(db, WATERMARK)? {
        Some(w) => Some(w.millis() - WATERMARK_MARGIN_MS),
        None => earliest(db)?,
    };
    let Some(from) = from else { return Ok(Vec::new()) };
    let (first, last) = (Granularity::Hour.bucket_start(Timestamp(from)), Granularity::Hour.bucket_start(now));
    Ok((first..=last).step_by(HOUR_MS as usize).collect())
}

// ---- the hour index of messages ----

fn hour_key(hour: i64, conversation: Uuid) -> Vec<u8> {
    Key::new().i64(hour).uuid(conversation).into_bytes()
}

/// Adds to `batch` the hour index entries `messages` (ascending seqs of one
/// conversation, about to be appended) need: "`conversation` has messages in
/// this hour, from this seq". `known` is the hour the caller already indexed
/// (a conversation's actor remembers it), so a busy conversation writes one
/// entry an hour, not one a message. Returns the hour indexed last.
pub fn index_messages(db: &Db, batch: &mut Batch, messages: &[Message], mut known: Option<i64>) -> Result<Option<i64>, StoreError> {
    for m in messages {
        let hour = Granularity::Hour.bucket_start(m.created_at);
        if known == Some(hour) {
            continue;
        }
        // An earlier run of the actor may have written this hour's entry with an earlier seq: keep it.
        let key = hour_key(hour, m.conversation_id);
        if db.get_raw(Map::HourconvSeq, &key)?.is_none() {
            batch.put_raw(Map::HourconvSeq, key, m.seq.to_be_bytes().to_vec());
        }
        known = Some(hour);
    }
    Ok(known)
}

// ---- rollups ----

fn rollup_key(g: Granularity, start: i64) -> Key {
    Key::new().u8(g.code()).i64(start)
}

/// The stored rows of one bucket, by dimension.
pub fn bucket(db: &Db, g: Granularity, start: i64) -> Result<BTreeMap<Dimension, KpiSums>, StoreError> {
    let prefix = rollup_key(g, start).into_bytes();
    let mut out = BTreeMap::new();
    for (k, v) in db.scan::<KpiSums>(Map::KpiRollups, &prefix, &[], usize::MAX)? {
        out.insert(Dimension::decode(&mut KeyReader::new(&k[prefix.len()..]))?, v);
    }
    Ok(out)
}

/// The writes that replace the stored rows of one bucket with `rows`.
pub fn replace_bucket(
    db: &Db,
    batch: &mut Batch,
    g: Granularity,
    start: i64,
    rows: &BTreeMap<Dimension, KpiSums>,
) -> Result<(), StoreError> {
    let prefix = rollup_key(g, start).into_bytes();
    for (k, _) in db.scan_raw(Map::KpiRollups, &prefix, &[], usize::MAX)? {
        batch.delete_raw(Map::KpiRollups, k);
    }
    for (d, s) in rows {
        batch.put(Map::KpiRollups, d.encode(rollup_key(g, start)), s)?;
    }
    Ok(())
}

/// The stored sums for `dim` of the buckets starting in `[from, to)`, by bucket start.
pub fn series(db: &Db, g: Granularity, from: i64, to: i64, dim: Dimension) -> Result<BTreeMap<i64, KpiSums>, StoreError> {
    let prefix = [g.code()];
    let start = rollup_key(g, from).into_bytes();
    let mut out = BTreeMap::new();
    let mut cursor = start;
    loop {
        let chunk = db.scan::<KpiSums>(Map::KpiRollups, &prefix, &cursor, 512)?;
        let Some((last, _)) = chunk.last() else { break };
        cursor = Key::new().bytes(last).u8(0).into_bytes();
        for (k, v) in chunk {
            let mut r = KeyReader::new(&k[1..]);
            let at = r.i64()?;
            if at >= to {
                return Ok(out);
            }
            if Dimension::decode(&mut r)? == dim {
                out.insert(at, v);
            }
        }
    }
    Ok(out)
}

/// Every bucket of `dim` from `start` (a bucket start), `count` of them, with null KPIs where nothing is stored.
pub fn rows(db: &Db, g: Granularity, start: i64, count: i64, dim: Dimension) -> Result<Vec<KpiRow>, StoreError> {
    let step = g.millis();
    let mut stored = series(db, g, start, start + count * step, dim)?;
    Ok((0..count).map(|i| start + i * step).map(|at| KpiRow::new(at, g, &stored.remove(&at).unwrap_or_default())).collect())
}

/// The conversation facts a rollup needs, read once per conversation.
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
pub fn compute_hour(db: &Db, hour: i64) -> Result<BTreeMap<Dimension, KpiSums>, StoreError> {
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
            r.count(Some(facts), first.agent_id, |s| {
                s.conversations += 1;
                s.resolved_first_contact += u64::from(fcr);
                s.escalated += u64::from(first.escalated);
                if let Some(ms) = first.answer_wait_ms {
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
