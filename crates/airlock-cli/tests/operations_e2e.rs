//! What a new operator meets first, end to end with the real binary: where state lives
//! (one rule for every command, errors that name the store or server), `--listen` with a
//! host name, the kill switch's state, `tail` in words, `airlock mcp` and the hook without a
//! server, and the gateway example running as shipped.
#![cfg(test)]

mod common;

use common::*;
use serde_json::{Value, json};
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// `airlock ARGS` in `dir` with exactly these `AIRLOCK_*` variables.
async fn airlock_in(dir: &Path, args: &[&str], vars: &[(&str, &str)]) -> Out {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_airlock"));
    cmd.args(args).current_dir(dir);
    for v in [
        "AIRLOCK_STORE",
        "AIRLOCK_URL",
        "AIRLOCK_TOKEN",
        "AIRLOCK_CONFIG",
        "AIRLOCK_LOG",
    ] {
        cmd.env_remove(v);
    }
    cmd.envs(vars.iter().copied());
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .unwrap();
    Out {
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// Starts `airlock serve ARGS` in `dir` with these variables and waits until `op`'s token
/// is accepted (so the server runs on the store that issued it).
async fn serve_in(dir: &Path, args: &[&str], vars: &[(&str, &str)], op: &str) -> Server {
    for _ in 0..3 {
        let port = free_port();
        let log = dir.join(format!("serve-{port}.log"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_airlock"));
        cmd.arg("serve")
            .args(args)
            .args(["--listen", &format!("localhost:{port}")])
            .current_dir(dir)
            .env_remove("AIRLOCK_STORE")
            .env_remove("AIRLOCK_CONFIG")
            .env("AIRLOCK_LOG", "info")
            .envs(vars.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap());
        let mut server = Server {
            child: cmd.spawn().unwrap(),
            url: format!("http://127.0.0.1:{port}"),
            log,
            http: reqwest::Client::new(),
        };
        if server.wait_ready(op).await {
            return server;
        }
    }
    panic!("airlock serve could not bind a free port in 3 tries");
}

/// A child process killed (by its PID) when the test ends, however it ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Reads a child's stdout lines on a thread, so a test can wait for one with a deadline.
fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Lines until one satisfies `done` (included), for at most 60 s.
fn until(rx: &mpsc::Receiver<String>, done: impl Fn(&str) -> bool) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => {
                let stop = done(&line);
                seen.push(line);
                if stop {
                    return seen;
                }
            }
            Err(e) => panic!("no awaited line ({e}); seen so far:\n{}", seen.join("\n")),
        }
    }
}

/// Regression: `airlock serve` ignored AIRLOCK_STORE while `airlock token create` honoured
/// it, so every request with a fresh token was refused with 401. Also: `--listen` takes a
/// host name, and an answer of 401 names the server that gave it.
#[tokio::test(flavor = "multi_thread")]
async fn serve_and_token_share_the_store_named_by_airlock_store() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let live = d.join("state").join("live.db");
    let env = [("AIRLOCK_STORE", live.to_str().unwrap())];
    let op = airlock_in(d, &["token", "create", "--operator", "op"], &env)
        .await
        .code(0)
        .stdout
        .trim()
        .to_string();
    // `serve_in` listens on `localhost:PORT` and waits until `op`'s token works.
    let server = serve_in(d, &[], &env, &op).await;
    assert!(
        server
            .log()
            .contains(&format!("journal `{}`", live.display())),
        "{}",
        server.log()
    );
    assert!(
        !d.join(".airlock").exists(),
        "serve opened the default store"
    );

    let out = airlock_in(
        d,
        &["approvals", "--url", &server.url, "--token", "alk_nobody"],
        &[],
    )
    .await;
    let out = out.code(2);
    assert!(
        out.stderr
            .contains(&format!("the server at {} answered 401", server.url)),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn listen_refuses_garbage_as_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    for (listen, why) in [
        ("nonsense", "has no port"),
        ("localhost:http", "`http` is not a port"),
        (
            "no-such-host.invalid:7070",
            "cannot resolve `no-such-host.invalid`",
        ),
    ] {
        let out = airlock_in(dir.path(), &["serve", "--listen", listen], &[]).await;
        let out = out.code(2);
        assert!(out.stderr.contains("--listen"), "{out}");
        assert!(out.stderr.contains(why), "{listen}: {out}");
    }
}

/// An operator command against `server` with `op`'s token.
async fn op(env: &Env, server: &Server, args: &[&str]) -> Out {
    let mut all = args.to_vec();
    all.extend(["--url", &server.url, "--token", &env.op]);
    env.airlock(&all).await
}

/// `airlock killswitch` with no argument shows the state; `tail` prints every event as a
/// line of words.
#[tokio::test(flavor = "multi_thread")]
async fn the_kill_switch_shows_its_state_and_tail_reads_in_words() {
    let env = Env::new(WORLD, "", 3).await;
    let server = env.serve(&[]).await;
    let out = op(&env, &server, &["killswitch"]).await;
    assert_eq!(out.code(0).stdout.trim(), "kill switch off");
    let out = op(&env, &server, &["killswitch", "on"]).await;
    assert!(
        out.code(0)
            .stdout
            .starts_with("kill switch on: every mutation is denied")
    );
    let out = op(&env, &server, &["killswitch", "status", "--json"]).await;
    assert_eq!(out.code(0).json(), json!({"killswitch": "on"}));
    // While on, a mutation is denied.
    let (status, v) = server.post("/v1/actions", &env.bot, &scale("web", 5)).await;
    assert_eq!((status, v["verdict"].as_str()), (200, Some("deny")), "{v}");
    let out = op(&env, &server, &["killswitch", "off"]).await;
    assert_eq!(out.code(0).stdout.trim(), "kill switch off");
    let (_, v) = server.post("/v1/actions", &env.bot, &scale("web", 5)).await;
    assert_eq!(v["verdict"], "allow", "{v}");
    // Nobody can read it without a token, and the error says where it asked.
    let out = env.airlock(&["killswitch", "--url", &server.url]).await;
    let out = out.code(2);
    assert!(out.stderr.contains(&server.url), "{out}");

    // Every event so far, as `airlock tail` prints it.
    let mut child = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args([
            "tail",
            "--from",
            "0",
            "--url",
            &server.url,
            "--token",
            &env.op,
        ])
        .env_remove("AIRLOCK_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let rx = lines_of(&mut child);
    let tail = Killed(child);
    let lines = until(&rx, |l| l.contains("kill switch off by op"));
    drop(tail);
    let text = lines.join("\n");
    for want in [
        "operator `op`: token issued",
        "agent `bot`: token issued",
        "kill switch on by op",
        "deny: killswitch",
        "scale sim:service/web",
    ] {
        assert!(text.contains(want), "no `{want}` in:\n{text}");
    }
    assert!(!text.contains("{\""), "an event printed as JSON:\n{text}");
}

/// Speaks MCP over `airlock mcp`'s stdin/stdout: initialize, then one `tools/call`; returns
/// the call's JSON-RPC answer.
fn mcp_call(env: &Env, vars: &[(&str, &str)], tool: &str, arguments: Value) -> Value {
    let mut child = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(["mcp", "--config"])
        .arg(&env.config)
        .current_dir(env.dir.path())
        .env_remove("AIRLOCK_URL")
        .env_remove("AIRLOCK_STORE")
        .env_remove("AIRLOCK_CONFIG")
        .env_remove("AIRLOCK_LOG")
        .envs(vars.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let rx = lines_of(&mut child);
    let guard = Killed(child);
    for msg in [
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "test", "version": "1"}}}),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
               "params": {"name": tool, "arguments": arguments}}),
    ] {
        writeln!(stdin, "{msg}").unwrap();
    }
    stdin.flush().unwrap();
    let lines = until(&rx, |l| {
        serde_json::from_str::<Value>(l).is_ok_and(|v| v["id"] == 2)
    });
    drop(stdin);
    drop(guard);
    serde_json::from_str(lines.last().unwrap()).unwrap()
}

/// Regression: `airlock mcp` without AIRLOCK_URL held an action in its own process and told
/// the agent to run `airlock approve`, which then answered 404. It now says nobody can
/// approve it and how to get approvals; and an unknown token names the store it checked.
#[tokio::test(flavor = "multi_thread")]
async fn mcp_without_a_server_says_nobody_can_approve_and_names_its_store() {
    let env = Env::new(WORLD, "", 3).await;
    let store = env.store();
    let (bot, env_ref) = (env.bot.clone(), &env);
    // `mcp_call` blocks on the child's answers.
    let held = tokio::task::block_in_place(|| {
        mcp_call(
            env_ref,
            &[("AIRLOCK_TOKEN", &bot)],
            "sim_scale",
            json!({"target": "web", "replicas": 20}),
        )
    });
    let result = &held["result"];
    assert_eq!(result["structuredContent"]["verdict"], "hold", "{held}");
    let text = result["content"][0]["text"].as_str().unwrap();
    assert!(text.contains("nobody can approve it"), "{text}");
    assert!(
        text.contains("airlock serve") && text.contains("AIRLOCK_URL"),
        "{text}"
    );
    assert!(!text.contains("An operator can approve it"), "{text}");

    let refused = tokio::task::block_in_place(|| {
        mcp_call(
            env_ref,
            &[("AIRLOCK_TOKEN", "alk_nobody")],
            "sim_scale",
            json!({"target": "web", "replicas": 5}),
        )
    });
    let message = refused["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("unknown or revoked token"), "{refused}");
    assert!(
        message.contains(&format!("(checked store `{store}`)")),
        "{refused}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_hook_without_a_server_names_the_store_that_did_not_know_the_token() {
    let env = Env::new(WORLD, "", 3).await;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_airlock"));
    cmd.args(["hook", "claude-code", "--config"])
        .arg(&env.config)
        .current_dir(env.dir.path())
        .env_remove("AIRLOCK_URL")
        .env_remove("AIRLOCK_STORE")
        .env_remove("AIRLOCK_CONFIG")
        .env("AIRLOCK_TOKEN", "alk_nobody");
    let event = json!({"session_id": "s", "cwd": "/repo", "hook_event_name": "PreToolUse",
        "tool_name": "Bash", "tool_input": {"command": "kubectl delete namespace shop"}});
    let out = run_with_stdin(cmd, event.to_string()).await;
    assert_eq!(out.status.code(), Some(0));
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    let o = &answer["hookSpecificOutput"];
    assert_eq!(o["permissionDecision"], "deny", "{answer}");
    let reason = o["permissionDecisionReason"].as_str().unwrap();
    assert!(reason.contains("unknown or revoked token"), "{reason}");
    assert!(
        reason.contains(&format!("(checked store `{}`)", env.store())),
        "{reason}"
    );
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The gateway example runs as shipped: its upstream servers are in the repository, the
/// notes server is started by Airlock over stdio, the ticket tracker over HTTP is reached,
/// and a hidden tool stays hidden. Needs the official MCP Python SDK (`scripts/test.sh`).
#[tokio::test(flavor = "multi_thread")]
async fn the_gateway_example_serves_both_upstreams() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The example's paths are relative to where `airlock serve` starts: a copy of
    // `examples/mcp` here stands in for the repository root.
    std::fs::create_dir_all(d.join("examples/mcp")).unwrap();
    for f in ["notes_server.py", "tickets_server.py"] {
        std::fs::copy(
            repo().join("examples/mcp").join(f),
            d.join("examples/mcp").join(f),
        )
        .unwrap();
    }
    let port = free_port();
    let example = std::fs::read_to_string(repo().join("examples/config/mcp-gateway.toml")).unwrap();
    assert!(
        example.contains("127.0.0.1:9000"),
        "the example moved its tracker"
    );
    // A held call answers at once here, rather than after the example's minute.
    assert!(
        example.contains("hold_wait_s = 60"),
        "the example changed its hold wait"
    );
    std::fs::write(
        d.join("gateway.toml"),
        example
            .replace("127.0.0.1:9000", &format!("127.0.0.1:{port}"))
            .replace("hold_wait_s = 60", "hold_wait_s = 0"),
    )
    .unwrap();
    let tracker = Killed(
        Command::new("python3")
            .arg(d.join("examples/mcp/tickets_server.py"))
            .args(["--port", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(d.join("tickets.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    let mut up = false;
    for _ in 0..300 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    assert!(
        up,
        "the ticket tracker did not start:\n{}",
        std::fs::read_to_string(d.join("tickets.log")).unwrap_or_default()
    );
    let store = ["--store", "state/airlock.db"];
    let op = airlock_in(
        d,
        &["token", "create", "--operator", "op", store[0], store[1]],
        &[],
    )
    .await
    .code(0)
    .stdout
    .trim()
    .to_string();
    let bot = airlock_in(
        d,
        &["token", "create", "--agent", "bot", store[0], store[1]],
        &[],
    )
    .await
    .code(0)
    .stdout
    .trim()
    .to_string();
    let server = serve_in(
        d,
        &["--config", "gateway.toml", store[0], store[1]],
        &[],
        &op,
    )
    .await;
    let tools = server.get("/v1/tools", &bot).await;
    let names: Vec<&str> = tools["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    for want in [
        "notes_create_note",
        "notes_delete_note",
        "tickets_open_ticket",
        "sim_scale",
    ] {
        assert!(names.contains(&want), "no `{want}` in {names:?}");
    }
    assert!(
        !names.contains(&"tickets_purge_all"),
        "a hidden tool is offered: {names:?}"
    );
    let (status, v) = server
        .post(
            "/v1/tools/tickets_open_ticket",
            &bot,
            &json!({"arguments": {"title": "disk full"}}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["verdict"], "allow", "{v}");
    // Deleting a prod note is held for an operator.
    let (_, v) = server
        .post(
            "/v1/tools/notes_delete_note",
            &bot,
            &json!({"arguments": {"name": "x"}}),
        )
        .await;
    assert_eq!(v["verdict"], "hold", "{v}");
    drop(server);
    drop(tracker);
}
