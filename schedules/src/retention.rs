//! The retention job: audit records and job history past their age limits go.

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
}

const CHUNK: usize = 1_000;

async fn delete_keys(writer: &StoreWriter, map: Map, keys: Vec<Vec<u8>>) -> Result<(), String> {
    let mut b = Batch::new();
    for k in keys {
        b.delete_raw(map, k);
    }
    writer.commit(b).await.map_err(|e| e.to_string())
}

impl Task for RetentionTask {
    fn run(&self) -> BoxFuture<'static, Result<BTreeMap<String, f64>, String>> {
        let (db, writer, audit_age, runs_age, names) =
            (self.db.clone(), self.writer.clone(), self.audit_max_age, self.job_runs_max_age, self.job_names.clone());
        Box::pin(async move {
            let now = Timestamp::now().millis();
            let audit_cutoff = Key::new().i64(now - audit_age.as_millis() as i64).into_bytes();
            let mut audit = 0usize;
            loop {
                let keys: Vec<Vec<u8>> = db
                    .scan_raw(Map::Audit, &[], &[], CHUNK)
                    .map_err(|e| e.to_string())?
                    .into_iter()
                    .map(|(k, _)| k)
                    .take_while(|k| *k < audit_cutoff)
                    .collect();
                if keys.is_empty() {
                    break;
                }
                audit += keys.len();
                delete_keys(&writer, Map::Audit, keys).await?;
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
            Ok(f)
        })
    }
}
