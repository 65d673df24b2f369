//! `noop`: does nothing. Its run shows what the workload and the faults alone do.

use super::{Agent, Outcome};
use airlock_core::ActionRequest;
use airlock_sim::Observation;

pub struct Noop;

impl Agent for Noop {
    fn name(&self) -> &str {
        "noop"
    }

    fn step(&mut self, _obs: &Observation, _warmup: bool) -> Vec<ActionRequest> {
        Vec::new()
    }

    fn outcome(&mut self, _req: &ActionRequest, _outcome: &Outcome) {}
}
