//! Argon2id hashing on a bounded pool of dedicated threads.
//!
//! Hashing is the one expensive thing Tessera does (19 MiB and tens of
//! milliseconds per hash), so it runs on `workers` threads of its own, off
//! the async workers, and at most `queue` more requests wait for one; past
//! that the caller is told to come back (503) at once instead of piling up
//! memory and latency. Each worker keeps its Argon2 memory between hashes,
//! so the pool holds at most `workers × m_cost` however many hashes it runs
//! (freeing and reallocating 19 MiB per hash left the allocator holding
//! hundreds of MiB), and gives it back to the system once idle.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use argon2::{
    Algorithm, Argon2, Block, Params, Version,
    password_hash::phc::{Output, ParamsString, PasswordHash, Salt},
};
use flume::{Receiver, RecvTimeoutError, Sender};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use crate::{
    domain::{NewPassword, PasswordAttempt},
    settings::PasswordSettings,
};

#[derive(Debug, thiserror::Error)]
pub enum HashingError {
    #[error("too many password hashes queued")]
    Overloaded,
    #[error("password hashing failed: {0}")]
    Failed(String),
}

/// The outcome of checking a sign-in password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    Mismatch,
    /// Correct. When the stored hash was weaker than the configured
    /// parameters, `upgraded_hash` replaces it.
    Match {
        upgraded_hash: Option<String>,
    },
}

/// A worker idle this long frees its Argon2 memory.
const RELEASE_IDLE_MEMORY_AFTER: Duration = Duration::from_secs(2);

/// A worker's Argon2 memory, reused from one hash to the next.
struct Memory(Vec<Block>);

impl Memory {
    fn blocks(&mut self, count: usize) -> &mut [Block] {
        if self.0.len() < count {
            self.0.resize(count, Block::default());
        }
        &mut self.0[..count]
    }

    fn release(&mut self) {
        if !self.0.is_empty() {
            self.0 = Vec::new();
            return_freed_memory_to_the_system();
        }
    }
}

/// glibc keeps freed blocks this large in its arenas; trimming hands them
/// back, so an idle server's RSS does not carry the last burst of hashing.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn return_freed_memory_to_the_system() {
    // SAFETY: malloc_trim takes no pointers and only releases free pages.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn return_freed_memory_to_the_system() {}

type Job = Box<dyn FnOnce(&mut Memory) + Send>;

#[derive(Clone)]
pub struct HashingPool {
    params: Params,
    jobs: Sender<Job>,
    /// One permit per request allowed in (running or waiting).
    admitted: Arc<Semaphore>,
    /// Permits in all: workers plus queue.
    capacity: usize,
    /// Hashes being computed now.
    running: Arc<AtomicUsize>,
    /// Verified against when the user does not exist, so that an unknown
    /// user costs the same time as a wrong password.
    dummy_hash: Arc<str>,
}

impl HashingPool {
    /// Starts the workers and computes the dummy hash on one of them.
    pub async fn new(settings: &PasswordSettings) -> Result<Self, HashingError> {
        Self::start(settings, RELEASE_IDLE_MEMORY_AFTER).await
    }

    /// As [`HashingPool::new`], with workers that free their memory after
    /// `release_after` idle.
    async fn start(
        settings: &PasswordSettings,
        release_after: Duration,
    ) -> Result<Self, HashingError> {
        let params = Params::new(
            settings.argon2_memory_kib,
            settings.argon2_iterations,
            settings.argon2_parallelism,
            None,
        )
        .map_err(|err| HashingError::Failed(err.to_string()))?;
        let workers = settings
            .hashing_workers
            .or_else(|| std::thread::available_parallelism().ok())
            .map_or(1, usize::from);
        let (jobs, receiver) = flume::unbounded::<Job>();
        for index in 0..workers {
            let receiver = receiver.clone();
            std::thread::Builder::new()
                .name(format!("tessera-hash-{index}"))
                .spawn(move || work(&receiver, release_after))
                .map_err(|err| HashingError::Failed(err.to_string()))?;
        }
        let capacity = workers + settings.hashing_queue;
        let mut pool = HashingPool {
            params,
            jobs,
            admitted: Arc::new(Semaphore::new(capacity)),
            capacity,
            running: Arc::new(AtomicUsize::new(0)),
            dummy_hash: Arc::from(""),
        };
        let dummy_params = pool.params.clone();
        let dummy = pool
            .reserve()?
            .run(move |memory| {
                hash_with(
                    memory,
                    &dummy_params,
                    b"tessera-dummy-password-for-unknown-users",
                )
            })
            .await??;
        pool.dummy_hash = dummy.into();
        Ok(pool)
    }

    /// Hashes running now and requests holding a slot while they wait.
    pub fn load(&self) -> HashingLoad {
        let active = self.running.load(Ordering::Relaxed);
        let admitted = self.capacity - self.admitted.available_permits();
        HashingLoad {
            active,
            queued: admitted.saturating_sub(active),
        }
    }

    /// Takes a place (on a worker or in the queue) for one hash, or refuses
    /// at once when every place is taken. Handlers reserve before any other
    /// work, so shedding load costs next to nothing.
    pub fn reserve(&self) -> Result<HashingSlot<'_>, HashingError> {
        let admission = Arc::clone(&self.admitted)
            .try_acquire_owned()
            .map_err(|_| HashingError::Overloaded)?;
        Ok(HashingSlot {
            pool: self,
            admission,
        })
    }
}

/// A snapshot of the pool's load, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HashingLoad {
    pub active: usize,
    pub queued: usize,
}

/// A reserved place for one hash; dropping it unused gives the place back.
pub struct HashingSlot<'a> {
    pool: &'a HashingPool,
    admission: OwnedSemaphorePermit,
}

impl HashingSlot<'_> {
    /// Hashes a new password into an Argon2id PHC string.
    pub async fn hash(self, password: NewPassword) -> Result<String, HashingError> {
        let params = self.pool.params.clone();
        self.run(move |memory| hash_with(memory, &params, password.as_bytes()))
            .await?
    }

    /// Checks a sign-in attempt against the stored hash, or against the dummy
    /// hash when there is no such user (the result is then always a mismatch).
    /// A correct password over a weaker hash is rehashed in the same slot.
    pub async fn verify(
        self,
        attempt: PasswordAttempt,
        stored: Option<String>,
    ) -> Result<Verification, HashingError> {
        let params = self.pool.params.clone();
        let user_exists = stored.is_some();
        let hash = stored.unwrap_or_else(|| self.pool.dummy_hash.to_string());
        self.run(move |memory| {
            let Ok(parsed) = PasswordHash::new(&hash) else {
                return Verification::Mismatch;
            };
            let matches = verify_with(memory, &parsed, attempt.as_bytes());
            if !(user_exists && matches) {
                return Verification::Mismatch;
            }
            let upgraded_hash = is_weaker(&parsed, &params)
                .then(|| hash_with(memory, &params, attempt.as_bytes()).ok())
                .flatten();
            Verification::Match { upgraded_hash }
        })
        .await
    }

    /// Queues `work` for a worker.
    async fn run<T: Send + 'static>(
        self,
        work: impl FnOnce(&mut Memory) -> T + Send + 'static,
    ) -> Result<T, HashingError> {
        let admission = self.admission;
        let (reply, result) = oneshot::channel();
        // The admission permit lives until the hash is done, even if the
        // request is cancelled (client gone): the work still occupies a slot.
        // It is released before the reply, so whoever the reply wakes finds
        // the slot free again.
        let running = Arc::clone(&self.pool.running);
        let job: Job = Box::new(move |memory| {
            running.fetch_add(1, Ordering::Relaxed);
            let output = work(memory);
            running.fetch_sub(1, Ordering::Relaxed);
            drop(admission);
            let _ = reply.send(output);
        });
        self.pool
            .jobs
            .send(job)
            .map_err(|_| HashingError::Failed("hashing workers stopped".into()))?;
        result
            .await
            .map_err(|_| HashingError::Failed("a hashing worker dropped its job".into()))
    }
}

/// A worker: takes jobs until the pool (every sender) is gone, freeing its
/// memory whenever it has been idle for `release_after`.
fn work(receiver: &Receiver<Job>, release_after: Duration) {
    let mut memory = Memory(Vec::new());
    loop {
        match receiver.recv_timeout(release_after) {
            Ok(job) => job(&mut memory),
            Err(RecvTimeoutError::Timeout) => memory.release(),
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

fn hash_with(
    memory: &mut Memory,
    params: &Params,
    password: &[u8],
) -> Result<String, HashingError> {
    let failed = |err: &dyn std::fmt::Display| HashingError::Failed(err.to_string());
    let salt = Salt::generate();
    let mut output = [0u8; Params::DEFAULT_OUTPUT_LEN];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password_into_with_memory(
            password,
            &salt,
            &mut output,
            memory.blocks(params.block_count()),
        )
        .map_err(|err| failed(&err))?;
    let hash = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).map_err(|err| failed(&err))?,
        salt: Some(salt),
        hash: Some(Output::new(&output).map_err(|err| failed(&err))?),
    };
    Ok(hash.to_string())
}

/// Recomputes a stored hash with its own algorithm, version, parameters and
/// salt, and compares in constant time.
fn verify_with(memory: &mut Memory, stored: &PasswordHash, password: &[u8]) -> bool {
    let (Some(salt), Some(expected)) = (&stored.salt, &stored.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(stored.algorithm.as_str()) else {
        return false;
    };
    let Ok(version) = stored.version.map_or(Ok(Version::V0x13), Version::try_from) else {
        return false;
    };
    // Carries the stored output length.
    let Ok(params) = Params::try_from(stored) else {
        return false;
    };
    let mut output = vec![0u8; expected.len()];
    let blocks = memory.blocks(params.block_count());
    let computed = Argon2::new(algorithm, version, params).hash_password_into_with_memory(
        password,
        salt,
        &mut output,
        blocks,
    );
    computed.is_ok() && Output::new(&output).is_ok_and(|output| &output == expected)
}

/// Whether a stored hash uses another algorithm or weaker costs than configured.
fn is_weaker(stored: &PasswordHash, configured: &Params) -> bool {
    let Ok(params) = Params::try_from(stored) else {
        return true;
    };
    stored.algorithm.as_str() != Algorithm::Argon2id.ident().as_str()
        || params.m_cost() < configured.m_cost()
        || params.t_cost() < configured.t_cost()
        || params.p_cost() < configured.p_cost()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::PasswordPolicy;

    fn settings(queue: usize) -> PasswordSettings {
        PasswordSettings {
            min_score: 60,
            argon2_memory_kib: 19_456,
            argon2_iterations: 2,
            argon2_parallelism: 1,
            hashing_workers: std::num::NonZeroUsize::new(1),
            hashing_queue: queue,
            reset_ttl: std::time::Duration::from_secs(3600),
        }
    }

    fn new_password(raw: &str) -> NewPassword {
        PasswordPolicy { min_score: 0 }
            .parse(raw.into(), None)
            .unwrap()
    }

    #[tokio::test]
    async fn hashes_are_argon2id_phc_strings_that_verify() {
        let pool = HashingPool::new(&settings(4)).await.unwrap();
        let hash = pool
            .reserve()
            .unwrap()
            .hash(new_password("correct-Horse-battery-9-staple"))
            .await
            .unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        let attempt = |p: &str| PasswordAttempt::new(p.into());
        let right = pool.reserve().unwrap().verify(
            attempt("correct-Horse-battery-9-staple"),
            Some(hash.clone()),
        );
        assert_eq!(
            right.await.unwrap(),
            Verification::Match {
                upgraded_hash: None
            }
        );
        let wrong = pool
            .reserve()
            .unwrap()
            .verify(attempt("wrong-Horse-battery-9-staple"), Some(hash));
        assert_eq!(wrong.await.unwrap(), Verification::Mismatch);
    }

    #[tokio::test]
    async fn an_unknown_user_never_matches_even_the_dummy_password() {
        let pool = HashingPool::new(&settings(4)).await.unwrap();
        let attempt = PasswordAttempt::new("tessera-dummy-password-for-unknown-users".into());
        assert_eq!(
            pool.reserve().unwrap().verify(attempt, None).await.unwrap(),
            Verification::Mismatch
        );
    }

    #[tokio::test]
    async fn weaker_stored_hashes_are_upgraded() {
        let pool = HashingPool::new(&settings(4)).await.unwrap();
        let old_params = Params::new(8192, 1, 1, None).unwrap();
        let weak = hash_with(&mut Memory(Vec::new()), &old_params, b"old-Horse-battery-9").unwrap();
        let attempt = PasswordAttempt::new("old-Horse-battery-9".into());
        let Verification::Match {
            upgraded_hash: Some(upgraded),
        } = pool
            .reserve()
            .unwrap()
            .verify(attempt, Some(weak))
            .await
            .unwrap()
        else {
            panic!("expected an upgraded hash");
        };
        assert!(
            upgraded.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{upgraded}"
        );
        let attempt = PasswordAttempt::new("old-Horse-battery-9".into());
        assert_eq!(
            pool.reserve()
                .unwrap()
                .verify(attempt, Some(upgraded))
                .await
                .unwrap(),
            Verification::Match {
                upgraded_hash: None
            }
        );
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once() {
        let pool = HashingPool::new(&settings(1)).await.unwrap();
        // Hold the only worker, so the next admitted request has to wait.
        let (release, held) = std::sync::mpsc::channel::<()>();
        let busy = tokio::spawn({
            let pool = pool.clone();
            async move { pool.reserve()?.run(move |_| held.recv().is_ok()).await }
        });
        let queued = tokio::spawn({
            let pool = pool.clone();
            async move {
                pool.reserve()?
                    .hash(new_password("second-Horse-battery-9"))
                    .await
            }
        });
        while pool.admitted.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        // One worker plus a queue of one are taken: the next is refused at once.
        let refused = pool.reserve().map(|_| ());
        assert!(
            matches!(refused, Err(HashingError::Overloaded)),
            "{refused:?}"
        );
        release.send(()).unwrap();
        assert!(busy.await.unwrap().unwrap());
        let queued = queued.await.unwrap();
        assert!(queued.is_ok(), "{queued:?}");
    }

    #[tokio::test]
    async fn idle_workers_free_their_memory() {
        let release_after = Duration::from_millis(200);
        let pool = HashingPool::start(&settings(4), release_after)
            .await
            .unwrap();
        let held = || async {
            pool.reserve()
                .unwrap()
                .run(|memory| memory.0.len())
                .await
                .unwrap()
        };
        // The dummy hash just ran: the worker still holds its memory…
        assert_eq!(held().await, 19_456);
        tokio::time::sleep(release_after * 3).await;
        // …and gives it back once idle.
        assert_eq!(held().await, 0);
    }

    #[tokio::test]
    async fn workers_reuse_their_memory() {
        let pool = HashingPool::new(&settings(4)).await.unwrap();
        let sizes: Vec<usize> = memory_after_hashes(&pool).await;
        assert!(sizes.iter().all(|&blocks| blocks == 19_456), "{sizes:?}");
    }

    /// The memory a worker holds after a few hashes: exactly one hash's worth.
    async fn memory_after_hashes(pool: &HashingPool) -> Vec<usize> {
        let mut sizes = Vec::new();
        for raw in [
            "a-Horse-battery-9-x",
            "b-Horse-battery-9-y",
            "c-Horse-battery-9-z",
        ] {
            pool.reserve()
                .unwrap()
                .hash(new_password(raw))
                .await
                .unwrap();
            sizes.push(
                pool.reserve()
                    .unwrap()
                    .run(|memory| memory.0.len())
                    .await
                    .unwrap(),
            );
        }
        sizes
    }
}
