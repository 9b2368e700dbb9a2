//! The scenarios: what each one loads, at what concurrency, against which baseline.

use clap::ValueEnum;
use serde::Serialize;

/// Connections calling `/v1/me` during `flood`, besides the sign-in ones.
pub const FLOOD_ME_CONNECTIONS: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// GET /v1/me with a bearer token.
    Me,
    /// POST /v1/auth/signin with seeded users' right passwords.
    Signin,
    /// POST /v1/auth/refresh, each connection rotating its own session.
    Refresh,
    /// POST /v1/auth/signup with new usernames.
    Signup,
    /// 90% me, 8% refresh, 2% sign-in.
    Mixed,
    /// Overload: sign-ins far past the hashing queue while a few connections
    /// call /v1/me (not in the default set).
    Flood,
    /// Baseline: a bare poem server's /me.
    Framework,
    /// Baseline: the same behind an HS256 bearer check.
    FrameworkBearer,
    /// Baseline: Argon2id verifications (m=19456 KiB, t=2, p=1), one thread per core.
    Hashing,
    /// Baseline: one refresh's Redis round-trip (EVALSHA).
    Storage,
}

impl Scenario {
    pub const TESSERA: [Scenario; 5] = [
        Scenario::Me,
        Scenario::Signin,
        Scenario::Refresh,
        Scenario::Signup,
        Scenario::Mixed,
    ];
    pub const BASELINES: [Scenario; 4] = [
        Scenario::Framework,
        Scenario::FrameworkBearer,
        Scenario::Hashing,
        Scenario::Storage,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Me => "me",
            Scenario::Signin => "signin",
            Scenario::Refresh => "refresh",
            Scenario::Signup => "signup",
            Scenario::Mixed => "mixed",
            Scenario::Flood => "flood",
            Scenario::Framework => "framework",
            Scenario::FrameworkBearer => "framework-bearer",
            Scenario::Hashing => "hashing",
            Scenario::Storage => "storage",
        }
    }

    pub fn is_baseline(self) -> bool {
        Scenario::BASELINES.contains(&self)
    }

    /// Concurrent connections (tasks; threads for `hashing`; the sign-in
    /// connections for `flood`, which adds [`FLOOD_ME_CONNECTIONS`]).
    ///
    /// Cheap requests get 64 so the server, not the client count, is the
    /// limit; hashing-bound and Redis-bound ones get 16, enough to keep every
    /// hashing slot busy without queueing into Tessera's 503 limit; `flood`
    /// gets 256 to overrun that limit (64 waiting by default) four times.
    pub fn connections(self, cores: usize) -> usize {
        match self {
            Scenario::Flood => 256,
            Scenario::Me | Scenario::Mixed | Scenario::Framework | Scenario::FrameworkBearer => 64,
            Scenario::Signin | Scenario::Refresh | Scenario::Signup | Scenario::Storage => 16,
            Scenario::Hashing => cores,
        }
    }

    /// The baseline that bounds this scenario: a floor for the framework
    /// (how fast the same answer could be), a ceiling for the work it must do.
    pub fn baseline(self) -> Option<Scenario> {
        match self {
            Scenario::Me | Scenario::Mixed => Some(Scenario::FrameworkBearer),
            Scenario::Signin | Scenario::Signup => Some(Scenario::Hashing),
            Scenario::Refresh => Some(Scenario::Storage),
            _ => None,
        }
    }
}

/// The Tessera scenarios in the order asked, then every baseline they (or the
/// user) need, in a fixed order; each once.
pub fn plan(requested: &[Scenario]) -> (Vec<Scenario>, Vec<Scenario>) {
    let requested = if requested.is_empty() {
        Scenario::TESSERA
            .iter()
            .chain(&Scenario::BASELINES)
            .copied()
            .collect()
    } else {
        requested.to_vec()
    };
    let mut tessera = Vec::new();
    for &scenario in &requested {
        if !scenario.is_baseline() && !tessera.contains(&scenario) {
            tessera.push(scenario);
        }
    }
    let baselines = Scenario::BASELINES
        .into_iter()
        .filter(|baseline| {
            requested.contains(baseline) || tessera.iter().any(|s| s.baseline() == Some(*baseline))
        })
        .collect();
    (tessera, baselines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signup_brings_its_baseline() {
        assert_eq!(
            plan(&[Scenario::Signup]),
            (vec![Scenario::Signup], vec![Scenario::Hashing])
        );
    }

    #[test]
    fn nothing_requested_means_everything() {
        let (tessera, baselines) = plan(&[]);
        assert_eq!(tessera.len(), 5);
        assert!(!tessera.contains(&Scenario::Flood));
        assert_eq!(baselines.len(), 4);
    }

    #[test]
    fn flood_runs_alone() {
        assert_eq!(plan(&[Scenario::Flood]), (vec![Scenario::Flood], vec![]));
    }
}
