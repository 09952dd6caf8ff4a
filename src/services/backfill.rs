//! Links conversations stored before contacts existed to their contact, as a
//! scheduled job (`contact_backfill`): in pages, through each conversation's
//! actor, from a cursor kept in the store so that a stop or a crash resumes
//! where it was, with a pause between pages so that serving comes first, and
//! on one node of a cluster. Once it has walked every conversation it records
//! that it is done and later runs cost one read.

use super::contacts::customer_in;
use futures_util::future::BoxFuture;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use utalk_actors::{ConversationChange, Registry};
use utalk_schedules::scheduler::{Figures, JobError, Task};
use utalk_storage::model::{conversation, ConversationFilter};
use utalk_storage::{Batch, Db, Map};
use uuid::Uuid;

/// Where the walk is: the last conversation id it finished.
const CURSOR: &[u8] = b"contacts.backfill.cursor";
/// Set once every conversation was walked.
const DONE: &[u8] = b"contacts.backfill.done";
/// Conversations read per page.
const PAGE: usize = 200;
/// The pause after each page.
const PAUSE: Duration = Duration::from_millis(20);
/// A run stops after this long; the next run goes on from the cursor.
const RUN_FOR: Duration = Duration::from_secs(60);

/// The job's task.
pub struct ContactBackfill {
    /// Reads.
    pub db: Db,
    /// Writes, through each conversation's actor.
    pub registry: Registry,
}

impl Task for ContactBackfill {
    fn run(&self) -> BoxFuture<'static, Figures> {
        let (db, registry) = (self.db.clone(), self.registry.clone());
        Box::pin(async move { walk(&db, &registry).await })
    }
}

async fn walk(db: &Db, registry: &Registry) -> Figures {
    let mut figures = BTreeMap::new();
    if db.get_raw(Map::Meta, DONE)?.is_some() {
        figures.insert("linked".into(), 0.0);
        figures.insert("done".into(), 1.0);
        return Ok(figures);
    }
    let mut after = db.get_raw(Map::Meta, CURSOR)?.and_then(|v| Uuid::from_slice(&v).ok());
    let (mut scanned, mut linked) = (0u64, 0u64);
    let started = Instant::now();
    let done = loop {
        let (page, next) = conversation::list(db, &ConversationFilter::default(), after, PAGE)?;
        for c in &page {
            scanned += 1;
            // Nothing to link: a customer who gave nothing, or one erased.
            if c.contact_id.is_some() || c.customer == Default::default() {
                continue;
            }
            let contact = utalk_actors::contacts::resolve(db, registry.journal(), &c.customer).await.map_err(JobError::step)?;
            let customer = customer_in(c.channel, &c.customer, &contact);
            registry
                .call(c.id, ConversationChange { contact: Some((contact.id, customer)), ..ConversationChange::default() })
                .await
                .map_err(JobError::step)?;
            linked += 1;
        }
        let Some(last) = next else { break true };
        after = Some(last);
        let mut b = Batch::new();
        b.put_raw(Map::Meta, CURSOR.to_vec(), last.as_bytes().to_vec());
        registry.journal().commit(b).await?;
        if started.elapsed() > RUN_FOR {
            break false;
        }
        tokio::time::sleep(PAUSE).await;
    };
    if done {
        let mut b = Batch::new();
        b.put_raw(Map::Meta, DONE.to_vec(), vec![1]);
        registry.journal().commit(b).await?;
        if linked > 0 {
            tracing::info!(linked, "conversations stored before contacts are linked to their contacts");
        }
    }
    figures.insert("scanned".into(), scanned as f64);
    figures.insert("linked".into(), linked as f64);
    figures.insert("done".into(), if done { 1.0 } else { 0.0 });
    Ok(figures)
}
