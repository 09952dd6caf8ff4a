//! The retention job: audit records, job history, refused stock transactions
//! and resolved stock alerts past their age limits go.

use crate::scheduler::Task;
use futures_util::future::BoxFuture;
use std::collections::BTreeMap;
use std::time::Duration;
use utalk_actors::StoreWriter;
use utalk_storage::keys::Key;
use utalk_storage::model::job_run;
use utalk_storage::{Batch, Db, Map, Timestamp};

/// Removes old audit records and job runs, in bounded batches.
pub struct RetentionTask {
    /// The store.
    pub db: Db,
    /// Writes.
    pub writer: StoreWriter,
    /// Age limit of audit records.
    pub audit_max_age: Duration,
    /// Age limit of job runs.
    pub job_runs_max_age: Duration,
    /// The jobs whose history is trimmed.
    pub job_names: Vec<&'static str>,
    /// Age limit of refused stock transactions and resolved stock alerts.
    pub inventory_max_age: Duration,
}

const CHUNK: usize = 1_000;

async fn delete_keys(writer: &StoreWriter, map: Map, keys: Vec<Vec<u8>>) -> Result<(), String> {
    let mut b = Batch::new();
    for k in keys {
        b.delete_raw(map, k);
    }
    writer.commit(b).await.map_err(|e| e.to_string())
}

/// Removes the entries of a map keyed by time first that are older than `cutoff_ms`; returns how many.
async fn purge_time_keyed(db: &Db, writer: &StoreWriter, map: Map, cutoff_ms: i64) -> Result<usize, String> {
    let cutoff = Key::new().i64(cutoff_ms).into_bytes();
    let mut n = 0usize;
    loop {
        let keys: Vec<Vec<u8>> =
            db.scan_raw(map, &[], &[], CHUNK).map_err(|e| e.to_string())?.into_iter().map(|(k, _)| k).take_while(|k| *k < cutoff).collect();
        if keys.is_empty() {
            return Ok(n);
        }
        n += keys.len();
        delete_keys(writer, map, keys).await?;
    }
}

impl Task for RetentionTask {
    fn run(&self) -> BoxFuture<'static, Result<BTreeMap<String, f64>, String>> {
        let (db, writer, audit_age, runs_age, names, inv_age) = (
            self.db.clone(),
            self.writer.clone(),
            self.audit_max_age,
            self.job_runs_max_age,
            self.job_names.clone(),
            self.inventory_max_age,
        );
        Box::pin(async move {
            let now = Timestamp::now().millis();
            let audit = purge_time_keyed(&db, &writer, Map::Audit, now - audit_age.as_millis() as i64).await?;
            let refusals = purge_time_keyed(&db, &writer, Map::TxnErrors, now - inv_age.as_millis() as i64).await?;
            let mut alerts = 0usize;
            loop {
                let mut b = Batch::new();
                let n = utalk_storage::model::alert::purge_resolved(&db, &mut b, Timestamp(now - inv_age.as_millis() as i64), CHUNK)
                    .map_err(|e| e.to_string())?;
                if n == 0 {
                    break;
                }
                alerts += n;
                writer.commit(b).await.map_err(|e| e.to_string())?;
            }
            let mut runs = 0usize;
            for name in names {
                loop {
                    let keys =
                        job_run::older_than(&db, name, Timestamp(now - runs_age.as_millis() as i64), CHUNK).map_err(|e| e.to_string())?;
                    if keys.is_empty() {
                        break;
                    }
                    runs += keys.len();
                    delete_keys(&writer, Map::JobRuns, keys).await?;
                }
            }
            let mut f = BTreeMap::new();
            f.insert("auditRemoved".into(), audit as f64);
            f.insert("jobRunsRemoved".into(), runs as f64);
            f.insert("refusedTransactionsRemoved".into(), refusals as f64);
            f.insert("resolvedAlertsRemoved".into(), alerts as f64);
            Ok(f)
        })
    }
}
