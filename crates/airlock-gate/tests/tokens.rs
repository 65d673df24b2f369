//! Resolved tokens are remembered for `token_cache_ms`: a token issued, re-keyed or
//! revoked through the gate is read again at once; one revoked by another process on the
//! same journal file stops working once the time is up, and with `0` at once. The real
//! SQLite journal, opened twice, on a manual clock.
#![cfg(test)]
#![allow(clippy::unwrap_used, reason = "test code")]

use airlock_core::slo::NoSignals;
use airlock_core::{ManualClock, PolicyEngine};
use airlock_gate::{Gate, GateConfig, GateError, PrincipalKind2};
use airlock_store::{Journal, SqliteJournal};
use std::sync::Arc;
use tempfile::TempDir;

/// 2026-01-01T00:00:00Z.
const START: i64 = 1_767_225_600_000;

struct Fixture {
    _dir: TempDir,
    clock: ManualClock,
    gate: Gate,
    /// The same file opened again, as `airlock token revoke` or another replica would.
    other: SqliteJournal,
}

async fn fixture(token_cache_ms: u64) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let path = path.to_str().unwrap();
    let journal: Arc<dyn Journal> = Arc::new(SqliteJournal::open(path).await.unwrap());
    let clock = ManualClock::new(START);
    let gate = Gate::new(
        journal,
        Vec::new(),
        Arc::new(NoSignals),
        Arc::new(PolicyEngine::default_pack().unwrap()),
        Arc::new(clock.clone()),
        GateConfig {
            token_cache_ms,
            ..Default::default()
        },
    );
    let other = SqliteJournal::open(path).await.unwrap();
    Fixture {
        _dir: dir,
        clock,
        gate,
        other,
    }
}

impl Fixture {
    async fn issue(&self, name: &str, kind: PrincipalKind2) -> String {
        self.gate.issue_token(name, kind).await.unwrap()
    }
}

fn refused(r: Result<airlock_gate::Principal, GateError>) -> bool {
    matches!(r, Err(GateError::Unauthenticated))
}

#[tokio::test]
async fn a_token_revoked_elsewhere_stops_working_once_the_cache_time_is_up() {
    let f = fixture(1000).await;
    let token = f.issue("bot", PrincipalKind2::Agent).await;
    let who = f.gate.authenticate(&token).await.unwrap();
    assert_eq!(who.name, "bot");
    assert_eq!(who.kind, PrincipalKind2::Agent);

    airlock_gate::revoke_token(&f.other, START, "bot", "cli")
        .await
        .unwrap();
    // Within the cache time the gate has not read the row again.
    f.clock.advance(999);
    assert_eq!(f.gate.authenticate(&token).await.unwrap().name, "bot");
    f.clock.advance(1);
    assert!(refused(f.gate.authenticate(&token).await), "read again");
    // And a refusal is not remembered as one.
    assert!(refused(f.gate.authenticate(&token).await));
    assert!(refused(f.gate.authenticate("not-a-token").await));
}

#[tokio::test]
async fn a_token_revoked_or_rekeyed_through_the_gate_is_read_again_at_once() {
    let f = fixture(60_000).await;
    let bot = f.issue("bot", PrincipalKind2::Agent).await;
    let op = f.issue("op", PrincipalKind2::Operator).await;
    assert_eq!(f.gate.authenticate(&bot).await.unwrap().name, "bot");
    let admin = f.gate.authenticate(&op).await.unwrap();
    assert_eq!(admin.kind, PrincipalKind2::Operator);

    f.gate.revoke("bot", "op").await.unwrap();
    assert!(refused(f.gate.authenticate(&bot).await), "revoked here");
    // The operator's remembered token went with it: read again, still valid.
    assert_eq!(f.gate.authenticate(&op).await.unwrap().name, "op");

    // Re-keyed through the gate: the old token is refused at once, the new one works.
    let op2 = f.issue("op", PrincipalKind2::Operator).await;
    assert!(refused(f.gate.authenticate(&op).await), "re-keyed here");
    assert_eq!(f.gate.authenticate(&op2).await.unwrap().name, "op");
}

#[tokio::test]
async fn without_a_cache_every_request_reads_its_token() {
    let f = fixture(0).await;
    let token = f.issue("bot", PrincipalKind2::Agent).await;
    assert_eq!(f.gate.authenticate(&token).await.unwrap().name, "bot");
    airlock_gate::revoke_token(&f.other, START, "bot", "cli")
        .await
        .unwrap();
    assert!(refused(f.gate.authenticate(&token).await));
}

#[tokio::test]
async fn a_clock_that_steps_back_does_not_keep_a_token_longer() {
    let f = fixture(1000).await;
    let token = f.issue("bot", PrincipalKind2::Agent).await;
    f.clock.advance(5000);
    f.gate.authenticate(&token).await.unwrap();
    airlock_gate::revoke_token(&f.other, START, "bot", "cli")
        .await
        .unwrap();
    // Before the moment the token was read: not trusted, read again.
    f.clock.set(START);
    assert!(refused(f.gate.authenticate(&token).await));
}
