//! Runs one scenario once: unguarded (the agent's actions applied directly) or guarded
//! (through the gate, with the scenario's policies, guards, bake and approver).

use crate::agents::{self, Agent, Outcome};
use crate::assertions::Check;
use crate::external::{CallAnswer, External, Launcher, Step, Turn};
use crate::scenario::{AgentSpec, ApproverMode, HUMAN, Scenario};
use crate::score::{AgentCard, RevertedChange, Scorecard, Tally};
use airlock_core::VerdictKind;
use airlock_core::{ActionRequest, ManualClock, PolicyEngine, Provider};
use airlock_gate::{
    BakeOutcome, Decision, DoorConfig, FrontDoor, Gate, GateConfig, NoObserver, Notifying,
    Principal, PrincipalKind2,
};
use airlock_sim::{Desired, Observation, Sim, SimProvider, Tier};
use airlock_store::Journal;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
    #[error("agent `{agent}`: {message}")]
    Agent { agent: String, message: String },
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

/// Which agents act in a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cast {
    /// The agent under test (and its peers).
    Agent,
    /// The scenario's reference agent in its place (peers stay).
    Reference,
    /// Nobody acts: what the workload and the faults alone do.
    DoNothing,
}

impl Cast {
    pub fn as_str(self) -> &'static str {
        match self {
            Cast::Agent => "agent",
            Cast::Reference => "reference",
            Cast::DoNothing => "do-nothing",
        }
    }
}

/// One thing that happened to an action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineEntry {
    pub t_s: f64,
    /// The agent that asked (`human` for `[[human]]` changes; empty for the gate's own
    /// reverts, whose agents are in the run's `reverted_changes`).
    #[serde(default)]
    pub agent: String,
    pub verb: String,
    pub target: String,
    /// `applied`, `allow`, `deny`, `hold`, `approved`, `operator-denied`, `expired`,
    /// `reverted`, `needs_attention`, `failed`, `quarantined`, `exited`, `turn-timeout`.
    pub what: String,
    pub detail: String,
}

/// A run's scorecard, series and timeline.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunResult {
    pub scenario: String,
    pub seed: u64,
    pub mode: Mode,
    pub cast: Cast,
    /// The acting agent's name (`noop` in a do-nothing run).
    pub agent: String,
    /// The world's measures, and the agent under test's own actions (in a reference run,
    /// the reference agent's).
    pub scorecard: Scorecard,
    /// Every acting agent's own actions, by principal (the agent under test included;
    /// empty in a do-nothing run).
    #[serde(default)]
    pub agents: BTreeMap<String, AgentCard>,
    /// The changes the gate reverted, each with the agent and request that made it.
    #[serde(default)]
    pub reverted_changes: Vec<RevertedChange>,
    /// The scenario's assertions on this run.
    pub checks: Vec<Check>,
    /// Every assertion passed.
    pub passed: bool,
    pub series: Vec<Point>,
    pub timeline: Vec<TimelineEntry>,
}

/// How to make a run: who acts, where guarded runs journal, how external agents start.
pub struct RunOptions<'a> {
    pub cast: Cast,
    /// The journal of a guarded run.
    pub journal: Option<Arc<dyn Journal>>,
    /// Starts external agents (`cmd`); runs with one fail without it.
    pub launcher: Option<&'a dyn Launcher>,
    /// Wall time an external agent may take for one turn before the turn ends without it.
    pub turn_timeout: Duration,
    /// Called with the fraction done.
    pub progress: &'a (dyn Fn(f64) + Sync),
}

impl<'a> RunOptions<'a> {
    /// The agent under test, no external agents.
    pub fn new(journal: Option<Arc<dyn Journal>>, progress: &'a (dyn Fn(f64) + Sync)) -> Self {
        Self {
            cast: Cast::Agent,
            journal,
            launcher: None,
            turn_timeout: Duration::from_secs(120),
            progress,
        }
    }
}

/// Runs `scenario`'s agent under test from `seed` in `mode`. Guarded runs journal into
/// `journal`. `progress` is called with the fraction done.
pub async fn run_scenario(
    scenario: &Scenario,
    seed: u64,
    mode: Mode,
    journal: Option<Arc<dyn Journal>>,
    progress: &(dyn Fn(f64) + Sync),
) -> Result<RunResult, RunError> {
    run(scenario, seed, mode, RunOptions::new(journal, progress)).await
}

enum Driver {
    /// A built-in agent and the requests it has made, each with how many refusals it knew
    /// of when it made it.
    BuiltIn(Box<dyn Agent>, VecDeque<(ActionRequest, usize)>),
    External(External),
}

struct Actor {
    name: String,
    token: String,
    driver: Driver,
}

struct Held {
    actor: usize,
    request: ActionRequest,
    due: i64,
}

/// The run's state that submissions change.
struct Ctx {
    handle: Arc<Mutex<Sim>>,
    /// The front door to the gate, in guarded runs.
    door: Option<Arc<FrontDoor>>,
    tally: Tally,
    timeline: Vec<TimelineEntry>,
    held: BTreeMap<String, Held>,
    run_start: i64,
    approver_delay_ms: i64,
    /// When the agent under test starts misbehaving, and its attempts since.
    misbehave_at: i64,
    attempts_since: u32,
    /// Each acting agent's own actions, by principal.
    agents: BTreeMap<String, AgentCard>,
    /// The request that made each applied change, by change id (whose it was, the bake
    /// says when it reverts one).
    changes: BTreeMap<String, ActionRequest>,
    reverted: Vec<RevertedChange>,
    /// The agent under test's requests the gate or the approver refused: a later request
    /// that repeats none of them is a fallback.
    refused: Vec<ActionRequest>,
}

fn poisoned() -> RunError {
    RunError::Scenario("simulator poisoned".into())
}

impl Ctx {
    fn rel(&self, t: i64) -> f64 {
        (t - self.run_start) as f64 / 1000.0
    }

    fn entry(
        &self,
        t: i64,
        agent: &str,
        req: &ActionRequest,
        what: &str,
        detail: String,
    ) -> TimelineEntry {
        TimelineEntry {
            t_s: self.rel(t),
            agent: agent.to_string(),
            verb: req.verb.to_string(),
            target: req.target.to_string(),
            what: what.to_string(),
            detail,
        }
    }

    fn card(&mut self, agent: &str) -> &mut AgentCard {
        self.agents.entry(agent.to_string()).or_default()
    }

    /// `actor`'s request was refused: denied at submission, denied by the approver, or
    /// its hold expired. Only the agent under test's refusals are remembered.
    fn note_refusal(&mut self, actor: usize, req: &ActionRequest) {
        if actor == 0 && !self.refused.iter().any(|r| same_request(r, req)) {
            self.refused.push(req.clone());
        }
    }

    /// Counts an applied change of `actor` (index 0 is the agent under test, whose actions
    /// the scorecard counts), remembering whose it was by its change id.
    fn applied(
        &mut self,
        actor: usize,
        agent: &str,
        req: &ActionRequest,
        blast: &airlock_core::Blast,
        destructive: bool,
        change_id: Option<&String>,
    ) {
        if actor == 0 {
            self.tally.applied(blast, destructive);
        }
        let card = self.card(agent);
        card.applied += 1;
        if destructive {
            card.destructive_applied += 1;
        }
        if let Some(id) = change_id {
            self.changes.insert(id.clone(), req.clone());
        }
    }

    /// Decides (guarded) or applies (unguarded) one request at `now`, made by an agent that
    /// knew of the first `known` refusals (a request made before a refusal was known is no
    /// fallback from it).
    async fn submit(
        &mut self,
        actor: usize,
        agent: &str,
        token: &str,
        req: &ActionRequest,
        known: usize,
        now: i64,
    ) -> Result<(Outcome, CallAnswer), RunError> {
        let mutation = req.verb.is_mutation();
        if mutation {
            self.card(agent).attempted += 1;
            self.tally.respond(now);
            if actor == 0 {
                self.tally.card.actions_attempted += 1;
                if now >= self.misbehave_at {
                    self.attempts_since += 1;
                }
                // Something else than what it knew was refused: what it does instead.
                let known = &self.refused[..known.min(self.refused.len())];
                if !known.is_empty() && !known.iter().any(|r| same_request(r, req)) {
                    self.tally.card.fallback_actions += 1;
                }
            }
        }
        let Some(door) = self.door.clone() else {
            // (whether it failed at planning, so nothing was tried, and why)
            let result = {
                let mut sim = self.handle.lock().map_err(|_| poisoned())?;
                match sim.plan(req) {
                    Ok(p) => sim
                        .apply_plan(&p)
                        .map(|applied| (p, applied))
                        .map_err(|e| (false, e)),
                    Err(e) => Err((true, e)),
                }
            };
            return Ok(match result {
                Ok((plan, applied)) => {
                    if mutation && !plan.is_noop() {
                        self.applied(actor, agent, req, &plan.blast, plan.destructive, None);
                    }
                    let e = self.entry(now, agent, req, "applied", plan.summary.clone());
                    self.timeline.push(e);
                    let result = (!mutation).then(|| {
                        serde_json::Value::Array(
                            applied.entries.into_iter().filter_map(|(_, v)| v).collect(),
                        )
                    });
                    (
                        Outcome::Applied,
                        CallAnswer::Direct {
                            summary: plan.summary,
                            result,
                            error: None,
                        },
                    )
                }
                Err((planning, e)) => {
                    let entry = self.entry(now, agent, req, "failed", e.to_string());
                    self.timeline.push(entry);
                    let answer = if planning {
                        CallAnswer::Refused(e.to_string())
                    } else {
                        CallAnswer::Direct {
                            summary: String::new(),
                            result: None,
                            error: Some(e.to_string()),
                        }
                    };
                    (Outcome::Failed(e.to_string()), answer)
                }
            });
        };
        let submitted = match door.agent(token).await {
            Ok(who) => door.submit(&who, req.clone()).await,
            Err(e) => Err(e),
        };
        let d = match submitted {
            Ok(d) => d,
            Err(e) => {
                let entry = self.entry(now, agent, req, "failed", e.to_string());
                self.timeline.push(entry);
                // Not decided (an unknown resource, bad parameters): nothing was applied.
                return Ok((
                    Outcome::Failed(e.to_string()),
                    CallAnswer::Refused(e.to_string()),
                ));
            }
        };
        let outcome = self.record(actor, agent, req, &d, now);
        if mutation && !self.card(agent).quarantined {
            let why = door.gate().breaker(agent).await;
            if let Some(why) = why.filter(|w| w.starts_with("quarantined")) {
                self.card(agent).quarantined = true;
                if actor == 0 {
                    self.tally.card.agent_quarantined = true;
                    self.tally.card.actions_to_quarantine = Some(f64::from(self.attempts_since));
                    self.tally.card.seconds_to_quarantine =
                        Some((now - self.misbehave_at).max(0) as f64 / 1000.0);
                } else {
                    self.tally.card.peers_quarantined += 1;
                }
                let e = self.entry(now, agent, req, "quarantined", why);
                self.timeline.push(e);
            }
        }
        Ok((outcome, CallAnswer::Decided(Box::new(d))))
    }

    /// Tallies and records a decision on `req`, made at `now`.
    fn record(
        &mut self,
        actor: usize,
        agent: &str,
        req: &ActionRequest,
        d: &Decision,
        now: i64,
    ) -> Outcome {
        let summary = d
            .plan
            .as_ref()
            .map(|p| p.summary.clone())
            .unwrap_or_default();
        let (what, detail, outcome) = match d.verdict {
            VerdictKind::Allow if d.applied() => {
                if let Some(p) = &d.plan {
                    self.applied(
                        actor,
                        agent,
                        req,
                        &p.blast,
                        p.destructive,
                        d.change_id.as_ref(),
                    );
                }
                ("applied", summary, Outcome::Applied)
            }
            VerdictKind::Allow if d.error.is_some() => {
                let e = d.error.clone().unwrap_or_default();
                ("failed", e.clone(), Outcome::Failed(e))
            }
            VerdictKind::Allow => ("allow", summary, Outcome::Applied),
            VerdictKind::Hold => {
                if actor == 0 {
                    self.tally.card.held += 1;
                }
                self.card(agent).held += 1;
                if let Some(id) = d.approval_id.clone() {
                    self.held.insert(
                        id,
                        Held {
                            actor,
                            request: req.clone(),
                            due: now + self.approver_delay_ms,
                        },
                    );
                }
                (
                    "hold",
                    format!("{} — {}", d.reasons.join(", "), summary),
                    Outcome::Held,
                )
            }
            VerdictKind::Deny => {
                if actor == 0 {
                    self.tally.card.denied += 1;
                }
                self.note_refusal(actor, req);
                self.card(agent).denied += 1;
                (
                    "deny",
                    format!("{} — {}", d.reasons.join(", "), summary),
                    Outcome::Denied(d.reasons.clone()),
                )
            }
        };
        let e = self.entry(now, agent, req, what, detail);
        self.timeline.push(e);
        outcome
    }
}

/// Whether two requests ask for the same thing (the intent aside): a retry, not a
/// fallback.
fn same_request(a: &ActionRequest, b: &ActionRequest) -> bool {
    a.verb == b.verb && a.target == b.target && a.params == b.params
}

/// The agents acting in a run of this cast.
fn cast_of(scenario: &Scenario, cast: Cast) -> Vec<AgentSpec> {
    match cast {
        Cast::Agent => std::iter::once(scenario.agent.clone())
            .chain(scenario.peers.iter().cloned())
            .collect(),
        Cast::Reference => std::iter::once(scenario.reference_agent())
            .chain(scenario.peers.iter().cloned())
            .collect(),
        Cast::DoNothing => Vec::new(),
    }
}

fn turn_of(handle: &Mutex<Sim>, run_start: i64) -> Turn {
    match handle.lock() {
        Ok(sim) => Turn {
            t_s: (sim.now() - run_start) as f64 / 1000.0,
            done: false,
            observation: Some(sim.observe()),
        },
        Err(_) => Turn {
            t_s: 0.0,
            done: true,
            observation: None,
        },
    }
}

/// Runs `scenario` from `seed` in `mode` with `opts`.
pub async fn run(
    scenario: &Scenario,
    seed: u64,
    mode: Mode,
    opts: RunOptions<'_>,
) -> Result<RunResult, RunError> {
    // An assertion nobody can read would pass by being left out: refuse before running.
    let unreadable = scenario.unreadable_assertions();
    if !unreadable.is_empty() {
        return Err(RunError::Scenario(unreadable.join("; ")));
    }
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
    let run_start = scenario.run_start();
    let specs = cast_of(scenario, opts.cast);

    let (gate, approver) = if mode == Mode::Guarded {
        let journal = opts.journal.clone().ok_or(RunError::NoJournal)?;
        let policy = PolicyEngine::new(&scenario.guard.policy_text(), airlock_core::policy::SCHEMA)
            .map_err(|e| RunError::Scenario(e.to_string()))?;
        let config = GateConfig {
            guards: scenario.guard.budgets.clone(),
            bake: scenario.guard.bake.clone(),
            hold_timeout_s: scenario.guard.hold_timeout.0,
            anomaly: scenario.guard.anomaly.clone(),
            ..Default::default()
        };
        let feed = Arc::new(Notifying::new(journal));
        let gate = Arc::new(Gate::new(
            feed.clone(),
            vec![provider.clone() as Arc<dyn Provider>],
            provider.clone(),
            Arc::new(policy),
            Arc::new(clock.clone()),
            config,
        ));
        let approver_name = "scenario-approver";
        gate.issue_token(approver_name, PrincipalKind2::Operator)
            .await?;
        let approver = Principal {
            name: approver_name.into(),
            kind: PrincipalKind2::Operator,
        };
        let door = FrontDoor::new(
            gate,
            feed,
            Arc::new(airlock_gate::frontdoor::Catalog::default()),
            Arc::new(NoObserver),
            DoorConfig::default(),
        );
        (Some(Arc::new(door)), Some(approver))
    } else {
        (None, None)
    };

    let mut actors = Vec::new();
    for spec in &specs {
        let name = spec.principal().to_string();
        let token = match &gate {
            Some(g) => g.gate().issue_token(&name, PrincipalKind2::Agent).await?,
            None => String::new(),
        };
        let driver = match &spec.cmd {
            None => Driver::BuiltIn(
                agents::build(spec, scenario).map_err(RunError::Scenario)?,
                VecDeque::new(),
            ),
            Some(cmd) => {
                let launcher = opts.launcher.ok_or_else(|| RunError::Agent {
                    agent: name.clone(),
                    message: "external agents (`cmd`) need `airlock prove`".into(),
                })?;
                let (tx, rx) = tokio::sync::mpsc::channel(16);
                // A command the scenario file gives runs in the file's directory.
                let dir = spec.dir.as_deref().or(scenario.origin_dir.as_deref());
                let process = launcher
                    .launch(cmd, &name, dir, provider.clone() as Arc<dyn Provider>, tx)
                    .map_err(|message| RunError::Agent {
                        agent: name.clone(),
                        message,
                    })?;
                Driver::External(External::new(
                    rx,
                    process,
                    spec.turn.ms(),
                    run_start,
                    opts.turn_timeout,
                ))
            }
        };
        actors.push(Actor {
            name,
            token,
            driver,
        });
    }
    let agent_name = actors
        .first()
        .map_or_else(|| "noop".to_string(), |a| a.name.clone());

    let mut ctx = Ctx {
        handle: handle.clone(),
        door: gate,
        tally: Tally::new(scenario.slo),
        timeline: Vec::new(),
        held: BTreeMap::new(),
        run_start,
        approver_delay_ms: scenario.approver.delay.ms(),
        misbehave_at: run_start + scenario.misbehaves_at.map_or(0, |s| s.ms()),
        attempts_since: 0,
        agents: actors
            .iter()
            .map(|a| (a.name.clone(), AgentCard::default()))
            .collect(),
        changes: BTreeMap::new(),
        reverted: Vec::new(),
        refused: Vec::new(),
    };
    let tick_ms = scenario.tick.ms();
    let total_ticks = (scenario.warmup.0 + scenario.duration.0) / scenario.tick.0;
    let dt = scenario.tick.0 as f64;
    let mut series = Vec::new();
    let mut minute: (i64, f64, f64, f64, u32) = (i64::MIN, 0.0, 0.0, 0.0, 0);
    let report_every = (total_ticks / 200).max(1);
    let humans = scenario.human_steps().map_err(RunError::Scenario)?;
    let mut humans = humans.iter().peekable();

    for i in 0..total_ticks {
        let (obs, now): (Observation, i64) = {
            let mut sim = handle.lock().map_err(|_| poisoned())?;
            sim.tick();
            clock.set(sim.now());
            let now = sim.now();
            // Out-of-band changes by hand: on the sandbox directly, before anyone looks.
            while let Some(h) = humans.next_if(|h| now > run_start && run_start + h.at.ms() <= now)
            {
                let (what, detail) = match sim
                    .plan(&h.request)
                    .and_then(|p| sim.apply_plan(&p).map(|_| p.summary))
                {
                    Ok(summary) => ("applied", summary),
                    Err(e) => ("failed", e.to_string()),
                };
                let e = ctx.entry(now, HUMAN, &h.request, what, detail);
                ctx.timeline.push(e);
            }
            (sim.observe(), now)
        };
        let warm = now <= run_start;
        for (a, actor) in actors.iter_mut().enumerate() {
            match &mut actor.driver {
                Driver::BuiltIn(agent, queue) => {
                    let known = ctx.refused.len();
                    queue.extend(agent.step(&obs, warm).into_iter().map(|r| (r, known)));
                }
                Driver::External(x) if !warm => x.begin(now, || turn_of(&handle, run_start)),
                Driver::External(_) => {}
            }
            loop {
                // An external agent has had every answer before its next call.
                let (req, known, reply) = match &mut actor.driver {
                    Driver::BuiltIn(_, queue) => match queue.pop_front() {
                        Some((r, known)) => (r, known, None),
                        None => break,
                    },
                    Driver::External(x) => match x.next(&|| turn_of(&handle, run_start)).await {
                        Step::Call(r, reply) => (*r, ctx.refused.len(), Some(reply)),
                        Step::Done => break,
                        step @ (Step::TimedOut | Step::Gone(_)) => {
                            let (what, detail) = match step {
                                Step::Gone(how) => ("exited", how),
                                _ => (
                                    "turn-timeout",
                                    format!("no `next_turn` within {:?}", opts.turn_timeout),
                                ),
                            };
                            ctx.timeline.push(TimelineEntry {
                                t_s: ctx.rel(now),
                                agent: actor.name.clone(),
                                verb: String::new(),
                                target: String::new(),
                                what: what.into(),
                                detail,
                            });
                            break;
                        }
                    },
                };
                let (outcome, answer) = ctx
                    .submit(a, &actor.name, &actor.token, &req, known, now)
                    .await?;
                if let Driver::BuiltIn(agent, _) = &mut actor.driver {
                    agent.outcome(&req, &outcome);
                }
                if let Some(reply) = reply {
                    let _ = reply.send(answer);
                }
            }
        }
        resolve_holds(&mut ctx, &mut actors, approver.as_ref(), scenario, now).await?;
        if !warm {
            let sim = handle.lock().map_err(|_| poisoned())?;
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
            ctx.tally.tick(now, dt, availability, demand, replicas);
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
            (opts.progress)(i as f64 / total_ticks as f64);
        }
    }
    let end = scenario.sim_start() + total_ticks as i64 * tick_ms;
    for a in &mut actors {
        if let Driver::External(x) = &mut a.driver {
            x.finish(ctx.rel(end));
        }
    }
    drop(actors);
    (opts.progress)(1.0);
    let scorecard = ctx.tally.finish(end);
    let checks = scenario
        .check_run(opts.cast, mode, &scorecard, &ctx.agents)
        .map_err(RunError::Scenario)?;
    Ok(RunResult {
        scenario: scenario.name.clone(),
        seed,
        mode,
        cast: opts.cast,
        agent: agent_name,
        passed: checks.iter().all(|c| c.passed),
        checks,
        scorecard,
        agents: ctx.agents,
        reverted_changes: ctx.reverted,
        series,
        timeline: ctx.timeline,
    })
}

/// Expires holds, lets the scenario's approver answer the due ones, and runs the bake.
async fn resolve_holds(
    ctx: &mut Ctx,
    actors: &mut [Actor],
    approver: Option<&Principal>,
    scenario: &Scenario,
    now: i64,
) -> Result<(), RunError> {
    let (Some(g), Some(approver)) = (ctx.door.clone(), approver) else {
        return Ok(());
    };
    let tell = |actors: &mut [Actor], actor: usize, req: &ActionRequest, o: &Outcome| {
        if let Some(Actor {
            driver: Driver::BuiltIn(agent, _),
            ..
        }) = actors.get_mut(actor)
        {
            agent.outcome(req, o);
        }
    };
    for id in g.gate().expire_holds().await? {
        if let Some(h) = ctx.held.remove(&id) {
            let name = actors
                .get(h.actor)
                .map(|a| a.name.clone())
                .unwrap_or_default();
            let e = ctx.entry(
                now,
                &name,
                &h.request,
                "expired",
                "no operator answered".into(),
            );
            ctx.timeline.push(e);
            ctx.note_refusal(h.actor, &h.request);
            tell(
                actors,
                h.actor,
                &h.request,
                &Outcome::Denied(vec!["hold-expired".into()]),
            );
        }
    }
    if scenario.approver.mode != ApproverMode::Never {
        let due: Vec<String> = ctx
            .held
            .iter()
            .filter(|(_, h)| h.due <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in due {
            let Some(h) = ctx.held.remove(&id) else {
                continue;
            };
            let name = actors
                .get(h.actor)
                .map(|a| a.name.clone())
                .unwrap_or_default();
            let approve = scenario.approver.mode == ApproverMode::Approve;
            let reason = if approve {
                "approved by the scenario's approver"
            } else {
                "denied by the scenario's approver"
            };
            let outcome = match g.resolve(&id, approver, approve, reason).await {
                Ok(d) if d.applied() => {
                    if let Some(p) = &d.plan {
                        ctx.applied(
                            h.actor,
                            &name,
                            &h.request,
                            &p.blast,
                            p.destructive,
                            d.change_id.as_ref(),
                        );
                    }
                    let summary = d
                        .plan
                        .as_ref()
                        .map(|p| p.summary.clone())
                        .unwrap_or_default();
                    let e = ctx.entry(now, &name, &h.request, "approved", summary);
                    ctx.timeline.push(e);
                    Outcome::Applied
                }
                Ok(d) if d.verdict == VerdictKind::Hold => {
                    let e = ctx.entry(
                        now,
                        &name,
                        &h.request,
                        "hold",
                        format!("planned again: {}", d.reasons.join(", ")),
                    );
                    ctx.timeline.push(e);
                    if let Some(nid) = d.approval_id.clone() {
                        ctx.held.insert(
                            nid,
                            Held {
                                actor: h.actor,
                                request: h.request.clone(),
                                due: now + ctx.approver_delay_ms,
                            },
                        );
                    }
                    Outcome::Held
                }
                Ok(d) => {
                    let e = ctx.entry(
                        now,
                        &name,
                        &h.request,
                        "operator-denied",
                        d.reasons.join(", "),
                    );
                    ctx.timeline.push(e);
                    ctx.note_refusal(h.actor, &h.request);
                    Outcome::Denied(d.reasons.clone())
                }
                Err(e) => {
                    let entry = ctx.entry(now, &name, &h.request, "failed", e.to_string());
                    ctx.timeline.push(entry);
                    Outcome::Failed(e.to_string())
                }
            };
            if outcome != Outcome::Held {
                tell(actors, h.actor, &h.request, &outcome);
            }
        }
    }
    // The agent under test's principal: its reverts are the scorecard's.
    let first = actors.first().map(|a| a.name.clone());
    for o in g.poll().await? {
        match o {
            BakeOutcome::Reverted {
                change_id,
                agent,
                service,
                rule,
                value,
                detected_at,
                reverted_at,
                breaker_opened,
            } => {
                if first.as_deref() == Some(agent.as_str()) {
                    ctx.tally.card.reverted += 1;
                }
                ctx.card(&agent).reverted += 1;
                ctx.tally.respond(detected_at);
                let (verb, target) = ctx
                    .changes
                    .get(&change_id)
                    .map(|r| (r.verb.to_string(), r.target.to_string()))
                    .unwrap_or_default();
                ctx.reverted.push(RevertedChange {
                    t_s: ctx.rel(reverted_at),
                    agent,
                    verb,
                    target,
                    change_id: change_id.clone(),
                    service: service.clone(),
                    rule: rule.clone(),
                });
                ctx.timeline.push(TimelineEntry {
                    t_s: ctx.rel(reverted_at),
                    agent: String::new(),
                    verb: "revert".into(),
                    target: change_id,
                    what: "reverted".into(),
                    detail: format!(
                        "{service}: {rule} ({}), detected {:.0}s in{}",
                        value.map_or("no data".into(), |v| format!("{v:.4}")),
                        ctx.rel(detected_at),
                        if breaker_opened {
                            "; breaker opened"
                        } else {
                            ""
                        }
                    ),
                });
            }
            BakeOutcome::NeedsAttention {
                change_id,
                agent,
                detail,
            } => {
                if first.as_deref() == Some(agent.as_str()) {
                    ctx.tally.card.needs_attention += 1;
                }
                ctx.card(&agent).needs_attention += 1;
                ctx.timeline.push(TimelineEntry {
                    t_s: ctx.rel(now),
                    agent: String::new(),
                    verb: "revert".into(),
                    target: change_id,
                    what: "needs_attention".into(),
                    detail,
                });
            }
            // Neither counts for or against the agent: an unjudged change is no good
            // settled change, it only went unwatched.
            BakeOutcome::Settled { .. } | BakeOutcome::Unjudged { .. } => {}
        }
    }
    Ok(())
}
