//! Requests to a conversation forwarded to the node that owns it, and their
//! answers, as they travel between nodes.

use crate::cluster::ClusterError;
use crate::conversation::{AppendRequest, Appended, Command, ConversationChange, ConversationError, MarkRead, MessageChange, Panic};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utalk_storage::model::{Conversation, Message};
use uuid::Uuid;

/// A conversation request sent to its owner.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ForwardRequest {
    /// The conversation.
    pub conversation: Uuid,
    /// What is asked of it.
    pub command: Forward,
}

/// What is asked of a conversation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Forward {
    /// Append a message.
    Append(AppendRequest),
    /// Change the conversation's fields.
    Update(ConversationChange),
    /// Change a stored message.
    Change(MessageChange),
    /// Move a read marker.
    Read {
        /// Up to which seq.
        seq: u64,
        /// `agent` or `customer`.
        kind: String,
        /// The staff user.
        id: Option<Uuid>,
    },
}

/// The owner's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ForwardAnswer {
    /// An append's message, and whether it was new.
    Appended {
        /// Stored now rather than found.
        created: bool,
        /// The message.
        message: Message,
    },
    /// The conversation after a change.
    Conversation(Conversation),
    /// The message after a change.
    Message(Message),
    /// The stored read marker.
    Read(u64),
    /// The request failed.
    Failed(WireError),
}

/// A [`ConversationError`] as it travels between nodes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum WireError {
    /// [`ConversationError::NotFound`].
    NotFound,
    /// [`ConversationError::MessageIdConflict`].
    MessageIdConflict,
    /// [`ConversationError::Overloaded`].
    Overloaded,
    /// [`ConversationError::InvalidSeq`].
    InvalidSeq(u64),
    /// [`ConversationError::MessageNotFound`].
    MessageNotFound,
    /// [`ConversationError::MessagePending`].
    MessagePending,
    /// [`ConversationError::BotPaused`].
    BotPaused,
    /// [`ConversationError::Closed`].
    Closed,
    /// The owner restarted or gave the conversation up; ask again.
    Retry,
    /// The owner could not reach the log or its store; the write may or may not have happened.
    Unavailable(String),
    /// Something the caller cannot fix.
    Internal(String),
    /// [`ConversationError::MediaNotFound`] (last, so earlier variants keep their wire form).
    MediaNotFound,
}

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
            WireError::Retry => ConversationError::Retired,
            WireError::Unavailable(m) => ConversationError::Cluster(ClusterError::Unavailable(m)),
            WireError::Internal(m) => ConversationError::Read(m.into()),
        }
    }
}

impl ForwardRequest {
    /// The request as bytes.
    pub fn encode(&self) -> Result<Vec<u8>, ConversationError> {
        rmp_serde::to_vec_named(self).map_err(|e| ConversationError::Cluster(ClusterError::Protocol(e.to_string())))
    }
    /// A request from bytes.
    pub fn decode(bytes: &[u8]) -> Result<ForwardRequest, ClusterError> {
        rmp_serde::from_slice(bytes).map_err(|e| ClusterError::Protocol(format!("cannot decode a forwarded request: {e}")))
    }
}

impl ForwardAnswer {
    /// The answer as bytes; one that cannot be encoded becomes an internal error.
    pub fn encode(&self) -> Vec<u8> {
        rmp_serde::to_vec_named(self).unwrap_or_else(|e| {
            let failed = ForwardAnswer::Failed(WireError::Internal(format!("cannot encode the answer: {e}")));
            rmp_serde::to_vec_named(&failed).unwrap_or_default()
        })
    }
    /// An answer from bytes.
    pub fn decode(bytes: &[u8]) -> Result<ForwardAnswer, ConversationError> {
        rmp_serde::from_slice(bytes)
            .map_err(|e| ConversationError::Cluster(ClusterError::Protocol(format!("cannot decode a forwarded answer: {e}"))))
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
        Some(Forward::Change(self.clone()))
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
        Some(Forward::Append(self.clone()))
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
        Some(Forward::Update(self.clone()))
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
