//! The simulator's output pinned: a synthetic world's hours, every service's true signals
//! after every tick and what an agent observes once a simulated minute, summed per service
//! and compared with a golden file. A change that makes the simulator faster must leave
//! these as they are: a proving-ground run is reproducible from (scenario, seed) only while
//! the same seed gives the same series. Sums are compared to a relative 1e-9, so a last-bit
//! difference of a machine's `cos` or `ln` does not fail the test while any change of the
//! dynamics or of the random draws does. `AIRLOCK_UPDATE_GOLDEN=1` rewrites the file.
#![cfg(test)]

use airlock_sim::{Sim, synthetic};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

const GOLDEN: &str = "tests/golden/series-50-services-6h-seed7.json";

/// Per service: the sums of its signals over every tick of `hours` at 10 s ticks, and of
/// what was observed of it once a minute.
fn sums(services: usize, seed: u64, hours: u64) -> Value {
    let mut sim = Sim::new(synthetic(services, 1), seed, 1_704_067_200_000, 10).unwrap();
    let mut acc: BTreeMap<String, [f64; 8]> = BTreeMap::new();
    for i in 0..hours * 360 {
        sim.tick();
        for (name, s) in sim.truth() {
            let a = acc.entry(name.clone()).or_default();
            a[0] += s.demand_rps;
            a[1] += s.capacity_rps;
            a[2] += s.availability;
            a[3] += s.p99_ms;
            a[4] += f64::from(s.replicas_ready);
            a[5] += f64::from(s.replicas_desired);
        }
        if i % 6 == 0 {
            for v in sim.observe().services {
                let a = acc.entry(v.name.to_string()).or_default();
                a[6] += f64::from(v.replicas_ready) + v.dependents.len() as f64;
                a[7] += v.signals.map_or(0.0, |s| s.availability);
            }
        }
    }
    let mut out = Map::new();
    for (name, a) in acc {
        out.insert(name, json!(a));
    }
    Value::Object(out)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

#[test]
fn six_hours_of_fifty_services_give_the_pinned_series_from_the_same_seed() {
    let got = sums(50, 7, 6);
    assert_ne!(got, sums(50, 8, 6), "another seed gives another series");
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(GOLDEN);
    if std::env::var_os("AIRLOCK_UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, serde_json::to_string_pretty(&got).unwrap() + "\n").unwrap();
    }
    let want: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let (got, want) = (got.as_object().unwrap(), want.as_object().unwrap());
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "the same services"
    );
    for (name, w) in want {
        let g = got[name].as_array().unwrap();
        for (i, (g, w)) in g.iter().zip(w.as_array().unwrap()).enumerate() {
            let (g, w) = (g.as_f64().unwrap(), w.as_f64().unwrap());
            assert!(close(g, w), "{name}[{i}]: {g} now, {w} pinned");
        }
    }
}
