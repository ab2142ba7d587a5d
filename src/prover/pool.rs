//! Work pools: CPU-heavy work (argon2, circuit compilation and input evaluation, key
//! generation and proof verification) on fixed sets of threads, never on the async
//! workers.
//!
//! [`Pools`] keeps one pool per kind of work, each with its own threads and queue, so
//! none can starve another: a flood of proofs to verify fills the verification queue
//! and gets 503s, while logins (argon2) and order intake (input evaluation) keep their
//! own threads. The operating system shares the cores between the pools' threads.
//!
//! An actix `SyncArbiter` runs one worker per thread (default: one per core). The queue
//! in front of it is bounded: when `capacity` jobs are already waiting or running, a new
//! job is refused at once with a 503 and `Retry-After`, so a flood of proofs cannot
//! grow memory without bound or starve order intake. Each job's queueing and running
//! time is logged.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;

use crate::error::MarketError;

/// A closure to run on a pool thread.
struct Job<R: Send + 'static> {
    name: &'static str,
    pool: &'static str,
    busy: Arc<AtomicUsize>,
    queued: Instant,
    work: Box<dyn FnOnce() -> R + Send>,
}

impl<R: Send + 'static> Message for Job<R> {
    type Result = R;
}

struct Worker;

impl Actor for Worker {
    type Context = SyncContext<Self>;
}

impl<R: Send + 'static> Handler<Job<R>> for Worker {
    type Result = MessageResult<Job<R>>;

    fn handle(&mut self, job: Job<R>, _: &mut SyncContext<Self>) -> Self::Result {
        let started = Instant::now();
        let waited = started.duration_since(job.queued);
        job.busy.fetch_add(1, Ordering::AcqRel);
        let busy = Release(job.busy.clone());
        let r = (job.work)();
        drop(busy);
        let jobs = &crate::metrics::metrics().pool_job_seconds;
        jobs.with_label_values(&[job.pool, "queued"])
            .observe(waited.as_secs_f64());
        jobs.with_label_values(&[job.pool, "run"])
            .observe(started.elapsed().as_secs_f64());
        tracing::info!(
            job = job.name,
            queued_ms = waited.as_secs_f64() * 1e3,
            run_ms = started.elapsed().as_secs_f64() * 1e3,
            "prover job done"
        );
        MessageResult(r)
    }
}

/// Handle to the pool; cheap to clone.
#[derive(Clone)]
pub struct ProverPool {
    name: &'static str,
    addr: Addr<Worker>,
    in_flight: Arc<AtomicUsize>,
    /// Jobs running now.
    busy: Arc<AtomicUsize>,
    capacity: usize,
    threads: usize,
}

impl ProverPool {
    /// Starts `threads` workers (0: one per core) with room for `capacity` queued or
    /// running jobs; `name` names the pool in logs and 503s. Must be called inside an
    /// actix system.
    pub fn start(name: &'static str, threads: usize, capacity: usize) -> ProverPool {
        let threads = if threads == 0 {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            threads
        };
        crate::metrics::metrics().add_pool(name);
        ProverPool {
            name,
            addr: SyncArbiter::start(threads, || Worker),
            in_flight: Arc::new(AtomicUsize::new(0)),
            busy: Arc::new(AtomicUsize::new(0)),
            capacity: capacity.max(1),
            threads,
        }
    }

    /// Number of worker threads.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Jobs queued or running now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Jobs running now.
    pub fn busy(&self) -> usize {
        self.busy.load(Ordering::Relaxed)
    }

    /// Most jobs queued or running.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The pool's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Runs `work` on a pool thread; 503 when the queue is full.
    pub async fn run<R, F>(&self, name: &'static str, work: F) -> Result<R, MarketError>
    where
        R: Send + 'static,
        F: FnOnce() -> R + Send + 'static,
    {
        if self.in_flight.fetch_add(1, Ordering::AcqRel) >= self.capacity {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            return Err(MarketError::Unavailable {
                message: format!(
                    "the {} pool is full ({} jobs); retry shortly",
                    self.name, self.capacity
                ),
                retry_after_secs: 2,
            });
        }
        let _guard = Release(self.in_flight.clone());
        let job = Job {
            name,
            pool: self.name,
            busy: self.busy.clone(),
            queued: Instant::now(),
            work: Box::new(work),
        };
        self.addr
            .send(job)
            .await
            .map_err(|e| MarketError::Internal(format!("{} pool: {e}", self.name)))
    }
}

/// Threads and queue length of one pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSize {
    /// Worker threads (0: one per core).
    pub threads: usize,
    /// Jobs queued or running at most; more are refused with a 503.
    pub queue: usize,
}

/// The sizes of the three pools.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSizes {
    /// argon2 password hashing and checking.
    pub auth: PoolSize,
    /// Compiling circuits and evaluating order inputs on them.
    pub circuit: PoolSize,
    /// Building circuit keys and verifying proofs.
    pub verify: PoolSize,
}

impl Default for PoolSizes {
    fn default() -> Self {
        PoolSizes {
            auth: PoolSize {
                threads: 1,
                queue: 64,
            },
            circuit: PoolSize {
                threads: 1,
                queue: 256,
            },
            verify: PoolSize {
                threads: 0,
                queue: 64,
            },
        }
    }
}

/// One pool per kind of work (see the module docs).
#[derive(Clone)]
pub struct Pools {
    /// argon2.
    pub auth: ProverPool,
    /// Circuit compilation and input evaluation.
    pub circuit: ProverPool,
    /// Key generation and proof verification.
    pub verify: ProverPool,
}

impl Pools {
    /// Starts the pools. Must be called inside an actix system.
    pub fn start(sizes: PoolSizes) -> Pools {
        let start = |name, s: PoolSize| ProverPool::start(name, s.threads, s.queue);
        Pools {
            auth: start("password", sizes.auth),
            circuit: start("circuit", sizes.circuit),
            verify: start("verification", sizes.verify),
        }
    }
}

/// Decrements the in-flight count even when the caller's future is dropped.
struct Release(Arc<AtomicUsize>);

impl Drop for Release {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix::test]
    async fn runs_jobs_and_refuses_when_full() {
        let pool = ProverPool::start("test", 1, 2);
        assert_eq!(pool.run("add", || 2 + 2).await.unwrap(), 4);
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let p1 = pool.clone();
        let blocker = actix::spawn(async move { p1.run("block", move || rx.recv().is_ok()).await });
        let p2 = pool.clone();
        let queued = actix::spawn(async move { p2.run("queued", || 1).await });
        while pool.in_flight() < 2 {
            actix::clock::sleep(std::time::Duration::from_millis(5)).await;
        }
        match pool.run("refused", || 0).await {
            Err(MarketError::Unavailable { message, .. }) => {
                assert!(message.contains("the test pool is full"), "{message}")
            }
            other => panic!("expected a 503, got {:?}", other.map(|_| ())),
        }
        tx.send(()).unwrap();
        assert!(blocker.await.unwrap().unwrap());
        assert_eq!(queued.await.unwrap().unwrap(), 1);
        assert_eq!(pool.in_flight(), 0);
    }
}
