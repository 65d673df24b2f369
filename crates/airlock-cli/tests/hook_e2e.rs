//! `airlock hook claude-code` end to end: the real binary fed PreToolUse events on stdin, as
//! a coding agent runs it, deciding through a local gate or a running server.
#![cfg(test)]

mod common;

use common::*;
use serde_json::{Value, json};
use std::process::Command;

/// Runs the hook with `event` on stdin and `vars` in its environment; returns its answer.
async fn hook(env: &Env, event: &str, vars: &[(&str, &str)]) -> Value {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_airlock"));
    cmd.args(["hook", "claude-code", "--config"])
        .arg(&env.config)
        .current_dir(env.dir.path())
        .env_remove("AIRLOCK_URL")
        .env_remove("AIRLOCK_TOKEN")
        .env_remove("AIRLOCK_CONFIG")
        .envs(vars.iter().copied());
    let out = run_with_stdin(cmd, event.to_string()).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    // The protocol: exit 0 and one JSON answer, whatever the decision.
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn bash(command: &str) -> String {
    json!({"session_id": "s-1", "cwd": "/repo", "hook_event_name": "PreToolUse",
           "tool_name": "Bash", "tool_input": {"command": command, "description": "test"}})
    .to_string()
}

fn decision(answer: &Value) -> (&str, &str) {
    let o = &answer["hookSpecificOutput"];
    assert_eq!(o["hookEventName"], "PreToolUse", "{answer}");
    (
        o["permissionDecision"].as_str().unwrap(),
        o["permissionDecisionReason"].as_str().unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn shell_commands_are_classified_decided_and_journaled() {
    let env = Env::new(WORLD, "", 3).await;
    let bot = [("AIRLOCK_TOKEN", env.bot.as_str())];
    for (command, want, because) in [
        ("ls -la && git status", "allow", "allow"),
        ("cargo test --workspace", "allow", "allow"),
        (
            "kubectl delete namespace payments --context prod",
            "ask",
            "prod-destructive-needs-approval",
        ),
        // No environment named: unknown, which counts as prod.
        (
            "bash -c 'C=\"rm -rf\"; $C /'",
            "ask",
            "prod-destructive-needs-approval",
        ),
        (
            "echo 'DROP TABLE users' | psql -d prod_db",
            "ask",
            "prod-destructive-needs-approval",
        ),
        (
            "./deploy.sh --all",
            "ask",
            "not a command Airlock recognizes",
        ),
    ] {
        let a = hook(&env, &bash(command), &bot).await;
        let (got, reason) = decision(&a);
        assert_eq!(got, want, "{command}: {reason}");
        assert!(reason.contains(because), "{command}: {reason}");
        if want == "ask" && because.ends_with("approval") {
            assert!(reason.contains("apr_"), "{command}: {reason}");
        }
    }
    // Other tools: a read goes through, an edit of a prod path is held.
    let read = json!({"hook_event_name": "PreToolUse", "tool_name": "Read", "tool_input": {"file_path": "/repo/a.rs"}});
    assert_eq!(
        decision(&hook(&env, &read.to_string(), &bot).await).0,
        "allow"
    );
    let edit = json!({"hook_event_name": "PreToolUse", "tool_name": "Edit", "tool_input": {"file_path": "/srv/prod/app.yaml"}});
    let a = hook(&env, &edit.to_string(), &bot).await;
    assert_eq!(decision(&a).0, "ask", "{a}");
    // Failing to decide never allows.
    for (event, vars, because) in [
        ("not json", &bot[..], "does not parse"),
        (&bash("ls") as &str, &[][..], "no agent token"),
        (
            &bash("ls"),
            &[("AIRLOCK_TOKEN", "alk_wrong")][..],
            "unknown or revoked token",
        ),
        (
            &bash("ls"),
            &[("AIRLOCK_TOKEN", env.op.as_str())][..],
            "operator",
        ),
        // A call that needs no decision is still answered only for an agent.
        (
            &bash("X=1"),
            &[("AIRLOCK_TOKEN", "alk_wrong")][..],
            "unknown or revoked token",
        ),
        (&bash("X=1"), &[][..], "no agent token"),
        (
            &json!({"hook_event_name": "PreToolUse", "tool_name": "mcp__airlock__sim_delete",
                    "tool_input": {"target": "checkout"}})
            .to_string(),
            &[("AIRLOCK_TOKEN", env.op.as_str())][..],
            "operator",
        ),
    ] {
        let a = hook(&env, event, vars).await;
        let (got, reason) = decision(&a);
        assert_eq!(got, "deny", "{event}: {reason}");
        assert!(reason.contains(because), "{event}: {reason}");
    }
    // A secret on the command line reaches the agent's shell, not the journal.
    let a = hook(
        &env,
        &bash("PGPASSWORD=hunter2 psql -d app -c 'select 1'"),
        &bot,
    )
    .await;
    assert_eq!(decision(&a).0, "allow", "{a}");
    // Every decision is in the journal, as the agent, with the command.
    let events = env.journal().await;
    let text = serde_json::to_string(&events).unwrap();
    let shell_requests = events
        .iter()
        .filter(|e| e["kind"] == "request" && e["payload"]["request"]["provider"] == "shell")
        .count();
    // `ls -la && git status` (reads fold into one request), cargo test, kubectl, rm, echo,
    // psql, deploy.sh, psql
    assert_eq!(shell_requests, 8, "{text}");
    assert!(!text.contains("hunter2"), "a secret reached the journal");
    assert!(text.contains("PGPASSWORD=[redacted] psql"), "{text}");
    assert!(events.iter().any(|e| {
        e["kind"] == "verdict"
            && e["agent"] == "bot"
            && e["payload"]["reasons"] == json!(["prod-destructive-needs-approval"])
            && e["payload"]["details"][0]
                .as_str()
                .is_some_and(|d| d.contains("environment `unknown`"))
    }));
    env.airlock(&["journal", "verify", "--store", &env.store()])
        .await
        .code(0);
}

#[tokio::test(flavor = "multi_thread")]
async fn in_prod_unknown_commands_are_denied_and_holds_can_stop_the_agent() {
    let env = Env::new(
        WORLD,
        "[hook]\ndefault_env = \"prod\"\nunknown = \"allow\"\non_hold = \"deny\"\n",
        3,
    )
    .await;
    let bot = [("AIRLOCK_TOKEN", env.bot.as_str())];
    let a = hook(&env, &bash("./migrate.py --apply"), &bot).await;
    let (got, reason) = decision(&a);
    assert_eq!(got, "deny", "{reason}");
    assert!(reason.contains("in prod"), "{reason}");
    let a = hook(&env, &bash("helm uninstall payments"), &bot).await;
    let (got, reason) = decision(&a);
    assert_eq!(got, "deny", "{reason}");
    assert!(reason.contains("held as apr_"), "{reason}");
    assert_eq!(
        decision(&hook(&env, &bash("kubectl get pods"), &bot).await).0,
        "allow"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn with_airlock_url_holds_wait_in_the_running_server() {
    let env = Env::new(WORLD, "", 3).await;
    let server = env.serve(&[]).await;
    let url = server.url.clone();
    let vars = [
        ("AIRLOCK_TOKEN", env.bot.as_str()),
        ("AIRLOCK_URL", url.as_str()),
    ];
    let a = hook(&env, &bash("terraform destroy -auto-approve"), &vars).await;
    let (got, reason) = decision(&a);
    assert_eq!(got, "ask", "{reason}");
    let approvals = server.get("/v1/approvals", &env.op).await;
    let held = &approvals["items"][0];
    assert_eq!(held["agent"], "bot", "{approvals}");
    assert_eq!(held["request"]["provider"], "shell", "{approvals}");
    assert!(
        reason.contains(held["id"].as_str().unwrap()),
        "{reason} vs {approvals}"
    );
    // A server that is gone is a deny, not an allow.
    drop(server);
    let a = hook(&env, &bash("ls"), &vars).await;
    let (got, reason) = decision(&a);
    assert_eq!(got, "deny", "{reason}");
    assert!(reason.contains("cannot reach"), "{reason}");
}

/// The agent's answer to a PostToolUse event: it ran.
fn ran(command: &str) -> String {
    json!({"session_id": "s-1", "cwd": "/repo", "hook_event_name": "PostToolUse",
           "tool_name": "Bash", "tool_input": {"command": command, "description": "test"},
           "tool_response": {"stdout": "", "stderr": "", "interrupted": false}})
    .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_approved_hold_lets_the_agents_retry_through_once_and_post_tool_use_closes_the_loop() {
    let env = Env::new(WORLD, "", 3).await;
    let server = env.serve(&[]).await;
    let url = server.url.clone();
    let vars = [
        ("AIRLOCK_TOKEN", env.bot.as_str()),
        ("AIRLOCK_URL", url.as_str()),
    ];
    // No environment named: the destroy is held, and the answer says why and what passes.
    let destroy = "terraform destroy -auto-approve";
    let (got, reason) = decision(&hook(&env, &bash(destroy), &vars).await).to_owned_pair();
    assert_eq!(got, "ask", "{reason}");
    assert!(reason.contains("environment `unknown`"), "{reason}");
    assert!(reason.contains("Would pass"), "{reason}");
    let approvals = server.get("/v1/approvals", &env.op).await;
    let apr = approvals["items"][0]["id"].as_str().unwrap().to_string();
    env.operator(&server, &["approve", &apr]).await.code(0);
    // Approving again says it was already answered, and by whom.
    let again = env.operator(&server, &["approve", &apr]).await;
    assert_ne!(again.code, Some(0));
    assert!(
        (again.stdout.clone() + &again.stderr).contains("already answered"),
        "{} {}",
        again.stdout,
        again.stderr
    );
    // The retry goes through once; the one after is held again.
    let (got, reason) = decision(&hook(&env, &bash(destroy), &vars).await).to_owned_pair();
    assert_eq!(got, "allow", "{reason}");
    let (got, reason) = decision(&hook(&env, &bash(destroy), &vars).await).to_owned_pair();
    assert_eq!(got, "ask", "{reason}");
    // The person at the prompt let that one run: PostToolUse says so, and the hold nobody
    // here will answer leaves the queue.
    let a = hook(&env, &ran(destroy), &vars).await;
    assert_eq!(a, json!({}));
    let approvals = server.get("/v1/approvals", &env.op).await;
    assert_eq!(approvals["items"], json!([]), "{approvals}");
    let events = env.journal().await;
    let ran: Vec<&Value> = events.iter().filter(|e| e["kind"] == "ran").collect();
    assert_eq!(ran.len(), 1, "{events:?}");
    assert!(
        ran[0]["payload"]["answered_hold"].is_string(),
        "{:?}",
        ran[0]
    );
    assert!(events.iter().any(|e| e["kind"] == "approval"
        && e["payload"]["outcome"] == "answered at the agent's prompt: it ran"));
}

#[tokio::test(flavor = "multi_thread")]
async fn over_http_an_approved_tool_call_is_allowed_once_then_held_again() {
    let env = Env::new(WORLD, "", 3).await;
    let server = env.serve(&[]).await;
    let call = json!({"provider": "tool", "verb": "delete", "target": "tool:mcp/github.delete_repo",
        "params": {"tool_name": "mcp__github__delete_repo", "tool_input": {"repo": "web"}},
        "intent": "remove the old repository"});
    let (status, held) = server.post("/v1/actions", &env.bot, &call).await;
    assert_eq!(status, 202, "{held}");
    let apr = held["approval_id"].as_str().unwrap();
    let (status, approved) = server
        .post(
            &format!("/v1/approvals/{apr}"),
            &env.op,
            &json!({"decision": "approve", "reason": "ok"}),
        )
        .await;
    assert_eq!(status, 200, "{approved}");
    assert_eq!(approved["result"]["permit"]["agent"], "bot", "{approved}");
    let (status, retry) = server.post("/v1/actions", &env.bot, &call).await;
    assert_eq!(
        (status, retry["verdict"].as_str()),
        (200, Some("allow")),
        "{retry}"
    );
    let (status, again) = server.post("/v1/actions", &env.bot, &call).await;
    assert_eq!(
        (status, again["verdict"].as_str()),
        (202, Some("hold")),
        "{again}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_coding_agent_edits_a_hundred_files_in_a_minute_unhindered_and_unfreeze_releases_it() {
    let env = Env::new(WORLD, "", 3).await;
    let store = env.store();
    let coder = env
        .airlock(&[
            "token",
            "create",
            "--agent",
            "coder",
            "--profile",
            "coding",
            "--store",
            &store,
        ])
        .await
        .code(0)
        .stdout
        .trim()
        .to_string();
    let server = env.serve(&[]).await;
    let url = server.url.clone();
    let vars = [
        ("AIRLOCK_TOKEN", coder.as_str()),
        ("AIRLOCK_URL", url.as_str()),
    ];
    for i in 0..100 {
        let edit = json!({"session_id": "s-1", "cwd": "/repo", "hook_event_name": "PreToolUse",
            "tool_name": "Edit", "tool_input": {"file_path": format!("/repo/src/m{i}.rs"),
            "old_string": "a", "new_string": "b"}});
        let (got, reason) = decision(&hook(&env, &edit.to_string(), &vars).await).to_owned_pair();
        assert_eq!(got, "allow", "edit {i}: {reason}");
    }
    let agent = server.get("/v1/agents/coder", &env.op).await;
    assert!(agent["breaker"].is_null(), "{agent}");
    // An operator freezes it: held. Unfrozen, it works again at once.
    env.operator(&server, &["freeze", "coder"]).await.code(0);
    let edit = json!({"session_id": "s-1", "cwd": "/repo", "hook_event_name": "PreToolUse",
        "tool_name": "Edit", "tool_input": {"file_path": "/repo/src/lib.rs"}});
    let (got, reason) = decision(&hook(&env, &edit.to_string(), &vars).await).to_owned_pair();
    assert_eq!(got, "ask", "{reason}");
    assert!(reason.contains("breaker-open"), "{reason}");
    env.operator(&server, &["unfreeze", "coder"]).await.code(0);
    let (got, reason) = decision(&hook(&env, &edit.to_string(), &vars).await).to_owned_pair();
    assert_eq!(got, "allow", "{reason}");
}

trait OwnedPair {
    fn to_owned_pair(self) -> (String, String);
}

impl OwnedPair for (&str, &str) {
    fn to_owned_pair(self) -> (String, String) {
        (self.0.to_string(), self.1.to_string())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn with_airlock_url_a_config_that_does_not_load_is_a_deny_not_the_defaults() {
    // `on_hold = "allow"` is refused: silently using the defaults instead would hide that.
    // The hook reads only `[hook]` when a server decides, but the whole file must parse.
    for (config, named) in [
        ("[hook]\non_hold = \"allow\"\n", "hook.on_hold"),
        ("[guards]\nmutations_per_minut = 5\n", "mutations_per_minut"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("airlock.toml"), config).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_airlock"));
        cmd.args(["hook", "claude-code"])
            .current_dir(dir.path())
            .env_remove("AIRLOCK_CONFIG")
            .env("AIRLOCK_URL", "http://127.0.0.1:9")
            .env("AIRLOCK_TOKEN", "alk_any");
        let out = run_with_stdin(cmd, bash("ls")).await;
        assert_eq!(out.status.code(), Some(0));
        let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
        let (got, reason) = decision(&answer);
        assert_eq!(got, "deny", "{reason}");
        assert!(reason.contains(named), "{reason}");
    }
}

/// An approval of a command the agent runs itself outlives the server: after a restart the
/// agent's identical retry is still allowed once, and only once.
#[tokio::test(flavor = "multi_thread")]
async fn an_approved_command_is_still_allowed_once_after_a_restart() {
    let env = Env::new(WORLD, "", 3).await;
    let mut server = env.serve(&[]).await;
    let url = server.url.clone();
    let vars = [
        ("AIRLOCK_TOKEN", env.bot.as_str()),
        ("AIRLOCK_URL", url.as_str()),
    ];
    let destroy = "terraform destroy -auto-approve";
    let (got, reason) = decision(&hook(&env, &bash(destroy), &vars).await).to_owned_pair();
    assert_eq!(got, "ask", "{reason}");
    let approvals = server.get("/v1/approvals", &env.op).await;
    let apr = approvals["items"][0]["id"].as_str().unwrap().to_string();
    env.operator(&server, &["approve", &apr]).await.code(0);
    assert_eq!(server.stop().await, Some(0), "{}", server.log());
    drop(server);

    let server = env.serve(&[]).await;
    let vars = [
        ("AIRLOCK_TOKEN", env.bot.as_str()),
        ("AIRLOCK_URL", server.url.as_str()),
    ];
    let (got, reason) = decision(&hook(&env, &bash(destroy), &vars).await).to_owned_pair();
    assert_eq!(got, "allow", "{reason}");
    let (got, reason) = decision(&hook(&env, &bash(destroy), &vars).await).to_owned_pair();
    assert_eq!(got, "ask", "used once: {reason}");
}
