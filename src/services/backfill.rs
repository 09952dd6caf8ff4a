//! Background data migrations of this release (the `data_migrations` job
//! runs them; see `utalk_schedules::data_migrations`), and their progress
//! for operators (`GET /api/v1/admin/migrations`, `utalk migrate status`).
//!
//! `contact_links` links conversations stored before contacts existed to
//! their contact, through each conversation's actor (the owner of the
//! record, so a live change is never overwritten), 200 conversations a step.
//!
//! `message_format` stores messages in format 2 once every node reads it
//! (see [`super::message_format`]).
//!
//! `search_index` is the search index backfill: each node keeps its own
//! index, so it runs on every node, in the indexer's thread (see
//! `utalk_actors::search`), at a pace of its own (`search.backfill_duty_percent`);
//! it is listed here beside the others, with scope `node`.

use super::contacts::customer_in;
use super::message_format::{self, MessageFormatMigration};
use futures_util::future::BoxFuture;
use serde::Serialize;
use std::path::Path;
use std::sync::Arc;
use utalk_actors::search::{SearchIndex, StoredBackfill, BACKFILL_STEP};
use utalk_actors::{ConversationChange, Registry};
use utalk_schedules::data_migrations::{DataMigration, Step};
use utalk_schedules::scheduler::JobError;
use utalk_storage::model::data_migration;
use utalk_storage::model::{conversation, ConversationFilter};
use utalk_storage::{Batch, Db, Map, StoreError, Timestamp};
use uuid::Uuid;

/// The name of the contact links migration.
pub const CONTACT_LINKS: &str = "contact_links";
const CONTACT_LINKS_ABOUT: &str = "links conversations stored before contacts existed to their contact";

/// Every background migration of this release run once for the cluster, in the order they run: name and what it does.
pub const CATALOGUE: [(&str, &str); 2] = [(CONTACT_LINKS, CONTACT_LINKS_ABOUT), (message_format::NAME, message_format::ABOUT)];

/// The name of the search index backfill.
pub const SEARCH_INDEX: &str = "search_index";
const SEARCH_INDEX_ABOUT: &str = "fills this node's search index from the store when it is missing, of another version or behind";

/// Where the search index backfill's state is read from.
pub enum SearchBackfill<'a> {
    /// The running server's index.
    Live(&'a SearchIndex),
    /// The files of an index not open here (`utalk migrate status`).
    OnDisk(&'a Path),
    /// Search is turned off.
    Off,
}

/// Where the walk of the `contact_backfill` job of 0.1.0 was, and whether it was done: the migration goes on from there.
const OLD_CURSOR: &[u8] = b"contacts.backfill.cursor";
const OLD_DONE: &[u8] = b"contacts.backfill.done";

/// The migrations the `data_migrations` job runs.
pub fn migrations(db: &Db, registry: &Registry) -> Vec<Arc<dyn DataMigration>> {
    vec![
        Arc::new(ContactLinks { db: db.clone(), registry: registry.clone() }),
        Arc::new(MessageFormatMigration { db: db.clone(), registry: registry.clone() }),
    ]
}

/// Links conversations stored before contacts existed to their contact.
struct ContactLinks {
    db: Db,
    registry: Registry,
}

impl DataMigration for ContactLinks {
    fn name(&self) -> &'static str {
        CONTACT_LINKS
    }
    fn description(&self) -> &'static str {
        CONTACT_LINKS_ABOUT
    }
    fn batch_size(&self) -> usize {
        200
    }
    fn step(&self, cursor: Option<Vec<u8>>, limit: usize) -> BoxFuture<'static, Result<Step, JobError>> {
        let (db, registry) = (self.db.clone(), self.registry.clone());
        Box::pin(async move { link_contacts(&db, &registry, cursor, limit).await })
    }
}

async fn link_contacts(db: &Db, registry: &Registry, cursor: Option<Vec<u8>>, limit: usize) -> Result<Step, JobError> {
    let after = match cursor {
        Some(c) => Some(Uuid::from_slice(&c).map_err(|_| JobError::Partial("the cursor is not a conversation id".into()))?),
        None if db.get_raw(Map::Meta, OLD_DONE)?.is_some() => {
            return Ok(Step::new(Batch::new(), None, 0));
        }
        None => db.get_raw(Map::Meta, OLD_CURSOR)?.and_then(|v| Uuid::from_slice(&v).ok()),
    };
    let (page, next) = conversation::list(db, &ConversationFilter::default(), after, limit)?;
    for c in &page {
        // Nothing to link: linked already (a step done again after a crash), a customer who gave nothing, or one erased.
        if c.contact_id.is_some() || c.customer == Default::default() {
            continue;
        }
        let contact = utalk_actors::contacts::resolve(db, registry.journal(), &c.customer).await.map_err(JobError::step)?;
        let customer = customer_in(c.channel, &c.customer, &contact);
        registry
            .call(c.id, ConversationChange { contact: Some((contact.id, customer)), ..ConversationChange::default() })
            .await
            .map_err(JobError::step)?;
    }
    // The writes went through each conversation's actor; the step's own batch is the progress alone.
    Ok(Step::new(Batch::new(), next.map(|id| id.as_bytes().to_vec()), page.len() as u64))
}

/// A background migration as operators see it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MigrationView {
    /// Name.
    pub name: String,
    /// What it does.
    pub description: String,
    /// `cluster`: runs once for the whole cluster, on one node at a time;
    /// `node`: runs on each node over its own copy.
    pub scope: String,
    /// `pending` (not started), `running` (started, more to do), `done`.
    pub state: String,
    /// Records walked so far.
    pub processed: u64,
    /// Steps written so far.
    pub steps: u64,
    /// When its first step was written.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub started_at: Option<Timestamp>,
    /// When its latest step was written.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub updated_at: Option<Timestamp>,
    /// When it finished.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<Timestamp>,
    /// Why its latest attempt failed, until a step succeeds.
    pub last_error: Option<String>,
}

/// The schema and every background migration.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MigrationsView {
    /// The schema version of the data.
    pub schema_version: u32,
    /// The oldest build schema version that can read it.
    pub readable_from: u32,
    /// The background migrations, in the order they run.
    pub items: Vec<MigrationView>,
}

/// The schema and the progress of every background migration.
pub fn status(db: &Db, search: SearchBackfill<'_>) -> Result<MigrationsView, StoreError> {
    let schema_version = db.schema_version()?.unwrap_or(utalk_storage::SCHEMA_VERSION);
    let readable_from = db.readable_from()?.unwrap_or(schema_version);
    let mut items = CATALOGUE
        .iter()
        .map(|(name, description)| {
            let p = data_migration::get(db, name)?;
            let state = match &p {
                None => "pending",
                Some(p) if p.finished_at.is_some() => "done",
                Some(_) => "running",
            };
            Ok(MigrationView {
                name: name.to_string(),
                description: description.to_string(),
                scope: "cluster".into(),
                state: state.into(),
                processed: p.as_ref().map_or(0, |p| p.processed),
                steps: p.as_ref().map_or(0, |p| p.steps),
                started_at: p.as_ref().map(|p| p.started_at),
                updated_at: p.as_ref().map(|p| p.updated_at),
                finished_at: p.as_ref().and_then(|p| p.finished_at),
                last_error: p.and_then(|p| p.last_error),
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    items.extend(search_item(search));
    Ok(MigrationsView { schema_version, readable_from, items })
}

/// The search index backfill on this node, when search is on.
fn search_item(search: SearchBackfill<'_>) -> Option<MigrationView> {
    let view = |state: &str, processed: u64| MigrationView {
        name: SEARCH_INDEX.into(),
        description: SEARCH_INDEX_ABOUT.into(),
        scope: "node".into(),
        state: state.into(),
        processed,
        steps: processed.div_ceil(BACKFILL_STEP as u64),
        started_at: None,
        updated_at: None,
        finished_at: None,
        last_error: None,
    };
    match search {
        SearchBackfill::Off => None,
        SearchBackfill::OnDisk(dir) => Some(match utalk_actors::search::stored_backfill(dir) {
            StoredBackfill::Pending => view("pending", 0),
            StoredBackfill::Running { processed } => view("running", processed),
            StoredBackfill::Done => view("done", 0),
        }),
        SearchBackfill::Live(index) => {
            let b = index.backfill();
            // Retried after a failure: still to finish.
            let state = if b.running || b.last_error.is_some() { "running" } else { "done" };
            Some(MigrationView {
                started_at: b.started_at,
                updated_at: if b.running { Some(Timestamp::now()) } else { b.finished_at },
                finished_at: b.finished_at,
                last_error: b.last_error,
                ..view(state, b.processed)
            })
        }
    }
}
