//! `airlock bench replicas`: decisions per second and their latency for 1, 2, 3 … `airlock
//! serve` replicas sharing a PostgreSQL journal, and for one server on its embedded SQLite
//! journal, on the same machine in the same run.
//!
//! Each configuration gets a fresh store (a new database on the given server, dropped after;
//! a file in a temporary directory), its replicas run as real `airlock serve` processes on
//! loopback ports, and the kill switch is on: every submission is a mutation decided in full
//! (shared lock, catching up with the other replicas, plan, policy, guards, the verdict
//! journaled) and denied, so nothing is applied and every run does the same work. Workers
//! send closed-loop, round-robin over the replicas.

use crate::bench::percentile;
use anyhow::{Context, Result};
use clap::Args;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use serde_json::{Value, json};
use sqlx::Connection;
use std::path::Path;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

#[derive(Args)]
pub struct ReplicasBenchArgs {
    /// A PostgreSQL server whose user may create databases, as a URL of a database on it
    /// (e.g. `postgres://postgres@127.0.0.1:5432/postgres`); one database is created per
    /// configuration and dropped after.
    #[arg(long)]
    postgres: String,
    /// The replica counts to measure on PostgreSQL (one SQLite server is always measured).
    #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
    replicas: Vec<usize>,
    /// Agents (tokens) the submissions are spread over.
    #[arg(long, default_value_t = 20)]
    agents: usize,
    /// Requests in flight at once (closed loop).
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Seconds of load per configuration.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[expect(clippy::disallowed_methods, reason = "a benchmark measures real time")]
fn now() -> Instant {
    Instant::now()
}

/// What one configuration measured.
struct Run {
    label: String,
    replicas: usize,
    decisions: usize,
    failed: usize,
    elapsed_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    chain_ok: bool,
    events: u64,
}

/// Replica processes, killed when dropped.
struct Servers(Vec<Child>);

impl Drop for Servers {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub async fn replicas(args: ReplicasBenchArgs) -> Result<ExitCode> {
    if args.replicas.is_empty() || args.replicas.contains(&0) {
        return Err(crate::BadInput("--replicas: give counts of 1 or more".into()).into());
    }
    let mut runs = Vec::new();
    let dir = tempfile::tempdir().context("cannot make a temporary directory")?;
    let sqlite = dir.path().join("bench.db").display().to_string();
    runs.push(measure(&args, "SQLite", &sqlite, 1, dir.path()).await?);
    for &n in &args.replicas {
        let db = format!("airlock_bench_{}_{n}", std::process::id());
        let url = create_database(&args.postgres, &db).await?;
        let run = measure(&args, "PostgreSQL", &url, n, dir.path()).await;
        drop_database(&args.postgres, &db).await;
        runs.push(run?);
    }
    report(&args, &runs);
    let bad = runs.iter().any(|r| !r.chain_ok || r.failed > 0);
    if bad {
        eprintln!("airlock bench: a run failed requests or left a broken chain: not valid");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

async fn measure(
    args: &ReplicasBenchArgs,
    label: &str,
    store: &str,
    n: usize,
    dir: &Path,
) -> Result<Run> {
    let journal = airlock_store::open(store).await?;
    let mut tokens = Vec::new();
    for i in 0..args.agents {
        tokens.push(
            airlock_gate::issue_token(
                journal.as_ref(),
                0,
                &format!("bench-{i:03}"),
                airlock_gate::PrincipalKind2::Agent,
            )
            .await?,
        );
    }
    let op = airlock_gate::issue_token(
        journal.as_ref(),
        0,
        "bench-operator",
        airlock_gate::PrincipalKind2::Operator,
    )
    .await?;
    drop(journal);
    let mut children = Servers(Vec::new());
    let mut bases = Vec::new();
    for r in 0..n {
        let home = dir.join(format!("{}-{n}-{r}", label.to_lowercase()));
        std::fs::create_dir_all(&home)?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let config = home.join("airlock.toml");
        std::fs::write(&config, format!("[store]\nurl = \"{store}\"\n"))?;
        let child = Command::new(std::env::current_exe()?)
            .args(["serve", "--config"])
            .arg(&config)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .current_dir(&home)
            .env("AIRLOCK_LOG", "warn")
            .env_remove("AIRLOCK_STORE")
            .env_remove("AIRLOCK_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(home.join("serve.log"))?)
            .spawn()
            .context("cannot start airlock serve")?;
        children.0.push(child);
        bases.push(format!("http://127.0.0.1:{port}"));
    }
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?;
    for base in &bases {
        wait_ready(&http, base).await?;
    }
    let on = http
        .post(format!("{}/v1/killswitch", bases[0]))
        .bearer_auth(&op)
        .json(&json!({"state": "on"}))
        .send()
        .await?;
    anyhow::ensure!(on.status().is_success(), "cannot turn the kill switch on");

    let deadline = now() + Duration::from_secs(args.seconds);
    let start = now();
    let mut workers = Vec::new();
    for w in 0..args.concurrency {
        let http = http.clone();
        let bases = bases.clone();
        let tokens = tokens.clone();
        workers.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut failed = 0usize;
            let mut k = w;
            while now() < deadline {
                let base = &bases[k % bases.len()];
                let token = &tokens[k % tokens.len()];
                let body = json!({"provider": "sim", "verb": "scale", "target": "sim:service/checkout",
                                  "params": {"replicas": 2 + k % 5}, "intent": "benchmark"});
                let t0 = now();
                let answer = http
                    .post(format!("{base}/v1/actions"))
                    .bearer_auth(token)
                    .json(&body)
                    .send()
                    .await;
                let ok = match answer {
                    Ok(r) if r.status().is_success() => r
                        .json::<Value>()
                        .await
                        .is_ok_and(|v| v["verdict"] == "deny"),
                    _ => false,
                };
                if ok {
                    lat.push(t0.elapsed().as_secs_f64() * 1000.0);
                } else {
                    failed += 1;
                }
                k += STRIDE;
            }
            (lat, failed)
        }));
    }
    let mut lat = Vec::new();
    let mut failed = 0;
    for w in workers {
        let (l, f) = w.await?;
        lat.extend(l);
        failed += f;
    }
    let elapsed_s = start.elapsed().as_secs_f64();
    drop(children);
    lat.sort_by(f64::total_cmp);
    let journal = airlock_store::open_read_only(store).await?;
    let report = journal.verify().await?;
    Ok(Run {
        label: label.to_string(),
        replicas: n,
        decisions: lat.len(),
        failed,
        elapsed_s,
        p50_ms: percentile(&lat, 0.50),
        p99_ms: percentile(&lat, 0.99),
        chain_ok: report.ok(),
        events: report.events,
    })
}

/// How far a worker moves through agents and replicas after each request: coprime with
/// small counts, so every worker visits every replica and agent.
const STRIDE: usize = 7;

async fn wait_ready(http: &reqwest::Client, base: &str) -> Result<()> {
    for _ in 0..400 {
        if http
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    anyhow::bail!("the replica at {base} did not become ready")
}

async fn create_database(admin: &str, name: &str) -> Result<String> {
    let mut conn = sqlx::PgConnection::connect(admin)
        .await
        .context("cannot connect to --postgres")?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .with_context(|| format!("cannot create the database {name}"))?;
    let _ = conn.close().await;
    let base = admin.split_once('?').map_or(admin, |(b, _)| b);
    let root = base.rsplit_once('/').map_or(base, |(root, _)| root);
    Ok(format!("{root}/{name}"))
}

async fn drop_database(admin: &str, name: &str) {
    if let Ok(mut conn) = sqlx::PgConnection::connect(admin).await {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&mut conn)
        .await;
        let _ = conn.close().await;
    }
}

fn report(args: &ReplicasBenchArgs, runs: &[Run]) {
    let sqlite_rate = runs
        .first()
        .map_or(0.0, |r| r.decisions as f64 / r.elapsed_s.max(1e-9));
    let rows: Vec<Value> = runs
        .iter()
        .map(|r| {
            let rate = r.decisions as f64 / r.elapsed_s.max(1e-9);
            json!({"store": r.label, "replicas": r.replicas, "decisions": r.decisions,
                   "failed": r.failed, "decisions_per_s": rate, "p50_ms": r.p50_ms, "p99_ms": r.p99_ms,
                   "vs_sqlite": rate / sqlite_rate.max(1e-9),
                   "journal_events": r.events, "journal_verified": r.chain_ok})
        })
        .collect();
    if args.json {
        let out = json!({"agents": args.agents, "concurrency": args.concurrency,
                         "seconds": args.seconds, "results": rows});
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
        return;
    }
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED).set_header([
        "store",
        "replicas",
        "decisions",
        "decisions/s",
        "vs SQLite",
        "p50 ms",
        "p99 ms",
        "chain",
    ]);
    for (r, row) in runs.iter().zip(&rows) {
        t.add_row([
            r.label.clone(),
            r.replicas.to_string(),
            r.decisions.to_string(),
            format!("{:.0}", row["decisions_per_s"].as_f64().unwrap_or(0.0)),
            format!("{:.2}x", row["vs_sqlite"].as_f64().unwrap_or(0.0)),
            format!("{:.2}", r.p50_ms),
            format!("{:.2}", r.p99_ms),
            if r.chain_ok {
                "verified".to_string()
            } else {
                "BROKEN".to_string()
            },
        ]);
    }
    println!("{t}");
    println!(
        "{} agents, {} requests in flight, {} s per configuration; every request a mutation \
         decided in full and denied by the kill switch",
        args.agents, args.concurrency, args.seconds
    );
}
