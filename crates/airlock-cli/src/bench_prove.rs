//! `airlock bench prove`: the wall time of `airlock prove DIR/*.toml` over a scenario library
//! at its default seeds — a fresh process each round, as users run it (the agent guarded and
//! unguarded, the reference and do-nothing runs) — against the floor of the same worlds
//! simulated for the same time with nobody acting (every run do-nothing, unguarded), timed in
//! this process, interleaved. Every round must decide the same.

use crate::bench::now;
use crate::demo::load_scenario;
use crate::prove::{Job, ModeArg, jobs_for, run_jobs, units};
use airlock_prove::{Cast, Mode};
use anyhow::{Context, Result};
use clap::Args;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[derive(Args)]
pub struct ProveBenchArgs {
    /// The scenario library: a directory of scenario files (TOML).
    #[arg(long, default_value = "scenarios")]
    dir: PathBuf,
    /// Timed rounds of each (the median is reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Runs at a time (default: the number of cores).
    #[arg(long, value_name = "N")]
    jobs: Option<usize>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Wall time of one in-process pass over `jobs`.
async fn pass(jobs: &[Job], parallel: usize) -> Result<f64> {
    let t = now();
    let hidden = indicatif::ProgressBar::hidden();
    run_jobs(jobs, parallel, None, Duration::from_secs(120), &hidden).await?;
    Ok(t.elapsed().as_secs_f64())
}

/// What `airlock prove` decided in one round: each run's scorecard and checks, and the
/// assertions that failed; with its wall time.
struct Round {
    secs: f64,
    decided: Vec<serde_json::Value>,
    failures: Vec<String>,
}

/// `airlock prove FILES --json` in a fresh process (exit 0, or 1 when assertions fail).
async fn round(files: &[PathBuf], parallel: usize) -> Result<Round> {
    let exe = std::env::current_exe().context("cannot find this program's path")?;
    let mut cmd = tokio::process::Command::new(exe);
    cmd.arg("prove")
        .args(files)
        .args(["--json", "--jobs", &parallel.to_string()])
        .env_remove("AIRLOCK_LOG")
        .stdin(std::process::Stdio::null());
    let t = now();
    let out = cmd.output().await.context("cannot run `airlock prove`")?;
    let secs = t.elapsed().as_secs_f64();
    anyhow::ensure!(
        matches!(out.status.code(), Some(0 | 1)),
        "`airlock prove` failed ({:?}): {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("`airlock prove --json` is not JSON")?;
    let decided = v["runs"]
        .as_array()
        .map(|runs| {
            runs.iter()
                .map(|r| {
                    json!([
                        r["scenario"],
                        r["seed"],
                        r["cast"],
                        r["mode"],
                        r["passed"],
                        r["checks"],
                        r["scorecard"]
                    ])
                })
                .collect()
        })
        .unwrap_or_default();
    let failures = v["summary"]
        .as_array()
        .map(|s| {
            s.iter()
                .filter(|x| x["ok"] != true)
                .map(|x| x["scenario"].as_str().unwrap_or("?").to_string())
                .collect()
        })
        .unwrap_or_default();
    Ok(Round {
        secs,
        decided,
        failures,
    })
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn library(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read the scenario library `{}`", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(crate::BadInput(format!("no scenario files in `{}`", dir.display())).into());
    }
    Ok(files)
}

pub async fn prove(args: ProveBenchArgs) -> Result<ExitCode> {
    let files = library(&args.dir)?;
    let mut scenarios = Vec::new();
    for f in &files {
        let mut s = load_scenario(f).map_err(|e| crate::BadInput(e.to_string()))?;
        s.origin_dir = Some(f.parent().unwrap_or(Path::new(".")).to_path_buf());
        scenarios.push(Arc::new(s));
    }
    let units = units(&scenarios, None, None);
    let jobs = jobs_for(&units, ModeArg::Both, true);
    let floor: Vec<Job> = jobs
        .iter()
        .map(|j| Job {
            mode: Mode::Unguarded,
            cast: Cast::DoNothing,
            ..j.clone()
        })
        .collect();
    let parallel = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, usize::from))
        .max(1);
    let bar = indicatif::ProgressBar::new((args.runs.max(1) * 2) as u64);
    let (mut lib_s, mut floor_s) = (Vec::new(), Vec::new());
    let mut rounds: Vec<Round> = Vec::new();
    for _ in 0..args.runs.max(1) {
        let r = round(&files, parallel).await?;
        lib_s.push(r.secs);
        rounds.push(r);
        bar.inc(1);
        floor_s.push(pass(&floor, parallel).await?);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let reproducible = rounds.windows(2).all(|w| w[0].decided == w[1].decided);
    let failures = rounds
        .first()
        .map(|r| r.failures.clone())
        .unwrap_or_default();
    let (lib, fl) = (median(&mut lib_s.clone()), median(&mut floor_s.clone()));
    let out = json!({
        "scenarios": scenarios.len(), "runs_per_pass": jobs.len(), "parallel": parallel, "rounds": args.runs.max(1),
        "library_s": {"median": lib, "all": lib_s},
        "floor_s": {"median": fl, "all": floor_s},
        "ratio": lib / fl.max(1e-9),
        "reproducible": reproducible,
        "scenarios_failing_assertions": failures,
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        let mut t = Table::new();
        t.load_style(UTF8_FULL_CONDENSED)
            .set_header(["pass", "runs", "median s", "all s"]);
        let all = |v: &[f64]| {
            v.iter()
                .map(|x| format!("{x:.2}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        t.add_row([
            format!(
                "`airlock prove {}/*.toml` (a fresh process each)",
                args.dir.display()
            ),
            jobs.len().to_string(),
            format!("{lib:.2}"),
            all(&lib_s),
        ]);
        t.add_row([
            "floor: the same worlds, nobody acting (do-nothing, unguarded)".to_string(),
            floor.len().to_string(),
            format!("{fl:.2}"),
            all(&floor_s),
        ]);
        println!("{t}");
        println!(
            "{} scenarios, {parallel} at a time; library / floor {:.2}x; every round decided the same: {}; scenarios whose assertions fail: {}",
            scenarios.len(),
            lib / fl.max(1e-9),
            if reproducible { "yes" } else { "NO" },
            if failures.is_empty() {
                "none".to_string()
            } else {
                failures.join(", ")
            }
        );
    }
    if reproducible {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("airlock bench: the rounds decided differently: the run is not valid");
        Ok(ExitCode::FAILURE)
    }
}
