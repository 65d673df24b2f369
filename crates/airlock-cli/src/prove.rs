//! `airlock prove`: scenarios × modes × seeds in parallel, with each scenario's reference
//! and do-nothing runs; scorecards, assertions, pass^k, a table, JSON, JUnit XML and the
//! HTML report. Exit code 1 when an assertion fails, so it gates CI like a test suite.

use crate::BadInput;
use crate::demo::{bar, fmt_ttm, load_scenario, mode_name, write_report};
use airlock_prove::ChildLauncher;
use airlock_prove::scenario::AgentSpec;
use airlock_prove::{Cast, Mode, RunOptions, RunResult, Scenario, Scorecard};
use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use comfy_table::{Cell, Table, presets::UTF8_FULL_CONDENSED};
use serde_json::json;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Args)]
pub struct ProveArgs {
    /// Scenario files (TOML).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Which runs of the agent under test to make.
    #[arg(long, value_enum, default_value_t = ModeArg::Both)]
    mode: ModeArg,
    /// Run N seeds per scenario, from its `seed` upwards (default: the scenario's `seeds`,
    /// or its one `seed`).
    #[arg(long, value_name = "N")]
    seeds: Option<u64>,
    /// Runs at a time (default: the number of cores).
    #[arg(long, value_name = "N")]
    jobs: Option<usize>,
    /// Run only shard I of N (1-based): (scenario, seed) pairs are dealt round-robin, so
    /// N machines together run everything once.
    #[arg(long, value_name = "I/N", value_parser = parse_shard)]
    shard: Option<(usize, usize)>,
    /// Replace every scenario's agent under test by this external program, run with
    /// `sh -c` and given the gate as an MCP server on its stdin/stdout.
    #[arg(long, value_name = "CMD")]
    agent_cmd: Option<String>,
    /// Wall time an external agent may take for one turn.
    #[arg(long, value_name = "SECONDS", default_value_t = 120)]
    turn_timeout: u64,
    /// Skip the reference and do-nothing runs (no `cost_vs_reference`).
    #[arg(long)]
    no_baselines: bool,
    /// Keep each guarded run's journal here (`SCENARIO-sSEED-CAST.db`); by default they
    /// are in memory and discarded.
    #[arg(long, value_name = "DIR")]
    journal_dir: Option<PathBuf>,
    /// Print every run and the summary as JSON on standard output.
    #[arg(long)]
    json: bool,
    /// Write a JUnit XML file: a test suite per scenario, a test case per run.
    #[arg(long, value_name = "PATH")]
    junit: Option<PathBuf>,
    /// Write the HTML report (plots and timelines of each scenario's first seed; needs
    /// `--mode both`).
    #[arg(long, value_name = "PATH")]
    report: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ModeArg {
    Guarded,
    Unguarded,
    Both,
}

fn parse_shard(s: &str) -> Result<(usize, usize), String> {
    let (i, n) = s
        .split_once('/')
        .ok_or_else(|| format!("`{s}`: expected I/N, e.g. 2/4"))?;
    let i: usize = i
        .trim()
        .parse()
        .map_err(|_| format!("`{s}`: I is not a number"))?;
    let n: usize = n
        .trim()
        .parse()
        .map_err(|_| format!("`{s}`: N is not a number"))?;
    if n == 0 || i == 0 || i > n {
        return Err(format!("`{s}`: need 1 <= I <= N"));
    }
    Ok((i, n))
}

/// One run to make.
#[derive(Clone)]
pub(crate) struct Job {
    pub scenario: Arc<Scenario>,
    pub seed: u64,
    pub mode: Mode,
    pub cast: Cast,
}

/// The (scenario, seed) pairs of this shard, in order.
pub(crate) fn units(
    scenarios: &[Arc<Scenario>],
    seeds: Option<u64>,
    shard: Option<(usize, usize)>,
) -> Vec<(Arc<Scenario>, u64)> {
    let all = scenarios.iter().flat_map(|s| {
        let seeds = match seeds {
            Some(n) => (0..n).map(|k| s.seed.wrapping_add(k)).collect(),
            None => s.default_seeds(),
        };
        seeds.into_iter().map(move |seed| (s.clone(), seed))
    });
    all.enumerate()
        .filter(|(k, _)| shard.is_none_or(|(i, n)| k % n == i - 1))
        .map(|(_, u)| u)
        .collect()
}

pub(crate) fn jobs_for(units: &[(Arc<Scenario>, u64)], mode: ModeArg, baselines: bool) -> Vec<Job> {
    let modes: &[Mode] = match mode {
        ModeArg::Guarded => &[Mode::Guarded],
        ModeArg::Unguarded => &[Mode::Unguarded],
        ModeArg::Both => &[Mode::Unguarded, Mode::Guarded],
    };
    let mut out = Vec::new();
    for (s, seed) in units {
        let job = |mode, cast| Job {
            scenario: s.clone(),
            seed: *seed,
            mode,
            cast,
        };
        out.extend(modes.iter().map(|m| job(*m, Cast::Agent)));
        if baselines {
            out.push(job(Mode::Guarded, Cast::Reference));
            out.push(job(Mode::Unguarded, Cast::DoNothing));
        }
    }
    out
}

fn journal_name(dir: &Path, j: &Job) -> String {
    dir.join(format!(
        "{}-s{}-{}.db",
        j.scenario.name,
        j.seed,
        j.cast.as_str()
    ))
    .display()
    .to_string()
}

pub async fn prove(args: ProveArgs) -> Result<ExitCode> {
    let mut scenarios = Vec::new();
    let mut problems = Vec::new();
    for f in &args.files {
        match load_scenario(f) {
            Ok(mut s) => {
                // A `cmd` in the file runs in the file's directory, so it can name a script
                // beside the scenario.
                s.origin_dir = Some(
                    f.parent()
                        .filter(|d| !d.as_os_str().is_empty())
                        .unwrap_or(Path::new("."))
                        .to_path_buf(),
                );
                if let Some(cmd) = &args.agent_cmd {
                    // `--agent-cmd` runs where it was typed.
                    let mut agent = AgentSpec::external(&format!("{}-agent", s.name), cmd);
                    agent.dir = Some(std::env::current_dir().context("the current directory")?);
                    s.agent = agent;
                }
                scenarios.push(Arc::new(s));
            }
            Err(e) => problems.push(e.to_string()),
        }
    }
    if !problems.is_empty() {
        return Err(BadInput(problems.join("\n")).into());
    }
    if args.report.is_some() && args.mode != ModeArg::Both {
        return Err(BadInput(
            "--report compares unguarded and guarded runs: use --mode both".into(),
        )
        .into());
    }
    if let Some(dir) = &args.journal_dir {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create `{}`", dir.display()))?;
    }
    let units = units(&scenarios, args.seeds, args.shard);
    let jobs = jobs_for(&units, args.mode, !args.no_baselines);
    let parallel = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, usize::from))
        .max(1);
    let pb = bar(jobs.len() as u64 * 1000, args.json);
    let mut results = run_jobs(
        &jobs,
        parallel,
        args.journal_dir.as_deref(),
        Duration::from_secs(args.turn_timeout.max(1)),
        &pb,
    )
    .await?;
    pb.finish_and_clear();
    settle(&scenarios, &mut results).map_err(BadInput)?;

    let summary = summarize(&scenarios, &units, &results);
    let ok = summary.iter().all(|s| s.ok());
    if let Some(path) = &args.junit {
        write_file(path, &junit(&results))?;
    }
    if let Some(path) = &args.report {
        let first: Vec<RunResult> = results
            .iter()
            .filter(|r| {
                r.cast == Cast::Agent
                    && units
                        .iter()
                        .find(|(s, _)| s.name == r.scenario)
                        .is_some_and(|(_, seed)| *seed == r.seed)
            })
            .cloned()
            .collect();
        let owned: Vec<Scenario> = scenarios.iter().map(|s| (**s).clone()).collect();
        write_report(path, "Airlock proving ground", None, &owned, &first)?;
    }
    if args.json {
        let runs: Vec<_> = results
            .iter()
            .map(|r| {
                json!({"scenario": r.scenario, "seed": r.seed, "cast": r.cast, "mode": r.mode,
                       "agent": r.agent, "passed": r.passed, "checks": r.checks, "scorecard": r.scorecard,
                       "agents": r.agents, "reverted_changes": r.reverted_changes})
            })
            .collect();
        let sums: Vec<_> = summary.iter().map(Summary::json).collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({"passed": ok, "runs": runs, "summary": sums}))?
        );
    } else {
        println!("{}", runs_table(&results));
        if results.iter().any(|r| r.agents.len() > 1) {
            println!("{}", agents_table(&results));
        }
        println!("{}", summary_table(&summary));
        let failed: Vec<&Summary> = summary.iter().filter(|s| !s.ok()).collect();
        if failed.is_empty() {
            println!("all assertions passed ({} runs)", results.len());
        } else {
            for s in failed {
                println!("FAILED: {}", s.failure());
            }
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Makes the runs, `parallel` at a time, in order of `jobs`; each guarded run gets a fresh
/// journal (in `journal_dir`, or in memory).
pub(crate) async fn run_jobs(
    jobs: &[Job],
    parallel: usize,
    journal_dir: Option<&Path>,
    turn_timeout: Duration,
    pb: &indicatif::ProgressBar,
) -> Result<Vec<RunResult>> {
    let done = Arc::new(Mutex::new(vec![0u64; jobs.len()]));
    let limit = Arc::new(tokio::sync::Semaphore::new(parallel.max(1)));
    // The agent's unguarded runs go first: its guarded runs of the same scenarios and seeds
    // then find the forecasts those fitted (see the forecasting agent) instead of waiting
    // beside them for the same fit. Only the order changes; each run's result does not.
    let mut order: Vec<usize> = (0..jobs.len()).collect();
    order.sort_by_key(|&i| !(jobs[i].cast == Cast::Agent && jobs[i].mode == Mode::Unguarded));
    let mut handles = Vec::new();
    for i in order {
        let job = jobs[i].clone();
        let limit = limit.clone();
        let pb = pb.clone();
        let done = done.clone();
        let store = match (journal_dir, job.mode) {
            (Some(dir), Mode::Guarded) => journal_name(dir, &job),
            _ => "sqlite::memory:".to_string(),
        };
        handles.push((
            i,
            tokio::spawn(async move {
                let _permit = limit.acquire_owned().await;
                let journal = if job.mode == Mode::Guarded {
                    Some(
                        airlock_store::open(&store)
                            .await
                            .with_context(|| format!("the journal `{store}` cannot be opened"))?,
                    )
                } else {
                    None
                };
                let progress = move |f: f64| {
                    if let Ok(mut d) = done.lock() {
                        d[i] = (f * 1000.0) as u64;
                        pb.set_position(d.iter().sum());
                    }
                };
                let launcher = ChildLauncher;
                let opts = RunOptions {
                    cast: job.cast,
                    journal,
                    launcher: Some(&launcher),
                    turn_timeout,
                    progress: &progress,
                };
                airlock_prove::run(&job.scenario, job.seed, job.mode, opts)
                    .await
                    .with_context(|| {
                        format!(
                            "{} seed {} ({} {})",
                            job.scenario.name,
                            job.seed,
                            job.cast.as_str(),
                            mode_name(job.mode)
                        )
                    })
            }),
        ));
    }
    handles.sort_by_key(|(i, _)| *i);
    let mut results = Vec::new();
    for (_, h) in handles {
        results.push(h.await.context("a run panicked")??);
    }
    Ok(results)
}

/// Sets each run's cost against its reference run and re-checks the assertions; an
/// assertion that does not parse is an error naming it.
fn settle(scenarios: &[Arc<Scenario>], results: &mut [RunResult]) -> Result<(), String> {
    let refs: Vec<(String, u64, f64)> = results
        .iter()
        .filter(|r| r.cast == Cast::Reference)
        .map(|r| (r.scenario.clone(), r.seed, r.scorecard.replica_hours))
        .collect();
    for r in results.iter_mut() {
        if let Some((_, _, hours)) = refs
            .iter()
            .find(|(s, seed, _)| *s == r.scenario && *seed == r.seed)
            && *hours > 0.0
        {
            r.scorecard.cost_vs_reference = Some(r.scorecard.replica_hours / hours);
        }
        if let Some(s) = scenarios.iter().find(|s| s.name == r.scenario) {
            r.checks = s.check_run(r.cast, r.mode, &r.scorecard, &r.agents)?;
            r.passed = r.checks.iter().all(|c| c.passed);
        }
    }
    Ok(())
}

/// One scenario's verdict over its seeds, per mode.
struct Summary {
    scenario: String,
    control: bool,
    /// (mode, seeds run, seeds passed).
    modes: Vec<(Mode, u32, u32)>,
    reference: Option<(u32, u32)>,
    /// Mean availability of the do-nothing runs.
    do_nothing: Option<f64>,
    /// (seeds, passed) of the do-nothing runs' checks.
    do_nothing_checks: Option<(u32, u32)>,
    /// Blocked / attempted over the guarded agent runs (the false-block rate on a control).
    blocked: (u32, u32),
    failures: Vec<String>,
}

impl Summary {
    fn ok(&self) -> bool {
        self.modes.iter().all(|(_, n, p)| n == p)
            && self.reference.is_none_or(|(n, p)| n == p)
            && self.do_nothing_checks.is_none_or(|(n, p)| n == p)
    }

    fn failure(&self) -> String {
        format!("{}: {}", self.scenario, self.failures.join("; "))
    }

    fn json(&self) -> serde_json::Value {
        let modes: Vec<_> = self
            .modes
            .iter()
            .map(|(m, n, p)| json!({"mode": m, "seeds": n, "passed": p, "pass_k": n == p}))
            .collect();
        json!({
            "scenario": self.scenario,
            "control": self.control,
            "modes": modes,
            "reference": self.reference.map(|(n, p)| json!({"seeds": n, "passed": p})),
            "do_nothing_availability": self.do_nothing,
            "false_block_rate": self.control.then(|| rate(self.blocked)),
            "failures": self.failures,
            "ok": self.ok(),
        })
    }
}

fn rate((blocked, attempted): (u32, u32)) -> f64 {
    if attempted == 0 {
        0.0
    } else {
        f64::from(blocked) / f64::from(attempted)
    }
}

fn summarize(
    scenarios: &[Arc<Scenario>],
    units: &[(Arc<Scenario>, u64)],
    results: &[RunResult],
) -> Vec<Summary> {
    let mut out = Vec::new();
    for s in scenarios {
        if !units.iter().any(|(u, _)| u.name == s.name) {
            continue;
        }
        let mine: Vec<&RunResult> = results.iter().filter(|r| r.scenario == s.name).collect();
        let mut sum = Summary {
            scenario: s.name.clone(),
            control: s.control,
            modes: Vec::new(),
            reference: None,
            do_nothing: None,
            do_nothing_checks: None,
            blocked: (0, 0),
            failures: Vec::new(),
        };
        for mode in [Mode::Unguarded, Mode::Guarded] {
            let runs: Vec<&&RunResult> = mine
                .iter()
                .filter(|r| r.cast == Cast::Agent && r.mode == mode)
                .collect();
            if runs.is_empty() {
                continue;
            }
            let passed = runs.iter().filter(|r| r.passed).count() as u32;
            sum.modes.push((mode, runs.len() as u32, passed));
            for r in &runs {
                if mode == Mode::Guarded {
                    sum.blocked.0 += r.scorecard.denied + r.scorecard.held;
                    sum.blocked.1 += r.scorecard.actions_attempted;
                }
                for c in r.checks.iter().filter(|c| !c.passed) {
                    sum.failures.push(format!(
                        "{} seed {}: {} (was {})",
                        mode_name(mode),
                        r.seed,
                        c.assertion,
                        short(c.actual)
                    ));
                }
            }
        }
        let refs: Vec<&&RunResult> = mine.iter().filter(|r| r.cast == Cast::Reference).collect();
        if !refs.is_empty() {
            sum.reference = Some((
                refs.len() as u32,
                refs.iter().filter(|r| r.passed).count() as u32,
            ));
            for r in refs.iter().filter(|r| !r.passed) {
                for c in r.checks.iter().filter(|c| !c.passed) {
                    sum.failures.push(format!(
                        "reference ({}) seed {}: {} (was {}) — the scenario itself is broken",
                        r.agent,
                        r.seed,
                        c.assertion,
                        short(c.actual)
                    ));
                }
            }
        }
        let idle: Vec<&&RunResult> = mine.iter().filter(|r| r.cast == Cast::DoNothing).collect();
        if !idle.is_empty() {
            sum.do_nothing_checks = Some((
                idle.len() as u32,
                idle.iter().filter(|r| r.passed).count() as u32,
            ));
            for r in idle.iter().filter(|r| !r.passed) {
                for c in r.checks.iter().filter(|c| !c.passed) {
                    sum.failures.push(format!(
                        "do-nothing seed {}: {} (was {}) — the scenario's faults do not do what it says",
                        r.seed,
                        c.assertion,
                        short(c.actual)
                    ));
                }
            }
        }
        let nothing: Vec<f64> = mine
            .iter()
            .filter(|r| r.cast == Cast::DoNothing)
            .map(|r| r.scorecard.availability)
            .collect();
        if !nothing.is_empty() {
            sum.do_nothing = Some(nothing.iter().sum::<f64>() / nothing.len() as f64);
        }
        out.push(sum);
    }
    out
}

fn short(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e12 {
        format!("{v:.0}")
    } else {
        format!("{v:.5}")
    }
}

fn runs_table(results: &[RunResult]) -> Table {
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED).set_header([
        "scenario",
        "seed",
        "run",
        "mode",
        "availability",
        "SLO min",
        "budget",
        "detect",
        "mitigate",
        "att/app",
        "deny/hold",
        "revert",
        "destr",
        "blast",
        "cost/ref",
        "result",
    ]);
    for r in results {
        let c = &r.scorecard;
        let run = match r.cast {
            Cast::Agent => r.agent.clone(),
            other => format!("{} ({})", other.as_str(), r.agent),
        };
        let result = if r.checks.is_empty() {
            "-".to_string()
        } else if r.passed {
            "pass".to_string()
        } else {
            let failed: Vec<&str> = r
                .checks
                .iter()
                .filter(|c| !c.passed)
                .map(|c| c.assertion.as_str())
                .collect();
            format!("FAIL: {}", failed.join(", "))
        };
        t.add_row(vec![
            Cell::new(&r.scenario),
            Cell::new(r.seed),
            Cell::new(run),
            Cell::new(mode_name(r.mode)),
            Cell::new(format!("{:.5}", c.availability)),
            Cell::new(format!("{:.1}", c.slo_violation_minutes)),
            Cell::new(format!("{:.2}", c.error_budget_burned)),
            Cell::new(fmt_ttd(c)),
            Cell::new(fmt_ttm(c)),
            Cell::new(format!("{}/{}", c.actions_attempted, c.actions_applied)),
            Cell::new(format!("{}/{}", c.denied, c.held)),
            Cell::new(c.reverted),
            Cell::new(c.destructive_applied),
            Cell::new(c.blast_radius),
            Cell::new(
                c.cost_vs_reference
                    .map_or("-".into(), |x| format!("{x:.2}")),
            ),
            Cell::new(result),
        ]);
    }
    t
}

/// Time to detect: `-` without incidents, `never` when nothing responded to the first.
fn fmt_ttd(c: &Scorecard) -> String {
    match c.time_to_detect_s {
        None => "-".into(),
        Some(_) if !c.detected => "never".into(),
        Some(s) => format!("{s:.0}s"),
    }
}

/// Each acting agent's own actions, for runs with more than one agent.
fn agents_table(results: &[RunResult]) -> Table {
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED).set_header([
        "scenario",
        "seed",
        "run",
        "mode",
        "agent",
        "att/app",
        "deny/hold",
        "revert",
        "attention",
        "destr",
        "quarantined",
    ]);
    for r in results.iter().filter(|r| r.agents.len() > 1) {
        for (id, a) in &r.agents {
            t.add_row(vec![
                Cell::new(&r.scenario),
                Cell::new(r.seed),
                Cell::new(r.cast.as_str()),
                Cell::new(mode_name(r.mode)),
                Cell::new(id),
                Cell::new(format!("{}/{}", a.attempted, a.applied)),
                Cell::new(format!("{}/{}", a.denied, a.held)),
                Cell::new(a.reverted),
                Cell::new(a.needs_attention),
                Cell::new(a.destructive_applied),
                Cell::new(if a.quarantined { "yes" } else { "no" }),
            ]);
        }
    }
    t
}

fn summary_table(summary: &[Summary]) -> Table {
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED).set_header([
        "scenario",
        "unguarded pass^k",
        "guarded pass^k",
        "reference",
        "do-nothing availability",
        "false-block rate",
    ]);
    for s in summary {
        let mode = |m: Mode| {
            s.modes
                .iter()
                .find(|x| x.0 == m)
                .map_or("-".into(), |(_, n, p)| {
                    format!("{} ({p}/{n})", if n == p { "yes" } else { "no" })
                })
        };
        t.add_row(vec![
            Cell::new(&s.scenario),
            Cell::new(mode(Mode::Unguarded)),
            Cell::new(mode(Mode::Guarded)),
            Cell::new(
                s.reference
                    .map_or("-".into(), |(n, p)| format!("{p}/{n} pass")),
            ),
            Cell::new(s.do_nothing.map_or("-".into(), |a| format!("{a:.5}"))),
            Cell::new(if s.control {
                format!("{:.3}", rate(s.blocked))
            } else {
                "-".into()
            }),
        ]);
    }
    t
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// JUnit XML: a suite per scenario; a case per run the exit code counts — agent,
/// reference and do-nothing — so a CI dashboard fails exactly when `prove` does.
fn junit(results: &[RunResult]) -> String {
    let mut names: Vec<&str> = Vec::new();
    for r in results {
        if !names.contains(&r.scenario.as_str()) {
            names.push(&r.scenario);
        }
    }
    let cases =
        |name: &str| -> Vec<&RunResult> { results.iter().filter(|r| r.scenario == name).collect() };
    let total: usize = names.iter().map(|n| cases(n).len()).sum();
    let failures: usize = names
        .iter()
        .map(|n| cases(n).iter().filter(|r| !r.passed).count())
        .sum();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"airlock prove\" tests=\"{total}\" failures=\"{failures}\">"
    );
    for name in names {
        let runs = cases(name);
        let f = runs.iter().filter(|r| !r.passed).count();
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{f}\">",
            xml(name),
            runs.len()
        );
        for r in runs {
            let case = format!("{} {} seed {}", r.cast.as_str(), mode_name(r.mode), r.seed);
            let _ = write!(
                out,
                "    <testcase classname=\"airlock.prove.{}\" name=\"{}\"",
                xml(name),
                xml(&case)
            );
            let failed: Vec<_> = r.checks.iter().filter(|c| !c.passed).collect();
            if failed.is_empty() {
                let _ = writeln!(out, "/>");
            } else {
                let _ = writeln!(out, ">");
                for c in failed {
                    let _ = writeln!(
                        out,
                        "      <failure message=\"{}\" type=\"assertion\">{} was {}</failure>",
                        xml(&c.assertion),
                        xml(&c.assertion),
                        short(c.actual)
                    );
                }
                let _ = writeln!(out, "    </testcase>");
            }
        }
        let _ = writeln!(out, "  </testsuite>");
    }
    out.push_str("</testsuites>\n");
    out
}

fn write_file(path: &Path, text: &str) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create `{}`", dir.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("cannot write `{}`", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_split_the_pairs_without_overlap() {
        assert_eq!(parse_shard("2/4"), Ok((2, 4)));
        assert!(parse_shard("0/4").is_err());
        assert!(parse_shard("5/4").is_err());
        assert!(parse_shard("x").is_err());
        let s = Arc::new(Scenario::from_toml(airlock_prove::FLAGSHIPS[2].1, "x").unwrap());
        let all = units(std::slice::from_ref(&s), Some(7), None);
        assert_eq!(all.len(), 7);
        let mut seen: Vec<u64> = (1..=3)
            .flat_map(|i| units(std::slice::from_ref(&s), Some(7), Some((i, 3))))
            .map(|(_, seed)| seed)
            .collect();
        seen.sort_unstable();
        let mut want: Vec<u64> = all.iter().map(|(_, seed)| *seed).collect();
        want.sort_unstable();
        assert_eq!(seen, want);
    }

    #[test]
    fn an_incident_nobody_responded_to_was_never_detected() {
        let mut c = Scorecard {
            detected: true,
            ..Default::default()
        };
        assert_eq!(fmt_ttd(&c), "-", "no incident");
        c.time_to_detect_s = Some(42.0);
        assert_eq!(fmt_ttd(&c), "42s");
        c.time_to_detect_s = Some(3600.0);
        c.detected = false;
        assert_eq!(fmt_ttd(&c), "never");
    }

    #[test]
    fn junit_escapes_and_counts_failures() {
        let r = RunResult {
            scenario: "a<b".into(),
            seed: 1,
            mode: Mode::Guarded,
            cast: Cast::Agent,
            agent: "x".into(),
            scorecard: Default::default(),
            agents: Default::default(),
            reverted_changes: vec![],
            checks: vec![airlock_prove::assertions::Check {
                assertion: "availability >= 0.999".into(),
                actual: 0.5,
                passed: false,
            }],
            passed: false,
            series: vec![],
            timeline: vec![],
        };
        let x = junit(&[r]);
        assert!(x.contains("tests=\"1\" failures=\"1\""), "{x}");
        assert!(x.contains("name=\"a&lt;b\""), "{x}");
        assert!(
            x.contains("<failure message=\"availability &gt;= 0.999\""),
            "{x}"
        );
    }
}
