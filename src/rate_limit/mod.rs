//! Rate limits in Redis, so they hold across instances: fixed windows, each
//! attempt taken from its budgets by one script before the work it limits,
//! so concurrent attempts cannot all slip under the limit.
//!
//! Counter keys carry an HMAC of their subject (username, client address,
//! session) under a server key, never the subject or a bare hash of it: a
//! Redis dump does not tell which names failed from which address, and keys
//! stay short whatever the input. Per-IP subjects are the client's network
//! bucket: an IPv4 address, or an IPv6 prefix (one host holds a whole /64).

use std::{
    net::{IpAddr, Ipv6Addr},
    time::Duration,
};

use hmac::{Hmac, Mac};
use redis::Script;
use sha2::Sha256;
use uuid::Uuid;

use crate::{
    domain::Username,
    keyspace::{Keyspace, RedisError},
    secrets::lower_hex,
    settings::{RateLimitSettings, Secret},
};

#[derive(Debug, thiserror::Error)]
pub enum RateLimitError {
    #[error("rate limited for {retry_after:?}")]
    Limited { retry_after: Duration },
    #[error("rate limit counter")]
    Redis(#[from] RedisError),
}

/// So many attempts per window, per subject.
#[derive(Debug, Clone, Copy)]
struct Limit {
    name: &'static str,
    limit: u64,
    window: Duration,
}

/// An attempt counted as a failure before its secret (a password, a second-
/// factor code) is checked: kept when it was wrong, refunded otherwise.
#[must_use = "a reserved attempt is kept as a failure unless refunded"]
pub struct Attempt {
    /// The counters it was taken from; none while limits are off.
    counters: Vec<String>,
}

#[derive(Clone)]
pub struct RateLimiter {
    keyspace: Keyspace,
    enabled: bool,
    subjects: Subjects,
    signin_failures: Limit,
    signin_failures_per_ip: Limit,
    signups: Limit,
    password_resets: Limit,
    mfa_failures: Limit,
    take: Script,
    refund: Script,
}

impl RateLimiter {
    /// `key` is the server secret the counter names are derived from.
    pub fn new(keyspace: Keyspace, settings: &RateLimitSettings, key: &Secret) -> Self {
        RateLimiter {
            keyspace,
            enabled: settings.enabled,
            subjects: Subjects::new(key, settings.ipv6_prefix),
            signin_failures: Limit {
                name: "signin",
                limit: settings.signin_failures.get(),
                window: settings.signin_window,
            },
            signin_failures_per_ip: Limit {
                name: "signin-ip",
                limit: settings.signin_failures_per_ip.get(),
                window: settings.signin_window,
            },
            signups: Limit {
                name: "signup",
                limit: settings.signups_per_ip.get(),
                window: settings.signup_window,
            },
            password_resets: Limit {
                name: "reset",
                limit: settings.password_resets_per_ip.get(),
                window: settings.password_reset_window,
            },
            mfa_failures: Limit {
                name: "mfa",
                limit: settings.mfa_failures.get(),
                window: settings.mfa_window,
            },
            take: Script::new(include_str!("take.lua")),
            refund: Script::new(include_str!("refund.lua")),
        }
    }

    /// Counts a sign-in as failed, against this username from this client
    /// and against the client across all usernames, before the password is
    /// checked; refused once either budget is spent. Other usernames from the
    /// same client are not affected by the first.
    pub async fn reserve_signin(
        &self,
        username: &str,
        ip: IpAddr,
    ) -> Result<Attempt, RateLimitError> {
        if !self.enabled {
            return Ok(Attempt {
                counters: Vec::new(),
            });
        }
        let client = self.subjects.client(ip);
        // Both counters carry the client's tag, so one script can take from
        // both in one Redis Cluster slot.
        let counters = vec![
            self.counter(self.signin_failures_per_ip, &client, None),
            self.counter(
                self.signin_failures,
                &client,
                Some(&self.subjects.username(username, &client)),
            ),
        ];
        self.take(
            &[self.signin_failures_per_ip, self.signin_failures],
            &counters,
        )
        .await?;
        Ok(Attempt { counters })
    }

    /// Counts a second-factor code check as failed against the user's one
    /// counter, whatever the client and endpoint, before the code is checked.
    pub async fn reserve_mfa(&self, user_id: Uuid) -> Result<Attempt, RateLimitError> {
        if !self.enabled {
            return Ok(Attempt {
                counters: Vec::new(),
            });
        }
        let user = self.subjects.mac("mfa-user", user_id.as_bytes());
        let counters = vec![self.counter(self.mfa_failures, &user, None)];
        self.take(&[self.mfa_failures], &counters).await?;
        Ok(Attempt { counters })
    }

    /// Gives a reserved attempt back: the password was right, or never checked.
    pub async fn refund(&self, attempt: Attempt) -> Result<(), RateLimitError> {
        if attempt.counters.is_empty() {
            return Ok(());
        }
        let mut invocation = self.refund.prepare_invoke();
        for counter in attempt.counters {
            invocation.key(counter);
        }
        self.keyspace
            .run(|mut conn| async move { invocation.invoke_async::<()>(&mut conn).await })
            .await?;
        Ok(())
    }

    pub async fn hit_signup(&self, ip: IpAddr) -> Result<(), RateLimitError> {
        let client = self.subjects.client(ip);
        let counter = self.counter(self.signups, &client, None);
        self.take(&[self.signups], &[counter]).await
    }

    /// Every attempt to spend a reset token counts, right or wrong.
    pub async fn hit_password_reset(&self, ip: IpAddr) -> Result<(), RateLimitError> {
        let client = self.subjects.client(ip);
        let counter = self.counter(self.password_resets, &client, None);
        self.take(&[self.password_resets], &[counter]).await
    }

    /// `true` the first time it is asked for `user_id` within `window`: a
    /// sign-in limit hit is recorded once per window and user, however many
    /// refused attempts follow.
    pub async fn first_limit_notice(
        &self,
        user_id: Uuid,
        window: Duration,
    ) -> Result<bool, RateLimitError> {
        let user = self.subjects.mac("limited-user", user_id.as_bytes());
        let key = self.keyspace.key(format_args!("rl:{{{user}}}:limited"));
        let millis = u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1);
        let set: Option<String> = self
            .keyspace
            .run(|mut conn| async move {
                redis::cmd("SET")
                    .arg(key)
                    .arg(1)
                    .arg("NX")
                    .arg("PX")
                    .arg(millis)
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        Ok(set.is_some())
    }

    /// `rl:{tag}:name` or `rl:{tag}:name:sub`; the braces are a Redis
    /// Cluster hash tag.
    fn counter(&self, rule: Limit, tag: &str, sub: Option<&str>) -> String {
        match sub {
            Some(sub) => self
                .keyspace
                .key(format_args!("rl:{{{tag}}}:{}:{sub}", rule.name)),
            None => self
                .keyspace
                .key(format_args!("rl:{{{tag}}}:{}", rule.name)),
        }
    }

    /// Takes one attempt from each counter (all share `rules[0]`'s window).
    async fn take(&self, rules: &[Limit], counters: &[String]) -> Result<(), RateLimitError> {
        if !self.enabled {
            return Ok(());
        }
        let mut invocation = self.take.prepare_invoke();
        invocation.arg(rules[0].window.as_millis() as u64);
        for (rule, counter) in rules.iter().zip(counters) {
            invocation.key(counter).arg(rule.limit);
        }
        let (full, left_ms): (usize, i64) = self
            .keyspace
            .run(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await?;
        match full.checked_sub(1).and_then(|i| rules.get(i)) {
            None => Ok(()),
            Some(rule) => {
                tracing::info!(rule = rule.name, "rate limited");
                Err(RateLimitError::Limited {
                    retry_after: Duration::from_millis(u64::try_from(left_ms).unwrap_or(0)),
                })
            }
        }
    }
}

/// Names counter subjects without revealing them.
#[derive(Clone)]
struct Subjects {
    key: Hmac<Sha256>,
    ipv6_prefix: u8,
}

impl Subjects {
    fn new(secret: &Secret, ipv6_prefix: u8) -> Self {
        // Derived, so the counters' key is not the refresh-token key itself.
        let mut derive = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes())
            .expect("HMAC takes keys of any length");
        derive.update(b"tessera rate-limit counter names v1");
        let key = Hmac::<Sha256>::new_from_slice(&derive.finalize().into_bytes())
            .expect("HMAC takes keys of any length");
        Subjects { key, ipv6_prefix }
    }

    /// 128 bits of HMAC in hex: short, fixed-length, unguessable.
    fn mac(&self, kind: &str, subject: &[u8]) -> String {
        let mut mac = self.key.clone();
        mac.update(kind.as_bytes());
        mac.update(&[0]);
        mac.update(subject);
        lower_hex(&mac.finalize().into_bytes()[..16])
    }

    /// The client's network bucket.
    fn client(&self, ip: IpAddr) -> String {
        self.mac("client", network_bucket(ip, self.ipv6_prefix).as_bytes())
    }

    /// A username (case-insensitive) as tried from one client.
    fn username(&self, username: &str, client: &str) -> String {
        let username = Username::parse(username)
            .map(|name| name.as_str().to_owned())
            .unwrap_or_else(|_| username.to_lowercase());
        self.mac("username", format!("{client}\u{0}{username}").as_bytes())
    }
}

/// An IPv4 address as itself (IPv4-mapped IPv6 included), an IPv6 address
/// as its prefix of `ipv6_prefix` bits.
fn network_bucket(ip: IpAddr, ipv6_prefix: u8) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let bits = u32::from(ipv6_prefix.min(128));
                let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
                let network = Ipv6Addr::from(u128::from(v6) & mask);
                format!("{network}/{bits}")
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subjects(secret: &str) -> Subjects {
        Subjects::new(&secret.parse().unwrap(), 64)
    }

    #[test]
    fn usernames_ignore_case_and_clients_are_apart() {
        let subjects = subjects("k");
        let client = subjects.client("192.0.2.1".parse().unwrap());
        let other = subjects.client("192.0.2.2".parse().unwrap());
        assert_eq!(
            subjects.username("Alice", &client),
            subjects.username("alice", &client)
        );
        assert_ne!(
            subjects.username("alice", &client),
            subjects.username("alice", &other)
        );
        assert_ne!(
            subjects.username("alice", &client),
            subjects.username("bob", &client)
        );
        // Even an unparseable name is a short, fixed-length subject.
        assert_eq!(subjects.username(&"x".repeat(10_000), &client).len(), 32);
    }

    #[test]
    fn counter_names_depend_on_the_server_key() {
        let ip = "192.0.2.1".parse().unwrap();
        assert_ne!(subjects("one").client(ip), subjects("two").client(ip));
        assert_eq!(subjects("one").client(ip), subjects("one").client(ip));
    }

    #[test]
    fn ipv6_clients_are_bucketed_by_prefix() {
        let bucket = |ip: &str, prefix| network_bucket(ip.parse().unwrap(), prefix);
        assert_eq!(bucket("2001:db8:1:2:aaaa::1", 64), "2001:db8:1:2::/64");
        assert_eq!(
            bucket("2001:db8:1:2:aaaa::1", 64),
            bucket("2001:db8:1:2:ffff:ffff:ffff:ffff", 64)
        );
        assert_ne!(bucket("2001:db8:1:2::1", 64), bucket("2001:db8:1:3::1", 64));
        assert_eq!(bucket("2001:db8:1:2::1", 48), "2001:db8:1::/48");
        assert_eq!(bucket("2001:db8::1", 128), "2001:db8::1/128");
        assert_eq!(bucket("2001:db8::1", 0), "::/0");
        assert_eq!(bucket("192.0.2.1", 64), "192.0.2.1");
        assert_eq!(bucket("::ffff:192.0.2.1", 64), "192.0.2.1");
    }
}
