//! `airlock bench dashboard`: how long the dashboard's pages take to load with a large
//! journal (1,000,000 events by default) against the same pages over an empty one, both
//! served by a real `airlock serve` in this process and fetched over loopback HTTP by a
//! signed-in operator.

use crate::bench::{free_port, now, percentile};
use airlock_core::{EventKind, NewEvent};
use anyhow::{Context, Result};
use clap::Args;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Args)]
pub struct DashboardBenchArgs {
    /// Journal events to fill the large journal with.
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Keep the large journal here (and reuse it when it is already filled), instead of a
    /// temporary directory.
    #[arg(long)]
    store: Option<PathBuf>,
    /// Loads of each page (after one warm-up load).
    #[arg(long, default_value_t = 20)]
    runs: usize,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[expect(
    clippy::disallowed_methods,
    reason = "the filled journal ends at the wall clock"
)]
fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Agents acting in the filled journal.
const AGENTS: usize = 40;
/// Events per write transaction while filling.
const BATCH: usize = 2_000;

/// Fills `store` with about `events` journal events shaped like a busy gate's: requests and
/// verdicts (four in five allowed, the rest held or denied), applied changes and their
/// bake outcomes, from `AGENTS` agents over the last 30 days. Returns the events written.
async fn fill(store: &str, events: u64) -> Result<u64> {
    let journal = airlock_store::open(store).await?;
    let head = journal
        .read(airlock_store::EventQuery {
            limit: Some(1),
            descending: true,
            ..Default::default()
        })
        .await?;
    if let Some(last) = head.first()
        && last.seq as u64 >= events
    {
        return Ok(last.seq as u64);
    }
    let bar = indicatif::ProgressBar::new(events);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "filling the journal {bar:40} {pos}/{len} events {per_sec} ETA {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let end = wall_ms();
    let start = end - 30 * 86_400_000;
    let step = (30 * 86_400_000 / events.max(1)) as i64;
    let mut written = 0u64;
    let mut n = 0u64;
    let mut batch = Vec::with_capacity(BATCH + 4);
    while written < events {
        let ts = start + n as i64 * step * 4;
        let agent = format!("agent-{}", n as usize % AGENTS);
        let action = format!("act_bench{n:010}");
        let service = format!("svc-{}", n % 200);
        let replicas = 2 + n % 9;
        let summary = format!(
            "scale sim:service/{service}: 1 service(s) change, capacity +10%, 0 live dependent(s)"
        );
        let verdict = match n % 10 {
            0 => "hold",
            1 => "deny",
            _ => "allow",
        };
        let reasons = match verdict {
            "hold" => json!(["capacity-step-budget"]),
            "deny" => json!(["headroom-floor"]),
            _ => json!([]),
        };
        batch.push(
            NewEvent::new(ts, EventKind::Request, json!({
                "request": {"provider": "sim", "verb": "scale", "target": format!("sim:service/{service}"),
                            "params": {"replicas": replicas}, "intent": "bench"},
                "plan": {"summary": summary}, "risk": "medium"}))
            .agent(&agent)
            .action(&action),
        );
        batch.push(
            NewEvent::new(
                ts + 1,
                EventKind::Verdict,
                json!({"verdict": verdict, "reasons": reasons, "details": [], "risk": "medium"}),
            )
            .agent(&agent)
            .action(&action),
        );
        if verdict == "allow" {
            let change = format!("chg_bench{n:010}");
            batch.push(
                NewEvent::new(
                    ts + 2,
                    EventKind::Applied,
                    json!({"summary": summary, "bake_s": 300, "watch": [service]}),
                )
                .agent(&agent)
                .action(&action)
                .change(&change),
            );
            batch.push(
                NewEvent::new(ts + 3, EventKind::Settled, json!({"polls": 10}))
                    .agent(&agent)
                    .action(&action)
                    .change(&change),
            );
        }
        n += 1;
        if batch.len() >= BATCH {
            let k = batch.len() as u64;
            journal.append_all(std::mem::take(&mut batch)).await?;
            written += k;
            bar.set_position(written.min(events));
        }
    }
    if !batch.is_empty() {
        written += batch.len() as u64;
        journal.append_all(batch).await?;
    }
    bar.finish_and_clear();
    Ok(written)
}

/// A running `airlock serve` on `store`, with a signed-in operator and held requests.
struct Served {
    base: String,
    cookie: String,
    hold: String,
    startup_ms: f64,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<Result<(), airlock_server::ServeError>>,
    http: reqwest::Client,
}

async fn serve(dir: &Path, store: &str) -> Result<Served> {
    let port = free_port()?;
    let text = format!("[server]\nlisten = \"127.0.0.1:{port}\"\n[store]\nurl = \"{store}\"\n");
    let config = airlock_server::RawConfig::parse(&text, "bench")
        .and_then(|r| r.validate(dir))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let journal = airlock_store::open(store).await?;
    let ts = wall_ms();
    let kind = airlock_gate::PrincipalKind2::Operator;
    let op = airlock_gate::issue_token(journal.as_ref(), ts, "bench-op", kind).await?;
    let agent = airlock_gate::PrincipalKind2::Agent;
    let bot = airlock_gate::issue_token(journal.as_ref(), ts, "bench-bot", agent).await?;
    drop(journal);
    let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let t0 = now();
    let server = tokio::spawn(airlock_server::run(config, async move {
        let _ = stop_rx.await;
    }));
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let mut ready = false;
    for _ in 0..12_000 {
        if http
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            ready = true;
            break;
        }
        if server.is_finished() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    anyhow::ensure!(ready, "the server did not start");
    let startup_ms = t0.elapsed().as_secs_f64() * 1000.0;
    // Ten held requests for the approvals pages: deleting the prod environment is held.
    let mut hold = String::new();
    for _ in 0..10 {
        let v: serde_json::Value = http
            .post(format!("{base}/v1/actions"))
            .bearer_auth(&bot)
            .json(&json!({"provider": "sim", "verb": "delete", "target": "sim:environment/prod"}))
            .send()
            .await?
            .json()
            .await?;
        if let Some(a) = v["approval_id"].as_str() {
            hold = a.to_string();
        }
    }
    anyhow::ensure!(!hold.is_empty(), "no request was held");
    // Sign in as the dashboard's form does.
    let form = http.get(format!("{base}/login")).send().await?;
    let nonce = set_cookie(&form, "airlock_login").context("no sign-in nonce")?;
    let signed = http
        .post(format!("{base}/login"))
        .header("cookie", format!("airlock_login={nonce}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={op}&_login={nonce}&next=%2F"))
        .send()
        .await?;
    let session = set_cookie(&signed, "airlock_session").context("sign-in gave no session")?;
    Ok(Served {
        base,
        cookie: format!("airlock_session={session}"),
        hold,
        startup_ms,
        stop,
        server,
        http,
    })
}

fn set_cookie(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix(&format!("{name}=")))
        .and_then(|c| c.split(';').next())
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

impl Served {
    /// Loads `path` once to warm up, then `runs` times; the load times in ms, sorted.
    async fn load(&self, path: &str, runs: usize) -> Result<Vec<f64>> {
        let mut out = Vec::with_capacity(runs);
        for i in 0..=runs {
            let t0 = now();
            let resp = self
                .http
                .get(format!("{}{path}", self.base))
                .header("cookie", &self.cookie)
                .header("accept", "text/html")
                .send()
                .await?;
            let status = resp.status();
            let body = resp.bytes().await?;
            let ms = t0.elapsed().as_secs_f64() * 1000.0;
            anyhow::ensure!(status.is_success(), "{path} answered {status}");
            anyhow::ensure!(!body.is_empty(), "{path} answered nothing");
            if i > 0 {
                out.push(ms);
            }
        }
        out.sort_by(f64::total_cmp);
        Ok(out)
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.server.await;
    }
}

pub async fn dashboard(args: DashboardBenchArgs) -> Result<ExitCode> {
    let tmp = tempfile::tempdir().context("cannot make a temporary directory")?;
    let big = match &args.store {
        Some(p) => p.display().to_string(),
        None => tmp.path().join("big.db").display().to_string(),
    };
    let empty = tmp.path().join("empty.db").display().to_string();
    let t0 = now();
    let filled = fill(&big, args.events).await?;
    let fill_s = t0.elapsed().as_secs_f64();
    if !args.json {
        eprintln!("journal of {filled} events ready in {fill_s:.1} s");
    }
    let mut rows = Vec::new();
    let mut startup = Vec::new();
    for (label, store) in [("empty", empty.as_str()), ("large", big.as_str())] {
        let s = serve(tmp.path(), store).await?;
        startup.push((label, s.startup_ms));
        let mid = (filled / 2).to_string();
        let pages: Vec<(String, String)> = vec![
            ("feed".into(), "/".into()),
            ("feed, one agent".into(), "/?agent=agent-7".into()),
            ("feed, held only".into(), "/?verdict=hold".into()),
            ("feed, deep page".into(), format!("/?before={mid}")),
            ("approvals".into(), "/approvals".into()),
            ("one approval".into(), format!("/approvals/{}", s.hold)),
            ("changes".into(), "/changes".into()),
            ("agents".into(), "/agents".into()),
            ("journal".into(), "/journal".into()),
        ];
        for (name, path) in pages {
            let lat = s.load(&path, args.runs).await?;
            rows.push((
                label,
                name,
                path,
                percentile(&lat, 0.5),
                percentile(&lat, 0.95),
            ));
        }
        s.stop().await;
    }
    let half = rows.len() / 2;
    let (small, large) = rows.split_at(half);
    if args.json {
        let pages: Vec<_> = small
            .iter()
            .zip(large)
            .map(|(a, b)| {
                json!({"page": a.1, "path": b.2, "empty_p50_ms": a.3, "large_p50_ms": b.3,
                                 "large_p95_ms": b.4, "ratio_p50": b.3 / a.3})
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(
                &json!({"events": filled, "fill_s": fill_s, "runs": args.runs,
                "startup_ms": {"empty": startup[0].1, "large": startup[1].1}, "pages": pages})
            )?
        );
    } else {
        let mut t = Table::new();
        t.load_style(UTF8_FULL_CONDENSED).set_header(vec![
            "page".to_string(),
            "empty p50 ms".to_string(),
            format!("{filled} events p50 ms"),
            "p95 ms".to_string(),
            "ratio".to_string(),
        ]);
        for (a, b) in small.iter().zip(large) {
            t.add_row(vec![
                a.1.clone(),
                format!("{:.2}", a.3),
                format!("{:.2}", b.3),
                format!("{:.2}", b.4),
                format!("{:.2}", b.3 / a.3),
            ]);
        }
        println!("{t}");
        println!(
            "server start to ready: {:.0} ms empty, {:.0} ms with {filled} events ({} loads per page)",
            startup[0].1, startup[1].1, args.runs
        );
    }
    Ok(ExitCode::SUCCESS)
}
