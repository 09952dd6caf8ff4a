//! Requests to a conversation forwarded to the node that owns it, and their
//! answers, as they travel between nodes. These are the wire's own types:
//! the conversation's commands convert to and from them
//! (`conversation/forward.rs`), so a change to a command does not change
//! what nodes send each other unnoticed. Encoded with field names, so a
//! field added at the end is read as absent by an older node.

use crate::cluster::ClusterError;
use serde::{Deserialize, Serialize};
use utalk_storage::model::{
    Attachment, Author, Conversation, ConversationStatus, Direction, EscalationReason, MediaStatus, Message, MessageStatus, RatingKind,
    RatingSource,
};
use utalk_storage::Batch;
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
    Append(Append),
    /// Change the conversation's fields.
    Update(Update),
    /// Change a stored message.
    Change(Change),
    /// Move a read marker.
    Read {
        /// Up to which seq.
        seq: u64,
        /// `agent` or `customer`.
        kind: String,
        /// The staff user.
        id: Option<Uuid>,
    },
    /// Store messages again in the current format. Added in schema 7 (last,
    /// so the variants above keep their wire form): sent only once every
    /// node runs a build that knows it.
    Rewrite {
        /// The first seq.
        from_seq: u64,
        /// The last seq.
        to_seq: u64,
    },
}

/// A message to append.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Append {
    /// The client's idempotency key.
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
    /// Media files with their download state.
    pub media: Vec<Attachment>,
    /// Other writes for the same batch.
    pub extra: Batch,
    /// Send as this WhatsApp template. Added after the first release; left out when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<utalk_storage::model::Template>,
    /// A private note. Added after the first release: bytes without it read
    /// as `false`, and it is left out when false, so other requests keep their bytes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub private: bool,
}

/// A change of a conversation's own fields.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Update {
    /// New status.
    pub status: Option<ConversationStatus>,
    /// New assignee. MessagePack writes `Some(None)` and `None` alike as
    /// nil, so an unassignment travels in `unassign` instead.
    pub assignee_id: Option<Uuid>,
    /// Bot on or off.
    pub bot_enabled: Option<bool>,
    /// Hand to people.
    pub escalate: Option<Escalate>,
    /// Close.
    pub close: Option<Close>,
    /// Ratings given.
    pub ratings: Vec<(RatingKind, u8, RatingSource)>,
    /// Assign only if nobody is assigned and the conversation is escalated.
    pub assign_if_unassigned: Option<Uuid>,
    /// Remove the assignee. Added after the first release: older nodes skip
    /// it, and bytes without it read as `false`.
    #[serde(default)]
    pub unassign: bool,
    /// The new set of labels. Added after the first release: older nodes skip
    /// it, and it is left out when absent, so other changes keep their bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<String>>,
    /// Link to this contact with these customer fields. Added after the
    /// first release: older nodes skip it; left out when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<(Uuid, utalk_storage::model::Customer)>,
    /// Forget the customer (an erasure). Added after the first release:
    /// older nodes skip it; left out when false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub erase: bool,
}

/// An escalation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Escalate {
    /// Why.
    pub reason: EscalationReason,
    /// Keyword, phrase or note.
    pub detail: Option<String>,
    /// Staff user, for manual escalations.
    pub by: Option<Uuid>,
    /// The bot's hand-over message (id, text).
    pub handoff: Option<(Uuid, String)>,
}

/// A close.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Close {
    /// How it was resolved.
    pub resolution: String,
    /// Resolved at first contact.
    pub first_contact_resolution: Option<bool>,
    /// Send the rating question.
    pub ask_rating: bool,
}

/// A change to a stored message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Change {
    /// The message.
    pub message_id: Uuid,
    /// New status.
    pub status: Option<MessageStatus>,
    /// The channel's id for the message.
    pub provider_id: Option<String>,
    /// The channel's error code.
    pub error_code: Option<String>,
    /// The channel's error text.
    pub error_message: Option<String>,
    /// A media file's new state: id, status, error.
    pub media: Option<(Uuid, MediaStatus, Option<String>)>,
    /// Other writes for the same batch.
    pub extra: Batch,
    /// Forget what the message says (an erasure). Added after the first
    /// release: older nodes skip it; left out when false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub erase: bool,
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
    /// How many messages a rewrite wrote (added in schema 7, last).
    Rewritten(u64),
}

/// A conversation's error as it travels between nodes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum WireError {
    /// The conversation's `NotFound`.
    NotFound,
    /// The conversation's `MessageIdConflict`.
    MessageIdConflict,
    /// The conversation's `Overloaded`.
    Overloaded,
    /// The conversation's `InvalidSeq`.
    InvalidSeq(u64),
    /// The conversation's `MessageNotFound`.
    MessageNotFound,
    /// The conversation's `MessagePending`.
    MessagePending,
    /// The conversation's `BotPaused`.
    BotPaused,
    /// The conversation's `Closed`.
    Closed,
    /// The owner restarted or gave the conversation up; ask again.
    Retry,
    /// The owner could not reach the log or its store; the write may or may not have happened.
    Unavailable(String),
    /// Something the caller cannot fix.
    Internal(String),
    /// The conversation's `MediaNotFound` (last, so earlier variants keep their wire form).
    MediaNotFound,
    /// The conversation's `WindowClosed` (after the variants above, for their wire form).
    WindowClosed,
    /// The conversation's `TemplateNotWhatsapp`.
    TemplateNotWhatsapp,
}

impl ForwardRequest {
    /// The request as bytes.
    pub fn encode(&self) -> Result<Vec<u8>, ClusterError> {
        rmp_serde::to_vec_named(self).map_err(|e| ClusterError::Protocol(e.to_string()))
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
    pub fn decode(bytes: &[u8]) -> Result<ForwardAnswer, ClusterError> {
        rmp_serde::from_slice(bytes).map_err(|e| ClusterError::Protocol(format!("cannot decode a forwarded answer: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> ForwardRequest {
        let id = Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_0001);
        let update = Update {
            status: Some(ConversationStatus::Closed),
            unassign: true,
            close: Some(Close { resolution: "done".into(), first_contact_resolution: Some(true), ask_rating: false }),
            ..Update::default()
        };
        ForwardRequest { conversation: id, command: Forward::Update(update) }
    }

    #[test]
    fn a_request_keeps_its_bytes_and_survives_the_trip() {
        // Nodes of two releases talk during a rolling upgrade: these bytes
        // change only on purpose (and then older nodes must still read them).
        let bytes = request().encode().expect("encode");
        assert_eq!(hex::encode(&bytes), GOLDEN, "the forwarded request's wire bytes changed");
        let back = ForwardRequest::decode(&bytes).expect("decode");
        assert!(matches!(
            back.command,
            Forward::Update(Update { close: Some(Close { ask_rating: false, .. }), unassign: true, assignee_id: None, .. })
        ));
        // What a node of the release before `unassign` sends still reads.
        let older = hex::decode(BEFORE_UNASSIGN).expect("hex");
        assert!(matches!(ForwardRequest::decode(&older).expect("older bytes").command, Forward::Update(Update { unassign: false, .. })));
        assert!(matches!(ForwardRequest::decode(b"\x01garbage"), Err(ClusterError::Protocol(_))));
    }

    const GOLDEN: &str = "82ac636f6e766572736174696f6ec41001930000000070008000000000000001a7636f6d6d616e6481a655706461746588a6737461747573a6636c6f736564ab61737369676e65655f6964c0ab626f745f656e61626c6564c0a8657363616c617465c0a5636c6f736583aa7265736f6c7574696f6ea4646f6e65b866697273745f636f6e746163745f7265736f6c7574696f6ec3aa61736b5f726174696e67c2a7726174696e677390b461737369676e5f69665f756e61737369676e6564c0a8756e61737369676ec3";
    /// The same request from a node of the previous release.
    const BEFORE_UNASSIGN: &str = "82ac636f6e766572736174696f6ec41001930000000070008000000000000001a7636f6d6d616e6481a655706461746587a6737461747573a6636c6f736564ab61737369676e65655f6964c0ab626f745f656e61626c6564c0a8657363616c617465c0a5636c6f736583aa7265736f6c7574696f6ea4646f6e65b866697273745f636f6e746163745f7265736f6c7574696f6ec3aa61736b5f726174696e67c2a7726174696e677390b461737369676e5f69665f756e61737369676e6564c0";
}
