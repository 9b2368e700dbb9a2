//! Rate limits in Redis, so they hold across instances: fixed windows
//! counted by one script per call.
//!
//! Counter keys carry a hash of their subject (username, IP, session), never
//! the subject itself, and are bounded in length whatever the input.

use std::{net::IpAddr, time::Duration};

use redis::Script;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{
    domain::Username,
    keyspace::{Keyspace, RedisError},
    settings::RateLimitSettings,
};

#[derive(Debug, thiserror::Error)]
pub enum RateLimitError {
    #[error("rate limited for {retry_after:?}")]
    Limited { retry_after: Duration },
    #[error("rate limit counter")]
    Redis(#[from] RedisError),
}

/// So many events per window, per subject.
#[derive(Debug, Clone, Copy)]
struct Limit {
    name: &'static str,
    limit: u64,
    window: Duration,
}

pub struct RateLimiter {
    keyspace: Keyspace,
    enabled: bool,
    signin_failures: Limit,
    signups: Limit,
    refreshes: Limit,
    hit: Script,
    peek: Script,
}

impl RateLimiter {
    pub fn new(keyspace: Keyspace, settings: &RateLimitSettings) -> Self {
        RateLimiter {
            keyspace,
            enabled: settings.enabled,
            signin_failures: Limit {
                name: "signin",
                limit: settings.signin_failures.get(),
                window: settings.signin_window,
            },
            signups: Limit {
                name: "signup",
                limit: settings.signups_per_ip.get(),
                window: settings.signup_window,
            },
            refreshes: Limit {
                name: "refresh",
                limit: settings.refreshes_per_session.get(),
                window: settings.refresh_window,
            },
            hit: Script::new(include_str!("hit.lua")),
            peek: Script::new(include_str!("peek.lua")),
        }
    }

    /// Refuses a sign-in once this username has failed too often from this IP.
    /// Other usernames from the same IP are not affected.
    pub async fn check_signin(&self, username: &str, ip: IpAddr) -> Result<(), RateLimitError> {
        self.peek(self.signin_failures, &signin_subject(username, ip))
            .await
    }

    /// Counts a failed sign-in; successful ones never count.
    pub async fn record_signin_failure(
        &self,
        username: &str,
        ip: IpAddr,
    ) -> Result<(), RateLimitError> {
        // The failure is already answered with 401; being over the limit
        // only matters for the next attempt.
        match self
            .hit(self.signin_failures, &signin_subject(username, ip))
            .await
        {
            Err(RateLimitError::Limited { .. }) | Ok(()) => Ok(()),
            Err(err) => Err(err),
        }
    }

    pub async fn hit_signup(&self, ip: IpAddr) -> Result<(), RateLimitError> {
        self.hit(self.signups, &ip.to_string()).await
    }

    pub async fn hit_refresh(&self, session_id: Uuid) -> Result<(), RateLimitError> {
        self.hit(self.refreshes, &session_id.to_string()).await
    }

    async fn hit(&self, rule: Limit, subject: &str) -> Result<(), RateLimitError> {
        if !self.enabled {
            return Ok(());
        }
        let (count, left_ms) = self.call(&self.hit, rule, subject).await?;
        over_limit(rule, count, left_ms, count > rule.limit)
    }

    async fn peek(&self, rule: Limit, subject: &str) -> Result<(), RateLimitError> {
        if !self.enabled {
            return Ok(());
        }
        let (count, left_ms) = self.call(&self.peek, rule, subject).await?;
        over_limit(rule, count, left_ms, count >= rule.limit)
    }

    async fn call(
        &self,
        script: &Script,
        rule: Limit,
        subject: &str,
    ) -> Result<(u64, i64), RateLimitError> {
        let digest = Sha256::digest(subject.as_bytes());
        let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        let key = self.keyspace.key(format_args!("rl:{}:{hex}", rule.name));
        let mut invocation = script.prepare_invoke();
        invocation.key(key).arg(rule.window.as_millis() as u64);
        Ok(self
            .keyspace
            .run(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await?)
    }
}

fn over_limit(rule: Limit, count: u64, left_ms: i64, over: bool) -> Result<(), RateLimitError> {
    if !over {
        return Ok(());
    }
    tracing::info!(rule = rule.name, count, "rate limited");
    let left = u64::try_from(left_ms).unwrap_or(0);
    Err(RateLimitError::Limited {
        retry_after: Duration::from_millis(left),
    })
}

/// Sign-in failures count per username (case-insensitive) and client IP.
fn signin_subject(username: &str, ip: IpAddr) -> String {
    let username = Username::parse(username)
        .map(|name| name.as_str().to_owned())
        .unwrap_or_else(|_| username.to_lowercase());
    format!("{username}\u{0}{ip}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signin_subjects_ignore_case_and_separate_ips() {
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        assert_eq!(signin_subject("Alice", ip), signin_subject("alice", ip));
        assert_ne!(signin_subject("alice", ip), signin_subject("alice", other));
        assert_ne!(signin_subject("alice", ip), signin_subject("bob", ip));
    }

    #[test]
    fn retry_after_comes_from_the_window_left() {
        let rule = Limit {
            name: "t",
            limit: 1,
            window: Duration::from_secs(60),
        };
        assert!(over_limit(rule, 1, 1000, false).is_ok());
        match over_limit(rule, 2, 1500, true) {
            Err(RateLimitError::Limited { retry_after }) => {
                assert_eq!(retry_after, Duration::from_millis(1500))
            }
            other => panic!("{other:?}"),
        }
    }
}
