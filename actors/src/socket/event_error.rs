//! Why a socket event was refused, and the code its error ack carries.

use crate::conversation::{ConversationError, InvalidMessage};
use crate::socket::event_args::Invalid;

/// A refused socket event. Its [`EventError::code`] and message are what
/// the error ack (or `error` event) carries.
#[derive(Debug, thiserror::Error)]
pub(crate) enum EventError {
    /// A field of the payload is missing or malformed.
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// The identity may not reach the conversation.
    #[error("this identity may not reach that conversation")]
    Forbidden,
    /// The conversation does not exist.
    #[error("conversation not found")]
    NotFound,
    /// No such event.
    #[error("unknown event `{0}`")]
    UnknownEvent(String),
    /// A rating out of range or missing.
    #[error("{0}")]
    InvalidRating(&'static str),
    /// The message was refused before reaching the conversation.
    #[error(transparent)]
    Message(#[from] InvalidMessage),
    /// The conversation refused the change.
    #[error(transparent)]
    Conversation(#[from] ConversationError),
    /// Something failed on the server; logged where it happened.
    #[error("internal error")]
    Internal,
}

impl EventError {
    /// The error code clients see.
    pub(crate) fn code(&self) -> &'static str {
        match self {
            EventError::Invalid(_) => "invalid_request",
            EventError::Forbidden => "forbidden",
            EventError::NotFound => "not_found",
            EventError::UnknownEvent(_) => "unknown_event",
            EventError::InvalidRating(_) => "invalid_rating",
            EventError::Message(m) => m.code(),
            EventError::Conversation(e) => match e {
                ConversationError::NotFound => "not_found",
                ConversationError::MessageNotFound => "message_not_found",
                ConversationError::MessagePending => "message_pending",
                ConversationError::BotPaused => "bot_paused",
                ConversationError::Closed => "conversation_closed",
                ConversationError::MediaNotFound => "media_not_found",
                ConversationError::WindowClosed => "whatsapp_window_closed",
                ConversationError::TemplateNotWhatsapp => "template_not_supported",
                ConversationError::MessageIdConflict => "message_id_conflict",
                ConversationError::Overloaded => "overloaded",
                ConversationError::Write(_) => "storage_unavailable",
                ConversationError::Cluster(_) => "cluster_unavailable",
                ConversationError::Read(_) => "internal",
                ConversationError::Restarted | ConversationError::Retired => "conversation_restarted",
                ConversationError::InvalidSeq(_) => "invalid_seq",
            },
            EventError::Internal => "internal",
        }
    }

    /// A server-side failure, logged here; the client hears only `internal`.
    pub(crate) fn internal(e: impl std::fmt::Display) -> EventError {
        tracing::error!(error = %e, "socket event failed");
        EventError::Internal
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_refusal_has_its_code_and_message() {
        let e = EventError::from(Invalid("seq must be a non-negative integer"));
        assert_eq!((e.code(), e.to_string().as_str()), ("invalid_request", "seq must be a non-negative integer"));
        let e = EventError::from(InvalidMessage::TooLong);
        assert_eq!(e.code(), "text_too_long");
        assert!(e.to_string().contains("4096"), "{e}");
        assert_eq!(EventError::from(ConversationError::Closed).code(), "conversation_closed");
        assert_eq!(EventError::UnknownEvent("x:y".into()).to_string(), "unknown event `x:y`");
        assert_eq!(EventError::internal("disk on fire").to_string(), "internal error");
    }
}
