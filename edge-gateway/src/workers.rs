//! The HTTPS worker threads.
//!
//! One accept loop hands each new connection to the next worker in turn. A
//! worker is a thread with its own single-threaded runtime and its own
//! context (for HTTPS: a gateway with its own pool of connections to the
//! core), so everything a connection does — TLS, the request, the hop to the
//! core — happens on one thread and never has to wake another. On a small
//! machine those cross-thread wake-ups cost more than a request's own work
//! (docs/performance.md has the numbers).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, warn};

/// What a worker runs: a connection's future, made on the worker's thread
/// from the worker's context.
type Job<C> = Box<dyn FnOnce(&C) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// Worker threads, each with a context of type `C`.
pub struct Workers<C> {
    lanes: Vec<mpsc::UnboundedSender<Job<C>>>,
    next: AtomicUsize,
    finished: Vec<oneshot::Receiver<()>>,
    abort: CancellationToken,
}

impl<C> std::fmt::Debug for Workers<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workers").field("count", &self.lanes.len()).finish()
    }
}

/// `requested` workers, or one per CPU when it is 0.
pub fn count(requested: usize) -> usize {
    if requested > 0 {
        return requested;
    }
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

impl<C: Send + 'static> Workers<C> {
    /// Starts `count` workers named `name-N`, each with a context from
    /// `context`.
    pub fn start(name: &str, count: usize, mut context: impl FnMut() -> C) -> std::io::Result<Self> {
        let abort = CancellationToken::new();
        let mut lanes = Vec::with_capacity(count);
        let mut finished = Vec::with_capacity(count);
        for n in 0..count.max(1) {
            let (lane, jobs) = mpsc::unbounded_channel();
            let (done, finish) = oneshot::channel();
            // The worker's log lines are written whenever it runs out of
            // work, many to a `write` under load (`logline::write`).
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .on_thread_park(logline::write::flush_this_thread)
                .build()?;
            let context = context();
            let abort = abort.clone();
            std::thread::Builder::new().name(format!("{name}-{n}")).spawn(move || {
                let _log = logline::write::buffer_this_thread();
                runtime.block_on(work(jobs, context, abort));
                let _ = done.send(());
            })?;
            lanes.push(lane);
            finished.push(finish);
        }
        Ok(Self {
            lanes,
            next: AtomicUsize::new(0),
            finished,
            abort,
        })
    }

    /// Runs `job` on the next worker in turn (skipping any worker whose
    /// thread has ended, which only a bug could cause).
    pub fn run<F>(&self, job: impl FnOnce(&C) -> F + Send + 'static)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let first = self.next.fetch_add(1, Ordering::Relaxed);
        let mut job: Job<C> = Box::new(move |context| Box::pin(job(context)));
        for n in (first..first + self.lanes.len()).map(|i| i % self.lanes.len()) {
            match self.lanes[n].send(job) {
                Ok(()) => return,
                Err(mpsc::error::SendError(returned)) => {
                    warn!(worker = n, "a worker thread has ended; trying the next");
                    job = returned;
                }
            }
        }
        error!("no worker thread left; connection dropped");
    }

    /// Stops taking work and waits up to `grace` for the workers' jobs to
    /// end; jobs still running then are dropped.
    pub async fn stop(self, grace: Duration) {
        drop(self.lanes);
        let all = async {
            for finished in self.finished {
                let _ = finished.await;
            }
        };
        if tokio::time::timeout(grace, all).await.is_err() {
            warn!("worker threads still busy after {grace:?}; dropping their connections");
            self.abort.cancel();
        }
    }
}

async fn work<C>(mut jobs: mpsc::UnboundedReceiver<Job<C>>, context: C, abort: CancellationToken) {
    let tracker = TaskTracker::new();
    while let Some(job) = jobs.recv().await {
        tracker.spawn(job(&context));
    }
    tracker.close();
    tokio::select! {
        () = tracker.wait() => {}
        () = abort.cancelled() => {}
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::{Arc, Mutex};

    use super::*;

    #[tokio::test]
    async fn jobs_go_round_robin_and_stop_waits_for_them() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut ids = 0usize..;
        let workers = Workers::start("test", 3, || ids.next().unwrap()).unwrap();
        for _ in 0..6 {
            let seen = Arc::clone(&seen);
            workers.run(move |id: &usize| {
                let id = *id;
                async move {
                    // Still running when `stop` is called.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    let thread = std::thread::current().name().unwrap().to_owned();
                    seen.lock().unwrap().push((id, thread));
                }
            });
        }
        workers.stop(Duration::from_secs(10)).await;
        let mut seen = seen.lock().unwrap().clone();
        seen.sort();
        let expected: Vec<(usize, String)> = [0, 0, 1, 1, 2, 2].map(|n| (n, format!("test-{n}"))).into();
        assert_eq!(seen, expected);
    }

    #[tokio::test]
    async fn stop_gives_up_on_jobs_that_outlive_the_grace() {
        let workers = Workers::start("slow", 1, || ()).unwrap();
        workers.run(|(): &()| std::future::pending::<()>());
        let started = std::time::Instant::now();
        workers.stop(Duration::from_millis(200)).await;
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
