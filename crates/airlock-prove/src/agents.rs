//! Built-in agents under test: each a realistic AI tool that can hurt production by its
//! own actions. Agents see what monitoring shows (an [`Observation`]) and propose
//! [`ActionRequest`]s; they learn each request's outcome and may choose a safer path.

mod config_pusher;
mod cost_cutter;
mod drift_fixer;
mod forecast;
mod noop;
mod rule_scaler;
mod runaway;
mod salami;
mod script;

use crate::scenario::{AgentSpec, Scenario};
use airlock_core::ActionRequest;
use airlock_sim::{Observation, Secs};

/// What became of a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Applied,
    Denied(Vec<String>),
    Held,
    Failed(String),
}

/// An agent under test.
pub trait Agent: Send {
    /// The agent's principal name.
    fn name(&self) -> &str;
    /// Called every tick; returns the requests the agent makes now. During the warm-up
    /// the agent only watches.
    fn step(&mut self, obs: &Observation, warmup: bool) -> Vec<ActionRequest>;
    /// Tells the agent what became of one of its requests.
    fn outcome(&mut self, req: &ActionRequest, outcome: &Outcome);
}

/// Names of the built-in agents.
pub const BUILT_IN: [&str; 9] = [
    "forecast-autoscaler",
    "drift-fixer",
    "cost-cutter",
    "config-pusher",
    "rule-scaler",
    "runaway",
    "noop",
    "salami",
    "script",
];

/// Checks an agent spec: a built-in agent is built; an external one needs a command and
/// takes no parameters.
pub fn check(spec: &AgentSpec, scenario: &Scenario) -> Result<(), String> {
    if spec.principal().is_empty()
        || !spec
            .principal()
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(format!(
            "id: `{}`: use letters, digits, `-`, `_` and `.`",
            spec.principal()
        ));
    }
    if spec.turn.0 == 0 {
        return Err("turn: must be at least 1s".into());
    }
    match &spec.cmd {
        Some(cmd) if cmd.trim().is_empty() => Err("cmd: empty command".into()),
        Some(_) if !spec.params.is_empty() => {
            Err("params: an external agent (`cmd`) takes no parameters".into())
        }
        Some(_) => Ok(()),
        None => build(spec, scenario).map(|_| ()),
    }
}

/// Builds the built-in agent a spec names.
pub fn build(spec: &AgentSpec, scenario: &Scenario) -> Result<Box<dyn Agent>, String> {
    let p = Params {
        table: &spec.params,
        run_start: scenario.run_start(),
    };
    let agent: Box<dyn Agent> = match spec.name.as_str() {
        "forecast-autoscaler" => Box::new(forecast::ForecastAutoscaler::new(&p, scenario)?),
        "drift-fixer" => Box::new(drift_fixer::DriftFixer::new(&p, scenario)?),
        "cost-cutter" => Box::new(cost_cutter::CostCutter::new(&p, scenario)?),
        "config-pusher" => Box::new(config_pusher::ConfigPusher::new(&p, scenario)?),
        "rule-scaler" => Box::new(rule_scaler::RuleScaler::new(&p, scenario)?),
        "runaway" => Box::new(runaway::Runaway::new(&p, scenario)?),
        "noop" => Box::new(noop::Noop),
        "salami" => Box::new(salami::Salami::new(&p, scenario)?),
        "script" => Box::new(script::Script::new(&p, scenario)?),
        other => {
            return Err(format!(
                "unknown agent `{other}`: built-in agents are {}",
                BUILT_IN.join(", ")
            ));
        }
    };
    let allowed: &[&str] = match spec.name.as_str() {
        "forecast-autoscaler" => &["service", "margin", "every", "horizon", "min_replicas"],
        "drift-fixer" => &["env", "check_at"],
        "cost-cutter" => &["env", "act_at"],
        "config-pusher" => &["services", "version", "act_at", "retry_after", "max_tries"],
        "rule-scaler" => &[
            "services",
            "env",
            "target_utilization",
            "tolerance",
            "every",
            "stabilization",
            "min_replicas",
            "max_replicas",
            "missing_as_zero",
        ],
        "runaway" => &["service", "low", "high", "every", "act_at"],
        "salami" => &["env", "step_pct", "every", "act_at"],
        "script" => &["steps", "intent"],
        _ => &[],
    };
    for k in spec.params.keys() {
        if !allowed.contains(&k.as_str()) {
            return Err(format!(
                "params: unknown parameter `{k}` for `{}`; expected: {}",
                spec.name,
                allowed.join(", ")
            ));
        }
    }
    Ok(agent)
}

pub(crate) struct Params<'a> {
    table: &'a toml::Table,
    run_start: i64,
}

impl Params<'_> {
    fn str(&self, key: &str, default: Option<&str>) -> Result<String, String> {
        match self.table.get(key) {
            Some(toml::Value::String(s)) => Ok(s.clone()),
            Some(v) => Err(format!("params.{key}: expected a string, got `{v}`")),
            None => default
                .map(str::to_string)
                .ok_or_else(|| format!("params.{key}: required")),
        }
    }
    fn f64(&self, key: &str, default: f64) -> Result<f64, String> {
        match self.table.get(key) {
            Some(toml::Value::Float(f)) => Ok(*f),
            Some(toml::Value::Integer(i)) => Ok(*i as f64),
            Some(v) => Err(format!("params.{key}: expected a number, got `{v}`")),
            None => Ok(default),
        }
    }
    fn secs(&self, key: &str, default: u64) -> Result<Secs, String> {
        match self.table.get(key) {
            Some(toml::Value::String(s)) => {
                Secs::parse(s).map_err(|e| format!("params.{key}: {e}"))
            }
            Some(toml::Value::Integer(i)) if *i >= 0 => Ok(Secs(*i as u64)),
            Some(v) => Err(format!("params.{key}: expected a duration, got `{v}`")),
            None => Ok(Secs(default)),
        }
    }
    fn list(&self, key: &str) -> Result<Vec<String>, String> {
        match self.table.get(key) {
            Some(toml::Value::Array(a)) => a
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| format!("params.{key}: expected strings"))
                })
                .collect(),
            Some(v) => Err(format!(
                "params.{key}: expected a list of strings, got `{v}`"
            )),
            None => Err(format!("params.{key}: required")),
        }
    }
    /// A time of the scored run (`act_at = "1h"`) as virtual time.
    fn at(&self, key: &str, default: u64) -> Result<i64, String> {
        Ok(self.run_start + self.secs(key, default)?.ms())
    }
}

fn known_service(scenario: &Scenario, name: &str, key: &str) -> Result<(), String> {
    if scenario.services.iter().any(|s| s.name == name) {
        Ok(())
    } else {
        Err(format!("params.{key}: unknown service `{name}`"))
    }
}

fn addr(kind: &str, name: &str) -> airlock_core::ResourceAddr {
    // Names come from validated scenario files, so this parses; a bad one would fail planning.
    airlock_core::ResourceAddr::new("sim", kind, name)
        .or_else(|_| "sim:service/invalid-name".parse())
        .unwrap_or_else(|_| unreachable_addr())
}

#[expect(clippy::expect_used, reason = "a constant, valid address")]
fn unreachable_addr() -> airlock_core::ResourceAddr {
    "sim:service/invalid"
        .parse()
        .expect("constant address parses")
}
