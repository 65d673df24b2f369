//! Crash consistency: a process that dies between a provider call and the journal record of
//! its outcome leaves an intent (`applying`, `reverting`), and the next process reconciles
//! it against the world, so the journal and the world never disagree.
//!
//! A crash is simulated exactly where it matters: the provider does its work (or not) and
//! then never answers; the test drops the gate's future there, as a killed process would,
//! and builds a new gate over the same journal file and the same world.
// Marks the whole file as test code, so helpers outside `#[test]` fns may unwrap too.
#![cfg(test)]

use airlock_core::slo::SignalSource;
use airlock_core::{
    ActionRequest, Applied, ChangeStatus, Event, EventKind, Landing, ManualClock, Plan,
    PolicyEngine, Provider, ProviderError, ResourceAddr, Restored, Snapshot, Verb, VerbSpec,
};
use airlock_gate::{BakeConfig, BakeOutcome, Gate, GateConfig, PrincipalKind2};
use airlock_sim::world::Desired;
use airlock_sim::{Sim, SimHandle, SimProvider, Tier, testing};
use airlock_store::{EventQuery, Journal, SqliteJournal};
use async_trait::async_trait;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// 2026-01-01T00:00:00Z.
const START: i64 = 1_767_225_600_000;

/// Failpoints are process-wide: the tests of this file run one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Where the provider stops answering (the process "dies" there).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Stop {
    /// Answers normally.
    Never,
    /// Before touching the world.
    Before,
    /// After the world changed.
    After,
}

/// The sandbox provider, which stops answering at a chosen point of apply or restore and
/// says when it got there.
struct Dying {
    inner: SimProvider,
    apply: Mutex<Stop>,
    restore: Mutex<Stop>,
    reached: Notify,
    /// An error every apply answers with, without touching the world.
    fails_with: Mutex<Option<ProviderError>>,
    /// Whether it can read its resources back (a provider that cannot is honest about it).
    readback: bool,
}

impl Dying {
    async fn stop_at(&self, stop: Stop, at: Stop) {
        if stop == at {
            self.reached.notify_one();
            std::future::pending::<()>().await;
        }
    }
}

#[async_trait]
impl Provider for Dying {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn verbs(&self) -> &[VerbSpec] {
        self.inner.verbs()
    }
    fn signal_key(&self, addr: &ResourceAddr) -> Option<String> {
        self.inner.signal_key(addr)
    }
    async fn plan(&self, req: &ActionRequest) -> Result<Plan, ProviderError> {
        self.inner.plan(req).await
    }
    async fn snapshot(&self, targets: &[ResourceAddr]) -> Result<Snapshot, ProviderError> {
        self.inner.snapshot(targets).await
    }
    async fn apply(&self, plan: &Plan) -> Result<Applied, ProviderError> {
        if let Some(e) = self.fails_with.lock().unwrap().clone() {
            return Err(e);
        }
        let stop = *self.apply.lock().unwrap();
        self.stop_at(stop, Stop::Before).await;
        let out = self.inner.apply(plan).await;
        self.stop_at(stop, Stop::After).await;
        out
    }
    async fn restore(&self, snap: &Snapshot, expect: &Applied) -> Result<Restored, ProviderError> {
        let stop = *self.restore.lock().unwrap();
        self.stop_at(stop, Stop::Before).await;
        let out = self.inner.restore(snap, expect).await;
        self.stop_at(stop, Stop::After).await;
        out
    }
    async fn reconcile_apply(
        &self,
        plan: &Plan,
        before: &Snapshot,
    ) -> Result<Landing, ProviderError> {
        if !self.readback {
            return Err(ProviderError::Unavailable("cannot read back".into()));
        }
        self.inner.reconcile_apply(plan, before).await
    }
    async fn reconcile_restore(
        &self,
        snap: &Snapshot,
        applied: &Applied,
    ) -> Result<Landing, ProviderError> {
        if !self.readback {
            return Err(ProviderError::Unavailable("cannot read back".into()));
        }
        self.inner.reconcile_restore(snap, applied).await
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    path: String,
    sim: SimHandle,
    clock: ManualClock,
    store: Arc<dyn Journal>,
    provider: Arc<Dying>,
    gate: Arc<Gate>,
    bot: String,
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

fn gate_over(
    store: Arc<dyn Journal>,
    provider: Arc<dyn Provider>,
    signals: Arc<dyn SignalSource>,
    clock: &ManualClock,
) -> Gate {
    Gate::new(
        store,
        vec![provider],
        signals,
        Arc::new(PolicyEngine::default_pack().unwrap()),
        Arc::new(clock.clone()),
        config(),
    )
}

async fn fixture(readback: bool) -> Fixture {
    airlock_core::failpoint::clear();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db").to_str().unwrap().to_string();
    let store: Arc<dyn Journal> = Arc::new(SqliteJournal::open(&path).await.unwrap());
    let spec = testing::world()
        .region("us-east", ["a", "b", "c"])
        .service("db", |s| s)
        .service("web", |s| {
            s.tier(Tier::Critical).depends_on(["db"]).rps(200.0)
        })
        .failing_version("bad", 0.2)
        .build();
    let mut sim = Sim::new(spec, 7, START, 10).unwrap();
    for _ in 0..12 {
        sim.tick();
    }
    let clock = ManualClock::new(sim.now());
    let sim: SimHandle = Arc::new(Mutex::new(sim));
    let inner = SimProvider::new(sim.clone());
    let provider = Arc::new(Dying {
        inner,
        apply: Mutex::new(Stop::Never),
        restore: Mutex::new(Stop::Never),
        reached: Notify::new(),
        fails_with: Mutex::new(None),
        readback,
    });
    let signals = Arc::new(SimProvider::new(sim.clone()));
    let gate = Arc::new(gate_over(store.clone(), provider.clone(), signals, &clock));
    let bot = gate
        .issue_token("bot", PrincipalKind2::Agent)
        .await
        .unwrap();
    Fixture {
        _dir: dir,
        path,
        sim,
        clock,
        store,
        provider,
        gate,
        bot,
    }
}

fn deploy(version: &str) -> ActionRequest {
    ActionRequest::new(Verb::Deploy, "sim:service/web".parse().unwrap()).param("version", version)
}

fn kinds(events: &[Event]) -> Vec<EventKind> {
    events.iter().map(|e| e.kind).collect()
}

impl Fixture {
    fn web(&self) -> Desired {
        self.sim.lock().unwrap().desired("web").unwrap()
    }

    /// Submits `req` and "kills the process" where the provider stops answering.
    async fn submit_and_die(&self, req: ActionRequest) {
        let (gate, token) = (self.gate.clone(), self.bot.clone());
        let task = tokio::spawn(async move { gate.submit(&token, req).await });
        self.provider.reached.notified().await;
        task.abort();
        assert!(task.await.unwrap_err().is_cancelled());
    }

    /// A new process over the same journal file and the same world, with a provider that
    /// answers: what a restarted server builds. Returns it after its start-up (reconcile,
    /// resume).
    async fn restart(&self) -> (Gate, Arc<dyn Journal>) {
        let store: Arc<dyn Journal> = Arc::new(SqliteJournal::open(&self.path).await.unwrap());
        let provider = Arc::new(SimProvider::new(self.sim.clone()));
        let gate = gate_over(
            store.clone(),
            provider.clone(),
            provider as Arc<dyn SignalSource>,
            &self.clock,
        );
        gate.resume().await.unwrap();
        (gate, store)
    }

    async fn of_change(&self, store: &Arc<dyn Journal>, id: &str) -> Vec<Event> {
        store
            .read(EventQuery {
                change_id: Some(id.to_string()),
                ..Default::default()
            })
            .await
            .unwrap()
    }

    async fn the_change(&self) -> String {
        let open = self
            .store
            .read(EventQuery {
                kind: Some(EventKind::Applying),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(open.len(), 1, "{open:?}");
        open[0].change_id.clone().unwrap()
    }

    /// Ticks the world and polls `gate` until an outcome or `polls` polls.
    async fn poll_until_outcome(&self, gate: &Gate, polls: usize) -> Vec<BakeOutcome> {
        for _ in 0..polls {
            let now = {
                let mut sim = self.sim.lock().unwrap();
                sim.tick();
                sim.now()
            };
            self.clock.set(now);
            let out = gate.poll().await.unwrap();
            if !out.is_empty() {
                return out;
            }
        }
        Vec::new()
    }
}

#[tokio::test]
async fn a_crash_after_apply_is_recorded_as_applied_and_its_bake_still_reverts_a_bad_deploy() {
    let _serial = SERIAL.lock().await;
    let f = fixture(true).await;
    *f.provider.apply.lock().unwrap() = Stop::After;
    f.submit_and_die(deploy("bad")).await;
    assert_eq!(f.web().version, "bad", "the change is live in the world");
    let cid = f.the_change().await;
    assert_eq!(
        f.store.change(&cid).await.unwrap().unwrap().status,
        ChangeStatus::Applying
    );

    let (gate, store) = f.restart().await;
    let events = f.of_change(&store, &cid).await;
    assert_eq!(kinds(&events), [EventKind::Applying, EventKind::Applied]);
    assert_eq!(events[1].payload["reconciled"], true);
    assert_eq!(gate.baking().await, 1, "the landed change is baked");

    // The bad deploy breaches its bake and is reverted: the world and the journal agree.
    let out = f.poll_until_outcome(&gate, 12).await;
    assert!(
        matches!(out.as_slice(), [BakeOutcome::Reverted { change_id, .. }] if *change_id == cid),
        "{out:?}"
    );
    assert_eq!(f.web().version, "v1");
    assert_eq!(
        store.change(&cid).await.unwrap().unwrap().status,
        ChangeStatus::Reverted
    );
    assert!(store.verify().await.unwrap().ok());
}

#[tokio::test]
async fn a_crash_before_apply_is_recorded_as_failed_and_nothing_is_live() {
    let _serial = SERIAL.lock().await;
    let f = fixture(true).await;
    let before = f.web();
    *f.provider.apply.lock().unwrap() = Stop::Before;
    f.submit_and_die(deploy("v2")).await;
    let cid = f.the_change().await;

    let (gate, store) = f.restart().await;
    assert_eq!(f.web(), before);
    assert_eq!(
        kinds(&f.of_change(&store, &cid).await),
        [EventKind::Applying, EventKind::ApplyFailed]
    );
    assert_eq!(
        store.change(&cid).await.unwrap().unwrap().status,
        ChangeStatus::Failed
    );
    assert_eq!(gate.baking().await, 0);
}

#[tokio::test]
async fn a_crash_after_a_revert_landed_is_recorded_as_reverted_never_settled() {
    let _serial = SERIAL.lock().await;
    let f = fixture(true).await;
    let d = f.gate.submit(&f.bot, deploy("bad")).await.unwrap();
    let cid = d.change_id.clone().unwrap();
    *f.provider.restore.lock().unwrap() = Stop::After;
    // The bake detects the breach and reverts; the process dies once the world is restored.
    let gate = f.gate.clone();
    let sim = f.sim.clone();
    let clock = f.clock.clone();
    let task = tokio::spawn(async move {
        loop {
            let now = {
                let mut sim = sim.lock().unwrap();
                sim.tick();
                sim.now()
            };
            clock.set(now);
            gate.poll().await.unwrap();
        }
    });
    f.provider.reached.notified().await;
    task.abort();
    let _ = task.await;
    assert_eq!(f.web().version, "v1", "the revert landed in the world");
    assert_eq!(
        f.store.change(&cid).await.unwrap().unwrap().status,
        ChangeStatus::Reverting
    );

    let (gate, store) = f.restart().await;
    assert_eq!(
        gate.baking().await,
        0,
        "a reverted change is not baked again"
    );
    let events = f.of_change(&store, &cid).await;
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
    assert_eq!(events[4].payload["reconciled"], true);
    // Polls after the restart never call it settled.
    f.poll_until_outcome(&gate, 12).await;
    let settled = store
        .read(EventQuery {
            kind: Some(EventKind::Settled),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(settled.is_empty(), "{settled:?}");
    assert_eq!(
        store.change(&cid).await.unwrap().unwrap().status,
        ChangeStatus::Reverted
    );
}

#[tokio::test]
async fn a_crash_before_a_revert_landed_carries_the_revert_out_after_the_restart() {
    let _serial = SERIAL.lock().await;
    let f = fixture(true).await;
    let d = f.gate.submit(&f.bot, deploy("v2")).await.unwrap();
    let cid = d.change_id.clone().unwrap();
    *f.provider.restore.lock().unwrap() = Stop::Before;
    let (gate, id) = (f.gate.clone(), cid.clone());
    let task = tokio::spawn(async move { gate.revert(&id, "alice").await });
    f.provider.reached.notified().await;
    task.abort();
    let _ = task.await;
    assert_eq!(f.web().version, "v2", "the revert never reached the world");

    let (gate, store) = f.restart().await;
    assert_eq!(f.web().version, "v1", "the decided revert was carried out");
    assert_eq!(gate.baking().await, 0);
    assert_eq!(
        store.change(&cid).await.unwrap().unwrap().status,
        ChangeStatus::Reverted
    );
    let events = f.of_change(&store, &cid).await;
    assert_eq!(
        kinds(&events),
        [
            EventKind::Applying,
            EventKind::Applied,
            EventKind::Reverting,
            EventKind::Reverting,
            EventKind::Reverted
        ]
    );
    assert_eq!(events[3].payload["from"], "baking");
}

#[tokio::test]
async fn a_world_that_moved_on_during_a_crash_needs_a_person() {
    let _serial = SERIAL.lock().await;
    let f = fixture(true).await;
    *f.provider.apply.lock().unwrap() = Stop::After;
    f.submit_and_die(deploy("v2")).await;
    let cid = f.the_change().await;
    // Someone else changed the service while the process was down.
    {
        let mut sim = f.sim.lock().unwrap();
        let mut d = sim.desired("web").unwrap();
        d.version = "v3".into();
        sim.restore_desired("web", &d).unwrap();
    }
    let (gate, store) = f.restart().await;
    assert_eq!(
        store.change(&cid).await.unwrap().unwrap().status,
        ChangeStatus::NeedsAttention
    );
    assert_eq!(f.web().version, "v3", "nothing was overwritten");
    assert_eq!(gate.baking().await, 0);
}

#[tokio::test]
async fn a_provider_that_cannot_read_back_leaves_needs_attention_not_a_guess() {
    let _serial = SERIAL.lock().await;
    let f = fixture(false).await;
    *f.provider.apply.lock().unwrap() = Stop::After;
    f.submit_and_die(deploy("v2")).await;
    let cid = f.the_change().await;
    // The restarted process has the same provider, which cannot tell.
    let gate = gate_over(
        f.store.clone(),
        f.provider.clone(),
        Arc::new(SimProvider::new(f.sim.clone())),
        &f.clock,
    );
    *f.provider.apply.lock().unwrap() = Stop::Never;
    let done = gate.reconcile().await.unwrap();
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].status, ChangeStatus::NeedsAttention);
    assert!(done[0].detail.contains("cannot be read back"), "{done:?}");
    let events = f.of_change(&f.store, &cid).await;
    assert_eq!(
        kinds(&events),
        [EventKind::Applying, EventKind::NeedsAttention]
    );
}

#[tokio::test]
async fn an_apply_error_after_the_world_changed_is_read_back_and_baked() {
    let _serial = SERIAL.lock().await;
    let f = fixture(true).await;
    airlock_core::failpoint::set("gate.after_apply", "1@error").unwrap();
    let d = f.gate.submit(&f.bot, deploy("v2")).await.unwrap();
    airlock_core::failpoint::clear();
    let cid = d.change_id.clone().expect("the change landed and is baked");
    assert!(d.error.is_none(), "{d:?}");
    assert_eq!(f.web().version, "v2");
    assert_eq!(f.gate.baking().await, 1);
    assert_eq!(
        kinds(&f.of_change(&f.store, &cid).await),
        [EventKind::Applying, EventKind::Applied]
    );
}

#[tokio::test]
async fn an_unreachable_provider_sent_nothing_but_a_lost_call_needs_a_person() {
    let _serial = SERIAL.lock().await;
    // A provider that cannot read back: only what its error proves is believed.
    let f = fixture(false).await;
    *f.provider.fails_with.lock().unwrap() =
        Some(ProviderError::Unreachable("connection refused".into()));
    let d = f.gate.submit(&f.bot, deploy("v2")).await.unwrap();
    assert!(d.change_id.is_none(), "{d:?}");
    let failed = f
        .store
        .changes_with_status(ChangeStatus::Failed)
        .await
        .unwrap();
    assert_eq!(failed.len(), 1, "nothing was sent: a plain failure");

    *f.provider.fails_with.lock().unwrap() = Some(ProviderError::Unavailable(
        "the connection dropped during the call".into(),
    ));
    let d = f.gate.submit(&f.bot, deploy("v3")).await.unwrap();
    let cid = d
        .change_id
        .clone()
        .expect("the change is kept for a person");
    assert!(
        d.error.as_deref().unwrap().contains("needs a person"),
        "{d:?}"
    );
    assert_eq!(
        f.store.change(&cid).await.unwrap().unwrap().status,
        ChangeStatus::NeedsAttention
    );
    assert_eq!(f.web().version, "v1", "neither call reached the world");
}
