//! What Socket.IO connection state recovery needs of a session, kept so
//! that a client can recover it after the server restarts: who it was, the
//! conversations it had joined with what each had received, and the tail of
//! its offset log. One record per private session id (`pid`), written by
//! the node's session store at most once a flush period, deleted when the
//! client leaves or the recovery window ends.

use crate::batch::Batch;
use crate::codec::Record;
use crate::db::Db;
use crate::error::{CodecError, StoreError};
use crate::keys::Key;
use crate::maps::Map;
use crate::model::Role;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Whose session it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum SessionOwner {
    /// A staff user.
    Staff {
        /// User.
        user_id: Uuid,
        /// Role when it connected.
        role: Role,
    },
    /// A web chat customer in one conversation.
    Widget {
        /// The conversation.
        conversation_id: Uuid,
    },
}

/// One session's recovery state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SocketSession {
    /// The Socket.IO id the client keeps when it recovers.
    pub sid: String,
    /// Whose it was.
    pub owner: SessionOwner,
    /// Joined conversations and the highest seq known received before `log`.
    pub floors: Vec<(Uuid, u64)>,
    /// The latest deliveries: (offset, conversation, seq), oldest first.
    pub log: Vec<(u64, Uuid, u64)>,
    /// The next offset the session would have handed out.
    pub next_offset: u64,
    /// When the client went away; `None` while it was connected (then the
    /// node's last flush is when it went, if the server stopped).
    pub dropped_at: Option<Timestamp>,
}

impl Record for SocketSession {
    const KIND: &'static str = "socket_session";
}

/// The meta key of the time the session store last wrote its sessions.
const FLUSHED_AT: &[u8] = b"socket_sessions_flushed_at";

fn key(pid: &str) -> Result<Key, CodecError> {
    Key::new().str(pid)
}

/// Adds the write of session `pid` to `batch`.
pub fn put(batch: &mut Batch, pid: &str, session: &SocketSession) -> Result<(), CodecError> {
    batch.put(Map::SocketSessions, key(pid)?, session)?;
    Ok(())
}

/// Adds the removal of session `pid` to `batch`.
pub fn delete(batch: &mut Batch, pid: &str) -> Result<(), CodecError> {
    batch.delete(Map::SocketSessions, key(pid)?);
    Ok(())
}

/// Session `pid`, if kept.
pub fn get(db: &Db, pid: &str) -> Result<Option<SocketSession>, StoreError> {
    db.get(Map::SocketSessions, key(pid)?)
}

/// Up to `limit` sessions after private id `after` (exclusive), in id order.
pub fn page(db: &Db, after: Option<&str>, limit: usize) -> Result<Vec<(String, SocketSession)>, StoreError> {
    let start = match after {
        // The smallest key after `after`: the same bytes and one more.
        Some(pid) => {
            let mut k = key(pid)?.into_bytes();
            k.push(0);
            k
        }
        None => Vec::new(),
    };
    db.scan::<SocketSession>(Map::SocketSessions, &[], &start, limit)?
        .into_iter()
        .map(|(k, v)| Ok((crate::keys::KeyReader::new(&k).str()?.to_string(), v)))
        .collect()
}

/// Adds "the sessions were written at `at`" to `batch`.
pub fn put_flushed_at(batch: &mut Batch, at: Timestamp) {
    batch.put_raw(Map::Meta, FLUSHED_AT.to_vec(), at.millis().to_be_bytes().to_vec());
}

/// When the session store last wrote its sessions, if ever.
pub fn flushed_at(db: &Db) -> Result<Option<Timestamp>, StoreError> {
    Ok(db.get_raw(Map::Meta, FLUSHED_AT)?.and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok()).map(|b| Timestamp(i64::from_be_bytes(b))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::DbOptions;

    #[test]
    fn sessions_are_written_read_paged_and_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), &DbOptions::default()).unwrap();
        let conv = Uuid::now_v7();
        let s = SocketSession {
            sid: "s1".into(),
            owner: SessionOwner::Widget { conversation_id: conv },
            floors: vec![(conv, 3)],
            log: vec![(7, conv, 4), (8, conv, 5)],
            next_offset: 9,
            dropped_at: None,
        };
        let mut b = Batch::new();
        for pid in ["a", "b", "c"] {
            put(&mut b, pid, &s).unwrap();
        }
        put_flushed_at(&mut b, Timestamp(1234));
        db.write_group([&b], true).unwrap();
        assert_eq!(get(&db, "b").unwrap(), Some(s.clone()));
        assert_eq!(flushed_at(&db).unwrap(), Some(Timestamp(1234)));
        let first: Vec<String> = page(&db, None, 2).unwrap().into_iter().map(|(p, _)| p).collect();
        assert_eq!(first, ["a", "b"]);
        let rest: Vec<String> = page(&db, Some("b"), 2).unwrap().into_iter().map(|(p, _)| p).collect();
        assert_eq!(rest, ["c"]);
        let mut b = Batch::new();
        delete(&mut b, "b").unwrap();
        db.write_group([&b], true).unwrap();
        assert_eq!(get(&db, "b").unwrap(), None);
    }
}
