//! Helpers shared by the end-to-end tests: a directory with a config and a journal, the
//! real binary run in it, and `airlock serve` on a free loopback port.
// Each test file uses a part of these helpers.
#![allow(dead_code)]

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
pub const WORLD: &str = r#"
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
pub const POLL: Duration = Duration::from_millis(100);

/// Statuses after which a change's fate is sealed.
pub const FINAL: [&str; 4] = ["settled", "unjudged", "reverted", "needs_attention"];

/// What a run of the binary left behind.
pub struct Out {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
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
    pub fn code(self, want: i32) -> Self {
        assert_eq!(self.code, Some(want), "{self}");
        self
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not one JSON document: {e}\n{self}"))
    }
}

/// A directory with a world, a config and a journal holding an operator `op` and an agent
/// `bot`, whose tokens the test keeps.
pub struct Env {
    pub dir: TempDir,
    pub config: PathBuf,
    pub op: String,
    pub bot: String,
    /// The store's location: a file in the directory, or a shared database.
    pub store_url: String,
}

impl Env {
    /// A fresh directory running `world`, whose config bakes changes for `window_s` seconds;
    /// `extra` is appended to the config.
    pub async fn new(world: &str, extra: &str, window_s: u64) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("world.toml"), world).unwrap();
        let config = format!(
            "[server]\npoll_interval_ms = 200\n\n\
             [bake]\nwindow_s = {window_s}\njudge_window_s = 2\nmin_requests = 10\n\n\
             [sim]\nworld = 'world.toml'\ntime_factor = 20\ntick_s = 1\n\n{extra}"
        );
        Self::in_dir(dir, &config).await
    }

    /// A fresh directory with `config` (a `[store]` in the directory is added to it).
    pub async fn with_config(config: &str) -> Self {
        Self::in_dir(tempfile::tempdir().unwrap(), config).await
    }

    async fn in_dir(dir: TempDir, text: &str) -> Self {
        let store = dir.path().join("store").join("airlock.db");
        let store = store.display().to_string();
        Self::in_dir_on(dir, text, &store, None).await
    }

    /// A fresh directory running `world` like [`Env::new`], on a store shared with other
    /// directories (a replica's): `tokens` are the operator's and the bot's, issued by the
    /// first directory on the store, else issued here.
    pub async fn on_store(
        world: &str,
        window_s: u64,
        store: &str,
        tokens: Option<(&str, &str)>,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("world.toml"), world).unwrap();
        let config = format!(
            "[server]\npoll_interval_ms = 200\n\n\
             [bake]\nwindow_s = {window_s}\njudge_window_s = 2\nmin_requests = 10\n\n\
             [sim]\nworld = 'world.toml'\ntime_factor = 20\ntick_s = 1\n"
        );
        Self::in_dir_on(dir, &config, store, tokens).await
    }

    async fn in_dir_on(
        dir: TempDir,
        text: &str,
        store: &str,
        tokens: Option<(&str, &str)>,
    ) -> Self {
        let config = dir.path().join("airlock.toml");
        std::fs::write(&config, format!("[store]\nurl = '{store}'\n\n{text}")).unwrap();
        let mut env = Self {
            dir,
            config,
            op: String::new(),
            bot: String::new(),
            store_url: store.to_string(),
        };
        if let Some((op, bot)) = tokens {
            env.op = op.to_string();
            env.bot = bot.to_string();
            return env;
        }
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

    pub fn store(&self) -> String {
        self.store_url.clone()
    }

    /// Runs `airlock ARGS` in the directory, off the async workers (it blocks until it exits).
    pub async fn airlock(&self, args: &[&str]) -> Out {
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

    /// Every event of this directory's journal (`airlock journal export`).
    pub async fn journal(&self) -> Vec<Value> {
        let out = self
            .airlock(&[
                "journal",
                "export",
                "--format",
                "jsonl",
                "--store",
                &self.store(),
            ])
            .await
            .code(0);
        out.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// An operator subcommand against `server`, with `op`'s token, answering in JSON.
    pub async fn operator(&self, server: &Server, args: &[&str]) -> Out {
        let mut all = args.to_vec();
        all.extend(["--url", &server.url, "--token", &self.op, "--json"]);
        self.airlock(&all).await
    }

    /// Starts `airlock serve` on this directory's config, on a free port, and waits until it
    /// answers `/healthz`.
    pub async fn serve(&self, extra: &[&str]) -> Server {
        self.serve_with_env(extra, &[]).await
    }

    /// [`Env::serve`] with more environment variables for the server.
    pub async fn serve_with_env(&self, extra: &[&str], vars: &[(&str, &str)]) -> Server {
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
                .envs(vars.iter().copied())
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
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `airlock serve`; dropping it kills the process.
pub struct Server {
    pub child: Child,
    pub url: String,
    pub log: PathBuf,
    pub http: reqwest::Client,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Server {
    /// Polls `/healthz` until the server answers; false if it could not bind its port.
    pub async fn wait_ready(&mut self, op: &str) -> bool {
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
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL: no shutdown, no flush, as a crash or an OOM kill would stop it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits (bounded) for a graceful exit; returns the exit code.
    pub async fn stop(&mut self) -> Option<i32> {
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

    pub async fn call(
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

    pub async fn get(&self, path: &str, token: &str) -> Value {
        let (status, v) = self.call(reqwest::Method::GET, path, token, None).await;
        assert_eq!(status, 200, "GET {path}: {v}");
        v
    }

    pub async fn post(&self, path: &str, token: &str, body: &Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, token, Some(body))
            .await
    }

    /// Submits an action that must be allowed and applied; returns the decision.
    pub async fn applied(&self, token: &str, action: &Value) -> Value {
        let (status, v) = self.post("/v1/actions", token, action).await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["verdict"], "allow", "{v}");
        assert_eq!(v["status"], "baking", "{v}");
        assert!(v["change_id"].is_string(), "{v}");
        v
    }

    /// Deploys the failing version `bad` to `service`, waits (up to 30 s) for the outcome
    /// and asserts it was allowed and reverted by its bake; returns the action's view.
    pub async fn bad_deploy_reverted(&self, token: &str, service: &str) -> Value {
        let (status, v) = self
            .post(
                "/v1/actions?wait=true&timeout_s=30",
                token,
                &action("deploy", service, json!({"version": "bad"})),
            )
            .await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["verdict"], "allow", "{v}");
        assert_eq!(v["waited"], "done", "{v}\n{}", self.log());
        assert_eq!(v["status"], "reverted", "{v}\n{}", self.log());
        v
    }

    /// Polls an action until its status is one of `want`, for at most `tries` polls.
    pub async fn wait_for(&self, token: &str, id: &str, want: &[&str], tries: u32) -> Value {
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
    pub async fn describe(&self, token: &str, service: &str) -> Value {
        let (status, v) = self
            .post("/v1/actions", token, &action("read", service, json!({})))
            .await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["verdict"], "allow", "{v}");
        assert_eq!(v["status"], "done", "{v}");
        v["result"][0].clone()
    }

    /// The journal's events of one kind about one change (operator endpoint).
    pub async fn events(&self, op: &str, kind: &str, change: &str) -> Vec<Value> {
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

pub fn action(verb: &str, service: &str, params: Value) -> Value {
    json!({"provider": "sim", "verb": verb, "target": format!("sim:service/{service}"), "params": params})
}

pub fn scale(service: &str, replicas: u32) -> Value {
    action("scale", service, json!({"replicas": replicas}))
}

pub fn text(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

/// Runs `cmd` with `input` on its stdin, off the async workers; returns what it printed.
pub async fn run_with_stdin(mut cmd: Command, input: String) -> std::process::Output {
    use std::io::Write;
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    tokio::task::spawn_blocking(move || {
        let mut child = cmd.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap()
}
