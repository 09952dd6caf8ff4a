use crate::batch::Batch;
use crate::codec::Record;
use crate::db::Db;
use crate::error::{CodecError, StoreError};
use crate::keys::{Key, KeyReader};
use crate::maps::Map;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Where the customer writes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// The web chat widget.
    Web,
    /// WhatsApp through Twilio.
    Whatsapp,
    /// Created by an integrator over REST.
    Api,
}

/// Lifecycle of a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConversationStatus {
    /// The bot or an agent is answering.
    Open,
    /// Handed to people; the bot is paused.
    Escalated,
    /// Finished.
    Closed,
}

impl ConversationStatus {
    /// Every status.
    pub const ALL: [ConversationStatus; 3] = [Self::Open, Self::Escalated, Self::Closed];
    /// The one-byte code used in index keys; never renumber.
    pub const fn code(self) -> u8 {
        match self {
            Self::Open => 1,
            Self::Escalated => 2,
            Self::Closed => 3,
        }
    }
    /// The API name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Escalated => "escalated",
            Self::Closed => "closed",
        }
    }
    /// Parses an API name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

/// Who the customer is, as far as we know.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Customer {
    /// Name.
    pub name: Option<String>,
    /// Phone (E.164 for WhatsApp).
    pub phone: Option<String>,
    /// Email.
    pub email: Option<String>,
    /// The integrator's id for the customer (an `api` conversation's contact).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
}

/// A conversation's stored state (its messages are stored apart).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Conversation {
    /// Id (UUIDv7: keys sort by creation time).
    pub id: Uuid,
    /// Channel.
    pub channel: Channel,
    /// Status.
    pub status: ConversationStatus,
    /// Whether the bot answers.
    pub bot_enabled: bool,
    /// Assigned agent.
    pub assignee_id: Option<Uuid>,
    /// Customer.
    pub customer: Customer,
    /// Subject line.
    pub subject: Option<String>,
    /// Created.
    pub created_at: Timestamp,
    /// Last change of the conversation's own fields.
    pub updated_at: Timestamp,
    /// Bot answers so far (escalation after `maxBotTurns`).
    #[serde(default)]
    pub bot_turns: u32,
    /// When it was (last) escalated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalated_at: Option<Timestamp>,
    /// When an agent first answered (agent answer speed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_agent_reply_at: Option<Timestamp>,
    /// When it was closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<Timestamp>,
    /// How it was resolved, given at close.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<String>,
    /// Whether it was resolved at first contact (closed without a reopen).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_contact_resolution: Option<bool>,
    /// Times a customer message reopened it after a close.
    #[serde(default)]
    pub reopened: u32,
    /// Customer satisfaction, 1–5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csat: Option<u8>,
    /// Net promoter answer, 0–10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nps: Option<u8>,
    /// The rating question the customer was last asked and has not answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub awaiting_rating: Option<RatingKind>,
    /// When the current contact started, if the conversation was reopened (time to escalation counts from it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_started_at: Option<Timestamp>,
    /// The first contact's figures, kept when a reopen starts the next one (the KPIs count the first contact).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_contact: Option<FirstContact>,
    /// Staff's labels, sorted and unique (see [`valid_label`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    /// The customer's contact, whose fields `customer` carries (none for
    /// conversations stored before contacts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_id: Option<Uuid>,
    /// When the customer last wrote on WhatsApp: free-form replies are allowed
    /// for [`WHATSAPP_WINDOW_MS`] after it, templates only after that.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_inbound_at: Option<Timestamp>,
}

/// WhatsApp's customer service window: free-form messages may follow the
/// customer's last message for 24 hours; after that only approved templates.
pub const WHATSAPP_WINDOW_MS: i64 = 24 * 3_600_000;

/// How stale `last_inbound_at` may get before a customer message writes it
/// again: a customer writing many messages rewrites their conversation once
/// a minute, not once a message, and the window closes at most this much early.
pub const WHATSAPP_WINDOW_REFRESH_MS: i64 = 60_000;

/// What the KPIs count of a conversation's first contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FirstContact {
    /// It was escalated to people.
    pub escalated: bool,
    /// From escalation (or the start, without one) to the first agent reply, ms.
    pub answer_wait_ms: Option<u64>,
    /// The agent assigned.
    pub agent_id: Option<Uuid>,
    /// When the wait for an agent began (the escalation, or the start) and
    /// when it ended, so that the wait can be counted in business time;
    /// none in first contacts kept before business hours, whose wait counts as
    /// `answer_wait_ms` stands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer_window: Option<(Timestamp, Timestamp)>,
}

impl FirstContact {
    /// The first contact's figures: those kept at a reopen, or the conversation's own while it is still its first contact.
    pub fn of(c: &Conversation) -> FirstContact {
        c.first_contact.unwrap_or_else(|| {
            let window = c.first_agent_reply_at.map(|reply| (c.escalated_at.unwrap_or(c.created_at), reply));
            FirstContact {
                escalated: c.escalated_at.is_some(),
                answer_wait_ms: window.and_then(|(from, reply)| u64::try_from(reply.millis() - from.millis()).ok()),
                agent_id: c.assignee_id,
                answer_window: window,
            }
        })
    }

    /// The wait for the first agent reply counted in `hours`' open time
    /// (all of it when always open); the stored wall-clock wait when the
    /// window was not kept.
    pub fn answer_wait_in(&self, hours: &crate::hours::BusinessHours) -> Option<u64> {
        match self.answer_window {
            Some((from, reply)) if reply >= from => Some(hours.business_ms(from, reply)),
            _ => self.answer_wait_ms,
        }
    }
}

/// Which rating question is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RatingKind {
    /// Satisfaction, 1–5.
    Csat,
    /// Recommendation, 0–10.
    Nps,
}

impl RatingKind {
    /// The accepted range.
    pub const fn range(self) -> std::ops::RangeInclusive<u8> {
        match self {
            RatingKind::Csat => 1..=5,
            RatingKind::Nps => 0..=10,
        }
    }
}

impl Conversation {
    /// Whether this version has an assignee that `before` (the previous
    /// version's assignee) did not: what `conversation.assigned` and
    /// `conversation:assigned` announce.
    pub fn newly_assigned(&self, before: Option<Uuid>) -> bool {
        self.assignee_id.is_some() && self.assignee_id != before
    }

    /// A new open conversation with the bot on, created now (UUIDv7 id).
    pub fn new(channel: Channel, customer: Customer, subject: Option<String>) -> Conversation {
        let now = Timestamp::now();
        Conversation {
            id: Uuid::now_v7(),
            channel,
            status: ConversationStatus::Open,
            bot_enabled: true,
            assignee_id: None,
            customer,
            subject,
            created_at: now,
            updated_at: now,
            bot_turns: 0,
            escalated_at: None,
            first_agent_reply_at: None,
            closed_at: None,
            resolution: None,
            first_contact_resolution: None,
            reopened: 0,
            csat: None,
            nps: None,
            awaiting_rating: None,
            contact_started_at: None,
            first_contact: None,
            labels: Vec::new(),
            contact_id: None,
            last_inbound_at: None,
        }
    }

    /// Until when free-form WhatsApp messages may be sent (none: only
    /// templates, the customer never wrote).
    pub fn whatsapp_window_until(&self) -> Option<Timestamp> {
        self.last_inbound_at.map(|t| Timestamp(t.millis().saturating_add(WHATSAPP_WINDOW_MS)))
    }

    /// Whether a customer message at `now` should move `last_inbound_at`
    /// (never set, or older than [`WHATSAPP_WINDOW_REFRESH_MS`]).
    pub fn whatsapp_window_stale(&self, now: Timestamp) -> bool {
        self.last_inbound_at.is_none_or(|t| now.millis().saturating_sub(t.millis()) >= WHATSAPP_WINDOW_REFRESH_MS)
    }

    /// Whether a free-form WhatsApp message may be sent at `now`.
    pub fn whatsapp_window_open(&self, now: Timestamp) -> bool {
        self.whatsapp_window_until().is_some_and(|until| now.millis() < until.millis())
    }
}

/// Most labels on one conversation.
pub const MAX_LABELS: usize = 10;

/// Whether `label` may label a conversation: 1–32 of `a-z`, `0-9`, `_`, `-`
/// (no NUL, so it can be a key part; lowercase, so one label has one spelling).
pub fn valid_label(label: &str) -> bool {
    !label.is_empty() && label.len() <= 32 && label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-".contains(&b))
}

impl Record for Conversation {
    const KIND: &'static str = "conversation";
}

/// Filters of the conversation list.
#[derive(Debug, Clone, Default)]
pub struct ConversationFilter {
    /// Only this status.
    pub status: Option<ConversationStatus>,
    /// Only assigned to this user.
    pub assignee_id: Option<Uuid>,
    /// Only with the bot on or off.
    pub bot_enabled: Option<bool>,
    /// Only on this channel.
    pub channel: Option<Channel>,
    /// Only with this label.
    pub label: Option<String>,
}

impl ConversationFilter {
    /// Whether `c` passes the filter.
    pub fn matches(&self, c: &Conversation) -> bool {
        self.status.is_none_or(|s| s == c.status)
            && self.assignee_id.is_none_or(|a| Some(a) == c.assignee_id)
            && self.bot_enabled.is_none_or(|b| b == c.bot_enabled)
            && self.channel.is_none_or(|ch| ch == c.channel)
            && self.label.as_ref().is_none_or(|l| c.labels.contains(l))
    }
}

/// Reads a conversation.
pub fn get(db: &Db, id: Uuid) -> Result<Option<Conversation>, StoreError> {
    db.get(Map::Conversations, Key::new().uuid(id))
}

/// The writes that store `new`, replacing `old` (none when creating), with its indexes.
pub fn put_batch(old: Option<&Conversation>, new: &Conversation) -> Result<Batch, CodecError> {
    let mut b = Batch::new();
    b.put(Map::Conversations, Key::new().uuid(new.id), new)?;
    // A new conversation falls in the rollups' recent hours; a change of what
    // the KPIs count in an older one marks its hour.
    if old.is_some_and(|o| counts_differ(o, new)) {
        crate::model::kpi::touch(&mut b, new.created_at);
    }
    if old.map(|o| o.status) != Some(new.status) {
        if let Some(o) = old {
            b.delete(Map::StatusConvid, Key::new().u8(o.status.code()).uuid(o.id));
        }
        b.put_raw(Map::StatusConvid, Key::new().u8(new.status.code()).uuid(new.id).into_bytes(), Vec::new());
    }
    if old.and_then(|o| o.assignee_id) != new.assignee_id {
        if let Some(a) = old.and_then(|o| o.assignee_id) {
            b.delete(Map::AssigneeConvid, Key::new().uuid(a).uuid(new.id));
        }
        if let Some(a) = new.assignee_id {
            b.put_raw(Map::AssigneeConvid, Key::new().uuid(a).uuid(new.id).into_bytes(), Vec::new());
        }
    }
    let old_contact = old.and_then(|o| o.contact_id);
    if old_contact != new.contact_id {
        if let Some(c) = old_contact {
            crate::model::contact::unlink(&mut b, c, new.id);
        }
        if let Some(c) = new.contact_id {
            crate::model::contact::link(&mut b, c, new.id);
        }
    }
    let before: &[String] = old.map_or(&[], |o| &o.labels);
    for gone in before.iter().filter(|l| !new.labels.contains(l)) {
        b.delete(Map::LabelConvid, Key::new().str(gone)?.uuid(new.id));
    }
    for added in new.labels.iter().filter(|l| !before.contains(l)) {
        b.put_raw(Map::LabelConvid, Key::new().str(added)?.uuid(new.id).into_bytes(), Vec::new());
    }
    Ok(b)
}

/// Whether a change touches what the KPIs count of a conversation.
fn counts_differ(a: &Conversation, b: &Conversation) -> bool {
    a.status != b.status
        || a.first_contact_resolution != b.first_contact_resolution
        || a.escalated_at != b.escalated_at
        || a.first_agent_reply_at != b.first_agent_reply_at
        || a.assignee_id != b.assignee_id
        || a.first_contact != b.first_contact
        || a.created_at != b.created_at
}

impl Channel {
    /// The one-byte code used in index keys; never renumber.
    pub const fn code(self) -> u8 {
        match self {
            Self::Web => 1,
            Self::Whatsapp => 2,
            Self::Api => 3,
        }
    }
}

fn phone_key(channel: Channel, phone: &str) -> Result<Key, CodecError> {
    Key::new().u8(channel.code()).str(phone)
}

/// The latest conversation of `phone` on `channel`, if any.
pub fn by_phone(db: &Db, channel: Channel, phone: &str) -> Result<Option<Uuid>, StoreError> {
    match db.get_raw(Map::PhoneConvid, phone_key(channel, phone)?)? {
        Some(v) => Ok(Some(KeyReader::new(&v).uuid()?)),
        None => Ok(None),
    }
}

/// Adds the removal of `phone`'s entry on `channel` to `batch` (an erasure).
pub fn delete_phone(batch: &mut Batch, channel: Channel, phone: &str) -> Result<(), CodecError> {
    batch.delete(Map::PhoneConvid, phone_key(channel, phone)?);
    Ok(())
}

/// Adds "`phone`'s latest conversation on `channel` is `id`" to `batch`.
pub fn put_phone(batch: &mut Batch, channel: Channel, phone: &str, id: Uuid) -> Result<(), CodecError> {
    batch.put_raw(Map::PhoneConvid, phone_key(channel, phone)?.into_bytes(), Key::new().uuid(id).into_bytes());
    Ok(())
}

/// Conversations matching `filter`, oldest first, after the conversation `after`, at most `limit`.
///
/// Scans the narrowest index the filter allows and checks the rest of the
/// filter on the records; the scan is bounded so that a filter matching
/// nothing cannot walk the whole collection in one call. Returns the page
/// and the id to continue after, if more may follow.
pub fn list(
    db: &Db,
    filter: &ConversationFilter,
    after: Option<Uuid>,
    limit: usize,
) -> Result<(Vec<Conversation>, Option<Uuid>), StoreError> {
    const SCAN_BUDGET: usize = 5_000;
    // A label is the most selective filter there is: few conversations carry any one.
    let (map, prefix) = if let Some(l) = &filter.label {
        (Map::LabelConvid, Key::new().str(l)?.into_bytes())
    } else if let Some(s) = filter.status {
        (Map::StatusConvid, Key::new().u8(s.code()).into_bytes())
    } else if let Some(a) = filter.assignee_id {
        (Map::AssigneeConvid, Key::new().uuid(a).into_bytes())
    } else {
        (Map::Conversations, Vec::new())
    };
    let mut start = match after {
        // The first key strictly after `prefix · after`.
        Some(a) => Key::new().bytes(&prefix).uuid(a).u8(0).into_bytes(),
        None => prefix.clone(),
    };
    let mut out = Vec::with_capacity(limit);
    let mut scanned = 0;
    loop {
        let chunk = db.scan_raw(map, &prefix, &start, 256)?;
        if chunk.is_empty() {
            return Ok((out, None));
        }
        for (k, v) in &chunk {
            scanned += 1;
            let mut r = KeyReader::new(&k[prefix.len()..]);
            let id = r.uuid()?;
            let conv = if map == Map::Conversations { Some(crate::codec::decode::<Conversation>(v)?) } else { get(db, id)? };
            if let Some(c) = conv.filter(|c| filter.matches(c)) {
                out.push(c);
                if out.len() == limit {
                    return Ok((out, Some(id)));
                }
            }
            if scanned >= SCAN_BUDGET {
                return Ok((out, Some(id)));
            }
        }
        let Some((k, _)) = chunk.last() else {
            return Ok((out, None));
        };
        start = Key::new().bytes(k).u8(0).into_bytes();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::DbOptions;

    #[test]
    fn the_wait_for_an_agent_counts_business_time_when_its_window_is_kept() {
        let mut c = Conversation::new(Channel::Web, Customer::default(), None);
        // Escalated Friday 2026-01-16 17:00Z, answered Monday 09:30Z.
        c.escalated_at = Timestamp::parse_rfc3339("2026-01-16T17:00:00Z");
        c.first_agent_reply_at = Timestamp::parse_rfc3339("2026-01-19T09:30:00Z");
        let first = FirstContact::of(&c);
        let days = vec!["09:00-18:00".to_string()];
        let none = Vec::new();
        let hours = crate::hours::BusinessHours::new("UTC", [&days, &days, &days, &days, &days, &none, &none], &[]).expect("valid");
        // One hour on Friday, half an hour on Monday.
        assert_eq!(first.answer_wait_in(&hours), Some(5_400_000));
        assert_eq!(first.answer_wait_in(&crate::hours::BusinessHours::always_open()), first.answer_wait_ms);
        // A first contact kept before business hours has no window: its wall-clock wait stands.
        let old = FirstContact { answer_window: None, ..first };
        assert_eq!(old.answer_wait_in(&hours), first.answer_wait_ms);
        // Not answered: no wait.
        c.first_agent_reply_at = None;
        assert_eq!(FirstContact::of(&c).answer_wait_in(&hours), None);
    }

    #[test]
    fn the_whatsapp_window_is_open_for_24_hours_after_the_customer_wrote() {
        let mut c = Conversation::new(Channel::Whatsapp, Customer::default(), None);
        assert!(!c.whatsapp_window_open(Timestamp(0)), "closed until the customer writes");
        assert_eq!(c.whatsapp_window_until(), None);
        c.last_inbound_at = Some(Timestamp(1_000));
        assert!(c.whatsapp_window_open(Timestamp(1_000)));
        assert!(c.whatsapp_window_open(Timestamp(1_000 + WHATSAPP_WINDOW_MS - 1)));
        assert!(!c.whatsapp_window_open(Timestamp(1_000 + WHATSAPP_WINDOW_MS)), "closed after 24 hours");
        assert_eq!(c.whatsapp_window_until(), Some(Timestamp(1_000 + WHATSAPP_WINDOW_MS)));
        // Refreshed once a minute, not once a message.
        assert!(!c.whatsapp_window_stale(Timestamp(1_000 + WHATSAPP_WINDOW_REFRESH_MS - 1)));
        assert!(c.whatsapp_window_stale(Timestamp(1_000 + WHATSAPP_WINDOW_REFRESH_MS)));
        assert!(Conversation::new(Channel::Whatsapp, Customer::default(), None).whatsapp_window_stale(Timestamp(0)));
    }

    #[test]
    fn the_label_filter_follows_changes_of_labels() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open(dir.path(), &DbOptions::default()).expect("open");
        let mut convs = Vec::new();
        let mut b = Batch::new();
        for i in 0..4 {
            let mut c = Conversation::new(Channel::Web, Customer::default(), None);
            if i % 2 == 0 {
                c.labels = vec!["billing".into(), "vip".into()];
            }
            b.extend(put_batch(None, &c).expect("put"));
            convs.push(c);
        }
        db.write_group([&b], false).expect("write");
        let labelled = |l: &str| {
            let filter = ConversationFilter { label: Some(l.into()), ..ConversationFilter::default() };
            list(&db, &filter, None, 50).expect("list").0.into_iter().map(|c| c.id).collect::<Vec<_>>()
        };
        assert_eq!(labelled("vip"), vec![convs[0].id, convs[2].id]);
        assert_eq!(labelled("nothing"), Vec::<Uuid>::new());

        // Relabel: the first loses `vip`, the second gains it.
        let mut first = convs[0].clone();
        first.labels = vec!["billing".into()];
        let mut second = convs[1].clone();
        second.labels = vec!["vip".into()];
        let mut b = put_batch(Some(&convs[0]), &first).expect("put");
        b.extend(put_batch(Some(&convs[1]), &second).expect("put"));
        db.write_group([&b], false).expect("write");
        assert_eq!(labelled("vip"), vec![convs[1].id, convs[2].id]);
        assert_eq!(labelled("billing"), vec![convs[0].id, convs[2].id]);
        assert!(valid_label("vip") && valid_label("pago-2") && !valid_label("VIP") && !valid_label("") && !valid_label(&"a".repeat(33)));
    }
}
