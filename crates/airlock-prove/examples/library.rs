//! Runs the shipped scenario library the way `airlock prove scenarios/*.toml` does (every
//! scenario × default seed: the agent under test unguarded and guarded, the reference run
//! and the do-nothing run, several at a time) and prints the wall time; `--dump FILE`
//! writes every run's result as JSON, to check that a speed-up changed no result.
//!
//! ```text
//! cargo run --release -p airlock-prove --example library -- [--jobs N] [--repeat N]
//!     [--only NAME]... [--dump FILE] [--times]
//! ```

use airlock_prove::{Cast, ChildLauncher, Mode, RunOptions, RunResult, Scenario};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Args {
    jobs: usize,
    repeat: usize,
    only: Vec<String>,
    dump: Option<PathBuf>,
    times: bool,
}

fn parse() -> Result<Args, String> {
    let mut args = Args {
        jobs: std::thread::available_parallelism().map_or(2, usize::from),
        repeat: 1,
        only: Vec::new(),
        dump: None,
        times: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("`{name}` needs a value"));
        match a.as_str() {
            "--jobs" => {
                args.jobs = value("--jobs")?
                    .parse()
                    .map_err(|_| "`--jobs`: not a number")?
            }
            "--repeat" => {
                args.repeat = value("--repeat")?
                    .parse()
                    .map_err(|_| "`--repeat`: not a number")?
            }
            "--only" => args.only.push(value("--only")?),
            "--dump" => args.dump = Some(value("--dump")?.into()),
            "--times" => args.times = true,
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    args.jobs = args.jobs.max(1);
    Ok(args)
}

fn scenarios(only: &[String]) -> Result<Vec<Arc<Scenario>>, String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| format!("cannot read `{}`: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).map_err(|e| format!("`{}`: {e}", f.display()))?;
        let mut s = Scenario::from_toml(&text, &f.display().to_string())
            .map_err(|e| format!("`{}`: {e}", f.display()))?;
        if !only.is_empty() && !only.contains(&s.name) {
            continue;
        }
        s.origin_dir = Some(dir.clone());
        out.push(Arc::new(s));
    }
    Ok(out)
}

/// One run to make, in `airlock prove`'s order.
struct Job {
    scenario: Arc<Scenario>,
    seed: u64,
    mode: Mode,
    cast: Cast,
}

fn jobs(scenarios: &[Arc<Scenario>]) -> Vec<Job> {
    let mut out = Vec::new();
    for s in scenarios {
        for seed in s.default_seeds() {
            for (mode, cast) in [
                (Mode::Unguarded, Cast::Agent),
                (Mode::Guarded, Cast::Agent),
                (Mode::Guarded, Cast::Reference),
                (Mode::Unguarded, Cast::DoNothing),
            ] {
                out.push(Job {
                    scenario: s.clone(),
                    seed,
                    mode,
                    cast,
                });
            }
        }
    }
    out
}

async fn run_one(job: &Job) -> Result<RunResult, String> {
    let journal = if job.mode == Mode::Guarded {
        Some(
            airlock_store::open("sqlite::memory:")
                .await
                .map_err(|e| format!("journal: {e}"))?,
        )
    } else {
        None
    };
    let launcher = ChildLauncher;
    let opts = RunOptions {
        cast: job.cast,
        journal,
        launcher: Some(&launcher),
        turn_timeout: Duration::from_secs(120),
        progress: &|_| {},
    };
    airlock_prove::run(&job.scenario, job.seed, job.mode, opts)
        .await
        .map_err(|e| {
            format!(
                "{} seed {} {} {:?}: {e}",
                job.scenario.name,
                job.seed,
                job.cast.as_str(),
                job.mode
            )
        })
}

#[expect(
    clippy::disallowed_methods,
    reason = "a benchmark reports wall time; no run reads this clock"
)]
fn now() -> Instant {
    Instant::now()
}

/// Runs every job, `jobs` at a time, on a runtime like the CLI's; returns the results in
/// job order and each run's wall time.
async fn run_all(
    jobs: Arc<Vec<Job>>,
    parallel: usize,
) -> Result<Vec<(RunResult, Duration)>, String> {
    let limit = Arc::new(tokio::sync::Semaphore::new(parallel));
    let mut handles = Vec::new();
    for i in 0..jobs.len() {
        let (limit, jobs) = (limit.clone(), jobs.clone());
        handles.push(tokio::spawn(async move {
            let _permit = limit.acquire_owned().await;
            let t = now();
            let r = run_one(&jobs[i]).await?;
            Ok::<_, String>((r, t.elapsed()))
        }));
    }
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.map_err(|e| format!("a run panicked: {e}"))??);
    }
    Ok(out)
}

fn main() -> ExitCode {
    match real_main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn real_main() -> Result<(), String> {
    let args = parse()?;
    let scenarios = scenarios(&args.only)?;
    let jobs = Arc::new(jobs(&scenarios));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let mut walls = Vec::new();
    let mut last = Vec::new();
    for k in 0..args.repeat {
        let t = now();
        last = runtime.block_on(run_all(jobs.clone(), args.jobs))?;
        let wall = t.elapsed().as_secs_f64();
        println!(
            "pass {}: {} scenarios, {} runs, --jobs {}: {wall:.3} s wall",
            k + 1,
            scenarios.len(),
            jobs.len(),
            args.jobs
        );
        walls.push(wall);
    }
    walls.sort_by(f64::total_cmp);
    if let Some(median) = walls.get(walls.len() / 2) {
        println!("median wall: {median:.3} s over {} passes", walls.len());
    }
    if args.times {
        let mut by_run: Vec<(&Job, f64)> = jobs
            .iter()
            .zip(&last)
            .map(|(j, (_, d))| (j, d.as_secs_f64()))
            .collect();
        by_run.sort_by(|a, b| b.1.total_cmp(&a.1));
        let total: f64 = by_run.iter().map(|(_, d)| d).sum();
        println!("sum of run times: {total:.3} s; slowest runs:");
        for (j, d) in by_run.iter().take(20) {
            println!(
                "  {d:7.3} s  {} seed {} {} {:?}",
                j.scenario.name,
                j.seed,
                j.cast.as_str(),
                j.mode
            );
        }
    }
    if let Some(path) = &args.dump {
        let results: Vec<&RunResult> = last.iter().map(|(r, _)| r).collect();
        let text = serde_json::to_string_pretty(&results).map_err(|e| e.to_string())?;
        std::fs::write(path, text).map_err(|e| format!("`{}`: {e}", path.display()))?;
        println!("wrote {} runs to `{}`", results.len(), path.display());
    }
    Ok(())
}
