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
        body,
        None,
        args.rate,
        args.seconds,
    )
    .await?;
    noop_task.abort();
    let report = gate.finish().await?;

    let row = |name: &str, s: &Stats| {
        json!({"target": name, "sent": s.sent, "ok": s.ok, "achieved_rps": s.ok as f64 / s.elapsed_s,
               "p50_ms": s.p50_ms, "p99_ms": s.p99_ms, "max_ms": s.max_ms})
    };
    let out = json!({
        "rate": args.rate, "seconds": args.seconds,
        "results": [row("airlock POST /v1/actions (read, allow path, durable journal)", &airlock), row("no-op axum handler", &baseline)],
        "ratio_p50": airlock.p50_ms / baseline.p50_ms.max(1e-9),
        "ratio_p99": airlock.p99_ms / baseline.p99_ms.max(1e-9),
        "journal_events": report.events, "journal_verified": report.ok(),
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
        println!("{t}");
        println!(
            "ratio to no-op: p50 {:.1}x, p99 {:.1}x; journal {} events, chain {}",
            out["ratio_p50"].as_f64().unwrap_or(0.0),
            out["ratio_p99"].as_f64().unwrap_or(0.0),
            report.events,
            if report.ok() { "verified" } else { "BROKEN" }
        );
    }
    Ok(verdict(
        &report,
        &[
            ("airlock", airlock.sent - airlock.ok),
            ("no-op", baseline.sent - baseline.ok),
        ],
    ))
}

/// A benchmark whose journal chain is broken or whose requests failed measured nothing
/// trustworthy: exit code 1, with why on stderr (the figures are still printed).
fn verdict(report: &airlock_store::VerifyReport, failed: &[(&str, usize)]) -> ExitCode {
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
    /// The upstream tool to call (a read, so every proxied call is allowed and applied).
    #[arg(long, default_value = "echo")]
    tool: String,
    /// Its arguments, as a JSON object.
    #[arg(long, default_value = r#"{"text":"ping"}"#)]
    arguments: String,
    /// Calls per path (direct and proxied, interleaved).
    #[arg(long, default_value_t = 1000)]
    calls: usize,
    /// Print JSON.
    #[arg(long)]
    json: bool,
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
struct InProcess {
    _dir: tempfile::TempDir,
    store: String,
    base: String,
    token: String,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<Result<(), airlock_server::ServeError>>,
}

impl InProcess {
    async fn start(extra: &str) -> Result<Self> {
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
                    _dir: dir,
                    store,
                    base,
                    token,
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
    async fn finish(self) -> Result<airlock_store::VerifyReport> {
        let _ = self.stop.send(());
        let _ = self.server.await;
        let journal = airlock_store::SqliteJournal::open_read_only(&self.store).await?;
        Ok(airlock_store::Journal::verify(&journal).await?)
    }
}

/// `airlock bench mcp`: the latency a gated, journaled, proxied `tools/call` adds over
/// calling the upstream directly; both paths over streamable HTTP, interleaved in one run.
pub async fn mcp(args: McpBenchArgs) -> Result<ExitCode> {
    use rmcp::ServiceExt;
    use rmcp::model::CallToolRequestParams;
    use rmcp::transport::StreamableHttpClientTransport;
    use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;

    let arguments: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&args.arguments)
            .map_err(|e| crate::BadInput(format!("--arguments: not a JSON object: {e}")))?;
    let gate = InProcess::start(&format!(
        "[sim]\nenabled = false\n[[upstream]]\nname = \"up\"\nurl = \"{}\"\nenv = \"dev\"\ntrust_read_only_hints = true\n",
        args.upstream_url
    ))
    .await?;
    let (base, token) = (gate.base.clone(), gate.token.clone());
    let direct = ()
        .serve(StreamableHttpClientTransport::from_uri(
            args.upstream_url.as_str(),
        ))
        .await
        .context("cannot connect to the upstream")?;
    let proxied = ()
        .serve(StreamableHttpClientTransport::from_config(
            StreamableHttpClientTransportConfig::with_uri(format!("{base}/mcp")).auth_header(token),
        ))
        .await
        .context("cannot connect to the gateway")?;
    let proxied_name = format!("up_{}", args.tool);
    let call = |name: String| {
        let mut p = CallToolRequestParams::new(name);
        p.arguments = Some(arguments.clone());
        p
    };
    let bar = indicatif::ProgressBar::new((args.calls * 2 + 100) as u64);
    let (mut d_ms, mut p_ms) = (Vec::new(), Vec::new());
    for i in 0..args.calls + 50 {
        let t = now();
        let r = direct.call_tool(call(args.tool.clone())).await?;
        let d = t.elapsed().as_secs_f64() * 1e3;
        anyhow::ensure!(r.is_error != Some(true), "the upstream tool failed: {r:?}");
        let t = now();
        let r = proxied.call_tool(call(proxied_name.clone())).await?;
        let p = t.elapsed().as_secs_f64() * 1e3;
        anyhow::ensure!(
            r.is_error != Some(true),
            "the proxied call was not allowed: {r:?}"
        );
        // The first 50 of each warm connections and caches.
        if i >= 50 {
            d_ms.push(d);
            p_ms.push(p);
        }
        bar.inc(2);
    }
    bar.finish_and_clear();
    let _ = direct.cancel().await;
    let _ = proxied.cancel().await;
    let report = gate.finish().await?;
    for v in [&mut d_ms, &mut p_ms] {
        v.sort_by(f64::total_cmp);
    }
    let (d50, d99, p50, p99) = (
        percentile(&d_ms, 0.5),
        percentile(&d_ms, 0.99),
        percentile(&p_ms, 0.5),
        percentile(&p_ms, 0.99),
    );
    let out = json!({
        "calls": args.calls, "tool": args.tool,
        "direct": {"p50_ms": d50, "p99_ms": d99},
        "proxied": {"p50_ms": p50, "p99_ms": p99},
        "ratio_p50": p50 / d50.max(1e-9), "ratio_p99": p99 / d99.max(1e-9),
        "added_p50_ms": p50 - d50, "added_p99_ms": p99 - d99,
        "journal_events": report.events, "journal_verified": report.ok(),
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        let mut t = Table::new();
        t.load_style(UTF8_FULL_CONDENSED)
            .set_header(["path", "calls", "p50 ms", "p99 ms"]);
        t.add_row([
            format!("direct: client → upstream `{}`", args.tool),
            args.calls.to_string(),
            format!("{d50:.2}"),
            format!("{d99:.2}"),
        ]);
        t.add_row([
            format!("proxied: client → airlock /mcp `{proxied_name}` → upstream"),
            args.calls.to_string(),
            format!("{p50:.2}"),
            format!("{p99:.2}"),
        ]);
        println!("{t}");
        println!(
            "proxied / direct: p50 {:.2}x (+{:.2} ms), p99 {:.2}x (+{:.2} ms); journal {} events, chain {}",
            p50 / d50.max(1e-9),
            p50 - d50,
            p99 / d99.max(1e-9),
            p99 - d99,
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
