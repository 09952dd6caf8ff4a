//! What a conversation's writes are made of: the storage batch of new
//! messages and their outbox entries, system messages, message changes, and
//! the counters of durable messages.

use super::commands::*;
use crate::jobs::signal::JobSignal;
use std::sync::Arc;
use utalk_storage::model::message_format;
use utalk_storage::model::{
    kpi, message, outbox, Author, AuthorType, Channel, Conversation, Direction, MediaStatus, Message, MessageStatus, OutboxEntry,
    OutboxState,
};
use utalk_storage::{Batch, Db, Map, StoreError, Timestamp};
use uuid::Uuid;

/// Counts durable messages by direction and author.
pub(super) fn count_messages(messages: &[Arc<Message>]) {
    // Resolved once: every durable message counts, and a lookup by labels
    // costs a hash and a lock each time.
    static COUNTERS: std::sync::OnceLock<Vec<metrics::Counter>> = std::sync::OnceLock::new();
    const DIRECTIONS: [&str; 2] = ["inbound", "outbound"];
    const AUTHORS: [&str; 4] = ["customer", "agent", "bot", "system"];
    let counters = COUNTERS.get_or_init(|| {
        DIRECTIONS
            .iter()
            .flat_map(|d| AUTHORS.iter().map(move |a| metrics::counter!("messages_total", "direction" => *d, "author" => *a)))
            .collect()
    });
    for m in messages {
        let direction = match m.direction {
            Direction::Inbound => 0,
            Direction::Outbound => 1,
        };
        let author = match m.author.kind {
            AuthorType::Customer => 0,
            AuthorType::Agent => 1,
            AuthorType::Bot => 2,
            AuthorType::System => 3,
        };
        counters[direction * AUTHORS.len() + author].increment(1);
    }
}

/// A channel's name as a metric label.
pub fn channel_name(c: Channel) -> &'static str {
    match c {
        Channel::Web => "web",
        Channel::Whatsapp => "whatsapp",
        Channel::Api => "api",
    }
}

/// Counts a conversation opened on `channel` (`conversations_total`).
pub fn count_opened(channel: Channel) {
    metrics::counter!("conversations_total", "channel" => channel_name(channel)).increment(1);
}

/// A message from utalk itself (a rating question), outbound at `seq`.
pub(super) fn system_message(conversation: Uuid, seq: u64, text: &str, now: Timestamp) -> Message {
    Message::text(conversation, seq, Direction::Outbound, Author { kind: AuthorType::System, id: None }, MessageStatus::Sent, text, now)
}

/// The writes of `messages` in `conv`, with their outbox entries and the KPIs'
/// hour index; says whether any outbox entry was written, and the hour indexed.
pub(super) fn messages_batch(
    db: &Db,
    conv: &Conversation,
    messages: &mut [Message],
    signal: &JobSignal,
    indexed_hour: Option<i64>,
) -> Result<(Batch, bool, Option<i64>), StoreError> {
    let mut b = Batch::new();
    let hour = kpi::index_messages(db, &mut b, messages, indexed_hour)?;
    let mut any = false;
    for m in messages.iter_mut() {
        let entry = outbound_entry(conv, m, signal);
        b.extend(message::append_batch(m, db.message_format())?);
        if let Some(e) = &entry {
            outbox::put(&mut b, e)?;
            any = true;
        }
    }
    Ok((b, any, hour))
}

/// The write that stores `conv`'s messages `req.from_seq..=req.to_seq`
/// still in another format again in the store's current one (at most
/// [`MAX_REWRITE`]), each as `changed` has it when a change of it is in
/// flight; and how many it writes.
pub(super) fn rewrite_batch(
    db: &Db,
    conv: Uuid,
    req: RewriteMessages,
    changed: impl Fn(&Uuid) -> Option<Arc<Message>>,
) -> Result<(Batch, u64), StoreError> {
    let format = db.message_format();
    let count = req.to_seq.saturating_sub(req.from_seq).saturating_add(1).min(MAX_REWRITE);
    let prefix = utalk_storage::keys::Key::new().uuid(conv).into_bytes();
    let start = message::key(conv, req.from_seq).into_bytes();
    let page = message_format::others_page(db, &prefix, &start, count as usize, format)?;
    let mut b = Batch::new();
    let mut n = 0;
    for (key, stored) in page.others.into_iter().filter(|(_, m)| m.seq <= req.to_seq) {
        let m = changed(&stored.id).map_or(stored, |c| (*c).clone());
        b.put_raw(Map::Messages, key, message_format::encode(&m, format)?);
        n += 1;
    }
    Ok((b, n))
}

/// For an outbound message in a WhatsApp conversation: sets its outbox
/// status and returns the outbox entry to write in the same batch.
pub(super) fn outbound_entry(conv: &Conversation, msg: &mut Message, signal: &JobSignal) -> Option<OutboxEntry> {
    if conv.channel != Channel::Whatsapp || msg.direction != Direction::Outbound || msg.private {
        return None;
    }
    let Some(phone) = conv.customer.phone.as_deref() else {
        msg.status = MessageStatus::Failed;
        msg.error_code = Some("no_recipient".into());
        msg.error_message = Some("the conversation has no customer phone number to send to".into());
        msg.status_updated_at = Some(msg.created_at);
        return None;
    };
    let configured = signal.configured();
    msg.status = if configured { MessageStatus::Queued } else { MessageStatus::NotConfigured };
    msg.status_updated_at = Some(msg.created_at);
    Some(OutboxEntry {
        id: Uuid::now_v7(),
        conversation_id: conv.id,
        message_id: msg.id,
        seq: msg.seq,
        to: format!("whatsapp:{phone}"),
        body: msg.text.clone(),
        media_ids: msg.media_id.into_iter().collect(),
        state: if configured { OutboxState::Pending } else { OutboxState::NotConfigured },
        attempts: 0,
        next_attempt_at: msg.created_at,
        last_error: None,
        outcome: None,
        created_at: msg.created_at,
        template: msg.template.clone(),
    })
}

/// Applies `change` to `current`: statuses only move forward, the provider
/// id is set once, a media file leaves `pending` once. Returns the new
/// version and whether its status and its media changed.
pub fn apply_change(current: &Message, change: &MessageChange, now: Timestamp) -> (Message, bool, bool) {
    let mut new = current.clone();
    let mut status_changed = false;
    if let Some(s) = change.status {
        if s.rank() > new.status.rank() {
            new.status = s;
            new.status_updated_at = Some(now);
            status_changed = true;
            // An error belongs to a failure status only; a later delivery clears it.
            new.error_code = if s.is_failure() { change.error_code.clone() } else { None };
            new.error_message = if s.is_failure() { change.error_message.clone() } else { None };
        }
    }
    if new.provider_id.is_none() {
        new.provider_id = change.provider_id.clone();
    }
    let mut media_changed = false;
    if let Some((id, status, error)) = &change.media {
        if let Some(a) = new.media.iter_mut().find(|a| a.id == *id && a.status == MediaStatus::Pending && *status != MediaStatus::Pending) {
            a.status = *status;
            a.error = error.clone();
            media_changed = true;
        }
    }
    if change.erase {
        // The attachments' ids and types stay (the files go): the KPIs
        // count messages that carried media.
        new.text = None;
        new.template = None;
        new.error_message = None;
    }
    (new, status_changed, media_changed)
}
