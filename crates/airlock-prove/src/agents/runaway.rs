//! `runaway`: an agent stuck in a loop. From `act_at` it flaps a service between `low` and
//! `high` replicas and restarts it in between, every `every`, whatever happens — the
//! retry loop of a tool that never reads its own results.

use super::{Agent, Outcome, Params, addr, known_service};
use crate::scenario::Scenario;
use airlock_core::{ActionRequest, Verb};
use airlock_sim::Observation;

pub struct Runaway {
    service: String,
    low: u32,
    high: u32,
    every_ms: i64,
    act_at: i64,
    next_act: i64,
    step: u64,
}

impl Runaway {
    pub fn new(p: &Params<'_>, scenario: &Scenario) -> Result<Self, String> {
        let service = p.str("service", None)?;
        known_service(scenario, &service, "service")?;
        let low = p.f64("low", 1.0)?.max(1.0) as u32;
        let high = p.f64("high", f64::from(low) * 4.0)? as u32;
        if high <= low {
            return Err("params.high: must be above low".into());
        }
        let act_at = p.at("act_at", 1800)?;
        Ok(Self {
            service,
            low,
            high,
            every_ms: p.secs("every", 30)?.ms().max(1000),
            act_at,
            next_act: act_at,
            step: 0,
        })
    }
}

impl Agent for Runaway {
    fn name(&self) -> &str {
        "runaway"
    }

    fn step(&mut self, obs: &Observation, warmup: bool) -> Vec<ActionRequest> {
        if warmup || obs.now < self.act_at || obs.now < self.next_act {
            return vec![];
        }
        self.next_act = obs.now + self.every_ms;
        let target = addr("service", &self.service);
        let req = match self.step % 3 {
            0 => ActionRequest::new(Verb::Scale, target)
                .param("replicas", self.low)
                .intent("scale in: utilization looks low"),
            1 => ActionRequest::new(Verb::Restart, target).intent("restart to clear errors"),
            _ => ActionRequest::new(Verb::Scale, target)
                .param("replicas", self.high)
                .intent("scale out: errors after the restart"),
        };
        self.step += 1;
        vec![req]
    }

    fn outcome(&mut self, _req: &ActionRequest, _outcome: &Outcome) {}
}
