//! `script`: fixed requests at fixed times of the scored run, whatever happens, for
//! adversarial scenarios (a bad push at 1h, a delete at 90m). A held, denied or failed step
//! is not retried.

use super::{Agent, Outcome, Params};
use crate::scenario::Scenario;
use crate::scripted;
use airlock_core::ActionRequest;
use airlock_sim::Observation;

pub struct Script {
    /// (virtual time due, request), in time order.
    steps: Vec<(i64, ActionRequest)>,
    next: usize,
}

impl Script {
    pub fn new(p: &Params<'_>, scenario: &Scenario) -> Result<Self, String> {
        let intent = p.str("intent", Some("scripted step"))?;
        let raw = match p.table.get("steps") {
            Some(toml::Value::Array(a)) => a,
            Some(v) => return Err(format!("params.steps: expected a list of steps, got `{v}`")),
            None => return Err("params.steps: required".into()),
        };
        let mut steps = Vec::new();
        let mut problems = Vec::new();
        for (i, v) in raw.iter().enumerate() {
            let checked = scripted::read(v, scenario, &intent);
            match checked {
                Ok(s) => steps.push((p.run_start + s.at.ms(), s.request)),
                Err(ps) => problems.extend(ps.into_iter().map(|e| format!("params.steps[{i}]{e}"))),
            }
        }
        if !problems.is_empty() {
            return Err(problems.join("; "));
        }
        // Stable: steps due at the same time keep the order they are written in.
        steps.sort_by_key(|(at, _)| *at);
        Ok(Self { steps, next: 0 })
    }
}

impl Agent for Script {
    fn name(&self) -> &str {
        "script"
    }

    fn step(&mut self, obs: &Observation, warmup: bool) -> Vec<ActionRequest> {
        if warmup {
            return vec![];
        }
        let due = self.steps[self.next..]
            .iter()
            .take_while(|(at, _)| *at <= obs.now)
            .map(|(_, r)| r.clone())
            .collect::<Vec<_>>();
        self.next += due.len();
        due
    }

    fn outcome(&mut self, _req: &ActionRequest, _outcome: &Outcome) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::AgentSpec;

    fn spec(params: &str) -> AgentSpec {
        let mut a = AgentSpec::built_in("script");
        a.params = toml::from_str(params).unwrap();
        a
    }

    #[test]
    fn steps_are_checked_when_the_scenario_loads() {
        let s = Scenario::from_toml(crate::FLAGSHIPS[2].1, "x").unwrap();
        let e = super::super::check(
            &spec(
                r#"steps = [ { at = "1h", verb = "scale", target = "service/checkout", params = { replicas = 4 } },
                            { at = "soon", verb = "nuke", target = "service/checkout" } ]"#,
            ),
            &s,
        )
        .unwrap_err();
        assert!(
            e.contains("params.steps[1].at: invalid duration `soon`"),
            "{e}"
        );
        let e = super::super::check(
            &spec(r#"steps = [ { at = "1h", verb = "nuke", target = "service/checkout" } ]"#),
            &s,
        )
        .unwrap_err();
        assert!(
            e.contains("params.steps[0].verb: unknown verb `nuke`"),
            "{e}"
        );
        let e = super::super::check(&spec("intent = \"x\""), &s).unwrap_err();
        assert!(e.contains("params.steps: required"), "{e}");
        let e = super::super::check(&spec("steps = []\nstep = 1"), &s).unwrap_err();
        assert!(e.contains("unknown parameter `step`"), "{e}");
    }

    #[test]
    fn steps_fire_once_at_their_time_in_time_order() {
        let s = Scenario::from_toml(crate::FLAGSHIPS[2].1, "x").unwrap();
        let mut a = super::super::build(
            &spec(
                r#"intent = "chaos"
                steps = [ { at = "2m", verb = "restart", target = "service/checkout" },
                          { at = "1m", verb = "scale", target = "service/checkout", params = { replicas = 1 } } ]"#,
            ),
            &s,
        )
        .unwrap();
        let mut obs = Observation {
            now: s.run_start(),
            services: vec![],
        };
        assert!(a.step(&obs, false).is_empty());
        obs.now += 60_000;
        assert!(a.step(&obs, true).is_empty(), "the warm-up only watches");
        let got = a.step(&obs, false);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].verb, airlock_core::Verb::Scale);
        assert_eq!(got[0].intent, "chaos");
        obs.now += 600_000;
        let got = a.step(&obs, false);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].verb, airlock_core::Verb::Restart);
        assert!(a.step(&obs, false).is_empty(), "never repeated");
    }
}
