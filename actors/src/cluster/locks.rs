//! Job locks: work that must run on one node at a time.

use super::{BoxFuture, ClusterError};

/// A job lock held by this node; released when dropped or when the node dies.
pub struct JobLock {
    release: Option<Box<dyn FnOnce() + Send>>,
    /// Turns true when the lock could not be renewed.
    lost: Option<tokio::sync::watch::Receiver<bool>>,
}

impl JobLock {
    /// A lock whose release runs `release` and that cannot be lost.
    pub fn new(release: impl FnOnce() + Send + 'static) -> JobLock {
        JobLock { release: Some(Box::new(release)), lost: None }
    }

    /// A lock whose release runs `release` and that `lost` says, by turning
    /// true, could not be renewed: another node may take it from then on.
    pub fn renewed(release: impl FnOnce() + Send + 'static, lost: tokio::sync::watch::Receiver<bool>) -> JobLock {
        JobLock { release: Some(Box::new(release)), lost: Some(lost) }
    }

    /// Resolves once the lock is lost; never while it is held.
    pub async fn lost(&mut self) {
        if let Some(rx) = &mut self.lost {
            if rx.wait_for(|lost| *lost).await.is_ok() {
                return;
            }
        }
        // Released or unlosable: nothing will ever say it is lost.
        std::future::pending::<()>().await
    }
}

impl Drop for JobLock {
    fn drop(&mut self) {
        if let Some(r) = self.release.take() {
            r();
        }
    }
}

impl std::fmt::Debug for JobLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JobLock")
    }
}

/// Cluster-wide locks for jobs that run once at a time.
pub trait Locks: Send + Sync + 'static {
    /// Takes the cluster-wide lock `name` if no node holds it; `None` when another does.
    fn try_lock<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<JobLock>, ClusterError>>;
}
