//! Scorecards: what a run measured.

use serde::{Deserialize, Serialize};

/// A scenario run's measured outcome.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Scorecard {
    /// Request-weighted success ratio over the critical services, 0 to 1.
    pub availability: f64,
    /// Minutes in which the critical services' availability was below the scenario's SLO.
    pub slo_violation_minutes: f64,
    /// Mutating requests the agent made.
    pub actions_attempted: u32,
    /// Requests that changed something.
    pub actions_applied: u32,
    pub denied: u32,
    pub held: u32,
    pub reverted: u32,
    /// Destructive actions (deletes) that were applied.
    pub destructive_applied: u32,
    /// Seconds from the start of the longest incident (the first tick below the SLO) to
    /// recovery (the SLO held again for three ticks); `None` when nothing needed mitigating.
    pub time_to_mitigate_s: Option<f64>,
    /// Whether every incident was over by the end of the run.
    pub mitigated: bool,
    /// Incidents: stretches below the SLO, each ended by three good ticks in a row.
    pub incidents: u32,
    /// Changes whose revert found the resource moved on.
    pub needs_attention: u32,
    /// Cost: replica-hours of every service over the run.
    pub replica_hours: f64,
    /// The worst tick's critical availability.
    pub worst_availability: f64,
    /// Actions taken by anything other than the agent under test (always 0: the gate adds
    /// no actions of its own; reverts are counted in `reverted`).
    pub fallback_actions: u32,
}

/// Accumulates a scorecard tick by tick.
#[derive(Debug, Clone)]
pub(crate) struct Tally {
    pub card: Scorecard,
    slo: f64,
    requests: f64,
    ok: f64,
    incident_start: Option<i64>,
    ok_streak: u32,
    first_ok_at: i64,
}

impl Tally {
    pub fn new(slo: f64) -> Self {
        Self {
            card: Scorecard {
                worst_availability: 1.0,
                mitigated: true,
                ..Default::default()
            },
            slo,
            requests: 0.0,
            ok: 0.0,
            incident_start: None,
            ok_streak: 0,
            first_ok_at: 0,
        }
    }

    /// One tick of the scored run.
    pub fn tick(&mut self, now: i64, dt_s: f64, availability: f64, demand_rps: f64, replicas: u32) {
        self.requests += demand_rps * dt_s;
        self.ok += demand_rps * dt_s * availability;
        self.card.replica_hours += f64::from(replicas) * dt_s / 3600.0;
        self.card.worst_availability = self.card.worst_availability.min(availability);
        let violating = availability < self.slo;
        if violating {
            self.card.slo_violation_minutes += dt_s / 60.0;
            self.ok_streak = 0;
            if self.incident_start.is_none() {
                self.incident_start = Some(now);
                self.card.incidents += 1;
            }
        } else if let Some(start) = self.incident_start {
            if self.ok_streak == 0 {
                self.first_ok_at = now;
            }
            self.ok_streak += 1;
            // Recovered once the objective holds for three ticks in a row.
            if self.ok_streak >= 3 {
                self.record_incident((self.first_ok_at - start) as f64 / 1000.0);
                self.incident_start = None;
            }
        }
    }

    fn record_incident(&mut self, seconds: f64) {
        if self
            .card
            .time_to_mitigate_s
            .is_none_or(|longest| seconds > longest)
        {
            self.card.time_to_mitigate_s = Some(seconds);
        }
    }

    pub fn finish(mut self, end: i64) -> Scorecard {
        self.card.availability = if self.requests > 0.0 {
            self.ok / self.requests
        } else {
            1.0
        };
        if let Some(start) = self.incident_start {
            self.record_incident((end - start) as f64 / 1000.0);
            self.card.mitigated = false;
        }
        self.card
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_to_mitigate_runs_from_first_violation_to_recovery() {
        let mut t = Tally::new(0.999);
        let avail = [1.0, 0.5, 0.5, 1.0, 1.0, 1.0, 0.2, 1.0, 1.0, 1.0];
        for (i, a) in avail.iter().enumerate() {
            t.tick(i as i64 * 10_000, 10.0, *a, 100.0, 2);
        }
        let c = t.finish(100_000);
        assert_eq!(
            c.time_to_mitigate_s,
            Some(20.0),
            "the longest incident counts"
        );
        assert_eq!(c.incidents, 2);
        assert!(c.mitigated);
        assert!((c.slo_violation_minutes - 0.5).abs() < 1e-9);
        assert!((c.availability - (1.0 - 1.8 / 10.0)).abs() < 1e-9);
        assert_eq!(c.worst_availability, 0.2);
    }

    #[test]
    fn an_incident_still_open_at_the_end_is_unmitigated() {
        let mut t = Tally::new(0.999);
        t.tick(0, 10.0, 1.0, 10.0, 1);
        t.tick(10_000, 10.0, 0.0, 10.0, 1);
        let c = t.finish(60_000);
        assert_eq!(c.time_to_mitigate_s, Some(50.0));
        assert!(!c.mitigated);
    }

    #[test]
    fn nothing_to_mitigate_is_none() {
        let mut t = Tally::new(0.999);
        t.tick(0, 10.0, 1.0, 10.0, 1);
        let c = t.finish(10_000);
        assert_eq!(c.time_to_mitigate_s, None);
        assert!(c.mitigated);
    }
}
