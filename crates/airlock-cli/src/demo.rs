//! `airlock demo` and `airlock run`: proving-ground runs with progress, a side-by-side
//! table, JSON for machines and the HTML report.
//!
//! Their guarded runs journal simulated events on virtual time, so they keep a store of
//! their own (`.airlock/demo.db`) and never read `AIRLOCK_STORE` or a config: the live
//! journal of `airlock serve` stays free of them.

use crate::{BadInput, DEMO_STORE};
use airlock_prove::report::{Pair, html};
use airlock_prove::{FLAGSHIPS, Mode, RunResult, Scenario, Scorecard, run_scenario};
use airlock_store::Journal;
use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use comfy_table::{Cell, Table, presets::UTF8_FULL_CONDENSED};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

#[derive(Args)]
pub struct DemoArgs {
    /// Seed for every scenario (default: each scenario's own seed).
    #[arg(long)]
    seed: Option<u64>,
    /// Print the results as JSON on standard output.
    #[arg(long)]
    json: bool,
    /// Where to write the HTML report.
    #[arg(long, default_value = "airlock-demo-report.html")]
    report: PathBuf,
    /// The journal for guarded runs: a path or `sqlite://PATH`. The demo's own, apart
    /// from the live store of `airlock serve`; AIRLOCK_STORE is not read here.
    #[arg(long, value_name = "STORE", default_value = DEMO_STORE)]
    store: String,
    /// Run only the named flagship scenario (repeatable).
    #[arg(long)]
    only: Vec<String>,
}

#[derive(Args)]
pub struct RunArgs {
    /// The scenario file (TOML).
    scenario: PathBuf,
    /// Seed (default: the scenario's own).
    #[arg(long)]
    seed: Option<u64>,
    /// Which runs to make.
    #[arg(long, value_enum, default_value_t = Which::Both)]
    mode: Which,
    /// Print the results as JSON on standard output.
    #[arg(long)]
    json: bool,
    /// Also write an HTML report here.
    #[arg(long)]
    report: Option<PathBuf>,
    /// The journal for guarded runs: a path or `sqlite://PATH`. The demo's own, apart
    /// from the live store of `airlock serve`; AIRLOCK_STORE is not read here.
    #[arg(long, value_name = "STORE", default_value = DEMO_STORE)]
    store: String,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Which {
    Guarded,
    Unguarded,
    Both,
}

/// Reads and validates a scenario file; problems are bad input.
pub fn load_scenario(path: &Path) -> Result<Scenario> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| BadInput(format!("cannot read `{}`: {e}", path.display())))?;
    Scenario::from_toml(&text, &path.display().to_string())
        .map_err(|e| BadInput(e.to_string()).into())
}

async fn open_store(store: &str) -> Result<Arc<dyn Journal>> {
    airlock_store::open(store)
        .await
        .with_context(|| format!("the journal `{store}` cannot be opened; guarded runs need it"))
}

pub(crate) fn bar(total: u64, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {bar:40.cyan/blue} {percent:>3}% {msg}",
    ) {
        pb.set_style(style.progress_chars("=> "));
    }
    pb
}

struct Job {
    scenario: Scenario,
    seed: u64,
    mode: Mode,
}

/// Runs the jobs in two lanes on the runtime's threads: unguarded runs in one, guarded in
/// the other, each lane in order, so the journal holds one guarded run after another.
async fn run_jobs(
    jobs: Vec<Job>,
    journal: Option<Arc<dyn Journal>>,
    pb: &ProgressBar,
) -> Result<Vec<RunResult>> {
    let done = Arc::new(std::sync::Mutex::new(vec![0u64; jobs.len()]));
    let mut lanes: Vec<Vec<(usize, Job)>> = vec![Vec::new(), Vec::new()];
    for (i, job) in jobs.into_iter().enumerate() {
        lanes[usize::from(job.mode == Mode::Guarded)].push((i, job));
    }
    let mut handles = Vec::new();
    for lane in lanes {
        let journal = journal.clone();
        let pb = pb.clone();
        let done = done.clone();
        handles.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for (i, job) in lane {
                let bar = pb.clone();
                let done = done.clone();
                let progress = move |f: f64| {
                    if let Ok(mut d) = done.lock() {
                        d[i] = (f * 1000.0) as u64;
                        bar.set_position(d.iter().sum());
                    }
                };
                pb.set_message(format!("{} ({})", job.scenario.name, mode_name(job.mode)));
                out.push((
                    i,
                    run_scenario(
                        &job.scenario,
                        job.seed,
                        job.mode,
                        journal.clone(),
                        &progress,
                    )
                    .await?,
                ));
            }
            Ok::<_, airlock_prove::RunError>(out)
        }));
    }
    let mut out = Vec::new();
    for h in handles {
        out.extend(h.await.context("a run panicked")??);
    }
    out.sort_by_key(|(i, _)| *i);
    Ok(out.into_iter().map(|(_, r)| r).collect())
}

pub(crate) fn mode_name(m: Mode) -> &'static str {
    match m {
        Mode::Guarded => "guarded",
        Mode::Unguarded => "unguarded",
    }
}

pub(crate) fn fmt_ttm(c: &Scorecard) -> String {
    match (c.time_to_mitigate_s, c.mitigated) {
        (None, _) => "-".into(),
        (Some(s), true) => format!("{s:.0}s"),
        (Some(s), false) => format!(">{s:.0}s (never)"),
    }
}

fn table(results: &[RunResult]) -> Table {
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED).set_header([
        "scenario",
        "mode",
        "availability",
        "SLO min lost",
        "attempted",
        "applied",
        "denied",
        "held",
        "reverted",
        "destructive",
        "mitigated in",
    ]);
    for r in results {
        let c = &r.scorecard;
        t.add_row(vec![
            Cell::new(&r.scenario),
            Cell::new(mode_name(r.mode)),
            Cell::new(format!("{:.5}", c.availability)),
            Cell::new(format!("{:.1}", c.slo_violation_minutes)),
            Cell::new(c.actions_attempted),
            Cell::new(c.actions_applied),
            Cell::new(c.denied),
            Cell::new(c.held),
            Cell::new(c.reverted),
            Cell::new(c.destructive_applied),
            Cell::new(fmt_ttm(c)),
        ]);
    }
    t
}

fn side(c: &Scorecard) -> serde_json::Value {
    json!({
        "availability": c.availability,
        "slo_violation_minutes": c.slo_violation_minutes,
        "actions_attempted": c.actions_attempted,
        "actions_applied": c.actions_applied,
        "denied": c.denied,
        "held": c.held,
        "reverted": c.reverted,
        "destructive_applied": c.destructive_applied,
        "time_to_mitigate_s": c.time_to_mitigate_s,
        "mitigated": c.mitigated,
        "incidents": c.incidents,
        "needs_attention": c.needs_attention,
        "replica_hours": c.replica_hours,
        "worst_availability": c.worst_availability,
        "fallback_actions": c.fallback_actions,
    })
}

pub(crate) fn write_report(
    path: &Path,
    title: &str,
    seed: Option<u64>,
    scenarios: &[Scenario],
    results: &[RunResult],
) -> Result<()> {
    let mut pairs = Vec::new();
    for s in scenarios {
        let u = results
            .iter()
            .find(|r| r.scenario == s.name && r.mode == Mode::Unguarded);
        let g = results
            .iter()
            .find(|r| r.scenario == s.name && r.mode == Mode::Guarded);
        if let (Some(u), Some(g)) = (u, g) {
            pairs.push(Pair {
                name: &s.name,
                description: &s.description,
                unguarded: u,
                guarded: g,
            });
        }
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create `{}`", dir.display()))?;
    }
    std::fs::write(path, html(title, seed, &pairs))
        .with_context(|| format!("cannot write the report to `{}`", path.display()))
}

pub async fn demo(args: DemoArgs) -> Result<ExitCode> {
    #[expect(
        clippy::disallowed_methods,
        reason = "the demo reports its own wall time"
    )]
    let started = Instant::now();
    let mut scenarios = Vec::new();
    for (name, text) in FLAGSHIPS {
        if !args.only.is_empty() && !args.only.iter().any(|o| o == name) {
            continue;
        }
        scenarios.push(
            Scenario::from_toml(text, name)
                .map_err(|e| anyhow::anyhow!("shipped scenario: {e}"))?,
        );
    }
    if scenarios.is_empty() {
        let names: Vec<&str> = FLAGSHIPS.iter().map(|f| f.0).collect();
        return Err(BadInput(format!(
            "no flagship scenario matches --only; choose from {}",
            names.join(", ")
        ))
        .into());
    }
    let journal = open_store(&args.store).await?;
    let mut jobs = Vec::new();
    for s in &scenarios {
        let seed = args.seed.unwrap_or(s.seed);
        for mode in [Mode::Unguarded, Mode::Guarded] {
            jobs.push(Job {
                scenario: s.clone(),
                seed,
                mode,
            });
        }
    }
    let pb = bar(jobs.len() as u64 * 1000, args.json);
    let results = run_jobs(jobs, Some(journal.clone()), &pb).await?;
    pb.finish_and_clear();
    write_report(
        &args.report,
        "Airlock proving ground: flagship scenarios",
        args.seed,
        &scenarios,
        &results,
    )?;
    let verify = journal.verify().await?;
    let wall = started.elapsed().as_secs_f64();
    if args.json {
        let list: Vec<_> = scenarios
            .iter()
            .map(|s| {
                let find = |m: Mode| results.iter().find(|r| r.scenario == s.name && r.mode == m).map(|r| side(&r.scorecard));
                json!({"name": s.name, "seed": args.seed.unwrap_or(s.seed), "unguarded": find(Mode::Unguarded), "guarded": find(Mode::Guarded)})
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "scenarios": list,
                "report": args.report.display().to_string(),
                "journal": {"store": args.store, "events": verify.events, "verified": verify.ok()},
                "wall_s": wall,
            }))?
        );
    } else {
        println!("{}", table(&results));
        println!(
            "report: {}   journal: {} ({} events, chain {})   wall: {wall:.1}s",
            args.report.display(),
            args.store,
            verify.events,
            if verify.ok() { "verified" } else { "BROKEN" }
        );
    }
    Ok(if verify.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

pub async fn run(args: RunArgs) -> Result<ExitCode> {
    let scenario = load_scenario(&args.scenario)?;
    let seed = args.seed.unwrap_or(scenario.seed);
    let modes: Vec<Mode> = match args.mode {
        Which::Guarded => vec![Mode::Guarded],
        Which::Unguarded => vec![Mode::Unguarded],
        Which::Both => vec![Mode::Unguarded, Mode::Guarded],
    };
    let journal = if modes.contains(&Mode::Guarded) {
        Some(open_store(&args.store).await?)
    } else {
        None
    };
    let jobs: Vec<Job> = modes
        .iter()
        .map(|m| Job {
            scenario: scenario.clone(),
            seed,
            mode: *m,
        })
        .collect();
    let pb = bar(jobs.len() as u64 * 1000, args.json);
    let results = run_jobs(jobs, journal, &pb).await?;
    pb.finish_and_clear();
    if let Some(path) = &args.report {
        write_report(
            path,
            &format!("Airlock proving ground: {}", scenario.name),
            Some(seed),
            std::slice::from_ref(&scenario),
            &results,
        )?;
    }
    if args.json {
        let find = |m: Mode| {
            results
                .iter()
                .find(|r| r.mode == m)
                .map(|r| side(&r.scorecard))
        };
        println!(
            "{}",
            serde_json::to_string_pretty(
                &json!({"name": scenario.name, "seed": seed, "unguarded": find(Mode::Unguarded), "guarded": find(Mode::Guarded)})
            )?
        );
    } else {
        println!("{}", table(&results));
    }
    Ok(ExitCode::SUCCESS)
}
