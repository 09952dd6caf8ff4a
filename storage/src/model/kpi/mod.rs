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

use crate::codec::Record;
use crate::error::CodecError;
use crate::keys::{Key, KeyReader};
use crate::model::conversation::Channel;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

mod buckets;
mod compute;

pub use buckets::*;
pub use compute::*;

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
