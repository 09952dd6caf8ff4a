//! Who is speaking: a staff user or a web chat customer. Shared by the
//! conversation core, which checks what an identity may write, and by the
//! socket and HTTP layers, which establish it from a token.

use utalk_storage::model::Role;
use uuid::Uuid;

/// Who a client is, from its token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity {
    /// A staff user.
    Staff {
        /// User id.
        user_id: Uuid,
        /// Role.
        role: Role,
    },
    /// A web chat customer, limited to one conversation.
    Widget {
        /// The conversation.
        conversation_id: Uuid,
    },
}

impl Identity {
    /// Whether the identity may see `conversation`.
    pub fn may_access(&self, conversation: Uuid) -> bool {
        match self {
            // An integration key reaches only `api` conversations, which this
            // cannot tell: the REST routes check the channel; sockets do not join.
            Identity::Staff { role: Role::Integration, .. } => false,
            Identity::Staff { .. } => true,
            Identity::Widget { conversation_id } => *conversation_id == conversation,
        }
    }

    /// Whether the identity reads and writes private notes: staff who may
    /// read conversations. A widget is the customer, and an integration key
    /// speaks for its customers, so neither does.
    pub fn sees_private_notes(&self) -> bool {
        matches!(self, Identity::Staff { role, .. } if *role != Role::Integration)
    }

    /// Who this is, as shown to others in a conversation.
    pub fn actor(&self) -> crate::fanout::broker::Actor {
        match self {
            Identity::Staff { user_id, .. } => crate::fanout::broker::Actor { kind: "agent", id: Some(*user_id) },
            Identity::Widget { .. } => crate::fanout::broker::Actor { kind: "customer", id: None },
        }
    }
}
