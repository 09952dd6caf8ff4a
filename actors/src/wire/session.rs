//! A dropped Socket.IO session, as one node stashes it for any other to
//! recover (the client may come back through the load balancer elsewhere).

use crate::cluster::ClusterError;
use serde::{Deserialize, Serialize};
use utalk_storage::model::Role;
use uuid::Uuid;

/// Who the session belonged to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum StashedIdentity {
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

/// What connection state recovery needs of a dropped session.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StashedSession {
    /// Engine.IO session id.
    pub sid: String,
    /// Who it was.
    pub identity: StashedIdentity,
    /// Joined conversations and the highest seq delivered before the offset log.
    pub floors: Vec<(Uuid, u64)>,
    /// Recent emitted messages: (offset, conversation, seq).
    pub log: Vec<(u64, Uuid, u64)>,
    /// Next offset to hand out.
    pub next_offset: u64,
    /// Milliseconds since the epoch (an `Instant` means nothing on another machine).
    pub saved_at_ms: i64,
}

impl StashedSession {
    /// The session as bytes.
    pub fn encode(&self) -> Result<Vec<u8>, ClusterError> {
        rmp_serde::to_vec_named(self).map_err(|e| ClusterError::Protocol(format!("cannot encode a session: {e}")))
    }
    /// A session from bytes.
    pub fn decode(bytes: &[u8]) -> Result<StashedSession, ClusterError> {
        rmp_serde::from_slice(bytes).map_err(|e| ClusterError::Protocol(format!("cannot decode a stashed session: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stashed_session_keeps_its_bytes() {
        // Nodes of two releases share stashed sessions during a rolling
        // upgrade: these bytes change only on purpose.
        let s = StashedSession {
            sid: "s1".into(),
            identity: StashedIdentity::Staff { user_id: Uuid::from_u128(1), role: Role::Agent },
            floors: vec![(Uuid::from_u128(2), 5)],
            log: vec![(1, Uuid::from_u128(2), 6)],
            next_offset: 2,
            saved_at_ms: 1_700_000_000_000,
        };
        let bytes = s.encode().expect("encode");
        assert_eq!(hex::encode(&bytes), GOLDEN, "the stashed session's wire bytes changed");
        let back = StashedSession::decode(&bytes).expect("decode");
        assert_eq!(back.identity, s.identity);
        assert_eq!((back.floors, back.log, back.next_offset), (s.floors, s.log, s.next_offset));
        assert!(matches!(StashedSession::decode(b"\x93"), Err(ClusterError::Protocol(_))));
    }

    // The same bytes as the release before the wire types had their own module.
    const GOLDEN: &str = "86a3736964a27331a86964656e7469747981a5537461666682a7757365725f6964c41000000000000000000000000000000001a4726f6c65a56167656e74a6666c6f6f72739192c4100000000000000000000000000000000205a36c6f67919301c4100000000000000000000000000000000206ab6e6578745f6f666673657402ab73617665645f61745f6d73cf0000018bcfe56800";
}
