//! Two-step sign-in challenges in Redis: an `mfa_token` (`tsm_…`) is stored
//! only under its SHA-256, as a hash (user, the session epoch its sign-in
//! read, the factor it was issued under, wrong codes so far) that expires
//! with the challenge. It dies at its first success, after too many wrong
//! codes, at expiry, and when the user's epoch or factor changes (those the
//! sign-in compares when it spends it).

use std::time::Duration;

use redis::Script;
use uuid::Uuid;

use crate::{
    keyspace::{Keyspace, RedisError},
    secrets::SecretDigest,
    sessions::Epoch,
};

/// An outstanding challenge as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Challenge {
    pub user_id: Uuid,
    pub epoch: Epoch,
    pub factor_id: Uuid,
    pub expires_in: Duration,
}

pub struct ChallengeStore {
    keyspace: Keyspace,
    ttl: Duration,
    max_attempts: u32,
    fail: Script,
}

/// Counts a wrong code; the challenge dies at the last one allowed.
/// KEYS[1] the challenge; ARGV[1] wrong codes it survives.
/// Returns 1 while it lives, 0 once it is gone.
const FAIL_SCRIPT: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
if redis.call('HINCRBY', KEYS[1], 'n', 1) >= tonumber(ARGV[1]) then
  redis.call('DEL', KEYS[1])
  return 0
end
return 1
";

impl ChallengeStore {
    pub fn new(keyspace: Keyspace, ttl: Duration, max_attempts: u32) -> Self {
        ChallengeStore {
            keyspace,
            ttl,
            max_attempts,
            fail: Script::new(FAIL_SCRIPT),
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    pub async fn create(
        &self,
        digest: &SecretDigest,
        user_id: Uuid,
        epoch: Epoch,
        factor_id: Uuid,
    ) -> Result<(), RedisError> {
        let key = self.key(digest);
        let ttl_ms = self.ttl.as_millis() as u64;
        self.keyspace
            .run(|mut conn| async move {
                redis::pipe()
                    .atomic()
                    .hset_multiple(
                        &key,
                        &[
                            ("uid", user_id.to_string()),
                            ("ep", epoch.value().to_string()),
                            ("fid", factor_id.to_string()),
                            ("n", "0".into()),
                        ],
                    )
                    .ignore()
                    .pexpire(&key, ttl_ms as i64)
                    .ignore()
                    .query_async::<()>(&mut conn)
                    .await
            })
            .await
    }

    pub async fn find(&self, digest: &SecretDigest) -> Result<Option<Challenge>, RedisError> {
        let key = self.key(digest);
        let (fields, ttl_ms): (Vec<Option<String>>, i64) = self
            .keyspace
            .run(|mut conn| async move {
                redis::pipe()
                    .cmd("HMGET")
                    .arg(&key)
                    .arg("uid")
                    .arg("ep")
                    .arg("fid")
                    .pttl(&key)
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        let [Some(user), Some(epoch), Some(factor)] = fields.as_slice() else {
            return Ok(None);
        };
        let unexpected = || RedisError::Unexpected("a challenge record".into());
        let Ok(ttl_ms) = u64::try_from(ttl_ms) else {
            return Ok(None);
        };
        Ok(Some(Challenge {
            user_id: user.parse().map_err(|_| unexpected())?,
            epoch: Epoch::new(epoch.parse().map_err(|_| unexpected())?),
            factor_id: factor.parse().map_err(|_| unexpected())?,
            expires_in: Duration::from_millis(ttl_ms),
        }))
    }

    /// Counts a wrong code against the challenge.
    pub async fn fail(&self, digest: &SecretDigest) -> Result<(), RedisError> {
        let mut invocation = self.fail.prepare_invoke();
        invocation.key(self.key(digest)).arg(self.max_attempts);
        self.keyspace
            .run(|mut conn| async move { invocation.invoke_async::<u8>(&mut conn).await })
            .await?;
        Ok(())
    }

    /// Spends (or kills) the challenge: `true` for the one caller that does.
    pub async fn take(&self, digest: &SecretDigest) -> Result<bool, RedisError> {
        let key = self.key(digest);
        let deleted: u8 = self
            .keyspace
            .run(|mut conn| async move { redis::cmd("DEL").arg(key).query_async(&mut conn).await })
            .await?;
        Ok(deleted == 1)
    }

    fn key(&self, digest: &SecretDigest) -> String {
        self.keyspace.key(format_args!("mfa:{}", digest.as_str()))
    }
}
