//! `airlock bench prove`: the wall time of the proving ground over a scenario library at
//! its default seeds — every run `airlock prove` makes (the agent guarded and unguarded,
//! the reference and do-nothing runs) — against the floor of the same worlds simulated for
//! the same time with nobody acting (every run do-nothing, unguarded), interleaved.

use crate::bench::now;
use crate::demo::load_scenario;
use crate::prove::{Job, ModeArg, jobs_for, run_jobs, settle, summarize, units};
use airlock_prove::{Cast, Mode, RunResult};
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

/// Wall time of one pass over `jobs`, and its results.
async fn pass(jobs: &[Job], parallel: usize) -> Result<(f64, Vec<RunResult>)> {
    let t = now();
    let hidden = indicatif::ProgressBar::hidden();
    let results = run_jobs(jobs, parallel, None, Duration::from_secs(120), &hidden).await?;
    Ok((t.elapsed().as_secs_f64(), results))
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
    let mut scenarios = Vec::new();
    for f in library(&args.dir)? {
        let mut s = load_scenario(&f).map_err(|e| crate::BadInput(e.to_string()))?;
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
    let mut last = Vec::new();
    for _ in 0..args.runs.max(1) {
        let (s, results) = pass(&jobs, parallel).await?;
        lib_s.push(s);
        last = results;
        bar.inc(1);
        floor_s.push(pass(&floor, parallel).await?.0);
        bar.inc(1);
    }
    bar.finish_and_clear();
    settle(&scenarios, &mut last).map_err(crate::BadInput)?;
    let summary = summarize(&scenarios, &units, &last);
    let failures: Vec<String> = summary
        .iter()
        .filter(|s| !s.ok())
        .map(|s| s.failure())
        .collect();
    let (lib, fl) = (median(&mut lib_s.clone()), median(&mut floor_s.clone()));
    let out = json!({
        "scenarios": scenarios.len(), "runs_per_pass": jobs.len(), "parallel": parallel, "rounds": args.runs.max(1),
        "library_s": {"median": lib, "all": lib_s},
        "floor_s": {"median": fl, "all": floor_s},
        "ratio": lib / fl.max(1e-9),
        "assertions_passed": failures.is_empty(), "failures": failures,
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
                "the library, as `airlock prove {}/*.toml` runs it",
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
            "{} scenarios, {parallel} at a time; library / floor {:.2}x; assertions {}",
            scenarios.len(),
            lib / fl.max(1e-9),
            if failures.is_empty() {
                "passed".to_string()
            } else {
                format!("FAILED: {}", failures.join("; "))
            }
        );
    }
    if failures.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("airlock bench: the library's assertions failed: the run is not valid");
        Ok(ExitCode::FAILURE)
    }
}
