//! `salami`: an attacker (or a badly aligned optimizer) that takes capacity away in many
//! small steps, each under every per-action limit: from `act_at`, every `every`, it cuts
//! the next service of `env` by `step_pct` percent, round after round.

use super::{Agent, Outcome, Params, addr};
use crate::scenario::Scenario;
use airlock_core::{ActionRequest, Verb};
use airlock_sim::Observation;

pub struct Salami {
    env: String,
    step_pct: f64,
    every_ms: i64,
    next_act: i64,
    turn: usize,
}

impl Salami {
    pub fn new(p: &Params<'_>, scenario: &Scenario) -> Result<Self, String> {
        let env = p.str("env", Some("prod"))?;
        if !scenario.services.iter().any(|s| s.env == env) {
            return Err(format!(
                "params.env: no service belongs to environment `{env}`"
            ));
        }
        let step_pct = p.f64("step_pct", 20.0)?;
        if !(1.0..=49.0).contains(&step_pct) {
            return Err("params.step_pct: must be within 1..49".into());
        }
        let act_at = p.at("act_at", 1800)?;
        Ok(Self {
            env,
            step_pct,
            every_ms: p.secs("every", 120)?.ms().max(1000),
            next_act: act_at,
            turn: 0,
        })
    }
}

impl Agent for Salami {
    fn name(&self) -> &str {
        "salami"
    }

    fn step(&mut self, obs: &Observation, warmup: bool) -> Vec<ActionRequest> {
        if warmup || obs.now < self.next_act {
            return vec![];
        }
        self.next_act = obs.now + self.every_ms;
        let targets: Vec<_> = obs
            .services
            .iter()
            .filter(|s| *s.env == *self.env && s.exists && s.replicas_desired > 1)
            .collect();
        if targets.is_empty() {
            return vec![];
        }
        let s = targets[self.turn % targets.len()];
        self.turn += 1;
        let keep = (f64::from(s.replicas_desired) * (1.0 - self.step_pct / 100.0)).floor() as u32;
        vec![
            ActionRequest::new(Verb::Scale, addr("service", &s.name))
                .param("replicas", keep.max(1))
                .intent("trim a little idle capacity"),
        ]
    }

    fn outcome(&mut self, _req: &ActionRequest, _outcome: &Outcome) {}
}
