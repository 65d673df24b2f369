//! Runs one scenario once: unguarded (the agent's actions applied directly) or guarded
//! (through the gate, with the scenario's policies, guards, bake and approver).

use crate::agents::{self, Outcome};
use crate::scenario::{ApproverMode, Scenario};
use crate::score::{Scorecard, Tally};
use airlock_core::{ActionRequest, ManualClock, PolicyEngine, Provider};
use airlock_gate::{BakeOutcome, Gate, GateConfig, Principal, PrincipalKind2};
use airlock_sim::{Desired, Sim, SimProvider, Tier};
use airlock_store::Journal;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Guarded or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Actions are applied directly, as if the agent had operator rights.
    Unguarded,
    /// Actions go through the gate.
    Guarded,
}

/// Why a run could not complete.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Scenario(String),
    #[error("guarded runs need a journal")]
    NoJournal,
    #[error("gate: {0}")]
    Gate(#[from] airlock_gate::GateError),
}

/// One point of the run's time series (critical services, aggregated per minute).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Seconds since the scored run started.
    pub t_s: f64,
    pub availability: f64,
    pub demand_rps: f64,
    pub capacity_rps: f64,
}

/// One thing that happened to an action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineEntry {
    pub t_s: f64,
    pub verb: String,
    pub target: String,
    /// `applied`, `allow`, `deny`, `hold`, `approved`, `operator-denied`, `expired`, `reverted`, `needs_attention`, `failed`.
    pub what: String,
    pub detail: String,
}

/// A run's scorecard, series and timeline.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunResult {
    pub scenario: String,
    pub seed: u64,
    pub mode: Mode,
    pub agent: String,
    pub scorecard: Scorecard,
    pub series: Vec<Point>,
    pub timeline: Vec<TimelineEntry>,
}

struct Held {
    request: ActionRequest,
    due: i64,
}

/// Runs `scenario` from `seed` in `mode`. Guarded runs journal into `journal`.
/// `progress` is called with the fraction done.
pub async fn run_scenario(
    scenario: &Scenario,
    seed: u64,
    mode: Mode,
    journal: Option<Arc<dyn Journal>>,
    progress: &(dyn Fn(f64) + Sync),
) -> Result<RunResult, RunError> {
    let mut sim = Sim::new(
        scenario.world(),
        seed,
        scenario.sim_start(),
        scenario.tick.0,
    )
    .map_err(|e| RunError::Scenario(e.to_string()))?;
    for d in &scenario.drift {
        let mut want: Desired = sim
            .desired(&d.service)
            .map_err(|e| RunError::Scenario(e.to_string()))?;
        want.version = d.version.clone();
        sim.set_desired(&d.service, &want)
            .map_err(|e| RunError::Scenario(e.to_string()))?;
    }
    let critical: Vec<String> = scenario
        .services
        .iter()
        .filter(|s| s.tier == Tier::Critical)
        .map(|s| s.name.clone())
        .collect();
    let handle = Arc::new(Mutex::new(sim));
    let provider = Arc::new(SimProvider::new(handle.clone()));
    let clock = ManualClock::new(scenario.sim_start());
    let mut agent = agents::build(&scenario.agent, scenario).map_err(RunError::Scenario)?;
    let agent_name = agent.name().to_string();

    let (gate, token, approver) = if mode == Mode::Guarded {
        let journal = journal.ok_or(RunError::NoJournal)?;
        let policy = match &scenario.guard.policy {
            Some(text) => PolicyEngine::new(text, airlock_core::policy::SCHEMA),
            None => PolicyEngine::default_pack(),
        }
        .map_err(|e| RunError::Scenario(e.to_string()))?;
        let config = GateConfig {
            guards: scenario.guard.budgets.clone(),
            bake: scenario.guard.bake.clone(),
            hold_timeout_s: scenario.guard.hold_timeout.0,
            ..Default::default()
        };
        let gate = Gate::new(
            journal,
            vec![provider.clone() as Arc<dyn Provider>],
            provider.clone(),
            Arc::new(policy),
            Arc::new(clock.clone()),
            config,
        );
        let token = gate.issue_token(&agent_name, PrincipalKind2::Agent).await?;
        let approver_name = "scenario-approver";
        gate.issue_token(approver_name, PrincipalKind2::Operator)
            .await?;
        let approver = Principal {
            name: approver_name.into(),
            kind: PrincipalKind2::Operator,
        };
        (Some(gate), token, Some(approver))
    } else {
        (None, String::new(), None)
    };

    let tick_ms = scenario.tick.ms();
    let total_ticks = (scenario.warmup.0 + scenario.duration.0) / scenario.tick.0;
    let run_start = scenario.run_start();
    let dt = scenario.tick.0 as f64;
    let mut tally = Tally::new(scenario.slo);
    let mut timeline = Vec::new();
    let mut series = Vec::new();
    let mut minute: (i64, f64, f64, f64, u32) = (i64::MIN, 0.0, 0.0, 0.0, 0);
    let mut held: BTreeMap<String, Held> = BTreeMap::new();
    let report_every = (total_ticks / 200).max(1);
    let rel = |t: i64| (t - run_start) as f64 / 1000.0;

    for i in 0..total_ticks {
        let (obs, now) = {
            let mut sim = handle
                .lock()
                .map_err(|_| RunError::Scenario("simulator poisoned".into()))?;
            sim.tick();
            clock.set(sim.now());
            (sim.observe(), sim.now())
        };
        let warm = now <= run_start;
        let requests = agent.step(&obs, warm);
        for req in requests {
            let mutation = req.verb.is_mutation();
            if mutation {
                tally.card.actions_attempted += 1;
            }
            let entry = |what: &str, detail: String| TimelineEntry {
                t_s: rel(now),
                verb: req.verb.to_string(),
                target: req.target.to_string(),
                what: what.to_string(),
                detail,
            };
            let outcome = match &gate {
                None => {
                    let result = {
                        let mut sim = handle
                            .lock()
                            .map_err(|_| RunError::Scenario("simulator poisoned".into()))?;
                        sim.plan(&req).and_then(|p| sim.apply_plan(&p).map(|_| p))
                    };
                    match result {
                        Ok(plan) => {
                            if mutation && !plan.is_noop() {
                                tally.card.actions_applied += 1;
                                if plan.destructive {
                                    tally.card.destructive_applied += 1;
                                }
                            }
                            timeline.push(entry("applied", plan.summary.clone()));
                            Outcome::Applied
                        }
                        Err(e) => {
                            timeline.push(entry("failed", e.to_string()));
                            Outcome::Failed(e.to_string())
                        }
                    }
                }
                Some(g) => match g.submit(&token, req.clone()).await {
                    Ok(d) => {
                        let summary = d
                            .plan
                            .as_ref()
                            .map(|p| p.summary.clone())
                            .unwrap_or_default();
                        match d.verdict {
                            "allow" if d.applied() => {
                                tally.card.actions_applied += 1;
                                if d.plan.as_ref().is_some_and(|p| p.destructive) {
                                    tally.card.destructive_applied += 1;
                                }
                                timeline.push(entry("applied", summary));
                                Outcome::Applied
                            }
                            "allow" if d.error.is_some() => {
                                let e = d.error.clone().unwrap_or_default();
                                timeline.push(entry("failed", e.clone()));
                                Outcome::Failed(e)
                            }
                            "allow" => {
                                timeline.push(entry("allow", summary));
                                Outcome::Applied
                            }
                            "hold" => {
                                tally.card.held += 1;
                                timeline.push(entry(
                                    "hold",
                                    format!("{} — {}", d.reasons.join(", "), summary),
                                ));
                                if let Some(id) = d.approval_id.clone() {
                                    held.insert(
                                        id,
                                        Held {
                                            request: req.clone(),
                                            due: now + scenario.approver.delay.ms(),
                                        },
                                    );
                                }
                                Outcome::Held
                            }
                            _ => {
                                tally.card.denied += 1;
                                timeline.push(entry(
                                    "deny",
                                    format!("{} — {}", d.reasons.join(", "), summary),
                                ));
                                Outcome::Denied(d.reasons.clone())
                            }
                        }
                    }
                    Err(e) => {
                        timeline.push(entry("failed", e.to_string()));
                        Outcome::Failed(e.to_string())
                    }
                },
            };
            agent.outcome(&req, &outcome);
        }
        if let (Some(g), Some(approver)) = (&gate, &approver) {
            for id in g.expire_holds().await? {
                if let Some(h) = held.remove(&id) {
                    timeline.push(TimelineEntry {
                        t_s: rel(now),
                        verb: h.request.verb.to_string(),
                        target: h.request.target.to_string(),
                        what: "expired".into(),
                        detail: "no operator answered".into(),
                    });
                    agent.outcome(&h.request, &Outcome::Denied(vec!["hold-expired".into()]));
                }
            }
            if scenario.approver.mode != ApproverMode::Never {
                let due: Vec<String> = held
                    .iter()
                    .filter(|(_, h)| h.due <= now)
                    .map(|(id, _)| id.clone())
                    .collect();
                for id in due {
                    let Some(h) = held.remove(&id) else { continue };
                    let approve = scenario.approver.mode == ApproverMode::Approve;
                    let reason = if approve {
                        "approved by the scenario's approver"
                    } else {
                        "denied by the scenario's approver"
                    };
                    let mk = |what: &str, detail: String| TimelineEntry {
                        t_s: rel(now),
                        verb: h.request.verb.to_string(),
                        target: h.request.target.to_string(),
                        what: what.into(),
                        detail,
                    };
                    let outcome = match g.resolve(&id, approver, approve, reason).await {
                        Ok(d) if d.applied() => {
                            tally.card.actions_applied += 1;
                            if d.plan.as_ref().is_some_and(|p| p.destructive) {
                                tally.card.destructive_applied += 1;
                            }
                            timeline.push(mk(
                                "approved",
                                d.plan
                                    .as_ref()
                                    .map(|p| p.summary.clone())
                                    .unwrap_or_default(),
                            ));
                            Outcome::Applied
                        }
                        Ok(d) if d.verdict == "hold" => {
                            timeline.push(mk(
                                "hold",
                                format!("planned again: {}", d.reasons.join(", ")),
                            ));
                            if let Some(nid) = d.approval_id.clone() {
                                held.insert(
                                    nid,
                                    Held {
                                        request: h.request.clone(),
                                        due: now + scenario.approver.delay.ms(),
                                    },
                                );
                            }
                            Outcome::Held
                        }
                        Ok(d) => {
                            timeline.push(mk("operator-denied", d.reasons.join(", ")));
                            Outcome::Denied(d.reasons.clone())
                        }
                        Err(e) => {
                            timeline.push(mk("failed", e.to_string()));
                            Outcome::Failed(e.to_string())
                        }
                    };
                    if outcome != Outcome::Held {
                        agent.outcome(&h.request, &outcome);
                    }
                }
            }
            for o in g.poll().await? {
                match o {
                    BakeOutcome::Reverted {
                        change_id,
                        service,
                        rule,
                        value,
                        detected_at,
                        reverted_at,
                        breaker_opened,
                        ..
                    } => {
                        tally.card.reverted += 1;
                        timeline.push(TimelineEntry {
                            t_s: rel(reverted_at),
                            verb: "revert".into(),
                            target: change_id,
                            what: "reverted".into(),
                            detail: format!(
                                "{service}: {rule} ({}), detected {:.0}s in{}",
                                value.map_or("no data".into(), |v| format!("{v:.4}")),
                                rel(detected_at),
                                if breaker_opened {
                                    "; breaker opened"
                                } else {
                                    ""
                                }
                            ),
                        });
                    }
                    BakeOutcome::NeedsAttention {
                        change_id, detail, ..
                    } => {
                        tally.card.needs_attention += 1;
                        timeline.push(TimelineEntry {
                            t_s: rel(now),
                            verb: "revert".into(),
                            target: change_id,
                            what: "needs_attention".into(),
                            detail,
                        });
                    }
                    BakeOutcome::Settled { .. } => {}
                }
            }
        }
        if !warm {
            let sim = handle
                .lock()
                .map_err(|_| RunError::Scenario("simulator poisoned".into()))?;
            let truth = sim.truth();
            let (mut demand, mut ok, mut cap) = (0.0, 0.0, 0.0);
            for name in &critical {
                if let Some(s) = truth.get(name) {
                    demand += s.demand_rps;
                    ok += s.demand_rps * s.availability;
                    cap += s.capacity_rps;
                }
            }
            let availability = if demand > 0.0 { ok / demand } else { 1.0 };
            let replicas: u32 = truth.values().map(|s| s.replicas_desired).sum();
            tally.tick(now, dt, availability, demand, replicas);
            let m = (now - run_start) / 60_000;
            if minute.0 != m {
                if minute.4 > 0 {
                    let n = f64::from(minute.4);
                    series.push(Point {
                        t_s: minute.0 as f64 * 60.0,
                        availability: minute.1 / n,
                        demand_rps: minute.2 / n,
                        capacity_rps: minute.3 / n,
                    });
                }
                minute = (m, 0.0, 0.0, 0.0, 0);
            }
            minute.1 += availability;
            minute.2 += demand;
            minute.3 += cap;
            minute.4 += 1;
        }
        if i % report_every == 0 {
            progress(i as f64 / total_ticks as f64);
        }
    }
    let end = scenario.sim_start() + total_ticks as i64 * tick_ms;
    progress(1.0);
    Ok(RunResult {
        scenario: scenario.name.clone(),
        seed,
        mode,
        agent: agent_name,
        scorecard: tally.finish(end),
        series,
        timeline,
    })
}
