//! What a simulated day costs: a synthetic world of 200 services run for 24 hours at 10 s
//! ticks (8640 ticks), reading the truth after every tick as a proving-ground runner does
//! and observing once per simulated minute as an agent does.
//!
//! Beside it, the minimal tick model of `airlock bench sim` (demand curve, noise, capacity,
//! availability, latency of the same services in one flat array): the floor the day is
//! measured against, timed in the same run.
//!
//! Run with `cargo bench -p airlock-sim --bench day`.

use airlock_sim::{Sim, synthetic};
use criterion::Criterion;
use std::error::Error;
use std::hint::black_box;

const SERVICES: usize = 200;
const TICK_S: u64 = 10;
const TICKS: u64 = 24 * 3600 / TICK_S;
/// 2024-01-01T00:00:00Z, in milliseconds.
const START_MS: i64 = 1_704_067_200_000;

/// Runs the day; returns something of every tick so nothing is optimised away.
fn day(sim: &mut Sim) -> f64 {
    let mut acc = 0.0;
    for i in 0..TICKS {
        sim.tick();
        for s in sim.truth().values() {
            acc += s.demand_rps * s.availability;
        }
        if i % (60 / TICK_S) == 0 {
            let obs = sim.observe();
            acc += obs.services.iter().filter(|s| s.signals.is_some()).count() as f64;
        }
    }
    acc
}

fn main() -> Result<(), Box<dyn Error>> {
    let world = synthetic(SERVICES, 1);
    let fresh = Sim::new(world.clone(), 7, START_MS, TICK_S)?;
    let mut c = Criterion::default().sample_size(10).configure_from_args();
    c.bench_function("day_200_services_10s_ticks", |b| {
        b.iter_batched_ref(
            || fresh.clone(),
            |sim| black_box(day(sim)),
            criterion::BatchSize::LargeInput,
        )
    });
    let mut ticked = fresh.clone();
    for _ in 0..100 {
        ticked.tick();
    }
    // Where the day's time goes: its 1440 observations alone, and its ticks alone.
    c.bench_function("observe_1440_times", |b| {
        b.iter(|| {
            let mut acc = 0;
            for _ in 0..1440 {
                acc += black_box(ticked.observe()).services.len();
            }
            acc
        })
    });
    c.bench_function("day_without_observe", |b| {
        b.iter_batched_ref(
            || fresh.clone(),
            |sim| {
                let mut acc = 0.0;
                for _ in 0..TICKS {
                    sim.tick();
                    for s in sim.truth().values() {
                        acc += s.demand_rps * s.availability;
                    }
                }
                acc
            },
            criterion::BatchSize::LargeInput,
        )
    });
    c.bench_function("minimal_model_200_services_10s_ticks", |b| {
        b.iter(|| {
            black_box(airlock_sim::synthetic::minimal_day(
                &world, START_MS, TICKS, TICK_S,
            ))
        })
    });
    c.final_summary();
    Ok(())
}
