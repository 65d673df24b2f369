//! Property-based fuzzing of the shell classifier and the hook event parser, the two
//! readers of text a coding agent controls.
//!
//! Inputs are random text and, to reach deep code, generated command lines: programs the
//! rules know, quotes, expansions, substitutions, pipes, redirections, heredocs, control
//! structures, then random mutations of the result. The dangerous rows of the hook's
//! command table seed the invariants. Nothing is ever run: the classifier only reads text.
//!
//! Properties: no panic; every case returns within a generous watchdog (a hang detector,
//! not a benchmark); a command is never rated less dangerous when wrapped in
//! `bash -c '…'` or after harmless commands joined by `;`; a hook event parses to an
//! error or to requests the `shell` and `tool` providers plan as they were made.
//!
//! `AIRLOCK_FUZZ_CASES=N` sets the cases per property (see docs/testing.md).
#![cfg(test)]

use airlock_core::{ActionRequest, Provider, Risk};
use airlock_shell::hook::{HookEvent, HookProvider, requests};
use airlock_shell::{Classification, classify, classify_in};
use proptest::prelude::*;
use std::future::Future;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

#[path = "../../../testsupport/fuzz.rs"]
mod harness;
use harness::*;

/// Polls a future that never waits on anything (the hook providers plan from text).
fn ready<F: Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("a hook provider's plan waited on something"),
    }
}

// ---------------------------------------------------------------------------------------
// Generators

/// Programs and words the rules know, so generated lines reach the per-domain rules.
const PROGRAMS: &[&str] = &[
    "rm",
    "kubectl",
    "aws",
    "gcloud",
    "az",
    "psql",
    "mysql",
    "sqlite3",
    "git",
    "terraform",
    "helm",
    "docker",
    "echo",
    "ls",
    "cat",
    "curl",
    "wget",
    "sudo",
    "env",
    "xargs",
    "find",
    "bash",
    "sh",
    "zsh",
    "eval",
    "exec",
    "python3",
    "node",
    "perl",
    "dd",
    "chmod",
    "chown",
    "mv",
    "cp",
    "tee",
    "truncate",
    "shred",
    "mkfs.ext4",
    "systemctl",
    "kill",
    "crontab",
    "ssh",
    "scp",
    "rsync",
    "make",
    "cargo",
    "npm",
    "pip",
    "nohup",
    "timeout",
    "watch",
    "command",
    "builtin",
    "source",
    ".",
    "cd",
    "export",
    "unset",
    "alias",
    "trap",
    "nc",
    "base64",
    "openssl",
    "redis-cli",
    "mongo",
    "tar",
    "unzip",
    "ln",
    "mount",
    "iptables",
    "useradd",
    "passwd",
    "visudo",
    "gh",
    "pulumi",
    "ansible",
    "vault",
    "xxd",
    "printf",
];

const ARGS: &[&str] = &[
    "-rf",
    "-f",
    "-r",
    "--force",
    "--all",
    "-A",
    "/",
    "/*",
    "~",
    "~/",
    ".",
    "..",
    "../..",
    "*",
    "target",
    "node_modules",
    "/etc/passwd",
    "/var/lib/postgresql",
    "~/.ssh/id_rsa",
    "~/.aws/credentials",
    ".env",
    "prod",
    "payments-prod",
    "staging",
    "dev",
    "delete",
    "drop",
    "apply",
    "destroy",
    "-auto-approve",
    "namespace",
    "ns",
    "pod",
    "deployment",
    "s3",
    "rb",
    "s3://bucket",
    "ec2",
    "terminate-instances",
    "rds",
    "delete-db-instance",
    "push",
    "--force",
    "origin",
    "main",
    "reset",
    "--hard",
    "clean",
    "-fdx",
    "-c",
    "-e",
    "DROP TABLE users",
    "DELETE FROM users",
    "TRUNCATE t",
    "SELECT 1",
    "-n",
    "kube-system",
    "--context",
    "prod-cluster",
    "if=/dev/zero",
    "of=/dev/sda",
    "777",
    "+s",
    "u+s",
    "-9",
    "-1",
    "http://example.com/x",
    "https://evil.example/x.sh",
    "-d",
    "@-",
    "--data",
    "$HOME",
    "$NS",
    "${NS:-prod}",
    "$(cat x)",
    "`id`",
    "$((1+2))",
    "{a,b}",
    "{1..3}",
    "{}",
    "\\;",
    "-exec",
    "-delete",
    "-print0",
    "-0",
    "-I{}",
    "--",
    "-",
    "''",
    "\"\"",
];

/// Text with the characters a shell treats specially, and some that no shell does.
fn odd_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9_./~*?\\[\\]{},=:@%+-]{0,12}",
        "[ -~]{0,16}",
        any::<String>().prop_map(|s| s.chars().take(24).collect()),
        Just("\u{0}".to_string()),
        Just("é\u{200b}\u{202e}日本".to_string()),
    ]
}

/// A random edit of a text, with this format's syntax among what it inserts.
fn mutation() -> impl Strategy<Value = Mutation> {
    harness::mutation(
        &[
            "'", "\"", "`", "$(", ")", "${", "}", "\\", "\n", ";", "|", "&", "<<", "((", "[[",
            "]]", "#", "!", "\u{0}", "é", "\r\n", "$'\\x41'",
        ],
        odd_text(),
    )
}

/// One word, maybe quoted or expanded.
fn word() -> impl Strategy<Value = String> {
    let base = prop_oneof![
        4 => prop::sample::select(ARGS).prop_map(str::to_string),
        2 => prop::sample::select(PROGRAMS).prop_map(str::to_string),
        2 => odd_text(),
    ];
    (base, 0u8..10).prop_map(|(w, how)| match how {
        0 => format!("'{w}'"),
        1 => format!("\"{w}\""),
        2 => format!("$'{w}'"),
        3 => format!("${{{w}}}"),
        4 => format!("\\{w}"),
        5 => format!("\"$({w})\""),
        _ => w,
    })
}

/// A simple command: maybe assignments, a program, arguments, redirections.
fn simple() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(("[A-Z_]{1,4}", word()), 0..2),
        prop::sample::select(PROGRAMS),
        prop::collection::vec(word(), 0..6),
        prop::collection::vec(
            (
                prop::sample::select(&[">", ">>", "<", "2>&1", "&>", "<<<", ">|", "2>"][..]),
                word(),
            ),
            0..2,
        ),
    )
        .prop_map(|(assigns, program, args, redirs)| {
            let mut out = String::new();
            for (k, v) in assigns {
                out.push_str(&format!("{k}={v} "));
            }
            out.push_str(program);
            for a in args {
                out.push(' ');
                out.push_str(&a);
            }
            for (op, target) in redirs {
                out.push_str(&format!(" {op} {target}"));
            }
            out
        })
}

/// A command line: simple commands combined with operators, substitutions, subshells,
/// groups, control structures, heredocs and functions, nested.
fn script() -> impl Strategy<Value = String> {
    simple().prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            (
                inner.clone(),
                prop::sample::select(&[" ; ", " && ", " || ", " | ", " & ", "\n", " |& "][..]),
                inner.clone()
            )
                .prop_map(|(a, op, b)| format!("{a}{op}{b}")),
            inner.clone().prop_map(|s| format!("( {s} )")),
            inner.clone().prop_map(|s| format!("{{ {s}; }}")),
            inner.clone().prop_map(|s| format!("echo $({s})")),
            inner.clone().prop_map(|s| format!("echo `{s}`")),
            inner.clone().prop_map(|s| format!("bash -c {}", quote(&s))),
            inner
                .clone()
                .prop_map(|s| format!("sh -c \"{}\"", s.replace('"', "\\\""))),
            inner.clone().prop_map(|s| format!("eval {}", quote(&s))),
            inner.clone().prop_map(|s| format!("if true; then {s}; fi")),
            inner
                .clone()
                .prop_map(|s| format!("for x in a b; do {s}; done")),
            inner
                .clone()
                .prop_map(|s| format!("while false; do {s}; done")),
            inner.clone().prop_map(|s| format!("f() {{ {s}; }}; f")),
            inner
                .clone()
                .prop_map(|s| format!("bash <<'EOF'\n{s}\nEOF")),
            inner
                .clone()
                .prop_map(|s| format!("cat <<EOF | sh\n{s}\nEOF")),
            inner
                .clone()
                .prop_map(|s| format!("echo {} | bash", quote(&s))),
            inner
                .clone()
                .prop_map(|s| format!("xargs -I{{}} sh -c {} <<< x", quote(&s))),
            inner.prop_map(|s| format!("sudo -u root env A=1 nohup timeout 5 {s}")),
        ]
    })
}

/// A generated command line, usually mutated.
fn command_line() -> impl Strategy<Value = String> {
    (script(), prop::collection::vec(mutation(), 0..4)).prop_map(|(s, m)| mutate(s, &m))
}

/// `s` as one single-quoted shell word.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The commands the hook's table marks dangerous (read as data, never run).
fn dangerous_rows() -> Vec<String> {
    include_str!("data/hook_commands.tsv")
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let mut f = l.splitn(3, '\t');
            match (f.next(), f.next(), f.next()) {
                (Some("dangerous"), Some(_), Some(cmd)) => Some(cmd.to_string()),
                _ => None,
            }
        })
        .collect()
}

/// A dangerous row, or a generated line.
fn seed_command() -> impl Strategy<Value = String> {
    let rows = dangerous_rows();
    prop_oneof![
        2 => prop::sample::select(rows),
        1 => script(),
    ]
}

// ---------------------------------------------------------------------------------------
// Danger, as the hook judges it

/// How dangerous a classification is, ordered: whether the hook would hold it, whether
/// any action is dangerous, the highest risk.
fn danger(c: &Classification) -> (bool, bool, Option<Risk>) {
    let held = !c.unknown.is_empty()
        || c.actions
            .iter()
            .any(|a| a.destructive || a.risk == Risk::Critical);
    (held, c.is_dangerous(), c.max_risk())
}

/// Whether `after` is at least as dangerous as `before` in every respect.
fn no_safer(before: (bool, bool, Option<Risk>), after: (bool, bool, Option<Risk>)) -> bool {
    (!before.0 || after.0) && (!before.1 || after.1) && after.2 >= before.2
}

/// The workspace the cases run in, as a coding agent's would.
const WORKSPACE: &str = "/home/dev/project";

const HARMLESS: &[&str] = &[
    "true",
    ":",
    "echo ok",
    "pwd",
    "ls",
    "date",
    "whoami",
    "echo 'a;b'",
];

// ---------------------------------------------------------------------------------------
// Properties

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn random_text_never_panics_or_hangs(text in any::<String>(), cwd in prop::option::of("/[a-z/]{0,12}")) {
        let input = (text.clone(), cwd.clone());
        guarded(&input, move || classify_in(&text, cwd.as_deref()));
    }

    #[test]
    fn random_bytes_never_panic_or_hang(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let text = String::from_utf8_lossy(&bytes).into_owned();
        guarded(&text.clone(), move || classify(&text));
    }

    #[test]
    fn generated_command_lines_never_panic_or_hang(cmd in command_line(), in_workspace in any::<bool>()) {
        let cwd = in_workspace.then_some(WORKSPACE);
        let c = guarded(&cmd.clone(), move || classify_in(&cmd, cwd));
        for a in &c.actions {
            prop_assert_eq!(a.target.provider(), "shell");
        }
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn wrapping_in_bash_c_is_never_safer(cmd in seed_command(), shell in prop::sample::select(&["bash", "sh", "/bin/bash", "zsh"][..])) {
        let wrapped = format!("{shell} -c {}", quote(&cmd));
        let input = (cmd.clone(), wrapped.clone());
        let (before, after) = guarded(&input, move || {
            (classify_in(&cmd, Some(WORKSPACE)), classify_in(&wrapped, Some(WORKSPACE)))
        });
        prop_assert!(
            no_safer(danger(&before), danger(&after)),
            "{:?} → {:?}\nbefore: {:?}\nafter: {:?}", input.0, input.1, before, after
        );
    }

    #[test]
    fn harmless_commands_before_it_are_never_safer(
        cmd in seed_command(),
        prefix in prop::collection::vec(prop::sample::select(HARMLESS), 1..4),
        sep in prop::sample::select(&["; ", ";", "\n", " && "][..]),
    ) {
        let mut line = prefix.join(sep);
        line.push_str(sep);
        line.push_str(&cmd);
        let input = (cmd.clone(), line.clone());
        let (before, after) = guarded(&input, move || {
            (classify_in(&cmd, Some(WORKSPACE)), classify_in(&line, Some(WORKSPACE)))
        });
        prop_assert!(
            no_safer(danger(&before), danger(&after)),
            "{:?} → {:?}\nbefore: {:?}\nafter: {:?}", input.0, input.1, before, after
        );
    }
}

// ---------------------------------------------------------------------------------------
// Hook events

const TOOLS: &[&str] = &[
    "Bash",
    "Write",
    "Edit",
    "MultiEdit",
    "NotebookEdit",
    "Read",
    "Glob",
    "WebFetch",
    "mcp__github__delete_repo",
    "mcp__db__query",
    "mcp__airlock__sim_scale",
    "mcp__",
    "mcp____",
    "mcp__x",
    "Unknown",
    "",
    "bash",
];

/// A JSON value of any shape, with unicode, huge numbers and nesting.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::{Value, json};
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        odd_text().prop_map(Value::String),
        command_line().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{0,10}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A PreToolUse event: the fields a coding agent sends, some missing or of the wrong type.
fn hook_event() -> impl Strategy<Value = String> {
    use serde_json::{Value, json};
    let input = (
        prop::option::of(command_line()),
        prop::option::of(prop_oneof!["/[a-z/]{0,20}", "[a-z./]{0,12}", odd_text()]),
        prop::option::of(odd_text()),
        prop::collection::btree_map("[a-z_]{1,10}", json_value(), 0..3),
    )
        .prop_map(|(command, path, description, extra)| {
            let mut m: serde_json::Map<String, Value> = extra.into_iter().collect();
            if let Some(c) = command {
                m.insert("command".into(), json!(c));
            }
            if let Some(p) = path {
                m.insert("file_path".into(), json!(p));
            }
            if let Some(d) = description {
                m.insert("description".into(), json!(d));
            }
            Value::Object(m)
        });
    (
        prop::sample::select(TOOLS),
        prop_oneof![Just("PreToolUse".to_string()), odd_text()],
        input,
        prop::option::of(prop_oneof![
            Just(WORKSPACE.to_string()),
            "/[a-z/]{0,16}",
            odd_text()
        ]),
        prop::option::of(odd_text()),
        prop::option::weighted(0.1, json_value()),
        prop::collection::vec(mutation(), 0..2),
    )
        .prop_map(|(tool, name, input, cwd, session, wrong_type, edits)| {
            let mut ev = json!({"hook_event_name": name, "tool_name": tool, "tool_input": input});
            if let Some(c) = cwd {
                ev["cwd"] = json!(c);
            }
            if let Some(s) = session {
                ev["session_id"] = json!(s);
            }
            if let Some(junk) = wrong_type {
                // Any value where a string belongs.
                ev["tool_name"] = junk;
            }
            mutate(ev.to_string(), &edits)
        })
}

proptest! {
    #![proptest_config(config(384))]

    #[test]
    fn hook_events_parse_to_an_error_or_requests_that_plan(text in hook_event()) {
        let input = text.clone();
        let planned = guarded(&input, move || -> Result<(), String> {
            let ev: HookEvent = match serde_json::from_str(&text) {
                Ok(ev) => ev,
                Err(e) => {
                    let m = e.to_string();
                    return if m.is_empty() { Err("an empty parse error".into()) } else { Ok(()) };
                }
            };
            let asked = match requests(&ev) {
                Ok(r) => r,
                Err(e) if e.is_empty() => return Err("an empty refusal".into()),
                Err(_) => return Ok(()),
            };
            let shell = HookProvider::new("shell", "prod");
            let tool = HookProvider::new("tool", "prod");
            for (req, _) in &asked.requests {
                let provider = if req.provider == "shell" { &shell } else { &tool };
                let again: ActionRequest = serde_json::from_value(serde_json::to_value(req).unwrap())
                    .map_err(|e| format!("a request does not survive the wire: {e}"))?;
                ready(provider.plan(&again)).map_err(|e| {
                    format!("`{} {}` made from the event does not plan: {e}", req.verb, req.target)
                })?;
            }
            Ok(())
        });
        prop_assert!(planned.is_ok(), "{}: {:?}", planned.unwrap_err(), input);
    }

    #[test]
    fn hook_provider_plans_arbitrary_params_without_panicking(
        provider in prop::sample::select(&["shell", "tool"][..]),
        verb in prop::sample::select(&airlock_core::Verb::ALL[..]),
        name in "[a-z0-9._-]{1,20}",
        kind in prop::sample::select(&["command", "kubectl", "file", "agent", "mcp", "aws", "sql"][..]),
        params in prop::collection::btree_map(
            prop::sample::select(&["command", "segment", "cwd", "overflow", "unknown", "tool_name", "tool_input", "parts", "x"][..]),
            json_value(),
            0..5,
        ),
    ) {
        let target = airlock_core::ResourceAddr::new(provider, kind, &name).unwrap();
        let mut req = ActionRequest::new(verb, target);
        req.params = params.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        let input = req.clone();
        guarded(&input, move || {
            let p = HookProvider::new(provider, "prod");
            let _ = ready(p.plan(&req));
        });
    }
}

/// A regression check that the watchdog itself can fail: a case that never returns is
/// reported as a hang rather than waited on forever.
#[test]
#[should_panic(expected = "hang")]
fn the_watchdog_catches_a_hang() {
    guarded_for(Duration::from_millis(50), &"sleeper", || {
        std::thread::sleep(Duration::from_secs(2))
    });
}
