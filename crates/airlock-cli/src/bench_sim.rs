//! `airlock bench sim`: what a simulated day costs the sandbox cloud — a synthetic world run
//! tick by tick, its truth read after every tick and observed once a simulated minute, as a
//! proving-ground run does — against a minimal tick model of the same services (demand curve,
//! noise, capacity, availability, latency; no zones, faults, dependencies or history) timed in
//! the same run.

use crate::bench::now;
use airlock_sim::{Sim, synthetic};
use anyhow::Result;
use clap::Args;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use serde_json::json;
use std::hint::black_box;
use std::process::ExitCode;

#[derive(Args)]
pub struct SimBenchArgs {
    /// Services in the synthetic world.
    #[arg(long, default_value_t = 200)]
    services: usize,
    /// Simulated hours.
    #[arg(long, default_value_t = 24)]
    hours: u64,
    /// Simulated seconds per tick.
    #[arg(long, default_value_t = 10)]
    tick_s: u64,
    /// Timed runs of each (after one warm-up run); the median is reported.
    #[arg(long, default_value_t = 7)]
    runs: usize,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// 2024-01-01T00:00:00Z, in milliseconds: the day starts at midnight.
const START_MS: i64 = 1_704_067_200_000;

/// The simulator's day; returns a sum over every tick so nothing is optimised away.
fn day(sim: &mut Sim, ticks: u64, tick_s: u64) -> f64 {
    let mut acc = 0.0;
    let observe_every = (60 / tick_s).max(1);
    for i in 0..ticks {
        sim.tick();
        for s in sim.truth().values() {
            acc += s.demand_rps * s.availability;
        }
        if i % observe_every == 0 {
            let obs = sim.observe();
            acc += obs.services.iter().filter(|s| s.signals.is_some()).count() as f64;
        }
    }
    acc
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub fn sim(args: SimBenchArgs) -> Result<ExitCode> {
    let tick_s = args.tick_s.max(1);
    let ticks = args.hours * 3600 / tick_s;
    let world = synthetic(args.services, 1);
    let fresh = Sim::new(world.clone(), 7, START_MS, tick_s)?;
    let runs = args.runs.max(1);
    let (mut full, mut base) = (Vec::new(), Vec::new());
    // Interleaved, so both see the same machine.
    for i in 0..=runs {
        let mut sim = fresh.clone();
        let t0 = now();
        black_box(day(&mut sim, ticks, tick_s));
        let a = t0.elapsed().as_secs_f64() * 1000.0;
        let t0 = now();
        black_box(airlock_sim::synthetic::minimal_day(
            &world, START_MS, ticks, tick_s,
        ));
        let b = t0.elapsed().as_secs_f64() * 1000.0;
        if i > 0 {
            full.push(a);
            base.push(b);
        }
    }
    let (f, b) = (median(full), median(base));
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "services": args.services, "hours": args.hours, "tick_s": tick_s, "ticks": ticks,
                "runs": runs, "sim_ms": f, "minimal_model_ms": b, "ratio": f / b}))?
        );
    } else {
        let mut t = Table::new();
        t.load_style(UTF8_FULL_CONDENSED)
            .set_header(["model", "median ms", "ratio"]);
        t.add_row(vec![
            "sandbox cloud (Sim)".to_string(),
            format!("{f:.1}"),
            format!("{:.1}", f / b),
        ]);
        t.add_row(vec![
            "minimal tick model".to_string(),
            format!("{b:.1}"),
            "1.0".to_string(),
        ]);
        println!(
            "{} services, {} h at {tick_s} s ticks ({ticks} ticks), median of {runs} runs each:",
            args.services, args.hours
        );
        println!("{t}");
    }
    Ok(ExitCode::SUCCESS)
}
