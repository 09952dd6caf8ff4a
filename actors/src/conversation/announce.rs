//! The webhook deliveries of a conversation's change, queued in the batch
//! that makes the change: stored together or not at all.

use crate::webhooks::{payloads, EventKind, WebhookTap};
use std::sync::Arc;
use utalk_storage::model::{Conversation, Message, Rating};
use utalk_storage::{Batch, CodecError, Timestamp};

/// What a write did, as webhooks see it.
pub(crate) struct Change<'a> {
    /// The conversation, when its own fields changed in a way clients are told of.
    pub conversation: Option<&'a Conversation>,
    /// Messages stored.
    pub messages: &'a [Arc<Message>],
    /// A message whose delivery status changed.
    pub status_of: Option<&'a Message>,
    /// Ratings given.
    pub ratings: &'a [Rating],
}

/// Adds the deliveries of `change` to `batch`; `before` is the conversation
/// as the last announced change left it, `current` as it is after this one.
pub(crate) fn add(
    tap: &WebhookTap,
    batch: &mut Batch,
    before: Option<&Conversation>,
    current: &Conversation,
    change: Change<'_>,
) -> Result<(), CodecError> {
    let now = Timestamp::now();
    if let Some(c) = change.conversation {
        for kind in payloads::conversation_kinds(before, c) {
            tap.add(batch, kind, now, || payloads::conversation(c))?;
        }
    }
    // A private note stays with staff: integrators hear the conversation as
    // its customer would (an `api` conversation's replies go out this way).
    for m in change.messages.iter().filter(|m| !m.private) {
        tap.add(batch, EventKind::MessageCreated, now, || payloads::message(m, current))?;
    }
    if let Some(m) = change.status_of {
        tap.add(batch, EventKind::MessageStatus, now, || payloads::message(m, current))?;
    }
    for r in change.ratings {
        tap.add(batch, EventKind::RatingCreated, now, || payloads::rating(r))?;
    }
    Ok(())
}

/// Adds `conversation.created` for a conversation being stored.
pub fn created(tap: &WebhookTap, batch: &mut Batch, c: &Conversation) -> Result<(), CodecError> {
    tap.add(batch, EventKind::ConversationCreated, Timestamp::now(), || payloads::conversation(c))
}
