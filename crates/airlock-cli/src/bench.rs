//! `airlock bench http`: allow-path submissions through HTTP with the durable SQLite
//! journal, at a fixed arrival rate, against a no-op axum handler measured in the same run.

use anyhow::{Context, Result};
use axum::Router;
use axum::routing::post;
use clap::Args;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use serde_json::json;
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Args)]
pub struct HttpBenchArgs {
    /// Arrival rate, requests per second (open loop: requests are sent on schedule).
    #[arg(long, default_value_t = 500)]
    rate: u32,
    /// Seconds of load per target.
    #[arg(long, default_value_t = 10)]
    seconds: u32,
    /// Requests in flight at once for the saturation runs (closed loop).
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Services in the sandbox world the mutations scale (each worker its own).
    #[arg(long, default_value_t = 2000)]
    services: usize,
    /// An agent's `mutations_per_minute` for the budget check: three times as many
    /// concurrent mutations are sent, and exactly this many must be allowed.
    #[arg(long, default_value_t = 200)]
    budget: usize,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

struct Stats {
    sent: usize,
    ok: usize,
    elapsed_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

#[expect(clippy::disallowed_methods, reason = "a benchmark measures real time")]
pub(crate) fn now() -> Instant {
    Instant::now()
}

async fn drive(
    url: String,
    body: serde_json::Value,
    token: Option<String>,
    rate: u32,
    seconds: u32,
) -> Result<Stats> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?;
    let total = (rate * seconds) as usize;
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate));
    // Warm the connection pool and the server's caches.
    for _ in 0..20 {
        let mut r = client.post(&url).json(&body);
        if let Some(t) = &token {
            r = r.bearer_auth(t);
        }
        let _ = r.send().await;
    }
    let start = now();
    let mut tasks = Vec::with_capacity(total);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for _ in 0..total {
        ticker.tick().await;
        let mut r = client.post(&url).json(&body);
        if let Some(t) = &token {
            r = r.bearer_auth(t);
        }
        tasks.push(tokio::spawn(async move {
            let t0 = now();
            let ok = matches!(r.send().await, Ok(resp) if resp.status().is_success());
            (ok, t0.elapsed().as_secs_f64() * 1000.0)
        }));
    }
    // Only answered requests have a latency worth reporting: a failure's time (a refused
    // connection returns at once) would flatter the percentiles.
    let mut lat = Vec::with_capacity(total);
    let mut ok = 0;
    for t in tasks {
        let (good, ms) = t.await?;
        if good {
            ok += 1;
            lat.push(ms);
        }
    }
    let elapsed_s = start.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    Ok(Stats {
        sent: total,
        ok,
        elapsed_s,
        p50_ms: percentile(&lat, 0.50),
        p99_ms: percentile(&lat, 0.99),
        max_ms: lat.last().copied().unwrap_or(0.0),
    })
}

pub async fn http(args: HttpBenchArgs) -> Result<ExitCode> {
    let gate = InProcess::start("").await?;
    let (base, token) = (gate.base.clone(), gate.token.clone());

    let noop_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let noop_addr = noop_listener.local_addr()?;
    let noop = Router::new().route(
        "/noop",
        post(|| async { axum::Json(json!({"verdict": "allow"})) }),
    );
    let noop_task = tokio::spawn(async move { axum::serve(noop_listener, noop).await });

    let body = json!({"provider": "sim", "verb": "read", "target": "sim:service/checkout", "intent": "benchmark"});
    let airlock = drive(
        format!("{base}/v1/actions"),
        body.clone(),
        Some(token),
        args.rate,
        args.seconds,
    )
    .await?;
    let baseline = drive(
        format!("http://{noop_addr}/noop"),
        body.clone(),
        None,
        args.rate,
        args.seconds,
    )
    .await?;
    // Saturation: reads, closed loop, against the same load on the no-op handler.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .build()?;
    let read_req: crate::bench_load::MakeRequest = {
        let (url, token, client, body) = (
            format!("{base}/v1/actions"),
            gate.token.clone(),
            client.clone(),
            body.clone(),
        );
        std::sync::Arc::new(move |_, _| client.post(&url).bearer_auth(&token).json(&body))
    };
    let noop_req: crate::bench_load::MakeRequest = {
        let (url, client, body) = (
            format!("http://{noop_addr}/noop"),
            client.clone(),
            body.clone(),
        );
        std::sync::Arc::new(move |_, _| client.post(&url).json(&body))
    };
    let secs = f64::from(args.seconds);
    let reads =
        crate::bench_load::closed_loop(args.concurrency, secs, None, false, read_req).await?;
    let noop_load =
        crate::bench_load::closed_loop(args.concurrency, secs, None, false, noop_req).await?;
    noop_task.abort();
    let report = gate.finish().await?;

    // Mutations on distinct resources, and a budget under concurrency, on a world of many
    // services; the guards are on, with limits the run stays under (but for the budget).
    let world_dir = tempfile::tempdir()?;
    let world = world_dir.path().join("world.toml");
    // The budget check scales services 0, 1, … one per request; the mutations, their own.
    let budget_sent = (args.budget * 3).div_ceil(args.concurrency) * args.concurrency;
    std::fs::write(
        &world,
        crate::bench_load::world(args.services.max(budget_sent)),
    )?;
    let gate = InProcess::start_with(
        &format!(
            "[sim]\nworld = \"{}\"\n[guards]\nmutations_per_minute = 100000000\nmax_capacity_cut_pct = 100.0\nmax_capacity_add_pct = 1000000.0\n[anomaly]\nquarantine = false\n[profile.budgeted.guards]\nmutations_per_minute = {}\n[profile.budgeted.anomaly]\nenabled = false\n",
            world.display(),
            args.budget
        ),
        &[("bench-budgeted".to_string(), Some("budgeted"))],
    )
    .await?;
    let budget_run = {
        let (url, token, client) = (
            format!("{}/v1/actions", gate.base),
            gate.agents[0].clone(),
            client.clone(),
        );
        let workers = args.concurrency;
        let make: crate::bench_load::MakeRequest = std::sync::Arc::new(move |w, i| {
            let k = w + i * workers;
            client
                .post(&url)
                .bearer_auth(&token)
                .json(&crate::bench_load::scale(k, 5))
        });
        let per_worker = (args.budget * 3).div_ceil(workers);
        crate::bench_load::closed_loop(workers, 600.0, Some(per_worker), true, make).await?
    };
    let mutations = crate::bench_load::closed_loop(
        args.concurrency,
        secs,
        None,
        true,
        crate::bench_load::mutations(&gate, &client, args.services, args.concurrency),
    )
    .await?;
    let mreport = gate.finish().await?;
    let budget_exact = budget_run.allowed == args.budget;

    let row = |name: &str, s: &Stats| {
        json!({"target": name, "sent": s.sent, "ok": s.ok, "achieved_rps": s.ok as f64 / s.elapsed_s,
               "p50_ms": s.p50_ms, "p99_ms": s.p99_ms, "max_ms": s.max_ms})
    };
    let out = json!({
        "rate": args.rate, "seconds": args.seconds,
        "results": [row("airlock POST /v1/actions (read, allow path, durable journal)", &airlock), row("no-op axum handler", &baseline)],
        "ratio_p50": airlock.p50_ms / baseline.p50_ms.max(1e-9),
        "ratio_p99": airlock.p99_ms / baseline.p99_ms.max(1e-9),
        "saturation": {
            "concurrency": args.concurrency,
            "reads": reads.row("airlock reads, allow path"),
            "mutations": mutations.row("airlock mutations on distinct resources, applied"),
            "noop": noop_load.row("no-op axum handler"),
            "ratio_reads_to_noop": reads.per_s() / noop_load.per_s().max(1e-9),
            "budget": {"mutations_per_minute": args.budget, "sent": budget_run.sent, "answered": budget_run.ok,
                       "allowed": budget_run.allowed, "exact": budget_exact},
        },
        "journal_events": report.events + mreport.events, "journal_verified": report.ok() && mreport.ok(),
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        let mut t = Table::new();
        t.load_style(UTF8_FULL_CONDENSED).set_header([
            "target",
            "sent",
            "ok",
            "achieved rps",
            "p50 ms",
            "p99 ms",
            "max ms",
        ]);
        for (name, s) in [
            ("airlock allow path (read, durable journal)", &airlock),
            ("no-op axum handler", &baseline),
        ] {
            t.add_row([
                name.to_string(),
                s.sent.to_string(),
                s.ok.to_string(),
                format!("{:.0}", s.ok as f64 / s.elapsed_s),
                format!("{:.2}", s.p50_ms),
                format!("{:.2}", s.p99_ms),
                format!("{:.2}", s.max_ms),
            ]);
        }
        println!("open loop at {} requests/s:\n{t}", args.rate);
        println!(
            "ratio to no-op: p50 {:.1}x, p99 {:.1}x",
            out["ratio_p50"].as_f64().unwrap_or(0.0),
            out["ratio_p99"].as_f64().unwrap_or(0.0),
        );
        let mut t = Table::new();
        t.load_style(UTF8_FULL_CONDENSED).set_header([
            "target",
            "sent",
            "ok",
            "allowed",
            "per second",
            "p50 ms",
            "p99 ms",
        ]);
        for (name, l) in [
            ("airlock reads (allow path)", &reads),
            (
                "airlock mutations, distinct resources (applied)",
                &mutations,
            ),
            ("no-op axum handler", &noop_load),
        ] {
            t.add_row([
                name.to_string(),
                l.sent.to_string(),
                l.ok.to_string(),
                l.allowed.to_string(),
                format!("{:.0}", l.per_s()),
                format!("{:.2}", l.p50_ms),
                format!("{:.2}", l.p99_ms),
            ]);
        }
        println!("saturation, {} in flight:\n{t}", args.concurrency);
        println!(
            "budget of {} mutations a minute, {} sent at once by {} workers: {} allowed ({}); journals {} events, chains {}",
            args.budget,
            budget_run.sent,
            args.concurrency,
            budget_run.allowed,
            if budget_exact { "exact" } else { "NOT EXACT" },
            report.events + mreport.events,
            if report.ok() && mreport.ok() {
                "verified"
            } else {
                "BROKEN"
            }
        );
    }
    let mut code = verdict(
        &report,
        &[
            ("airlock", airlock.sent - airlock.ok),
            ("no-op", baseline.sent - baseline.ok),
            ("saturation read", reads.sent - reads.ok),
            ("mutation", mutations.sent - mutations.ok),
            ("budget-check", budget_run.sent - budget_run.ok),
        ],
    );
    if verdict(&mreport, &[]) != ExitCode::SUCCESS {
        code = ExitCode::FAILURE;
    }
    if !budget_exact {
        eprintln!(
            "airlock bench: {} of {} budgeted mutations were allowed: the budget is not exact",
            budget_run.allowed, args.budget
        );
        code = ExitCode::FAILURE;
    }
    if mutations.allowed < mutations.ok {
        eprintln!(
            "airlock bench: {} of {} mutations were not allowed: the run did not measure applies",
            mutations.ok - mutations.allowed,
            mutations.ok
        );
        code = ExitCode::FAILURE;
    }
    Ok(code)
}

/// A benchmark whose journal chain is broken or whose requests failed measured nothing
/// trustworthy: exit code 1, with why on stderr (the figures are still printed).
pub(crate) fn verdict(report: &airlock_store::VerifyReport, failed: &[(&str, usize)]) -> ExitCode {
    let mut bad = false;
    if !report.ok() {
        eprintln!("airlock bench: the journal's chain does not verify: the run is not valid");
        bad = true;
    }
    for (name, n) in failed.iter().filter(|(_, n)| *n > 0) {
        eprintln!("airlock bench: {n} {name} requests failed: the run is not valid");
        bad = true;
    }
    if bad {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

pub(crate) fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

#[derive(Args)]
pub struct McpBenchArgs {
    /// The upstream MCP server's streamable-HTTP endpoint (for example the test fixture:
    /// `python3 crates/airlock-server/tests/mcp/upstream_server.py --transport http --port 8765 --state /tmp/n.json`).
    #[arg(long)]
    upstream_url: String,
    /// The MCP client that makes the calls: the official Python SDK (`python3` with the
    /// `mcp` package, as in `crates/airlock-server/tests/mcp/requirements.txt`) or rmcp.
    #[arg(long, value_enum, default_value_t = McpClient::Python)]
    client: McpClient,
    /// The upstream read tool to call (every proxied call is allowed and answered).
    #[arg(long, default_value = "echo")]
    tool: String,
    /// Its arguments, as a JSON object.
    #[arg(long, default_value = r#"{"text":"ping"}"#)]
    arguments: String,
    /// An upstream tool that changes something, timed the same way (each proxied call is
    /// journaled durably before the upstream is called); empty for none.
    #[arg(long, default_value = "create_note")]
    mutation_tool: String,
    /// Its arguments, as a JSON object.
    #[arg(long, default_value = r#"{"name":"bench","text":"t"}"#)]
    mutation_arguments: String,
    /// An argument of the mutation made distinct per call (the fixture refuses to create a
    /// note twice); empty for none.
    #[arg(long, default_value = "name")]
    unique: String,
    /// Calls per path and tool (direct and proxied, interleaved).
    #[arg(long, default_value_t = 1000)]
    calls: usize,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum McpClient {
    Python,
    Rust,
}

/// One tool timed direct and proxied.
struct McpPlan {
    label: &'static str,
    tool: String,
    arguments: serde_json::Map<String, serde_json::Value>,
    unique: Option<String>,
}

impl McpPlan {
    fn arguments(&self, path: &str, i: usize) -> serde_json::Map<String, serde_json::Value> {
        let mut a = self.arguments.clone();
        if let Some(field) = &self.unique {
            let base = a.get(field).and_then(|v| v.as_str()).unwrap_or("x");
            let v = format!("{base}-{path}-{i}");
            a.insert(field.clone(), v.into());
        }
        a
    }
}

/// A tag telling this run's names from another's: the process id and the wall clock.
#[expect(
    clippy::disallowed_methods,
    reason = "a name, not a measurement or a decision"
)]
fn run_tag() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    format!("{:x}{:x}", std::process::id(), ms)
}

/// Direct and proxied latencies of one plan, in ms, sorted.
struct McpTimes {
    direct: Vec<f64>,
    proxied: Vec<f64>,
}

const MCP_WARMUP: usize = 50;

fn json_object(what: &str, text: &str) -> Result<serde_json::Map<String, serde_json::Value>> {
    serde_json::from_str(text)
        .map_err(|e| crate::BadInput(format!("{what}: not a JSON object: {e}")).into())
}

/// Times every plan with rmcp's client, interleaving direct and proxied calls.
async fn mcp_rust(
    upstream: &str,
    gateway: &str,
    token: &str,
    plans: &[McpPlan],
    calls: usize,
) -> Result<Vec<McpTimes>> {
    use rmcp::ServiceExt;
    use rmcp::model::CallToolRequestParams;
    use rmcp::transport::StreamableHttpClientTransport;
    use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;

    let direct =
        ().serve(StreamableHttpClientTransport::from_uri(upstream))
            .await
            .context("cannot connect to the upstream")?;
    let proxied = ()
        .serve(StreamableHttpClientTransport::from_config(
            StreamableHttpClientTransportConfig::with_uri(gateway).auth_header(token),
        ))
        .await
        .context("cannot connect to the gateway")?;
    let bar = indicatif::ProgressBar::new((plans.len() * (calls + MCP_WARMUP) * 2) as u64);
    let mut out = Vec::new();
    for plan in plans {
        let (mut d_ms, mut p_ms) = (Vec::new(), Vec::new());
        for i in 0..calls + MCP_WARMUP {
            let mut p = CallToolRequestParams::new(plan.tool.clone());
            p.arguments = Some(plan.arguments("d", i));
            let t = now();
            let r = direct.call_tool(p).await?;
            let d = t.elapsed().as_secs_f64() * 1e3;
            anyhow::ensure!(r.is_error != Some(true), "the upstream tool failed: {r:?}");
            let mut p = CallToolRequestParams::new(format!("up_{}", plan.tool));
            p.arguments = Some(plan.arguments("p", i));
            let t = now();
            let r = proxied.call_tool(p).await?;
            let p = t.elapsed().as_secs_f64() * 1e3;
            anyhow::ensure!(
                r.is_error != Some(true),
                "the proxied call was not allowed: {r:?}"
            );
            // The first calls of each warm connections and caches.
            if i >= MCP_WARMUP {
                d_ms.push(d);
                p_ms.push(p);
            }
            bar.inc(2);
        }
        out.push(McpTimes {
            direct: d_ms,
            proxied: p_ms,
        });
    }
    bar.finish_and_clear();
    let _ = direct.cancel().await;
    let _ = proxied.cancel().await;
    Ok(out)
}

/// The Python SDK client, embedded: run with `python3`, given the plans on stdin.
const PY_CLIENT: &str = include_str!("bench_mcp_client.py");

/// Times every plan with the official MCP Python SDK (a child `python3`).
async fn mcp_python(
    upstream: &str,
    gateway: &str,
    token: &str,
    plans: &[McpPlan],
    calls: usize,
) -> Result<Vec<McpTimes>> {
    let dir = tempfile::tempdir()?;
    let script = dir.path().join("bench_mcp_client.py");
    std::fs::write(&script, PY_CLIENT)?;
    let spec = json!({
        "direct": upstream, "proxied": gateway, "token": token, "calls": calls, "warmup": MCP_WARMUP,
        "plans": plans.iter().map(|p| json!({"label": p.label, "direct": p.tool, "proxied": format!("up_{}", p.tool),
                                               "arguments": p.arguments, "unique": p.unique})).collect::<Vec<_>>(),
    });
    let spinner = indicatif::ProgressBar::new_spinner()
        .with_message("the Python SDK client is calling both paths…");
    spinner.enable_steady_tick(Duration::from_millis(200));
    let input = spec.to_string();
    let out = tokio::task::spawn_blocking(move || -> Result<std::process::Output> {
        use std::io::Write;
        let mut child = std::process::Command::new("python3")
            .arg(&script)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .context(
                "cannot run python3 (the Python client needs python3 with the `mcp` package)",
            )?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(input.as_bytes())?;
        }
        Ok(child.wait_with_output()?)
    })
    .await??;
    spinner.finish_and_clear();
    anyhow::ensure!(
        out.status.success(),
        "the Python client failed: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("the Python client's answer is not JSON")?;
    let list = |r: &serde_json::Value, k: &str| -> Vec<f64> {
        r[k].as_array()
            .map(|a| a.iter().filter_map(serde_json::Value::as_f64).collect())
            .unwrap_or_default()
    };
    let results = v["results"].as_array().cloned().unwrap_or_default();
    anyhow::ensure!(
        results.len() == plans.len(),
        "the Python client answered for {} of {} tools",
        results.len(),
        plans.len()
    );
    Ok(results
        .iter()
        .map(|r| McpTimes {
            direct: list(r, "direct_ms"),
            proxied: list(r, "proxied_ms"),
        })
        .collect())
}

/// The nearest-rank percentile of sorted values (0 when there are none).
pub(crate) fn percentile(sorted: &[f64], q: f64) -> f64 {
    sorted
        .get(((sorted.len() as f64 * q).ceil() as usize).saturating_sub(1))
        .copied()
        .unwrap_or(0.0)
}

/// `airlock serve` in this process on a free loopback port, with a fresh durable journal in
/// a temporary directory and an agent token; `extra` is appended to its config.
pub(crate) struct InProcess {
    pub(crate) dir: tempfile::TempDir,
    store: String,
    pub(crate) base: String,
    pub(crate) token: String,
    /// Tokens of the agents [`InProcess::start_with`] was asked for, in its order.
    pub(crate) agents: Vec<String>,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<Result<(), airlock_server::ServeError>>,
}

impl InProcess {
    pub(crate) async fn start(extra: &str) -> Result<Self> {
        Self::start_with(extra, &[]).await
    }

    /// [`InProcess::start`] with more agents, each with a guard profile or none.
    pub(crate) async fn start_with(extra: &str, agents: &[(String, Option<&str>)]) -> Result<Self> {
        let dir = tempfile::tempdir().context("cannot make a temporary directory")?;
        let store = dir.path().join("bench.db").display().to_string();
        let port = free_port()?;
        let text =
            format!("[server]\nlisten = \"127.0.0.1:{port}\"\n[store]\nurl = \"{store}\"\n{extra}");
        let config = airlock_server::RawConfig::parse(&text, "bench")
            .and_then(|r| r.validate(dir.path()))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let journal = airlock_store::open(&store).await?;
        let token = airlock_gate::issue_token(
            journal.as_ref(),
            0,
            "bench-agent",
            airlock_gate::PrincipalKind2::Agent,
        )
        .await?;
        let mut tokens = Vec::new();
        for (name, profile) in agents {
            tokens.push(
                airlock_gate::issue_token_with_profile(
                    journal.as_ref(),
                    0,
                    name,
                    airlock_gate::PrincipalKind2::Agent,
                    *profile,
                )
                .await?,
            );
        }
        drop(journal);
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(airlock_server::run(config, async move {
            let _ = stop_rx.await;
        }));
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        for _ in 0..400 {
            if http
                .get(format!("{base}/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return Ok(Self {
                    dir,
                    store,
                    base,
                    token,
                    agents: tokens,
                    stop,
                    server,
                });
            }
            if server.is_finished() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let why = match server.await {
            Ok(Err(e)) => format!("{:#}", anyhow::Error::new(e)),
            _ => "it did not become ready".into(),
        };
        anyhow::bail!("the server did not start: {why}")
    }

    /// Stops the server and verifies the journal it wrote.
    pub(crate) async fn finish(self) -> Result<airlock_store::VerifyReport> {
        let _ = self.stop.send(());
        let _ = self.server.await;
        let journal = airlock_store::SqliteJournal::open_read_only(&self.store).await?;
        Ok(airlock_store::Journal::verify(&journal).await?)
    }
}

/// `airlock bench mcp`: the latency a gated, journaled, proxied `tools/call` adds over
/// calling the upstream directly, for a read and for a mutation; both paths over streamable
/// HTTP with the same client, interleaved in one run.
pub async fn mcp(args: McpBenchArgs) -> Result<ExitCode> {
    let mut plans = vec![McpPlan {
        label: "read",
        tool: args.tool.clone(),
        arguments: json_object("--arguments", &args.arguments)?,
        unique: None,
    }];
    if !args.mutation_tool.is_empty() {
        let mut arguments = json_object("--mutation-arguments", &args.mutation_arguments)?;
        // Distinct per run too, so a second run against the same upstream creates new
        // things rather than being refused for repeating the first.
        if !args.unique.is_empty() {
            let base = arguments
                .get(&args.unique)
                .and_then(|v| v.as_str())
                .unwrap_or("x");
            let tagged = format!("{base}-{}", run_tag());
            arguments.insert(args.unique.clone(), tagged.into());
        }
        plans.push(McpPlan {
            label: "mutation",
            tool: args.mutation_tool.clone(),
            arguments,
            unique: (!args.unique.is_empty()).then(|| args.unique.clone()),
        });
    }
    // Guards stay on, with limits the benchmark's steady stream of mutations stays under.
    let gate = InProcess::start(&format!(
        "[sim]\nenabled = false\n[guards]\nmutations_per_minute = 1000000\n[anomaly]\nquarantine = false\n[[upstream]]\nname = \"up\"\nurl = \"{}\"\nenv = \"dev\"\ntrust_read_only_hints = true\n",
        args.upstream_url
    ))
    .await?;
    let gateway = format!("{}/mcp", gate.base);
    let times = match args.client {
        McpClient::Rust => {
            mcp_rust(
                &args.upstream_url,
                &gateway,
                &gate.token,
                &plans,
                args.calls,
            )
            .await
        }
        McpClient::Python => {
            mcp_python(
                &args.upstream_url,
                &gateway,
                &gate.token,
                &plans,
                args.calls,
            )
            .await
        }
    };
    let report = gate.finish().await?;
    let mut times = times?;
    let client = match args.client {
        McpClient::Python => "Python SDK",
        McpClient::Rust => "rmcp",
    };
    let mut rows = Vec::new();
    for (plan, t) in plans.iter().zip(&mut times) {
        t.direct.sort_by(f64::total_cmp);
        t.proxied.sort_by(f64::total_cmp);
        let (d50, d99) = (percentile(&t.direct, 0.5), percentile(&t.direct, 0.99));
        let (p50, p99) = (percentile(&t.proxied, 0.5), percentile(&t.proxied, 0.99));
        rows.push(json!({
            "kind": plan.label, "tool": plan.tool, "calls": t.proxied.len(),
            "direct": {"p50_ms": d50, "p99_ms": d99},
            "proxied": {"p50_ms": p50, "p99_ms": p99},
            "ratio_p50": p50 / d50.max(1e-9), "ratio_p99": p99 / d99.max(1e-9),
            "added_p50_ms": p50 - d50, "added_p99_ms": p99 - d99,
        }));
    }
    let out = json!({
        "client": client, "results": rows,
        "journal_events": report.events, "journal_verified": report.ok(),
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        let mut t = Table::new();
        t.load_style(UTF8_FULL_CONDENSED).set_header([
            "tool",
            "calls",
            "direct p50",
            "proxied p50",
            "added p50",
            "ratio p50",
            "direct p99",
            "proxied p99",
        ]);
        for r in &rows {
            let f = |v: &serde_json::Value| format!("{:.2}", v.as_f64().unwrap_or(0.0));
            t.add_row([
                format!(
                    "{} `{}`",
                    r["kind"].as_str().unwrap_or(""),
                    r["tool"].as_str().unwrap_or("")
                ),
                r["calls"].to_string(),
                f(&r["direct"]["p50_ms"]),
                f(&r["proxied"]["p50_ms"]),
                format!("+{:.2}", r["added_p50_ms"].as_f64().unwrap_or(0.0)),
                format!("{:.2}x", r["ratio_p50"].as_f64().unwrap_or(0.0)),
                f(&r["direct"]["p99_ms"]),
                f(&r["proxied"]["p99_ms"]),
            ]);
        }
        println!("{t}");
        println!(
            "client: {client} (ms; direct = client → upstream, proxied = client → airlock /mcp → upstream); journal {} events, chain {}",
            report.events,
            if report.ok() { "verified" } else { "BROKEN" }
        );
    }
    Ok(verdict(&report, &[]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_store::{BrokenLink, VerifyReport};

    fn intact() -> VerifyReport {
        VerifyReport {
            events: 3,
            head: "h".into(),
            first_broken: None,
        }
    }

    #[test]
    fn a_run_with_failed_requests_or_a_broken_chain_is_not_valid() {
        assert_eq!(verdict(&intact(), &[("airlock", 0)]), ExitCode::SUCCESS);
        assert_eq!(verdict(&intact(), &[("airlock", 2)]), ExitCode::FAILURE);
        let broken = VerifyReport {
            first_broken: Some(BrokenLink {
                seq: 2,
                reason: "hash mismatch".into(),
            }),
            ..intact()
        };
        assert_eq!(verdict(&broken, &[]), ExitCode::FAILURE);
    }
}
