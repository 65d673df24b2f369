//! Each fault kind against the dynamics: small noise-free worlds built in code, ticked
//! before, during and after the fault, with exact assertions on the true signals and on
//! what an agent can observe.
// Marks the whole file as test code, so helpers outside `#[test]` fns may unwrap too.
#![cfg(test)]

use airlock_sim::world::TIMEOUT_MS;
use airlock_sim::{FaultKind, FaultSpec, Secs, ServiceSpec, Signals, Sim, Tier, testing};

const TICK_S: u64 = 10;

/// A noise-free critical service of `replicas` × 100 rps with a flat demand of `rps`.
fn svc(name: &str, region: &str, replicas: u32, rps: f64, deps: &[&str]) -> ServiceSpec {
    testing::service(name)
        .region(region)
        .tier(Tier::Critical)
        .replicas(replicas)
        .cold_start(60)
        .latency_ms(20.0)
        .depends_on(deps)
        .rps(rps)
        .build()
}

/// Region `east` with zones `a`, `b`, `c`, and region `west` with zone `w`.
fn world(services: Vec<ServiceSpec>, faults: Vec<FaultSpec>) -> Sim {
    let w = testing::world()
        .region("east", ["a", "b", "c"])
        .region("west", ["w"])
        .services(services)
        .faults(faults)
        .build();
    Sim::new(w, 1, 0, TICK_S).unwrap()
}

fn fault(kind: FaultKind, target: &str, at: u64, duration: u64) -> FaultSpec {
    FaultSpec {
        kind,
        target: target.into(),
        at: Secs(at),
        duration: Secs(duration),
        count: None,
        factor: None,
    }
}

/// Ticks once and returns the true signals of `service`.
fn step(sim: &mut Sim, service: &str) -> Signals {
    sim.tick();
    sim.truth()[service]
}

/// Seconds since the start of the world.
fn elapsed(sim: &Sim) -> u64 {
    (sim.now() / 1000) as u64
}

/// The latency model's own p99 below saturation.
fn own_p99(base_ms: f64, util: f64) -> f64 {
    base_ms * (1.0 + 2.0 * util.powi(6))
}

#[test]
fn az_outage_takes_the_zones_share_of_capacity_until_it_ends() {
    // `api` has 2 replicas per zone; `cache` has 4 over 3 zones (a: 2, b: 1, c: 1).
    let mut sim = world(
        vec![
            svc("api", "east", 6, 500.0, &[]),
            svc("cache", "east", 4, 100.0, &[]),
            svc("other", "west", 2, 100.0, &[]),
        ],
        vec![fault(FaultKind::AzOutage, "b", 30, 40)],
    );
    // Before: everything serves.
    for _ in 0..2 {
        let api = step(&mut sim, "api");
        assert_eq!(
            (api.capacity_rps, api.replicas_ready, api.availability),
            (600.0, 6, 1.0)
        );
        assert_eq!(sim.truth()["cache"].capacity_rps, 400.0);
    }
    // During (30 s up to 70 s): zone b's replicas stop serving; desired is unchanged.
    for _ in 0..4 {
        let api = step(&mut sim, "api");
        assert!((30..70).contains(&elapsed(&sim)));
        assert_eq!(api.capacity_rps, 400.0, "{api:?}");
        assert_eq!((api.replicas_ready, api.replicas_desired), (4, 6));
        // 500 rps on 400 rps of capacity: a fifth is shed and the rest times out.
        assert!((api.availability - 0.8).abs() < 1e-12, "{api:?}");
        assert_eq!(api.p99_ms, TIMEOUT_MS);
        let cache = sim.truth()["cache"];
        assert_eq!((cache.capacity_rps, cache.replicas_ready), (300.0, 3));
        assert_eq!(cache.availability, 1.0);
        // Another region is untouched.
        assert_eq!(sim.truth()["other"].capacity_rps, 200.0);
    }
    // After: the zone's replicas were never stopped, only cut off, so they serve again on
    // the first tick after the outage (no cold start).
    let api = step(&mut sim, "api");
    assert_eq!(elapsed(&sim), 70);
    assert_eq!(
        (api.capacity_rps, api.replicas_ready, api.availability),
        (600.0, 6, 1.0)
    );
    assert_eq!(sim.truth()["cache"].capacity_rps, 400.0);
}

#[test]
fn replica_crash_loses_count_replicas_which_come_back_cold() {
    let mut crash = fault(FaultKind::ReplicaCrash, "api", 20, 25);
    crash.count = Some(2);
    let mut sim = world(
        vec![
            svc("api", "east", 6, 300.0, &[]),
            svc("db", "east", 3, 100.0, &[]),
        ],
        vec![crash],
    );
    let api = step(&mut sim, "api");
    assert_eq!((api.capacity_rps, api.replicas_ready), (600.0, 6));
    // During (20 s up to 45 s): two replicas are gone.
    for _ in 0..3 {
        let api = step(&mut sim, "api");
        assert!((20..45).contains(&elapsed(&sim)));
        assert_eq!(
            (api.capacity_rps, api.replicas_ready),
            (400.0, 4),
            "{api:?}"
        );
        assert_eq!(api.replicas_desired, 6);
        assert_eq!(api.availability, 1.0);
        assert_eq!(sim.truth()["db"].capacity_rps, 300.0);
    }
    // The fault ends at 45 s, between ticks: from the 50 s tick the two replicas are
    // starting, and serve after the 60 s cold start, at 110 s.
    for _ in 0..6 {
        let api = step(&mut sim, "api");
        assert!((50..110).contains(&elapsed(&sim)));
        assert_eq!(
            (api.capacity_rps, api.replicas_ready),
            (400.0, 4),
            "{api:?}"
        );
        assert_eq!(api.replicas_desired, 6);
    }
    let api = step(&mut sim, "api");
    assert_eq!(elapsed(&sim), 110);
    assert_eq!((api.capacity_rps, api.replicas_ready), (600.0, 6));
    assert_eq!(sim.observe().service("api").unwrap().replicas_ready, 6);
}

#[test]
fn replica_crash_count_defaults_to_one_and_star_hits_every_service() {
    let mut sim = world(
        vec![
            svc("api", "east", 3, 100.0, &[]),
            svc("db", "west", 2, 100.0, &[]),
        ],
        vec![fault(FaultKind::ReplicaCrash, "*", 10, 10)],
    );
    sim.tick();
    assert_eq!(sim.truth()["api"].replicas_ready, 2);
    assert_eq!(sim.truth()["db"].replicas_ready, 1);
    for _ in 0..6 {
        sim.tick();
        assert_eq!(sim.truth()["api"].replicas_ready, 2);
        assert_eq!(sim.truth()["db"].replicas_ready, 1);
    }
    sim.tick();
    assert_eq!(elapsed(&sim), 80);
    assert_eq!(sim.truth()["api"].replicas_ready, 3);
    assert_eq!(sim.truth()["db"].replicas_ready, 2);
}

#[test]
fn dependency_slowdown_slows_the_target_and_everything_that_calls_it() {
    // web → api → db, each 4 × 100 rps serving 100 rps (a quarter of its capacity).
    let mut slow = fault(FaultKind::DependencySlowdown, "db", 20, 20);
    slow.factor = Some(2.0);
    let mut stall = fault(FaultKind::DependencySlowdown, "db", 60, 10);
    stall.factor = Some(8.0);
    let mut sim = world(
        vec![
            svc("db", "east", 4, 100.0, &[]),
            svc("api", "east", 4, 100.0, &["db"]),
            svc("web", "east", 4, 100.0, &["api"]),
            svc("lone", "east", 4, 100.0, &[]),
        ],
        vec![slow, stall],
    );
    let healthy = own_p99(20.0, 0.25);
    let check_healthy = |sim: &Sim| {
        let t = sim.truth();
        assert_eq!(t["db"].p99_ms, healthy);
        assert_eq!(t["api"].p99_ms, healthy + healthy);
        assert_eq!(t["web"].p99_ms, healthy + (healthy + healthy));
        for s in ["db", "api", "web", "lone"] {
            assert_eq!(t[s].capacity_rps, 400.0);
            assert_eq!(t[s].availability, 1.0);
        }
    };
    sim.tick();
    check_healthy(&sim);
    // Factor 2 (20 s up to 40 s): the target serves each request twice as slowly, so it has
    // half the capacity and its p99 doubles (at twice the utilisation); callers add the
    // slower call to their own latency, transitively. Nothing fails yet.
    for _ in 0..2 {
        sim.tick();
        let t = sim.truth();
        let db = own_p99(20.0, 0.5) * 2.0;
        assert_eq!(t["db"].capacity_rps, 200.0);
        assert_eq!(t["db"].p99_ms, db);
        assert_eq!(t["api"].p99_ms, healthy + db);
        assert_eq!(t["web"].p99_ms, healthy + (healthy + db));
        assert_eq!(t["api"].capacity_rps, 400.0);
        assert_eq!(t["lone"].p99_ms, healthy);
        for s in ["db", "api", "web"] {
            assert_eq!(t[s].availability, 1.0);
        }
    }
    for _ in 0..2 {
        sim.tick();
        check_healthy(&sim);
    }
    // Factor 8 (60 s up to 70 s): 50 rps of capacity for 100 rps of demand. The target
    // sheds half and times out; its callers fail in proportion and time out too.
    sim.tick();
    let t = sim.truth();
    assert_eq!(t["db"].capacity_rps, 50.0);
    for s in ["db", "api", "web"] {
        assert!((t[s].availability - 0.5).abs() < 1e-12, "{s}: {:?}", t[s]);
        assert_eq!(t[s].p99_ms, TIMEOUT_MS);
    }
    assert_eq!(t["lone"].availability, 1.0);
    // After: no replicas were touched, so all is well on the next tick.
    sim.tick();
    assert_eq!(elapsed(&sim), 70);
    check_healthy(&sim);
}

#[test]
fn dependency_slowdown_factor_defaults_to_three() {
    let mut sim = world(
        vec![svc("db", "east", 6, 100.0, &[])],
        vec![fault(FaultKind::DependencySlowdown, "db", 10, 10)],
    );
    let db = step(&mut sim, "db");
    assert_eq!(db.capacity_rps, 200.0);
    assert_eq!(db.p99_ms, own_p99(20.0, 0.5) * 3.0);
}

#[test]
fn metric_blackout_hides_the_signals_while_the_service_keeps_serving() {
    let mut sim = world(
        vec![
            svc("db", "east", 4, 100.0, &[]),
            svc("api", "east", 4, 200.0, &["db"]),
        ],
        vec![fault(FaultKind::MetricBlackout, "api", 20, 20)],
    );
    sim.tick();
    let obs = sim.observe();
    assert_eq!(
        obs.service("api").unwrap().signals,
        Some(sim.truth()["api"])
    );
    assert!(sim.counters("api").is_some());
    // During (20 s up to 40 s): signals are missing, not zero; the truth shows it serving.
    for _ in 0..2 {
        sim.tick();
        let obs = sim.observe();
        let api = obs.service("api").unwrap();
        assert_eq!(api.signals, None);
        assert!(api.exists);
        assert_eq!(api.replicas_ready, 4);
        assert!(sim.counters("api").is_none());
        assert!(sim.recent_sample("api", 600).is_none());
        assert!(sim.history("api").is_empty());
        let truth = sim.truth()["api"];
        assert_eq!((truth.capacity_rps, truth.availability), (400.0, 1.0));
        assert_eq!(truth.demand_rps, 200.0);
        // Other services still report.
        assert_eq!(obs.service("db").unwrap().signals, Some(sim.truth()["db"]));
        assert!(sim.counters("db").is_some());
    }
    // After: the signals are back, and the counters kept counting through the blackout.
    sim.tick();
    assert_eq!(elapsed(&sim), 40);
    let obs = sim.observe();
    assert_eq!(
        obs.service("api").unwrap().signals,
        Some(sim.truth()["api"])
    );
    let c = sim.counters("api").unwrap();
    assert_eq!(c.requests_total, 4.0 * 200.0 * TICK_S as f64);
    assert_eq!(c.errors_total, 0.0);
    // Recent samples and history hold only what was observed: the two blacked-out ticks
    // are missing, not zeros.
    let sample = sim.recent_sample("api", 600).unwrap();
    assert_eq!(sample.requests, Some(2.0 * 200.0 * TICK_S as f64));
    assert_eq!(sim.history("api").len(), 2);
}

#[test]
fn a_fault_timed_past_any_calendar_never_starts_and_never_panics() {
    // A world built from a file the scenario checks never saw (`[sim] world` in
    // airlock.toml): times at the end of the range must not overflow.
    let mut sim = world(
        vec![svc("web", "east", 4, 200.0, &[])],
        vec![
            fault(FaultKind::ReplicaCrash, "web", u64::MAX, u64::MAX),
            fault(FaultKind::AzOutage, "a", u64::MAX - 1, 10),
            fault(FaultKind::MetricBlackout, "web", 10, u64::MAX),
        ],
    );
    for _ in 0..3 {
        sim.tick();
    }
    assert_eq!(sim.desired("web").unwrap().total(), 4);
    assert!(sim.blacked_out("web"), "a blackout that never ends is on");
}
