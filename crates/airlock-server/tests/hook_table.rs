//! The hook's command table (`crates/airlock-shell/tests/data/hook_commands.tsv`) through
//! the real hook adapter with the default configuration: a fresh SQLite journal, the
//! default policy pack and the `[hook]` defaults (environment `unknown`, `ask` for holds
//! and for unrecognized commands). Every dangerous command must be answered `ask` or
//! `deny`, every harmless one `allow`. Each row is decided for a fresh agent, so one
//! command's rate limit, blast budget or anomaly score never weighs on the next (those are
//! tested on their own). Prints the confusion table and every miss (`-- --nocapture`).

#![allow(
    clippy::unwrap_used,
    reason = "test setup fails loudly rather than hiding an error"
)]

use airlock_gate::PrincipalKind2;
use airlock_server::RawConfig;
use airlock_server::hook::{HookGate, decide};
use serde_json::json;

/// The table, shared with `airlock-shell`'s classifier test.
const TABLE: &str = include_str!("../../airlock-shell/tests/data/hook_commands.tsv");

/// The agent's working directory in every event.
const CWD: &str = "/home/dev/project";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_the_hook_holds_dangerous_commands_and_allows_harmless_ones() {
    let dir = tempfile::tempdir().unwrap();
    let mut raw = RawConfig::default();
    raw.store.url = dir.path().join("hook.db").display().to_string();
    let config = raw.validate(dir.path()).unwrap();
    let (state, _sim) = airlock_server::live::build(&config).await.unwrap();
    let gate = HookGate::Local(state.door.clone());

    let (mut tp, mut fn_, mut fp, mut tn) = (0u32, 0u32, 0u32, 0u32);
    let mut misses = Vec::new();
    let mut rows = 0;
    for (i, line) in TABLE.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.splitn(3, '\t');
        let (Some(label), Some(class), Some(command)) =
            (fields.next(), fields.next(), fields.next())
        else {
            panic!("line {}: expected label<TAB>class<TAB>command", i + 1);
        };
        let dangerous = match label {
            "dangerous" => true,
            "harmless" => false,
            other => panic!("line {}: unknown label `{other}`", i + 1),
        };
        rows += 1;
        let token = state
            .gate
            .issue_token(&format!("coder-{}", i + 1), PrincipalKind2::Agent)
            .await
            .unwrap();
        let event = json!({
            "session_id": "s",
            "cwd": CWD,
            "hook_event_name": "PreToolUse",
            "tool_name": "Bash",
            "tool_input": {"command": command},
        })
        .to_string();
        let answer = decide(&event, &config.hook, &gate, Some(&token)).await;
        let out = &answer["hookSpecificOutput"];
        let decision = out["permissionDecision"].as_str().unwrap_or("none");
        let held = matches!(decision, "ask" | "deny");
        match (dangerous, held) {
            (true, true) => tp += 1,
            (true, false) => fn_ += 1,
            (false, true) => fp += 1,
            (false, false) => tn += 1,
        }
        let right = if dangerous { held } else { decision == "allow" };
        if !right {
            misses.push(format!(
                "  line {} [{class}] {label} answered `{decision}`: {command}\n      {}",
                i + 1,
                out["permissionDecisionReason"].as_str().unwrap_or("")
            ));
        }
    }
    let recall = f64::from(tp) / f64::from((tp + fn_).max(1));
    let allowed = f64::from(tn) / f64::from((tn + fp).max(1));
    println!("confusion through the hook (rows={rows}):");
    println!("                 ask/deny  allow");
    println!("  dangerous      {tp:8}  {fn_:5}");
    println!("  harmless       {fp:8}  {tn:5}");
    println!("recall of dangerous = {recall:.3}, harmless allowed = {allowed:.3}");
    if !misses.is_empty() {
        println!("misses:\n{}", misses.join("\n"));
    }
    assert!(rows >= 300, "{rows} rows");
    assert!(
        recall >= 0.98,
        "recall {recall:.3}; misses:\n{}",
        misses.join("\n")
    );
    assert!(
        allowed >= 0.98,
        "harmless allowed {allowed:.3}; misses:\n{}",
        misses.join("\n")
    );
}
