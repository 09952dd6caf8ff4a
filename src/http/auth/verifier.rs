//! Password checks on a small pool of threads of their own.
//!
//! An argon2 check takes ~19 MiB and tens of milliseconds of a core. Run on the
//! runtime's blocking pool, a burst of logins starts hundreds of threads at
//! once, each with its own ~19 MiB (and glibc keeps freed memory in each
//! thread's arena): hundreds of MiB from anonymous requests. Here at most
//! `threads` checks run at once, at most `queue` wait, and a check that
//! waited past its deadline is not run: the caller hears `Busy` and answers
//! 429 with `Retry-After`.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// A check that could not be run now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many password checks in progress")]
pub struct Busy;

struct Job {
    password: String,
    phc: String,
    deadline: Instant,
    answer: oneshot::Sender<Result<bool, Busy>>,
}

/// The pool; cheap to share behind the service.
pub struct Verifier {
    jobs: SyncSender<Job>,
    wait: Duration,
}

impl Verifier {
    /// Starts `threads` checking threads with room for `queue` waiting checks,
    /// each waiting at most `wait`.
    pub fn start(threads: usize, queue: usize, wait: Duration) -> std::io::Result<Self> {
        let (tx, rx) = sync_channel::<Job>(queue.max(1));
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            std::thread::Builder::new().name(format!("password-{i}")).spawn(move || work(&rx))?;
        }
        Ok(Self { jobs: tx, wait })
    }

    /// Whether `password` matches the PHC string `phc`, or `Busy`.
    pub async fn verify(&self, password: &str, phc: &str) -> Result<bool, Busy> {
        let (answer, rx) = oneshot::channel();
        let job = Job { password: password.to_owned(), phc: phc.to_owned(), deadline: Instant::now() + self.wait, answer };
        match self.jobs.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => return Err(Busy),
        }
        rx.await.unwrap_or(Err(Busy))
    }
}

fn work(rx: &Mutex<Receiver<Job>>) {
    loop {
        let job = {
            let rx = rx.lock().unwrap_or_else(|p| p.into_inner());
            match rx.recv() {
                Ok(job) => job,
                // The service is gone: the server is stopping.
                Err(_) => return,
            }
        };
        if job.answer.is_closed() {
            // The request was dropped (client gone): spare the work.
            continue;
        }
        let outcome = if Instant::now() > job.deadline { Err(Busy) } else { Ok(super::password::verify(&job.password, &job.phc)) };
        let _ = job.answer.send(outcome);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn checks_and_refuses_beyond_its_queue() {
        let phc = super::super::password::hash("correct horse battery").unwrap();
        let v = Arc::new(Verifier::start(1, 2, Duration::from_secs(30)).unwrap());
        assert_eq!(v.verify("correct horse battery", &phc).await, Ok(true));
        assert_eq!(v.verify("wrong horse battery", &phc).await, Ok(false));
        // One running and two queued at most: of 12 at once, some are refused at once.
        let all = futures_util::future::join_all((0..12).map(|_| {
            let (v, phc) = (v.clone(), phc.clone());
            async move { v.verify("wrong horse battery", &phc).await }
        }))
        .await;
        assert!(all.iter().filter(|r| r.is_err()).count() >= 8, "{all:?}");
        assert!(all.contains(&Ok(false)));
    }

    #[tokio::test]
    async fn a_check_that_waited_too_long_is_not_run() {
        let phc = super::super::password::hash("correct horse battery").unwrap();
        let v = Arc::new(Verifier::start(1, 8, Duration::from_millis(1)).unwrap());
        let all = futures_util::future::join_all((0..6).map(|_| {
            let (v, phc) = (v.clone(), phc.clone());
            async move { v.verify("correct horse battery", &phc).await }
        }))
        .await;
        assert!(all.contains(&Err(Busy)), "{all:?}");
    }
}
