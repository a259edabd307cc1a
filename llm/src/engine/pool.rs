//! A small persistent thread pool for the quantized matmul kernels.
//!
//! `Pool::new(threads)` starts `threads - 1` worker threads once; `run(n_tasks, f)` publishes a
//! job (a borrowed `&dyn Fn(usize)`), and the workers and the calling thread take task indices
//! from a shared atomic counter until all are taken, so the work is balanced dynamically.
//! A worker joins a job only by registering (`inside += 1`) while the job is still open;
//! `run` closes the job once all tasks are taken and waits only for the workers that joined
//! (which are running tasks), never for one that has not woken up yet: with another process
//! on the cores, a descheduled worker costs nothing but its share of the tasks. `run`
//! returns only when no worker is inside the job, which is what makes lending a borrowed
//! closure to other threads sound.
//!
//! Idle workers spin briefly (so back-to-back matmuls in the decode loop do not pay a futex
//! wake-up each) and then sleep on a condvar: a pool never burns a core while nothing is
//! being computed, which matters when another process competes for the two cores.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

thread_local! {
    /// This thread is running a pool task (a worker, or a caller inside `run`): a nested
    /// `run` then runs its tasks inline instead of deadlocking on the busy pool.
    static IN_TASK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// How long an idle worker (or the caller waiting for workers) spins before sleeping.
const SPIN: Duration = Duration::from_micros(150);

/// The job being run: a lifetime-erased pointer to the caller's closure.
#[derive(Clone, Copy)]
struct Job {
    f: *const (dyn Fn(usize) + Sync),
    n_tasks: usize,
}

// SAFETY: the pointee is `Sync`, and `run` keeps it alive until every worker is done with it.
unsafe impl Send for Job {}

struct State {
    job: Option<Job>,
    shutdown: bool,
}

struct Shared {
    state: Mutex<State>,
    work_cv: Condvar,
    done_cv: Condvar,
    /// Bumped (under the `state` lock) each time a job is published.
    generation: AtomicU64,
    /// Next task index to take.
    next: AtomicUsize,
    /// Generation of the job workers may still join (0: none).
    open: AtomicU64,
    /// Workers inside the current job.
    inside: AtomicUsize,
    /// A task panicked in a worker during the current job.
    panicked: AtomicBool,
}

/// Persistent worker threads (no spawn per call). See the module doc.
pub struct Pool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    /// Serialises concurrent `run` calls from different threads on one pool.
    run_lock: Mutex<()>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("threads", &self.threads())
            .finish()
    }
}

impl Pool {
    /// A pool that runs jobs on `threads` threads in total (the caller plus `threads - 1`
    /// workers). `threads` of 0 is taken as 1.
    pub fn new(threads: usize) -> Pool {
        let threads = threads.max(1);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                job: None,
                shutdown: false,
            }),
            work_cv: Condvar::new(),
            done_cv: Condvar::new(),
            generation: AtomicU64::new(0),
            next: AtomicUsize::new(0),
            open: AtomicU64::new(0),
            inside: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
        });
        let mut workers = Vec::with_capacity(threads - 1);
        for i in 1..threads {
            let sh = Arc::clone(&shared);
            let spawned = std::thread::Builder::new()
                .name(format!("lore-pool-{i}"))
                .spawn(move || worker(sh));
            match spawned {
                Ok(handle) => workers.push(handle),
                Err(e) => {
                    tracing::warn!("could not start a matmul worker thread: {e}");
                    break;
                }
            }
        }
        Pool {
            shared,
            workers,
            run_lock: Mutex::new(()),
        }
    }

    /// Threads that take part in a job (workers + the caller).
    pub fn threads(&self) -> usize {
        self.workers.len() + 1
    }

    /// Calls `f(task)` for every task in `0..n_tasks`, on the workers and the calling thread,
    /// and returns when all have run. A panic in a task is re-raised here. Called from inside
    /// a task (of any pool), it runs its tasks inline on the calling thread.
    pub fn run(&self, n_tasks: usize, f: &(dyn Fn(usize) + Sync)) {
        if n_tasks == 0 {
            return;
        }
        if self.workers.is_empty() || n_tasks == 1 || IN_TASK.with(|c| c.get()) {
            (0..n_tasks).for_each(f);
            return;
        }
        let _serial = self.run_lock.lock().unwrap_or_else(|p| p.into_inner());
        let sh = &*self.shared;
        // SAFETY (lifetime erasure): workers dereference the pointer only while registered in
        // `inside` for an open job; `Finish` closes the job and waits for `inside == 0` before
        // `run` returns (also when one of our own tasks panics), so `f` outlives every use.
        let f_static: *const (dyn Fn(usize) + Sync) = unsafe {
            std::mem::transmute::<&(dyn Fn(usize) + Sync), &'static (dyn Fn(usize) + Sync)>(f)
        };
        {
            let mut st = sh.state.lock().unwrap_or_else(|p| p.into_inner());
            sh.next.store(0, Ordering::SeqCst);
            sh.panicked.store(false, Ordering::SeqCst);
            st.job = Some(Job {
                f: f_static,
                n_tasks,
            });
            let g = sh.generation.fetch_add(1, Ordering::SeqCst) + 1;
            sh.open.store(g, Ordering::SeqCst);
            sh.work_cv.notify_all();
        }
        // Close the job and wait for the workers inside it, even if a task of ours panics.
        struct Finish<'a>(&'a Shared);
        impl Drop for Finish<'_> {
            fn drop(&mut self) {
                let sh = self.0;
                sh.open.store(0, Ordering::SeqCst);
                let start = Instant::now();
                while sh.inside.load(Ordering::SeqCst) != 0 {
                    if start.elapsed() > SPIN {
                        let mut st = sh.state.lock().unwrap_or_else(|p| p.into_inner());
                        while sh.inside.load(Ordering::SeqCst) != 0 {
                            st = sh.done_cv.wait(st).unwrap_or_else(|p| p.into_inner());
                        }
                        break;
                    }
                    std::hint::spin_loop();
                }
                let mut st = sh.state.lock().unwrap_or_else(|p| p.into_inner());
                st.job = None;
            }
        }
        let finish = Finish(sh);
        struct InTask;
        impl Drop for InTask {
            fn drop(&mut self) {
                IN_TASK.with(|c| c.set(false));
            }
        }
        IN_TASK.with(|c| c.set(true));
        let in_task = InTask;
        loop {
            let i = sh.next.fetch_add(1, Ordering::Relaxed);
            if i >= n_tasks {
                break;
            }
            f(i);
        }
        drop(in_task);
        drop(finish);
        if sh.panicked.load(Ordering::SeqCst) {
            panic!("a task panicked in a pool worker thread");
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        {
            let mut st = self.shared.state.lock().unwrap_or_else(|p| p.into_inner());
            st.shutdown = true;
            self.shared.generation.fetch_add(1, Ordering::Release);
            self.shared.work_cv.notify_all();
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

fn worker(sh: Arc<Shared>) {
    IN_TASK.with(|c| c.set(true));
    let mut seen = 0u64;
    loop {
        // Short spin for the next job, then sleep.
        let start = Instant::now();
        let mut spins = 0u32;
        while sh.generation.load(Ordering::Acquire) == seen {
            spins += 1;
            if spins.is_multiple_of(64) && start.elapsed() > SPIN {
                break;
            }
            std::hint::spin_loop();
        }
        {
            let mut st = sh.state.lock().unwrap_or_else(|p| p.into_inner());
            while sh.generation.load(Ordering::Acquire) == seen && !st.shutdown {
                st = sh.work_cv.wait(st).unwrap_or_else(|p| p.into_inner());
            }
            if st.shutdown {
                return;
            }
            seen = sh.generation.load(Ordering::Acquire);
        }
        // Join the job if it is still open (Dekker-style with `Finish`: both sides use SeqCst,
        // so either `run` sees us inside, or we see the job closed).
        sh.inside.fetch_add(1, Ordering::SeqCst);
        if sh.open.load(Ordering::SeqCst) == seen {
            let job = sh.state.lock().unwrap_or_else(|p| p.into_inner()).job;
            if let Some(job) = job {
                // SAFETY: we are registered in `inside` for the open job, so `run` has not
                // returned and the closure is alive until we deregister below.
                let f = unsafe { &*job.f };
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| loop {
                    let i = sh.next.fetch_add(1, Ordering::Relaxed);
                    if i >= job.n_tasks {
                        break;
                    }
                    f(i);
                }));
                if result.is_err() {
                    sh.panicked.store(true, Ordering::SeqCst);
                    // Let the others stop taking tasks.
                    sh.next.store(usize::MAX / 2, Ordering::Relaxed);
                }
            }
        }
        if sh.inside.fetch_sub(1, Ordering::SeqCst) == 1 {
            let _st = sh.state.lock().unwrap_or_else(|p| p.into_inner());
            sh.done_cv.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_runs_every_task_once() {
        for threads in [1, 2, 3, 4] {
            let pool = Pool::new(threads);
            assert_eq!(pool.threads(), threads);
            for round in 0..200 {
                let n = (round * 7) % 97;
                let counts: Vec<AtomicUsize> = (0..n).map(|_| AtomicUsize::new(0)).collect();
                let ids = Mutex::new(std::collections::HashSet::new());
                pool.run(n, &|i| {
                    counts[i].fetch_add(1, Ordering::Relaxed);
                    if i % 13 == 0 {
                        ids.lock()
                            .expect("lock")
                            .insert(std::thread::current().id());
                    }
                });
                assert!(counts.iter().all(|c| c.load(Ordering::Relaxed) == 1));
            }
        }
    }

    #[test]
    fn nested_run_runs_inline() {
        let pool = Pool::new(2);
        let sum = AtomicUsize::new(0);
        pool.run(8, &|i| {
            pool.run(4, &|j| {
                sum.fetch_add(i * 4 + j, Ordering::Relaxed);
            });
        });
        assert_eq!(sum.load(Ordering::Relaxed), 31 * 32 / 2);
    }

    #[test]
    fn pool_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Pool>();
    }

    #[test]
    fn pool_uses_several_threads() {
        let pool = Pool::new(2);
        let ids = Mutex::new(std::collections::HashSet::new());
        pool.run(64, &|_| {
            std::thread::sleep(Duration::from_millis(2));
            ids.lock()
                .expect("lock")
                .insert(std::thread::current().id());
        });
        assert_eq!(ids.lock().expect("lock").len(), 2);
    }

    #[test]
    fn pool_survives_sleeping_workers() {
        let pool = Pool::new(3);
        for _ in 0..5 {
            std::thread::sleep(Duration::from_millis(3)); // workers go to sleep
            let sum = AtomicUsize::new(0);
            pool.run(1000, &|i| {
                sum.fetch_add(i, Ordering::Relaxed);
            });
            assert_eq!(sum.load(Ordering::Relaxed), 999 * 1000 / 2);
        }
    }

    #[test]
    fn pool_reraises_task_panics() {
        let pool = Pool::new(2);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            pool.run(100, &|i| {
                if i == 57 {
                    panic!("boom");
                }
            })
        }));
        assert!(r.is_err());
        // Still usable.
        let sum = AtomicUsize::new(0);
        pool.run(10, &|i| {
            sum.fetch_add(i, Ordering::Relaxed);
        });
        assert_eq!(sum.load(Ordering::Relaxed), 45);
    }
}
