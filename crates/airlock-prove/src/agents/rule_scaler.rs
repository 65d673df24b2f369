//! `rule-scaler`: a well-tuned target-tracking autoscaler, the baseline every AI autoscaler
//! must be compared against. It sizes each service for a target utilization, scales up at
//! once, scales down only when the recommendation has stayed lower for a stabilization
//! window (taking the highest recommendation in it), ignores changes within a tolerance,
//! and leaves a service alone while its signals are missing: no data is not zero demand.
//! (`missing_as_zero = true` makes the classic mistake instead, for scenarios that test
//! what an agent does with a metric blackout.)

use super::{Agent, Outcome, Params, addr, known_service};
use crate::scenario::Scenario;
use airlock_core::{ActionRequest, Verb};
use airlock_sim::Observation;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

pub struct RuleScaler {
    services: Vec<String>,
    target_utilization: f64,
    tolerance: f64,
    every_ms: i64,
    stabilization_ms: i64,
    min_replicas: u32,
    max_replicas: u32,
    missing_as_zero: bool,
    next_act: i64,
    /// Recent recommendations per service: (time, replicas).
    recent: BTreeMap<String, VecDeque<(i64, u32)>>,
    /// Services with a request in flight (held for an operator).
    pending: BTreeSet<String>,
}

impl RuleScaler {
    pub fn new(p: &Params<'_>, scenario: &Scenario) -> Result<Self, String> {
        let services = match p.table.get("services") {
            Some(_) => p.list("services")?,
            None => {
                let env = p.str("env", Some("prod"))?;
                scenario
                    .services
                    .iter()
                    .filter(|s| s.env == env)
                    .map(|s| s.name.clone())
                    .collect()
            }
        };
        if services.is_empty() {
            return Err("params.services: no service to scale".into());
        }
        for s in &services {
            known_service(scenario, s, "services")?;
        }
        let target_utilization = p.f64("target_utilization", 0.6)?;
        if !(0.1..=0.95).contains(&target_utilization) {
            return Err("params.target_utilization: must be within 0.1..0.95".into());
        }
        let tolerance = p.f64("tolerance", 0.1)?;
        if !(0.0..1.0).contains(&tolerance) {
            return Err("params.tolerance: must be within 0..1".into());
        }
        let min_replicas = p.f64("min_replicas", 2.0)?.max(1.0) as u32;
        let max_replicas = p.f64("max_replicas", 500.0)? as u32;
        if max_replicas < min_replicas {
            return Err("params.max_replicas: must be at least min_replicas".into());
        }
        Ok(Self {
            services,
            target_utilization,
            tolerance,
            every_ms: p.secs("every", 60)?.ms().max(1000),
            stabilization_ms: p.secs("stabilization", 900)?.ms(),
            min_replicas,
            max_replicas,
            missing_as_zero: match p.table.get("missing_as_zero") {
                None => false,
                Some(toml::Value::Boolean(b)) => *b,
                Some(v) => {
                    return Err(format!(
                        "params.missing_as_zero: expected true or false, got `{v}`"
                    ));
                }
            },
            next_act: i64::MIN,
            recent: BTreeMap::new(),
            pending: BTreeSet::new(),
        })
    }

    fn recommend(&self, obs: &Observation, name: &str) -> Option<(u32, u32)> {
        let view = obs.service(name).filter(|v| v.exists)?;
        let demand = match view.signals {
            Some(sig) => sig.demand_rps,
            None if self.missing_as_zero => 0.0,
            None => return None,
        };
        let per = view.capacity_rps_per_replica.max(1e-9);
        let want = (demand / (per * self.target_utilization)).ceil() as u32;
        Some((
            want.clamp(self.min_replicas, self.max_replicas),
            view.replicas_desired,
        ))
    }
}

impl Agent for RuleScaler {
    fn name(&self) -> &str {
        "rule-scaler"
    }

    fn step(&mut self, obs: &Observation, warmup: bool) -> Vec<ActionRequest> {
        if obs.now < self.next_act {
            return vec![];
        }
        self.next_act = obs.now + self.every_ms;
        let mut out = Vec::new();
        for name in self.services.clone() {
            let Some((want, current)) = self.recommend(obs, &name) else {
                continue;
            };
            let window = self.recent.entry(name.clone()).or_default();
            window.push_back((obs.now, want));
            while window
                .front()
                .is_some_and(|(t, _)| *t < obs.now - self.stabilization_ms)
            {
                window.pop_front();
            }
            if warmup || self.pending.contains(&name) {
                continue;
            }
            let target = if want >= current {
                want
            } else {
                // Scale down to the highest recommendation of the stabilization window.
                window.iter().map(|(_, r)| *r).max().unwrap_or(current)
            };
            let change = f64::from(target.abs_diff(current)) / f64::from(current.max(1));
            if target == current || change <= self.tolerance {
                continue;
            }
            self.pending.insert(name.clone());
            out.push(
                ActionRequest::new(Verb::Scale, addr("service", &name))
                    .param("replicas", target)
                    .intent("track the target utilization"),
            );
        }
        out
    }

    fn outcome(&mut self, req: &ActionRequest, outcome: &Outcome) {
        if !matches!(outcome, Outcome::Held) {
            self.pending.remove(req.target.name());
        }
    }
}
