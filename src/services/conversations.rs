//! Conversations and their messages as the API reads them, opening new
//! ones, and changes that span many conversations.

use super::ServiceError;
use utalk_actors::channels::whatsapp::Inbound;
use utalk_actors::{ConversationChange, Registry};
use utalk_storage::model::{
    activity, conversation, message, user, Channel, Conversation, ConversationFilter, ConversationStatus, Customer, Message, Role,
};
use utalk_storage::{Db, Timestamp};
use uuid::Uuid;

pub use utalk_storage::model::conversation::{valid_label, MAX_LABELS};

/// A conversation with the seq of its last durable message (0 when none)
/// and its last activity.
pub struct Listed {
    /// The stored conversation.
    pub conversation: Conversation,
    /// Seq of its last durable message.
    pub last_seq: u64,
    /// The start of the second it was last active in (a message, a status, a change).
    pub last_activity_at: Option<Timestamp>,
}

/// Adds the last seq and activity to a conversation.
pub fn with_last_seq(db: &Db, c: Conversation) -> Result<Listed, ServiceError> {
    let last_seq = message::last_seq(db, c.id)?;
    let last_activity_at = activity::get(db, c.id)?.map(|s| Timestamp(s.saturating_mul(1000)));
    Ok(Listed { conversation: c, last_seq, last_activity_at })
}

/// How conversations are listed by activity.
pub struct ByActivity {
    /// Active in or after this second.
    pub since: Option<i64>,
    /// Where the previous page ended.
    pub cursor: Option<activity::Cursor>,
    /// Newest first.
    pub descending: bool,
}

/// A page of conversations by last activity, and the cursor of the next.
pub fn list_by_activity(
    db: &Db,
    filter: &ConversationFilter,
    by: &ByActivity,
    limit: usize,
) -> Result<(Vec<Listed>, Option<activity::Cursor>), ServiceError> {
    let (items, next) = activity::page(db, filter, by.since, by.cursor, by.descending, limit)?;
    let items = items.into_iter().map(|(_, c)| with_last_seq(db, c)).collect::<Result<Vec<_>, _>>()?;
    Ok((items, next))
}

/// One conversation.
pub fn get(db: &Db, id: Uuid) -> Result<Listed, ServiceError> {
    let c = conversation::get(db, id)?.ok_or(ServiceError::NotFound("conversation"))?;
    with_last_seq(db, c)
}

/// Fails with `NotFound` unless the conversation exists.
pub fn must_exist(db: &Db, id: Uuid) -> Result<(), ServiceError> {
    conversation::get(db, id)?.map(drop).ok_or(ServiceError::NotFound("conversation"))
}

/// A page of conversations, oldest first, and the cursor of the next.
pub fn list(db: &Db, filter: &ConversationFilter, after: Option<Uuid>, limit: usize) -> Result<(Vec<Listed>, Option<Uuid>), ServiceError> {
    let (items, next) = conversation::list(db, filter, after, limit)?;
    let items = items.into_iter().map(|c| with_last_seq(db, c)).collect::<Result<Vec<_>, _>>()?;
    Ok((items, next))
}

/// A page of a conversation's messages after `after_seq`, in seq order,
/// private notes only `with_notes`; and the seq to read on after, when more follow.
pub fn messages(db: &Db, id: Uuid, after_seq: u64, limit: usize, with_notes: bool) -> Result<(Vec<Message>, Option<u64>), ServiceError> {
    must_exist(db, id)?;
    Ok(message::readable_after(db, id, after_seq, limit, with_notes)?)
}

/// Stores a new conversation; a WhatsApp one is indexed by the customer's
/// number, so that their replies reach it.
pub async fn open(
    db: &Db,
    registry: &Registry,
    inbound: &Inbound,
    channel: Channel,
    customer: Customer,
    subject: Option<String>,
) -> Result<Conversation, ServiceError> {
    if channel == Channel::Whatsapp {
        return Ok(inbound.open(customer, subject).await?);
    }
    let mut c = Conversation::new(channel, customer, subject);
    let contact = utalk_actors::contacts::resolve(db, registry.journal(), &c.customer).await?;
    c.contact_id = Some(contact.id);
    c.customer = super::contacts::customer_in(channel, &c.customer, &contact);
    super::records::create_conversation(registry, &c).await?;
    utalk_actors::conversation::count_opened(channel);
    Ok(c)
}

/// Whether conversation `id` is on the `api` channel (unknown ones are not).
pub fn is_api(db: &Db, id: Uuid) -> Result<bool, ServiceError> {
    Ok(conversation::get(db, id)?.is_some_and(|c| c.channel == Channel::Api))
}

/// Fails unless `id` is a user who may take conversations.
pub fn check_assignee(db: &Db, id: Uuid) -> Result<(), ServiceError> {
    let invalid = |message: &str| ServiceError::Invalid { code: "unknown_assignee", message: message.to_string() };
    let u = user::get(db, id)?.ok_or_else(|| invalid("assigneeId is not a user"))?;
    if u.disabled || u.role == Role::Readonly {
        return Err(invalid("assigneeId cannot take conversations"));
    }
    Ok(())
}

/// Pauses the bot on every escalated conversation where it is still on:
/// how many were checked and how many paused.
pub async fn force_pause_bot(db: &Db, registry: &Registry) -> Result<(u64, u64), ServiceError> {
    let filter = ConversationFilter { status: Some(ConversationStatus::Escalated), ..ConversationFilter::default() };
    let (mut checked, mut paused) = (0u64, 0u64);
    let mut after = None;
    loop {
        let (page, next) = conversation::list(db, &filter, after, 200)?;
        for c in page {
            checked += 1;
            if c.bot_enabled {
                let change = ConversationChange { bot_enabled: Some(false), ..ConversationChange::default() };
                registry.call(c.id, change).await?;
                paused += 1;
            }
        }
        match next {
            Some(n) => after = Some(n),
            None => return Ok((checked, paused)),
        }
    }
}
