//! Injected faults in the server's own parts end in a failure the journal knows, never in a
//! change the journal does not: the sandbox cloud failing to save a change, failing to save
//! a revert, and a signal source that errors.
//!
//! Failpoints are process-wide, so this file holds the tests that set them and runs them
//! one at a time.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers fail loudly on setup errors"
)]

use airlock_core::{ActionRequest, ChangeStatus, EventKind, Verb};
use airlock_gate::{BakeOutcome, PrincipalKind2};
use airlock_server::RawConfig;
use airlock_server::state::AppState;
use airlock_sim::SimHandle;
use airlock_store::EventQuery;
use std::path::Path;

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The world's frame: its agent and region, without services.
const FRAME: &str = r#"
name = "faults"
duration = "1h"

[agent]
name = "cost-cutter"
params = { env = "dev" }

[[region]]
name = "r"
azs = ["r-a", "r-b"]

"#;

/// The one service most tests change.
const WEB: &str = r#"
[[service]]
name = "web"
env = "dev"
region = "r"
replicas = 4
capacity_rps = 100
demand = { base_rps = 100 }
"#;

async fn server(dir: &Path) -> (AppState, SimHandle) {
    server_in(dir, &format!("{FRAME}{WEB}")).await
}

/// A server over `world`, with its store and state file in `dir`.
async fn server_in(dir: &Path, world: &str) -> (AppState, SimHandle) {
    airlock_core::failpoint::clear();
    std::fs::write(dir.join("world.toml"), world).unwrap();
    let text = format!(
        "[store]\nurl = \"{}\"\n[bake]\nwindow_s = 1\n[sim]\nworld = \"world.toml\"\n",
        dir.join("store").join("airlock.db").display()
    );
    let config = RawConfig::parse(&text, "test")
        .unwrap()
        .validate(dir)
        .unwrap();
    let (state, sim) = airlock_server::live::build(&config).await.unwrap();
    (state, sim.unwrap())
}

fn scale(replicas: u32) -> ActionRequest {
    ActionRequest::new(Verb::Scale, "sim:service/web".parse().unwrap()).param("replicas", replicas)
}

fn web(sim: &SimHandle) -> u32 {
    sim.lock().unwrap().desired("web").unwrap().total()
}

fn saved(dir: &Path) -> Option<serde_json::Value> {
    std::fs::read_to_string(dir.join("store").join("sim-state.json"))
        .ok()
        .map(|t| serde_json::from_str(&t).unwrap())
}

async fn kinds(state: &AppState, change: &str) -> Vec<EventKind> {
    state
        .gate
        .journal()
        .read(EventQuery {
            change_id: Some(change.to_string()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect()
}

#[tokio::test]
async fn a_change_the_sandbox_cannot_save_is_not_left_live() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let (state, sim) = server(dir.path()).await;
    let bot = state
        .gate
        .issue_token("bot", PrincipalKind2::Agent)
        .await
        .unwrap();
    airlock_core::failpoint::set("sim.apply.unsaved", "error").unwrap();
    let d = state.gate.submit(&bot, scale(6)).await.unwrap();
    airlock_core::failpoint::clear();

    assert!(d.change_id.is_none(), "{d:?}");
    assert!(
        d.error.as_deref().unwrap().contains("apply failed"),
        "{d:?}"
    );
    assert_eq!(web(&sim), 4, "the unsaved change was put back in memory");
    assert_eq!(saved(dir.path()), None, "nothing was saved");
    let failed = state
        .gate
        .journal()
        .changes_with_status(ChangeStatus::Failed)
        .await
        .unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(
        kinds(&state, &failed[0].id).await,
        [EventKind::Applying, EventKind::ApplyFailed]
    );

    // The same change goes through once saving works again.
    let d = state.gate.submit(&bot, scale(6)).await.unwrap();
    assert!(d.change_id.is_some(), "{d:?}");
    assert_eq!(web(&sim), 6);
    assert_eq!(saved(dir.path()).unwrap()["web"]["replicas"]["r-a"], 3);
}

#[tokio::test]
async fn a_revert_the_sandbox_cannot_save_leaves_the_change_live_and_needs_a_person() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let (state, sim) = server(dir.path()).await;
    let bot = state
        .gate
        .issue_token("bot", PrincipalKind2::Agent)
        .await
        .unwrap();
    let d = state.gate.submit(&bot, scale(6)).await.unwrap();
    let cid = d.change_id.clone().unwrap();
    airlock_core::failpoint::set("sim.restore.unsaved", "error").unwrap();
    let outcome = state.gate.revert(&cid, "alice").await.unwrap();
    airlock_core::failpoint::clear();

    assert!(
        matches!(outcome, BakeOutcome::NeedsAttention { .. }),
        "{outcome:?}"
    );
    assert_eq!(web(&sim), 6, "the world is as saved: still changed");
    assert_eq!(saved(dir.path()).unwrap()["web"]["replicas"]["r-a"], 3);
    let rec = state.gate.journal().change(&cid).await.unwrap().unwrap();
    assert_eq!(rec.status, ChangeStatus::NeedsAttention);
    assert_eq!(
        kinds(&state, &cid).await,
        [
            EventKind::Applying,
            EventKind::Applied,
            EventKind::Reverting,
            EventKind::RevertFailed
        ]
    );
}

#[tokio::test]
async fn a_signal_source_that_fails_is_missing_data_never_a_settled_change() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let (state, _sim) = server(dir.path()).await;
    let bot = state
        .gate
        .issue_token("bot", PrincipalKind2::Agent)
        .await
        .unwrap();
    airlock_core::failpoint::set("signals.read", "error").unwrap();
    let d = state.gate.submit(&bot, scale(6)).await.unwrap();
    let cid = d.change_id.clone().unwrap();
    // The one-second bake window passes with every read failing.
    let mut outcomes = Vec::new();
    for _ in 0..40 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        outcomes.extend(state.gate.poll().await.unwrap());
        if state.gate.baking().await == 0 {
            break;
        }
    }
    airlock_core::failpoint::clear();
    let rec = state.gate.journal().change(&cid).await.unwrap().unwrap();
    assert_ne!(rec.status, ChangeStatus::Settled, "{outcomes:?}");
    assert_eq!(rec.status, ChangeStatus::Unjudged, "{outcomes:?}");
}

/// Changes made at once are saved in groups: every change that reports success is live and
/// in the state file, and every change whose group failed to save is live nowhere, not even
/// when later changes were made on top of the world it was part of.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn changes_saved_together_succeed_or_vanish_together() {
    // The second save fails: whichever changes it covered fail, the others go through.
    group_fate("svc", 12, "sim.save", "2@error").await;
}

/// The same, when the fault strikes between one change and its save (the third change
/// made): the save that would cover it fails, with every change sharing it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fault_before_a_shared_save_fails_every_change_it_covers() {
    group_fate("billing-worker", 9, "sim.apply.unsaved", "3@error").await;
}

/// `count` services scaled at once while `point` fails as `action` says.
async fn group_fate(prefix: &str, count: usize, point: &str, action: &str) {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut world = FRAME.to_string();
    let names: Vec<String> = (0..count).map(|i| format!("{prefix}-{i}")).collect();
    for name in &names {
        world.push_str(&format!(
            "\n[[service]]\nname = \"{name}\"\nenv = \"dev\"\nregion = \"r\"\nreplicas = 4\ncapacity_rps = 100\ndemand = {{ base_rps = 10 }}\n"
        ));
    }
    let (state, sim) = server_in(dir.path(), &world).await;
    let bot = state
        .gate
        .issue_token("bot", PrincipalKind2::Agent)
        .await
        .unwrap();

    airlock_core::failpoint::set(point, action).unwrap();
    let tasks: Vec<_> = names
        .iter()
        .map(|name| {
            let gate = state.gate.clone();
            let bot = bot.clone();
            let req =
                ActionRequest::new(Verb::Scale, format!("sim:service/{name}").parse().unwrap())
                    .param("replicas", 6);
            tokio::spawn(async move { gate.submit(&bot, req).await.unwrap() })
        })
        .collect();
    let mut decided = Vec::new();
    for t in tasks {
        decided.push(t.await.unwrap());
    }
    airlock_core::failpoint::clear();

    // Some save succeeded, so the file exists.
    let file = saved(dir.path()).unwrap();
    let (mut ok, mut failed) = (0, 0);
    for (name, d) in names.iter().zip(&decided) {
        let live = sim.lock().unwrap().desired(name).unwrap().total();
        let on_disk: u64 = file[name]["replicas"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum();
        if d.change_id.is_some() {
            ok += 1;
            assert_eq!((live, on_disk), (6, 6), "{name}: {d:?}");
        } else {
            failed += 1;
            assert!(
                d.error.as_deref().unwrap().contains("apply failed"),
                "{d:?}"
            );
            assert_eq!((live, on_disk), (4, 4), "{name} was put back: {d:?}");
        }
    }
    assert!(failed >= 1, "the failing save covered at least one change");
    assert!(
        ok >= 1,
        "a save that did not fail covered at least one change"
    );
    let journaled = state
        .gate
        .journal()
        .changes_with_status(ChangeStatus::Failed)
        .await
        .unwrap();
    assert_eq!(journaled.len(), failed);
}
