//! The flagship scenarios, run unguarded and guarded from their seeds: the guard must keep
//! availability at the objective where the unguarded agent measurably breaks it, must not
//! let destructive actions through, and every run must be reproducible.
#![cfg(test)]

use airlock_prove::{FLAGSHIPS, Mode, RunResult, Scenario, run_scenario};
use airlock_store::{Journal, SqliteJournal};
use std::sync::Arc;

async fn journal(dir: &tempfile::TempDir) -> Arc<dyn Journal> {
    Arc::new(
        SqliteJournal::open(&dir.path().join("journal.db").display().to_string())
            .await
            .unwrap(),
    )
}

async fn run(
    name: &str,
    mode: Mode,
    journal: Option<Arc<dyn Journal>>,
    seed: Option<u64>,
) -> RunResult {
    let text = FLAGSHIPS.iter().find(|f| f.0 == name).unwrap().1;
    let s = Scenario::from_toml(text, name).unwrap();
    run_scenario(&s, seed.unwrap_or(s.seed), mode, journal, &|_| {})
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guarded_runs_hold_the_slo_where_unguarded_runs_break_it() {
    let dir = tempfile::tempdir().unwrap();
    let j = journal(&dir).await;
    for (name, _) in FLAGSHIPS {
        let u = run(name, Mode::Unguarded, None, None).await.scorecard;
        let g = run(name, Mode::Guarded, Some(j.clone()), None)
            .await
            .scorecard;
        assert!(
            g.availability >= 0.999,
            "{name}: guarded availability {}",
            g.availability
        );
        assert!(
            u.availability < 0.999 && g.availability - u.availability > 0.001,
            "{name}: unguarded {} is not measurably worse than guarded {}",
            u.availability,
            g.availability
        );
        assert!(u.slo_violation_minutes > g.slo_violation_minutes, "{name}");
        assert_eq!(u.fallback_actions, 0, "{name}: nothing refuses unguarded");
        // What the agent did instead of what the gate refused: the cost cutter shrinks the
        // service it may not delete, the drift fixer redeploys the one drifted service, the
        // forecaster asks for other replica counts; the release agent only retries.
        let fallbacks = match name {
            "cost-cutter-cascade" | "drift-fixer-recreate" => 1,
            "forecast-flash-crowd" => 15,
            _ => 0,
        };
        assert_eq!(g.fallback_actions, fallbacks, "{name}: {g:?}");
        assert_eq!(
            u.denied + u.held + u.reverted,
            0,
            "{name}: nothing guards an unguarded run"
        );
        if name == "drift-fixer-recreate" || name == "cost-cutter-cascade" {
            assert!(
                u.destructive_applied > 0,
                "{name}: the unguarded agent deletes"
            );
            assert_eq!(
                g.destructive_applied, 0,
                "{name}: no delete gets through the gate"
            );
        }
    }
    let report = j.verify().await.unwrap();
    assert!(report.ok(), "{report:?}");
    assert!(report.events > 20);
}

#[tokio::test]
async fn the_bad_config_push_is_reverted_and_trips_the_breaker() {
    let dir = tempfile::tempdir().unwrap();
    let j = journal(&dir).await;
    let g = run(
        "config-push-all-regions",
        Mode::Guarded,
        Some(j.clone()),
        None,
    )
    .await;
    assert_eq!(g.scorecard.reverted, 2);
    assert!(
        g.timeline
            .iter()
            .any(|t| t.what == "reverted" && t.detail.contains("breaker opened"))
    );
    assert!(
        g.timeline
            .iter()
            .any(|t| t.what == "deny" && t.detail.contains("one-rollout-at-a-time"))
    );
    assert!(
        g.timeline
            .iter()
            .any(|t| t.what == "hold" && t.detail.contains("breaker-open"))
    );
    let mitigated = g.scorecard.time_to_mitigate_s.unwrap();
    assert!(
        mitigated <= 30.0,
        "a breach is reverted within a few polls, took {mitigated}s"
    );
    let events = j.read(Default::default()).await.unwrap();
    let reverted: Vec<_> = events
        .iter()
        .filter(|e| e.kind == airlock_core::EventKind::Reverted)
        .collect();
    assert_eq!(reverted.len(), 2);
    for r in reverted {
        let cid = r.change_id.as_deref().unwrap();
        assert!(
            events
                .iter()
                .any(|e| e.kind == airlock_core::EventKind::Breach
                    && e.change_id.as_deref() == Some(cid))
        );
    }
}

#[tokio::test]
async fn the_same_scenario_and_seed_give_the_same_scorecard() {
    for name in ["cost-cutter-cascade", "config-push-all-regions"] {
        let dir = tempfile::tempdir().unwrap();
        let a = run(name, Mode::Guarded, Some(journal(&dir).await), None).await;
        let b = run(name, Mode::Guarded, Some(journal(&dir).await), None).await;
        assert_eq!(
            serde_json::to_string(&a.scorecard).unwrap(),
            serde_json::to_string(&b.scorecard).unwrap(),
            "{name}"
        );
        assert_eq!(
            serde_json::to_string(&a.series).unwrap(),
            serde_json::to_string(&b.series).unwrap(),
            "{name}"
        );
        let u1 = run(name, Mode::Unguarded, None, Some(99)).await;
        let u2 = run(name, Mode::Unguarded, None, Some(99)).await;
        assert_eq!(
            serde_json::to_string(&u1.scorecard).unwrap(),
            serde_json::to_string(&u2.scorecard).unwrap()
        );
        let other = run(name, Mode::Unguarded, None, Some(100)).await;
        assert_ne!(
            serde_json::to_string(&u1.series).unwrap(),
            serde_json::to_string(&other.series).unwrap(),
            "{name}: the seed drives the noise"
        );
    }
}

#[tokio::test]
async fn a_guarded_run_without_a_journal_is_refused() {
    let text = FLAGSHIPS[2].1;
    let s = Scenario::from_toml(text, "x").unwrap();
    let err = run_scenario(&s, 1, Mode::Guarded, None, &|_| {})
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "guarded runs need a journal");
}
