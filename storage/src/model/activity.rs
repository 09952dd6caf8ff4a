//! Each conversation's last activity, to the second, indexed so that
//! integrators can list conversations by it and sync what changed since a
//! time. A message append does not rewrite the conversation record, so the
//! activity is its own pair of entries, moved at most once a second per
//! conversation (whole seconds: a conversation active at any moment of a
//! second is found by a query from anywhere in that second).

use crate::batch::Batch;
use crate::db::Db;
use crate::error::StoreError;
use crate::keys::{Key, KeyReader};
use crate::maps::Map;
use crate::model::conversation::{self, Conversation, ConversationFilter};
use crate::model::message;
use crate::time::Timestamp;
use uuid::Uuid;

/// The second `at` falls in.
pub fn second_of(at: Timestamp) -> i64 {
    at.millis().div_euclid(1000)
}

fn index_key(sec: i64, id: Uuid) -> Vec<u8> {
    Key::new().i64(sec).uuid(id).into_bytes()
}

/// The conversation's last active second, if indexed.
pub fn get(db: &Db, id: Uuid) -> Result<Option<i64>, StoreError> {
    match db.get_raw(Map::ConvidActivity, Key::new().uuid(id))? {
        Some(v) => Ok(Some(KeyReader::new(&v).i64()?)),
        None => Ok(None),
    }
}

/// Adds "`id` was last active in second `sec`" to `batch`, replacing `old`.
pub fn set(batch: &mut Batch, id: Uuid, old: Option<i64>, sec: i64) {
    if let Some(o) = old.filter(|o| *o != sec) {
        batch.delete_raw(Map::ActivityConvid, index_key(o, id));
    }
    batch.put_raw(Map::ActivityConvid, index_key(sec, id), Vec::new());
    batch.put_raw(Map::ConvidActivity, Key::new().uuid(id).into_bytes(), Key::new().i64(sec).into_bytes());
}

/// Where a page by activity starts: after this entry.
pub type Cursor = (i64, Uuid);

/// Conversations with their active second, and the cursor of the next page.
pub type Page = (Vec<(i64, Conversation)>, Option<Cursor>);

/// A page of conversations matching `filter` by last activity (oldest
/// first, or newest with `descending`), active in or after second `since`,
/// after `cursor`; at most `limit`, with the cursor of the next page. Like
/// [`conversation::list`], a page stops early after a bounded scan.
pub fn page(
    db: &Db,
    filter: &ConversationFilter,
    since: Option<i64>,
    cursor: Option<Cursor>,
    descending: bool,
    limit: usize,
) -> Result<Page, StoreError> {
    const SCAN_BUDGET: usize = 5_000;
    let floor = since.unwrap_or(i64::MIN);
    let mut out = Vec::with_capacity(limit);
    let mut scanned = 0;
    // The next scan starts strictly past `at` (in the direction of the scan).
    let mut at: Option<Vec<u8>> = cursor.map(|(s, id)| index_key(s, id));
    loop {
        let chunk = if descending {
            let before = at.clone().unwrap_or_else(|| vec![0xff; 25]);
            db.scan_raw_rev_prefix(Map::ActivityConvid, &[], &before, 256)?
        } else {
            let start = match &at {
                Some(k) => Key::new().bytes(k).u8(0).into_bytes(),
                None => Key::new().i64(floor).into_bytes(),
            };
            db.scan_raw(Map::ActivityConvid, &[], &start, 256)?
        };
        let Some((last, _)) = chunk.last() else { return Ok((out, None)) };
        at = Some(last.clone());
        for (k, _) in &chunk {
            let mut r = KeyReader::new(k);
            let (sec, id) = (r.i64()?, r.uuid()?);
            if sec < floor {
                // Descending past `since`: nothing older is wanted.
                return Ok((out, None));
            }
            scanned += 1;
            if let Some(c) = conversation::get(db, id)?.filter(|c| filter.matches(c)) {
                out.push((sec, c));
                if out.len() == limit {
                    return Ok((out, Some((sec, id))));
                }
            }
            if scanned >= SCAN_BUDGET {
                return Ok((out, Some((sec, id))));
            }
        }
    }
}

/// Indexes the activity of every conversation that has none: its last
/// message's time or its own last change, whichever is later. How many.
pub fn backfill(db: &Db, batch: &mut Batch) -> Result<u64, StoreError> {
    let mut n = 0;
    for (_, c) in db.scan::<Conversation>(Map::Conversations, &[], &[], usize::MAX)? {
        if get(db, c.id)?.is_some() {
            continue;
        }
        let last_message = message::last(db, c.id)?.map(|m| m.created_at);
        let at = last_message.map_or(c.updated_at, |m| m.max(c.updated_at)).max(c.created_at);
        set(batch, c.id, None, second_of(at));
        n += 1;
    }
    Ok(n)
}

/// Whether every conversation has its activity indexed.
pub fn complete(db: &Db) -> Result<bool, StoreError> {
    for (k, _) in db.scan_raw(Map::Conversations, &[], &[], usize::MAX)? {
        if get(db, KeyReader::new(&k).uuid()?)?.is_none() {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::DbOptions;
    use crate::model::conversation::{Channel, ConversationStatus, Customer};

    #[test]
    fn conversations_page_by_activity_both_ways_from_a_second() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open(dir.path(), &DbOptions::default()).expect("open");
        let mut ids = Vec::new();
        let mut b = Batch::new();
        for i in 0..5i64 {
            let mut c = Conversation::new(Channel::Api, Customer::default(), None);
            if i == 2 {
                c.status = ConversationStatus::Closed;
            }
            b.extend(conversation::put_batch(None, &c).expect("put"));
            set(&mut b, c.id, None, 100 + i);
            ids.push(c.id);
        }
        db.write_group([&b], false).expect("write");
        // The first one moves to the newest second; its old entry goes.
        let mut b = Batch::new();
        set(&mut b, ids[0], Some(100), 200);
        db.write_group([&b], false).expect("write");
        let all = ConversationFilter::default();
        let order = |v: Vec<(i64, Conversation)>| v.into_iter().map(|(_, c)| c.id).collect::<Vec<_>>();

        let (p, next) = page(&db, &all, None, None, false, 2).expect("page");
        assert_eq!(order(p), vec![ids[1], ids[2]]);
        let (p, next) = page(&db, &all, None, next, false, 10).expect("page");
        assert_eq!(order(p), vec![ids[3], ids[4], ids[0]]);
        assert_eq!(next, None);

        let (p, next) = page(&db, &all, None, None, true, 2).expect("page");
        assert_eq!(order(p), vec![ids[0], ids[4]]);
        let (p, _) = page(&db, &all, None, next, true, 10).expect("page");
        assert_eq!(order(p), vec![ids[3], ids[2], ids[1]]);

        let (p, _) = page(&db, &all, Some(103), None, false, 10).expect("since");
        assert_eq!(order(p), vec![ids[3], ids[4], ids[0]]);
        let (p, _) = page(&db, &all, Some(103), None, true, 10).expect("since, newest first");
        assert_eq!(order(p), vec![ids[0], ids[4], ids[3]]);
        let open = ConversationFilter { status: Some(ConversationStatus::Open), ..ConversationFilter::default() };
        let (p, _) = page(&db, &open, None, None, false, 10).expect("filtered");
        assert_eq!(order(p), vec![ids[1], ids[3], ids[4], ids[0]]);
        assert!(complete(&db).expect("complete"));
    }
}
