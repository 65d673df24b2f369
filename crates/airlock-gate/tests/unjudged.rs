//! A bake that never judged a rule on data is `unjudged`, never `settled`: a provider
//! whose resources no signal watches, a service whose series are all missing (with the
//! default `missing = "ignore"`), a service with too little traffic to judge. The change
//! stays live and revertible, and a bake that judged some of its services settles and
//! names the ones it could not judge.
//!
//! Regression tests for "settled can mean never looked at" (an outside review of the bake).
#![cfg(test)]

use airlock_core::slo::{Counters, Sample, SignalSource};
use airlock_core::{
    ActionRequest, Applied, ChangeStatus, EventKind, Landing, ManualClock, Plan, PolicyEngine,
    Provider, ProviderError, ResourceAddr, Restored, Snapshot, Verb, VerbSpec, VerdictKind,
};
use airlock_gate::{BakeConfig, BakeOutcome, Gate, GateConfig, PrincipalKind2};
use airlock_sim::{Sim, SimHandle, SimProvider, Tier, WorldSpec, testing};
use airlock_store::{EventQuery, Journal, SqliteJournal};
use async_trait::async_trait;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

/// 2026-01-01T00:00:00Z.
const START: i64 = 1_767_225_600_000;

/// `db` ← `web` (200 rps) and an idle `legacy`, all in prod.
fn world() -> WorldSpec {
    testing::world()
        .region("us-east", ["a", "b", "c"])
        .service("db", |s| s.rps(200.0))
        .service("web", |s| {
            s.tier(Tier::Critical).depends_on(["db"]).rps(200.0)
        })
        .service("legacy", |s| s.replicas(2).rps(0.0))
        .build()
}

/// The sandbox provider as one whose resources no signal watches (a provider without
/// health series, such as a bucket store).
struct Blind(SimProvider);

#[async_trait]
impl Provider for Blind {
    fn name(&self) -> &str {
        self.0.name()
    }
    fn verbs(&self) -> &[VerbSpec] {
        self.0.verbs()
    }
    async fn plan(&self, req: &ActionRequest) -> Result<Plan, ProviderError> {
        let mut plan = self.0.plan(req).await?;
        plan.blast.watch.clear();
        Ok(plan)
    }
    async fn snapshot(&self, targets: &[ResourceAddr]) -> Result<Snapshot, ProviderError> {
        self.0.snapshot(targets).await
    }
    async fn apply(&self, plan: &Plan) -> Result<Applied, ProviderError> {
        self.0.apply(plan).await
    }
    async fn restore(&self, snap: &Snapshot, expect: &Applied) -> Result<Restored, ProviderError> {
        self.0.restore(snap, expect).await
    }
    async fn reconcile_apply(
        &self,
        plan: &Plan,
        before: &Snapshot,
    ) -> Result<Landing, ProviderError> {
        self.0.reconcile_apply(plan, before).await
    }
}

/// The sandbox's signals with some services' series missing (a scrape gone, a renamed
/// metric): they answer "no data", as every source does for a missing series.
struct Dark {
    inner: SimProvider,
    hidden: Mutex<BTreeSet<String>>,
}

#[async_trait]
impl SignalSource for Dark {
    async fn read(&self, service: &str) -> Result<Option<Counters>, String> {
        if self.hidden.lock().unwrap().contains(service) {
            return Ok(None);
        }
        self.inner.read(service).await
    }
    async fn recent(&self, service: &str, window_s: u64) -> Result<Option<Sample>, String> {
        if self.hidden.lock().unwrap().contains(service) {
            return Ok(None);
        }
        self.inner.recent(service, window_s).await
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    sim: SimHandle,
    clock: ManualClock,
    store: Arc<dyn Journal>,
    gate: Gate,
    signals: Arc<Dark>,
    bot: String,
}

async fn fixture(blind: bool) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let store: Arc<dyn Journal> =
        Arc::new(SqliteJournal::open(path.to_str().unwrap()).await.unwrap());
    let mut sim = Sim::new(world(), 7, START, 10).unwrap();
    for _ in 0..12 {
        sim.tick();
    }
    let clock = ManualClock::new(sim.now());
    let sim: SimHandle = Arc::new(Mutex::new(sim));
    let provider: Arc<dyn Provider> = if blind {
        Arc::new(Blind(SimProvider::new(sim.clone())))
    } else {
        Arc::new(SimProvider::new(sim.clone()))
    };
    let signals = Arc::new(Dark {
        inner: SimProvider::new(sim.clone()),
        hidden: Mutex::new(BTreeSet::new()),
    });
    let config = GateConfig {
        bake: BakeConfig {
            window_s: 60,
            // No watch after the bake: only the bake's own judgement is under test.
            watch_s: 0,
            ..Default::default()
        },
        ..Default::default()
    };
    let gate = Gate::new(
        store.clone(),
        vec![provider],
        signals.clone() as Arc<dyn SignalSource>,
        Arc::new(PolicyEngine::default_pack().unwrap()),
        Arc::new(clock.clone()),
        config,
    );
    let bot = gate
        .issue_token("bot", PrincipalKind2::Agent)
        .await
        .unwrap();
    Fixture {
        _dir: dir,
        sim,
        clock,
        store,
        gate,
        signals,
        bot,
    }
}

impl Fixture {
    /// Submits an allowed scale and returns its change id.
    async fn scale(&self, service: &str, replicas: u32) -> String {
        let req = ActionRequest::new(
            Verb::Scale,
            format!("sim:service/{service}").parse().unwrap(),
        )
        .param("replicas", replicas);
        let d = self.gate.submit(&self.bot, req).await.unwrap();
        assert_eq!(d.verdict, VerdictKind::Allow, "{d:?}");
        d.change_id
            .clone()
            .unwrap_or_else(|| panic!("nothing applied: {d:?}"))
    }

    /// Ticks and polls until a poll reports an outcome (a 60 s bake on 10 s ticks ends by
    /// the sixth).
    async fn outcome(&self) -> BakeOutcome {
        for _ in 0..10 {
            let now = {
                let mut sim = self.sim.lock().unwrap();
                sim.tick();
                sim.now()
            };
            self.clock.set(now);
            let mut outcomes = self.gate.poll().await.unwrap();
            if !outcomes.is_empty() {
                assert_eq!(outcomes.len(), 1, "{outcomes:?}");
                return outcomes.remove(0);
            }
        }
        panic!("no bake outcome within 10 polls");
    }

    /// The change's events after its apply (the write-ahead `applying` left out).
    async fn kinds(&self, change: &str) -> Vec<EventKind> {
        self.store
            .read(EventQuery {
                change_id: Some(change.to_string()),
                ..Default::default()
            })
            .await
            .unwrap()
            .iter()
            .map(|e| e.kind)
            .filter(|k| *k != EventKind::Applying)
            .collect()
    }

    async fn status(&self, change: &str) -> ChangeStatus {
        self.store.change(change).await.unwrap().unwrap().status
    }

    async fn last_payload(&self, change: &str) -> serde_json::Value {
        self.store
            .read(EventQuery {
                change_id: Some(change.to_string()),
                descending: true,
                limit: Some(1),
                ..Default::default()
            })
            .await
            .unwrap()
            .remove(0)
            .payload
    }

    fn replicas(&self, service: &str) -> u32 {
        self.sim.lock().unwrap().desired(service).unwrap().total()
    }
}

fn unjudged(outcome: BakeOutcome, change: &str) -> String {
    match outcome {
        BakeOutcome::Unjudged {
            change_id, reason, ..
        } => {
            assert_eq!(change_id, change);
            reason
        }
        other => panic!("expected `unjudged`, got {other:?}"),
    }
}

#[tokio::test]
async fn a_change_no_signal_watches_ends_unjudged_and_stays_revertible() {
    let f = fixture(true).await;
    let cid = f.scale("web", 3).await;
    let reason = unjudged(f.outcome().await, &cid);
    assert_eq!(
        reason,
        "no signal watches `sim:service/web`: nothing could be judged"
    );
    assert_eq!(f.status(&cid).await, ChangeStatus::Unjudged);
    assert_eq!(
        f.kinds(&cid).await,
        [EventKind::Applied, EventKind::Unjudged]
    );
    assert_eq!(f.last_payload(&cid).await["reason"], reason);
    assert!(
        f.store
            .changes_with_status(ChangeStatus::Settled)
            .await
            .unwrap()
            .is_empty(),
        "never reported as settled"
    );
    assert_eq!(f.gate.baking().await, 0);
    // Live, and an operator can still take it back.
    assert_eq!(f.replicas("web"), 3);
    let back = f.gate.revert(&cid, "alice").await.unwrap();
    assert!(
        matches!(&back, BakeOutcome::Reverted { change_id, .. } if *change_id == cid),
        "{back:?}"
    );
    assert_eq!(f.replicas("web"), 4);
    assert_eq!(f.status(&cid).await, ChangeStatus::Reverted);
}

#[tokio::test]
async fn a_change_whose_series_are_all_missing_ends_unjudged_naming_them() {
    let f = fixture(false).await;
    f.signals.hidden.lock().unwrap().extend(["web".to_string()]);
    // A capacity cut on a service without signals is held; adding capacity is not.
    let cid = f.scale("web", 5).await;
    let reason = unjudged(f.outcome().await, &cid);
    assert_eq!(
        reason,
        "no rule was judged on data in 6 polls: `web` (availability >= 0.999, p99_latency_ms <= 1000): every series missing"
    );
    assert_eq!(f.status(&cid).await, ChangeStatus::Unjudged);
    assert_eq!(
        f.kinds(&cid).await,
        [EventKind::Applied, EventKind::Unjudged]
    );

    // The same change with its series there is judged, and settles.
    f.signals.hidden.lock().unwrap().clear();
    let cid = f.scale("web", 6).await;
    assert!(
        matches!(f.outcome().await, BakeOutcome::Settled { change_id, .. } if change_id == cid)
    );
    assert_eq!(f.status(&cid).await, ChangeStatus::Settled);
    assert_eq!(
        f.last_payload(&cid).await["not_judged"],
        serde_json::Value::Null
    );
}

#[tokio::test]
async fn a_service_too_idle_to_judge_ends_unjudged() {
    let f = fixture(false).await;
    let cid = f.scale("legacy", 3).await;
    let reason = unjudged(f.outcome().await, &cid);
    assert!(
        reason.starts_with("no rule was judged on data in 6 polls: `legacy` (")
            && reason.contains("too few requests (at most 0 in a poll's window, judging from 200)"),
        "{reason}"
    );
    assert_eq!(f.status(&cid).await, ChangeStatus::Unjudged);
}

#[tokio::test]
async fn a_bake_that_judged_one_service_settles_and_names_the_one_it_could_not() {
    let f = fixture(false).await;
    // Scaling the database watches it and the web tier in front of it; the database's
    // series are gone, the web tier's are there.
    f.signals.hidden.lock().unwrap().extend(["db".to_string()]);
    let cid = f.scale("db", 5).await;
    let outcome = f.outcome().await;
    assert!(
        matches!(&outcome, BakeOutcome::Settled { change_id, .. } if *change_id == cid),
        "{outcome:?}"
    );
    let settled = f.last_payload(&cid).await;
    assert_eq!(
        settled["not_judged"],
        serde_json::json!([
            "`db` (availability >= 0.999, p99_latency_ms <= 1000): every series missing"
        ]),
        "{settled}"
    );
}
