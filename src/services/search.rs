//! Search: conversations and contacts found by their words, as the caller
//! may see them. The index ranks; this module pages, applies the list's
//! other filters and the caller's reach, and reads the records to show.

use super::conversations::{with_last_seq, Listed};
use super::ServiceError;
use utalk_actors::search::{SearchError, SearchIndex};
use utalk_actors::Identity;
use utalk_storage::model::{contact, conversation, Contact, ConversationFilter};
use utalk_storage::Db;
use uuid::Uuid;

/// Deepest a search pages: past it, people refine the words.
pub const MAX_OFFSET: usize = 1000;
/// The largest page a list gives (`limit`, routes' `page_size`).
const MAX_PAGE: usize = 200;
// The deepest page, and one more to know there is a next, fit in what the index looks at.
const _: () = assert!(MAX_OFFSET + MAX_PAGE < utalk_actors::search::MAX_HITS);

/// Conversations matching `q` that `filter` keeps, best first, from
/// `offset`: at most `limit`, and the offset of the next page. Words of
/// private notes count only when `who` may read notes.
pub fn conversations(
    db: &Db,
    index: Option<&SearchIndex>,
    who: Identity,
    q: &str,
    filter: &ConversationFilter,
    offset: usize,
    limit: usize,
) -> Result<(Vec<Listed>, Option<usize>), ServiceError> {
    let index = usable(index, offset)?;
    let ids = index.conversations(q, who.sees_private_notes(), MAX_OFFSET + limit + 1).map_err(from_search)?;
    let mut kept = Vec::with_capacity(limit + 1);
    let mut skipped = 0;
    for id in ids {
        let Some(c) = conversation::get(db, id)? else { continue };
        if !filter.matches(&c) {
            continue;
        }
        if skipped < offset {
            skipped += 1;
            continue;
        }
        if kept.len() == limit {
            return Ok((kept, Some(offset + limit)));
        }
        kept.push(with_last_seq(db, c)?);
    }
    Ok((kept, None))
}

/// Contacts matching `q`, best first, from `offset`: at most `limit`, and the offset of the next page.
pub fn contacts(
    db: &Db,
    index: Option<&SearchIndex>,
    q: &str,
    offset: usize,
    limit: usize,
) -> Result<(Vec<Contact>, Option<usize>), ServiceError> {
    let index = usable(index, offset)?;
    let ids: Vec<Uuid> = index.contacts(q, offset + limit + 1).map_err(from_search)?;
    let more = ids.len() > offset + limit;
    let mut out = Vec::with_capacity(limit);
    for id in ids.into_iter().skip(offset).take(limit) {
        if let Some(c) = contact::get(db, id)? {
            out.push(c);
        }
    }
    Ok((out, more.then_some(offset + limit)))
}

fn usable(index: Option<&SearchIndex>, offset: usize) -> Result<&SearchIndex, ServiceError> {
    if offset > MAX_OFFSET {
        return Err(ServiceError::BadQuery(format!("a search pages at most {MAX_OFFSET} results deep; refine the words")));
    }
    index.ok_or_else(|| ServiceError::SearchUnavailable("search is turned off on this server (search.enabled)".into()))
}

fn from_search(e: SearchError) -> ServiceError {
    match e {
        SearchError::Query(q) => ServiceError::BadQuery(q.to_string()),
        other => ServiceError::SearchUnavailable(other.to_string()),
    }
}
