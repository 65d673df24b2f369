//! Property-based fuzzing of the server's readers of outside input: `airlock.toml`, JSON-RPC
//! lines for the MCP gateway (the line check and a whole stdio session), and request
//! bodies of the HTTP API's agent endpoints, decided by the real gate over a SQLite journal
//! in a temp dir with the default policy pack and the live sandbox cloud.
//!
//! Properties: no panic; every case returns within a generous watchdog (a hang detector,
//! not a benchmark); a config is refused with a message naming a field or line, or it
//! validates; a JSON-RPC line is passed on only when it is a message, and refused with a
//! JSON-RPC error otherwise; no line ends an MCP session; a bad body is a 4xx with the
//! error envelope, never a 5xx.
//!
//! `AIRLOCK_FUZZ_CASES=N` sets the cases per property (see docs/testing.md).
#![cfg(test)]

use airlock_gate::PrincipalKind2;
use airlock_server::mcp::{Backend, Local, malformed, serve_lines};
use airlock_server::{AppState, RawConfig, app};
use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, header};
use http_body_util::BodyExt;
use proptest::prelude::*;
use serde_json::{Value, json};
use std::path::Path;
use std::sync::{Arc, LazyLock};
use std::time::Duration;
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tower::ServiceExt;

#[path = "../../../testsupport/fuzz.rs"]
mod harness;
use harness::*;

// ---------------------------------------------------------------------------------------
// Shared generators

fn odd_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9._-]{0,12}",
        "[ -~]{0,16}",
        any::<String>().prop_map(|s| s.chars().take(24).collect()),
        Just("é\u{200b}\u{202e}日本\u{0}".to_string()),
        (100usize..3000).prop_map(|n| "x".repeat(n)),
    ]
}

/// A random edit of a text, with this format's syntax among what it inserts.
fn mutation() -> impl Strategy<Value = Mutation> {
    harness::mutation(
        &[
            "\"", "{", "}", "[", "]", ",", ":", "\\", "\\ud800", "\u{0}", "é", "\n", "=", "#",
        ],
        odd_text(),
    )
}

fn number_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (0u32..24).prop_map(|n| n.to_string()),
        1 => any::<i64>().prop_map(|n| n.to_string()),
        1 => any::<u64>().prop_map(|n| n.to_string()),
        1 => any::<f64>().prop_map(|f| format!("{f:e}")),
        1 => prop::sample::select(&["1e400", "-0", "123456789012345678901234567890", "0.5"][..])
            .prop_map(str::to_string),
    ]
}

/// Any JSON value as text, nested.
fn json_text() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("null".to_string()),
        Just("false".to_string()),
        number_text(),
        odd_text().prop_map(|s| json!(s).to_string()),
    ];
    leaf.prop_recursive(4, 32, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(|v| format!("[{}]", v.join(","))),
            prop::collection::vec((odd_text(), inner), 0..5).prop_map(|kv| {
                let f: Vec<String> = kv
                    .into_iter()
                    .map(|(k, v)| format!("{}:{v}", json!(k)))
                    .collect();
                format!("{{{}}}", f.join(","))
            }),
        ]
    })
}

// ---------------------------------------------------------------------------------------
// airlock.toml

/// The config examples that ship: every `toml` block of the configuration guide and the
/// example files.
static CONFIGS: LazyLock<Vec<String>> = LazyLock::new(|| {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut out = vec![String::new()];
    for doc in [
        "docs/configuration.md",
        "docs/server.md",
        "docs/mcp.md",
        "docs/guards.md",
    ] {
        let Ok(text) = std::fs::read_to_string(root.join(doc)) else {
            continue;
        };
        let mut block: Option<String> = None;
        for line in text.lines() {
            match (&mut block, line.trim_start()) {
                (None, l) if l.starts_with("```toml") => block = Some(String::new()),
                (Some(b), l) if l.starts_with("```") => {
                    out.push(std::mem::take(b));
                    block = None;
                }
                (Some(b), _) => {
                    b.push_str(line);
                    b.push('\n');
                }
                _ => {}
            }
        }
    }
    for f in ["examples/config/mcp-gateway.toml"] {
        if let Ok(t) = std::fs::read_to_string(root.join(f)) {
            out.push(t);
        }
    }
    out
});

/// A TOML value of any type. Host names are limited to ones that resolve without the
/// network (`localhost`, addresses), so a case never waits on DNS.
fn toml_value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        prop::sample::select(
            &[
                "0",
                "-1",
                "1e308",
                "inf",
                "nan",
                "-0.0",
                "true",
                "\"\"",
                "\"0s\"",
                "\"18446744073709551615s\"",
                "\"999999999999999999d\"",
                "\"1h30m\"",
                "\"127.0.0.1:0\"",
                "\"localhost:7070\"",
                "\"[::1]:99999\"",
                "\"127.0.0.1\"",
                "\"sqlite::memory:\"",
                "\"postgres://x\"",
                "\"prod\"",
                "\"sim\"",
                "\"shell\"",
                "\"http://127.0.0.1:1/x\"",
                "\"availability >= 0.999\"",
                "[]",
                "{}",
                "\"/nonexistent/file.cedar\"",
                "\"permit(principal, action, resource);\"",
            ][..]
        )
        .prop_map(str::to_string),
        "[a-z0-9._-]{0,12}".prop_map(|s| format!("\"{s}\"")),
        any::<String>().prop_map(|s| {
            let s: String = s
                .chars()
                .filter(|c| !c.is_control() && *c != ':')
                .take(16)
                .collect();
            json!(s).to_string()
        }),
    ];
    leaf.prop_recursive(2, 12, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(", "))),
            prop::collection::vec(("[a-z_]{1,10}", inner), 0..4).prop_map(|kv| {
                let f: Vec<String> = kv.into_iter().map(|(k, v)| format!("{k} = {v}")).collect();
                format!("{{ {} }}", f.join(", "))
            }),
        ]
    })
}

const TABLES: &[&str] = &[
    "[server]",
    "[store]",
    "[policy]",
    "[guards]",
    "[bake]",
    "[anomaly]",
    "[profile.coding]",
    "[profile.x.guards]",
    "[approvals]",
    "[sim]",
    "[mcp]",
    "[redact]",
    "[[upstream]]",
    "[hook]",
    "[watch]",
    "[[alert]]",
    "[[slo]]",
    "[[probe]]",
    "[[provider]]",
    "[provider.settings]",
];
const KEYS: &[&str] = &[
    "listen",
    "url",
    "files",
    "text",
    "max_actions",
    "window",
    "hold_timeout",
    "timeout",
    "name",
    "kind",
    "command",
    "args",
    "env",
    "default_env",
    "query",
    "rule",
    "service",
    "interval",
    "target",
    "seed",
    "tick",
    "time_factor",
    "world",
    "hosts",
    "keys",
    "patterns",
    "enabled",
    "body_limit",
    "blast_budget",
    "freeze",
    "threshold",
    "profile",
    "settings",
    "min_interval",
];

/// A config: a shipped example with values swapped, lines added and dropped, or random text.
fn config_text() -> impl Strategy<Value = String> {
    let line = prop_oneof![
        prop::sample::select(TABLES).prop_map(str::to_string),
        (prop::sample::select(KEYS), toml_value()).prop_map(|(k, v)| format!("{k} = {v}")),
    ];
    (
        prop::sample::select((0..CONFIGS.len()).collect::<Vec<_>>()),
        prop::collection::vec((any::<usize>(), line), 0..3),
        prop::collection::vec((any::<usize>(), toml_value()), 0..3),
        prop::collection::vec(mutation(), 0..2),
        prop::bool::weighted(0.2),
    )
        .prop_map(|(i, added, values, edits, edit)| {
            let mut lines: Vec<String> = CONFIGS[i].lines().map(str::to_string).collect();
            for (at, v) in values {
                let valued: Vec<usize> = (0..lines.len())
                    .filter(|&j| {
                        !lines[j].trim_start().starts_with(['#', '[']) && lines[j].contains('=')
                    })
                    .collect();
                if let Some(&j) = valued.get(at % valued.len().max(1)) {
                    let key = lines[j].split('=').next().unwrap_or("").to_string();
                    lines[j] = format!("{key}= {v}");
                }
            }
            for (at, l) in added {
                lines.insert(at % (lines.len() + 1), l);
            }
            let text = lines.join("\n");
            if edit { mutate(text, &edits) } else { text }
        })
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn configs_validate_or_are_refused_with_a_message(text in config_text()) {
        let input = text.clone();
        let r = guarded(&input, move || -> Result<(), String> {
            let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
            let raw = match RawConfig::parse(&text, "airlock.toml") {
                Ok(raw) => raw,
                Err(e) => return check_refusal(&e.0),
            };
            match raw.validate(dir.path()) {
                Ok(_) => Ok(()),
                Err(e) => check_refusal(&e.0),
            }
        });
        prop_assert!(r.is_ok(), "{}\n{}", r.unwrap_err(), input);
    }
}

/// Every problem is a line of text.
fn check_refusal(problems: &[String]) -> Result<(), String> {
    if problems.is_empty() || problems.iter().any(|p| p.trim().is_empty()) {
        return Err(format!("a refusal without a message: {problems:?}"));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// JSON-RPC lines

const METHODS: &[&str] = &[
    "initialize",
    "notifications/initialized",
    "tools/list",
    "tools/call",
    "ping",
    "resources/list",
    "prompts/list",
    "notifications/cancelled",
    "logging/setLevel",
    "completion/complete",
    "",
    "tools/call/x",
    "$/cancel",
];

/// A JSON-RPC message, valid-looking, with fields of every shape; sometimes a batch,
/// sometimes edited into something else.
fn rpc_line() -> impl Strategy<Value = String> {
    let id = prop_oneof![
        (0u32..1000).prop_map(|n| n.to_string()),
        Just("null".to_string()),
        odd_text().prop_map(|s| json!(s).to_string()),
        json_text(),
    ];
    let tool = prop_oneof![
        prop::sample::select(
            &[
                "sim_scale",
                "sim_read",
                "sim_delete",
                "sim_deploy",
                "sim_create",
                "sim_restart",
                "nope",
                ""
            ][..]
        )
        .prop_map(str::to_string),
        odd_text(),
    ];
    let arguments = prop_oneof![
        (
            prop::sample::select(&["checkout", "payments", "search", "ghost", "prod"][..]),
            number_text()
        )
            .prop_map(|(s, n)| format!("{{\"service\":\"{s}\",\"replicas\":{n}}}")),
        json_text(),
    ];
    let params = prop_oneof![
        (tool, arguments).prop_map(|(t, a)| format!("{{\"name\":{},\"arguments\":{a}}}", json!(t))),
        Just("{\"protocolVersion\":\"2025-06-18\",\"capabilities\":{},\"clientInfo\":{\"name\":\"f\",\"version\":\"1\"}}".to_string()),
        json_text(),
    ];
    let message = (
        prop::sample::select(&["\"2.0\"", "\"1.0\"", "2", "null"][..]),
        prop::option::weighted(0.8, id),
        prop_oneof![
            4 => prop::sample::select(METHODS).prop_map(|m| json!(m).to_string()),
            1 => json_text(),
        ],
        prop::option::weighted(0.8, params),
        prop::option::weighted(0.1, json_text()),
    )
        .prop_map(|(v, id, method, params, result)| {
            let mut f = vec![format!("\"jsonrpc\":{v}")];
            if let Some(id) = id {
                f.push(format!("\"id\":{id}"));
            }
            match result {
                Some(r) => f.push(format!("\"result\":{r}")),
                None => f.push(format!("\"method\":{method}")),
            }
            if let Some(p) = params {
                f.push(format!("\"params\":{p}"));
            }
            format!("{{{}}}", f.join(","))
        });
    (
        prop::collection::vec(message, 1..3),
        any::<bool>(),
        prop::collection::vec(mutation(), 0..2),
    )
        .prop_map(|(msgs, batch, edits)| {
            let text = if batch {
                format!("[{}]", msgs.join(","))
            } else {
                msgs[0].clone()
            };
            mutate(text, &edits)
        })
}

/// Whether a line is what the line check lets through: one JSON-RPC 2.0 message (a
/// request, notification or response) or a non-empty batch of them.
fn is_message(line: &str) -> bool {
    let ok = |m: &Value| {
        m.get("jsonrpc") == Some(&json!("2.0"))
            && (m.get("method").is_some_and(Value::is_string)
                || m.get("result").is_some()
                || m.get("error").is_some())
    };
    match serde_json::from_str::<Value>(line) {
        Ok(Value::Array(items)) => !items.is_empty() && items.iter().all(ok),
        Ok(v @ Value::Object(_)) => ok(&v),
        _ => false,
    }
}

proptest! {
    #![proptest_config(config(2048))]

    #[test]
    fn json_rpc_lines_pass_or_get_a_json_rpc_error(line in prop_oneof![rpc_line(), any::<String>()]) {
        let input = line.clone();
        let refusal = guarded(&input, move || malformed(&line));
        match refusal {
            None => prop_assert!(is_message(&input), "passed on: {input}"),
            Some(err) => {
                prop_assert!(!is_message(&input), "refused a message: {input}");
                prop_assert_eq!(&err["jsonrpc"], &json!("2.0"));
                prop_assert!(err.get("id").is_some());
                let code = err["error"]["code"].as_i64();
                prop_assert!(code == Some(-32700) || code == Some(-32600), "{}", err);
                prop_assert!(err["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// The server: one gate over a temp journal, shared by the cases of a property

struct Server {
    _dir: TempDir,
    state: AppState,
    router: Router,
    bot: String,
    rt: Arc<tokio::runtime::Runtime>,
}

fn server() -> Server {
    let rt = Arc::new(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    let mut c = RawConfig::default().validate(Path::new(".")).unwrap();
    c.store = dir.path().join("j.db").display().to_string();
    let (state, bot) = rt.block_on(async {
        let (state, _sim) = airlock_server::live::build(&c).await.unwrap();
        let bot = state
            .gate
            .issue_token("bot", PrincipalKind2::Agent)
            .await
            .unwrap();
        (state, bot)
    });
    // The router starts the MCP service's shutdown watcher on the runtime.
    let router = {
        let _inside = rt.enter();
        app(state.clone())
    };
    Server {
        _dir: dir,
        router,
        state,
        bot,
        rt,
    }
}

/// A target: usually one the live world has, in some spelling.
fn target_text() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => (
            prop::sample::select(&["sim", "SIM", " sim"][..]),
            prop::sample::select(&["service", "svc", "environment", "env"][..]),
            prop::sample::select(
                &["checkout", "search", "payments", "feature-flags", "reports", "prod", "Checkout", "ghost"][..]
            ),
            prop::sample::select(&["", "/", " "][..]),
        )
            .prop_map(|(p, k, n, t)| format!("{p}:{k}/{n}{t}")),
        1 => prop::sample::select(&["shell:command/rm", "sim:service/", "x", ""][..]).prop_map(str::to_string),
        1 => odd_text(),
    ]
}

/// Parameters: usually what the verbs take, with numbers of every size.
fn params_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => number_text().prop_map(|n| format!("{{\"replicas\":{n}}}")),
        2 => (number_text(), prop::sample::select(&["\"a\"", "\"eu-west-a\"", "7", "null"][..]))
            .prop_map(|(n, az)| format!("{{\"replicas\":{n},\"az\":{az}}}")),
        2 => prop_oneof![Just("v2".to_string()), Just("bad".to_string()), odd_text()]
            .prop_map(|v| format!("{{\"version\":{}}}", json!(v))),
        1 => Just("{}".to_string()),
        1 => json_text(),
    ]
}

/// An action request: mostly well formed, so the gate decides it; sometimes not.
fn request_text() -> impl Strategy<Value = String> {
    let verb = prop_oneof![
        8 => prop::sample::select(&["read", "scale", "delete", "deploy", "create", "restart", "update", "exec"][..])
            .prop_map(str::to_string),
        1 => prop::sample::select(&["NUKE", "Scale", ""][..]).prop_map(str::to_string),
        1 => odd_text(),
    ];
    (
        prop_oneof![
            8 => Just("sim"),
            1 => prop::sample::select(&["shell", "tool", "aws", ""][..]),
        ],
        verb,
        target_text(),
        params_text(),
        number_text(),
        prop::bool::weighted(0.7),
        odd_text(),
        prop::option::weighted(0.05, (odd_text(), json_text())),
    )
        .prop_map(|(p, v, t, params, n, fitting, intent, extra)| {
            // Parameters that fit the verb, most of the time, so the request gets planned.
            let params = match (fitting, v.as_str()) {
                (true, "scale") => format!("{{\"replicas\":{n}}}"),
                (true, "deploy") => "{\"version\":\"v2\"}".to_string(),
                (true, _) => "{}".to_string(),
                (false, _) => params,
            };
            let mut f = vec![
                format!("\"provider\":{}", json!(p)),
                format!("\"verb\":{}", json!(v)),
                format!("\"target\":{}", json!(t)),
                format!("\"params\":{params}"),
                format!("\"intent\":{}", json!(intent)),
            ];
            if let Some((k, v)) = extra {
                f.push(format!("{}:{v}", json!(k)));
            }
            format!("{{{}}}", f.join(","))
        })
}

/// Tool arguments: mostly what the sim tools take.
fn arguments_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (
            prop::sample::select(&["checkout", "Search", "payments", "prod", "ghost", ""][..]),
            number_text(),
            odd_text()
        )
            .prop_map(|(t, n, i)| format!("{{\"target\":\"{t}\",\"replicas\":{n},\"intent\":{}}}", json!(i))),
        2 => (prop::sample::select(&["checkout", "sim:service/search", "reports"][..]), prop_oneof![Just("v2".to_string()), odd_text()])
            .prop_map(|(t, v)| format!("{{\"target\":\"{t}\",\"version\":{}}}", json!(v))),
        1 => json_text(),
    ]
}

const PATHS: &[&str] = &[
    "/v1/actions",
    "/v1/actions?wait=false",
    "/v1/actions/ran",
    "/v1/tools/sim_scale",
    "/v1/tools/sim_restart",
    "/v1/tools/sim_deploy",
    "/v1/tools/sim_delete",
    "/v1/tools/nope",
    "/v1/undo",
    "/v1/actions?wait=true&timeout_s=0",
];

/// A path and a body for it, sometimes edited.
fn call() -> impl Strategy<Value = (&'static str, String)> {
    (
        prop::sample::select(PATHS),
        request_text(),
        arguments_text(),
        any::<bool>(),
        prop::collection::vec(mutation(), 0..2),
        prop::bool::weighted(0.3),
        (
            prop::sample::select(
                &[
                    "checkout",
                    "search",
                    "payments",
                    "reports",
                    "sim:service/search",
                ][..],
            ),
            number_text(),
            prop::bool::weighted(0.7),
        ),
    )
        .prop_map(|(path, req, args, ok, edits, edit, (target, n, fitting))| {
            let body = if let Some(tool) = path.strip_prefix("/v1/tools/") {
                // Arguments that fit the tool, most of the time, so the call gets decided.
                let args = match (fitting, tool) {
                    (true, "sim_scale") => format!("{{\"target\":\"{target}\",\"replicas\":{n}}}"),
                    (true, "sim_deploy") => {
                        format!("{{\"target\":\"{target}\",\"version\":\"v2\"}}")
                    }
                    (true, _) => format!("{{\"target\":\"{target}\"}}"),
                    (false, _) => args,
                };
                format!("{{\"arguments\":{args}}}")
            } else if path == "/v1/actions/ran" {
                format!("{{\"request\":{req},\"succeeded\":{ok}}}")
            } else {
                req
            };
            (path, if edit { mutate(body, &edits) } else { body })
        })
}

proptest! {
    #![proptest_config(config(192))]

    #[test]
    fn agent_bodies_get_an_answer_or_a_4xx_never_a_5xx((path, body) in call()) {
        static SERVER: LazyLock<Server> = LazyLock::new(server);
        let (router, bot, rt) = (SERVER.router.clone(), SERVER.bot.clone(), SERVER.rt.clone());
        let _ = &SERVER.state;
        let input = (path, body.clone());
        let (status, text) = guarded(&input, move || {
            rt.block_on(async move {
                let req = Request::builder()
                    .method(Method::POST)
                    .uri(path)
                    .header(header::CONTENT_TYPE, "application/json")
                    .header(header::AUTHORIZATION, format!("Bearer {bot}"))
                    .body(Body::from(body))
                    .unwrap();
                let resp = router.oneshot(req).await.unwrap();
                let status = resp.status();
                let bytes = resp.into_body().collect().await.unwrap().to_bytes();
                (status, String::from_utf8_lossy(&bytes).into_owned())
            })
        });
        prop_assert!(!status.is_server_error(), "{}: {}\n{:?}", status, text, input);
        if status.is_client_error() {
            let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            prop_assert!(
                v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()),
                "{}: {}", status, text
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// A whole MCP session over lines

/// The id of the request that checks a session is still alive; generated ids stay below it.
const ALIVE_ID: u64 = 987_654_321;

/// Sends `lines` after the handshake, then a `tools/list` that must be answered, then
/// closes the input; the session must answer it and end.
async fn session(state: AppState, token: String, lines: Vec<Vec<u8>>) -> Result<(), String> {
    let (mut client_out, server_in) = tokio::io::duplex(1 << 20);
    let (server_out, client_in) = tokio::io::duplex(1 << 20);
    let backend: Arc<dyn Backend> = Arc::new(Local(state.door.clone()));
    let served = tokio::spawn(serve_lines(backend, Some(token), server_in, server_out));
    let mut answers = BufReader::new(client_in).lines();
    let send = |mut bytes: Vec<u8>| {
        bytes.push(b'\n');
        bytes
    };
    let mut script = vec![
        send(br#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"fuzz","version":"1"}}}"#.to_vec()),
        send(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#.to_vec()),
    ];
    script.extend(lines.into_iter().map(send));
    script.push(send(
        format!(r#"{{"jsonrpc":"2.0","id":{ALIVE_ID},"method":"tools/list"}}"#).into_bytes(),
    ));
    let writer = tokio::spawn(async move {
        for chunk in script {
            if client_out.write_all(&chunk).await.is_err() {
                return false;
            }
        }
        // Keep the input open until the answer is read.
        tokio::time::sleep(Duration::from_secs(30)).await;
        true
    });
    let mut alive = false;
    while let Ok(Some(line)) = answers.next_line().await {
        let v: Value = serde_json::from_str(&line)
            .map_err(|e| format!("an answer is not JSON ({e}): {line}"))?;
        if v["id"] == json!(ALIVE_ID) {
            alive = v.get("result").is_some();
            break;
        }
    }
    writer.abort();
    if !alive {
        return Err("the session ended before answering a request that followed the lines".into());
    }
    match tokio::time::timeout(Duration::from_secs(4), served).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("the session panicked: {e}")),
        Err(_) => Err("the session did not end when its input closed".into()),
    }
}

/// A line with bytes that are not UTF-8 in it.
fn not_utf8() -> impl Strategy<Value = Vec<u8>> {
    (
        rpc_line(),
        any::<usize>(),
        prop::sample::select(vec![&b"\xff"[..], b"\xc3", b"\xed\xa0\x80", b"\xfe\xff"]),
    )
        .prop_map(|(l, at, bad)| {
            let mut bytes = l.into_bytes();
            let i = at % (bytes.len() + 1);
            bytes.splice(i..i, bad.iter().copied());
            bytes
        })
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn no_line_ends_an_mcp_session(lines in prop::collection::vec(prop_oneof![
        8 => rpc_line().prop_map(String::into_bytes),
        1 => odd_text().prop_map(String::into_bytes),
        1 => not_utf8(),
    ], 1..6)) {
        static SERVER: LazyLock<Server> = LazyLock::new(server);
        let (state, bot, rt) = (SERVER.state.clone(), SERVER.bot.clone(), SERVER.rt.clone());
        let lines: Vec<Vec<u8>> = lines
            .into_iter()
            .map(|l| l.into_iter().map(|b| if b == b'\n' || b == b'\r' { b' ' } else { b }).collect::<Vec<u8>>())
            .filter(|l| !String::from_utf8_lossy(l).contains(&ALIVE_ID.to_string()))
            .collect();
        let shown: Vec<String> = lines.iter().map(|l| String::from_utf8_lossy(l).into_owned()).collect();
        let input = shown;
        let r = guarded(&input, move || rt.block_on(session(state, bot, lines)));
        prop_assert!(r.is_ok(), "{}\n{:#?}", r.unwrap_err(), input);
    }
}

/// A regression test for the stdio line reader: a line with bytes that are not UTF-8 used
/// to end the reader, and with it the whole session, without an answer. It now gets a
/// parse error and the session goes on.
#[test]
fn a_line_that_is_not_utf8_gets_a_parse_error_and_the_session_goes_on() {
    let s = server();
    let (state, bot) = (s.state.clone(), s.bot.clone());
    s.rt.block_on(async move {
        let (mut client_out, server_in) = tokio::io::duplex(1 << 16);
        let (server_out, client_in) = tokio::io::duplex(1 << 16);
        let backend: Arc<dyn Backend> = Arc::new(Local(state.door.clone()));
        let served = tokio::spawn(serve_lines(backend, Some(bot), server_in, server_out));
        let mut script: Vec<u8> = Vec::new();
        script.extend_from_slice(br#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#);
        script.extend_from_slice(b"\n{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n");
        script.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\xff\"}\n");
        script.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\"}\n");
        client_out.write_all(&script).await.unwrap();
        let mut answers = BufReader::new(client_in).lines();
        let mut seen = Vec::new();
        while let Some(line) = tokio::time::timeout(WATCHDOG, answers.next_line())
            .await
            .unwrap()
            .unwrap()
        {
            let v: Value = serde_json::from_str(&line).unwrap();
            seen.push(v.clone());
            if v["id"] == json!(2) {
                break;
            }
        }
        let refusal = seen
            .iter()
            .find(|v| v["error"]["code"] == json!(-32700))
            .expect("a parse error for the line that is not UTF-8");
        assert!(
            refusal["error"]["message"]
                .as_str()
                .unwrap()
                .contains("not UTF-8"),
            "{refusal}"
        );
        assert!(seen.last().unwrap().get("result").is_some(), "{seen:?}");
        drop(client_out);
        tokio::time::timeout(WATCHDOG, served)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    });
}

/// A line longer than the stdio session's limit is refused and skipped without holding it
/// all in memory; the request after it is answered.
#[test]
fn a_line_longer_than_the_limit_is_refused_and_the_session_goes_on() {
    let s = server();
    let (state, bot) = (s.state.clone(), s.bot.clone());
    s.rt.block_on(async move {
        let (mut client_out, server_in) = tokio::io::duplex(1 << 16);
        let (server_out, client_in) = tokio::io::duplex(1 << 16);
        let backend: Arc<dyn Backend> = Arc::new(Local(state.door.clone()));
        let served = tokio::spawn(serve_lines(backend, Some(bot), server_in, server_out));
        let writer = tokio::spawn(async move {
            client_out.write_all(br#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#).await.unwrap();
            client_out.write_all(b"\n{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n").await.unwrap();
            // Twice the limit, in chunks, then the end of the line.
            let chunk = vec![b'x'; 1 << 16];
            for _ in 0..(2 * airlock_server::mcp::MAX_LINE_BYTES / chunk.len()) {
                client_out.write_all(&chunk).await.unwrap();
            }
            client_out.write_all(b"\n{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\"}\n").await.unwrap();
            client_out
        });
        let mut answers = BufReader::new(client_in).lines();
        let mut seen = Vec::new();
        while let Some(line) = tokio::time::timeout(WATCHDOG, answers.next_line())
            .await
            .unwrap()
            .unwrap()
        {
            let v: Value = serde_json::from_str(&line).unwrap();
            seen.push(v.clone());
            if v["id"] == json!(2) {
                break;
            }
        }
        let refusal = seen
            .iter()
            .find(|v| v["error"]["code"] == json!(-32600))
            .expect("a refusal of the long line");
        assert!(
            refusal["error"]["message"].as_str().unwrap().contains("longer than"),
            "{refusal}"
        );
        assert!(seen.last().unwrap().get("result").is_some(), "{seen:?}");
        drop(writer.await.unwrap());
        tokio::time::timeout(WATCHDOG, served)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    });
}
