//! Scenario files: a world, its workload and faults, the agent under test, the guard
//! configuration, the approver's behaviour, duration and seed. TOML, unknown fields
//! rejected, every problem reported with its field.

use airlock_core::GuardConfig;
use airlock_gate::BakeConfig;
use airlock_sim::{EventSpec, FaultSpec, RegionSpec, Secs, ServiceSpec, VersionSpec, WorldSpec};
use serde::{Deserialize, Serialize};

/// The virtual calendar's anchor: Monday 2026-01-05 00:00 UTC.
pub const EPOCH_MS: i64 = 1_767_571_200_000;

/// The agent under test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSpec {
    /// A built-in agent: `forecast-autoscaler`, `drift-fixer`, `cost-cutter`, `config-pusher`.
    pub name: String,
    /// The agent's parameters (see docs/agents.md).
    #[serde(default)]
    pub params: toml::Table,
}

/// How holds are answered during a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApproverMode {
    /// Every hold is denied after `delay`.
    #[default]
    Deny,
    /// Every hold is approved after `delay`.
    Approve,
    /// Nobody answers; holds expire as denies after the gate's hold timeout.
    Never,
}

/// The on-call human, as far as the run is concerned.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApproverSpec {
    #[serde(default)]
    pub mode: ApproverMode,
    /// How long the approver takes to answer.
    #[serde(default = "default_delay")]
    pub delay: Secs,
}

fn default_delay() -> Secs {
    Secs(300)
}

/// The guard configuration of guarded runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuardSpec {
    /// Cedar policy text to use instead of the default pack.
    #[serde(default)]
    pub policy: Option<String>,
    #[serde(default)]
    pub budgets: GuardConfig,
    #[serde(default)]
    pub bake: BakeConfig,
    /// How long a hold waits before it expires as a deny.
    #[serde(default = "default_hold_timeout")]
    pub hold_timeout: Secs,
}

fn default_hold_timeout() -> Secs {
    Secs(3600)
}

impl Default for GuardSpec {
    fn default() -> Self {
        Self {
            policy: None,
            budgets: GuardConfig::default(),
            bake: BakeConfig::default(),
            hold_timeout: default_hold_timeout(),
        }
    }
}

/// Drift present at the start: a service running another version than declared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DriftSpec {
    pub service: String,
    pub version: String,
}

/// A proving-ground scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default = "default_seed")]
    pub seed: u64,
    #[serde(default = "default_tick")]
    pub tick: Secs,
    /// Time the agent watches (learning history) before the scored run starts.
    #[serde(default)]
    pub warmup: Secs,
    /// Length of the scored run.
    pub duration: Secs,
    /// UTC hour of day at which the scored run starts.
    #[serde(default)]
    pub start_hour: u32,
    /// The availability objective the scorecard counts violation minutes against.
    #[serde(default = "default_slo")]
    pub slo: f64,
    pub agent: AgentSpec,
    #[serde(default)]
    pub guard: GuardSpec,
    #[serde(default)]
    pub approver: ApproverSpec,
    #[serde(default, rename = "region")]
    pub regions: Vec<RegionSpec>,
    #[serde(default, rename = "service")]
    pub services: Vec<ServiceSpec>,
    #[serde(default, rename = "version")]
    pub versions: Vec<VersionSpec>,
    /// Workload events; `at` counts from the start of the scored run.
    #[serde(default, rename = "event")]
    pub events: Vec<EventSpec>,
    /// Faults; `at` counts from the start of the scored run.
    #[serde(default, rename = "fault")]
    pub faults: Vec<FaultSpec>,
    #[serde(default)]
    pub drift: Vec<DriftSpec>,
}

fn default_seed() -> u64 {
    1
}
fn default_tick() -> Secs {
    Secs(10)
}
fn default_slo() -> f64 {
    0.999
}

/// Why a scenario cannot run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScenarioError {
    #[error("{0}")]
    Parse(String),
    #[error("invalid scenario `{name}`:\n  - {}", .problems.join("\n  - "))]
    Invalid { name: String, problems: Vec<String> },
}

impl Scenario {
    /// Parses and validates a scenario; `origin` names the file in messages.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, ScenarioError> {
        let s: Scenario = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|sp| {
                text.as_bytes()[..sp.start.min(text.len())]
                    .iter()
                    .filter(|b| **b == b'\n')
                    .count()
                    + 1
            });
            let at = line.map_or(String::new(), |l| format!(":{l}"));
            ScenarioError::Parse(format!("{origin}{at}: {}", e.message()))
        })?;
        let problems = s.problems();
        if problems.is_empty() {
            Ok(s)
        } else {
            Err(ScenarioError::Invalid {
                name: origin.to_string(),
                problems,
            })
        }
    }

    /// Every problem, each naming its field.
    pub fn problems(&self) -> Vec<String> {
        let mut out = self.world().problems();
        if self.tick.0 == 0 || self.tick.0 > 3600 {
            out.push("tick: must be between 1s and 1h".into());
        }
        if self.duration.0 < self.tick.0 {
            out.push("duration: must be at least one tick".into());
        }
        if self.start_hour > 23 {
            out.push("start_hour: must be within 0..23".into());
        }
        if !(0.0..=1.0).contains(&self.slo) {
            out.push("slo: must be within 0..1".into());
        }
        for (i, d) in self.drift.iter().enumerate() {
            if !self.services.iter().any(|s| s.name == d.service) {
                out.push(format!(
                    "drift[{i}]: service: unknown service `{}`",
                    d.service
                ));
            }
        }
        if let Err(e) = crate::agents::build(&self.agent, self) {
            out.push(format!("agent: {e}"));
        }
        if let Some(p) = &self.guard.policy
            && let Err(e) = airlock_core::PolicyEngine::new(p, airlock_core::policy::SCHEMA)
        {
            out.push(format!("guard.policy: {e}"));
        }
        out
    }

    /// The simulator's world: events and faults shifted past the warm-up.
    pub fn world(&self) -> WorldSpec {
        let shift = |s: Secs| Secs(s.0 + self.warmup.0);
        WorldSpec {
            regions: self.regions.clone(),
            services: self.services.clone(),
            versions: self.versions.clone(),
            events: self
                .events
                .iter()
                .cloned()
                .map(|mut e| {
                    e.at = shift(e.at);
                    e
                })
                .collect(),
            faults: self
                .faults
                .iter()
                .cloned()
                .map(|mut f| {
                    f.at = shift(f.at);
                    f
                })
                .collect(),
        }
    }

    /// Virtual time at which the simulator starts (the start of the warm-up).
    pub fn sim_start(&self) -> i64 {
        EPOCH_MS + i64::from(self.start_hour) * 3_600_000 - self.warmup.ms()
    }

    /// Virtual time at which the scored run starts.
    pub fn run_start(&self) -> i64 {
        EPOCH_MS + i64::from(self.start_hour) * 3_600_000
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_flagship_parses_and_validates() {
        for (name, text) in crate::FLAGSHIPS {
            let s = Scenario::from_toml(text, name).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(s.name, name);
        }
    }

    #[test]
    fn a_missing_guard_table_keeps_the_hold_timeout() {
        let s = Scenario::from_toml(crate::FLAGSHIPS[1].1, "x").unwrap();
        assert_eq!(s.guard.hold_timeout, Secs(3600));
    }

    #[test]
    fn an_unknown_service_is_named_with_its_field() {
        let text = crate::FLAGSHIPS[2].1.replace(
            "depends_on = [\"feature-flags\"",
            "depends_on = [\"feature-flagz\"",
        );
        let err = Scenario::from_toml(&text, "x.toml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("depends_on: unknown service `feature-flagz`"),
            "{err}"
        );
    }

    #[test]
    fn a_typo_in_a_field_names_the_line() {
        let text = "name = \"x\"\nduration = \"1h\"\nseeed = 3\n[agent]\nname = \"cost-cutter\"\n";
        let err = Scenario::from_toml(text, "x.toml").unwrap_err().to_string();
        assert!(err.starts_with("x.toml:3: unknown field `seeed`"), "{err}");
    }
}
