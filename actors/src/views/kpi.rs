//! API views of the kpi records: the shape REST and the socket show, kept apart
//! from the disk records so a rename here cannot change what is stored.

use serde::{Deserialize, Serialize};
use utalk_storage::model::kpi as storage;
use utalk_storage::Timestamp;
use utoipa::ToSchema;

/// The size of a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Granularity {
    /// One UTC hour.
    Hour,
    /// One UTC day.
    Day,
}

impl From<storage::Granularity> for Granularity {
    fn from(r: storage::Granularity) -> Self {
        match r {
            storage::Granularity::Hour => Granularity::Hour,
            storage::Granularity::Day => Granularity::Day,
        }
    }
}

/// The sums and counts a bucket's KPIs are computed from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
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

impl From<storage::KpiSums> for KpiSums {
    fn from(r: storage::KpiSums) -> Self {
        Self {
            bot_replies: r.bot_replies,
            bot_reply_ms: r.bot_reply_ms,
            conversations: r.conversations,
            resolved_first_contact: r.resolved_first_contact,
            escalated: r.escalated,
            agent_answers: r.agent_answers,
            agent_answer_ms: r.agent_answer_ms,
            escalations: r.escalations,
            escalation_ms: r.escalation_ms,
            messages: r.messages,
            media_messages: r.media_messages,
            outbound: r.outbound,
            outbound_failed: r.outbound_failed,
            csat_answers: r.csat_answers,
            csat_positive: r.csat_positive,
            nps_answers: r.nps_answers,
            promoters: r.promoters,
            detractors: r.detractors,
        }
    }
}

/// A bucket's KPIs as the API shows them: rates are fractions 0..1, NPS
/// −100..100, times in ms; a KPI with nothing to measure is null.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KpiRow {
    /// Start of the bucket.
    #[schema(value_type = String, format = DateTime)]
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

impl From<storage::KpiRow> for KpiRow {
    fn from(r: storage::KpiRow) -> Self {
        Self {
            bucket_start: r.bucket_start,
            granularity: r.granularity.into(),
            bot_response_time_ms: r.bot_response_time_ms,
            first_contact_resolution: r.first_contact_resolution,
            agent_speed_of_answer_ms: r.agent_speed_of_answer_ms,
            escalation_rate: r.escalation_rate,
            time_to_escalation_ms: r.time_to_escalation_ms,
            delivery_failure_rate: r.delivery_failure_rate,
            media_message_rate: r.media_message_rate,
            csat: r.csat,
            nps: r.nps,
            conversations: r.conversations,
            messages: r.messages,
        }
    }
}
