//! Concurrent decisions with no gate-wide lock: budgets stay exact when mutations of
//! distinct resources race (each allowed mutation spends its budget in the same step
//! that checks it), a budget spent on a change that never lands is given back, and
//! mutations of one resource run one at a time.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers fail loudly on setup errors"
)]

use airlock_core::slo::SignalSource;
use airlock_core::{
    ActionRequest, Applied, Landing, ManualClock, Plan, PolicyEngine, Provider, ProviderError,
    ResourceAddr, Restored, Snapshot, Verb, VerbSpec, VerdictKind,
};
use airlock_gate::{Gate, GateConfig, PrincipalKind2};
use airlock_sim::{Sim, SimHandle, SimProvider, WorldSpec, testing};
use airlock_store::SqliteJournal;
use async_trait::async_trait;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// 2026-01-01T00:00:00Z.
const START: i64 = 1_767_225_600_000;

/// Eight idle, independent dev services.
fn world() -> WorldSpec {
    let mut w = testing::world().region("us-east", ["a", "b"]);
    for i in 0..8 {
        w = w.service(&format!("svc-{i}"), |s| s.env("dev").replicas(2).rps(0.0));
    }
    w.build()
}

/// The sandbox provider, slowed down so decisions overlap, counting how many applies are
/// in flight at once and failing applies to the targets in `fail`.
struct Slow {
    inner: SimProvider,
    delay: Duration,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    /// (target, in flight while applying it) — for the one-at-a-time check.
    per_target: Mutex<Vec<(String, usize)>>,
    active_targets: Mutex<Vec<String>>,
    fail: Mutex<BTreeSet<String>>,
    /// Targets whose plan never returns (an upstream that accepted the call and went quiet).
    hang: Mutex<BTreeSet<String>>,
}

#[async_trait]
impl Provider for Slow {
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
        if self.hang.lock().unwrap().contains(&req.target.to_string()) {
            std::future::pending::<()>().await;
        }
        self.inner.plan(req).await
    }
    async fn snapshot(&self, targets: &[ResourceAddr]) -> Result<Snapshot, ProviderError> {
        self.inner.snapshot(targets).await
    }
    async fn apply(&self, plan: &Plan) -> Result<Applied, ProviderError> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        let target = plan.target.to_string();
        let same = {
            let mut active = self.active_targets.lock().unwrap();
            active.push(target.clone());
            active.iter().filter(|t| **t == target).count()
        };
        self.per_target.lock().unwrap().push((target.clone(), same));
        tokio::time::sleep(self.delay).await;
        let failing = self.fail.lock().unwrap().contains(&target);
        let out = if failing {
            Err(ProviderError::Unavailable("the provider failed".into()))
        } else {
            self.inner.apply(plan).await
        };
        {
            let mut active = self.active_targets.lock().unwrap();
            if let Some(i) = active.iter().position(|t| *t == target) {
                active.remove(i);
            }
        }
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        out
    }
    async fn restore(&self, snap: &Snapshot, expect: &Applied) -> Result<Restored, ProviderError> {
        self.inner.restore(snap, expect).await
    }
    async fn reconcile_apply(
        &self,
        plan: &Plan,
        before: &Snapshot,
    ) -> Result<Landing, ProviderError> {
        self.inner.reconcile_apply(plan, before).await
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    gate: Arc<Gate>,
    provider: Arc<Slow>,
    bot: String,
}

async fn setup(max_destructive: u32) -> Setup {
    setup_with(max_destructive, 1000).await
}

async fn setup_with(max_destructive: u32, mutations_per_minute: u32) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let journal = Arc::new(SqliteJournal::open(path.to_str().unwrap()).await.unwrap());
    let mut sim = Sim::new(world(), 3, START, 10).unwrap();
    sim.tick();
    let clock = ManualClock::new(sim.now());
    let sim: SimHandle = Arc::new(Mutex::new(sim));
    let provider = Arc::new(Slow {
        inner: SimProvider::new(sim.clone()),
        delay: Duration::from_millis(40),
        in_flight: AtomicUsize::new(0),
        max_in_flight: AtomicUsize::new(0),
        per_target: Mutex::new(Vec::new()),
        active_targets: Mutex::new(Vec::new()),
        fail: Mutex::new(BTreeSet::new()),
        hang: Mutex::new(BTreeSet::new()),
    });
    let signals = Arc::new(SimProvider::new(sim)) as Arc<dyn SignalSource>;
    // Policy allows everything: only the guards decide here.
    let policy = PolicyEngine::new(
        "@id(\"all\")\npermit(principal, action, resource);",
        airlock_core::policy::SCHEMA,
    )
    .unwrap();
    let mut config = GateConfig::default();
    config.guards.max_destructive = max_destructive;
    config.guards.mutations_per_minute = mutations_per_minute;
    // Bursts of deletes are what quarantine is for; here only the budget is under test.
    config.anomaly.quarantine = false;
    let gate = Arc::new(Gate::new(
        journal,
        vec![provider.clone() as Arc<dyn Provider>],
        signals,
        Arc::new(policy),
        Arc::new(clock),
        config,
    ));
    let bot = gate
        .issue_token("bot", PrincipalKind2::Agent)
        .await
        .unwrap();
    Setup {
        _dir: dir,
        gate,
        provider,
        bot,
    }
}

fn delete(service: &str) -> ActionRequest {
    ActionRequest::new(
        Verb::Delete,
        format!("sim:service/{service}").parse().unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_mutations_on_distinct_resources_never_overspend_a_budget() {
    let s = setup(2).await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (gate, token) = (s.gate.clone(), s.bot.clone());
        tasks.push(tokio::spawn(async move {
            gate.submit(&token, delete(&format!("svc-{i}"))).await
        }));
    }
    let mut applied = 0;
    let mut over_budget = 0;
    for t in tasks {
        let d = t.await.unwrap().unwrap();
        match d.verdict {
            VerdictKind::Allow => {
                assert!(d.change_id.is_some(), "{d:?}");
                applied += 1;
            }
            VerdictKind::Deny => {
                assert_eq!(d.reasons, vec!["blast-budget-destructive"], "{d:?}");
                over_budget += 1;
            }
            VerdictKind::Hold => panic!("nothing here holds: {d:?}"),
        }
    }
    assert_eq!(applied, 2, "exactly the destructive budget is spent");
    assert_eq!(over_budget, 6);
    assert!(
        s.provider.max_in_flight.load(Ordering::SeqCst) >= 2,
        "the allowed deletes were applied concurrently, so the budget was really raced"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_submissions_spend_a_rate_limit_exactly() {
    // Every service scaled at once, each request a few more replicas than the last: the
    // first `limit` to arrive pass, whatever arrives while they are being decided.
    let limit = 5;
    let s = setup_with(8, limit).await;
    let mut tasks = Vec::new();
    for i in 0..8u32 {
        let (gate, token) = (s.gate.clone(), s.bot.clone());
        tasks.push(tokio::spawn(async move {
            let req =
                ActionRequest::new(Verb::Scale, format!("sim:service/svc-{i}").parse().unwrap())
                    .param("replicas", 3 + i % 2);
            gate.submit(&token, req).await
        }));
    }
    let (mut allowed, mut limited) = (0, 0);
    for t in tasks {
        let d = t.await.unwrap().unwrap();
        match d.verdict {
            VerdictKind::Allow => allowed += 1,
            VerdictKind::Deny => {
                assert_eq!(d.reasons, vec!["rate-limit"], "{d:?}");
                limited += 1;
            }
            VerdictKind::Hold => panic!("nothing here holds: {d:?}"),
        }
    }
    assert_eq!((allowed, limited), (limit, 8 - limit));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_budget_spent_on_a_change_that_failed_is_given_back() {
    let s = setup(1).await;
    s.provider
        .fail
        .lock()
        .unwrap()
        .insert("sim:service/svc-0".into());
    let d = s.gate.submit(&s.bot, delete("svc-0")).await.unwrap();
    assert_eq!(d.verdict, VerdictKind::Allow);
    assert!(d.change_id.is_none() && d.error.is_some(), "{d:?}");
    let d = s.gate.submit(&s.bot, delete("svc-1")).await.unwrap();
    assert_eq!(
        d.verdict,
        VerdictKind::Allow,
        "the failed delete spent nothing: {d:?}"
    );
    assert!(d.change_id.is_some(), "{d:?}");
    let d = s.gate.submit(&s.bot, delete("svc-2")).await.unwrap();
    assert_eq!(d.verdict, VerdictKind::Deny, "the landed delete did: {d:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mutations_of_one_resource_run_one_at_a_time() {
    let s = setup(100).await;
    let mut tasks = Vec::new();
    for replicas in [3u32, 4, 5, 6] {
        let (gate, token) = (s.gate.clone(), s.bot.clone());
        let req = ActionRequest::new(Verb::Scale, "sim:service/svc-0".parse().unwrap())
            .param("replicas", replicas);
        tasks.push(tokio::spawn(async move { gate.submit(&token, req).await }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let seen = s.provider.per_target.lock().unwrap().clone();
    assert!(!seen.is_empty());
    assert!(
        seen.iter().all(|(_, same)| *same == 1),
        "two applies of one resource overlapped: {seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_provider_call_that_never_returns_stalls_only_its_own_resource() {
    let s = setup(100).await;
    s.provider
        .hang
        .lock()
        .unwrap()
        .insert("sim:service/svc-3".into());
    let stuck = {
        let (gate, token) = (s.gate.clone(), s.bot.clone());
        tokio::spawn(async move { gate.submit(&token, delete("svc-3")).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let other = s
        .gate
        .issue_token("other", PrincipalKind2::Agent)
        .await
        .unwrap();
    // Another agent's mutation and read on other resources, and an operator's view, go
    // through while the provider sits on svc-3's plan (until the provider timeout, 10 s).
    let others = async {
        let scale = ActionRequest::new(Verb::Scale, "sim:service/svc-4".parse().unwrap())
            .param("replicas", 3);
        let a = s.gate.submit(&other, scale).await.unwrap();
        let b = s
            .gate
            .submit(
                &other,
                ActionRequest::new(Verb::Read, "sim:service/svc-5".parse().unwrap()),
            )
            .await
            .unwrap();
        (a, b, s.gate.approvals().await, s.gate.killswitch().await)
    };
    let (a, b, holds, kill) = tokio::time::timeout(Duration::from_secs(5), others)
        .await
        .expect("other resources waited on the stalled provider");
    assert_eq!(a.verdict, VerdictKind::Allow, "{a:?}");
    assert!(a.change_id.is_some(), "{a:?}");
    assert_eq!(b.verdict, VerdictKind::Allow, "{b:?}");
    assert!(holds.is_empty() && !kill);
    assert!(!stuck.is_finished(), "the stalled plan is still waiting");
    stuck.abort();
}
