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
    /// POST /oauth/introspect of seeded sessions' access tokens.
    IntrospectAccess,
    /// POST /oauth/introspect of seeded sessions' refresh tokens.
    IntrospectRefresh,
    /// Overload: sign-ins far past the hashing queue while a few connections
    /// call /v1/me (not in the default set).
    Flood,
    /// Baseline: a bare poem server's /me.
    Framework,
    /// Baseline: the same behind an HS256 bearer check.
    FrameworkBearer,
    /// Baseline: a bare poem server's POST /refresh, a JSON body in and out
    /// shaped like Tessera's refresh.
    FrameworkPost,
    /// Baseline: Argon2id verifications (m=19456 KiB, t=2, p=1), one thread per core.
    Hashing,
    /// Baseline: one refresh's Redis round-trip (EVALSHA).
    Storage,
}

impl Scenario {
    pub const TESSERA: [Scenario; 7] = [
        Scenario::Me,
        Scenario::Signin,
        Scenario::Refresh,
        Scenario::Signup,
        Scenario::Mixed,
        Scenario::IntrospectAccess,
        Scenario::IntrospectRefresh,
    ];
    pub const BASELINES: [Scenario; 5] = [
        Scenario::Framework,
        Scenario::FrameworkBearer,
        Scenario::FrameworkPost,
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
            Scenario::IntrospectAccess => "introspect-access",
            Scenario::IntrospectRefresh => "introspect-refresh",
            Scenario::Flood => "flood",
            Scenario::Framework => "framework",
            Scenario::FrameworkBearer => "framework-bearer",
            Scenario::FrameworkPost => "framework-post",
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
    /// hashing slot busy without queueing into Tessera's 503 limit (and
    /// `framework-post` as many as the `refresh` it is read against);
    /// `flood` gets 256 to overrun that limit (64 waiting by default) four times.
    pub fn connections(self, cores: usize) -> usize {
        match self {
            Scenario::Flood => 256,
            Scenario::Me
            | Scenario::Mixed
            | Scenario::IntrospectAccess
            | Scenario::Framework
            | Scenario::FrameworkBearer => 64,
            Scenario::Signin
            | Scenario::Refresh
            | Scenario::Signup
            | Scenario::IntrospectRefresh
            | Scenario::FrameworkPost
            | Scenario::Storage => 16,
            Scenario::Hashing => cores,
        }
    }

    /// The baselines that bound this scenario, in the order they run after
    /// it: a floor for the framework (how fast the same answer could be), a
    /// ceiling for the work it must do. `refresh` has both: its Redis call
    /// and the bare framework's JSON exchange of the same size.
    pub fn baselines(self) -> &'static [Scenario] {
        match self {
            Scenario::Me | Scenario::Mixed | Scenario::IntrospectAccess => {
                &[Scenario::FrameworkBearer]
            }
            Scenario::Signin | Scenario::Signup => &[Scenario::Hashing],
            Scenario::Refresh => &[Scenario::Storage, Scenario::FrameworkPost],
            Scenario::IntrospectRefresh => &[Scenario::Storage],
            _ => &[],
        }
    }
}

/// One measurement of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    pub scenario: Scenario,
    /// For a baseline measured right after a Tessera scenario: that scenario,
    /// whose ratio uses this measurement (`framework` only follows `me`).
    pub paired_with: Option<Scenario>,
}

impl Step {
    pub fn alone(scenario: Scenario) -> Self {
        Step {
            scenario,
            paired_with: None,
        }
    }

    pub fn after(baseline: Scenario, scenario: Scenario) -> Self {
        Step {
            scenario: baseline,
            paired_with: Some(scenario),
        }
    }

    /// `hashing (after signin)`, or the bare name.
    pub fn label(self) -> String {
        match self.paired_with {
            Some(scenario) => format!("{} (after {})", self.scenario.name(), scenario.name()),
            None => self.scenario.name().to_string(),
        }
    }
}

/// What a run measures, in order.
#[derive(Debug, PartialEq, Eq)]
pub struct Plan {
    /// Run with the Tessera server up: each Tessera scenario, then at once
    /// the baselines its ratios use (so both see the machine in the same
    /// state), measured again after every scenario it serves.
    pub paired: Vec<Step>,
    /// Baselines asked for that no Tessera scenario in the run pairs with;
    /// run on their own at the end, after the server has stopped.
    pub standalone: Vec<Scenario>,
}

impl Plan {
    /// The Tessera scenarios, in the order they run.
    pub fn tessera(&self) -> Vec<Scenario> {
        self.paired
            .iter()
            .map(|step| step.scenario)
            .filter(|scenario| !scenario.is_baseline())
            .collect()
    }
}

/// The Tessera scenarios in the order asked (each once), each followed by
/// its baselines; `framework`, if asked for, right after `framework-bearer`
/// when that follows `me`. Then, in a fixed order, the baselines asked for
/// that none of them brought.
pub fn plan(requested: &[Scenario]) -> Plan {
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
    let mut paired = Vec::new();
    for scenario in tessera {
        paired.push(Step::alone(scenario));
        for &baseline in scenario.baselines() {
            paired.push(Step::after(baseline, scenario));
        }
        // No ratio uses `framework`, but it is read against `framework-bearer`.
        if scenario == Scenario::Me && requested.contains(&Scenario::Framework) {
            paired.push(Step::after(Scenario::Framework, scenario));
        }
    }
    let standalone = Scenario::BASELINES
        .into_iter()
        .filter(|baseline| {
            requested.contains(baseline) && !paired.iter().any(|step| step.scenario == *baseline)
        })
        .collect();
    Plan { paired, standalone }
}

#[cfg(test)]
mod tests {
    use super::Scenario::*;
    use super::*;

    fn alone(scenario: Scenario) -> Step {
        Step::alone(scenario)
    }

    fn after(baseline: Scenario, scenario: Scenario) -> Step {
        Step::after(baseline, scenario)
    }

    #[test]
    fn signup_brings_its_baseline() {
        assert_eq!(
            plan(&[Signup]),
            Plan {
                paired: vec![alone(Signup), after(Hashing, Signup)],
                standalone: vec![],
            }
        );
    }

    #[test]
    fn nothing_requested_means_everything_but_flood_each_baseline_right_after_its_scenario() {
        assert_eq!(
            plan(&[]),
            Plan {
                paired: vec![
                    alone(Me),
                    after(FrameworkBearer, Me),
                    after(Framework, Me),
                    alone(Signin),
                    after(Hashing, Signin),
                    alone(Refresh),
                    after(Storage, Refresh),
                    after(FrameworkPost, Refresh),
                    alone(Signup),
                    after(Hashing, Signup),
                    alone(Mixed),
                    after(FrameworkBearer, Mixed),
                    alone(IntrospectAccess),
                    after(FrameworkBearer, IntrospectAccess),
                    alone(IntrospectRefresh),
                    after(Storage, IntrospectRefresh),
                ],
                standalone: vec![],
            }
        );
    }

    #[test]
    fn a_shared_baseline_is_measured_after_each_scenario_it_serves() {
        assert_eq!(
            plan(&[Mixed, Signup, Me, Signin]).paired,
            vec![
                alone(Mixed),
                after(FrameworkBearer, Mixed),
                alone(Signup),
                after(Hashing, Signup),
                alone(Me),
                after(FrameworkBearer, Me),
                alone(Signin),
                after(Hashing, Signin),
            ]
        );
    }

    #[test]
    fn scenarios_asked_twice_run_once() {
        assert_eq!(
            plan(&[Signin, Signin]).paired,
            vec![alone(Signin), after(Hashing, Signin)]
        );
    }

    #[test]
    fn framework_follows_framework_bearer_after_me_only_when_asked_for() {
        assert_eq!(
            plan(&[Me]).paired,
            vec![alone(Me), after(FrameworkBearer, Me)]
        );
        assert_eq!(
            plan(&[Framework, Mixed, Me]),
            Plan {
                paired: vec![
                    alone(Mixed),
                    after(FrameworkBearer, Mixed),
                    alone(Me),
                    after(FrameworkBearer, Me),
                    after(Framework, Me),
                ],
                standalone: vec![],
            }
        );
    }

    #[test]
    fn baselines_asked_for_that_pair_with_nothing_run_alone_at_the_end() {
        assert_eq!(
            plan(&[Storage, Signin, Hashing, Framework, Mixed]),
            Plan {
                paired: vec![
                    alone(Signin),
                    after(Hashing, Signin),
                    alone(Mixed),
                    after(FrameworkBearer, Mixed),
                ],
                standalone: vec![Framework, Storage],
            }
        );
    }

    #[test]
    fn baselines_alone_need_no_server() {
        let plan = plan(&[Hashing, FrameworkBearer]);
        assert!(plan.paired.is_empty());
        assert!(plan.tessera().is_empty());
        assert_eq!(plan.standalone, vec![FrameworkBearer, Hashing]);
    }

    #[test]
    fn flood_has_no_baseline() {
        assert_eq!(
            plan(&[Flood]),
            Plan {
                paired: vec![alone(Flood)],
                standalone: vec![],
            }
        );
        let plan = plan(&[Flood, Refresh]);
        assert_eq!(
            plan.paired,
            vec![
                alone(Flood),
                alone(Refresh),
                after(Storage, Refresh),
                after(FrameworkPost, Refresh),
            ]
        );
        assert_eq!(plan.tessera(), vec![Flood, Refresh]);
    }

    #[test]
    fn refresh_is_followed_by_both_its_baselines() {
        assert_eq!(
            plan(&[FrameworkPost, Refresh, Storage]),
            Plan {
                paired: vec![
                    alone(Refresh),
                    after(Storage, Refresh),
                    after(FrameworkPost, Refresh),
                ],
                standalone: vec![],
            }
        );
        assert_eq!(plan(&[FrameworkPost]).standalone, vec![FrameworkPost]);
        assert_eq!(FrameworkPost.connections(2), Refresh.connections(2));
    }

    #[test]
    fn introspection_pairs_like_me_and_refresh() {
        assert_eq!(
            plan(&[IntrospectRefresh, IntrospectAccess]).paired,
            vec![
                alone(IntrospectRefresh),
                after(Storage, IntrospectRefresh),
                alone(IntrospectAccess),
                after(FrameworkBearer, IntrospectAccess),
            ]
        );
        assert_eq!(IntrospectAccess.connections(2), Me.connections(2));
        assert_eq!(IntrospectRefresh.connections(2), Refresh.connections(2));
    }

    #[test]
    fn names_are_the_command_line_values() {
        for scenario in Scenario::value_variants() {
            let value = scenario.to_possible_value().expect("no variant is skipped");
            assert_eq!(value.get_name(), scenario.name());
        }
    }

    #[test]
    fn labels_name_the_pairing() {
        assert_eq!(after(Hashing, Signin).label(), "hashing (after signin)");
        assert_eq!(alone(Storage).label(), "storage");
    }
}
