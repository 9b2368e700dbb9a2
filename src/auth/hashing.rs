//! Argon2id hashing on a bounded pool off the async workers.
//!
//! Hashing is the one expensive thing Tessera does (19 MiB and tens of
//! milliseconds per hash), so at most `workers` hashes run at once and at
//! most `queue` more requests wait for a slot; past that the caller is told
//! to come back (503) at once instead of piling up memory and latency.

use std::sync::Arc;

use argon2::{
    Algorithm, Argon2, Params, Version,
    password_hash::{PasswordHasher, PasswordVerifier, phc::PasswordHash},
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

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

#[derive(Clone)]
pub struct HashingPool {
    params: Params,
    /// One permit per hash allowed to run.
    running: Arc<Semaphore>,
    /// One permit per request allowed in (running or waiting).
    admitted: Arc<Semaphore>,
    /// Verified against when the user does not exist, so that an unknown
    /// user costs the same time as a wrong password.
    dummy_hash: Arc<str>,
}

impl HashingPool {
    /// Builds the pool and its dummy hash (one hash, off the async workers).
    pub async fn new(settings: &PasswordSettings) -> Result<Self, HashingError> {
        let params = Params::new(
            settings.argon2_memory_kib,
            settings.argon2_iterations,
            settings.argon2_parallelism,
            None,
        )
        .map_err(|err| HashingError::Failed(err.to_string()))?;
        let workers = match settings.hashing_workers {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        };
        let dummy_params = params.clone();
        let dummy_hash = tokio::task::spawn_blocking(move || {
            hash_with(&dummy_params, b"tessera-dummy-password-for-unknown-users")
        })
        .await
        .map_err(|err| HashingError::Failed(err.to_string()))??;
        Ok(HashingPool {
            params,
            running: Arc::new(Semaphore::new(workers)),
            admitted: Arc::new(Semaphore::new(workers + settings.hashing_queue)),
            dummy_hash: dummy_hash.into(),
        })
    }

    /// Hashes a new password into an Argon2id PHC string.
    pub async fn hash(&self, password: NewPassword) -> Result<String, HashingError> {
        let params = self.params.clone();
        self.run(move || hash_with(&params, password.as_bytes()))
            .await?
    }

    /// Checks a sign-in attempt against the stored hash, or against the dummy
    /// hash when there is no such user (the result is then always a mismatch).
    /// A correct password over a weaker hash is rehashed in the same slot.
    pub async fn verify(
        &self,
        attempt: PasswordAttempt,
        stored: Option<String>,
    ) -> Result<Verification, HashingError> {
        let params = self.params.clone();
        let user_exists = stored.is_some();
        let hash = stored.unwrap_or_else(|| self.dummy_hash.to_string());
        self.run(move || {
            let Ok(parsed) = PasswordHash::new(&hash) else {
                return Verification::Mismatch;
            };
            let matches = argon2(&params)
                .verify_password(attempt.as_bytes(), &parsed)
                .is_ok();
            if !(user_exists && matches) {
                return Verification::Mismatch;
            }
            let upgraded_hash = is_weaker(&parsed, &params)
                .then(|| hash_with(&params, attempt.as_bytes()).ok())
                .flatten();
            Verification::Match { upgraded_hash }
        })
        .await
    }

    /// Runs `work` on the blocking pool once a hashing slot is free, or
    /// refuses at once when the queue in front of the slots is full.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashingError> {
        let admission = Arc::clone(&self.admitted)
            .try_acquire_owned()
            .map_err(|_| HashingError::Overloaded)?;
        let slot: OwnedSemaphorePermit = Arc::clone(&self.running)
            .acquire_owned()
            .await
            .map_err(|err| HashingError::Failed(err.to_string()))?;
        // The permits move into the task so a cancelled request (client gone)
        // still holds its slot until the hash really finishes.
        tokio::task::spawn_blocking(move || {
            let result = work();
            drop((slot, admission));
            result
        })
        .await
        .map_err(|err| HashingError::Failed(err.to_string()))
    }
}

fn argon2(params: &Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
}

fn hash_with(params: &Params, password: &[u8]) -> Result<String, HashingError> {
    argon2(params)
        .hash_password(password)
        .map(|hash| hash.to_string())
        .map_err(|err| HashingError::Failed(err.to_string()))
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
            hashing_workers: 1,
            hashing_queue: queue,
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
            .hash(new_password("correct-Horse-battery-9-staple"))
            .await
            .unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        let attempt = |p: &str| PasswordAttempt::new(p.into());
        let right = pool.verify(
            attempt("correct-Horse-battery-9-staple"),
            Some(hash.clone()),
        );
        assert_eq!(
            right.await.unwrap(),
            Verification::Match {
                upgraded_hash: None
            }
        );
        let wrong = pool.verify(attempt("wrong-Horse-battery-9-staple"), Some(hash));
        assert_eq!(wrong.await.unwrap(), Verification::Mismatch);
    }

    #[tokio::test]
    async fn an_unknown_user_never_matches_even_the_dummy_password() {
        let pool = HashingPool::new(&settings(4)).await.unwrap();
        let attempt = PasswordAttempt::new("tessera-dummy-password-for-unknown-users".into());
        assert_eq!(
            pool.verify(attempt, None).await.unwrap(),
            Verification::Mismatch
        );
    }

    #[tokio::test]
    async fn weaker_stored_hashes_are_upgraded() {
        let pool = HashingPool::new(&settings(4)).await.unwrap();
        let old_params = Params::new(8192, 1, 1, None).unwrap();
        let weak = hash_with(&old_params, b"old-Horse-battery-9").unwrap();
        let attempt = PasswordAttempt::new("old-Horse-battery-9".into());
        let Verification::Match {
            upgraded_hash: Some(upgraded),
        } = pool.verify(attempt, Some(weak)).await.unwrap()
        else {
            panic!("expected an upgraded hash");
        };
        assert!(
            upgraded.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{upgraded}"
        );
        let attempt = PasswordAttempt::new("old-Horse-battery-9".into());
        assert_eq!(
            pool.verify(attempt, Some(upgraded)).await.unwrap(),
            Verification::Match {
                upgraded_hash: None
            }
        );
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once() {
        let pool = HashingPool::new(&settings(1)).await.unwrap();
        // Occupy the only hashing slot, so admitted requests have to wait.
        let busy = Arc::clone(&pool.running).acquire_owned().await.unwrap();
        let queued: Vec<_> = ["first-Horse-battery-9", "second-Horse-battery-9"]
            .into_iter()
            .map(|raw| {
                let pool = pool.clone();
                tokio::spawn(async move { pool.hash(new_password(raw)).await })
            })
            .collect();
        while pool.admitted.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        // One slot plus a queue of one are taken: the next is refused at once.
        let refused = pool.hash(new_password("third-Horse-battery-9")).await;
        assert!(
            matches!(refused, Err(HashingError::Overloaded)),
            "{refused:?}"
        );
        drop(busy);
        for hash in queued {
            assert!(hash.await.unwrap().is_ok());
        }
    }
}
