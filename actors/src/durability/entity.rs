//! One entity's way into the log: what its single writer (a conversation
//! actor) holds while it owns the entity.
//!
//! The writer opens it after reading nothing: [`Journal::open`] first makes
//! this node's store hold everything written to the entity, then the writer
//! reads its state. Each change the writer appends afterwards is fenced on
//! that state, so none can land after one that was lost:
//! - on one node, on the store writer's failure epoch: after a failed write,
//!   every later batch of the entity is refused until the writer reopens;
//! - in a cluster, on the position of the entity's last log entry: another
//!   node that took the entity over meanwhile makes the append fail.
//!
//! Changes are pipelined: many may be in flight, and they become durable in
//! the order they were appended. In a cluster one append is in flight per
//! entity (each fenced on the last); what is appended meanwhile goes out
//! together in the next entry.

use super::follower::Applied;
use super::journal::{Journal, JournalError};
use super::record::{LogRecord, LoggedChange, LoggedEvent};
use super::store_writer::WriteError;
use crate::cluster::shard_of;
use crate::fanout::broker::ConversationEvent;
use futures_util::future::{Either, FutureExt};
use std::future::Future;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;
use utalk_storage::Batch;
use uuid::Uuid;

/// An open conversation's way into the log; see the module documentation.
pub struct EntityLog {
    journal: Journal,
    id: Uuid,
    /// The shard lease it was opened under; another one means the shard moved away and back.
    lease: Option<u64>,
    fence: Fence,
}

enum Fence {
    /// One node: the store writer's failure epoch when the entity was opened.
    Store { epoch: u64 },
    /// A cluster: the entity's chain of log entries.
    Log(Arc<Mutex<Chain>>),
}

type Done = oneshot::Sender<Result<(), JournalError>>;

/// The appends of one entity in a cluster.
struct Chain {
    subject: String,
    /// The position of the entity's last entry: the fence of the next append.
    position: u64,
    /// Changes waiting for the append in flight to finish.
    queue: Vec<(LoggedChange, Done)>,
    /// An append is in flight.
    busy: bool,
    /// An append failed: the entry may or may not be in the log, so nothing
    /// more is appended until the writer opens the entity again.
    broken: Option<JournalError>,
    /// Tells this opening's appends apart from any other writer's in the deduplication ids.
    incarnation: Uuid,
}

impl EntityLog {
    pub(super) fn local(journal: Journal, id: Uuid, lease: Option<u64>, epoch: u64) -> EntityLog {
        EntityLog { journal, id, lease, fence: Fence::Store { epoch } }
    }

    pub(super) fn chained(journal: Journal, id: Uuid, lease: Option<u64>, subject: String, position: u64) -> EntityLog {
        let chain = Chain { subject, position, queue: Vec::new(), busy: false, broken: None, incarnation: Uuid::new_v4() };
        EntityLog { journal, id, lease, fence: Fence::Log(Arc::new(Mutex::new(chain))) }
    }

    /// Whether this node still holds the entity's shard under the lease it
    /// was opened with; when not, the writer must stop writing and let the
    /// entity be opened again (here or on its new owner).
    pub fn owned(&self) -> bool {
        let now = self.journal.cluster().lease_epoch(shard_of(self.id));
        now.is_some() && now == self.lease
    }

    /// Appends one change and its events; resolves once it is applied to this
    /// node's store and its events are published. The place in the order is
    /// taken when this is called, not when the future is polled.
    pub fn append(&self, batch: Batch, events: Vec<ConversationEvent>) -> impl Future<Output = Result<(), JournalError>> + Send + 'static {
        match &self.fence {
            Fence::Store { epoch } => {
                let applied = Applied::Conversation { id: self.id, events };
                Either::Left(self.journal.writer().submit_applied(batch, Some(*epoch), applied).map(|r| r.map_err(JournalError::from)))
            }
            Fence::Log(chain) => {
                let (tx, rx) = oneshot::channel();
                let events = events.iter().filter_map(LoggedEvent::from_event).collect();
                let start = {
                    let mut c = chain.lock().unwrap_or_else(|p| p.into_inner());
                    match &c.broken {
                        Some(e) => {
                            let _ = tx.send(Err(e.clone()));
                            false
                        }
                        None => {
                            c.queue.push((LoggedChange { batch, events }, tx));
                            !std::mem::replace(&mut c.busy, true)
                        }
                    }
                };
                if start {
                    tokio::spawn(pump(self.journal.clone(), chain.clone(), self.id));
                }
                Either::Right(rx.map(|r| r.unwrap_or(Err(JournalError::Write(WriteError::Stopped)))))
            }
        }
    }
}

/// Sends what is queued as one log entry, fenced on the last one, until the queue is empty.
async fn pump(journal: Journal, chain: Arc<Mutex<Chain>>, id: Uuid) {
    loop {
        let (record, done, subject, expected, dedupe) = {
            let mut c = chain.lock().unwrap_or_else(|p| p.into_inner());
            if c.queue.is_empty() {
                c.busy = false;
                return;
            }
            let (changes, done): (Vec<LoggedChange>, Vec<Done>) = std::mem::take(&mut c.queue).into_iter().unzip();
            // Only this opening's retry of this very append may be taken for it.
            let dedupe = format!("{}.{}.{}.{}", id.simple(), c.position, journal.cluster().node_id(), c.incarnation.simple());
            (LogRecord { conversation: Some(id), changes }, done, c.subject.clone(), c.position, dedupe)
        };
        let appended = async {
            let position = journal.append(&subject, Some(expected), &dedupe, record.encode()?).await?;
            let acked = std::time::Instant::now();
            journal.wait_applied(position).await?;
            metrics::histogram!("cluster_log_apply_wait_seconds").record(acked.elapsed().as_secs_f64());
            Ok::<_, JournalError>(position)
        }
        .await;
        let mut c = chain.lock().unwrap_or_else(|p| p.into_inner());
        match appended {
            Ok(position) => {
                c.position = position;
                for d in done {
                    let _ = d.send(Ok(()));
                }
            }
            Err(e) => {
                tracing::warn!(conversation = %id, error = %e, "conversation log append failed; the conversation reloads from the log");
                for d in done.into_iter().chain(c.queue.drain(..).map(|(_, d)| d)) {
                    let _ = d.send(Err(e.clone()));
                }
                c.broken = Some(e);
                c.busy = false;
                return;
            }
        }
    }
}
