//! `airlock serve` end to end: the real binary on a free loopback port, driven over HTTP (as an
//! agent would) and through the operator subcommands (as a human would). Each test has a
//! directory, a journal and a server of its own; the sandbox cloud runs 20 simulated seconds
//! per real second and bakes last seconds, so a change goes from submitted to settled or
//! reverted while the test watches. Every wait is a bounded poll, never a fixed long sleep,
//! and every server is killed when its test ends, pass or fail.
// Marks the whole file as test code, so helpers outside `#[test]` fns may unwrap too.
#![cfg(test)]

use serde_json::{Value, json};
use std::fmt;
use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tempfile::TempDir;

/// The world every test runs: `web` and `api` serve steady traffic at half their capacity,
/// `scratch` serves none (deleting it has no live dependents and no headroom to protect, so
/// the default pack holds it for an operator rather than denying it), and version `bad`
/// fails 30% of requests. No noise, no daily swing: the signals are the changes' doing.
const WORLD: &str = r#"
name = "serve-e2e"
duration = "1h"

[agent]
name = "cost-cutter"
params = { env = "prod", act_at = "1h" }

[[region]]
name = "eu-west"
azs = ["eu-west-a", "eu-west-b"]

[[service]]
name = "web"
env = "prod"
region = "eu-west"
tier = "critical"
replicas = 4
capacity_rps = 100
demand = { base_rps = 200 }

[[service]]
name = "api"
env = "prod"
region = "eu-west"
replicas = 4
capacity_rps = 100
demand = { base_rps = 200 }

[[service]]
name = "scratch"
env = "prod"
region = "eu-west"
replicas = 2
capacity_rps = 100
demand = { base_rps = 0 }

[[version]]
name = "bad"
error_rate = 0.3
"#;

/// The pause between two polls; every wait is a bounded number of these.
const POLL: Duration = Duration::from_millis(100);

/// Statuses after which a change's fate is sealed.
const FINAL: [&str; 3] = ["settled", "reverted", "needs_attention"];

/// What a run of the binary left behind.
struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl fmt::Display for Out {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "exit code {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

impl Out {
    /// Asserts the exit code, showing everything printed when it is not the expected one.
    fn code(self, want: i32) -> Self {
        assert_eq!(self.code, Some(want), "{self}");
        self
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not one JSON document: {e}\n{self}"))
    }
}

/// A directory with a world, a config and a journal holding an operator `op` and an agent
/// `bot`, whose tokens the test keeps.
struct Env {
    dir: TempDir,
    config: PathBuf,
    op: String,
    bot: String,
}

impl Env {
    /// A fresh directory whose config bakes changes for `window_s` seconds.
    async fn new(window_s: u64) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("world.toml"), WORLD).unwrap();
        let store = dir.path().join("store").join("airlock.db");
        let config = dir.path().join("airlock.toml");
        std::fs::write(
            &config,
            format!(
                "[server]\npoll_interval_ms = 200\n\n\
                 [store]\nurl = '{}'\n\n\
                 [bake]\nwindow_s = {window_s}\njudge_window_s = 2\nmin_requests = 10\n\n\
                 [sim]\nworld = 'world.toml'\ntime_factor = 20\ntick_s = 1\n",
                store.display()
            ),
        )
        .unwrap();
        let mut env = Self {
            dir,
            config,
            op: String::new(),
            bot: String::new(),
        };
        let store = env.store();
        env.op = env
            .airlock(&["token", "create", "--operator", "op", "--store", &store])
            .await
            .code(0)
            .stdout
            .trim()
            .to_string();
        env.bot = env
            .airlock(&["token", "create", "--agent", "bot", "--store", &store])
            .await
            .code(0)
            .stdout
            .trim()
            .to_string();
        env
    }

    fn store(&self) -> String {
        self.dir
            .path()
            .join("store")
            .join("airlock.db")
            .display()
            .to_string()
    }

    /// Runs `airlock ARGS` in the directory, off the async workers (it blocks until it exits).
    async fn airlock(&self, args: &[&str]) -> Out {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_airlock"));
        cmd.args(args)
            .current_dir(self.dir.path())
            .env_remove("AIRLOCK_STORE")
            .env_remove("AIRLOCK_URL")
            .env_remove("AIRLOCK_TOKEN")
            .env_remove("AIRLOCK_CONFIG")
            .env_remove("AIRLOCK_LOG");
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

    /// An operator subcommand against `server`, with `op`'s token, answering in JSON.
    async fn operator(&self, server: &Server, args: &[&str]) -> Out {
        let mut all = args.to_vec();
        all.extend(["--url", &server.url, "--token", &self.op, "--json"]);
        self.airlock(&all).await
    }

    /// Starts `airlock serve` on this directory's config, on a free port, and waits until it
    /// answers `/healthz`.
    async fn serve(&self, extra: &[&str]) -> Server {
        // The port is free when probed but may be taken before the server binds it (by
        // another test's server): then the server exits at once and we try another port.
        for _ in 0..3 {
            let port = free_port();
            let log = self.dir.path().join(format!("serve-{port}.log"));
            let child = Command::new(env!("CARGO_BIN_EXE_airlock"))
                .arg("serve")
                .arg("--config")
                .arg(&self.config)
                .args(["--listen", &format!("127.0.0.1:{port}")])
                .args(extra)
                .current_dir(self.dir.path())
                .env_remove("AIRLOCK_STORE")
                .env_remove("AIRLOCK_CONFIG")
                .env("AIRLOCK_LOG", "info")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                // A file, not a pipe: nobody has to drain it, and it can be read after a kill.
                .stderr(File::create(&log).unwrap())
                .spawn()
                .unwrap();
            let mut server = Server {
                child,
                url: format!("http://127.0.0.1:{port}"),
                log,
                http: reqwest::Client::new(),
            };
            if server.wait_ready(&self.op).await {
                return server;
            }
        }
        panic!("airlock serve could not bind a free port in 3 tries");
    }
}

/// A port nothing listens on right now: bind port 0, note what the kernel gave, let it go.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `airlock serve`; dropping it kills the process.
struct Server {
    child: Child,
    url: String,
    log: PathBuf,
    http: reqwest::Client,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Server {
    /// Polls `/healthz` until the server answers; false if it could not bind its port.
    async fn wait_ready(&mut self, op: &str) -> bool {
        // Up to 30 s: the binary is built, but others may be compiling on the same cores.
        for _ in 0..300 {
            if let Some(status) = self.child.try_wait().unwrap() {
                let log = self.log();
                if log.contains("cannot listen on") {
                    return false;
                }
                panic!("airlock serve exited with {status} before it was ready\n--- stderr\n{log}");
            }
            if let Ok(r) = self.http.get(format!("{}/healthz", self.url)).send().await
                && r.status().is_success()
            {
                // Tokens belong to one journal: only our own server knows the operator's.
                let (status, v) = self
                    .call(reqwest::Method::GET, "/v1/killswitch", op, None)
                    .await;
                assert_eq!(status, 200, "another server answers on {}: {v}", self.url);
                return true;
            }
            tokio::time::sleep(POLL).await;
        }
        panic!(
            "airlock serve did not answer /healthz in 30 s\n--- stderr\n{}",
            self.log()
        );
    }

    /// What the server wrote to stderr so far.
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL: no shutdown, no flush, as a crash or an OOM kill would stop it.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits (bounded) for a graceful exit; returns the exit code.
    async fn stop(&mut self) -> Option<i32> {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success(), "cannot send SIGTERM to {pid}");
        for _ in 0..100 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            tokio::time::sleep(POLL).await;
        }
        panic!(
            "airlock serve did not stop within 10 s of SIGTERM\n--- stderr\n{}",
            self.log()
        );
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let json = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{path} answered {status} with no JSON ({e}): {text}"));
        (status, json)
    }

    async fn get(&self, path: &str, token: &str) -> Value {
        let (status, v) = self.call(reqwest::Method::GET, path, token, None).await;
        assert_eq!(status, 200, "GET {path}: {v}");
        v
    }

    async fn post(&self, path: &str, token: &str, body: &Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, token, Some(body))
            .await
    }

    /// Submits an action that must be allowed and applied; returns the decision.
    async fn applied(&self, token: &str, action: &Value) -> Value {
        let (status, v) = self.post("/v1/actions", token, action).await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["verdict"], "allow", "{v}");
        assert_eq!(v["status"], "baking", "{v}");
        assert!(v["change_id"].is_string(), "{v}");
        v
    }

    /// Polls an action until its status is one of `want`, for at most `tries` polls.
    async fn wait_for(&self, token: &str, id: &str, want: &[&str], tries: u32) -> Value {
        let mut last = Value::Null;
        for _ in 0..tries {
            last = self.get(&format!("/v1/actions/{id}"), token).await;
            if want.iter().any(|w| last["status"] == *w) {
                return last;
            }
            tokio::time::sleep(POLL).await;
        }
        panic!(
            "action {id} did not reach {want:?} in {} s; last seen: {last}\n--- server stderr\n{}",
            f64::from(tries) * POLL.as_secs_f64(),
            self.log()
        );
    }

    /// A service as the sandbox cloud shows it now, through an agent's read.
    async fn describe(&self, token: &str, service: &str) -> Value {
        let (status, v) = self
            .post("/v1/actions", token, &action("read", service, json!({})))
            .await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["verdict"], "allow", "{v}");
        assert_eq!(v["status"], "done", "{v}");
        v["result"][0].clone()
    }

    /// The journal's events of one kind about one change (operator endpoint).
    async fn events(&self, op: &str, kind: &str, change: &str) -> Vec<Value> {
        let page = self
            .get(&format!("/v1/journal?kind={kind}&limit=1000"), op)
            .await;
        assert!(page["next"].is_null(), "more than one page of `{kind}`");
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["change_id"] == change)
            .cloned()
            .collect()
    }
}

fn action(verb: &str, service: &str, params: Value) -> Value {
    json!({"provider": "sim", "verb": verb, "target": format!("sim:service/{service}"), "params": params})
}

fn scale(service: &str, replicas: u32) -> Value {
    action("scale", service, json!({"replicas": replicas}))
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_held_delete_is_approved_then_applied_and_baked_to_settled() {
    let env = Env::new(3).await;
    let server = env.serve(&[]).await;

    let (status, held) = server
        .post(
            "/v1/actions",
            &env.bot,
            &action("delete", "scratch", json!({})),
        )
        .await;
    assert_eq!(status, 202, "{held}");
    assert_eq!(held["verdict"], "hold", "{held}");
    assert_eq!(held["status"], "held", "{held}");
    assert_eq!(
        held["reasons"],
        json!(["prod-destructive-needs-approval"]),
        "{held}"
    );
    let action_id = text(&held["id"]);
    let approval = text(&held["approval_id"]);
    // Held means nothing happened yet.
    assert_eq!(server.describe(&env.bot, "scratch").await["exists"], true);

    let pending = env.operator(&server, &["approvals"]).await.code(0).json();
    assert!(
        pending["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["id"] == approval),
        "{pending}"
    );

    let approved = env
        .operator(
            &server,
            &["approve", approval, "--reason", "scratch is unused"],
        )
        .await
        .code(0)
        .json();
    assert_eq!(approved["verdict"], "allow", "{approved}");
    assert_eq!(approved["status"], "baking", "{approved}");
    assert_eq!(approved["id"], action_id, "{approved}");
    let change = text(&approved["change_id"]);
    assert_eq!(server.describe(&env.bot, "scratch").await["exists"], false);

    // A 3 s bake, polled every 200 ms: settled well within 15 s.
    let done = server.wait_for(&env.bot, action_id, &FINAL, 150).await;
    assert_eq!(done["status"], "settled", "{done}");
    assert_eq!(done["change_id"], change, "{done}");
    assert_eq!(done["approval_id"], approval, "{done}");
    assert_eq!(server.events(&env.op, "settled", change).await.len(), 1);
    assert_eq!(server.describe(&env.bot, "scratch").await["exists"], false);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_deploy_breaches_its_bake_and_is_reverted_automatically() {
    let env = Env::new(3).await;
    let server = env.serve(&[]).await;

    let (status, v) = server
        .post(
            "/v1/actions?wait=true&timeout_s=20",
            &env.bot,
            &action("deploy", "web", json!({"version": "bad"})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["verdict"], "allow", "{v}");
    assert_eq!(v["waited"], "done", "{v}\n{}", server.log());
    assert_eq!(v["status"], "reverted", "{v}");
    let change = text(&v["change_id"]);
    let action_id = text(&v["id"]);

    let breaches = server.events(&env.op, "breach", change).await;
    assert_eq!(breaches.len(), 1, "{breaches:?}");
    let breach = &breaches[0];
    assert_eq!(breach["payload"]["service"], "web", "{breach}");
    assert!(
        text(&breach["payload"]["rule"]).contains("availability"),
        "{breach}"
    );
    assert_eq!(breach["action_id"], action_id, "{breach}");

    let reverts = server.events(&env.op, "reverted", change).await;
    assert_eq!(reverts.len(), 1, "{reverts:?}");
    let revert = &reverts[0];
    assert_eq!(revert["payload"]["by"], "airlock", "{revert}");
    assert_eq!(revert["action_id"], action_id, "{revert}");
    assert!(
        revert["seq"].as_i64() > breach["seq"].as_i64(),
        "the revert comes after the breach: {breach} {revert}"
    );
    assert_eq!(server.describe(&env.bot, "web").await["version"], "v1");
}

#[tokio::test(flavor = "multi_thread")]
async fn undo_reverts_every_change_of_an_agent_session() {
    let env = Env::new(3).await;
    let server = env.serve(&[]).await;

    let first = server.applied(&env.bot, &scale("web", 5)).await;
    let second = server.applied(&env.bot, &scale("api", 5)).await;
    assert_eq!(
        server.describe(&env.bot, "web").await["replicas_desired"],
        5
    );
    assert_eq!(
        server.describe(&env.bot, "api").await["replicas_desired"],
        5
    );

    let out = env
        .operator(&server, &["undo", "--agent", "bot", "--since", "10m"])
        .await
        .code(0)
        .json();
    assert_eq!(out["reverted"], 2, "{out}");
    assert_eq!(out["stopped_on_conflict"], false, "{out}");
    // Newest first.
    let order: Vec<&Value> = out["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| &i["change_id"])
        .collect();
    assert_eq!(order, [&second["change_id"], &first["change_id"]], "{out}");

    for d in [&first, &second] {
        let v = server.wait_for(&env.bot, text(&d["id"]), &FINAL, 1).await;
        assert_eq!(v["status"], "reverted", "{v}");
    }
    assert_eq!(
        server.describe(&env.bot, "web").await["replicas_desired"],
        4
    );
    assert_eq!(
        server.describe(&env.bot, "api").await["replicas_desired"],
        4
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_kill_switch_denies_mutations_and_lets_reads_through() {
    let env = Env::new(3).await;
    let server = env.serve(&[]).await;

    env.operator(&server, &["killswitch", "on"]).await.code(0);
    assert_eq!(
        server.get("/v1/killswitch", &env.op).await["killswitch"],
        "on"
    );
    let (status, v) = server.post("/v1/actions", &env.bot, &scale("web", 5)).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["verdict"], "deny", "{v}");
    assert_eq!(v["status"], "denied", "{v}");
    assert!(
        v["reasons"]
            .as_array()
            .unwrap()
            .contains(&json!("killswitch")),
        "{v}"
    );
    assert!(v["change_id"].is_null(), "{v}");
    let web = server.describe(&env.bot, "web").await;
    assert_eq!(web["replicas_desired"], 4, "{web}");

    env.operator(&server, &["killswitch", "off"]).await.code(0);
    assert_eq!(
        server.get("/v1/killswitch", &env.op).await["killswitch"],
        "off"
    );
    server.applied(&env.bot, &scale("web", 5)).await;
    assert_eq!(
        server.describe(&env.bot, "web").await["replicas_desired"],
        5
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_killed_in_the_middle_of_a_bake_resumes_it_without_applying_twice() {
    // A 30 s bake: long enough to kill and restart the server well inside it.
    let env = Env::new(30).await;
    let store = env.store();
    let mut first = env.serve(&[]).await;
    let d = first.applied(&env.bot, &scale("web", 6)).await;
    let action_id = text(&d["id"]).to_string();
    let change = text(&d["change_id"]).to_string();
    assert_eq!(
        first.get(&format!("/v1/changes/{change}"), &env.op).await["status"],
        "baking"
    );
    first.kill();

    // What the crash left: the world as applied, and an intact journal.
    let saved: Value = serde_json::from_str(
        &std::fs::read_to_string(env.dir.path().join("store").join("sim-state.json")).unwrap(),
    )
    .unwrap();
    let total: u64 = saved["web"]["replicas"]
        .as_object()
        .unwrap()
        .values()
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(total, 6, "{saved}");
    let report = env
        .airlock(&["journal", "verify", "--store", &store, "--json"])
        .await
        .code(0)
        .json();
    assert_eq!(report["ok"], true, "{report}");

    let mut second = env.serve(&[]).await;
    assert!(
        second.log().contains("resumed baking changes"),
        "{}",
        second.log()
    );
    // Still baking: resumed, not settled on the spot and not reverted for the restart.
    assert_eq!(
        second.get(&format!("/v1/changes/{change}"), &env.op).await["status"],
        "baking"
    );
    assert_eq!(
        second.describe(&env.bot, "web").await["replicas_desired"],
        6
    );

    // The window ends 30 s after the apply; 45 s of polls leave room for a slow machine.
    let done = second.wait_for(&env.bot, &action_id, &FINAL, 450).await;
    // Nothing in this world can breach a scale-up (no noise, half the capacity in use, the
    // world reloaded warm), so a revert here would be the restart's doing.
    assert_eq!(
        done["status"],
        "settled",
        "{done}\n--- stderr\n{}",
        second.log()
    );
    assert_eq!(second.events(&env.op, "applied", &change).await.len(), 1);
    assert_eq!(second.events(&env.op, "settled", &change).await.len(), 1);
    assert_eq!(
        second.describe(&env.bot, "web").await["replicas_desired"],
        6
    );

    assert_eq!(second.stop().await, Some(0), "{}", second.log());
    let report = env
        .airlock(&["journal", "verify", "--store", &store, "--json"])
        .await
        .code(0)
        .json();
    assert_eq!(report["ok"], true, "{report}");
}

#[tokio::test(flavor = "multi_thread")]
async fn log_format_json_writes_json_log_lines() {
    let env = Env::new(3).await;
    let mut server = env.serve(&["--log-format", "json"]).await;
    server.kill();
    let log = server.log();
    let line = log
        .lines()
        .find(|l| l.contains("airlock listening"))
        .unwrap_or_else(|| panic!("no `airlock listening` line\n--- stderr\n{log}"));
    let v: Value = serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}\n--- stderr\n{log}"));
    assert_eq!(v["level"], "INFO", "{v}");
    assert_eq!(v["fields"]["message"], "airlock listening", "{v}");
}

/// Regression: `airlock serve` printed every start-up error's detail twice (the message
/// repeated its source, and the whole chain is printed), e.g. `cannot listen on A: Address
/// already in use (os error 98): Address already in use (os error 98)`.
#[tokio::test(flavor = "multi_thread")]
async fn a_port_in_use_is_reported_once_with_its_address() {
    let env = Env::new(3).await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let config = env.config.display().to_string();
    let out = env
        .airlock(&["serve", "--config", &config, "--listen", &addr])
        .await
        .code(1);
    let line = out
        .stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_else(|| panic!("no error line\n{out}"));
    assert!(
        line.contains(&format!("cannot listen on {addr}: ")),
        "{out}"
    );
    assert_eq!(line.matches("in use").count(), 1, "{out}");
}
