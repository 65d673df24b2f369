//! `/readyz` while the journal's disk is full: 503 as long as writes fail, 200 again once a
//! write succeeds after space returns. The disk "fills" by capping the writer connection's
//! database size (`PRAGMA max_page_count`), so SQLite reports SQLITE_FULL.
// Marks the whole file as test code, so helpers outside `#[test]` fns may unwrap too.
#![cfg(test)]

use airlock_core::slo::NoSignals;
use airlock_core::{EventKind, NewEvent, PolicyEngine};
use airlock_gate::{DoorConfig, FrontDoor, Gate, GateConfig, Notifying, PrincipalKind2};
use airlock_server::{AppState, app};
use airlock_store::{Journal, SqliteJournal};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use std::sync::Arc;
use tower::ServiceExt;

async fn readyz(state: &AppState) -> StatusCode {
    app(state.clone())
        .oneshot(Request::get("/readyz").body(Body::empty()).unwrap())
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn readyz_answers_503_while_the_disk_is_full_and_200_once_writes_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.db");
    let sqlite = Arc::new(SqliteJournal::open(path.to_str().unwrap()).await.unwrap());
    let journal = Arc::new(Notifying::new(sqlite.clone()));
    let policy = Arc::new(
        PolicyEngine::new(
            airlock_core::policy::DEFAULT_POLICIES,
            airlock_core::policy::SCHEMA,
        )
        .unwrap(),
    );
    let gate = Arc::new(Gate::new(
        journal.clone(),
        Vec::new(),
        Arc::new(NoSignals),
        policy,
        Arc::new(airlock_server::live::SystemClock),
        GateConfig::default(),
    ));
    let metrics = Arc::new(airlock_server::metrics::Metrics::default());
    let door = Arc::new(FrontDoor::new(
        gate.clone(),
        journal.clone(),
        Arc::new(airlock_gate::frontdoor::Catalog::native(&[])),
        metrics.clone(),
        DoorConfig::default(),
    ));
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let state = AppState {
        door,
        gate: gate.clone(),
        journal,
        metrics,
        body_limit: 64 * 1024,
        openapi: Arc::new(airlock_server::openapi::openapi()),
        shutdown,
        stop: Arc::new(stop),
        mcp_hosts: Vec::new(),
        sim: None,
        dashboard: None,
    };
    gate.issue_token("bot", PrincipalKind2::Agent)
        .await
        .unwrap();
    assert_eq!(readyz(&state).await, StatusCode::OK);

    // The disk fills up: writes through the gate's journal fail.
    sqlite
        .set_max_page_count(sqlite.page_count().await.unwrap())
        .await
        .unwrap();
    let big = "x".repeat(10_000);
    let mut failed = false;
    for _ in 0..1000 {
        let ev = NewEvent::new(0, EventKind::Alert, serde_json::json!({"fill": big}));
        if gate.journal().append(ev).await.is_err() {
            failed = true;
            break;
        }
    }
    assert!(failed, "the page limit never bit");
    assert_eq!(readyz(&state).await, StatusCode::SERVICE_UNAVAILABLE);
    // Still full: still not ready.
    let ev = NewEvent::new(0, EventKind::Alert, serde_json::json!({"fill": big}));
    let err = gate.journal().append(ev).await.unwrap_err();
    assert!(err.to_string().contains("full"), "{err}");
    assert_eq!(readyz(&state).await, StatusCode::SERVICE_UNAVAILABLE);

    // Space returns: the next write succeeds and readiness with it.
    sqlite.set_max_page_count(1 << 30).await.unwrap();
    gate.issue_token("bot2", PrincipalKind2::Agent)
        .await
        .unwrap();
    assert_eq!(readyz(&state).await, StatusCode::OK);
    let report = sqlite.verify().await.unwrap();
    assert!(report.ok(), "{report:?}");
}
