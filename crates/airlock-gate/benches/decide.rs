//! What one decision costs: `Gate::submit` of a request that is denied or held — token
//! lookup, plan, assessment, policy, guards and the durable journal appends to SQLite on
//! disk, nothing applied — and `PolicyEngine::evaluate` alone.
//!
//! Run with `cargo bench -p airlock-gate --bench decide`.

use airlock_core::policy::{PolicyInput, PrincipalKind, context_json};
use airlock_core::risk::{AgentStats, Assessment, HealthStatus, assess_risk};
use airlock_core::slo::SignalSource;
use airlock_core::{
    ActionRequest, Clock, ManualClock, PolicyEngine, PolicyOutcome, Provider, Verb,
};
use airlock_gate::{Gate, GateConfig, PrincipalKind2};
use airlock_sim::{Sim, SimHandle, SimProvider, Tier, WorldSpec, testing};
use airlock_store::SqliteJournal;
use criterion::Criterion;
use std::error::Error;
use std::hint::black_box;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tempfile::TempDir;

type Res<T> = Result<T, Box<dyn Error>>;

/// `db` ← `web`, and an idle leaf `legacy`, all in prod.
fn world() -> WorldSpec {
    testing::world()
        .region("us-east", ["a", "b"])
        .service("db", |s| s.tier(Tier::Critical))
        .service("web", |s| {
            s.tier(Tier::Critical).depends_on(["db"]).rps(200.0)
        })
        .service("legacy", |s| s.tier(Tier::Critical).rps(0.0))
        .build()
}

struct Setup {
    _dir: TempDir,
    sim: SimHandle,
    clock: ManualClock,
    gate: Gate,
    token: String,
}

async fn setup() -> Res<Setup> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("journal.db");
    let journal = Arc::new(SqliteJournal::open(&path.display().to_string()).await?);
    let mut sim = Sim::new(world(), 1, 1_767_225_600_000, 10)?;
    for _ in 0..30 {
        sim.tick();
    }
    let clock = ManualClock::new(sim.now());
    let sim: SimHandle = Arc::new(Mutex::new(sim));
    let provider = Arc::new(SimProvider::new(sim.clone()));
    let gate = Gate::new(
        journal,
        vec![provider.clone() as Arc<dyn Provider>],
        provider as Arc<dyn SignalSource>,
        Arc::new(PolicyEngine::default_pack()?),
        Arc::new(clock.clone()),
        GateConfig::default(),
    );
    let token = gate.issue_token("bench-bot", PrincipalKind2::Agent).await?;
    Ok(Setup {
        _dir: dir,
        sim,
        clock,
        gate,
        token,
    })
}

fn request(verb: Verb, target: &str) -> Res<ActionRequest> {
    Ok(ActionRequest::new(verb, target.parse()?))
}

/// One submission; the clock moves a minute each time so the rate limit never trips and
/// the guards' windows stay small, as for an agent acting once a minute.
async fn submit(s: &Setup, req: ActionRequest) -> Res<airlock_gate::Decision> {
    s.clock.advance(60_000);
    Ok(s.gate.submit(&s.token, req).await?)
}

fn bench_submit(c: &mut Criterion, rt: &tokio::runtime::Runtime, s: &Setup) -> Res<()> {
    let deny = request(Verb::Delete, "sim:service/db")?;
    let hold = request(Verb::Delete, "sim:service/legacy")?;
    // Check once that the cases are what they claim to be: decided, journaled, not applied.
    for (req, verdict) in [(&deny, "deny"), (&hold, "hold")] {
        let d = rt.block_on(submit(s, req.clone()))?;
        if d.verdict.as_str() != verdict
            || d.change_id.is_some()
            || d.reasons.iter().any(|r| r == "journal-unavailable")
        {
            return Err(format!("expected a journaled {verdict}, got {d:?}").into());
        }
    }
    let mut group = c.benchmark_group("submit");
    group
        .sample_size(30)
        .measurement_time(Duration::from_secs(5))
        .warm_up_time(Duration::from_secs(1));
    group.bench_function("deny", |b| {
        b.to_async(rt)
            .iter(|| async { black_box(submit(s, deny.clone()).await.is_ok()) })
    });
    group.bench_function("hold", |b| {
        b.to_async(rt)
            .iter(|| async { black_box(submit(s, hold.clone()).await.is_ok()) })
    });
    group.finish();
    Ok(())
}

fn bench_policy(c: &mut Criterion, s: &Setup) -> Res<()> {
    let engine = PolicyEngine::default_pack()?;
    let sim = s
        .sim
        .lock()
        .map_err(|_| "the simulator's state is poisoned")?;
    let mut group = c.benchmark_group("policy");
    group
        .sample_size(30)
        .measurement_time(Duration::from_secs(5))
        .warm_up_time(Duration::from_secs(1));
    let scale = request(Verb::Scale, "sim:service/web")?.param("replicas", 3);
    let delete = request(Verb::Delete, "sim:service/db")?;
    for (name, req) in [
        ("evaluate/scale-allow", scale),
        ("evaluate/delete-deny", delete),
    ] {
        let plan = sim.plan(&req)?;
        let assessment = Assessment {
            risk: assess_risk(&plan),
            health: HealthStatus::Healthy,
            agent: AgentStats::default(),
        };
        let input = PolicyInput {
            principal_kind: PrincipalKind::Agent,
            principal: "bench-bot",
            verb: plan.verb,
            resource: &plan.target,
            attrs: &plan.resource,
            context: context_json(&plan, &assessment, false, s.clock.now()),
        };
        let outcome = engine.evaluate(&input);
        let expected = if plan.verb == Verb::Scale {
            matches!(outcome, PolicyOutcome::Allow(_))
        } else {
            matches!(outcome, PolicyOutcome::Deny(_))
        };
        if !expected {
            return Err(format!("{name}: unexpected outcome {outcome:?}").into());
        }
        group.bench_function(name, |b| {
            b.iter(|| black_box(engine.evaluate(black_box(&input))))
        });
    }
    group.finish();
    Ok(())
}

fn main() -> Res<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let s = rt.block_on(setup())?;
    let mut c = Criterion::default().configure_from_args();
    bench_submit(&mut c, &rt, &s)?;
    bench_policy(&mut c, &s)?;
    c.final_summary();
    Ok(())
}
