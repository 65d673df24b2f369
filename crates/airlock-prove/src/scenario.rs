//! Scenario files: a world, its workload and faults, the agent under test, the guard
//! configuration, the approver's behaviour, duration and seed. TOML, unknown fields
//! rejected, every problem reported with its field.

use airlock_core::GuardConfig;
use airlock_gate::BakeConfig;
use airlock_sim::{EventSpec, FaultSpec, RegionSpec, Secs, ServiceSpec, VersionSpec, WorldSpec};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The name `[[human]]` changes go by in timelines; no agent may take it.
pub const HUMAN: &str = "human";
const HUMAN_INTENT: &str = "a change made by hand, out of band";

/// The virtual calendar's anchor: Monday 2026-01-05 00:00 UTC.
pub const EPOCH_MS: i64 = 1_767_571_200_000;

/// The longest stretch of virtual time a scenario may name, about ten years: anything
/// longer is a typo, and sums of such times (a fault's start plus its length, a start
/// shifted past the warm-up) must not overflow.
pub const MAX_TIME: Secs = Secs(3660 * 86_400);

/// An agent: a built-in one with parameters, or an external program (`cmd`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentSpec {
    /// A built-in agent (`forecast-autoscaler`, `drift-fixer`, `cost-cutter`,
    /// `config-pusher`, `rule-scaler`, `runaway`, `noop`), or, with `cmd`, a label.
    pub name: String,
    /// The built-in agent's parameters (see docs/scenario-format.md).
    #[serde(default)]
    #[schemars(with = "serde_json::Map<String, serde_json::Value>")]
    pub params: toml::Table,
    /// The principal the agent acts as (default: its name). Agents in one run need
    /// distinct ids.
    #[serde(default)]
    pub id: Option<String>,
    /// An external agent: a command run with `sh -c`, given the gate as an MCP server
    /// on its stdin/stdout.
    #[serde(default)]
    pub cmd: Option<String>,
    /// Virtual time between an external agent's turns.
    #[serde(default = "default_turn")]
    pub turn: Secs,
    /// Where `cmd` runs, when not in the scenario file's directory
    /// ([`Scenario::origin_dir`]): `airlock prove --agent-cmd` runs its command where it was
    /// typed. Not part of the file.
    #[serde(skip)]
    pub dir: Option<PathBuf>,
}

fn default_turn() -> Secs {
    Secs(60)
}

impl AgentSpec {
    /// A built-in agent without parameters.
    pub fn built_in(name: &str) -> Self {
        Self {
            name: name.to_string(),
            params: toml::Table::new(),
            id: None,
            cmd: None,
            turn: default_turn(),
            dir: None,
        }
    }

    /// An external agent running `cmd`.
    pub fn external(name: &str, cmd: &str) -> Self {
        Self {
            cmd: Some(cmd.to_string()),
            ..Self::built_in(name)
        }
    }

    /// The principal it acts as.
    pub fn principal(&self) -> &str {
        self.id.as_deref().unwrap_or(&self.name)
    }
}

/// How holds are answered during a run.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
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
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GuardSpec {
    /// Cedar policy text to use instead of the default pack.
    #[serde(default)]
    pub policy: Option<String>,
    /// Cedar policy text added to the default pack (or to `policy` when given), instead of
    /// replacing it.
    #[serde(default)]
    pub overlay: Option<String>,
    #[serde(default)]
    pub budgets: GuardConfig,
    #[serde(default)]
    pub bake: BakeConfig,
    /// How long a hold waits before it expires as a deny.
    #[serde(default = "default_hold_timeout")]
    pub hold_timeout: Secs,
    /// How agents' behaviour is scored and when one is quarantined.
    #[serde(default)]
    pub anomaly: airlock_gate::AnomalyConfig,
}

fn default_hold_timeout() -> Secs {
    Secs(3600)
}

impl GuardSpec {
    /// The Cedar text of guarded runs: `policy` (or the default pack), then `overlay`.
    pub fn policy_text(&self) -> String {
        let base = self
            .policy
            .as_deref()
            .unwrap_or(airlock_core::policy::DEFAULT_POLICIES);
        match &self.overlay {
            Some(extra) => format!("{base}\n{extra}\n"),
            None => base.to_string(),
        }
    }
}

impl Default for GuardSpec {
    fn default() -> Self {
        Self {
            policy: None,
            overlay: None,
            budgets: GuardConfig::default(),
            bake: BakeConfig::default(),
            hold_timeout: default_hold_timeout(),
            anomaly: airlock_gate::AnomalyConfig::default(),
        }
    }
}

/// Drift present at the start: a service running another version than declared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DriftSpec {
    pub service: String,
    pub version: String,
}

/// A proving-ground scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
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
    /// Other agents acting in the same world at the same time, each as its own
    /// principal (kept in reference runs, removed in do-nothing runs).
    #[serde(default, rename = "peer")]
    pub peers: Vec<AgentSpec>,
    /// The reference agent: what a well-run team would do here. Its guarded run must pass
    /// the assertions (default: `noop`).
    #[serde(default)]
    pub reference: Option<AgentSpec>,
    /// A no-fault control: every action is legitimate, so every block is a false block.
    #[serde(default)]
    pub control: bool,
    /// Checks on each run's scorecard, e.g. `availability >= 0.999`,
    /// `destructive_applied == 0`, `time_to_mitigate_s <= 120`.
    #[serde(default, rename = "assert")]
    pub assertions: Vec<String>,
    /// Checks on the do-nothing run, so a scenario whose faults do not do what it says is
    /// caught, e.g. `incidents >= 1` (or `incidents == 0` when only the agent can hurt).
    #[serde(default)]
    pub do_nothing_assert: Vec<String>,
    /// Checks on the guarded runs of the agent under test only, on top of `assert`: what
    /// the guard must do with this agent, e.g. `agent_quarantined == true`.
    #[serde(default)]
    pub guarded_assert: Vec<String>,
    /// When the agent under test starts misbehaving (from the start of the scored run):
    /// detection delay (`actions_to_quarantine`, `seconds_to_quarantine`) counts from here.
    #[serde(default)]
    pub misbehaves_at: Option<Secs>,
    /// Seeds `airlock prove` runs by default (default: `[seed]`).
    #[serde(default)]
    pub seeds: Vec<u64>,
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
    /// Changes an operator makes by hand, out of band (on the sandbox directly, not
    /// through the gate), in every run; `at` counts from the start of the scored run.
    #[serde(default, rename = "human")]
    pub humans: Vec<crate::scripted::StepSpec>,
    /// The directory of the file the scenario was read from, set by whoever read it: an
    /// external agent's `cmd` runs there. Not part of the file.
    #[serde(skip)]
    pub origin_dir: Option<PathBuf>,
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

/// The JSON Schema of scenario files (TOML read as JSON), as kept in
/// `schema/scenario.schema.json`.
pub fn json_schema() -> String {
    let mut schema = schemars::schema_for!(Scenario);
    schema.insert(
        "$id".into(),
        "https://airlock.dev/schema/scenario.schema.json".into(),
    );
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
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
        let mut out = self.time_problems();
        out.extend(self.world().problems());
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
        if let Err(e) = crate::agents::check(&self.agent, self) {
            out.push(format!("agent: {e}"));
        }
        for (i, p) in self.peers.iter().enumerate() {
            if let Err(e) = crate::agents::check(p, self) {
                out.push(format!("peer[{i}]: {e}"));
            }
        }
        if let Some(r) = &self.reference
            && let Err(e) = crate::agents::check(r, self)
        {
            out.push(format!("reference: {e}"));
        }
        let mut ids = std::collections::BTreeSet::new();
        for (i, a) in std::iter::once(&self.agent).chain(&self.peers).enumerate() {
            if !ids.insert(a.principal()) {
                out.push(format!(
                    "peer[{}]: id: `{}` is taken by another agent; give each a distinct `id`",
                    i.saturating_sub(1),
                    a.principal()
                ));
            }
        }
        let reference = self.reference_agent();
        if let Some(i) = self
            .peers
            .iter()
            .position(|p| p.principal() == reference.principal())
        {
            out.push(format!(
                "reference: id: `{}` is taken by peer[{i}]; give the reference a distinct `id`",
                reference.principal()
            ));
        }
        for (field, a) in std::iter::once(("agent".to_string(), &self.agent))
            .chain(std::iter::once(("reference".to_string(), &reference)))
            .chain(
                self.peers
                    .iter()
                    .enumerate()
                    .map(|(i, p)| (format!("peer[{i}]"), p)),
            )
        {
            if a.principal() == HUMAN {
                out.push(format!(
                    "{field}: id: `{HUMAN}` names `[[human]]` changes; give the agent another `id`"
                ));
            }
        }
        let agent_ids: Vec<&str> = self.agent_ids();
        for (field, list) in self.assertion_lists() {
            for (i, a) in list.iter().enumerate() {
                match crate::assertions::Assertion::parse(a) {
                    Err(e) => out.push(format!("{field}[{i}]: {e}")),
                    Ok(p) => {
                        if let Some(id) = p.agent().filter(|id| !agent_ids.contains(id)) {
                            out.push(format!(
                                "{field}[{i}]: `{a}`: unknown agent `{id}`; agents are {}",
                                agent_ids.join(", ")
                            ));
                        }
                    }
                }
            }
        }
        for (i, h) in self.humans.iter().enumerate() {
            if let Err(problems) = h.check(self, HUMAN_INTENT) {
                out.extend(problems.into_iter().map(|p| format!("human[{i}]{p}")));
            }
        }
        out.extend(
            self.guard
                .anomaly
                .problems()
                .into_iter()
                .map(|p| format!("guard.{p}")),
        );
        if let Some(p) = &self.guard.policy
            && let Err(e) = airlock_core::PolicyEngine::new(p, airlock_core::policy::SCHEMA)
        {
            out.push(format!("guard.policy: {e}"));
        }
        // The overlay is checked on top of what it extends, so a duplicate `@id` or a
        // clash with the pack is reported here, not when a run starts.
        if self.guard.overlay.is_some()
            && (self.guard.policy.is_none() || !out.iter().any(|p| p.starts_with("guard.policy")))
            && let Err(e) = airlock_core::PolicyEngine::new(
                &self.guard.policy_text(),
                airlock_core::policy::SCHEMA,
            )
        {
            out.push(format!("guard.overlay: {e}"));
        }
        out
    }

    /// Every time that is past [`MAX_TIME`], by its field.
    fn time_problems(&self) -> Vec<String> {
        let mut times: Vec<(String, Secs)> = vec![
            ("warmup".into(), self.warmup),
            ("duration".into(), self.duration),
            ("approver.delay".into(), self.approver.delay),
            ("guard.hold_timeout".into(), self.guard.hold_timeout),
        ];
        times.extend(self.misbehaves_at.map(|t| ("misbehaves_at".into(), t)));
        for (field, a) in std::iter::once(("agent".to_string(), &self.agent))
            .chain(self.reference.iter().map(|r| ("reference".to_string(), r)))
            .chain(
                self.peers
                    .iter()
                    .enumerate()
                    .map(|(i, p)| (format!("peer[{i}]"), p)),
            )
        {
            times.push((format!("{field}.turn"), a.turn));
        }
        for (i, e) in self.events.iter().enumerate() {
            times.push((format!("event[{i}].at"), e.at));
            times.push((format!("event[{i}].ramp"), e.ramp));
            times.extend(e.duration.map(|d| (format!("event[{i}].duration"), d)));
        }
        for (i, f) in self.faults.iter().enumerate() {
            times.push((format!("fault[{i}].at"), f.at));
            times.push((format!("fault[{i}].duration"), f.duration));
        }
        for (i, v) in self.versions.iter().enumerate() {
            times.push((format!("version[{i}].onset"), v.onset));
        }
        for (i, s) in self.services.iter().enumerate() {
            times.push((format!("service[{i}].cold_start"), s.cold_start));
        }
        for (i, h) in self.humans.iter().enumerate() {
            times.push((format!("human[{i}].at"), h.at));
        }
        times
            .into_iter()
            .filter(|(_, t)| t.0 > MAX_TIME.0)
            .map(|(field, t)| {
                format!(
                    "{field}: `{t}` is longer than a scenario may run; use at most {}d",
                    MAX_TIME.0 / 86_400
                )
            })
            .collect()
    }

    /// The reference agent (`noop` unless the scenario names one).
    pub fn reference_agent(&self) -> AgentSpec {
        self.reference
            .clone()
            .unwrap_or_else(|| AgentSpec::built_in("noop"))
    }

    /// Every principal that acts in some run of the scenario: the agent under test, the
    /// reference agent and the peers.
    pub fn agent_ids(&self) -> Vec<&str> {
        let mut ids = vec![self.agent.principal()];
        ids.push(match &self.reference {
            Some(r) => r.principal(),
            None => "noop",
        });
        ids.extend(self.peers.iter().map(AgentSpec::principal));
        ids
    }

    /// The scripted human changes in time order (those due at the same time in the order
    /// written); the problems of the first bad one otherwise.
    pub fn human_steps(&self) -> Result<Vec<crate::scripted::Step>, String> {
        let mut steps = Vec::new();
        for (i, h) in self.humans.iter().enumerate() {
            steps.push(
                h.check(self, HUMAN_INTENT)
                    .map_err(|p| format!("human[{i}]{}", p.join("; ")))?,
            );
        }
        steps.sort_by_key(|s| s.at);
        Ok(steps)
    }

    /// The simulator's world: events and faults shifted past the warm-up.
    pub fn world(&self) -> WorldSpec {
        // Saturating: times past `MAX_TIME` are refused by `problems`, which builds this.
        let shift = |s: Secs| Secs(s.0.saturating_add(self.warmup.0));
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

    /// Every list of assertions, by its field.
    fn assertion_lists(&self) -> [(&'static str, &[String]); 3] {
        [
            ("assert", &self.assertions),
            ("do_nothing_assert", &self.do_nothing_assert),
            ("guarded_assert", &self.guarded_assert),
        ]
    }

    /// The assertions a run of this cast and mode is checked against, by field.
    pub fn assertions_for(
        &self,
        cast: crate::runner::Cast,
        mode: crate::runner::Mode,
    ) -> Vec<(&'static str, &[String])> {
        use crate::runner::{Cast, Mode};
        match (cast, mode) {
            (Cast::DoNothing, _) => vec![("do_nothing_assert", &self.do_nothing_assert)],
            (Cast::Agent, Mode::Guarded) => vec![
                ("assert", &self.assertions),
                ("guarded_assert", &self.guarded_assert),
            ],
            _ => vec![("assert", &self.assertions)],
        }
    }

    /// Checks a run of this cast and mode against its assertions; an entry that does not
    /// parse is an error naming it (`guarded_assert[0]: …`).
    pub fn check_run(
        &self,
        cast: crate::runner::Cast,
        mode: crate::runner::Mode,
        card: &crate::score::Scorecard,
        agents: &std::collections::BTreeMap<String, crate::score::AgentCard>,
    ) -> Result<Vec<crate::assertions::Check>, String> {
        let mut out = Vec::new();
        for (field, list) in self.assertions_for(cast, mode) {
            out.extend(crate::assertions::check_all(field, list, card, agents)?);
        }
        Ok(out)
    }

    /// Every assertion entry that does not parse, each naming its entry. Loading refuses
    /// them; a scenario changed after loading is checked again before it runs.
    pub fn unreadable_assertions(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (field, list) in self.assertion_lists() {
            for (i, a) in list.iter().enumerate() {
                if let Err(e) = crate::assertions::Assertion::parse(a) {
                    out.push(format!("{field}[{i}]: {e}"));
                }
            }
        }
        out
    }

    /// The seeds to run by default.
    pub fn default_seeds(&self) -> Vec<u64> {
        if self.seeds.is_empty() {
            vec![self.seed]
        } else {
            self.seeds.clone()
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

    /// Found by `tests/fuzz.rs` (`edited_scenarios_validate_or_are_refused`): a fault at
    /// `18446744073709551615s` validated, and the simulator's first tick overflowed adding
    /// its duration.
    #[test]
    fn r_fuzz_times_past_any_calendar_are_refused() {
        let base = "name = \"x\"\nduration = \"1h\"\n[agent]\nname = \"noop\"\n\
                    [[region]]\nname = \"r\"\nazs = [\"r-a\"]\n\
                    [[service]]\nname = \"s\"\nenv = \"prod\"\nregion = \"r\"\nreplicas = 2\n\
                    capacity_rps = 10\ndemand = { base_rps = 5 }\n";
        let text = format!(
            "{base}[[fault]]\nkind = \"metric_blackout\"\ntarget = \"s\"\n\
             at = \"18446744073709551615s\"\nduration = \"3h\"\n"
        );
        let err = Scenario::from_toml(&text, "x.toml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("fault[0].at: `18446744073709551615s` is longer"),
            "{err}"
        );
        let text = format!("warmup = \"18446744073709551615s\"\n{base}");
        let err = Scenario::from_toml(&text, "x.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("warmup: "), "{err}");
        assert!(Scenario::from_toml(base, "x.toml").is_ok());
    }

    #[test]
    fn a_typo_in_a_field_names_the_line() {
        let text = "name = \"x\"\nduration = \"1h\"\nseeed = 3\n[agent]\nname = \"cost-cutter\"\n";
        let err = Scenario::from_toml(text, "x.toml").unwrap_err().to_string();
        assert!(err.starts_with("x.toml:3: unknown field `seeed`"), "{err}");
    }
}
