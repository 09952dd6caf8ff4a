//! The indexer thread: it takes the records the store writer committed,
//! turns them into documents, and commits the index at most once a
//! [`Settings::commit_interval`], so a write is found within about that time.
//!
//! It alone writes the index. When the index is missing, of another version,
//! or behind the store (the store's sequence differs from the one the index
//! recorded at its last clean stop), or when records were dropped because
//! its queue was full, it fills the index again from RocksDB: the search
//! index backfill, a background migration of this node. The backfill walks
//! the indexed maps in steps of [`BACKFILL_STEP`] records from a cursor,
//! paused between steps so that it takes at most [`Settings::backfill_duty`]
//! of the time (the index's own threads counted: [`super::cost`]), and
//! applies the live changes queued meanwhile between its steps (in the
//! order they were committed, so the newest version of each record is what
//! stays). Each commit of the index records the cursor: a
//! clean stop halfway resumes from there at the next start. A crash does
//! not: the live changes applied after the last commit are lost with it and
//! may concern records anywhere, so the walk starts again from the first
//! record.

use super::cost::WriterCpu;
use super::schema::{self, Fields};
use super::{BackfillStatus, Payload, Settings, Shared, WalkCursor};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tantivy::{IndexWriter, TantivyDocument, Term};
use utalk_storage::model::{Contact, Conversation, Message};
use utalk_storage::{codec, Batch, Change, Db, Map, Record, Timestamp};
use uuid::Uuid;

/// A record to index, borrowed from a committed batch or from the rows a
/// backfill read.
pub(crate) struct Rec<'a> {
    pub(crate) map: Map,
    pub(crate) key: &'a [u8],
    /// `None`: removed.
    pub(crate) value: Option<&'a [u8]>,
}

/// What a group of batches counts against the queue's limit.
pub(crate) fn queued_size(batches: &[Batch]) -> usize {
    batches.iter().map(|b| b.size_bytes() + 32 * b.len()).sum()
}

/// What the indexer is asked to do.
pub(crate) enum Work {
    /// The batches of one durable group that touch indexed records.
    Changes(Vec<Batch>),
    /// Commit now and answer (a test waiting for a write, an erasure).
    Flush(tokio::sync::oneshot::Sender<Result<(), String>>),
    /// Commit, merge every segment into one so deleted documents' terms
    /// leave the files, remove the old files, and answer.
    Purge(tokio::sync::oneshot::Sender<Result<(), String>>),
    /// The store writer has stopped at `sequence`: commit, record it, end.
    Stop { sequence: u64, done: std::sync::mpsc::SyncSender<()> },
}

/// Records read from RocksDB and indexed per step of a backfill.
pub const BACKFILL_STEP: usize = 1024;
/// A backfill says how far it got every this many records.
const PROGRESS_EVERY: u64 = 100_000;
/// The maps a backfill walks, in order; a cursor names one by its place here.
const WALKED: [Map; 3] = [Map::Conversations, Map::Contacts, Map::Messages];
/// The metrics' name for the backfill, as the other background migrations'.
const MIGRATION: &str = "search_index";

/// Where the indexer starts.
pub(crate) enum Start {
    /// The index is current.
    Current,
    /// Fill it from the first record, dropping whatever it holds.
    Fill,
    /// Go on with the backfill a clean stop left at this cursor.
    Resume(WalkCursor),
}

/// A backfill under way.
struct Walk {
    cursor: WalkCursor,
    /// When the next step may run.
    next_step: Instant,
}

pub(crate) struct Indexer {
    pub(crate) shared: Arc<Shared>,
    pub(crate) writer: IndexWriter<TantivyDocument>,
    pub(crate) db: Db,
    pub(crate) settings: Settings,
    /// What the backfill's steps cost the index writer's threads.
    pub(crate) cpu: WriterCpu,
}

impl Indexer {
    pub(crate) fn run(mut self, rx: Receiver<Work>, start: Start) {
        let mut walk: Option<Walk> = None;
        let mut pending_fill = false;
        match start {
            Start::Current => {}
            Start::Fill => pending_fill = true,
            Start::Resume(cursor) => {
                tracing::info!(records = cursor.processed, "resuming the search index backfill where a clean stop left it");
                walk = Some(self.begin(cursor));
            }
        }
        let mut dirty = false;
        let mut last_commit = Instant::now();
        // A failed backfill starts again after this, doubling up to an hour.
        let mut retry: Option<Instant> = None;
        let mut backoff = Duration::from_secs(10);
        loop {
            if retry.is_some_and(|at| Instant::now() >= at) {
                retry = None;
                pending_fill = true;
            }
            if self.shared.overflowed.swap(false, Ordering::SeqCst) {
                // Records were dropped: whatever is queued is older than the
                // backfill's reads, which see every dropped record.
                tracing::warn!("the search index fell behind the writes; filling it again from the store");
                pending_fill = true;
            }
            if pending_fill && !self.shared.stopping.load(Ordering::SeqCst) {
                pending_fill = false;
                match self.writer.delete_all_documents() {
                    Ok(_) => {
                        metrics::counter!("search_index_rebuilds_total").increment(1);
                        tracing::info!("rebuilding the search index from the store, in the background");
                        let cursor = WalkCursor { map: 0, after: Vec::new(), processed: 0, started_at: Timestamp::now().millis() };
                        walk = Some(self.begin(cursor));
                        dirty = true;
                    }
                    Err(e) => self.failed(&mut walk, &mut retry, &mut backoff, &e.to_string()),
                }
            }
            if let Some(w) = walk.as_mut().filter(|w| Instant::now() >= w.next_step) {
                let t0 = Instant::now();
                match self.step(&mut w.cursor) {
                    Ok(more) => {
                        dirty = true;
                        if more {
                            let cost = self.cpu.step_cost(t0.elapsed());
                            w.next_step = Instant::now() + crate::jobs::pace::pause_after(self.settings.backfill_duty, cost);
                        } else {
                            let processed = w.cursor.processed;
                            walk = None;
                            backoff = Duration::from_secs(10);
                            self.finished(processed);
                            last_commit = Instant::now();
                            dirty = false;
                        }
                    }
                    Err(e) => self.failed(&mut walk, &mut retry, &mut backoff, &e.to_string()),
                }
            }
            let mut wait =
                if dirty { self.settings.commit_interval.saturating_sub(last_commit.elapsed()) } else { self.settings.commit_interval };
            if let Some(w) = &walk {
                wait = wait.min(w.next_step.saturating_duration_since(Instant::now()));
            }
            let work = match rx.recv_timeout(wait) {
                Ok(w) => Some(w),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return,
            };
            let cursor = walk.as_ref().map(|w| &w.cursor);
            match work {
                Some(Work::Changes(batches)) => {
                    self.apply_batches(batches);
                    dirty = true;
                }
                Some(Work::Flush(done)) => {
                    let _ = done.send(self.commit(None, cursor).map_err(|e| e.to_string()));
                    dirty = false;
                    last_commit = Instant::now();
                }
                Some(Work::Purge(done)) => {
                    let _ = done.send(self.purge(cursor).map_err(|e| e.to_string()));
                    dirty = false;
                    last_commit = Instant::now();
                }
                Some(Work::Stop { sequence, done }) => {
                    self.drain(&rx);
                    // A backfill cut short records its cursor with the
                    // sequence, and the next start resumes it; one that
                    // failed, or records dropped, record no sequence, so
                    // the next start fills the index again.
                    let whole = retry.is_none() && !pending_fill && !self.shared.overflowed.load(Ordering::SeqCst);
                    if let Err(e) = self.commit(whole.then_some(sequence), cursor) {
                        tracing::warn!(error = %e, "cannot commit the search index at stop; it is rebuilt at the next start");
                    }
                    let _ = done.send(());
                    return;
                }
                None => {}
            }
            if dirty && last_commit.elapsed() >= self.settings.commit_interval {
                if let Err(e) = self.commit(None, walk.as_ref().map(|w| &w.cursor)) {
                    tracing::warn!(error = %e, "cannot commit the search index");
                }
                dirty = false;
                last_commit = Instant::now();
            }
        }
    }

    /// Starts walking from `cursor`.
    fn begin(&mut self, cursor: WalkCursor) -> Walk {
        self.shared.rebuilding.store(true, Ordering::SeqCst);
        self.status(|s| {
            *s = BackfillStatus {
                running: true,
                processed: cursor.processed,
                started_at: Some(Timestamp(cursor.started_at)),
                finished_at: None,
                last_error: None,
            }
        });
        metrics::gauge!("data_migration_done", "migration" => MIGRATION).set(0.0);
        metrics::gauge!("data_migration_processed", "migration" => MIGRATION).set(cursor.processed as f64);
        Walk { cursor, next_step: Instant::now() }
    }

    /// One step of the walk: up to [`BACKFILL_STEP`] records after the
    /// cursor, indexed; `false` when every map is walked.
    fn step(&mut self, cursor: &mut WalkCursor) -> Result<bool, utalk_storage::StoreError> {
        let mut read = 0;
        while let Some(&map) = WALKED.get(cursor.map as usize) {
            let want = BACKFILL_STEP - read;
            if want == 0 {
                break;
            }
            let start = if cursor.after.is_empty() { Vec::new() } else { successor(&cursor.after) };
            let rows = self.db.scan_raw(map, &[], &start, want)?;
            let full = rows.len() == want;
            read += rows.len();
            for (key, value) in &rows {
                cursor.after.clone_from(key);
                self.cpu.handed(true);
                self.apply(Rec { map, key, value: Some(value) }, false);
                cursor.processed += 1;
                if cursor.processed.is_multiple_of(PROGRESS_EVERY) {
                    tracing::info!(records = cursor.processed, "rebuilding the search index");
                }
            }
            if !full {
                cursor.map += 1;
                cursor.after.clear();
            }
        }
        let processed = cursor.processed;
        self.status(|s| s.processed = processed);
        metrics::counter!("data_migration_records_total", "migration" => MIGRATION).increment(read as u64);
        metrics::gauge!("data_migration_processed", "migration" => MIGRATION).set(processed as f64);
        Ok((cursor.map as usize) < WALKED.len())
    }

    /// The walk reached the end: commit, and say so.
    fn finished(&mut self, processed: u64) {
        if let Err(e) = self.commit(None, None) {
            tracing::warn!(error = %e, "cannot commit the search index");
        }
        self.shared.rebuilding.store(false, Ordering::SeqCst);
        let started = self.status(|s| {
            s.running = false;
            s.finished_at = Some(Timestamp::now());
            s.started_at
        });
        metrics::gauge!("data_migration_done", "migration" => MIGRATION).set(1.0);
        let secs = started.map_or(0.0, |t| (Timestamp::now().millis() - t.millis()) as f64 / 1000.0);
        tracing::info!(records = processed, secs, "search index rebuilt");
    }

    /// A backfill could not go on: searches find what the index holds, and
    /// the whole walk starts again after `backoff`.
    fn failed(&mut self, walk: &mut Option<Walk>, retry: &mut Option<Instant>, backoff: &mut Duration, error: &str) {
        *walk = None;
        self.shared.rebuilding.store(false, Ordering::SeqCst);
        self.status(|s| {
            s.running = false;
            s.last_error = Some(error.to_string());
        });
        tracing::error!(error, retry_in_secs = backoff.as_secs(), "cannot rebuild the search index; searches find what it holds");
        *retry = Some(Instant::now() + *backoff);
        *backoff = (*backoff * 2).min(Duration::from_secs(3600));
    }

    fn status<T>(&self, f: impl FnOnce(&mut BackfillStatus) -> T) -> T {
        f(&mut self.shared.backfill.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Applies the indexed records of `batches`, taken off the queue.
    fn apply_batches(&mut self, batches: Vec<Batch>) {
        self.shared.queued.fetch_sub(queued_size(&batches), Ordering::SeqCst);
        // While a backfill walks, a queued batch may hold a record its walk
        // has indexed already: every document then replaces the one before.
        let walking = self.shared.rebuilding.load(Ordering::SeqCst);
        for b in &batches {
            for c in b.changes().filter(|c| super::indexed(c.map())) {
                let (rec, fresh) = match c {
                    Change::Put { map, key, value } => (Rec { map, key, value: Some(value) }, !walking && creates_message(b, map, key)),
                    Change::Delete { map, key } => (Rec { map, key, value: None }, false),
                };
                self.cpu.handed(false);
                self.apply(rec, fresh);
            }
        }
    }

    /// Applies whatever is queued (at a stop).
    fn drain(&mut self, rx: &Receiver<Work>) {
        while let Ok(w) = rx.try_recv() {
            match w {
                Work::Changes(batches) => self.apply_batches(batches),
                Work::Flush(done) | Work::Purge(done) => {
                    let _ = done.send(Err("the search index is stopping".into()));
                }
                Work::Stop { done, .. } => {
                    let _ = done.send(());
                }
            }
        }
    }

    /// Commits what was added, recording `sequence` (a clean stop) or none
    /// and the backfill's cursor if one is under way, and lets searches see it.
    fn commit(&mut self, sequence: Option<u64>, backfill: Option<&WalkCursor>) -> tantivy::Result<()> {
        let payload = Payload { version: schema::VERSION, sequence, backfill: backfill.cloned() };
        let payload = serde_json::to_string(&payload).map_err(|e| tantivy::TantivyError::InternalError(e.to_string()))?;
        let mut prepared = self.writer.prepare_commit()?;
        prepared.set_payload(&payload);
        prepared.commit()?;
        self.shared.reader.reload()?;
        metrics::counter!("search_index_commits_total").increment(1);
        metrics::gauge!("search_index_documents").set(self.shared.reader.searcher().num_docs() as f64);
        Ok(())
    }

    fn purge(&mut self, backfill: Option<&WalkCursor>) -> tantivy::Result<()> {
        self.commit(None, backfill)?;
        let segments = self.shared.index.searchable_segment_ids()?;
        if segments.len() > 1 || self.shared.reader.searcher().segment_readers().iter().any(|s| s.num_deleted_docs() > 0) {
            self.writer.merge(&segments).wait()?;
        }
        self.commit(None, backfill)?;
        self.writer.garbage_collect_files().wait()?;
        Ok(())
    }

    /// Replaces the document of one record with what it holds now; `fresh`:
    /// the record is new, so there is no document to replace. (Each delete
    /// is looked up in every segment when the index commits: a new message,
    /// most of what is written, skips that.)
    fn apply(&mut self, r: Rec<'_>, fresh: bool) {
        let f = &self.shared.fields;
        let (key, doc) = match document(f, &r) {
            Ok(kd) => kd,
            Err(e) => {
                tracing::warn!(map = r.map.name(), error = %e, "a record the search index cannot read is left out");
                return;
            }
        };
        if !fresh {
            self.writer.delete_term(Term::from_field_text(f.key, &key));
        }
        if let Some(doc) = doc {
            if let Err(e) = self.writer.add_document(doc) {
                tracing::warn!(error = %e, "cannot add a document to the search index");
            }
        }
    }
}

/// Whether `batch` creates the message it puts at `key`: a message is
/// created with its id's index entry, which points at it, in one batch
/// (`message::append_batch`); a change of a message writes the message alone.
fn creates_message(batch: &Batch, map: Map, key: &[u8]) -> bool {
    map == Map::Messages && batch.changes().any(|c| matches!(c, Change::Put { map: Map::MessageidConvseq, value, .. } if value == key))
}

/// The smallest key after `key`.
fn successor(key: &[u8]) -> Vec<u8> {
    let mut k = key.to_vec();
    k.push(0);
    k
}

/// The key of a record's document and the document it now has (`None`: none).
fn document(f: &Fields, r: &Rec<'_>) -> Result<(String, Option<TantivyDocument>), String> {
    let id = |bytes: &[u8]| bytes.get(..16).and_then(|b| Uuid::from_slice(b).ok()).ok_or_else(|| "short key".to_string());
    match r.map {
        Map::Messages => {
            let conversation = id(r.key)?;
            let seq = r.key.get(16..24).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes).ok_or("short key")?;
            let doc = decoded(r, |m: &Message| schema::message_doc(f, m))?.flatten();
            Ok((schema::message_key(conversation, seq), doc))
        }
        Map::Conversations => Ok((schema::conversation_key(id(r.key)?), decoded(r, |c: &Conversation| schema::conversation_doc(f, c))?)),
        Map::Contacts => Ok((schema::contact_key(id(r.key)?), decoded(r, |c: &Contact| schema::contact_doc(f, c))?)),
        other => Err(format!("map {} is not indexed", other.name())),
    }
}

/// The document `make` gives the record `r` holds now; `None` when it was removed.
fn decoded<R: Record, D>(r: &Rec<'_>, make: impl Fn(&R) -> D) -> Result<Option<D>, String> {
    r.value.map(|v| codec::decode::<R>(v).map(|rec| make(&rec)).map_err(|e| e.to_string())).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use utalk_storage::model::message::{self as message_model, Author, AuthorType, Direction, MessageStatus};
    use utalk_storage::model::MessageFormat;

    fn message(seq: u64) -> Message {
        let customer = Author { kind: AuthorType::Customer, id: None };
        Message::text(Uuid::from_u128(7), seq, Direction::Inbound, customer, MessageStatus::Received, "hola", Timestamp(1))
    }

    #[test]
    fn a_message_is_new_in_the_batch_that_indexes_its_id_and_only_there() {
        let m = message(3);
        let key = message_model::key(m.conversation_id, m.seq).into_bytes();
        let created = message_model::append_batch(&m, MessageFormat::Compact).unwrap();
        assert!(creates_message(&created, Map::Messages, &key));
        // Another message's key in the same batch, or another map, is not this one's creation.
        let other = message_model::key(m.conversation_id, 4).into_bytes();
        assert!(!creates_message(&created, Map::Messages, &other));
        assert!(!creates_message(&created, Map::Conversations, &key));
        // A change of the message (its status) writes the message alone.
        let mut changed = Batch::new();
        changed.put(Map::Messages, message_model::key(m.conversation_id, m.seq), &m).unwrap();
        assert!(!creates_message(&changed, Map::Messages, &key));
    }
}
