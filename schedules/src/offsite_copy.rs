//! The `offsite_copy` job: the latest backup, encrypted, to the off-machine
//! directory, unless it is there already; then archives past their age go.
//! A job of its own, so that a failed copy is retried without taking
//! another backup, and its last success says how old the newest copy is.

use crate::scheduler::{Figures, JobError, Task};
use futures_util::future::BoxFuture;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use utalk_storage::backup::Backups;
use utalk_storage::offsite::Offsite;
use utalk_storage::Timestamp;

/// Copies backups off the machine.
pub struct OffsiteCopyTask {
    /// The backups to copy from.
    pub backups: Backups,
    /// Where to, with the key; `None`: not configured, nothing to do.
    pub target: Option<Offsite>,
    /// Archives older than this go (the newest always stays).
    pub max_age: Duration,
}

impl Task for OffsiteCopyTask {
    fn run(&self) -> BoxFuture<'static, Figures> {
        let (backups, target, max_age) = (self.backups.clone(), self.target.clone(), self.max_age);
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let mut f = BTreeMap::new();
                let Some(target) = target else {
                    f.insert("configured".into(), 0.0);
                    return Ok(f);
                };
                let started = Instant::now();
                let latest = backups.pick(None)?;
                let newest = target.list().map_err(JobError::step)?.pop();
                let copied = newest.is_some_and(|a| a.backup_id == latest.id && a.created_at == latest.created_at);
                if !copied {
                    let a = target
                        .ship(&backups, latest.id, latest.created_at, &mut |step| tracing::debug!(step, "off-machine copy"))
                        .map_err(JobError::step)?;
                    f.insert("bytes".into(), a.bytes as f64);
                }
                f.insert("backupId".into(), f64::from(latest.id));
                f.insert("shipped".into(), f64::from(u8::from(!copied)));
                f.insert("seconds".into(), started.elapsed().as_secs_f64());
                f.insert("pruned".into(), target.prune(max_age, Timestamp::now()).map_err(JobError::step)? as f64);
                Ok(f)
            })
            .await
            .map_err(JobError::step)?
        })
    }
}
