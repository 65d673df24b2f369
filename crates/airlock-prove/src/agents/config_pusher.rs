//! `config-pusher`: a release agent that pushes a new config version to every region at
//! once, and keeps retrying the regions it was refused.

use super::{Agent, Outcome, Params, addr, known_service};
use crate::scenario::Scenario;
use airlock_core::{ActionRequest, Verb};
use airlock_sim::Observation;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Todo { not_before: i64 },
    InFlight,
    Done,
}

pub struct ConfigPusher {
    version: String,
    act_at: i64,
    retry_ms: i64,
    max_tries: u32,
    now: i64,
    targets: BTreeMap<String, (State, u32)>,
}

impl ConfigPusher {
    pub fn new(p: &Params<'_>, scenario: &Scenario) -> Result<Self, String> {
        let services = p.list("services")?;
        for s in &services {
            known_service(scenario, s, "services")?;
        }
        let act_at = p.at("act_at", 3600)?;
        Ok(Self {
            version: p.str("version", None)?,
            act_at,
            retry_ms: p.secs("retry_after", 900)?.ms(),
            max_tries: p.f64("max_tries", 3.0)?.max(1.0) as u32,
            now: act_at,
            targets: services
                .into_iter()
                .map(|s| (s, (State::Todo { not_before: act_at }, 0)))
                .collect(),
        })
    }
}

impl Agent for ConfigPusher {
    fn name(&self) -> &str {
        "config-pusher"
    }

    fn step(&mut self, obs: &Observation, warmup: bool) -> Vec<ActionRequest> {
        self.now = obs.now;
        if warmup || obs.now < self.act_at {
            return vec![];
        }
        let mut out = Vec::new();
        for (service, (state, tries)) in self.targets.iter_mut() {
            if let State::Todo { not_before } = *state
                && obs.now >= not_before
                && *tries < self.max_tries
            {
                {
                    *state = State::InFlight;
                    *tries += 1;
                    out.push(
                        ActionRequest::new(Verb::Deploy, addr("service", service))
                            .param("version", self.version.clone())
                            .intent("roll out the new config everywhere"),
                    );
                }
            }
        }
        out
    }

    fn outcome(&mut self, req: &ActionRequest, outcome: &Outcome) {
        let retry_at = self.now + self.retry_ms;
        if let Some((state, _)) = self.targets.get_mut(req.target.name()) {
            *state = match outcome {
                Outcome::Held => State::InFlight,
                Outcome::Applied => State::Done,
                Outcome::Denied(_) | Outcome::Failed(_) => State::Todo {
                    not_before: retry_at,
                },
            };
        }
    }
}
