//! Why a conversation could not do what was asked: the error every
//! conversation request answers with, on one node and across nodes.

use crate::cluster::ClusterError;
use crate::durability::{JournalError, WriteError};
use std::sync::Arc;
use utalk_storage::StoreError;

/// Why a conversation could not do what was asked.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConversationError {
    /// No such conversation.
    #[error("conversation not found")]
    NotFound,
    /// The `messageId` is already used in another conversation.
    #[error("messageId is already used in another conversation")]
    MessageIdConflict,
    /// Too many writes are waiting in this conversation.
    #[error("conversation is overloaded; retry later")]
    Overloaded,
    /// The write did not become durable.
    #[error(transparent)]
    Write(#[from] WriteError),
    /// Reading the stored state failed.
    #[error("storage read failed: {0}")]
    Read(Arc<str>),
    /// The actor failed while handling the request; it restarts from storage.
    /// A retry with the same `messageId` is safe.
    #[error("conversation restarted while handling the request; retry")]
    Restarted,
    /// The actor was retired for idleness; the registry retries on a new one.
    #[error("conversation actor retired")]
    Retired,
    /// A read marker past the last message.
    #[error("seq {0} is past the conversation's last message")]
    InvalidSeq(u64),
    /// No message with this id in the conversation.
    #[error("message not found in this conversation")]
    MessageNotFound,
    /// The message is still being written; a change can follow once it is durable.
    #[error("the message is not durable yet; retry")]
    MessagePending,
    /// A bot message for a conversation that is escalated, closed or has its bot paused.
    #[error("the bot is paused in this conversation")]
    BotPaused,
    /// The change needs an open conversation (escalating a closed one).
    #[error("the conversation is closed")]
    Closed,
    /// The message names media that does not exist or belongs to another conversation.
    #[error("mediaId names no media of this conversation")]
    MediaNotFound,
    /// A free-form message to a WhatsApp customer who has not written for 24
    /// hours (or ever): only an approved template may be sent.
    #[error("the WhatsApp window is closed: the customer has not written in 24 hours; send a template")]
    WindowClosed,
    /// A template in a conversation that is not on WhatsApp.
    #[error("templates are sent on WhatsApp only")]
    TemplateNotWhatsapp,
    /// The cluster did not take the change (its owner moved, or the log is
    /// unreachable); a retry with the same `messageId` is safe.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
}

impl From<JournalError> for ConversationError {
    fn from(e: JournalError) -> Self {
        match e {
            JournalError::Write(w) => ConversationError::Write(w),
            JournalError::Cluster(c) => ConversationError::Cluster(c),
            behind @ JournalError::Behind { .. } => ConversationError::Cluster(ClusterError::Unavailable(behind.to_string())),
        }
    }
}

impl From<StoreError> for ConversationError {
    fn from(e: StoreError) -> Self {
        ConversationError::Read(e.to_string().into())
    }
}
