//! The MCP gateway end to end, with the official MCP Python SDK as the client (over stdio
//! and streamable HTTP) and as the upstream server Airlock proxies. The fixtures are in
//! `crates/airlock-server/tests/mcp/`; `scripts/test.sh` installs the SDK they need.
#![cfg(test)]

mod common;

use common::*;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../airlock-server/tests/mcp")
}

/// The upstream `notes` server (Python SDK over stdio) as Airlock's config declares it: its
/// notes are `prod`, a created note is undone by deleting it, and two tools are `dev`.
fn upstream_config(state: &std::path::Path) -> String {
    format!(
        r#"
[[upstream]]
name = "notes"
command = ["python3", "{server}", "--state", "{state}"]
env = "prod"
kind = "note"

[upstream.tools.create_note]
resource_arg = "name"
inverse = {{ tool = "delete_note", args = {{ name = "name" }} }}

[upstream.tools.delete_note]
resource_arg = "name"

[upstream.tools.get_note]
resource_arg = "name"
verb = "read"

[upstream.tools.list_notes]
verb = "read"

[upstream.tools.set_secret]
resource_arg = "name"
env = "dev"

[upstream.tools.crash]
env = "dev"
"#,
        server = fixtures().join("upstream_server.py").display(),
        state = state.display()
    )
}

/// Runs the Python SDK client with `ops` on one session; returns one result per op.
async fn client(env: &Env, conn: Vec<String>, ops: Value) -> Vec<Value> {
    let mut cmd = Command::new("python3");
    cmd.arg(fixtures().join("mcp_client.py"))
        .args(conn)
        .current_dir(env.dir.path())
        .env_remove("AIRLOCK_URL")
        .env_remove("AIRLOCK_CONFIG");
    let out = run_with_stdin(cmd, ops.to_string()).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "the MCP client failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"))
}

fn stdio_conn(env: &Env, token: &str, extra_env: &[(&str, &str)]) -> Vec<String> {
    let mut conn = vec![
        "--stdio".to_string(),
        format!(
            "{} mcp --config {}",
            env!("CARGO_BIN_EXE_airlock"),
            env.config.display()
        ),
        "--env".into(),
        format!("AIRLOCK_TOKEN={token}"),
    ];
    for (k, v) in extra_env {
        conn.push("--env".into());
        conn.push(format!("{k}={v}"));
    }
    conn
}

fn http_conn(server: &Server, token: &str) -> Vec<String> {
    vec![
        "--url".into(),
        format!("{}/mcp", server.url),
        "--header".into(),
        format!("Authorization: Bearer {token}"),
    ]
}

fn tool<'a>(tools: &'a Value, name: &str) -> &'a Value {
    tools["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("no tool {name} in {tools}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn over_stdio_a_python_agent_lists_reads_and_is_held_or_denied_with_reasons() {
    let env = Env::new(WORLD, "", 3).await;
    let r = client(
        &env,
        stdio_conn(&env, &env.bot, &[]),
        json!([
            {"op": "list_tools"},
            {"op": "call", "name": "sim_describe", "arguments": {"target": "web"}},
            {"op": "call", "name": "sim_delete", "arguments": {"target": "scratch", "intent": "clean up"}},
            {"op": "call", "name": "sim_scale", "arguments": {"target": "web", "replicas": 1}},
            {"op": "call", "name": "sim_scale", "arguments": {"target": "web", "replicas": "many"}},
            {"op": "call", "name": "sim_nuke", "arguments": {}},
            {"op": "call", "name": "sim_describe", "arguments": {"target": "scratch"}},
        ]),
    )
    .await;
    // Every verb is a tool with a schema and honest annotations.
    let describe = tool(&r[0], "sim_describe");
    assert_eq!(describe["annotations"]["readOnlyHint"], true, "{describe}");
    let delete = tool(&r[0], "sim_delete");
    assert_eq!(delete["annotations"]["destructiveHint"], true, "{delete}");
    assert_eq!(delete["annotations"]["readOnlyHint"], false, "{delete}");
    let scale = tool(&r[0], "sim_scale");
    assert_eq!(
        scale["inputSchema"]["required"],
        json!(["target", "replicas"])
    );
    // A read is allowed and returns the resource.
    assert_eq!(r[1]["isError"], false, "{}", r[1]);
    assert!(
        r[1]["text"].as_str().unwrap().contains("\"name\": \"web\""),
        "{}",
        r[1]
    );
    // A destructive prod action is held, with its approval id and reasons, not applied.
    let held = &r[2];
    assert_eq!(held["isError"], false, "{held}");
    assert_eq!(held["structured"]["verdict"], "hold", "{held}");
    let apr = held["structured"]["approval_id"].as_str().unwrap();
    let text = held["text"].as_str().unwrap();
    assert!(
        text.contains(apr) && text.contains("prod-destructive-needs-approval"),
        "{text}"
    );
    // A capacity cut below the headroom floor is a tool error carrying the reason.
    assert_eq!(r[3]["isError"], true, "{}", r[3]);
    assert!(
        r[3]["text"].as_str().unwrap().contains("headroom-floor"),
        "{}",
        r[3]
    );
    // Arguments that fail the schema are a tool error the model can read and correct
    // (MCP's SEP-1303); an unknown tool is a JSON-RPC error.
    assert_eq!(r[4]["isError"], true, "{}", r[4]);
    assert!(
        r[4]["text"]
            .as_str()
            .unwrap()
            .contains("arguments.replicas: expected integer"),
        "{}",
        r[4]
    );
    assert_eq!(r[5]["error"]["code"], -32602, "{}", r[5]);
    assert!(
        r[5]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown tool `sim_nuke`")
    );
    // The session goes on, and the held delete changed nothing.
    assert_eq!(r[6]["isError"], false, "{}", r[6]);
    assert!(
        r[6]["text"].as_str().unwrap().contains("\"exists\": true"),
        "{}",
        r[6]
    );
    // Everything was journaled as the calling agent, and the chain verifies.
    let events = env.journal().await;
    let verdicts: Vec<&Value> = events
        .iter()
        .filter(|e| e["kind"] == "verdict" && e["agent"] == "bot")
        .collect();
    assert_eq!(verdicts.len(), 4, "{verdicts:?}");
    assert!(
        verdicts
            .iter()
            .any(|e| e["payload"]["verdict"] == "hold" && e["payload"]["approval_id"] == apr)
    );
    env.airlock(&["journal", "verify", "--store", &env.store()])
        .await
        .code(0);
}

#[tokio::test(flavor = "multi_thread")]
async fn over_stdio_lines_that_are_not_json_rpc_get_errors_and_the_session_goes_on() {
    let env = Env::new(WORLD, "", 3).await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(["mcp", "--config"])
        .arg(&env.config)
        .current_dir(env.dir.path())
        .env("AIRLOCK_TOKEN", &env.bot)
        .env_remove("AIRLOCK_URL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let answers = tokio::task::spawn_blocking(move || {
        for line in [
            r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}"#,
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            r#"{this is not json"#,
            r#"{"id":5,"hello":"world"}"#,
            r#"{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"sim_delete","arguments":{"target":42}}}"#,
            r#"{"jsonrpc":"2.0","id":7,"method":"tools/list"}"#,
        ] {
            writeln!(stdin, "{line}").unwrap();
        }
        stdin.flush().unwrap();
        // Read until all four lines are answered (the two refused lines and the two
        // requests, in any order: refusals are written by the line filter, requests
        // by the session), then close stdin: the server exits.
        let mut seen: Vec<Value> = Vec::new();
        for line in BufReader::new(stdout).lines() {
            seen.push(serde_json::from_str(&line.unwrap()).unwrap());
            let answered = |id: i64| seen.iter().any(|v| v["id"] == id);
            let refused = |code: i64| seen.iter().any(|v| v["error"]["code"] == code);
            if answered(6) && answered(7) && refused(-32700) && refused(-32600) {
                break;
            }
        }
        drop(stdin);
        seen
    });
    let answers = tokio::time::timeout(Duration::from_secs(60), answers)
        .await
        .expect("the gateway answered within 60 s")
        .unwrap();
    let by_error = |code: i64| answers.iter().find(|a| a["error"]["code"] == code);
    assert_eq!(by_error(-32700).unwrap()["id"], Value::Null, "{answers:?}");
    assert_eq!(by_error(-32600).unwrap()["id"], 5, "{answers:?}");
    let bad_args = answers.iter().find(|a| a["id"] == 6).unwrap();
    assert_eq!(bad_args["result"]["isError"], true, "{bad_args}");
    let listed = answers.iter().find(|a| a["id"] == 7).unwrap();
    assert!(
        listed["result"]["tools"].as_array().unwrap().len() >= 6,
        "{listed}"
    );
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "{status}");
    // Nothing was applied: no change was recorded.
    assert!(
        env.journal().await.iter().all(|e| e["kind"] != "applied"),
        "a refused call applied something"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn over_http_an_upstream_python_server_is_proxied_gated_journaled_and_revertible() {
    let dir = tempfile::tempdir().unwrap();
    let notes = dir.path().join("notes.json");
    let env = Env::new(WORLD, &upstream_config(&notes), 3).await;
    let server = env.serve(&[]).await;
    let r = client(
        &env,
        http_conn(&server, &env.bot),
        json!([
            {"op": "list_tools"},
            {"op": "call", "name": "notes_create_note", "arguments": {"name": "q3", "text": "plan"}},
            {"op": "call", "name": "notes_get_note", "arguments": {"name": "q3"}},
            {"op": "call", "name": "notes_delete_note", "arguments": {"name": "q3"}},
            {"op": "call", "name": "notes_set_secret", "arguments": {"name": "s", "api_key": "sk-live-4242"}},
            {"op": "call", "name": "notes_create_note", "arguments": {"name": 7}},
            {"op": "call", "name": "notes_crash", "arguments": {}},
            {"op": "call", "name": "notes_list_notes", "arguments": {}},
            {"op": "call", "name": "sim_delete", "arguments": {"target": "scratch"}},
        ]),
    )
    .await;
    // Upstream tools appear under the prefix with their annotations, next to native ones.
    let del = tool(&r[0], "notes_delete_note");
    assert_eq!(del["annotations"]["destructiveHint"], true, "{del}");
    assert_eq!(
        tool(&r[0], "notes_get_note")["annotations"]["readOnlyHint"],
        true
    );
    tool(&r[0], "sim_scale");
    // A reversible create on prod is allowed and forwarded: the upstream's own answer.
    assert_eq!(r[1]["isError"], false, "{}", r[1]);
    assert_eq!(r[1]["text"], "created q3", "{}", r[1]);
    assert_eq!(r[2]["text"], "plan", "{}", r[2]);
    // A destructive prod tool is held: the note is still there.
    assert_eq!(r[3]["structured"]["verdict"], "hold", "{}", r[3]);
    let state: Value = serde_json::from_str(&std::fs::read_to_string(&notes).unwrap()).unwrap();
    assert_eq!(state["q3"], "plan", "{state}");
    // The secret reached the upstream but not the journal.
    assert_eq!(r[4]["text"], "stored", "{}", r[4]);
    // Bad arguments are refused before anything is forwarded, as a tool error.
    assert_eq!(r[5]["isError"], true, "{}", r[5]);
    // An upstream that crashes mid-call is a JSON-RPC error; the next call reconnects.
    assert_eq!(r[6]["error"]["code"], -32603, "{}", r[6]);
    assert!(
        r[6]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("upstream `notes`"),
        "{}",
        r[6]
    );
    assert_eq!(r[7]["isError"], false, "{}", r[7]);
    assert!(r[7]["text"].as_str().unwrap().contains("q3"), "{}", r[7]);
    assert_eq!(r[8]["structured"]["verdict"], "hold", "{}", r[8]);
    // Journaled with arguments, the secret redacted.
    let events = env.journal().await;
    let text = serde_json::to_string(&events).unwrap();
    assert!(
        !text.contains("sk-live-4242"),
        "a secret reached the journal"
    );
    let req = events
        .iter()
        .find(|e| {
            e["kind"] == "request" && e["payload"]["request"]["params"]["tool"] == "set_secret"
        })
        .expect("the proxied call was journaled");
    assert_eq!(
        req["payload"]["request"]["params"]["arguments"],
        json!({"name": "s", "api_key": "[redacted]"})
    );
    // The created note is a change that reverts through its declared inverse.
    assert_eq!(
        r[1]["structured"],
        json!({"result": "created q3"}),
        "{}",
        r[1]
    );
    let change = events
        .iter()
        .find(|e| {
            e["kind"] == "applied"
                && e["payload"]["summary"]
                    .as_str()
                    .is_some_and(|s| s.contains("create_note"))
        })
        .and_then(|e| e["change_id"].as_str())
        .expect("the create was applied as a change")
        .to_string();
    env.operator(&server, &["revert", &change]).await.code(0);
    let state: Value = serde_json::from_str(&std::fs::read_to_string(&notes).unwrap()).unwrap();
    assert!(
        state.get("q3").is_none(),
        "the revert deleted the note: {state}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn http_mcp_needs_an_agent_token_and_stdio_can_go_through_a_running_server() {
    let env = Env::new(WORLD, "", 3).await;
    let server = env.serve(&[]).await;
    // No token: the HTTP endpoint refuses before any MCP happens.
    let resp = server
        .http
        .post(format!("{}/mcp", server.url))
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    // With a token, a call is answered with a JSON body and no session to keep.
    let post = |body: Value| {
        server
            .http
            .post(format!("{}/mcp", server.url))
            .header("accept", "application/json, text/event-stream")
            .bearer_auth(&env.bot)
            .json(&body)
            .send()
    };
    let init = post(
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "raw", "version": "1"}}}),
    )
    .await
    .unwrap();
    assert_eq!(init.status().as_u16(), 200);
    assert!(init.headers().get("mcp-session-id").is_none());
    let resp = post(
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
        "name": "sim_describe", "arguments": {"target": "web"}}}),
    )
    .await
    .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(answer["id"], 2, "{answer}");
    assert_eq!(answer["result"]["isError"], false, "{answer}");
    let stream = server
        .http
        .get(format!("{}/mcp", server.url))
        .header("accept", "text/event-stream")
        .bearer_auth(&env.bot)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status().as_u16(), 405, "no stream without a session");
    // An operator may list but never act as an agent.
    let r = client(
        &env,
        http_conn(&server, &env.op),
        json!([{"op": "call", "name": "sim_describe", "arguments": {"target": "web"}}]),
    )
    .await;
    assert!(
        r[0]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("tools are called by agents"),
        "{}",
        r[0]
    );
    // `airlock mcp` with AIRLOCK_URL sends calls to the server, as the token's agent.
    let r = client(
        &env,
        stdio_conn(&env, &env.bot, &[("AIRLOCK_URL", &server.url)]),
        json!([
            {"op": "list_tools"},
            {"op": "call", "name": "sim_delete", "arguments": {"target": "scratch"}},
            {"op": "call", "name": "sim_scale", "arguments": {"target": "web"}},
        ]),
    )
    .await;
    tool(&r[0], "sim_restart");
    assert_eq!(r[1]["structured"]["verdict"], "hold", "{}", r[1]);
    assert_eq!(r[2]["isError"], true, "{}", r[2]);
    let approvals = server.get("/v1/approvals", &env.op).await;
    assert_eq!(approvals["items"][0]["agent"], "bot", "{approvals}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_held_call_waits_for_the_operator_then_answers_what_happened() {
    let env = Env::new(WORLD, "[mcp]\nhold_wait_s = 30\n", 2).await;
    let server = env.serve(&[]).await;
    let mut conn = http_conn(&server, &env.bot);
    conn.extend(["--timeout".to_string(), "45".to_string()]);
    let call = client(
        &env,
        conn,
        json!([{"op": "call", "name": "sim_delete", "arguments": {"target": "scratch"}}]),
    );
    let approve = async {
        for _ in 0..300 {
            let pending = server.get("/v1/approvals", &env.op).await;
            if let Some(id) = pending["items"][0]["id"].as_str() {
                env.operator(&server, &["approve", id]).await.code(0);
                return id.to_string();
            }
            tokio::time::sleep(POLL).await;
        }
        panic!("the held call never showed up for approval");
    };
    let (r, approved) = tokio::join!(call, approve);
    let answer = &r[0];
    assert_eq!(answer["isError"], false, "{answer}");
    let text = answer["text"].as_str().unwrap();
    assert!(text.contains("Applied as change"), "{text}");
    assert_eq!(answer["structured"]["waited"], "done", "{answer}");
    assert_eq!(
        answer["structured"]["approval_id"],
        approved.as_str(),
        "{answer}"
    );
}

/// A child process killed when the test ends, pass or fail.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The fixture upstream over streamable HTTP on a free port, keeping its notes in `notes`;
/// killed when dropped. Returns its endpoint.
async fn http_upstream(notes: &std::path::Path) -> (Killed, String) {
    let port = free_port();
    let upstream = Killed(
        Command::new("python3")
            .arg(fixtures().join("upstream_server.py"))
            .args([
                "--transport",
                "http",
                "--port",
                &port.to_string(),
                "--state",
            ])
            .arg(notes)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let url = format!("http://127.0.0.1:{port}/mcp");
    let http = reqwest::Client::new();
    let mut up = false;
    for _ in 0..300 {
        if http.get(&url).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    assert!(up, "the upstream did not listen on {url} in 30 s");
    (upstream, url)
}

#[tokio::test(flavor = "multi_thread")]
async fn bench_mcp_times_reads_and_mutations_direct_and_proxied_with_both_sdks() {
    let dir = tempfile::tempdir().unwrap();
    let notes = dir.path().join("notes.json");
    let (_upstream, url) = http_upstream(&notes).await;
    // The Python client runs twice against the same upstream: a rerun makes new notes
    // rather than being refused for repeating the first run's.
    for (run, client) in ["python", "rust", "python"].into_iter().enumerate() {
        let out = Command::new(env!("CARGO_BIN_EXE_airlock"))
            .args([
                "bench",
                "mcp",
                "--upstream-url",
                &url,
                "--calls",
                "5",
                "--json",
                "--client",
                client,
            ])
            .args([
                "--mutation-arguments",
                &format!(r#"{{"name":"{client}","text":"t"}}"#),
            ])
            .current_dir(dir.path())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{client}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(v["journal_verified"], true, "{v}");
        let rows = v["results"].as_array().unwrap();
        assert_eq!(rows.len(), 2, "{v}");
        for (row, kind) in rows.iter().zip(["read", "mutation"]) {
            assert_eq!(row["kind"], kind, "{v}");
            assert_eq!(row["calls"], 5, "{v}");
            for path in ["direct", "proxied"] {
                assert!(row[path]["p50_ms"].as_f64().is_some_and(|x| x > 0.0), "{v}");
            }
        }
        // Every proxied mutation (warm-up included) reached the upstream.
        let state: Value = serde_json::from_str(&std::fs::read_to_string(&notes).unwrap()).unwrap();
        for i in [0, 54] {
            let made = state
                .as_object()
                .unwrap()
                .keys()
                .filter(|k| k.starts_with(&format!("{client}-")) && k.ends_with(&format!("-p-{i}")))
                .count();
            let runs = 1 + usize::from(run == 2);
            assert_eq!(made, runs, "{client} call {i} after run {run}: {state}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upstream_over_streamable_http_is_proxied_as_well() {
    let dir = tempfile::tempdir().unwrap();
    let notes = dir.path().join("notes.json");
    let (_upstream, url) = http_upstream(&notes).await;
    let extra = format!(
        "[[upstream]]\nname = \"notes\"\nurl = \"{url}\"\nenv = \"dev\"\nkind = \"note\"\n\
         trust_read_only_hints = true\n\
         [upstream.tools.create_note]\nresource_arg = \"name\"\n"
    );
    let env = Env::new(WORLD, &extra, 2).await;
    let server = env.serve(&[]).await;
    let r = client(
        &env,
        http_conn(&server, &env.bot),
        json!([
            {"op": "call", "name": "notes_echo", "arguments": {"text": "ping"}},
            {"op": "call", "name": "notes_create_note", "arguments": {"name": "a", "text": "b"}},
        ]),
    )
    .await;
    assert_eq!(r[0]["text"], "ping", "{}", r[0]);
    assert_eq!(r[1]["text"], "created a", "{}", r[1]);
    let state: Value = serde_json::from_str(&std::fs::read_to_string(&notes).unwrap()).unwrap();
    assert_eq!(state["a"], "b", "{state}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_approved_tool_call_answers_the_agents_retry_once_without_running_it_twice() {
    let dir = tempfile::tempdir().unwrap();
    let notes = dir.path().join("notes.json");
    let env = Env::new(WORLD, &upstream_config(&notes), 3).await;
    let server = env.serve(&[]).await;
    let create = json!({"op": "call", "name": "notes_create_note", "arguments": {"name": "q3", "text": "plan"}});
    let delete = json!({"op": "call", "name": "notes_delete_note", "arguments": {"name": "q3"}});
    let r = client(&env, http_conn(&server, &env.bot), json!([create, delete])).await;
    assert_eq!(r[1]["structured"]["verdict"], "hold", "{}", r[1]);
    let text = r[1]["text"].as_str().unwrap();
    assert!(
        text.contains("Would pass"),
        "the hold explains itself: {text}"
    );
    let apr = r[1]["structured"]["approval_id"]
        .as_str()
        .unwrap()
        .to_string();
    env.operator(&server, &["approve", &apr]).await.code(0);
    let state: Value = serde_json::from_str(&std::fs::read_to_string(&notes).unwrap()).unwrap();
    assert!(state.get("q3").is_none(), "approved and applied: {state}");
    // The agent asks again: told it is done (once), not deleted a second time; the next
    // identical call is a new question (here over the destructive budget the approved
    // delete spent).
    let r = client(&env, http_conn(&server, &env.bot), json!([delete, delete])).await;
    assert_eq!(r[0]["isError"], false, "{}", r[0]);
    assert_eq!(r[0]["structured"]["verdict"], "allow", "{}", r[0]);
    assert!(
        r[0]["structured"]["details"][0]
            .as_str()
            .unwrap()
            .starts_with("already done"),
        "{}",
        r[0]
    );
    assert_ne!(r[1]["structured"]["verdict"], "allow", "{}", r[1]);
    assert!(r[1]["structured"]["change_id"].is_null(), "{}", r[1]);
    let calls = env
        .journal()
        .await
        .into_iter()
        .filter(|e| e["kind"] == "applied")
        .count();
    assert_eq!(calls, 2, "the create and the one approved delete");
}
