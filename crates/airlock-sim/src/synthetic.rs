//! Large plausible worlds generated from a seed, for benchmarks and soak runs: three
//! regions of three zones, services with daily demand curves and a dependency DAG, a few
//! flash crowds and one fault of each kind over a day.

use crate::spec::{
    DemandSpec, EventSpec, FaultKind, FaultSpec, RegionSpec, ServiceSpec, Tier, VersionSpec,
    WorldSpec,
};
use airlock_core::Secs;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

const REGIONS: [&str; 3] = ["us-east", "eu-west", "ap-south"];
/// Local business peaks (UTC hour) of each region's users.
const PEAK_HOUR: [f64; 3] = [18.0, 13.0, 6.0];
const ROLES: [&str; 12] = [
    "api", "web", "auth", "cart", "search", "catalog", "payments", "orders", "users", "cache",
    "queue", "db",
];
const DAY_S: u64 = 86_400;

/// A world of `services` services over 3 regions × 3 zones, deterministic from `seed`.
///
/// Services are spread round-robin over the regions, with 2 to 40 replicas, a daily demand
/// curve with noise peaking at the region's busy hour, about a third of them critical. Each
/// depends on up to 3 earlier services of its region, so the dependencies form a DAG.
/// Over the first 24 hours there are a few flash crowds and one fault of each kind. A few
/// versions are declared (`v2-bad`, `v3-slow`, `v4-leak`) for agents to deploy; every
/// service starts on the good `v1`. The result passes [`WorldSpec::problems`].
pub fn synthetic(services: usize, seed: u64) -> WorldSpec {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let regions: Vec<RegionSpec> = REGIONS
        .iter()
        .map(|r| RegionSpec {
            name: (*r).into(),
            azs: ["a", "b", "c"].iter().map(|z| format!("{r}-{z}")).collect(),
        })
        .collect();
    // Indices of the services of each region so far, for dependency edges.
    let mut by_region: [Vec<usize>; 3] = Default::default();
    let mut specs: Vec<ServiceSpec> = Vec::with_capacity(services);
    for i in 0..services {
        let r = i % REGIONS.len();
        let role = ROLES[rng.random_range(0..ROLES.len() as u32) as usize];
        let replicas = rng.random_range(2..=40u32);
        let capacity_rps = rng.random_range(50.0..200.0f64).round();
        let amplitude = rng.random_range(0.1..0.6f64);
        // Busiest hour at 40–75 % of capacity, so there is headroom to take away.
        let peak_util = rng.random_range(0.4..0.75f64);
        let base_rps = (f64::from(replicas) * capacity_rps * peak_util / (1.0 + amplitude)).round();
        let mut depends_on: Vec<String> = Vec::new();
        let earlier = &by_region[r];
        if !earlier.is_empty() {
            let n = rng.random_range(0..=3u32).min(earlier.len() as u32);
            while depends_on.len() < n as usize {
                let j = earlier[rng.random_range(0..earlier.len() as u32) as usize];
                let name = &specs[j].name;
                if !depends_on.contains(name) {
                    depends_on.push(name.clone());
                }
            }
        }
        let tier = if rng.random_bool(1.0 / 3.0) {
            Tier::Critical
        } else {
            Tier::Standard
        };
        specs.push(ServiceSpec {
            name: format!("{role}-{i:04}"),
            env: if rng.random_bool(0.8) {
                "prod".into()
            } else {
                "staging".into()
            },
            region: REGIONS[r].into(),
            tier,
            replicas,
            placement: None,
            capacity_rps,
            cold_start: Secs(rng.random_range(30..=300u64)),
            version: "v1".into(),
            depends_on,
            base_latency_ms: rng.random_range(5.0..80.0f64).round(),
            tags: vec![format!("team-{}", rng.random_range(1..=8u32)), role.into()],
            demand: DemandSpec {
                base_rps,
                diurnal_amplitude: amplitude,
                peak_hour: PEAK_HOUR[r] + rng.random_range(-1.5..1.5f64),
                noise: rng.random_range(0.01..0.08f64),
            },
        });
        by_region[r].push(i);
    }

    let versions = vec![
        VersionSpec {
            name: "v2-bad".into(),
            error_rate: 0.3,
            latency_factor: 1.0,
            onset: Secs(0),
        },
        VersionSpec {
            name: "v3-slow".into(),
            error_rate: 0.0,
            latency_factor: 3.0,
            onset: Secs(0),
        },
        VersionSpec {
            name: "v4-leak".into(),
            error_rate: 0.5,
            latency_factor: 2.0,
            onset: Secs(1800),
        },
    ];

    let mut events = Vec::new();
    let mut faults = Vec::new();
    if !specs.is_empty() {
        let pick = |rng: &mut ChaCha8Rng| {
            specs[rng.random_range(0..specs.len() as u32) as usize]
                .name
                .clone()
        };
        for _ in 0..3 {
            let n = rng.random_range(1..=8u32);
            let mut targets: Vec<String> = (0..n).map(|_| pick(&mut rng)).collect();
            targets.sort();
            targets.dedup();
            events.push(EventSpec {
                services: targets,
                at: Secs(rng.random_range(3600..DAY_S - 7200)),
                duration: Some(Secs(rng.random_range(600..=3600u64))),
                factor: rng.random_range(1.5..4.0f64),
                ramp: Secs(rng.random_range(60..=600u64)),
            });
        }
        // A slowdown is most interesting on a service that others call.
        let called: Vec<&String> = specs.iter().flat_map(|s| &s.depends_on).collect();
        let slow_target = if called.is_empty() {
            pick(&mut rng)
        } else {
            called[rng.random_range(0..called.len() as u32) as usize].clone()
        };
        let fault = |kind, target: String, rng: &mut ChaCha8Rng| FaultSpec {
            kind,
            target,
            at: Secs(rng.random_range(3600..DAY_S - 7200)),
            duration: Secs(rng.random_range(600..=3600u64)),
            count: None,
            factor: None,
        };
        let r = rng.random_range(0..3u32) as usize;
        let zone = regions[r].azs[rng.random_range(0..3u32) as usize].clone();
        faults.push(fault(FaultKind::AzOutage, zone, &mut rng));
        let crash_target = pick(&mut rng);
        let mut crash = fault(FaultKind::ReplicaCrash, crash_target.clone(), &mut rng);
        let replicas = specs
            .iter()
            .find(|s| s.name == crash_target)
            .map_or(2, |s| s.replicas);
        crash.count = Some(rng.random_range(1..=replicas.div_ceil(2)));
        faults.push(crash);
        let mut slow = fault(FaultKind::DependencySlowdown, slow_target, &mut rng);
        slow.factor = Some(rng.random_range(2.0..5.0f64));
        faults.push(slow);
        let blackout_target = pick(&mut rng);
        faults.push(fault(FaultKind::MetricBlackout, blackout_target, &mut rng));
    }

    WorldSpec {
        regions,
        services: specs,
        versions,
        events,
        faults,
    }
}

/// The minimal tick model: per service and tick, demand from the daily curve with noise,
/// capacity, availability and p99 latency, into one flat array, with the same seeded noise
/// as the simulator's: the floor `airlock bench sim` and the criterion bench compare a
/// simulated day against. Returns a sum over every tick, so nothing is optimised away.
pub fn minimal_day(world: &WorldSpec, start_ms: i64, ticks: u64, tick_s: u64) -> f64 {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let services: Vec<(f64, f64, f64, f64, f64, f64)> = world
        .services
        .iter()
        .map(|s| {
            (
                s.demand.base_rps,
                s.demand.diurnal_amplitude,
                s.demand.peak_hour,
                s.demand.noise,
                s.replicas as f64 * s.capacity_rps,
                s.base_latency_ms,
            )
        })
        .collect();
    let mut last = vec![(0.0_f64, 0.0_f64); services.len()];
    let mut acc = 0.0;
    for i in 0..ticks {
        let t = start_ms + (i as i64 + 1) * tick_s as i64 * 1000;
        let hour = t.rem_euclid(86_400_000) as f64 / 3_600_000.0;
        for (k, &(base, amp, peak, noise, cap, lat)) in services.iter().enumerate() {
            let u1: f64 = rng.random::<f64>().max(1e-12);
            let u2: f64 = rng.random::<f64>();
            let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
            let phase = (hour - peak) / 24.0 * std::f64::consts::TAU;
            let demand = (base * (1.0 + amp * phase.cos()) * (1.0 + noise * z)).max(0.0);
            let availability = if demand > 0.0 {
                (cap / demand).min(1.0)
            } else {
                1.0
            };
            let util = if cap > 0.0 {
                demand / cap
            } else {
                f64::INFINITY
            };
            let p99 = if util < 1.0 {
                lat * (1.0 + 2.0 * util.powi(6))
            } else {
                30_000.0
            };
            last[k] = (availability, p99);
            acc += demand * availability;
        }
    }
    acc + last.iter().map(|l| l.1).sum::<f64>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Sim;

    #[test]
    fn synthetic_worlds_are_valid() {
        for n in [0, 1, 2, 7, 50, 200, 1000] {
            let w = synthetic(n, 42 + n as u64);
            assert_eq!(w.problems(), Vec::<String>::new(), "{n} services");
            assert_eq!(w.services.len(), n);
            assert!(Sim::new(w, 1, 0, 10).is_ok());
        }
    }

    #[test]
    fn synthetic_worlds_have_the_promised_shape() {
        let w = synthetic(300, 7);
        assert_eq!(w.regions.len(), 3);
        assert!(w.regions.iter().all(|r| r.azs.len() == 3));
        for r in &w.regions {
            let n = w.services.iter().filter(|s| s.region == r.name).count();
            assert_eq!(n, 100, "{}", r.name);
        }
        let critical = w
            .services
            .iter()
            .filter(|s| s.tier == Tier::Critical)
            .count();
        assert!((70..130).contains(&critical), "{critical} critical");
        for (i, s) in w.services.iter().enumerate() {
            assert!((2..=40).contains(&s.replicas), "{s:?}");
            assert!(s.depends_on.len() <= 3);
            for d in &s.depends_on {
                let j = w.services.iter().position(|x| &x.name == d).unwrap();
                assert!(j < i, "{} depends on later {d}", s.name);
                assert_eq!(w.services[j].region, s.region);
            }
        }
        assert!(w.services.iter().any(|s| !s.depends_on.is_empty()));
        assert!((1..=5).contains(&w.events.len()));
        for kind in [
            FaultKind::AzOutage,
            FaultKind::ReplicaCrash,
            FaultKind::DependencySlowdown,
            FaultKind::MetricBlackout,
        ] {
            let f: Vec<_> = w.faults.iter().filter(|f| f.kind == kind).collect();
            assert_eq!(f.len(), 1, "{kind:?}");
            assert!(f[0].at.0 + f[0].duration.0 <= DAY_S);
        }
    }

    #[test]
    fn same_seed_same_synthetic_world() {
        assert_eq!(synthetic(100, 3), synthetic(100, 3));
        assert_ne!(synthetic(100, 3), synthetic(100, 4));
    }
}
