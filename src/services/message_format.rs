//! `message_format`: the background migration that moves the store to
//! message format 2 (see `utalk_storage::model::message_format`).
//!
//! It waits until every live node of the cluster runs a build that reads
//! format 2 (nodes announce it with their presence; a node alone always
//! does). Its first step then turns format 2 on, in the same write as its
//! progress: from the write that applies it, each node writes new and
//! changed messages in format 2, and the data says that builds before
//! schema 7 cannot read it. Two seconds later (the step's settling time,
//! outside the pace), by when every write encoded before the switch has
//! landed and every node has applied it, the next steps walk the messages in key order, 500 a step, and have those
//! still in format 1 stored again by their conversation's actor, one write
//! per conversation of the step: the actor is the owner that serializes
//! every change of them, so a status that arrives meanwhile is never
//! overwritten with the old one. A rewrite changes nothing else: no event,
//! webhook, KPI mark or activity follows it.
//!
//! `utalk migrate rollback --to 6` writes every message back in format 1
//! and turns format 2 off, for the release before.

use futures_util::future::BoxFuture;
use futures_util::stream::{self, TryStreamExt};
use std::time::Duration;
use utalk_actors::conversation::RewriteMessages;
use utalk_actors::ConversationError;
use utalk_actors::Registry;
use utalk_schedules::data_migrations::{DataMigration, Step};
use utalk_schedules::scheduler::JobError;
use utalk_storage::model::message_format::{self, MessageFormat};
use utalk_storage::{Batch, Db};
use uuid::Uuid;

/// The migration's name.
pub use utalk_storage::migrations::MESSAGE_FORMAT_MIGRATION as NAME;
/// What it does, for operators.
pub const ABOUT: &str = "stores messages in format 2 (short field names, about half the bytes) once every node reads it";

/// From the switch to the first walking step.
const SETTLE: Duration = Duration::from_secs(2);
/// Conversations rewritten at once: each is one write the writer groups with the others.
const CONCURRENT: usize = 16;

/// The migration over `db`, rewriting through `registry`'s actors.
pub(crate) struct MessageFormatMigration {
    pub(crate) db: Db,
    pub(crate) registry: Registry,
}

impl DataMigration for MessageFormatMigration {
    fn name(&self) -> &'static str {
        NAME
    }
    fn description(&self) -> &'static str {
        ABOUT
    }
    fn ready(&self) -> Result<(), String> {
        if self.db.message_format() == MessageFormat::Compact {
            return Ok(());
        }
        let behind = self.registry.journal().cluster().not_reading(MessageFormat::Compact);
        if behind.is_empty() {
            Ok(())
        } else {
            Err(format!("waiting for every node to read message format 2; these do not yet: {}", behind.join(", ")))
        }
    }
    fn step(&self, cursor: Option<Vec<u8>>, limit: usize) -> BoxFuture<'static, Result<Step, JobError>> {
        let (db, registry) = (self.db.clone(), self.registry.clone());
        Box::pin(async move { step(&db, &registry, cursor, limit).await })
    }
}

async fn step(db: &Db, registry: &Registry, cursor: Option<Vec<u8>>, limit: usize) -> Result<Step, JobError> {
    let Some(start) = cursor else {
        // The first step: the switch, with the progress. The walk starts from the first key.
        let mut batch = Batch::new();
        message_format::turn_on(&mut batch);
        return Ok(Step { settle: SETTLE, ..Step::new(batch, Some(Vec::new()), 0) });
    };
    let page = message_format::others_page(db, &[], &start, limit, MessageFormat::Compact)?;
    // One call per conversation: its messages of the page in one write.
    let mut ranges: Vec<(Uuid, RewriteMessages)> = Vec::new();
    for (_, m) in &page.others {
        match ranges.last_mut() {
            Some((conv, r)) if *conv == m.conversation_id => r.to_seq = m.seq,
            _ => ranges.push((m.conversation_id, RewriteMessages { from_seq: m.seq, to_seq: m.seq })),
        }
    }
    stream::iter(ranges.into_iter().map(Ok))
        .try_for_each_concurrent(CONCURRENT, |(conv, range)| async move {
            match registry.call(conv, range).await {
                // Gone since the page was read (an erased conversation): nothing to rewrite.
                Ok(_) | Err(ConversationError::NotFound) => Ok(()),
                Err(e) => Err(JobError::step(e)),
            }
        })
        .await?;
    // The rewrites went through the actors; the step's own batch is the progress alone.
    Ok(Step::new(Batch::new(), page.next, page.read as u64))
}
