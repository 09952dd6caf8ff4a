//! Full-text search over messages, customers and contacts: a tantivy index
//! in `<data_dir>/search`, beside RocksDB and rebuilt from it.
//!
//! The index follows the store, not the API: the store writer hands every
//! durable batch to [`SearchIndex`] (a [`ChangeTap`]), which copies the
//! records it indexes (messages, conversations, contacts) to the indexer
//! thread ([`indexer`]). On a cluster every node applies every log entry
//! through its own store writer, so each node's index is fresh within the
//! commit interval of the write, wherever it was made; an erased record's
//! words leave the index the same way.
//!
//! - [`cost`]: what a backfill's step costs the index writer's threads, for its pace.
//! - [`forms`]: the forms of a word kept: folded as written, its Spanish and English stems.
//! - [`schema`]: fields, analysers, documents.
//! - [`query`]: a person's words as a query; its limits.
//! - [`indexer`]: the thread that writes the index, and fills it again in
//!   the background (the search index backfill) when it is missing or behind.

mod cost;
mod forms;
mod indexer;
pub mod query;
mod schema;

use crate::durability::ChangeTap;
pub use indexer::BACKFILL_STEP;
use indexer::{Indexer, Start, Work};
use schema::{Fields, Kind};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tantivy::collector::TopDocs;
use tantivy::schema::Value;
use tantivy::{Index, IndexReader, ReloadPolicy, TantivyDocument};
use utalk_storage::{Batch, Db, Map, Timestamp};
use uuid::Uuid;

pub use query::QueryError;

/// How the index runs (`[search]` in the configuration).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Longest wait between a write and the commit that makes it searchable.
    pub commit_interval: Duration,
    /// Memory the index writer buffers before it writes a segment.
    pub writer_memory_bytes: usize,
    /// Most bytes of records waiting for the indexer; past it records are
    /// dropped and the index is rebuilt once the writes calm down.
    pub max_queue_bytes: usize,
    /// The share of the time (0.01 to 1) a backfill spends in its steps;
    /// it pauses the rest, so that the sends beside it keep their pace.
    pub backfill_duty: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { commit_interval: Duration::from_secs(1), writer_memory_bytes: 64 << 20, max_queue_bytes: 64 << 20, backfill_duty: 1.0 }
    }
}

/// Why the index cannot answer.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// The query is not one the index takes.
    #[error(transparent)]
    Query(#[from] QueryError),
    /// The index failed.
    #[error("search index: {0}")]
    Index(#[from] tantivy::TantivyError),
    /// Its directory could not be used.
    #[error("search index directory: {0}")]
    Io(#[from] std::io::Error),
    /// The indexer has stopped.
    #[error("the search index is stopped")]
    Stopped,
    /// The indexer could not do what was asked.
    #[error("search index: {0}")]
    Failed(String),
}

/// What the indexer thread and searchers share.
pub(crate) struct Shared {
    pub(crate) index: Index,
    pub(crate) reader: IndexReader,
    pub(crate) fields: Fields,
    /// Bytes of records sent and not yet applied.
    pub(crate) queued: AtomicUsize,
    /// Records were dropped since the indexer last looked.
    pub(crate) overflowed: AtomicBool,
    pub(crate) rebuilding: AtomicBool,
    pub(crate) stopping: AtomicBool,
    /// How the backfill is going, for operators.
    pub(crate) backfill: Mutex<BackfillStatus>,
}

/// The search index backfill as operators see it on this node.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BackfillStatus {
    /// Under way now.
    pub running: bool,
    /// Records walked by the backfill under way or the last one.
    pub processed: u64,
    /// When the backfill under way or the last one started; `None`: none since this start.
    pub started_at: Option<Timestamp>,
    /// When the last one finished.
    pub finished_at: Option<Timestamp>,
    /// Why the last one stopped short.
    pub last_error: Option<String>,
}

/// Where a backfill is: recorded with each commit of the index.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct WalkCursor {
    /// The map being walked (its place in the walk's order).
    pub(crate) map: u8,
    /// The last key indexed in it; empty: none yet.
    pub(crate) after: Vec<u8>,
    /// Records walked so far.
    pub(crate) processed: u64,
    /// When the backfill started, milliseconds since the epoch.
    pub(crate) started_at: i64,
}

/// The search index: a tap on the store writer and the searches over it.
pub struct SearchIndex {
    shared: Arc<Shared>,
    tx: Mutex<Option<Sender<Work>>>,
    max_queue: usize,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl std::fmt::Debug for SearchIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchIndex").field("queued", &self.shared.queued.load(Ordering::Relaxed)).finish()
    }
}

/// Most documents one search looks at (before grouping them by
/// conversation): the deepest page a caller may ask for must fit in it.
pub const MAX_HITS: usize = 1_500;

/// What the index recorded at its last commit.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct Payload {
    pub(crate) version: u32,
    /// The store's sequence at a clean stop; `None` at the commits between.
    pub(crate) sequence: Option<u64>,
    /// Where the backfill under way was; `None` when none was.
    #[serde(default)]
    pub(crate) backfill: Option<WalkCursor>,
}

/// The search index backfill as the files on disk tell it, read without
/// opening the index (for `utalk migrate status`).
#[derive(Debug, Clone, PartialEq)]
pub enum StoredBackfill {
    /// No index of this version: the next start fills one.
    Pending,
    /// Cut short after this many records: the next start after a clean
    /// stop resumes it (after a crash it starts again).
    Running { processed: u64 },
    /// Complete at its last commit.
    Done,
}

/// What the index in `dir` says of its backfill.
pub fn stored_backfill(dir: &Path) -> StoredBackfill {
    let payload = std::fs::read(dir.join("meta.json"))
        .ok()
        .and_then(|m| serde_json::from_slice::<serde_json::Value>(&m).ok())
        .and_then(|m| m.get("payload").and_then(|p| p.as_str()).and_then(|p| serde_json::from_str::<Payload>(p).ok()));
    match payload {
        Some(p) if p.version == schema::VERSION => match p.backfill {
            Some(c) => StoredBackfill::Running { processed: c.processed },
            None => StoredBackfill::Done,
        },
        _ => StoredBackfill::Pending,
    }
}

impl SearchIndex {
    /// Opens (or creates) the index in `dir` and starts its indexer. Install
    /// it with `StoreWriter::tap_with` before any write it must see: the
    /// index is filled from `db` in the background when it is missing, of
    /// another version, or did not stop cleanly at the store's current
    /// sequence; a backfill a clean stop cut short goes on from its cursor.
    pub fn open(dir: &Path, db: Db, settings: Settings) -> Result<Arc<SearchIndex>, SearchError> {
        let (index, payload) = open_dir(dir)?;
        let start = match payload {
            Some(p) if p.version == schema::VERSION && p.sequence == Some(db.latest_sequence()) => match p.backfill {
                Some(cursor) => Start::Resume(cursor),
                None => Start::Current,
            },
            _ => Start::Fill,
        };
        let rebuild = !matches!(start, Start::Current);
        schema::register(index.tokenizers());
        let writer = index.writer_with_num_threads(1, settings.writer_memory_bytes.max(15 << 20))?;
        let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into()?;
        let (_, fields) = schema::schema();
        let shared = Arc::new(Shared {
            index,
            reader,
            fields,
            queued: AtomicUsize::new(0),
            overflowed: AtomicBool::new(false),
            rebuilding: AtomicBool::new(rebuild),
            stopping: AtomicBool::new(false),
            backfill: Mutex::new(BackfillStatus::default()),
        });
        let (tx, rx) = mpsc::channel();
        let max_queue = settings.max_queue_bytes;
        let indexer = Indexer { shared: shared.clone(), writer, db, settings, cpu: cost::WriterCpu::new() };
        let thread = std::thread::Builder::new().name("search-indexer".into()).spawn(move || indexer.run(rx, start))?;
        Ok(Arc::new(SearchIndex { shared, tx: Mutex::new(Some(tx)), max_queue, thread: Mutex::new(Some(thread)) }))
    }

    /// Conversations whose messages (private notes with `notes`) or
    /// customer fields match `q`, best first, at most `limit`.
    pub fn conversations(&self, q: &str, notes: bool, limit: usize) -> Result<Vec<Uuid>, SearchError> {
        let kinds: &[Kind] = if notes { &[Kind::Message, Kind::Note, Kind::Conversation] } else { &[Kind::Message, Kind::Conversation] };
        let hits = self.hits(q, kinds, MAX_HITS)?;
        let mut seen = std::collections::HashSet::new();
        Ok(hits.into_iter().filter(|id| seen.insert(*id)).take(limit).collect())
    }

    /// Contacts whose name, phone, email or external id match `q`, best first, at most `limit`.
    pub fn contacts(&self, q: &str, limit: usize) -> Result<Vec<Uuid>, SearchError> {
        self.hits(q, &[Kind::Contact], limit.min(MAX_HITS))
    }

    fn hits(&self, q: &str, kinds: &[Kind], limit: usize) -> Result<Vec<Uuid>, SearchError> {
        let f = &self.shared.fields;
        let query = query::build(f, q, kinds)?;
        let searcher = self.shared.reader.searcher();
        let top = searcher.search(&query, &TopDocs::with_limit(limit.max(1)).order_by_score())?;
        let mut out = Vec::with_capacity(top.len());
        for (_, address) in top {
            let doc: TantivyDocument = searcher.doc(address)?;
            if let Some(id) = doc.get_first(f.id).and_then(|v| v.as_str()).and_then(|s| Uuid::parse_str(s).ok()) {
                out.push(id);
            }
        }
        metrics::counter!("search_queries_total").increment(1);
        Ok(out)
    }

    /// Waits until every write committed so far is searchable.
    pub async fn flush(&self) -> Result<(), SearchError> {
        self.ask(Work::Flush).await
    }

    /// Commits what is queued, then rewrites the index's files so that
    /// nothing of removed or replaced documents is left in them (an
    /// erasure). Awaited, not blocked on: the merge runs on the indexer's thread.
    pub async fn purge(&self) -> Result<(), SearchError> {
        self.ask(Work::Purge).await
    }

    async fn ask(&self, work: fn(tokio::sync::oneshot::Sender<Result<(), String>>) -> Work) -> Result<(), SearchError> {
        let (done, answer) = tokio::sync::oneshot::channel();
        self.send(work(done))?;
        answer.await.map_err(|_| SearchError::Stopped)?.map_err(SearchError::Failed)
    }

    fn send(&self, work: Work) -> Result<(), SearchError> {
        let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner());
        tx.as_ref().ok_or(SearchError::Stopped)?.send(work).map_err(|_| SearchError::Stopped)
    }

    /// Whether a backfill is under way (searches find only what it reached).
    pub fn rebuilding(&self) -> bool {
        self.shared.rebuilding.load(Ordering::SeqCst)
    }

    /// How the backfill under way, or the last one, went on this node.
    pub fn backfill(&self) -> BackfillStatus {
        self.shared.backfill.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Documents searchable now.
    pub fn documents(&self) -> u64 {
        self.shared.reader.searcher().num_docs()
    }

    /// Ends the indexer after the store writer has stopped: what is queued is
    /// committed with the store's `sequence`, so the next start need not rebuild.
    pub fn stop(&self, sequence: u64) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        let (done, answer) = mpsc::sync_channel(1);
        if self.send(Work::Stop { sequence, done }).is_ok() {
            let _ = answer.recv();
        }
        self.tx.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = t.join();
        }
    }
}

impl ChangeTap for SearchIndex {
    fn committed(&self, batches: Vec<Batch>) {
        if self.shared.overflowed.load(Ordering::SeqCst) {
            // Once records are dropped the rebuild reads them all again.
            return;
        }
        // The batches are moved, not copied; the indexer reads the records it indexes off them.
        let batches: Vec<Batch> = batches.into_iter().filter(|b| b.changes().any(|c| indexed(c.map()))).collect();
        if batches.is_empty() {
            return;
        }
        let size = indexer::queued_size(&batches);
        if self.shared.queued.fetch_add(size, Ordering::SeqCst) + size > self.max_queue {
            self.shared.queued.fetch_sub(size, Ordering::SeqCst);
            self.shared.overflowed.store(true, Ordering::SeqCst);
            metrics::counter!("search_index_dropped_total").increment(1);
            return;
        }
        if self.send(Work::Changes(batches)).is_err() {
            self.shared.queued.fetch_sub(size, Ordering::SeqCst);
        }
    }
}

/// Whether the index holds records of `map`.
pub(crate) fn indexed(map: Map) -> bool {
    matches!(map, Map::Messages | Map::Conversations | Map::Contacts)
}

/// Opens the index in `dir`, or makes a new one when there is none or it
/// cannot be read (it is only ever a copy of the store).
fn open_dir(dir: &Path) -> Result<(Index, Option<Payload>), SearchError> {
    std::fs::create_dir_all(dir)?;
    if dir.join("meta.json").exists() {
        match Index::open_in_dir(dir).and_then(|i| i.load_metas().map(|m| (i, m))) {
            Ok((index, metas)) => {
                let payload = metas.payload.as_deref().and_then(|p| serde_json::from_str::<Payload>(p).ok());
                if payload.as_ref().is_some_and(|p| p.version == schema::VERSION) {
                    return Ok((index, payload));
                }
                tracing::info!("the search index is of another version; making a new one");
            }
            Err(e) => tracing::warn!(error = %e, "the search index cannot be opened; making a new one"),
        }
        std::fs::remove_dir_all(dir)?;
        std::fs::create_dir_all(dir)?;
    }
    let (schema, _) = schema::schema();
    Ok((Index::create_in_dir(dir, schema)?, None))
}
