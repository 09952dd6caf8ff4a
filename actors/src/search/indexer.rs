//! The indexer thread: it takes the records the store writer committed,
//! turns them into documents, and commits the index at most once a
//! [`Settings::commit_interval`], so a write is found within about that time.
//!
//! It alone writes the index. When the index is missing, of another version,
//! or behind the store (the store's sequence differs from the one the index
//! recorded at its last clean stop), or when records were dropped because
//! its queue was full, it rebuilds the index from RocksDB while the server
//! serves; changes committed meanwhile wait in the queue and are applied
//! after, so none is lost.

use super::schema::{self, Fields};
use super::{Settings, Shared};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tantivy::{IndexWriter, TantivyDocument, Term};
use utalk_storage::model::{Contact, Conversation, Message};
use utalk_storage::{codec, Batch, Change, Db, Map, Record};
use uuid::Uuid;

/// A record to index: one of a committed batch, or one read by a rebuild.
pub(crate) struct Owned {
    pub(crate) map: Map,
    pub(crate) key: Vec<u8>,
    /// `None`: removed.
    pub(crate) value: Option<Vec<u8>>,
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

/// Rows read from RocksDB per step of a rebuild.
const REBUILD_CHUNK: usize = 1024;
/// A rebuild says how far it got every this many records.
const PROGRESS_EVERY: u64 = 100_000;

pub(crate) struct Indexer {
    pub(crate) shared: Arc<Shared>,
    pub(crate) writer: IndexWriter<TantivyDocument>,
    pub(crate) db: Db,
    pub(crate) settings: Settings,
}

impl Indexer {
    pub(crate) fn run(mut self, rx: Receiver<Work>, rebuild_first: bool) {
        let mut needs_rebuild = rebuild_first;
        let mut complete = !rebuild_first;
        let mut dirty = false;
        let mut last_commit = Instant::now();
        // A failed rebuild is tried again after this, doubling up to an hour.
        let mut retry: Option<Instant> = None;
        let mut backoff = Duration::from_secs(10);
        loop {
            if retry.is_some_and(|at| Instant::now() >= at) {
                retry = None;
                needs_rebuild = true;
            }
            if self.shared.overflowed.swap(false, Ordering::SeqCst) {
                // Records were dropped: whatever is queued is older than the
                // rebuild's reads, which see every dropped record.
                tracing::warn!("the search index fell behind the writes; rebuilding it");
                needs_rebuild = true;
            }
            if needs_rebuild && !self.shared.stopping.load(Ordering::SeqCst) {
                needs_rebuild = false;
                complete = match self.rebuild() {
                    Ok(done) => done,
                    Err(e) => {
                        // Back to the last commit: a half-rebuilt index is never published.
                        let _ = self.writer.rollback();
                        self.shared.rebuilding.store(false, Ordering::SeqCst);
                        tracing::error!(error = %e, retry_in_secs = backoff.as_secs(), "cannot rebuild the search index; searches find what it held before");
                        retry = Some(Instant::now() + backoff);
                        backoff = (backoff * 2).min(Duration::from_secs(3600));
                        false
                    }
                };
                last_commit = Instant::now();
                dirty = false;
            }
            let wait = self.settings.commit_interval.saturating_sub(last_commit.elapsed());
            let work = match rx.recv_timeout(if dirty { wait } else { self.settings.commit_interval }) {
                Ok(w) => Some(w),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return,
            };
            match work {
                Some(Work::Changes(batches)) => {
                    self.apply_batches(batches);
                    dirty = true;
                }
                Some(Work::Flush(done)) => {
                    let _ = done.send(self.commit(None).map_err(|e| e.to_string()));
                    dirty = false;
                    last_commit = Instant::now();
                }
                Some(Work::Purge(done)) => {
                    let _ = done.send(self.purge().map_err(|e| e.to_string()));
                    dirty = false;
                    last_commit = Instant::now();
                }
                Some(Work::Stop { sequence, done }) => {
                    self.drain(&rx);
                    // An index whose rebuild did not finish records no
                    // sequence, so the next start rebuilds it again.
                    let recorded = (complete && !self.shared.overflowed.load(Ordering::SeqCst)).then_some(sequence);
                    if let Err(e) = self.commit(recorded) {
                        tracing::warn!(error = %e, "cannot commit the search index at stop; it is rebuilt at the next start");
                    }
                    let _ = done.send(());
                    return;
                }
                None => {}
            }
            if dirty && last_commit.elapsed() >= self.settings.commit_interval {
                if let Err(e) = self.commit(None) {
                    tracing::warn!(error = %e, "cannot commit the search index");
                }
                dirty = false;
                last_commit = Instant::now();
            }
        }
    }

    /// Applies the indexed records of `batches`, taken off the queue.
    fn apply_batches(&mut self, batches: Vec<Batch>) {
        self.shared.queued.fetch_sub(queued_size(&batches), Ordering::SeqCst);
        for b in &batches {
            for c in b.changes().filter(|c| super::indexed(c.map())) {
                let owned = match c {
                    Change::Put { map, key, value } => Owned { map, key: key.to_vec(), value: Some(value.to_vec()) },
                    Change::Delete { map, key } => Owned { map, key: key.to_vec(), value: None },
                };
                self.apply(owned);
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

    /// Commits what was added, recording `sequence` (a clean stop) or none,
    /// and lets searches see it.
    fn commit(&mut self, sequence: Option<u64>) -> tantivy::Result<()> {
        let payload = serde_json::json!({ "version": schema::VERSION, "sequence": sequence }).to_string();
        let mut prepared = self.writer.prepare_commit()?;
        prepared.set_payload(&payload);
        prepared.commit()?;
        self.shared.reader.reload()?;
        metrics::counter!("search_index_commits_total").increment(1);
        metrics::gauge!("search_index_documents").set(self.shared.reader.searcher().num_docs() as f64);
        Ok(())
    }

    fn purge(&mut self) -> tantivy::Result<()> {
        self.commit(None)?;
        let segments = self.shared.index.searchable_segment_ids()?;
        if segments.len() > 1 || self.shared.reader.searcher().segment_readers().iter().any(|s| s.num_deleted_docs() > 0) {
            self.writer.merge(&segments).wait()?;
        }
        self.commit(None)?;
        self.writer.garbage_collect_files().wait()?;
        Ok(())
    }

    /// Replaces the document of one record with what it holds now.
    fn apply(&mut self, r: Owned) {
        let f = &self.shared.fields;
        let (key, doc) = match document(f, &r) {
            Ok(kd) => kd,
            Err(e) => {
                tracing::warn!(map = r.map.name(), error = %e, "a record the search index cannot read is left out");
                return;
            }
        };
        self.writer.delete_term(Term::from_field_text(f.key, &key));
        if let Some(doc) = doc {
            if let Err(e) = self.writer.add_document(doc) {
                tracing::warn!(error = %e, "cannot add a document to the search index");
            }
        }
    }

    /// Builds the index again from RocksDB: `false` when a stop cut it short.
    fn rebuild(&mut self) -> Result<bool, Box<dyn std::error::Error>> {
        let started = Instant::now();
        self.shared.rebuilding.store(true, Ordering::SeqCst);
        metrics::counter!("search_index_rebuilds_total").increment(1);
        tracing::info!("rebuilding the search index from the store");
        self.writer.delete_all_documents()?;
        let mut seen = 0u64;
        let mut finished = true;
        'maps: for map in [Map::Conversations, Map::Contacts, Map::Messages] {
            let mut start: Vec<u8> = Vec::new();
            loop {
                if self.shared.stopping.load(Ordering::SeqCst) {
                    finished = false;
                    break 'maps;
                }
                let rows = self.db.scan_raw(map, &[], &start, REBUILD_CHUNK)?;
                let Some((last, _)) = rows.last() else { break };
                start = last.clone();
                start.push(0);
                let full = rows.len() == REBUILD_CHUNK;
                for (key, value) in rows {
                    self.apply(Owned { map, key, value: Some(value) });
                    seen += 1;
                    if seen.is_multiple_of(PROGRESS_EVERY) {
                        tracing::info!(records = seen, "rebuilding the search index");
                    }
                }
                if !full {
                    break;
                }
            }
        }
        self.commit(None)?;
        self.shared.rebuilding.store(false, Ordering::SeqCst);
        if finished {
            tracing::info!(records = seen, secs = started.elapsed().as_secs_f64(), "search index rebuilt");
        }
        Ok(finished)
    }
}

/// The key of a record's document and the document it now has (`None`: none).
fn document(f: &Fields, r: &Owned) -> Result<(String, Option<TantivyDocument>), String> {
    let id = |bytes: &[u8]| bytes.get(..16).and_then(|b| Uuid::from_slice(b).ok()).ok_or_else(|| "short key".to_string());
    match r.map {
        Map::Messages => {
            let conversation = id(&r.key)?;
            let seq = r.key.get(16..24).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes).ok_or("short key")?;
            let doc = decoded(r, |m: &Message| schema::message_doc(f, m))?.flatten();
            Ok((schema::message_key(conversation, seq), doc))
        }
        Map::Conversations => Ok((schema::conversation_key(id(&r.key)?), decoded(r, |c: &Conversation| schema::conversation_doc(f, c))?)),
        Map::Contacts => Ok((schema::contact_key(id(&r.key)?), decoded(r, |c: &Contact| schema::contact_doc(f, c))?)),
        other => Err(format!("map {} is not indexed", other.name())),
    }
}

/// The document `make` gives the record `r` holds now; `None` when it was removed.
fn decoded<R: Record, D>(r: &Owned, make: impl Fn(&R) -> D) -> Result<Option<D>, String> {
    r.value.as_deref().map(|v| codec::decode::<R>(v).map(|rec| make(&rec)).map_err(|e| e.to_string())).transpose()
}
