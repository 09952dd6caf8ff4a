//! Erasing one customer: what a data-protection request asks for.
//!
//! The contact goes, and in each of their conversations the customer's
//! fields, every message's text and template, the media files and their records,
//! queued WhatsApp sends, webhook bodies that quote them, and the number's
//! index entry. What the KPIs count stays: conversations, messages (who,
//! when, and that they carried media), escalations and ratings. Every change goes through the
//! conversation actors and the journal, so sockets, the search index and the
//! other nodes follow; then this node's search index and RocksDB files are
//! rewritten so that no copy of the old bytes is left in them.
//!
//! The erasure is written to a ledger beside the backups
//! (`<backup_dir>/erasures.jsonl`): restoring a backup taken before it
//! brings the data back, and the next start erases it again.

use super::ServiceError;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;
use utalk_actors::channels::media_store::MediaStore;
use utalk_actors::search::SearchIndex;
use utalk_actors::{ConversationChange, MessageChange, Registry};
use utalk_storage::model::{contact, conversation, erasure, media, message, outbox, webhook};
use utalk_storage::{Batch, Db, Map, Timestamp};
use uuid::Uuid;

/// Most messages one erasure rewrites (409 `erase_too_large` past it):
/// each is a write, and a request must end.
pub const MAX_ERASED_MESSAGES: usize = 100_000;
use utalk_storage::backup::LEDGER;
/// Longest line of the ledger read at a start: an entry's ids (at most
/// 10,000 conversations, 37 bytes each) with room to spare.
const MAX_LEDGER_LINE: usize = 1 << 20;

/// What an erasure touched.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Erased {
    /// Conversations whose customer was forgotten.
    pub conversations: usize,
    /// Messages whose text or attachments were erased.
    pub messages: usize,
    /// Media files removed.
    pub media_files: usize,
    /// Their ids, for the other nodes.
    #[serde(skip)]
    media_ids: Vec<Uuid>,
}

/// One line of the ledger: ids only.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    contact_id: Uuid,
    conversations: Vec<Uuid>,
    erased_at: Timestamp,
}

/// What an erasure needs besides the store.
pub struct Parts<'a> {
    /// Reads.
    pub db: &'a Db,
    /// Writes, through each conversation's actor.
    pub registry: &'a Registry,
    /// Media files.
    pub media: &'a MediaStore,
    /// The search index, to rewrite its files.
    pub search: Option<&'a SearchIndex>,
    /// The backup directory, where the ledger lives.
    pub backup_dir: &'a Path,
}

/// Erases contact `id` and what their conversations hold about them, as
/// `actor` (audited as `contact.erase`, by id only).
pub async fn erase(p: &Parts<'_>, actor: Uuid, id: Uuid) -> Result<Erased, ServiceError> {
    if contact::get(p.db, id)?.is_none() {
        return Err(ServiceError::NotFound("contact"));
    }
    let conversations = super::contacts::all_conversations(p.db, id)?;
    let mut total = 0u64;
    for c in &conversations {
        // Seqs have no gaps: the last is the count.
        total += message::last_seq(p.db, *c)?;
        if total > MAX_ERASED_MESSAGES as u64 {
            return Err(ServiceError::Conflict {
                code: "erase_too_large",
                message: format!("the contact has more than {MAX_ERASED_MESSAGES} messages; ask an operator to erase it in parts"),
            });
        }
    }
    // The ledger first: an erasure cut short is finished at the next start.
    let entry = Entry { contact_id: id, conversations, erased_at: Timestamp::now() };
    record(p.backup_dir, &entry)?;
    let done = erase_conversations(p, &entry.conversations).await?;
    utalk_actors::contacts::erase(p.db, p.registry.journal(), &actor.to_string(), id).await?;
    // Announced before this node's long rewrite, so that a failure there
    // cannot leave the other nodes unaware.
    announce(p, &entry, &done.media_ids).await?;
    scrub_files(p).await?;
    Ok(done)
}

/// Writes the erasure through the log, for every other node to rewrite its
/// own files ([`follow`]); in parts of at most [`erasure::MAX_IDS`] ids.
async fn announce(p: &Parts<'_>, entry: &Entry, media: &[Uuid]) -> Result<(), ServiceError> {
    let node = p.registry.journal().cluster().node_id().to_string();
    let (contact_id, conversations, erased_at) = (entry.contact_id, &entry.conversations, entry.erased_at);
    let parts = conversations.len().div_ceil(erasure::MAX_IDS).max(media.len().div_ceil(erasure::MAX_IDS)).max(1);
    for i in 0..parts {
        let some = |ids: &[Uuid]| ids.chunks(erasure::MAX_IDS).nth(i).unwrap_or_default().to_vec();
        let part = erasure::Erasure {
            id: Uuid::now_v7(),
            contact_id,
            conversations: some(conversations),
            media: some(media),
            erased_at,
            node: node.clone(),
        };
        let mut b = Batch::new();
        erasure::put(&mut b, &part)?;
        p.registry.journal().commit(b).await?;
    }
    Ok(())
}

/// Rewrites this node's files for the erasures other nodes served, as they
/// arrive through the log: the media files they name, the search index and
/// RocksDB, and records each in this node's ledger so that a restore here
/// erases it again. Runs until the server stops.
pub async fn follow(p: &Parts<'_>, mut changes: tokio::sync::watch::Receiver<u64>) {
    loop {
        match scrub_new(p).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(erasures = n, "files rewritten for erasures made on other nodes"),
            Err(e) => {
                tracing::error!(error = %e, "cannot rewrite the files for an erasure made on another node; retried at the next change")
            }
        }
        if changes.changed().await.is_err() {
            return;
        }
    }
}

/// Scrubs for the erasures past this node's mark; how many there were. Its
/// own (the serving node rewrote its files already) only move the mark,
/// which this task alone writes.
async fn scrub_new(p: &Parts<'_>) -> Result<usize, ServiceError> {
    let node = p.registry.journal().cluster().node_id().to_string();
    let mut done = 0;
    loop {
        let parts = erasure::after(p.db, erasure::scrubbed(p.db)?, 100)?;
        let Some(last) = parts.last().map(|e| e.id) else { return Ok(done) };
        let theirs: Vec<_> = parts.iter().filter(|e| e.node != node).collect();
        for m in theirs.iter().flat_map(|e| &e.media) {
            remove_media_file(p, *m);
        }
        if !theirs.is_empty() {
            scrub_files(p).await?;
            // Recorded once rewritten, so that a retry after a failed rewrite adds no line.
            for e in &theirs {
                record(p.backup_dir, &Entry { contact_id: e.contact_id, conversations: e.conversations.clone(), erased_at: e.erased_at })?;
            }
            done += theirs.len();
        }
        let mut mark = Batch::new();
        erasure::mark_scrubbed(&mut mark, last);
        p.registry.journal().commit_node(mark).await.map_err(|e| ServiceError::Internal(e.to_string()))?;
    }
}

/// Erases again what a restored backup brought back: each erasure in the
/// ledger whose contact or conversations still hold something. Run at start.
pub async fn reapply(p: &Parts<'_>) -> Result<usize, ServiceError> {
    use std::io::{BufRead, Read};
    let path = p.backup_dir.join(LEDGER);
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(ServiceError::Internal(format!("cannot read {}: {e}", path.display()))),
    };
    let mut reader = std::io::BufReader::new(file);
    let mut line = Vec::new();
    let mut again = 0;
    loop {
        line.clear();
        // Every entry is read, one line at a time, each at most MAX_LEDGER_LINE bytes.
        let n = (&mut reader)
            .take(MAX_LEDGER_LINE as u64 + 1)
            .read_until(b'\n', &mut line)
            .map_err(|e| ServiceError::Internal(format!("cannot read {}: {e}", path.display())))?;
        if n == 0 {
            break;
        }
        if line.len() > MAX_LEDGER_LINE {
            tracing::error!(ledger = %path.display(), "a line of the erasure ledger is over {MAX_LEDGER_LINE} bytes; skipped");
            // The rest of that line.
            while !line.ends_with(b"\n") {
                line.clear();
                if (&mut reader)
                    .take(MAX_LEDGER_LINE as u64)
                    .read_until(b'\n', &mut line)
                    .map_err(|e| ServiceError::Internal(e.to_string()))?
                    == 0
                {
                    break;
                }
            }
            continue;
        }
        let Ok(entry) = serde_json::from_slice::<Entry>(line.trim_ascii()) else {
            if !line.trim_ascii().is_empty() {
                tracing::error!(ledger = %path.display(), "a line of the erasure ledger cannot be read; skipped");
            }
            continue;
        };
        let mut held = contact::get(p.db, entry.contact_id)?.is_some();
        for c in &entry.conversations {
            if let Some(conv) = conversation::get(p.db, *c)? {
                held |= conv.contact_id.is_some() || conv.customer != Default::default();
            }
        }
        if !held {
            continue;
        }
        erase_conversations(p, &entry.conversations).await?;
        utalk_actors::contacts::erase(p.db, p.registry.journal(), "system", entry.contact_id).await?;
        again += 1;
    }
    if again > 0 {
        scrub_files(p).await?;
        tracing::info!(erasures = again, "erasures in the ledger applied again to data a restore brought back");
    }
    Ok(again)
}

async fn erase_conversations(p: &Parts<'_>, ids: &[Uuid]) -> Result<Erased, ServiceError> {
    let mut done = Erased::default();
    let mut media_ids = Vec::new();
    for &id in ids {
        let Some(conv) = conversation::get(p.db, id)? else { continue };
        let mut seq = 0;
        loop {
            let chunk = message::after(p.db, id, seq, 500)?;
            let Some(last) = chunk.last() else { break };
            seq = last.seq;
            for m in chunk {
                let media: Vec<Uuid> = m.media.iter().map(|a| a.id).chain(m.media_id).collect();
                if m.text.is_none() && m.template.is_none() && media.is_empty() {
                    continue;
                }
                media_ids.extend(media);
                p.registry.call(id, MessageChange { erase: true, ..MessageChange::new(m.id) }).await?;
                done.messages += 1;
            }
        }
        p.registry.call(id, ConversationChange { erase: true, ..ConversationChange::default() }).await?;
        // What the actor does not own: the number's index, queued sends.
        let mut b = Chunked::default();
        if let Some(phone) = conv.customer.phone.as_deref() {
            if conversation::by_phone(p.db, conv.channel, phone)? == Some(id) {
                conversation::delete_phone(b.next(), conv.channel, phone)?;
            }
        }
        for e in outbox::of_conversation(p.db, id, MAX_ERASED_MESSAGES)? {
            outbox::delete(b.next(), id, e.seq);
        }
        b.commit(p).await?;
        done.conversations += 1;
    }
    let mut b = Chunked::default();
    for m in &media_ids {
        let batch = b.next();
        media::delete(batch, *m);
        media::delete_fetch(batch, *m);
    }
    forget_webhook_bodies(p.db, ids, &mut b)?;
    b.commit(p).await?;
    for m in media_ids {
        remove_media_file(p, m);
        p.media.remove(m).await;
        done.media_files += 1;
        done.media_ids.push(m);
    }
    Ok(done)
}

/// Removes media file `m` from this node's data directory and from the
/// backups' copy, which a restore would put back.
fn remove_media_file(p: &Parts<'_>, m: Uuid) {
    let path = p.media.path(m);
    let _ = std::fs::remove_file(&path);
    if let Ok(rel) = path.strip_prefix(p.media.root()) {
        let _ = std::fs::remove_file(p.backup_dir.join("media").join(rel));
    }
}

/// Writes committed in batches of at most [`Chunked::MAX`] changes, so that
/// none makes a log entry too large (an erasure may remove 100,000 sends).
#[derive(Default)]
struct Chunked {
    full: Vec<Batch>,
    open: Batch,
}

impl Chunked {
    const MAX: usize = 1_000;

    /// The batch to add the next change to.
    fn next(&mut self) -> &mut Batch {
        if self.open.len() >= Self::MAX {
            self.full.push(std::mem::take(&mut self.open));
        }
        &mut self.open
    }

    async fn commit(self, p: &Parts<'_>) -> Result<(), ServiceError> {
        for b in self.full.into_iter().chain(std::iter::once(self.open)).filter(|b| !b.is_empty()) {
            p.registry.journal().commit(b).await?;
        }
        Ok(())
    }
}

/// Webhook deliveries kept for their history quote messages and customers:
/// those naming an erased conversation go.
fn forget_webhook_bodies(db: &Db, conversations: &[Uuid], b: &mut Chunked) -> Result<(), ServiceError> {
    if conversations.is_empty() {
        return Ok(());
    }
    let needles: Vec<String> = conversations.iter().map(Uuid::to_string).collect();
    let mut start = Vec::new();
    loop {
        let rows = db.scan_raw(Map::WebhookDeliveries, &[], &start, 1000)?;
        let Some((last, _)) = rows.last() else { return Ok(()) };
        start = last.clone();
        start.push(0);
        let full = rows.len() == 1000;
        for (key, value) in rows {
            let Ok(d) = utalk_storage::codec::decode::<webhook::Delivery>(&value) else { continue };
            if needles.iter().any(|n| d.body.contains(n.as_str())) {
                let batch = b.next();
                batch.delete_raw(Map::WebhookDeliveries, key.clone());
                batch.delete_raw(Map::WebhookPending, key);
            }
        }
        if !full {
            return Ok(());
        }
    }
}

/// Rewrites this node's files so that the old bytes are nowhere: the search
/// index's segments, then RocksDB's tables and logs. One at a time: two
/// erasures (or one and the follower) would each rewrite everything.
async fn scrub_files(p: &Parts<'_>) -> Result<(), ServiceError> {
    static ONE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _one = ONE.lock().await;
    if let Some(index) = p.search {
        index.purge().await.map_err(|e| ServiceError::Internal(e.to_string()))?;
    }
    let db = p.db.clone();
    super::blocking(move || Ok(db.compact_everything()?)).await
}

fn record(dir: &Path, entry: &Entry) -> Result<(), ServiceError> {
    let io = |e: std::io::Error| ServiceError::Internal(format!("cannot write the erasure ledger in {}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(io)?;
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(dir.join(LEDGER)).map_err(io)?;
    let mut line = serde_json::to_string(entry).map_err(|e| ServiceError::Internal(e.to_string()))?;
    line.push('\n');
    f.write_all(line.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)
}
