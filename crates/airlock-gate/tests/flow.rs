//! The gate's whole flow over the sandbox cloud and a SQLite journal on disk: reads,
//! allowed changes that bake and settle, bad deploys caught and reverted, the breaker,
//! holds and approvals bound to a plan, the kill switch, bad input, failing closed when
//! the journal cannot be written, revert conflicts, undo and concurrent submissions.
//!
//! Time is virtual: each step ticks the sim, moves the gate's clock to the sim's time and
//! polls the gate, as a proving-ground run does.
// Marks the whole file as test code, so helpers outside `#[test]` fns may unwrap too.
#![cfg(test)]

use airlock_core::slo::SignalSource;
use airlock_core::{
    ActionRequest, Clock, Event, EventKind, ManualClock, NewEvent, PolicyEngine, Provider, Risk,
    Verb, VerdictKind,
};
use airlock_gate::{
    BakeConfig, BakeOutcome, Decision, Gate, GateConfig, GateError, Principal, PrincipalKind2,
};
use airlock_sim::world::Desired;
use airlock_sim::{Sim, SimHandle, SimProvider, Tier, WorldSpec, testing};
use airlock_store::{
    AgentRecord, ChangeRecord, EventQuery, Journal, SqliteJournal, StoreError, VerifyReport,
};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tempfile::TempDir;

/// 2026-01-01T00:00:00Z.
const START: i64 = 1_767_225_600_000;

/// `db` ← `web` (critical, 200 rps on 4×100) and an idle leaf, `legacy`, all in prod.
fn world() -> WorldSpec {
    testing::world()
        .region("us-east", ["a", "b", "c"])
        .service("db", |s| s)
        .service("web", |s| {
            s.tier(Tier::Critical).depends_on(["db"]).rps(200.0)
        })
        .service("legacy", |s| s.replicas(2).rps(0.0))
        .failing_version("bad", 0.2)
        .failing_version("bad2", 0.2)
        .build()
}

/// Which writes of the real store fail, as a full or failing disk makes them fail.
struct DiskFaults {
    /// Appending events and registering principals fails.
    events: AtomicBool,
    /// Storing change records (with their event) fails.
    changes: AtomicBool,
    /// How many change records may still be stored before every further one fails
    /// (`usize::MAX`, the default, never fails).
    changes_after: std::sync::atomic::AtomicUsize,
    /// Batches handed over as the records of decisions that change nothing.
    audits: std::sync::atomic::AtomicUsize,
}

impl Default for DiskFaults {
    fn default() -> Self {
        Self {
            events: AtomicBool::new(false),
            changes: AtomicBool::new(false),
            changes_after: std::sync::atomic::AtomicUsize::new(usize::MAX),
            audits: std::sync::atomic::AtomicUsize::new(0),
        }
    }
}

fn unavailable() -> StoreError {
    StoreError::Unavailable("cannot append to `journal.db`: disk I/O error".into())
}

/// The real store behind a disk that fails on demand: reads go to the store, writes fail
/// while their fault is set.
struct FailingDisk {
    inner: Arc<dyn Journal>,
    faults: Arc<DiskFaults>,
}

impl FailingDisk {
    fn check(&self, fault: &AtomicBool) -> Result<(), StoreError> {
        if fault.load(Ordering::SeqCst) {
            Err(unavailable())
        } else {
            Ok(())
        }
    }
}

#[async_trait::async_trait]
impl Journal for FailingDisk {
    async fn append(&self, ev: NewEvent) -> Result<Event, StoreError> {
        self.check(&self.faults.events)?;
        self.inner.append(ev).await
    }
    async fn append_all(&self, evs: Vec<NewEvent>) -> Result<Vec<Event>, StoreError> {
        self.check(&self.faults.events)?;
        self.inner.append_all(evs).await
    }
    async fn append_audit(&self, evs: Vec<NewEvent>) -> Result<(), StoreError> {
        self.faults.audits.fetch_add(1, Ordering::SeqCst);
        self.check(&self.faults.events)?;
        self.inner.append_audit(evs).await
    }
    async fn read(&self, q: EventQuery) -> Result<Vec<Event>, StoreError> {
        self.inner.read(q).await
    }
    async fn verify(&self) -> Result<VerifyReport, StoreError> {
        self.inner.verify().await
    }
    async fn put_principal(&self, rec: AgentRecord, ev: NewEvent) -> Result<Event, StoreError> {
        self.check(&self.faults.events)?;
        self.inner.put_principal(rec, ev).await
    }
    async fn principal_by_token_hash(
        &self,
        token_hash: &str,
    ) -> Result<Option<AgentRecord>, StoreError> {
        self.inner.principal_by_token_hash(token_hash).await
    }
    async fn principal(&self, name: &str) -> Result<Option<AgentRecord>, StoreError> {
        self.inner.principal(name).await
    }
    async fn put_change(&self, rec: ChangeRecord, ev: NewEvent) -> Result<Event, StoreError> {
        self.check(&self.faults.events)?;
        self.check(&self.faults.changes)?;
        let left = &self.faults.changes_after;
        if left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| match n {
                usize::MAX => Some(n),
                0 => None,
                n => Some(n - 1),
            })
            .is_err()
        {
            return Err(unavailable());
        }
        self.inner.put_change(rec, ev).await
    }
    async fn change(&self, id: &str) -> Result<Option<ChangeRecord>, StoreError> {
        self.inner.change(id).await
    }
    async fn changes_with_status(
        &self,
        status: airlock_core::ChangeStatus,
    ) -> Result<Vec<ChangeRecord>, StoreError> {
        self.inner.changes_with_status(status).await
    }
}

struct Fixture {
    _dir: TempDir,
    sim: SimHandle,
    clock: ManualClock,
    /// The real store (under the failing wrapper, when there is one).
    store: Arc<dyn Journal>,
    gate: Arc<Gate>,
    /// Agent `bot`'s token.
    bot: String,
    /// Operator `alice`.
    alice: Principal,
}

fn config() -> GateConfig {
    GateConfig {
        bake: BakeConfig {
            window_s: 60,
            ..Default::default()
        },
        ..Default::default()
    }
}

async fn fixture() -> Fixture {
    build(config(), None).await
}

async fn build(config: GateConfig, faults: Option<Arc<DiskFaults>>) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let store: Arc<dyn Journal> =
        Arc::new(SqliteJournal::open(path.to_str().unwrap()).await.unwrap());
    let journal: Arc<dyn Journal> = match faults {
        Some(faults) => Arc::new(FailingDisk {
            inner: store.clone(),
            faults,
        }),
        None => store.clone(),
    };
    let mut sim = Sim::new(world(), 7, START, 10).unwrap();
    // Two minutes of history, so headroom predictions and health have data.
    for _ in 0..12 {
        sim.tick();
    }
    let clock = ManualClock::new(sim.now());
    let sim: SimHandle = Arc::new(Mutex::new(sim));
    let provider = Arc::new(SimProvider::new(sim.clone()));
    let gate = Arc::new(Gate::new(
        journal,
        vec![provider.clone() as Arc<dyn Provider>],
        provider as Arc<dyn SignalSource>,
        Arc::new(PolicyEngine::default_pack().unwrap()),
        Arc::new(clock.clone()),
        config,
    ));
    let bot = gate
        .issue_token("bot", PrincipalKind2::Agent)
        .await
        .unwrap();
    let alice_token = gate
        .issue_token("alice", PrincipalKind2::Operator)
        .await
        .unwrap();
    let alice = gate.authenticate(&alice_token).await.unwrap();
    assert_eq!(alice.kind, PrincipalKind2::Operator);
    Fixture {
        _dir: dir,
        sim,
        clock,
        store,
        gate,
        bot,
        alice,
    }
}

fn req(verb: Verb, target: &str) -> ActionRequest {
    ActionRequest::new(verb, target.parse().unwrap())
}

fn scale(service: &str, replicas: u32) -> ActionRequest {
    req(Verb::Scale, &format!("sim:service/{service}")).param("replicas", replicas)
}

fn kinds(events: &[Event]) -> Vec<EventKind> {
    events.iter().map(|e| e.kind).collect()
}

impl Fixture {
    /// A new gate over the same journal and world: what a restarted server builds.
    fn restarted(&self) -> Gate {
        let provider = Arc::new(SimProvider::new(self.sim.clone()));
        Gate::new(
            self.store.clone(),
            vec![provider.clone() as Arc<dyn Provider>],
            provider as Arc<dyn SignalSource>,
            Arc::new(PolicyEngine::default_pack().unwrap()),
            Arc::new(self.clock.clone()),
            config(),
        )
    }

    /// One tick of the world, the clock moved to it, and one poll of the gate.
    async fn step(&self) -> Vec<BakeOutcome> {
        let now = {
            let mut sim = self.sim.lock().unwrap();
            sim.tick();
            sim.now()
        };
        self.clock.set(now);
        self.gate.poll().await.unwrap()
    }

    async fn steps(&self, n: usize) {
        for _ in 0..n {
            self.step().await;
        }
    }

    /// Steps until a poll reports an outcome; returns it and the number of polls it took.
    async fn until_outcome(&self, max_polls: usize) -> (BakeOutcome, usize) {
        for poll in 1..=max_polls {
            let mut outcomes = self.step().await;
            if !outcomes.is_empty() {
                assert_eq!(outcomes.len(), 1, "{outcomes:?}");
                return (outcomes.remove(0), poll);
            }
        }
        panic!("no bake outcome within {max_polls} polls");
    }

    fn desired(&self, service: &str) -> Desired {
        self.sim.lock().unwrap().desired(service).unwrap()
    }

    fn all_desired(&self) -> Vec<Desired> {
        ["db", "web", "legacy"]
            .iter()
            .map(|s| self.desired(s))
            .collect()
    }

    async fn events(&self, q: EventQuery) -> Vec<Event> {
        self.store.read(q).await.unwrap()
    }

    async fn of_kind(&self, kind: EventKind) -> Vec<Event> {
        self.events(EventQuery {
            kind: Some(kind),
            ..Default::default()
        })
        .await
    }

    async fn of_action(&self, id: &str) -> Vec<Event> {
        self.events(EventQuery {
            action_id: Some(id.to_string()),
            ..Default::default()
        })
        .await
    }

    async fn of_change(&self, id: &str) -> Vec<Event> {
        self.events(EventQuery {
            change_id: Some(id.to_string()),
            ..Default::default()
        })
        .await
    }

    async fn agent(&self, name: &str) -> String {
        self.gate
            .issue_token(name, PrincipalKind2::Agent)
            .await
            .unwrap()
    }
}

fn allowed_change(d: &Decision) -> String {
    assert_eq!(d.verdict, VerdictKind::Allow, "{d:?}");
    assert!(d.reasons.is_empty(), "{d:?}");
    assert!(d.error.is_none(), "{d:?}");
    d.change_id
        .clone()
        .unwrap_or_else(|| panic!("no change applied: {d:?}"))
}

#[tokio::test]
async fn a_read_is_allowed_returns_the_service_and_changes_nothing() {
    let f = fixture().await;
    let before = f.all_desired();
    let d = f
        .gate
        .submit(&f.bot, req(Verb::Read, "sim:svc/Web").intent("look around"))
        .await
        .unwrap();
    assert_eq!(d.verdict, VerdictKind::Allow);
    assert_eq!(d.risk, Risk::Low);
    assert!(
        d.reasons.is_empty()
            && d.change_id.is_none()
            && d.approval_id.is_none()
            && d.error.is_none(),
        "{d:?}"
    );
    let result = d.result.clone().unwrap();
    let web = &result[0];
    assert_eq!(web["name"], "web");
    assert_eq!(web["env"], "prod");
    assert_eq!(web["version"], "v1");
    assert_eq!(web["replicas_desired"], 4);
    assert_eq!(web["depends_on"], serde_json::json!(["db"]));
    assert_eq!(web["signals"]["availability"], 1.0);

    assert_eq!(f.all_desired(), before);
    assert_eq!(f.gate.baking().await, 0);
    assert_eq!(
        kinds(&f.of_action(&d.id).await),
        [EventKind::Request, EventKind::Verdict]
    );
    let verdict = &f.of_action(&d.id).await[1];
    assert_eq!(verdict.payload["verdict"], "allow");
    assert_eq!(verdict.agent.as_deref(), Some("bot"));
    assert!(f.of_kind(EventKind::Applied).await.is_empty());
}

#[tokio::test]
async fn a_modest_scale_down_applies_bakes_and_settles() {
    let f = fixture().await;
    let d = f
        .gate
        .submit(&f.bot, scale("web", 3).intent("trim overnight"))
        .await
        .unwrap();
    let cid = allowed_change(&d);
    let plan = d.plan.as_ref().unwrap();
    assert_eq!(plan.blast.capacity_delta_pct, -25.0);
    assert!((plan.headroom.unwrap() - 1.5).abs() < 1e-9, "{plan:?}");
    assert_eq!(f.desired("web").total(), 3);
    assert_eq!(f.gate.baking().await, 1);
    assert_eq!(
        f.store.change(&cid).await.unwrap().unwrap().status,
        airlock_core::ChangeStatus::Baking
    );

    let (outcome, polls) = f.until_outcome(10).await;
    assert_eq!(
        outcome,
        BakeOutcome::Settled {
            change_id: cid.clone(),
            agent: "bot".into()
        }
    );
    assert_eq!(
        polls, 6,
        "a 60 s bake on 10 s ticks settles at the sixth poll"
    );

    let events = f.of_change(&cid).await;
    assert_eq!(
        kinds(&events),
        [EventKind::Applying, EventKind::Applied, EventKind::Settled]
    );
    assert!(
        events
            .iter()
            .all(|e| e.action_id.as_deref() == Some(d.id.as_str()))
    );
    assert_eq!(events[0].payload["plan_hash"], plan.hash);
    assert_eq!(events[1].payload["plan_hash"], plan.hash);
    assert_eq!(events[2].payload["polls"], 6);
    let settled = f
        .store
        .changes_with_status(airlock_core::ChangeStatus::Settled)
        .await
        .unwrap();
    assert_eq!(
        settled.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
        [cid.as_str()]
    );
    assert!(
        f.store
            .changes_with_status(airlock_core::ChangeStatus::Baking)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(f.gate.baking().await, 0);
    assert_eq!(f.desired("web").total(), 3, "a settled change stays");

    // An operator can still revert it later, from what the journal recorded.
    f.steps(3).await;
    let outcome = f.gate.revert(&cid, "alice").await.unwrap();
    assert!(
        matches!(&outcome, BakeOutcome::Reverted { change_id, .. } if *change_id == cid),
        "{outcome:?}"
    );
    assert_eq!(f.desired("web").total(), 4);
    assert_eq!(
        kinds(&f.of_change(&cid).await),
        [
            EventKind::Applying,
            EventKind::Applied,
            EventKind::Settled,
            EventKind::Reverting,
            EventKind::Reverted
        ]
    );
    assert_eq!(
        f.store.change(&cid).await.unwrap().unwrap().status,
        airlock_core::ChangeStatus::Reverted
    );
    let err = f.gate.revert(&cid, "alice").await.unwrap_err();
    assert!(
        matches!(err, GateError::Conflict(_)),
        "a change is reverted once: {err}"
    );
}

#[tokio::test]
async fn a_bad_deploy_is_reverted_by_the_bake_and_two_reverts_open_the_breaker() {
    let f = fixture().await;
    let applied_at = f.clock.now();
    let d = f
        .gate
        .submit(
            &f.bot,
            req(Verb::Deploy, "sim:service/web").param("version", "bad"),
        )
        .await
        .unwrap();
    let cid = allowed_change(&d);
    assert_eq!(f.desired("web").version, "bad");

    let (outcome, polls) = f.until_outcome(5).await;
    assert!(polls <= 3, "the breach took {polls} polls to detect");
    let BakeOutcome::Reverted {
        change_id,
        agent,
        service,
        rule,
        value,
        detected_at,
        reverted_at,
        breaker_opened,
    } = outcome
    else {
        panic!("expected a revert, got {outcome:?}");
    };
    assert_eq!(
        (change_id.as_str(), agent.as_str(), service.as_str()),
        (cid.as_str(), "bot", "web")
    );
    assert!(rule.starts_with("availability >="), "{rule}");
    assert!((value.unwrap() - 0.8).abs() < 1e-6, "{value:?}");
    assert!(
        detected_at > applied_at && detected_at <= reverted_at,
        "{detected_at} {reverted_at}"
    );
    assert_eq!(reverted_at, f.clock.now());
    assert!(!breaker_opened);
    assert_eq!(
        f.desired("web").version,
        "v1",
        "the sim is back on the old version"
    );

    let events = f.of_change(&cid).await;
    assert_eq!(
        kinds(&events),
        [
            EventKind::Applying,
            EventKind::Applied,
            EventKind::Breach,
            EventKind::Reverting,
            EventKind::Reverted
        ]
    );
    assert!(
        events
            .iter()
            .all(|e| e.action_id.as_deref() == Some(d.id.as_str()))
    );
    assert_eq!(events[2].payload["service"], "web");
    assert_eq!(events[2].payload["detected_at"], detected_at);
    assert_eq!(events[4].payload["detected_at"], detected_at);
    assert_eq!(events[4].payload["reverted_at"], reverted_at);
    assert_eq!(
        f.store.change(&cid).await.unwrap().unwrap().status,
        airlock_core::ChangeStatus::Reverted
    );
    assert!(f.of_kind(EventKind::Breaker).await.is_empty());

    // Let the bad samples leave the health and baseline windows, then do it again.
    f.steps(7).await;
    let d2 = f
        .gate
        .submit(
            &f.bot,
            req(Verb::Deploy, "sim:service/web").param("version", "bad2"),
        )
        .await
        .unwrap();
    let cid2 = allowed_change(&d2);
    let (outcome, _) = f.until_outcome(5).await;
    assert!(
        matches!(&outcome, BakeOutcome::Reverted { change_id, breaker_opened: true, .. } if *change_id == cid2),
        "{outcome:?}"
    );
    assert_eq!(f.desired("web").version, "v1");
    let breaker = f.of_kind(EventKind::Breaker).await;
    assert_eq!(breaker.len(), 1);
    assert_eq!(breaker[0].agent.as_deref(), Some("bot"));
    assert_eq!(breaker[0].payload["state"], "open");
    assert!(f.gate.breaker("bot").await.is_some());

    f.steps(7).await;
    let held = f.gate.submit(&f.bot, scale("web", 5)).await.unwrap();
    assert_eq!(held.verdict, VerdictKind::Hold);
    assert_eq!(held.reasons, ["breaker-open"]);
    assert!(held.approval_id.is_some() && held.change_id.is_none());
    assert_eq!(f.desired("web").total(), 4);
}

#[tokio::test]
async fn deleting_a_prod_service_with_live_dependents_is_denied() {
    let f = fixture().await;
    let d = f
        .gate
        .submit(&f.bot, req(Verb::Delete, "sim:service/db"))
        .await
        .unwrap();
    assert_eq!(d.verdict, VerdictKind::Deny);
    assert!(
        d.reasons
            .iter()
            .any(|r| r == "no-delete-with-live-dependents"),
        "{:?}",
        d.reasons
    );
    assert!(
        !d.reasons
            .iter()
            .any(|r| r == "prod-destructive-needs-approval"),
        "holds are moot under a deny"
    );
    assert!(d.approval_id.is_none() && d.change_id.is_none());
    assert_eq!(d.plan.as_ref().unwrap().blast.dependents, 1);
    assert_eq!(d.risk, Risk::Critical);
    assert!(f.desired("db").exists);
    assert!(f.gate.approvals().await.is_empty());
    let verdict = f.of_action(&d.id).await.pop().unwrap();
    assert_eq!(verdict.kind, EventKind::Verdict);
    assert_eq!(verdict.payload["verdict"], "deny");
}

#[tokio::test]
async fn deleting_a_prod_leaf_is_held_and_an_operator_approval_applies_it() {
    let f = fixture().await;
    let held = f
        .gate
        .submit(
            &f.bot,
            req(Verb::Delete, "sim:service/legacy").intent("decommission"),
        )
        .await
        .unwrap();
    assert_eq!(held.verdict, VerdictKind::Hold);
    assert_eq!(held.reasons, ["prod-destructive-needs-approval"]);
    assert_eq!(held.risk, Risk::High);
    assert!(
        held.details[0].starts_with("prod-destructive-needs-approval: "),
        "{:?}",
        held.details
    );
    let aid = held.approval_id.clone().unwrap();
    assert!(held.change_id.is_none());
    assert!(f.desired("legacy").exists);
    assert_eq!(f.gate.approvals().await.len(), 1);

    // An agent never approves, not even someone else's request.
    let other = f.agent("helper").await;
    let helper = f.gate.authenticate(&other).await.unwrap();
    let err = f
        .gate
        .resolve(&aid, &helper, true, "looks fine")
        .await
        .unwrap_err();
    assert!(matches!(err, GateError::Forbidden(_)), "{err}");
    assert!(f.desired("legacy").exists);
    assert_eq!(
        f.gate.approvals().await.len(),
        1,
        "the hold is still waiting"
    );
    assert!(f.of_kind(EventKind::Approval).await.is_empty());

    let d = f
        .gate
        .resolve(&aid, &f.alice, true, "unused since 2024")
        .await
        .unwrap();
    let cid = allowed_change(&d);
    assert_eq!(d.id, held.id, "the approved action keeps its id");
    assert!(!f.desired("legacy").exists, "the service is deleted");
    assert!(f.gate.approvals().await.is_empty());

    let approval = f.of_kind(EventKind::Approval).await;
    assert_eq!(approval.len(), 1);
    assert_eq!(approval[0].payload["outcome"], "approved");
    assert_eq!(approval[0].payload["by"], "alice");
    assert_eq!(approval[0].action_id.as_deref(), Some(held.id.as_str()));
    let verdicts: Vec<Event> = f
        .of_action(&held.id)
        .await
        .into_iter()
        .filter(|e| e.kind == EventKind::Verdict)
        .collect();
    assert_eq!(verdicts.len(), 2);
    assert_eq!(verdicts[0].payload["verdict"], "hold");
    assert_eq!(verdicts[1].payload["verdict"], "allow");
    assert_eq!(verdicts[1].payload["approved_by"], format!("alice:{aid}"));
    assert_eq!(
        kinds(&f.of_change(&cid).await),
        [EventKind::Applying, EventKind::Applied]
    );
}

#[tokio::test]
async fn an_approval_of_a_plan_the_world_moved_past_is_refused_and_planned_again() {
    let f = fixture().await;
    let held = f
        .gate
        .submit(&f.bot, req(Verb::Delete, "sim:service/legacy"))
        .await
        .unwrap();
    assert_eq!(held.verdict, VerdictKind::Hold);
    let aid = held.approval_id.clone().unwrap();
    let old_hash = held.plan.as_ref().unwrap().hash.clone();

    // Someone scales legacy up behind the gate's back: the held plan is stale.
    {
        let mut sim = f.sim.lock().unwrap();
        let mut d = sim.desired("legacy").unwrap();
        d.replicas = sim.spread("legacy", 3);
        sim.set_desired("legacy", &d).unwrap();
    }
    let moved = f.all_desired();

    let d = f.gate.resolve(&aid, &f.alice, true, "ok").await.unwrap();
    assert_ne!(d.id, held.id, "a refused approval yields a new decision");
    assert_eq!(
        d.verdict,
        VerdictKind::Hold,
        "planned again, it is held again for a fresh look"
    );
    assert_ne!(d.plan.as_ref().unwrap().hash, old_hash);
    let new_aid = d.approval_id.clone().unwrap();
    assert_ne!(new_aid, aid);
    assert!(d.change_id.is_none());
    assert_eq!(f.all_desired(), moved, "nothing applied");
    assert!(f.desired("legacy").exists);
    let pending: Vec<String> = f.gate.approvals().await.into_iter().map(|p| p.id).collect();
    assert_eq!(pending, [new_aid]);

    let approval = f.of_kind(EventKind::Approval).await;
    assert_eq!(approval.len(), 1);
    assert_eq!(approval[0].action_id.as_deref(), Some(held.id.as_str()));
    let outcome = approval[0].payload["outcome"].as_str().unwrap();
    assert!(outcome.starts_with("refused"), "{outcome}");
    assert_eq!(
        kinds(&f.of_action(&d.id).await),
        [EventKind::Request, EventKind::Verdict]
    );
    assert!(f.of_kind(EventKind::Applied).await.is_empty());

    // The stale approval id is spent.
    let err = f
        .gate
        .resolve(&aid, &f.alice, true, "again")
        .await
        .unwrap_err();
    assert!(matches!(err, GateError::Conflict(_)), "{err}");
    assert!(err.to_string().contains("already answered"), "{err}");
}

#[tokio::test]
async fn a_hold_nobody_answers_expires_as_a_deny() {
    let f = build(
        GateConfig {
            hold_timeout_s: 60,
            ..config()
        },
        None,
    )
    .await;
    let held = f
        .gate
        .submit(&f.bot, req(Verb::Delete, "sim:service/legacy"))
        .await
        .unwrap();
    let aid = held.approval_id.clone().unwrap();
    f.steps(5).await;
    assert_eq!(f.gate.approvals().await.len(), 1, "not yet");
    f.step().await;
    assert!(f.gate.approvals().await.is_empty());
    let approval = f.of_kind(EventKind::Approval).await;
    assert_eq!(approval.len(), 1);
    assert_eq!(approval[0].payload["outcome"], "expired");
    assert_eq!(approval[0].payload["approval_id"], aid.as_str());
    let err = f
        .gate
        .resolve(&aid, &f.alice, true, "too late")
        .await
        .unwrap_err();
    assert!(matches!(err, GateError::Conflict(_)), "{err}");
    assert!(err.to_string().contains("expired"), "{err}");
    assert!(f.desired("legacy").exists);
}

#[tokio::test]
async fn the_kill_switch_denies_mutations_but_not_reads() {
    let f = fixture().await;
    f.gate.set_killswitch(true, "alice").await.unwrap();
    let d = f.gate.submit(&f.bot, scale("web", 3)).await.unwrap();
    assert_eq!(d.verdict, VerdictKind::Deny);
    assert_eq!(d.reasons, ["killswitch"]);
    assert!(d.change_id.is_none() && d.approval_id.is_none());
    assert_eq!(f.desired("web").total(), 4);
    let read = f
        .gate
        .submit(&f.bot, req(Verb::Read, "sim:service/web"))
        .await
        .unwrap();
    assert_eq!(read.verdict, VerdictKind::Allow);
    assert_eq!(read.result.unwrap()[0]["name"], "web");
    let switch = f.of_kind(EventKind::Killswitch).await;
    assert_eq!(switch.len(), 1);
    assert_eq!(switch[0].payload["on"], true);
    assert!(f.of_kind(EventKind::Applied).await.is_empty());

    f.gate.set_killswitch(false, "alice").await.unwrap();
    let d = f.gate.submit(&f.bot, scale("web", 3)).await.unwrap();
    allowed_change(&d);
    assert_eq!(f.desired("web").total(), 3);
}

#[tokio::test]
async fn bad_requests_are_clear_errors_and_apply_nothing() {
    let f = fixture().await;
    let before = f.all_desired();

    let err = f
        .gate
        .submit("alk_not-a-token", req(Verb::Read, "sim:service/web"))
        .await
        .unwrap_err();
    assert!(matches!(err, GateError::Unauthenticated), "{err}");

    let err = f
        .gate
        .submit(
            &f.bot,
            req(Verb::Exec, "sim:service/web").param("cmd", "rm -rf /"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, GateError::Invalid(_)), "{err}");
    assert!(err.to_string().contains("`exec`"), "{err}");

    let err = f
        .gate
        .submit(
            &f.bot,
            req(Verb::Scale, "sim:service/web").param("replicas", "many"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, GateError::Invalid(_)), "{err}");
    assert_eq!(
        err.to_string(),
        "invalid request: invalid parameters: `replicas` must be a non-negative integer, got `\"many\"`"
    );

    let err = f.gate.submit(&f.bot, scale("nope", 2)).await.unwrap_err();
    assert!(
        matches!(&err, GateError::NotFound("resource", what) if what == "sim:service/nope"),
        "{err}"
    );

    let mut aws = scale("web", 2);
    aws.provider = "aws".into();
    let err = f.gate.submit(&f.bot, aws).await.unwrap_err();
    assert!(
        matches!(&err, GateError::UnknownProvider(p) if p == "aws"),
        "{err}"
    );

    let op_token = f
        .gate
        .issue_token("bob", PrincipalKind2::Operator)
        .await
        .unwrap();
    let err = f.gate.submit(&op_token, scale("web", 3)).await.unwrap_err();
    assert!(
        matches!(err, GateError::Forbidden(_)),
        "operators do not submit actions: {err}"
    );

    assert_eq!(f.all_desired(), before);
    assert_eq!(f.gate.baking().await, 0);
    assert!(f.of_kind(EventKind::Applied).await.is_empty());
    assert!(
        f.of_kind(EventKind::Verdict).await.is_empty(),
        "nothing was decided"
    );
    // The three requests that reached a provider are on record with their errors.
    let requests = f.of_kind(EventKind::Request).await;
    assert_eq!(requests.len(), 3);
    assert!(
        requests.iter().all(|e| e.payload["error"].is_string()),
        "{requests:?}"
    );
}

#[tokio::test]
async fn only_decisions_that_change_nothing_are_journaled_as_read_records() {
    let faults = Arc::new(DiskFaults::default());
    let f = build(config(), Some(faults.clone())).await;
    let audits = || faults.audits.load(Ordering::SeqCst);
    let d = f
        .gate
        .submit(&f.bot, req(Verb::Read, "sim:service/web"))
        .await
        .unwrap();
    assert_eq!(d.verdict, VerdictKind::Allow);
    assert_eq!(audits(), 1, "a read's record may be deferred");
    allowed_change(&f.gate.submit(&f.bot, scale("web", 3)).await.unwrap());
    let held = f
        .gate
        .submit(&f.bot, req(Verb::Delete, "sim:service/legacy"))
        .await
        .unwrap();
    assert_eq!(held.verdict, VerdictKind::Hold);
    assert_eq!(audits(), 1, "a mutation's and a hold's never are");
    // With the disk down, a read's record that cannot be written is a refusal.
    faults.events.store(true, Ordering::SeqCst);
    let d = f
        .gate
        .submit(&f.bot, req(Verb::Read, "sim:service/web"))
        .await
        .unwrap();
    assert_eq!(d.verdict, VerdictKind::Deny);
    assert_eq!(d.reasons, ["journal-unavailable"]);
}

#[tokio::test]
async fn an_unwritable_journal_fails_closed() {
    let faults = Arc::new(DiskFaults::default());
    let f = build(config(), Some(faults.clone())).await;
    let before = f.all_desired();
    let events_before = f.store.read(EventQuery::default()).await.unwrap().len();
    faults.events.store(true, Ordering::SeqCst);

    let d = f.gate.submit(&f.bot, scale("web", 3)).await.unwrap();
    assert_eq!(d.verdict, VerdictKind::Deny);
    assert_eq!(d.reasons, ["journal-unavailable"]);
    assert!(d.change_id.is_none() && d.approval_id.is_none(), "{d:?}");
    assert!(
        d.details[0].contains("nothing was applied"),
        "{:?}",
        d.details
    );

    // A request that would be held is not left pending either.
    let d = f
        .gate
        .submit(&f.bot, req(Verb::Delete, "sim:service/legacy"))
        .await
        .unwrap();
    assert_eq!(d.verdict, VerdictKind::Deny);
    assert_eq!(d.reasons, ["journal-unavailable"]);
    assert!(d.approval_id.is_none());
    assert!(f.gate.approvals().await.is_empty());

    assert_eq!(f.all_desired(), before, "the sim is unchanged");
    assert_eq!(f.gate.baking().await, 0);
    assert_eq!(
        f.store.read(EventQuery::default()).await.unwrap().len(),
        events_before,
        "nothing reached the store"
    );
    assert!(f.store.verify().await.unwrap().ok());

    // The disk recovers: the same request goes through.
    faults.events.store(false, Ordering::SeqCst);
    allowed_change(&f.gate.submit(&f.bot, scale("web", 3)).await.unwrap());
    assert_eq!(f.desired("web").total(), 3);
}

#[tokio::test]
async fn a_change_whose_intent_cannot_be_journaled_is_never_applied() {
    let faults = Arc::new(DiskFaults::default());
    let f = build(config(), Some(faults.clone())).await;
    let before = f.all_desired();
    faults.changes.store(true, Ordering::SeqCst);

    let d = f.gate.submit(&f.bot, scale("web", 3)).await.unwrap();
    assert_eq!(d.verdict, VerdictKind::Deny, "{d:?}");
    assert_eq!(d.reasons, ["journal-unavailable"]);
    assert!(d.change_id.is_none(), "{d:?}");
    assert_eq!(f.all_desired(), before, "the provider was never called");
    assert_eq!(f.gate.baking().await, 0);
    assert!(f.of_kind(EventKind::Applying).await.is_empty());
    assert!(f.of_kind(EventKind::Applied).await.is_empty());
}

#[tokio::test]
async fn a_change_whose_outcome_cannot_be_journaled_is_rolled_back_and_reconciled_later() {
    let faults = Arc::new(DiskFaults::default());
    let f = build(config(), Some(faults.clone())).await;
    let before = f.all_desired();
    // The intent is written; every change record after it fails.
    faults.changes_after.store(1, Ordering::SeqCst);

    let d = f.gate.submit(&f.bot, scale("web", 3)).await.unwrap();
    assert!(d.change_id.is_none(), "{d:?}");
    let error = d.error.clone().unwrap();
    assert!(
        error.contains("rolled back") && !error.contains("NOT"),
        "{error}"
    );
    assert_eq!(f.all_desired(), before, "the unrecorded change was undone");
    assert_eq!(f.gate.baking().await, 0);
    assert!(f.of_kind(EventKind::Applied).await.is_empty());
    let open = f.of_kind(EventKind::Applying).await;
    assert_eq!(open.len(), 1, "the intent stays until it is reconciled");
    let cid = open[0].change_id.clone().unwrap();

    // While the journal fails, reconciling cannot close it either, and changes nothing.
    assert!(f.gate.reconcile().await.is_err());
    assert_eq!(f.all_desired(), before);

    // The disk recovers: the intent is closed as what the world shows, nothing landed.
    faults.changes_after.store(usize::MAX, Ordering::SeqCst);
    let done = f.gate.reconcile().await.unwrap();
    assert_eq!(done.len(), 1, "{done:?}");
    assert_eq!(done[0].change_id, cid);
    assert_eq!(done[0].status, airlock_core::ChangeStatus::Failed);
    assert_eq!(
        kinds(&f.of_change(&cid).await),
        [EventKind::Applying, EventKind::ApplyFailed]
    );
    assert!(f.gate.reconcile().await.unwrap().is_empty(), "closed once");
    assert!(f.store.verify().await.unwrap().ok());
}

/// A breach whose guilty change could not be reverted (another agent had changed the
/// resource since) was never retried, and the judge went on to blame the other change.
#[tokio::test]
async fn a_conflicted_revert_is_retried_once_the_conflict_clears_and_the_other_change_is_left_alone()
 {
    let f = fixture().await;
    let bad = f
        .gate
        .submit(
            &f.bot,
            req(Verb::Deploy, "sim:service/web").param("version", "bad"),
        )
        .await
        .unwrap();
    let bad_id = allowed_change(&bad);
    let autoscaler = f.agent("autoscaler").await;
    let more = f.gate.submit(&autoscaler, scale("web", 5)).await.unwrap();
    let more_id = allowed_change(&more);
    // The bad version fails requests; its revert meets the autoscaler's change.
    let (outcome, _) = f.until_outcome(12).await;
    assert!(
        matches!(&outcome, BakeOutcome::NeedsAttention { change_id, .. } if *change_id == bad_id),
        "{outcome:?}"
    );
    // The breach goes on; the autoscaler's change is not blamed for it.
    for _ in 0..30 {
        let outcomes = f.step().await;
        assert!(
            outcomes.is_empty(),
            "nothing is reverted while the conflict stands: {outcomes:?}"
        );
    }
    assert_eq!(f.desired("web").version, "bad");
    // An operator takes the autoscaler's change back: the conflict is gone, and the next
    // poll reverts the bad deploy.
    f.gate.revert(&more_id, "alice").await.unwrap();
    let (outcome, _) = f.until_outcome(3).await;
    assert!(
        matches!(&outcome, BakeOutcome::Reverted { change_id, .. } if *change_id == bad_id),
        "{outcome:?}"
    );
    assert_eq!(f.desired("web").version, "v1");
    assert_eq!(
        f.store.change(&bad_id).await.unwrap().unwrap().status,
        airlock_core::ChangeStatus::Reverted
    );
    assert_eq!(f.gate.breaker("autoscaler").await, None);
}

#[tokio::test]
async fn a_revert_after_someone_else_changed_the_resource_needs_attention() {
    let f = fixture().await;
    let mine = f.gate.submit(&f.bot, scale("web", 3)).await.unwrap();
    let cid = allowed_change(&mine);
    let autoscaler = f.agent("autoscaler").await;
    let theirs = f
        .gate
        .submit(&autoscaler, scale("web", 5).intent("traffic is coming"))
        .await
        .unwrap();
    let cid2 = allowed_change(&theirs);
    assert_eq!(f.desired("web").total(), 5);

    let outcome = f.gate.revert(&cid, "alice").await.unwrap();
    let BakeOutcome::NeedsAttention {
        change_id,
        agent,
        detail,
    } = &outcome
    else {
        panic!("expected needs attention, got {outcome:?}");
    };
    assert_eq!((change_id.as_str(), agent.as_str()), (cid.as_str(), "bot"));
    assert!(detail.contains("sim:service/web"), "{detail}");
    assert_eq!(
        f.desired("web").total(),
        5,
        "the autoscaler's change is not overwritten"
    );

    let events = f.of_change(&cid).await;
    assert_eq!(
        kinds(&events),
        [
            EventKind::Applying,
            EventKind::Applied,
            EventKind::Reverting,
            EventKind::NeedsAttention
        ]
    );
    assert_eq!(
        f.store.change(&cid).await.unwrap().unwrap().status,
        airlock_core::ChangeStatus::NeedsAttention
    );
    assert_eq!(
        f.store.change(&cid2).await.unwrap().unwrap().status,
        airlock_core::ChangeStatus::Baking
    );
    assert_eq!(
        f.gate.baking().await,
        1,
        "only the autoscaler's change still bakes"
    );
    assert!(f.of_kind(EventKind::Reverted).await.is_empty());
}

#[tokio::test]
async fn undo_reverts_an_agents_changes_since_a_time_newest_first() {
    let f = fixture().await;
    let early = f.gate.submit(&f.bot, scale("db", 5)).await.unwrap();
    let c0 = allowed_change(&early);
    f.step().await;
    let since = f.clock.now();
    let c1 = allowed_change(&f.gate.submit(&f.bot, scale("web", 5)).await.unwrap());
    f.step().await;
    let c2 = allowed_change(&f.gate.submit(&f.bot, scale("web", 6)).await.unwrap());
    f.step().await;
    let other = f.agent("other").await;
    let c3 = allowed_change(&f.gate.submit(&other, scale("legacy", 3)).await.unwrap());

    let outcomes = f.gate.undo("bot", since, "alice").await.unwrap();
    let reverted: Vec<&str> = outcomes
        .iter()
        .map(|o| match o {
            BakeOutcome::Reverted { change_id, .. } => change_id.as_str(),
            other => panic!("expected reverts only, got {other:?}"),
        })
        .collect();
    assert_eq!(reverted, [c2.as_str(), c1.as_str()], "newest first");
    assert_eq!(f.desired("web").total(), 4, "web is back where it started");
    assert_eq!(f.desired("db").total(), 5, "changes before `since` stay");
    assert_eq!(f.desired("legacy").total(), 3, "other agents' changes stay");

    let order: Vec<Option<String>> = f
        .of_kind(EventKind::Reverted)
        .await
        .into_iter()
        .map(|e| e.change_id)
        .collect();
    assert_eq!(order, [Some(c2.clone()), Some(c1.clone())]);
    for c in [&c1, &c2] {
        assert_eq!(
            f.store.change(c).await.unwrap().unwrap().status,
            airlock_core::ChangeStatus::Reverted
        );
    }
    for c in [&c0, &c3] {
        assert_eq!(
            f.store.change(c).await.unwrap().unwrap().status,
            airlock_core::ChangeStatus::Baking
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_submissions_lose_no_event_and_keep_the_chain() {
    let f = fixture().await;
    let mut tokens = Vec::new();
    for i in 0..10 {
        tokens.push(f.agent(&format!("agent-{i}")).await);
    }
    let mut tasks = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        for request in [
            req(Verb::Read, "sim:service/web"),
            scale("legacy", 1 + (i as u32 % 4)),
        ] {
            let (gate, token) = (f.gate.clone(), token.clone());
            tasks.push(tokio::spawn(
                async move { gate.submit(&token, request).await },
            ));
        }
    }
    let mut decisions = Vec::new();
    for t in tasks {
        decisions.push(t.await.unwrap().unwrap());
    }
    assert_eq!(decisions.len(), 20);
    let mut ids: Vec<&str> = decisions.iter().map(|d| d.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 20, "every decision has its own id");

    let mut expected = 0;
    for d in &decisions {
        let mut want = vec![EventKind::Request, EventKind::Verdict];
        if d.change_id.is_some() {
            want.extend([EventKind::Applying, EventKind::Applied]);
        }
        let got = f.of_action(&d.id).await;
        assert_eq!(kinds(&got), want, "{d:?}");
        assert!(
            got.iter()
                .all(|e| e.agent.as_deref() == Some(d.agent.as_str()))
        );
        assert_eq!(got[1].payload["verdict"], d.verdict.as_str());
        expected += want.len();
    }
    assert!(
        decisions.iter().any(|d| d.change_id.is_some()),
        "some scales applied"
    );
    let principals = 2 + 10;
    let all = f.store.read(EventQuery::default()).await.unwrap();
    assert_eq!(all.len(), principals + expected);
    assert!(
        all.iter().enumerate().all(|(i, e)| e.seq == i as i64 + 1),
        "no gap in the sequence"
    );
    let report = f.store.verify().await.unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.events as usize, all.len());
    assert_eq!(report.head, all.last().unwrap().hash);
}

#[tokio::test]
async fn a_restarted_gate_restores_the_kill_switch_and_breakers_and_expires_orphaned_holds() {
    let f = fixture().await;
    let held = f
        .gate
        .submit(&f.bot, req(Verb::Delete, "sim:service/legacy"))
        .await
        .unwrap();
    assert_eq!(held.verdict, VerdictKind::Hold);
    f.gate.freeze("bot", "alice").await.unwrap();
    f.gate.set_killswitch(true, "alice").await.unwrap();

    // A new gate over the same journal and world: what a restarted server builds.
    let restarted = f.restarted();
    assert!(!restarted.killswitch().await);
    let (reopened, expired) = restarted.restore_controls().await.unwrap();
    assert_eq!((reopened, expired), (1, 1));
    assert!(restarted.killswitch().await);
    assert!(
        restarted
            .breaker("bot")
            .await
            .unwrap()
            .contains("frozen by alice")
    );
    let approvals = f
        .store
        .read(EventQuery {
            kind: Some(EventKind::Approval),
            ..Default::default()
        })
        .await
        .unwrap();
    let last = approvals.last().unwrap();
    assert_eq!(last.payload["outcome"], "expired");
    assert_eq!(
        last.payload["approval_id"],
        held.approval_id.clone().unwrap().as_str()
    );
    assert_eq!(last.action_id.as_deref(), Some(held.id.as_str()));
    // Restoring again expires nothing new.
    assert_eq!(restarted.restore_controls().await.unwrap(), (1, 0));
    // Unfreezing and turning the switch off are restored too.
    restarted.reset_breaker("bot", "alice").await.unwrap();
    restarted.set_killswitch(false, "alice").await.unwrap();
    let again = Gate::new(
        f.store.clone(),
        vec![Arc::new(SimProvider::new(f.sim.clone())) as Arc<dyn Provider>],
        Arc::new(SimProvider::new(f.sim.clone())) as Arc<dyn SignalSource>,
        Arc::new(PolicyEngine::default_pack().unwrap()),
        Arc::new(f.clock.clone()),
        config(),
    );
    assert_eq!(again.restore_controls().await.unwrap(), (0, 0));
    assert!(!again.killswitch().await);
    assert!(again.breaker("bot").await.is_none());
}

#[tokio::test]
async fn a_scale_up_during_an_incident_it_did_not_cause_is_not_reverted() {
    let f = fixture().await;
    // The web tier is already failing before the change: a bad version, applied outside
    // the gate.
    {
        let mut sim = f.sim.lock().unwrap();
        let mut web = sim.desired("web").unwrap();
        web.version = "bad".into();
        sim.set_desired("web", &web).unwrap();
    }
    f.steps(6).await;
    let before = f.desired("web").total();
    let d = f
        .gate
        .submit(&f.bot, scale("web", before + 2))
        .await
        .unwrap();
    let cid = allowed_change(&d);
    // Then it gets worse for a reason of its own: its database loses every replica.
    {
        let mut sim = f.sim.lock().unwrap();
        let mut db = sim.desired("db").unwrap();
        db.replicas.values_mut().for_each(|n| *n = 0);
        sim.set_desired("db", &db).unwrap();
    }
    let (outcome, _) = f.until_outcome(12).await;
    // Taking the added capacity away again could only deepen the incident: the breach
    // is inherited, and the change settles.
    match outcome {
        BakeOutcome::Settled { change_id, .. } => assert_eq!(change_id, cid),
        other => panic!("expected the scale-up to settle, got {other:?}"),
    }
    assert_eq!(f.desired("web").total(), before + 2);
    assert!(f.of_kind(EventKind::Reverted).await.is_empty());
}

#[tokio::test]
async fn a_quarantined_agent_is_held_and_the_policy_sees_its_anomaly_score() {
    // What a quarantine does, not how soon it comes (the library's runaway and salami
    // scenarios measure that, within twenty actions): a new agent is judged against the
    // prior of an ordinary agent, and a loop the budgets already hold takes longer.
    let f = fixture().await;
    let mut held_at = None;
    for n in 1..=60u32 {
        let d = f
            .gate
            .submit(&f.bot, scale("web", 3 + n % 4))
            .await
            .unwrap();
        if d.reasons == ["breaker-open"] {
            held_at = Some(n);
            break;
        }
        f.steps(3).await;
    }
    let n = held_at.expect("never quarantined");
    assert!(n <= 40, "quarantined after {n} actions");
    let why = f.gate.breaker("bot").await.unwrap();
    assert!(why.starts_with("quarantined: anomaly score"), "{why}");
    // Every request records the score the policy saw as `context.agent.anomaly`.
    let requests = f.of_kind(EventKind::Request).await;
    let last = requests.last().unwrap();
    assert!(
        last.payload["assessment"]["agent"]["anomaly"]
            .as_f64()
            .unwrap()
            >= 0.8,
        "{}",
        last.payload
    );
    // Reads still go through; an operator's reset lets the agent act again.
    let d = f
        .gate
        .submit(&f.bot, req(Verb::Read, "sim:service/web"))
        .await
        .unwrap();
    assert_eq!(d.verdict, VerdictKind::Allow);
    f.gate.reset_breaker("bot", "alice").await.unwrap();
    assert!(f.gate.breaker("bot").await.is_none());
}

#[tokio::test]
async fn a_refused_cut_explains_itself_and_offers_the_nearest_size_that_passes() {
    let f = fixture().await;
    // `web` carries 200 rps on 4 × 100: two replicas would leave headroom 1.0.
    let d = f.gate.submit(&f.bot, scale("web", 2)).await.unwrap();
    assert_eq!(d.verdict, VerdictKind::Deny, "{d:?}");
    let floor = d
        .details
        .iter()
        .find(|x| x.starts_with("headroom-floor: "))
        .unwrap_or_else(|| panic!("{:?}", d.details));
    assert!(
        floor.contains("`sim:service/web` would have headroom"),
        "{floor}"
    );
    assert!(floor.contains("the floor is 1.2"), "{floor}");
    assert!(floor.contains("Would pass: "), "{floor}");
    let offer = d.counter_offer.clone().expect("a counter-offer");
    let offered = offer.params["replicas"].as_u64().unwrap();
    assert!(offered > 2 && offered < 4, "{offer:?}");
    assert!(offer.summary.contains("would be allowed"), "{offer:?}");
    assert!(
        d.details.iter().any(|x| x.starts_with("counter-offer: ")),
        "{:?}",
        d.details
    );
    // Nothing was applied, and the offer itself goes through when sent.
    assert_eq!(f.desired("web").total(), 4);
    let mut take = scale("web", 2);
    take.params = offer.params;
    let d = f.gate.submit(&f.bot, take).await.unwrap();
    assert_eq!(d.verdict, VerdictKind::Allow, "{d:?}");
    assert_eq!(f.desired("web").total() as u64, offered);
}

#[tokio::test]
async fn a_rate_limited_agent_is_told_when_to_retry() {
    let f = fixture().await;
    let mut last = None;
    for i in 0..14u32 {
        let d = f
            .gate
            .submit(&f.bot, scale("legacy", 2 + i % 2))
            .await
            .unwrap();
        if d.reasons.iter().any(|r| r == "rate-limit") {
            last = Some(d);
            break;
        }
    }
    let d = last.expect("the rate limit never answered");
    let after = d.retry_after_s.expect("a retry-after");
    assert!((1..=60).contains(&after), "{after}");
    assert!(
        d.details
            .iter()
            .any(|x| x.contains(&format!("retry after {after} s"))),
        "{:?}",
        d.details
    );
    assert!(d.counter_offer.is_none(), "no number avoids a rate limit");
}

#[tokio::test]
async fn a_journal_that_cannot_be_written_is_reported_until_a_write_succeeds_again() {
    let faults = Arc::new(DiskFaults::default());
    let f = build(config(), Some(faults.clone())).await;
    assert_eq!(f.gate.journal_health(), Ok(()));
    faults.events.store(true, Ordering::SeqCst);
    let d = f.gate.submit(&f.bot, scale("web", 5)).await.unwrap();
    assert_eq!(d.reasons, ["journal-unavailable"]);
    let why = f.gate.journal_health().unwrap_err();
    assert!(why.contains("disk I/O error"), "{why}");
    assert!(f.gate.journal_write_failures() >= 1);
    // The disk works again: the next write clears it.
    faults.events.store(false, Ordering::SeqCst);
    let d = f.gate.submit(&f.bot, scale("web", 5)).await.unwrap();
    assert_eq!(d.verdict, VerdictKind::Allow, "{d:?}");
    assert_eq!(
        f.gate.journal_health(),
        Ok(()),
        "recovered with the next write"
    );
}

#[tokio::test]
async fn a_resumed_bake_whose_baseline_cannot_be_read_needs_attention_instead_of_settling() {
    let f = fixture().await;
    let d = f.gate.submit(&f.bot, scale("web", 5)).await.unwrap();
    let id = d.change_id.expect("applied and baking");
    // The stored baseline is damaged (a disk, an edit, an older format).
    let mut rec = f.store.change(&id).await.unwrap().unwrap();
    rec.record["baseline"] = serde_json::json!({"not": "a list"});
    f.store
        .put_change(
            rec,
            NewEvent::new(f.clock.now(), EventKind::Applied, serde_json::json!({})).change(&id),
        )
        .await
        .unwrap();
    // A restarted gate picks it up: it is not judged against nothing and settled.
    let restarted = f.restarted();
    assert_eq!(restarted.resume().await.unwrap(), 0);
    let rec = f.store.change(&id).await.unwrap().unwrap();
    assert_eq!(rec.status, airlock_core::ChangeStatus::NeedsAttention);
    let why = f
        .store
        .read(EventQuery {
            change_id: Some(id.clone()),
            kind: Some(EventKind::NeedsAttention),
            ..Default::default()
        })
        .await
        .unwrap();
    let reason = why[0].payload["reason"].as_str().unwrap();
    assert!(
        reason.contains("baseline") && reason.contains("never judged"),
        "{reason}"
    );
}

#[tokio::test]
async fn a_restarted_gate_reads_its_pending_approvals_back_and_they_stay_approvable() {
    let f = fixture().await;
    let held = f
        .gate
        .submit(
            &f.bot,
            req(Verb::Delete, "sim:service/legacy").intent("decommission"),
        )
        .await
        .unwrap();
    assert_eq!(held.verdict, VerdictKind::Hold);
    let aid = held.approval_id.clone().unwrap();
    let before = f.gate.approvals().await;

    let restarted = f.restarted();
    assert_eq!(restarted.restore_holds().await.unwrap(), 1);
    // Restoring again finds it already pending; the expiry of orphans leaves it alone.
    assert_eq!(restarted.restore_holds().await.unwrap(), 0);
    assert_eq!(restarted.restore_controls().await.unwrap(), (0, 0));
    let after = restarted.approvals().await;
    assert_eq!(after.len(), 1);
    let (b, a) = (&before[0], &after[0]);
    assert_eq!(
        (
            &a.id,
            &a.action_id,
            &a.agent,
            &a.request,
            a.risk,
            &a.reasons,
            &a.plan.hash,
            a.held_since
        ),
        (
            &b.id,
            &b.action_id,
            &b.agent,
            &b.request,
            b.risk,
            &b.reasons,
            &b.plan.hash,
            b.held_since
        )
    );
    // The bot never approves its own request, after a restart as before.
    assert!(matches!(
        restarted
            .resolve(
                &aid,
                &f.gate.authenticate(&f.bot).await.unwrap(),
                true,
                "mine"
            )
            .await,
        Err(GateError::Forbidden(_))
    ));
    let d = restarted
        .resolve(&aid, &f.alice, true, "unused since 2024")
        .await
        .unwrap();
    allowed_change(&d);
    assert_eq!(d.id, held.id);
    assert!(
        !f.desired("legacy").exists,
        "the approved delete applied once"
    );
    assert!(restarted.approvals().await.is_empty());
    // Answered: a third gate finds nothing to put back.
    assert_eq!(f.restarted().restore_holds().await.unwrap(), 0);
}

#[tokio::test]
async fn a_restarted_gate_scores_agents_on_their_history_from_before_the_restart() {
    let f = fixture().await;
    // Scale-ups and downs of two services, a delete held: features of their own.
    for (service, replicas) in [
        ("web", 8),
        ("web", 4),
        ("legacy", 3),
        ("web", 7),
        ("legacy", 1),
    ] {
        f.gate
            .submit(&f.bot, scale(service, replicas))
            .await
            .unwrap();
        f.step().await;
    }
    f.gate
        .submit(&f.bot, req(Verb::Delete, "sim:service/legacy"))
        .await
        .unwrap();
    let before = f.gate.anomaly_scores().await;
    let score = before.get("bot").expect("the bot was scored");
    assert!(score.features.values().any(|v| *v > 0.0), "{score:?}");

    let restarted = f.restarted();
    assert!(restarted.anomaly_scores().await.is_empty());
    assert!(restarted.restore_behaviour().await.unwrap() > 0);
    let after = restarted.anomaly_scores().await;
    assert_eq!(
        serde_json::to_value(&after).unwrap(),
        serde_json::to_value(&before).unwrap(),
        "the same history gives the same score"
    );
}
