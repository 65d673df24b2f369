//! Approvals that unblock: an operator's approval of an action the agent carries out itself
//! (a coding agent's command, decided by the hook's `shell` provider) is a one-shot permit
//! bound to the plan hash. The agent's next identical request is allowed once, without
//! spending its budgets again; the one after is held again; another agent, another command
//! or a late retry gets no permit; the kill switch still wins; unanswered hook holds leave
//! the queue with a journal entry. The real `shell` provider, SQLite journal and default
//! pack, on a manual clock.
#![cfg(test)]
#![allow(clippy::unwrap_used, reason = "test code")]

use airlock_core::slo::NoSignals;
use airlock_core::{ActionRequest, EventKind, ManualClock, PolicyEngine, Provider, VerdictKind};
use airlock_gate::{Gate, GateConfig, GateError, Principal, PrincipalKind2};
use airlock_shell::hook::{HookEvent, HookProvider, requests};
use airlock_store::{EventQuery, Journal, SqliteJournal};
use serde_json::json;
use std::sync::Arc;
use tempfile::TempDir;

/// 2026-01-01T00:00:00Z.
const START: i64 = 1_767_225_600_000;

struct Fixture {
    _dir: TempDir,
    clock: ManualClock,
    gate: Arc<Gate>,
    journal: Arc<dyn Journal>,
    alice: Principal,
}

async fn fixture() -> Fixture {
    fixture_with(GateConfig::default()).await
}

async fn fixture_with(config: GateConfig) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let journal: Arc<dyn Journal> =
        Arc::new(SqliteJournal::open(path.to_str().unwrap()).await.unwrap());
    let clock = ManualClock::new(START);
    let providers: Vec<Arc<dyn Provider>> = vec![
        Arc::new(HookProvider::new("shell", "unknown")),
        Arc::new(HookProvider::new("tool", "unknown")),
    ];
    let gate = Arc::new(Gate::new(
        journal.clone(),
        providers,
        // The hook's resources have no health series: nothing is ever read.
        Arc::new(NoSignals),
        Arc::new(PolicyEngine::default_pack().unwrap()),
        Arc::new(clock.clone()),
        config,
    ));
    for agent in ["bot", "bot2"] {
        gate.issue_token(agent, PrincipalKind2::Agent)
            .await
            .unwrap();
    }
    let alice = gate
        .issue_token("alice", PrincipalKind2::Operator)
        .await
        .unwrap();
    let alice = gate.authenticate(&alice).await.unwrap();
    Fixture {
        _dir: dir,
        clock,
        gate,
        journal,
        alice,
    }
}

/// The one request a coding agent's Bash call of `command` maps onto.
fn bash(command: &str) -> ActionRequest {
    let ev = HookEvent {
        session_id: Some("s1".into()),
        cwd: Some("/home/dev/project".into()),
        hook_event_name: "PreToolUse".into(),
        tool_name: "Bash".into(),
        tool_input: json!({ "command": command }),
    };
    let mut r = requests(&ev).unwrap().requests;
    assert_eq!(r.len(), 1, "{command}: {r:?}");
    r.remove(0).0
}

impl Fixture {
    async fn submit(&self, agent: &str, req: &ActionRequest) -> airlock_gate::Decision {
        self.gate.submit_as(agent, req.clone()).await.unwrap()
    }
    async fn approve(&self, apr: &str) -> airlock_gate::Decision {
        self.gate
            .resolve(apr, &self.alice, true, "looked at it")
            .await
            .unwrap()
    }
    /// Holds `req` for `agent` and has alice approve it; the approval's answer.
    async fn held_and_approved(&self, agent: &str, req: &ActionRequest) -> airlock_gate::Decision {
        let held = self.submit(agent, req).await;
        assert_eq!(held.verdict, VerdictKind::Hold, "{held:?}");
        self.approve(held.approval_id.as_deref().unwrap()).await
    }
    fn advance_s(&self, s: i64) {
        self.clock.advance(s * 1000);
    }
}

#[tokio::test]
async fn an_approved_hold_lets_the_agents_retry_through_exactly_once() {
    let f = fixture().await;
    let destroy = bash("terraform destroy -auto-approve");
    let approved = f.held_and_approved("bot", &destroy).await;
    assert_eq!(approved.verdict, VerdictKind::Allow, "{approved:?}");
    assert!(approved.change_id.is_none(), "the gate carries nothing out");
    assert_eq!(approved.result.as_ref().unwrap()["permit"]["agent"], "bot");

    // The retry is allowed (and recorded as the hand-off it is), the one after is held.
    let retry = f.submit("bot", &destroy).await;
    assert_eq!(retry.verdict, VerdictKind::Allow, "{retry:?}");
    let again = f.submit("bot", &destroy).await;
    assert_eq!(again.verdict, VerdictKind::Hold, "{again:?}");

    // The journal names the permit the retry used.
    let verdicts = f
        .journal
        .read(EventQuery {
            kind: Some(EventKind::Verdict),
            action_id: Some(retry.id.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        verdicts[0].payload["permit"],
        json!(approved.approval_id.unwrap())
    );

    // The permitted retry spent no destructive budget (the default is one per hour): a
    // second approved destructive command goes through the same way.
    let wipe = bash("git clean -fdx");
    let approved = f.held_and_approved("bot", &wipe).await;
    assert_eq!(approved.verdict, VerdictKind::Allow, "{approved:?}");
    let retry = f.submit("bot", &wipe).await;
    assert_eq!(retry.verdict, VerdictKind::Allow, "{retry:?}");
}

#[tokio::test]
async fn a_permit_is_bound_to_its_agent_its_plan_and_its_time() {
    let f = fixture().await;
    let destroy = bash("terraform destroy -auto-approve");
    f.held_and_approved("bot", &destroy).await;
    // Another agent asking for the same, and the same agent asking for something else.
    let other_agent = f.submit("bot2", &destroy).await;
    assert_eq!(other_agent.verdict, VerdictKind::Hold, "{other_agent:?}");
    let other_plan = f.submit("bot", &bash("terraform destroy")).await;
    assert_eq!(other_plan.verdict, VerdictKind::Hold, "{other_plan:?}");
    // Past the permit's time (600 s by default) the retry is held again.
    f.advance_s(601);
    let late = f.submit("bot", &destroy).await;
    assert_eq!(late.verdict, VerdictKind::Hold, "{late:?}");
}

#[tokio::test]
async fn the_kill_switch_still_denies_a_permitted_retry_and_the_permit_waits() {
    let f = fixture().await;
    let destroy = bash("terraform destroy -auto-approve");
    f.held_and_approved("bot", &destroy).await;
    f.gate.set_killswitch(true, "alice").await.unwrap();
    let denied = f.submit("bot", &destroy).await;
    assert_eq!(denied.verdict, VerdictKind::Deny, "{denied:?}");
    assert_eq!(denied.reasons, ["killswitch"]);
    f.gate.set_killswitch(false, "alice").await.unwrap();
    let retry = f.submit("bot", &destroy).await;
    assert_eq!(retry.verdict, VerdictKind::Allow, "{retry:?}");
}

#[tokio::test]
async fn an_answered_approval_says_how_it_was_answered() {
    let f = fixture().await;
    let held = f.submit("bot", &bash("git reset --hard HEAD~3")).await;
    let apr = held.approval_id.unwrap();
    f.approve(&apr).await;
    let err = f
        .gate
        .resolve(&apr, &f.alice, true, "again")
        .await
        .unwrap_err();
    assert!(matches!(err, GateError::Conflict(_)), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("already answered"), "{msg}");
    assert!(msg.contains("alice"), "{msg}");
    let err = f
        .gate
        .resolve("apr_never", &f.alice, true, "?")
        .await
        .unwrap_err();
    assert!(matches!(err, GateError::NotFound("approval", _)), "{err}");
}

#[tokio::test]
async fn a_hook_hold_nobody_answers_leaves_the_queue_with_a_journal_entry() {
    let f = fixture().await;
    let held = f
        .submit("bot", &bash("terraform destroy -auto-approve"))
        .await;
    let apr = held.approval_id.unwrap();
    f.advance_s(899);
    assert!(f.gate.expire_holds().await.unwrap().is_empty());
    f.advance_s(2);
    assert_eq!(f.gate.expire_holds().await.unwrap(), vec![apr]);
    assert!(f.gate.approvals().await.is_empty());
    let events = f
        .journal
        .read(EventQuery {
            kind: Some(EventKind::Approval),
            ..Default::default()
        })
        .await
        .unwrap();
    let outcome = events[0].payload["outcome"].as_str().unwrap();
    assert!(outcome.contains("agent's prompt"), "{outcome}");
}

#[tokio::test]
async fn a_report_that_a_command_ran_is_journaled_and_closes_the_hold_it_answered() {
    let f = fixture().await;
    // Allowed, then reported: the `ran` event is the allowing action's.
    let build = bash("git push origin feature-x");
    let allowed = f.submit("bot", &build).await;
    assert_eq!(allowed.verdict, VerdictKind::Allow, "{allowed:?}");
    let r = f.gate.ran("bot", build, Some(true)).await.unwrap();
    assert_eq!(r.action_id.as_deref(), Some(allowed.id.as_str()));
    assert_eq!(r.answered_hold, None);
    // Held, and the person at the prompt let it run: the hold leaves the queue.
    let reset = bash("git reset --hard HEAD~3");
    let held = f.submit("bot", &reset).await;
    let apr = held.approval_id.clone().unwrap();
    let r = f.gate.ran("bot", reset, Some(true)).await.unwrap();
    assert_eq!(r.answered_hold.as_deref(), Some(apr.as_str()));
    assert_eq!(r.action_id.as_deref(), Some(held.id.as_str()));
    assert!(f.gate.approvals().await.is_empty());
    let ran = f
        .journal
        .read(EventQuery {
            kind: Some(EventKind::Ran),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(ran.len(), 2);
    assert_eq!(ran[1].payload["answered_hold"], json!(apr));
    assert_eq!(ran[1].payload["succeeded"], json!(true));
    // Only what the agent runs itself can be reported.
    let mut sim = bash("git status");
    sim.provider = "sim".into();
    assert!(f.gate.ran("bot", sim, None).await.is_err());
}

#[tokio::test]
async fn a_profile_sets_an_agents_limits_and_a_rekey_keeps_it() {
    let coding = airlock_gate::Profile {
        guards: airlock_core::GuardConfig {
            mutations_per_minute: 120,
            ..Default::default()
        },
        anomaly: airlock_gate::AnomalyConfig::default(),
    };
    let f = fixture_with(GateConfig {
        profiles: [("coding".to_string(), coding)].into(),
        ..GateConfig::default()
    })
    .await;
    let coder = f
        .gate
        .issue_token_with_profile("coder", PrincipalKind2::Agent, Some("coding"))
        .await
        .unwrap();
    let plain = f
        .gate
        .issue_token("plain", PrincipalKind2::Agent)
        .await
        .unwrap();
    // Twenty pushes in a minute: over the common limit (12), under the profile's (120).
    let limited = |agent: &'static str, token: String| {
        let gate = f.gate.clone();
        async move {
            let mut limited = 0;
            for i in 0..20 {
                let d = gate
                    .submit(&token, bash(&format!("git push origin feature-{i}")))
                    .await
                    .unwrap();
                limited += usize::from(d.reasons.iter().any(|r| r == "rate-limit"));
            }
            (agent, limited)
        }
    };
    assert_eq!(limited("coder", coder).await, ("coder", 0));
    assert!(limited("plain", plain).await.1 > 0);
    // Re-keyed without a profile, the agent keeps the one it has.
    let again = f
        .gate
        .issue_token("coder", PrincipalKind2::Agent)
        .await
        .unwrap();
    assert_eq!(
        f.journal
            .principal("coder")
            .await
            .unwrap()
            .unwrap()
            .profile
            .as_deref(),
        Some("coding")
    );
    assert!(f.gate.authenticate(&again).await.is_ok());
    // An unknown profile is refused.
    let e = f
        .gate
        .issue_token_with_profile("x", PrincipalKind2::Agent, Some("nope"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("unknown profile `nope`"), "{e}");
}
