//! A few dedicated threads for password hashing (argon2, bcrypt). Each argon2 hash
//! takes 19 MiB for tens of milliseconds; run on tokio's blocking pool, a burst of
//! logins spread over many threads, and the allocator kept a hash's memory in each
//! thread's arena (the heap grew past 1 GiB under load). A pool of one thread per
//! core bounds both the CPU a login flood can take and the memory it leaves behind.

use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};

type Work = Box<dyn FnOnce() + Send>;

/// The pool; its threads end when it is dropped.
pub struct HashPool {
    work: Mutex<Sender<Work>>,
}

impl HashPool {
    pub fn new(threads: usize) -> HashPool {
        let (tx, rx) = channel::<Work>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("imagehub-hash-{i}"))
                .spawn(move || work_loop(&rx));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "could not start a password hashing thread");
            }
        }
        HashPool { work: Mutex::new(tx) }
    }

    /// Runs `work` on a pool thread and waits for its result; `None` if the pool is gone.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Work = Box::new(move || {
            let _ = tx.send(work());
        });
        self.work.lock().unwrap_or_else(|e| e.into_inner()).send(job).ok()?;
        rx.await.ok()
    }
}

fn work_loop(rx: &Mutex<Receiver<Work>>) {
    loop {
        let job = match rx.lock().unwrap_or_else(|e| e.into_inner()).recv() {
            Ok(job) => job,
            Err(_) => return, // the pool was dropped
        };
        job();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_work_and_returns_results() {
        let pool = HashPool::new(2);
        let results = futures_util::future::join_all((0..8).map(|i| pool.run(move || i * 2))).await;
        assert_eq!(results, (0..8).map(|i| Some(i * 2)).collect::<Vec<_>>());
    }
}
