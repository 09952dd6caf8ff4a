//! The retention job: audit records, job history, refused stock transactions
//! and resolved stock alerts past their age limits go, and so do refresh
//! tokens past their expiry (useless to anyone, yet kept forever otherwise).
//!
//! In a cluster the audit records, refusals and alerts are shared: only the
//! node that leads removes them, through the log, so every node drops the
//! same ones. Job history is each node's own and each node trims its own.

use crate::scheduler::{Figures, JobError, Task};
use futures_util::future::BoxFuture;
use std::collections::BTreeMap;
use std::time::Duration;
use utalk_actors::cluster::leads;
use utalk_actors::durability::Journal;
use utalk_actors::inventory::Inventory;
use utalk_storage::keys::Key;
use utalk_storage::model::{job_run, webhook, RefreshToken};
use utalk_storage::{Batch, Db, Map, Timestamp};

/// Removes old audit records and job runs, in bounded batches.
pub struct RetentionTask {
    /// The store.
    pub db: Db,
    /// Where shared removals go (the log in a cluster).
    pub journal: Journal,
    /// Resolved stock alerts go through it, fenced like every alert change.
    pub inventory: Inventory,
    /// Age limit of audit records.
    pub audit_max_age: Duration,
    /// Age limit of job runs.
    pub job_runs_max_age: Duration,
    /// The jobs whose history is trimmed.
    pub job_names: Vec<&'static str>,
    /// Age limit of refused stock transactions and resolved stock alerts.
    pub inventory_max_age: Duration,
    /// Age limit of finished webhook deliveries.
    pub webhook_deliveries_max_age: Duration,
}

const CHUNK: usize = 1_000;

/// Whose records a removal touches.
#[derive(Clone, Copy)]
enum Scope {
    /// This node's own (job history).
    Node,
    /// Every node's copy (through the log in a cluster).
    Shared,
}

async fn delete_keys(journal: &Journal, scope: Scope, map: Map, keys: Vec<Vec<u8>>) -> Result<(), JobError> {
    let mut b = Batch::new();
    for k in keys {
        b.delete_raw(map, k);
    }
    match scope {
        Scope::Node => Ok(journal.commit_node(b).await?),
        Scope::Shared => Ok(journal.commit(b).await?),
    }
}

/// Removes the shared entries of a map keyed by time first that are older than `cutoff_ms`; returns how many.
async fn purge_time_keyed(db: &Db, journal: &Journal, map: Map, cutoff_ms: i64) -> Result<usize, JobError> {
    let cutoff = Key::new().i64(cutoff_ms).into_bytes();
    let mut n = 0usize;
    loop {
        let keys: Vec<Vec<u8>> = db.scan_raw(map, &[], &[], CHUNK)?.into_iter().map(|(k, _)| k).take_while(|k| *k < cutoff).collect();
        if keys.is_empty() {
            return Ok(n);
        }
        n += keys.len();
        delete_keys(journal, Scope::Shared, map, keys).await?;
    }
}

/// Removes finished webhook deliveries queued before `cutoff`; returns how many.
async fn purge_webhook_deliveries(db: &Db, journal: &Journal, cutoff: Timestamp) -> Result<usize, JobError> {
    let mut n = 0usize;
    loop {
        let mut b = Batch::new();
        let removed = webhook::prune(db, &mut b, cutoff, CHUNK)?;
        if removed == 0 {
            return Ok(n);
        }
        n += removed;
        journal.commit(b).await?;
    }
}

/// Removes the refresh tokens that expired before `now`; returns how many.
///
/// Tokens are keyed by hash, not time, so the whole map is walked in chunks;
/// removals are shared (through the log in a cluster) like the other records.
async fn purge_expired_tokens(db: &Db, journal: &Journal, now: Timestamp) -> Result<usize, JobError> {
    let mut n = 0usize;
    let mut start: Vec<u8> = Vec::new();
    loop {
        let page = db.scan::<RefreshToken>(Map::RefreshTokens, &[], &start, CHUNK)?;
        let Some((last, _)) = page.last() else { return Ok(n) };
        // The next page starts just after this one's last key.
        start = [last.as_slice(), &[0]].concat();
        let full = page.len() == CHUNK;
        let expired: Vec<Vec<u8>> = page.into_iter().filter(|(_, t)| t.expires_at < now).map(|(k, _)| k).collect();
        if !expired.is_empty() {
            n += expired.len();
            delete_keys(journal, Scope::Shared, Map::RefreshTokens, expired).await?;
        }
        if !full {
            return Ok(n);
        }
    }
}

impl Task for RetentionTask {
    fn run(&self) -> BoxFuture<'static, Figures> {
        let hooks_age = self.webhook_deliveries_max_age;
        let (db, journal, inventory, audit_age, runs_age, names, inv_age) = (
            self.db.clone(),
            self.journal.clone(),
            self.inventory.clone(),
            self.audit_max_age,
            self.job_runs_max_age,
            self.job_names.clone(),
            self.inventory_max_age,
        );
        Box::pin(async move {
            let now = Timestamp::now().millis();
            let mut f = BTreeMap::new();
            // One node alone always leads.
            if leads(journal.cluster().as_ref()) {
                let audit = purge_time_keyed(&db, &journal, Map::Audit, now - audit_age.as_millis() as i64).await?;
                let refusals = purge_time_keyed(&db, &journal, Map::TxnErrors, now - inv_age.as_millis() as i64).await?;
                let alerts =
                    inventory.purge_resolved_alerts(Timestamp(now - inv_age.as_millis() as i64), CHUNK).await.map_err(JobError::step)?;
                f.insert("auditRemoved".into(), audit as f64);
                f.insert("refusedTransactionsRemoved".into(), refusals as f64);
                f.insert("resolvedAlertsRemoved".into(), alerts as f64);
                let hooks = purge_webhook_deliveries(&db, &journal, Timestamp(now - hooks_age.as_millis() as i64)).await?;
                f.insert("webhookDeliveriesRemoved".into(), hooks as f64);
                let tokens = purge_expired_tokens(&db, &journal, Timestamp(now)).await?;
                f.insert("expiredRefreshTokensRemoved".into(), tokens as f64);
            } else {
                tracing::debug!("another node leads: it removes the shared records");
                f.insert("sharedLeftToLeader".into(), 1.0);
            }
            let mut runs = 0usize;
            for name in names {
                loop {
                    let keys = job_run::older_than(&db, name, Timestamp(now - runs_age.as_millis() as i64), CHUNK)?;
                    if keys.is_empty() {
                        break;
                    }
                    runs += keys.len();
                    delete_keys(&journal, Scope::Node, Map::JobRuns, keys).await?;
                }
            }
            f.insert("jobRunsRemoved".into(), runs as f64);
            Ok(f)
        })
    }
}
