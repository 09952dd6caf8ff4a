//! The commands a conversation actor takes, each answered on its own reply
//! channel, and the one envelope that carries any of them to the actor.

use super::actor::ConversationActor;
use crate::conversation::error::ConversationError;
use crate::fanout::broker::Actor as Reader;
use actix::prelude::*;
use std::sync::Arc;
use tokio::sync::oneshot;
use utalk_storage::model::{
    Author, Conversation, ConversationStatus, Direction, MediaStatus, Message, MessageStatus, RatingKind, RatingSource,
};
use utalk_storage::Batch;
use uuid::Uuid;

/// Where an actor sends its answer.
pub type Reply<T> = oneshot::Sender<Result<T, ConversationError>>;

/// What a new message carries; the actor adds seq and time.
#[derive(Debug, Clone)]
pub struct AppendRequest {
    /// The client's idempotency key, which becomes the message id.
    pub message_id: Uuid,
    /// Author.
    pub author: Author,
    /// Direction.
    pub direction: Direction,
    /// Text.
    pub text: Option<String>,
    /// Media.
    pub media_id: Option<Uuid>,
    /// Initial status.
    pub status: MessageStatus,
    /// Channel id.
    pub provider_id: Option<String>,
    /// Media files with their download state (the first is `media_id`).
    pub media: Vec<utalk_storage::model::Attachment>,
    /// Other writes that must land in the same batch as the message, and
    /// only when it is new (say, the downloads of its media).
    pub extra: Batch,
    /// A private note (staff only; never to the customer, a channel or the bot).
    pub private: bool,
    /// Send as this WhatsApp template (checked by [`Template::is_valid`]).
    pub template: Option<utalk_storage::model::Template>,
}

/// Longest message text, in characters.
pub const MAX_TEXT_CHARS: usize = 4096;

/// Why a client's message was refused before reaching the conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidMessage {
    /// The identity may not write here.
    #[error("this identity may not send here")]
    Forbidden,
    /// Neither text nor media.
    #[error("send text or mediaId")]
    Empty,
    /// Text longer than [`MAX_TEXT_CHARS`].
    #[error("text must have at most {MAX_TEXT_CHARS} characters")]
    TooLong,
    /// A template that cannot be sent.
    #[error("template.contentSid must be HX and 32 hex digits, with at most 20 variables named 1, 2, … of at most 1,024 characters")]
    BadTemplate,
    /// A template on a private note.
    #[error("a private note is not sent, so it has no template")]
    TemplateNote,
}

impl InvalidMessage {
    /// The error code clients see.
    pub fn code(self) -> &'static str {
        match self {
            InvalidMessage::Forbidden => "forbidden",
            InvalidMessage::Empty => "empty_message",
            InvalidMessage::TooLong => "text_too_long",
            InvalidMessage::BadTemplate => "invalid_template",
            InvalidMessage::TemplateNote => "invalid_template",
        }
    }
}

impl AppendRequest {
    /// A message sent by a client (REST or socket) into `conversation`, checked.
    ///
    /// Staff messages go out from an agent (`sent`); widget messages come in from the customer (`received`).
    pub fn from_client(
        identity: &crate::conversation::identity::Identity,
        conversation: Uuid,
        message_id: Uuid,
        text: Option<String>,
        media_id: Option<Uuid>,
        private: bool,
        template: Option<utalk_storage::model::Template>,
    ) -> Result<AppendRequest, InvalidMessage> {
        use crate::conversation::identity::Identity;
        if private && !identity.sees_private_notes() {
            return Err(InvalidMessage::Forbidden);
        }
        if template.as_ref().is_some_and(|t| !t.is_valid()) {
            return Err(InvalidMessage::BadTemplate);
        }
        if template.is_some() && private {
            return Err(InvalidMessage::TemplateNote);
        }
        let (author, direction, status) = match *identity {
            Identity::Widget { conversation_id } if conversation_id == conversation => {
                (Author { kind: utalk_storage::model::AuthorType::Customer, id: None }, Direction::Inbound, MessageStatus::Received)
            }
            // The integrator posts its customer's messages (the route checked the channel is `api`).
            Identity::Staff { role: utalk_storage::model::Role::Integration, .. } => {
                (Author { kind: utalk_storage::model::AuthorType::Customer, id: None }, Direction::Inbound, MessageStatus::Received)
            }
            Identity::Staff { user_id, role } if role != utalk_storage::model::Role::Readonly => {
                (Author { kind: utalk_storage::model::AuthorType::Agent, id: Some(user_id) }, Direction::Outbound, MessageStatus::Sent)
            }
            _ => return Err(InvalidMessage::Forbidden),
        };
        // Only staff send templates: a customer writes freely.
        if template.is_some() && direction != Direction::Outbound {
            return Err(InvalidMessage::Forbidden);
        }
        let text = text.filter(|t| !t.trim().is_empty());
        if text.is_none() && media_id.is_none() && template.is_none() {
            return Err(InvalidMessage::Empty);
        }
        if text.as_ref().is_some_and(|t| t.chars().count() > MAX_TEXT_CHARS) {
            return Err(InvalidMessage::TooLong);
        }
        Ok(AppendRequest {
            message_id,
            author,
            direction,
            text,
            media_id,
            status,
            provider_id: None,
            media: Vec::new(),
            extra: Batch::new(),
            private,
            template,
        })
    }
}

/// Outcome of an append.
#[derive(Debug, Clone)]
pub enum Appended {
    /// Stored now.
    Created(Arc<Message>),
    /// The `messageId` was already stored: the same message again.
    Existing(Arc<Message>),
}

impl Appended {
    /// The stored message.
    pub fn message(&self) -> &Arc<Message> {
        match self {
            Appended::Created(m) | Appended::Existing(m) => m,
        }
    }
}

/// A change of the conversation's own fields; `None` leaves a field alone.
#[derive(Debug, Clone, Default)]
pub struct ConversationChange {
    /// New status.
    pub status: Option<ConversationStatus>,
    /// New assignee (`Some(None)` unassigns).
    pub assignee_id: Option<Option<Uuid>>,
    /// Bot on or off.
    pub bot_enabled: Option<bool>,
    /// Hand to people: status `escalated`, the bot paused, an escalation record.
    pub escalate: Option<crate::conversation::lifecycle::EscalateRequest>,
    /// Close with a resolution (and ask for a rating).
    pub close: Option<crate::conversation::lifecycle::CloseRequest>,
    /// Ratings given.
    pub ratings: Vec<(RatingKind, u8, RatingSource)>,
    /// Assign to this agent only if nobody is assigned and the conversation is escalated (automatic assignment).
    pub assign_if_unassigned: Option<Uuid>,
    /// The new set of labels (checked, sorted and unique).
    pub labels: Option<Vec<String>>,
    /// Link to this contact, with the customer fields it gives the conversation.
    pub contact: Option<(Uuid, utalk_storage::model::Customer)>,
    /// Forget the customer: their fields, the contact link, the subject and
    /// the resolution text (an erasure; the messages are erased one by one).
    pub erase: bool,
}

/// A change to a stored message reported by its channel or the media fetcher.
///
/// A status only moves forward ([`MessageStatus::rank`]); `provider_id` is
/// set once; a media file leaves `pending` once.
#[derive(Debug, Clone)]
pub struct MessageChange {
    /// The message.
    pub message_id: Uuid,
    /// New status.
    pub status: Option<MessageStatus>,
    /// The channel's id for the message.
    pub provider_id: Option<String>,
    /// The channel's error code, kept with a failure status.
    pub error_code: Option<String>,
    /// The channel's error text, kept with a failure status.
    pub error_message: Option<String>,
    /// A media file's new state: id, status, error.
    pub media: Option<(Uuid, MediaStatus, Option<String>)>,
    /// Other writes for the same batch (say, removing the outbox entry).
    pub extra: Batch,
    /// Forget what the message says: its text and template (an erasure; the
    /// caller removes the attachments' files); who wrote it, when, and that
    /// it carried media stay, for the KPIs.
    pub erase: bool,
}

impl MessageChange {
    /// A change of message `message_id` that changes nothing yet.
    pub fn new(message_id: Uuid) -> Self {
        Self {
            message_id,
            status: None,
            provider_id: None,
            error_code: None,
            error_message: None,
            media: None,
            extra: Batch::new(),
            erase: false,
        }
    }
}

/// Store messages `from_seq..=to_seq` again, as they are, in the store's
/// current format (the `message_format` migration): only those stored in
/// another one, at most [`MAX_REWRITE`] a call, in one write that nobody is
/// told of (no event, webhook, KPI mark or activity). Answers how many were
/// written.
#[derive(Debug, Clone, Copy)]
pub struct RewriteMessages {
    /// The first seq.
    pub from_seq: u64,
    /// The last seq.
    pub to_seq: u64,
}

/// Most messages one [`RewriteMessages`] writes.
pub const MAX_REWRITE: u64 = 4096;

impl Command for RewriteMessages {
    type Output = u64;
    const SPAN: &'static str = "conversation.rewrite_messages";
    fn run(self, act: &mut ConversationActor, slot: &mut Option<Reply<u64>>, ctx: &mut Context<ConversationActor>) {
        act.rewrite_messages(self, slot, ctx)
    }
}

/// A read marker: `reader` has read up to `seq`.
#[derive(Debug, Clone)]
pub struct MarkRead {
    /// Who read.
    pub reader: Reader,
    /// Up to which seq.
    pub seq: u64,
}

impl Command for MarkRead {
    type Output = u64;
    const SPAN: &'static str = "conversation.mark_read";
    fn run(self, act: &mut ConversationActor, slot: &mut Option<Reply<u64>>, ctx: &mut Context<ConversationActor>) {
        act.mark_read(self, slot, ctx)
    }
}

impl Command for MessageChange {
    type Output = Arc<Message>;
    const SPAN: &'static str = "conversation.change_message";
    fn run(self, act: &mut ConversationActor, slot: &mut Option<Reply<Arc<Message>>>, ctx: &mut Context<ConversationActor>) {
        act.change_message(self, slot, ctx)
    }
}

/// A request that can be sent to a conversation actor, and resent after a retirement.
pub trait Command: Clone + Send + Sized + 'static {
    /// What the caller gets back.
    type Output: Send + 'static;
    /// The name of the actor's span for it.
    const SPAN: &'static str;
    /// Does it on the actor; the answer goes into `slot` (taken when answered).
    #[doc(hidden)]
    fn run(self, act: &mut ConversationActor, slot: &mut Option<Reply<Self::Output>>, ctx: &mut Context<ConversationActor>);
}

/// A command on its way to its actor: one envelope for every command.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Envelope<C: Command> {
    /// The command.
    pub command: C,
    /// Where the answer goes.
    pub reply: Reply<C::Output>,
    /// The caller's span, so the actor's work joins the caller's trace.
    pub span: tracing::Span,
}

impl<C: Command> Envelope<C> {
    /// `command` answering on `reply`, in the current span.
    pub fn new(command: C, reply: Reply<C::Output>) -> Envelope<C> {
        Envelope { command, reply, span: tracing::Span::current() }
    }
}

impl Command for AppendRequest {
    type Output = Appended;
    const SPAN: &'static str = "conversation.append";
    fn run(self, act: &mut ConversationActor, slot: &mut Option<Reply<Appended>>, ctx: &mut Context<ConversationActor>) {
        act.append(self, slot, ctx)
    }
}

impl Command for ConversationChange {
    type Output = Arc<Conversation>;
    const SPAN: &'static str = "conversation.update";
    fn run(self, act: &mut ConversationActor, slot: &mut Option<Reply<Arc<Conversation>>>, ctx: &mut Context<ConversationActor>) {
        act.update(self, slot, ctx)
    }
}

/// Makes the actor panic, to test supervision.
#[doc(hidden)]
#[derive(Debug, Clone)]
pub struct Panic;

impl Command for Panic {
    type Output = ();
    const SPAN: &'static str = "conversation.panic";
    fn run(self, act: &mut ConversationActor, slot: &mut Option<Reply<()>>, ctx: &mut Context<ConversationActor>) {
        let _ = ctx;
        if let Some(e) = act.unavailable() {
            if let Some(r) = slot.take() {
                let _ = r.send(Err(e));
            }
            return;
        }
        panic!("injected panic in conversation {}", act.id);
    }
}
