//! The backup job: take and verify a backup, then keep backups by age and count.

use crate::scheduler::{Figures, JobError, Task};
use futures_util::future::BoxFuture;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use utalk_storage::backup::Backups;
use utalk_storage::{Db, Timestamp};

/// Takes a backup of the database and media, then applies retention.
pub struct BackupTask {
    /// The store.
    pub db: Db,
    /// Where backups go.
    pub backups: Backups,
    /// The media directory.
    pub media: PathBuf,
    /// Most backups kept.
    pub keep: usize,
    /// Backups older than this go (the newest is always kept).
    pub max_age: Duration,
}

/// How many of `created` (oldest first) to keep: those younger than `max_age`, at most `keep`, at least one.
pub fn to_keep(created: &[Timestamp], now: Timestamp, keep: usize, max_age: Duration) -> usize {
    let cutoff = now.millis() - max_age.as_millis() as i64;
    created.iter().filter(|t| t.millis() >= cutoff).count().min(keep).max(1)
}

impl Task for BackupTask {
    fn run(&self) -> BoxFuture<'static, Figures> {
        let (db, backups, media, keep, max_age) = (self.db.clone(), self.backups.clone(), self.media.clone(), self.keep, self.max_age);
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let started = Instant::now();
                let b = backups.create(&db, &media, &mut |step| tracing::debug!(step, "backup"))?;
                let list = backups.list()?;
                let created: Vec<Timestamp> = list.iter().map(|b| b.created_at).collect();
                let kept = to_keep(&created, Timestamp::now(), keep, max_age);
                backups.purge(kept)?;
                let mut f = BTreeMap::new();
                f.insert("backupId".into(), f64::from(b.id));
                f.insert("files".into(), f64::from(b.files));
                f.insert("bytes".into(), b.size as f64);
                f.insert("seconds".into(), started.elapsed().as_secs_f64());
                f.insert("kept".into(), kept as f64);
                f.insert("purged".into(), list.len().saturating_sub(kept) as f64);
                Ok(f)
            })
            .await
            .map_err(JobError::step)?
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_keeps_by_age_and_count_and_never_none() {
        let day = 86_400_000;
        let now = Timestamp(100 * day);
        let created: Vec<Timestamp> = (0..10).map(|i| Timestamp(now.millis() - (40 - i * 4) * day)).collect();
        // Ages 40, 36, …, 4 days: those within 30 days are ages 28..4 → 7.
        assert_eq!(to_keep(&created, now, 100, Duration::from_secs(30 * 86_400)), 7);
        assert_eq!(to_keep(&created, now, 3, Duration::from_secs(30 * 86_400)), 3);
        assert_eq!(to_keep(&created, now, 100, Duration::from_secs(1)), 1);
    }
}
