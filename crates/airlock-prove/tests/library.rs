//! The shipped scenario library: every file validates; every scenario's reference run
//! passes its assertions and its do-nothing run shows what it says the faults alone do,
//! for each of its seeds; runs are reproducible byte for byte.
#![cfg(test)]

use airlock_prove::{Cast, Mode, RunOptions, RunResult, Scenario, run};
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn files(dir: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    out.sort();
    out
}

fn load(path: &Path) -> Scenario {
    let text = std::fs::read_to_string(path).unwrap();
    Scenario::from_toml(&text, &path.display().to_string())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

async fn run_as(s: &Scenario, seed: u64, mode: Mode, cast: Cast) -> RunResult {
    let journal: Option<Arc<dyn airlock_store::Journal>> = match mode {
        Mode::Guarded => Some(airlock_store::open("sqlite::memory:").await.unwrap()),
        Mode::Unguarded => None,
    };
    let mut opts = RunOptions::new(journal, &|_| {});
    opts.cast = cast;
    run(s, seed, mode, opts).await.unwrap()
}

#[test]
fn every_scenario_and_example_validates() {
    let scenarios = files("scenarios");
    assert!(
        scenarios.len() >= 12,
        "the library has {} scenarios",
        scenarios.len()
    );
    for p in scenarios.iter().chain(&files("examples")) {
        let s = load(p);
        assert_eq!(
            p.file_stem().unwrap().to_string_lossy(),
            s.name,
            "a scenario file is named after its scenario"
        );
    }
}

#[test]
fn the_library_covers_what_agents_get_wrong() {
    let all: Vec<Scenario> = files("scenarios").iter().map(|p| load(p)).collect();
    let has = |f: &dyn Fn(&Scenario) -> bool| all.iter().any(f);
    use airlock_sim::FaultKind::*;
    for kind in [AzOutage, DependencySlowdown, MetricBlackout] {
        assert!(
            has(&|s| s.faults.iter().any(|f| f.kind == kind)),
            "{kind:?}"
        );
    }
    assert!(has(&|s| !s.peers.is_empty()), "two agents at once");
    assert!(
        has(&|s| s.control && s.faults.is_empty()),
        "a no-fault control"
    );
    assert!(has(&|s| s.agent.name == "runaway"), "a runaway loop");
    assert!(
        has(&|s| s.events.iter().any(|e| e.duration.is_some())),
        "a flash crowd"
    );
    assert!(
        has(&|s| s.versions.iter().any(|v| v.onset.0 > 0)),
        "a delayed regression"
    );
    for s in &all {
        assert!(!s.assertions.is_empty(), "{}: no assertions", s.name);
        assert!(
            !s.do_nothing_assert.is_empty(),
            "{}: no do-nothing checks",
            s.name
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_runs_pass_and_do_nothing_runs_show_the_faults() {
    for p in files("scenarios") {
        let s = load(&p);
        for seed in s.default_seeds() {
            let r = run_as(&s, seed, Mode::Guarded, Cast::Reference).await;
            assert!(
                r.passed,
                "{} seed {seed}: the reference run fails {:?}",
                s.name, r.checks
            );
            let idle = run_as(&s, seed, Mode::Unguarded, Cast::DoNothing).await;
            assert!(
                idle.passed,
                "{} seed {seed}: the do-nothing run fails {:?}",
                s.name, idle.checks
            );
            assert_eq!(idle.scorecard.actions_attempted, 0, "{}", s.name);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_scenario_and_seed_give_a_byte_identical_scorecard() {
    for name in ["two-agents", "dependency-slowdown", "no-fault-control"] {
        let s = load(&root().join(format!("scenarios/{name}.toml")));
        for mode in [Mode::Unguarded, Mode::Guarded] {
            let a = run_as(&s, s.seed, mode, Cast::Agent).await;
            let b = run_as(&s, s.seed, mode, Cast::Agent).await;
            let (ja, jb) = (
                serde_json::to_string(&a.scorecard).unwrap(),
                serde_json::to_string(&b.scorecard).unwrap(),
            );
            assert_eq!(ja, jb, "{name} {mode:?}");
            assert_eq!(
                serde_json::to_string(&a.series).unwrap(),
                serde_json::to_string(&b.series).unwrap()
            );
            let other = run_as(&s, s.seed + 1000, mode, Cast::Agent).await;
            assert_ne!(
                serde_json::to_string(&other.scorecard).unwrap(),
                ja,
                "{name}: another seed, another run"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_no_fault_control_the_guard_blocks_no_legitimate_action() {
    let s = load(&root().join("scenarios/no-fault-control.toml"));
    assert!(s.control && s.faults.is_empty());
    for seed in s.default_seeds() {
        let g = run_as(&s, seed, Mode::Guarded, Cast::Agent).await;
        assert!(g.scorecard.actions_attempted > 10, "the agent works");
        assert!(g.passed, "seed {seed}: {:?}", g.checks);
        assert!(g.scorecard.block_rate <= 0.05, "seed {seed}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misbehaving_agents_are_quarantined_within_twenty_actions_and_normal_ones_never() {
    for name in ["runaway-loop", "salami-attacker"] {
        let s = load(&root().join(format!("scenarios/{name}.toml")));
        assert!(
            !s.peers.is_empty(),
            "{name}: normal agents act under the same load"
        );
        for seed in s.default_seeds() {
            let g = run_as(&s, seed, Mode::Guarded, Cast::Agent).await;
            let c = &g.scorecard;
            assert!(c.agent_quarantined, "{name} seed {seed}: not quarantined");
            let n = c.actions_to_quarantine.unwrap();
            assert!(n <= 20.0, "{name} seed {seed}: {n} actions");
            assert_eq!(c.peers_quarantined, 0, "{name} seed {seed}: a normal peer");
            assert!(g.passed, "{name} seed {seed}: {:?}", g.checks);
            let u = run_as(&s, seed, Mode::Unguarded, Cast::Agent).await;
            assert!(
                !u.scorecard.agent_quarantined,
                "nothing quarantines without the gate"
            );
        }
    }
    let s = load(&root().join("scenarios/no-fault-control.toml"));
    for seed in s.default_seeds() {
        let g = run_as(&s, seed, Mode::Guarded, Cast::Agent).await;
        assert!(!g.scorecard.agent_quarantined && g.scorecard.peers_quarantined == 0);
    }
}

/// Each class of harm the gate models has a scenario whose agent does the harm: unguarded,
/// the run misses its objective; guarded, it passes every assertion (its own agent's
/// included). Classes where the agent is normal (a scaler on small fleets, a release during
/// scaling) pass both ways, and the guard must not get in their way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gate_holds_on_every_class_of_harm_it_models() {
    let harmful = [
        "zone-concentration",
        "environment-delete",
        "night-salami",
        "late-regression",
        "innocent-bystander",
        "blackout-blind-cut",
    ];
    let normal = ["small-fleet-dawn", "rollout-during-scaling"];
    for name in harmful.iter().chain(&normal) {
        let s = load(&root().join(format!("scenarios/{name}.toml")));
        let g = run_as(&s, s.seed, Mode::Guarded, Cast::Agent).await;
        assert!(g.passed, "{name}: guarded {:?}", g.checks);
        let u = run_as(&s, s.seed, Mode::Unguarded, Cast::Agent).await;
        assert_eq!(
            u.passed,
            normal.contains(name),
            "{name}: unguarded {:?}",
            u.checks
        );
    }
}
