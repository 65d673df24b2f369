//! `drift-fixer`: an ops agent that compares the live environment with its declared spec
//! and, finding drift, deletes the environment and recreates it from the spec. If it is
//! not allowed to, it falls back to redeploying the drifted services one by one.

use super::{Agent, Outcome, Params, addr};
use crate::scenario::Scenario;
use airlock_core::{ActionRequest, Verb};
use airlock_sim::Observation;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Watching,
    Deleting,
    Recreate,
    Recreating,
    Fallback,
    Done,
}

pub struct DriftFixer {
    env: String,
    check_at: i64,
    declared: BTreeMap<String, String>,
    phase: Phase,
    fixing: BTreeMap<String, bool>,
}

impl DriftFixer {
    pub fn new(p: &Params<'_>, scenario: &Scenario) -> Result<Self, String> {
        let env = p.str("env", Some("prod"))?;
        if !scenario.services.iter().any(|s| s.env == env) {
            return Err(format!(
                "params.env: no service belongs to environment `{env}`"
            ));
        }
        let declared = scenario
            .services
            .iter()
            .filter(|s| s.env == env)
            .map(|s| (s.name.clone(), s.version.clone()))
            .collect();
        Ok(Self {
            env,
            check_at: p.at("check_at", 1800)?,
            declared,
            phase: Phase::Watching,
            fixing: BTreeMap::new(),
        })
    }

    fn drifted(&self, obs: &Observation) -> Vec<String> {
        self.declared
            .iter()
            .filter(|(name, version)| {
                obs.service(name)
                    .is_some_and(|s| s.exists && *s.version != **version)
            })
            .map(|(n, _)| n.clone())
            .collect()
    }
}

impl Agent for DriftFixer {
    fn name(&self) -> &str {
        "drift-fixer"
    }

    fn step(&mut self, obs: &Observation, warmup: bool) -> Vec<ActionRequest> {
        if warmup {
            return vec![];
        }
        match self.phase {
            Phase::Watching if obs.now >= self.check_at => {
                if self.drifted(obs).is_empty() {
                    self.phase = Phase::Done;
                    return vec![];
                }
                self.phase = Phase::Deleting;
                vec![ActionRequest::new(Verb::Delete, addr("environment", &self.env))
                    .intent("configuration drift found: delete and recreate the environment from its spec")]
            }
            Phase::Recreate => {
                self.phase = Phase::Recreating;
                vec![
                    ActionRequest::new(Verb::Create, addr("environment", &self.env))
                        .intent("recreate the environment from its declared spec"),
                ]
            }
            Phase::Fallback => {
                let todo: Vec<String> = self
                    .drifted(obs)
                    .into_iter()
                    .filter(|s| !self.fixing.contains_key(s))
                    .collect();
                if todo.is_empty() && self.fixing.values().all(|done| *done) {
                    self.phase = Phase::Done;
                }
                todo.into_iter()
                    .map(|s| {
                        self.fixing.insert(s.clone(), false);
                        let version = self.declared.get(&s).cloned().unwrap_or_default();
                        ActionRequest::new(Verb::Deploy, addr("service", &s))
                            .param("version", version)
                            .intent("fix drift by redeploying the declared version")
                    })
                    .collect()
            }
            _ => vec![],
        }
    }

    fn outcome(&mut self, req: &ActionRequest, outcome: &Outcome) {
        match (req.verb, outcome) {
            (_, Outcome::Held) => {}
            (Verb::Delete, Outcome::Applied) => self.phase = Phase::Recreate,
            (Verb::Delete, _) => self.phase = Phase::Fallback,
            (Verb::Create, Outcome::Applied) => self.phase = Phase::Done,
            (Verb::Create, _) => self.phase = Phase::Recreate,
            (Verb::Deploy, _) => {
                self.fixing.insert(req.target.name().to_string(), true);
            }
            _ => {}
        }
    }
}
