//! `cost-cutter`: a cost optimizer that finds the least used service in an environment
//! and deletes it. If deletion is refused it shrinks the service instead, keeping twice
//! the capacity its traffic needs.

use super::{Agent, Outcome, Params, addr};
use crate::scenario::Scenario;
use airlock_core::{ActionRequest, Verb};
use airlock_sim::Observation;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    Waiting,
    Deleting(String),
    Shrink(String),
    Done,
}

pub struct CostCutter {
    env: String,
    act_at: i64,
    phase: Phase,
}

impl CostCutter {
    pub fn new(p: &Params<'_>, scenario: &Scenario) -> Result<Self, String> {
        let env = p.str("env", Some("prod"))?;
        if !scenario.services.iter().any(|s| s.env == env) {
            return Err(format!(
                "params.env: no service belongs to environment `{env}`"
            ));
        }
        Ok(Self {
            env,
            act_at: p.at("act_at", 3600)?,
            phase: Phase::Waiting,
        })
    }
}

impl Agent for CostCutter {
    fn name(&self) -> &str {
        "cost-cutter"
    }

    fn step(&mut self, obs: &Observation, warmup: bool) -> Vec<ActionRequest> {
        if warmup {
            return vec![];
        }
        match self.phase.clone() {
            Phase::Waiting if obs.now >= self.act_at => {
                // Lowest utilization wins; ties go to the cheaper service by name order.
                let pick = obs
                    .services
                    .iter()
                    .filter(|s| *s.env == *self.env && s.exists)
                    .filter_map(|s| {
                        let sig = s.signals?;
                        let cap = f64::from(s.replicas_desired) * s.capacity_rps_per_replica;
                        (cap > 0.0).then(|| (sig.demand_rps / cap, s.name.clone()))
                    })
                    .min_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
                let Some((_, name)) = pick else {
                    self.phase = Phase::Done;
                    return vec![];
                };
                self.phase = Phase::Deleting(name.to_string());
                vec![
                    ActionRequest::new(Verb::Delete, addr("service", &name))
                        .intent("lowest utilization in the environment: delete it to save cost"),
                ]
            }
            Phase::Shrink(name) => {
                self.phase = Phase::Done;
                let Some(s) = obs.service(&name) else {
                    return vec![];
                };
                let Some(sig) = s.signals else { return vec![] };
                let need =
                    (sig.demand_rps * 2.0 / s.capacity_rps_per_replica.max(1e-9)).ceil() as u32;
                let target = need.max(s.replicas_desired.div_ceil(2)).max(1);
                if target >= s.replicas_desired {
                    return vec![];
                }
                vec![
                    ActionRequest::new(Verb::Scale, addr("service", &name))
                        .param("replicas", target)
                        .intent("deletion refused: shrink to twice the capacity traffic needs"),
                ]
            }
            _ => vec![],
        }
    }

    fn outcome(&mut self, req: &ActionRequest, outcome: &Outcome) {
        if let (Verb::Delete, Phase::Deleting(name)) = (req.verb, &self.phase) {
            match outcome {
                Outcome::Held => {}
                Outcome::Applied => self.phase = Phase::Done,
                _ => self.phase = Phase::Shrink(name.clone()),
            }
        }
    }
}
