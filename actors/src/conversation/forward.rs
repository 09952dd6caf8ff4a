//! Conversation requests forwarded to the node that owns the conversation:
//! which commands travel, and their conversion to and from the wire's own
//! types (`crate::wire::forward`).

use crate::cluster::ClusterError;
use crate::conversation::lifecycle::{CloseRequest, EscalateRequest};
use crate::conversation::{
    AppendRequest, Appended, Command, ConversationChange, ConversationError, MarkRead, MessageChange, Panic, RewriteMessages,
};
use std::sync::Arc;
use utalk_storage::model::{Conversation, Message};

use crate::wire::forward::{Append, Change, Close, Escalate, Update};
pub(crate) use crate::wire::forward::{Forward, ForwardAnswer, ForwardRequest, WireError};

impl From<&ConversationError> for WireError {
    fn from(e: &ConversationError) -> Self {
        match e {
            ConversationError::NotFound => WireError::NotFound,
            ConversationError::MessageIdConflict => WireError::MessageIdConflict,
            ConversationError::Overloaded => WireError::Overloaded,
            ConversationError::InvalidSeq(s) => WireError::InvalidSeq(*s),
            ConversationError::MessageNotFound => WireError::MessageNotFound,
            ConversationError::MessagePending => WireError::MessagePending,
            ConversationError::BotPaused => WireError::BotPaused,
            ConversationError::Closed => WireError::Closed,
            ConversationError::MediaNotFound => WireError::MediaNotFound,
            ConversationError::WindowClosed => WireError::WindowClosed,
            ConversationError::TemplateNotWhatsapp => WireError::TemplateNotWhatsapp,
            ConversationError::Restarted | ConversationError::Retired => WireError::Retry,
            ConversationError::Write(w) => WireError::Unavailable(w.to_string()),
            ConversationError::Cluster(c) => WireError::Unavailable(c.to_string()),
            ConversationError::Read(m) => WireError::Internal(m.to_string()),
        }
    }
}

impl From<WireError> for ConversationError {
    fn from(e: WireError) -> Self {
        match e {
            WireError::NotFound => ConversationError::NotFound,
            WireError::MessageIdConflict => ConversationError::MessageIdConflict,
            WireError::Overloaded => ConversationError::Overloaded,
            WireError::InvalidSeq(s) => ConversationError::InvalidSeq(s),
            WireError::MessageNotFound => ConversationError::MessageNotFound,
            WireError::MessagePending => ConversationError::MessagePending,
            WireError::BotPaused => ConversationError::BotPaused,
            WireError::Closed => ConversationError::Closed,
            WireError::MediaNotFound => ConversationError::MediaNotFound,
            WireError::WindowClosed => ConversationError::WindowClosed,
            WireError::TemplateNotWhatsapp => ConversationError::TemplateNotWhatsapp,
            WireError::Retry => ConversationError::Retired,
            WireError::Unavailable(m) => ConversationError::Cluster(ClusterError::Unavailable(m)),
            WireError::Internal(m) => ConversationError::Read(m.into()),
        }
    }
}

impl From<&AppendRequest> for Append {
    fn from(r: &AppendRequest) -> Self {
        Append {
            message_id: r.message_id,
            author: r.author.clone(),
            direction: r.direction,
            text: r.text.clone(),
            media_id: r.media_id,
            status: r.status,
            provider_id: r.provider_id.clone(),
            media: r.media.clone(),
            extra: r.extra.clone(),
            private: r.private,
            template: r.template.clone(),
        }
    }
}

impl From<Append> for AppendRequest {
    fn from(w: Append) -> Self {
        AppendRequest {
            message_id: w.message_id,
            author: w.author,
            direction: w.direction,
            text: w.text,
            media_id: w.media_id,
            status: w.status,
            provider_id: w.provider_id,
            media: w.media,
            extra: w.extra,
            private: w.private,
            template: w.template,
        }
    }
}

impl From<&ConversationChange> for Update {
    fn from(c: &ConversationChange) -> Self {
        Update {
            status: c.status,
            assignee_id: c.assignee_id.flatten(),
            bot_enabled: c.bot_enabled,
            escalate: c.escalate.as_ref().map(|e| Escalate {
                reason: e.reason,
                detail: e.detail.clone(),
                by: e.by,
                handoff: e.handoff.clone(),
            }),
            close: c.close.as_ref().map(|k| Close {
                resolution: k.resolution.clone(),
                first_contact_resolution: k.first_contact_resolution,
                ask_rating: k.ask_rating,
            }),
            ratings: c.ratings.clone(),
            assign_if_unassigned: c.assign_if_unassigned,
            unassign: c.assignee_id == Some(None),
            labels: c.labels.clone(),
            contact: c.contact.clone(),
            erase: c.erase,
        }
    }
}

impl From<Update> for ConversationChange {
    fn from(w: Update) -> Self {
        ConversationChange {
            status: w.status,
            assignee_id: if w.unassign { Some(None) } else { w.assignee_id.map(Some) },
            bot_enabled: w.bot_enabled,
            escalate: w.escalate.map(|e| EscalateRequest { reason: e.reason, detail: e.detail, by: e.by, handoff: e.handoff }),
            close: w.close.map(|k| CloseRequest {
                resolution: k.resolution,
                first_contact_resolution: k.first_contact_resolution,
                ask_rating: k.ask_rating,
            }),
            ratings: w.ratings,
            assign_if_unassigned: w.assign_if_unassigned,
            labels: w.labels,
            contact: w.contact,
            erase: w.erase,
        }
    }
}

impl From<&MessageChange> for Change {
    fn from(c: &MessageChange) -> Self {
        Change {
            message_id: c.message_id,
            status: c.status,
            provider_id: c.provider_id.clone(),
            error_code: c.error_code.clone(),
            error_message: c.error_message.clone(),
            media: c.media.clone(),
            extra: c.extra.clone(),
            erase: c.erase,
        }
    }
}

impl From<Change> for MessageChange {
    fn from(w: Change) -> Self {
        MessageChange {
            message_id: w.message_id,
            status: w.status,
            provider_id: w.provider_id,
            error_code: w.error_code,
            error_message: w.error_message,
            media: w.media,
            extra: w.extra,
            erase: w.erase,
        }
    }
}

/// A conversation request that can travel to the node owning the conversation.
pub trait Forwardable: Command {
    /// The request as it goes to the owner; `None` for requests that stay local.
    fn forward(&self) -> Option<Forward>;
    /// The output carried by an owner's answer.
    fn answered(answer: ForwardAnswer) -> Result<Self::Output, ConversationError>;
    /// The owner's answer carrying `output`.
    fn answer(output: Self::Output) -> ForwardAnswer;
}

/// An answer of the wrong kind for the request it answers.
fn mismatched(answer: ForwardAnswer) -> ConversationError {
    match answer {
        ForwardAnswer::Failed(e) => e.into(),
        other => ConversationError::Cluster(ClusterError::Protocol(format!("unexpected answer from the owner: {other:?}"))),
    }
}

impl Forwardable for MessageChange {
    fn forward(&self) -> Option<Forward> {
        Some(Forward::Change(self.into()))
    }
    fn answered(answer: ForwardAnswer) -> Result<Arc<Message>, ConversationError> {
        match answer {
            ForwardAnswer::Message(m) => Ok(Arc::new(m)),
            other => Err(mismatched(other)),
        }
    }
    fn answer(output: Arc<Message>) -> ForwardAnswer {
        ForwardAnswer::Message((*output).clone())
    }
}

impl Forwardable for RewriteMessages {
    fn forward(&self) -> Option<Forward> {
        Some(Forward::Rewrite { from_seq: self.from_seq, to_seq: self.to_seq })
    }
    fn answered(answer: ForwardAnswer) -> Result<u64, ConversationError> {
        match answer {
            ForwardAnswer::Rewritten(n) => Ok(n),
            other => Err(mismatched(other)),
        }
    }
    fn answer(output: u64) -> ForwardAnswer {
        ForwardAnswer::Rewritten(output)
    }
}

impl Forwardable for MarkRead {
    fn forward(&self) -> Option<Forward> {
        Some(Forward::Read { seq: self.seq, kind: self.reader.kind.to_string(), id: self.reader.id })
    }
    fn answered(answer: ForwardAnswer) -> Result<u64, ConversationError> {
        match answer {
            ForwardAnswer::Read(seq) => Ok(seq),
            other => Err(mismatched(other)),
        }
    }
    fn answer(output: u64) -> ForwardAnswer {
        ForwardAnswer::Read(output)
    }
}

impl Forwardable for AppendRequest {
    fn forward(&self) -> Option<Forward> {
        Some(Forward::Append(self.into()))
    }
    fn answered(answer: ForwardAnswer) -> Result<Appended, ConversationError> {
        match answer {
            ForwardAnswer::Appended { created: true, message } => Ok(Appended::Created(Arc::new(message))),
            ForwardAnswer::Appended { created: false, message } => Ok(Appended::Existing(Arc::new(message))),
            other => Err(mismatched(other)),
        }
    }
    fn answer(output: Appended) -> ForwardAnswer {
        let created = matches!(output, Appended::Created(_));
        ForwardAnswer::Appended { created, message: (**output.message()).clone() }
    }
}

impl Forwardable for ConversationChange {
    fn forward(&self) -> Option<Forward> {
        Some(Forward::Update(self.into()))
    }
    fn answered(answer: ForwardAnswer) -> Result<Arc<Conversation>, ConversationError> {
        match answer {
            ForwardAnswer::Conversation(c) => Ok(Arc::new(c)),
            other => Err(mismatched(other)),
        }
    }
    fn answer(output: Arc<Conversation>) -> ForwardAnswer {
        ForwardAnswer::Conversation((*output).clone())
    }
}

impl Forwardable for Panic {
    fn forward(&self) -> Option<Forward> {
        None
    }
    fn answered(answer: ForwardAnswer) -> Result<(), ConversationError> {
        Err(mismatched(answer))
    }
    fn answer(_output: ()) -> ForwardAnswer {
        ForwardAnswer::Failed(WireError::Internal("not forwarded".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn an_unassignment_survives_the_wire() {
        // MessagePack cannot tell `Some(None)` from `None`; a forwarded
        // "unassign" once arrived as "leave the assignee alone".
        let change = ConversationChange { assignee_id: Some(None), ..ConversationChange::default() };
        let req = ForwardRequest { conversation: Uuid::nil(), command: Forward::Update(Update::from(&change)) };
        let back = ForwardRequest::decode(&req.encode().expect("encode")).expect("decode");
        let Forward::Update(u) = back.command else { panic!("not an update") };
        assert_eq!(ConversationChange::from(u).assignee_id, Some(None));
        let agent = Uuid::from_u128(7);
        let change = ConversationChange { assignee_id: Some(Some(agent)), ..ConversationChange::default() };
        assert_eq!(ConversationChange::from(Update::from(&change)).assignee_id, Some(Some(agent)));
        assert_eq!(ConversationChange::from(Update::from(&ConversationChange::default())).assignee_id, None);
    }

    #[test]
    fn a_rewrite_and_its_answer_survive_the_wire() {
        let rewrite = RewriteMessages { from_seq: 3, to_seq: 900 };
        let req = ForwardRequest { conversation: Uuid::nil(), command: rewrite.forward().expect("forwarded") };
        let back = ForwardRequest::decode(&req.encode().expect("encode")).expect("decode");
        assert!(matches!(back.command, Forward::Rewrite { from_seq: 3, to_seq: 900 }), "{back:?}");
        let answer = ForwardAnswer::decode(&RewriteMessages::answer(498).encode()).expect("decode");
        assert_eq!(RewriteMessages::answered(answer).expect("a count"), 498);
        assert!(RewriteMessages::answered(ForwardAnswer::Read(1)).is_err(), "another kind of answer is an error");
    }
}
