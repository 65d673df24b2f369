//! `airlock prove` end to end on scenarios of its own: an external agent's `cmd` runs in
//! the scenario file's directory (`--agent-cmd` where it is typed); each acting agent gets
//! its own row; an incident nobody responded to prints as never detected.
#![cfg(test)]
#![allow(clippy::unwrap_used, reason = "test helpers unwrap")]

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

/// Runs `airlock ARGS` in `cwd`.
fn airlock(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(args)
        .current_dir(cwd)
        .env_remove("AIRLOCK_STORE")
        .env_remove("AIRLOCK_LOG")
        .output()
        .unwrap()
}

fn show(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// An agent on the official MCP Python SDK that leaves `ran-here` in its working
/// directory, scales `web` to 3 at its first turn and plays to the end.
const AGENT: &str = r#"
import anyio
from mcp.client.session import ClientSession
from mcp.server.stdio import stdio_server

async def main():
    open("ran-here", "w").close()
    async with stdio_server() as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            turn = (await session.call_tool("observe", {})).structured_content or {}
            await session.call_tool("sim_scale", {"target": "web", "replicas": 3})
            while not turn.get("done"):
                turn = (await session.call_tool("next_turn", {})).structured_content or {}

anyio.run(main)
"#;

const WORLD: &str = r#"
[[region]]
name = "r"
azs = ["r-a", "r-b"]

[[version]]
name = "v42"
error_rate = 0.08

[[service]]
name = "web"
env = "prod"
region = "r"
tier = "critical"
replicas = 2
capacity_rps = 100
demand = { base_rps = 50 }

[[service]]
name = "api"
env = "prod"
region = "r"
tier = "critical"
replicas = 4
capacity_rps = 100
version = "v41"
demand = { base_rps = 200 }
"#;

#[test]
fn a_scenario_cmd_runs_beside_the_scenario_and_agent_cmd_where_it_is_typed() {
    let dir = tempfile::tempdir().unwrap();
    let scen = dir.path().join("scen");
    std::fs::create_dir(&scen).unwrap();
    std::fs::write(scen.join("agent.py"), AGENT).unwrap();
    let text = format!(
        r#"name = "beside"
duration = "20m"
assert = ["agent.py-agent.applied >= 1", "agent.clock.attempted == 1"]

[agent]
name = "python"
id = "py-agent"
cmd = "python3 agent.py"

[[peer]]
name = "script"
id = "clock"
params = {{ steps = [ {{ at = "5m", verb = "restart", target = "service/api" }} ] }}
{WORLD}"#
    );
    std::fs::write(scen.join("beside.toml"), text).unwrap();
    let out = airlock(
        dir.path(),
        &[
            "prove",
            "scen/beside.toml",
            "--mode",
            "unguarded",
            "--no-baselines",
            "--json",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(scen.join("ran-here").exists(), "{}", show(&out));
    assert!(!dir.path().join("ran-here").exists());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let run = &v["runs"][0];
    assert_eq!(run["agents"]["py-agent"]["applied"], 1, "{run}");
    assert_eq!(run["agents"]["clock"]["applied"], 1, "{run}");
    assert_eq!(
        run["scorecard"]["actions_attempted"], 1,
        "the agent's own: {run}"
    );
    assert!(run["reverted_changes"].is_array(), "{run}");

    // `--agent-cmd` is typed here, so it runs here.
    std::fs::remove_file(scen.join("ran-here")).unwrap();
    let out = airlock(
        dir.path(),
        &[
            "prove",
            "scen/beside.toml",
            "--mode",
            "unguarded",
            "--no-baselines",
            "--agent-cmd",
            "python3 scen/agent.py",
            "--json",
        ],
    );
    // The assertion on `py-agent` is not checked: it no longer acts.
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(dir.path().join("ran-here").exists(), "{}", show(&out));
    assert!(!scen.join("ran-here").exists());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let checks = v["runs"][0]["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 1, "{checks:?}");
}

#[test]
fn the_table_shows_each_agents_row_and_an_undetected_incident_as_never() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"name = "push"
duration = "1h"
tick = "10s"
assert = ["agent.pusher.reverted == 0"]

[agent]
name = "script"
id = "pusher"
params = {{ steps = [ {{ at = "5m", verb = "deploy", target = "service/api", params = {{ version = "v42" }} }} ] }}

[[peer]]
name = "script"
id = "restarter"
params = {{ steps = [ {{ at = "1m", verb = "scale", target = "service/web", params = {{ replicas = 3 }} }} ] }}
{WORLD}"#
    );
    std::fs::write(dir.path().join("push.toml"), text).unwrap();
    let out = airlock(
        dir.path(),
        &["prove", "push.toml", "--no-baselines", "--mode", "both"],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    // Guarded, the bad deploy is reverted: `agent.pusher.reverted == 0` fails there.
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        stdout.contains("FAIL: agent.pusher.reverted == 0"),
        "{}",
        show(&out)
    );
    // Unguarded, nothing ever responds to the errors the deploy causes.
    let unguarded = stdout
        .lines()
        .find(|l| l.contains("unguarded") && l.contains("pusher"))
        .unwrap();
    assert!(unguarded.contains("never"), "{unguarded}");
    for id in ["pusher", "restarter"] {
        assert!(
            stdout
                .lines()
                .any(|l| l.contains(id) && l.contains("guarded") && l.contains("no")),
            "a row for {id}: {}",
            show(&out)
        );
    }
}

/// A do-nothing run whose assertion fails fails `prove`, and the JUnit file says so too:
/// it once left do-nothing runs out, so CI dashboards showed green on exit code 1.
#[test]
fn junit_has_a_failing_case_for_a_failing_do_nothing_run() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"name = "toothless"
duration = "20m"
assert = ["availability >= 0"]
do_nothing_assert = ["incidents >= 1"]

[agent]
name = "noop"
{WORLD}"#
    );
    std::fs::write(dir.path().join("toothless.toml"), text).unwrap();
    let out = airlock(
        dir.path(),
        &[
            "prove",
            "toothless.toml",
            "--mode",
            "guarded",
            "--junit",
            "junit.xml",
        ],
    );
    // Nothing breaks, so `incidents >= 1` fails in the do-nothing run only.
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let xml = std::fs::read_to_string(dir.path().join("junit.xml")).unwrap();
    // The guarded agent run, the reference run and the do-nothing run.
    assert_eq!(xml.matches("<testcase").count(), 3, "{xml}");
    assert_eq!(xml.matches("<failure").count(), 1, "{xml}");
    assert!(xml.contains("tests=\"3\" failures=\"1\""), "{xml}");
    let case = xml
        .split("<testcase")
        .find(|c| c.contains("<failure"))
        .unwrap();
    assert!(
        case.contains("name=\"do-nothing unguarded seed 1\""),
        "{xml}"
    );
    assert!(case.contains("incidents &gt;= 1"), "{xml}");
}
