//! External agents end to end: a Python program on the official MCP SDK, started by the
//! real `ChildLauncher` in the scenario file's directory. A bad target is a tool error the
//! agent reads and survives; an agent that exits, or crashes without exiting, is not
//! waited for turn after turn.
#![cfg(test)]
#![allow(clippy::unwrap_used, reason = "test helpers unwrap")]

use airlock_prove::{ChildLauncher, Mode, RunOptions, RunResult, Scenario, run};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// One agent, three behaviours (`argv[1]`): `tool-errors` makes a call with an unknown
/// service, one with a malformed address and a good one, writes what it got to
/// `results.json` in its working directory and plays on to the end; `exit` exits with
/// status 3 at its first turn; `crash` calls a tool that does not exist at its first turn,
/// and the SDK's exception kills its session without ending the process.
const AGENT: &str = r#"
import json, os, sys
import anyio
from mcp.client.session import ClientSession
from mcp.server.stdio import stdio_server

MODE = sys.argv[1]

async def main():
    async with stdio_server() as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            turn = (await session.call_tool("observe", {})).structured_content or {}
            if MODE == "exit":
                os._exit(3)
            if MODE == "crash":
                await session.call_tool("no_such_tool", {})
            got = {}
            for name, target in [("unknown", "nope"), ("malformed", "service/Not Valid!"), ("good", "web")]:
                r = await session.call_tool("sim_scale", {"target": target, "replicas": 3})
                got[name] = {"is_error": bool(r.is_error),
                             "text": " ".join(getattr(c, "text", "") for c in r.content)}
            with open("results.json", "w") as f:
                json.dump(got, f)
            while not turn.get("done"):
                turn = (await session.call_tool("next_turn", {})).structured_content or {}

anyio.run(main)
"#;

const SCENARIO: &str = r#"
name = "external"
duration = "2h"
tick = "10s"
assert = ["availability >= 0"]

[agent]
name = "python"
cmd = "python3 agent.py MODE"
turn = "1m"

[[region]]
name = "r"
azs = ["r-a"]

[[service]]
name = "web"
env = "prod"
region = "r"
tier = "critical"
replicas = 2
capacity_rps = 100
demand = { base_rps = 50 }
"#;

/// The scenario as `airlock prove` loads it from `dir`, with the agent beside it.
fn scenario(dir: &Path, mode: &str) -> Scenario {
    std::fs::write(dir.join("agent.py"), AGENT).unwrap();
    let mut s = Scenario::from_toml(&SCENARIO.replace("MODE", mode), "external.toml").unwrap();
    s.origin_dir = Some(dir.to_path_buf());
    s
}

/// Runs it, failing rather than hanging when the run waits on a gone agent.
async fn run_in(s: &Scenario, mode: Mode, turn_timeout: Duration) -> RunResult {
    let journal: Option<Arc<dyn airlock_store::Journal>> = match mode {
        Mode::Guarded => Some(airlock_store::open("sqlite::memory:").await.unwrap()),
        Mode::Unguarded => None,
    };
    let launcher = ChildLauncher;
    let mut opts = RunOptions::new(journal, &|_| {});
    opts.launcher = Some(&launcher);
    opts.turn_timeout = turn_timeout;
    tokio::time::timeout(Duration::from_secs(120), run(s, s.seed, mode, opts))
        .await
        .expect("the run waited on its agent turn after turn")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_target_is_a_tool_error_the_agent_reads_and_survives() {
    for mode in [Mode::Unguarded, Mode::Guarded] {
        let dir = tempfile::tempdir().unwrap();
        let s = scenario(dir.path(), "tool-errors");
        let r = run_in(&s, mode, Duration::from_secs(60)).await;
        // The agent ran in the scenario's directory: its relative `results.json` is there.
        let got: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join("results.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(got["unknown"]["is_error"], true, "{mode:?}: {got}");
        let unknown = got["unknown"]["text"].as_str().unwrap();
        assert!(
            unknown.contains("could not plan this action; nothing was applied")
                && unknown.contains("sim:service/nope"),
            "{mode:?}: {got}"
        );
        assert_eq!(got["malformed"]["is_error"], true, "{mode:?}: {got}");
        assert!(
            got["malformed"]["text"]
                .as_str()
                .unwrap()
                .contains("invalid character"),
            "{mode:?}: {got}"
        );
        assert_eq!(got["good"]["is_error"], false, "{mode:?}: {got}");
        // It played to the end: no timeout, no exit, and its good call was applied.
        let gone: Vec<_> = r
            .timeline
            .iter()
            .filter(|e| e.what == "exited" || e.what == "turn-timeout")
            .collect();
        assert!(gone.is_empty(), "{mode:?}: {gone:?}");
        assert_eq!(r.scorecard.actions_applied, 1, "{mode:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_exits_is_not_waited_for() {
    let dir = tempfile::tempdir().unwrap();
    let s = scenario(dir.path(), "exit");
    // A turn timeout no test could sit out: the exit itself must end the agent's part.
    let r = run_in(&s, Mode::Guarded, Duration::from_secs(3600)).await;
    let exits: Vec<_> = r.timeline.iter().filter(|e| e.what == "exited").collect();
    assert_eq!(exits.len(), 1, "{:?}", r.timeline);
    assert!(exits[0].detail.contains("exit status: 3"), "{:?}", exits[0]);
    assert!(!r.timeline.iter().any(|e| e.what == "turn-timeout"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_crashes_without_exiting_costs_one_turn_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let s = scenario(dir.path(), "crash");
    // 120 turns; waiting 5 s on each would take 10 minutes.
    let r = run_in(&s, Mode::Unguarded, Duration::from_secs(5)).await;
    let lost: Vec<_> = r
        .timeline
        .iter()
        .filter(|e| e.what == "turn-timeout" || e.what == "exited")
        .collect();
    assert_eq!(lost.len(), 1, "{lost:?}");
}
