//! Property-based fuzzing of the sandbox provider's planner: an agent's request with any
//! verb, target and parameters (values of every JSON shape, huge numbers, unicode, whole
//! service specs for `create`) against a small world.
//!
//! Properties: no panic; every case returns within a generous watchdog (a hang detector,
//! not a benchmark); a plan is an answer or a refusal with a message; the numbers of a
//! plan that policies read are never NaN.
//!
//! `AIRLOCK_FUZZ_CASES=N` sets the cases per property (see docs/testing.md).
#![cfg(test)]

use airlock_core::{ActionRequest, ResourceAddr, Verb};
use airlock_sim::{Sim, Tier, testing};
use proptest::prelude::*;
use serde_json::{Map, Value, json};
use std::sync::{Arc, LazyLock, Mutex};

#[path = "../../../testsupport/fuzz.rs"]
mod harness;
use harness::*;

/// Two regions, a chain of dependencies, a critical service and a spread one, ticked for
/// an hour so headroom has history behind it.
static WORLD: LazyLock<Arc<Mutex<Sim>>> = LazyLock::new(|| {
    let w = testing::world()
        .region("east", ["a", "b", "c"])
        .region("west", ["w"])
        .services([
            testing::service("checkout")
                .region("east")
                .tier(Tier::Critical)
                .replicas(6)
                .depends_on(["payments"])
                .rps(300.0)
                .build(),
            testing::service("payments")
                .region("east")
                .tier(Tier::Critical)
                .replicas(4)
                .placement([("a", 2), ("b", 1), ("c", 1)])
                .rps(200.0)
                .build(),
            testing::service("reports")
                .region("west")
                .env("staging")
                .replicas(0)
                .rps(0.0)
                .build(),
        ])
        .failing_version("bad", 0.3)
        .build();
    let mut sim = Sim::new(w, 7, 0, 10).unwrap();
    for _ in 0..360 {
        sim.tick();
    }
    Arc::new(Mutex::new(sim))
});

fn odd_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9._-]{0,12}",
        "[ -~]{0,16}",
        any::<String>().prop_map(|s| s.chars().take(24).collect()),
        (60usize..400).prop_map(|n| "v".repeat(n)),
    ]
}

fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        prop::sample::select(vec![
            0u64,
            1,
            999,
            1000,
            1001,
            u64::from(u32::MAX),
            u64::from(u32::MAX) + 1,
        ])
        .prop_map(|n| json!(n)),
        Just(serde_json::from_str::<Value>("1e308").unwrap()),
        Just(json!(-0.0)),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        odd_text().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{0,10}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A service spec as JSON: mostly well formed, with numbers and names of every size.
fn service_spec(name: String) -> impl Strategy<Value = Value> {
    (
        prop::sample::select(&["east", "west", "north", ""][..]),
        prop::sample::select(&["prod", "staging", "dev", "unknown"][..]),
        number(),
        number(),
        prop::option::of(prop::collection::btree_map(
            prop::sample::select(&["a", "b", "c", "w", "z"][..]),
            number(),
            0..4,
        )),
        (number(), number(), number(), number()),
        prop::collection::vec(
            prop::sample::select(&["payments", "checkout", "nope", "new"][..]),
            0..3,
        ),
        prop::collection::btree_map("[a-z_]{1,8}", json_value(), 0..2),
    )
        .prop_map(
            move |(
                region,
                env,
                replicas,
                capacity,
                placement,
                (base, amp, peak, latency),
                deps,
                extra,
            )| {
                let mut spec = json!({
                    "name": name, "env": env, "region": region, "replicas": replicas,
                    "capacity_rps": capacity, "depends_on": deps, "base_latency_ms": latency,
                    "demand": {"base_rps": base, "diurnal_amplitude": amp, "peak_hour": peak},
                });
                if let Some(p) = placement {
                    spec["placement"] = json!(p);
                }
                for (k, v) in extra {
                    spec[k] = v;
                }
                spec
            },
        )
}

/// A request to the sim with any verb and target and parameters near and far from what
/// each verb takes.
fn request() -> impl Strategy<Value = ActionRequest> {
    let name = prop_oneof![
        prop::sample::select(
            &[
                "checkout", "payments", "reports", "ghost", "new", "prod", "staging"
            ][..]
        )
        .prop_map(str::to_string),
        "[a-z0-9][a-z0-9._-]{0,40}",
    ];
    let param = prop_oneof![
        number().prop_map(|v| ("replicas".to_string(), v)),
        prop_oneof![
            prop::sample::select(&["a", "b", "c", "w", "z", ""][..]).prop_map(|s| json!(s)),
            json_value()
        ]
        .prop_map(|v| ("az".to_string(), v)),
        prop_oneof![
            prop::sample::select(&["v1", "v2", "bad", ""][..]).prop_map(|s| json!(s)),
            odd_text().prop_map(|s| json!(s)),
            json_value()
        ]
        .prop_map(|v| ("version".to_string(), v)),
        json_value().prop_map(|v| ("spec".to_string(), v)),
        json_value().prop_map(|v| ("services".to_string(), v)),
        ("[a-z_]{1,10}", json_value()),
    ];
    (
        prop::sample::select(&Verb::ALL[..]),
        prop::sample::select(&["service", "environment", "database"][..]),
        name,
        prop::collection::vec(param, 0..3),
        prop::option::weighted(0.3, any::<bool>()),
    )
        .prop_flat_map(|(verb, kind, name, params, spec)| {
            let specs = match spec {
                Some(true) if kind == "environment" => {
                    prop::collection::vec(service_spec(format!("{name}-x")), 0..3)
                        .prop_map(|v| Some(("services", json!(v))))
                        .boxed()
                }
                Some(_) => service_spec(name.clone())
                    .prop_map(|v| Some(("spec", v)))
                    .boxed(),
                None => Just(None).boxed(),
            };
            (Just((verb, kind, name, params)), specs)
        })
        .prop_map(|((verb, kind, name, params), spec)| {
            let target = ResourceAddr::new("sim", kind, &name).unwrap();
            let mut p: Map<String, Value> = params.into_iter().collect();
            if let Some((k, v)) = spec {
                p.insert(k.to_string(), v);
            }
            let mut req = ActionRequest::new(verb, target);
            req.params = p;
            req
        })
}

proptest! {
    #![proptest_config(config(1024))]

    #[test]
    fn plans_answer_or_refuse_any_request(req in request()) {
        let input = req.clone();
        let world = WORLD.clone();
        let answer = guarded(&input, move || {
            let sim = world.lock().unwrap();
            sim.plan(&req)
        });
        match answer {
            Ok(plan) => {
                prop_assert!(!plan.hash.is_empty());
                prop_assert!(!plan.blast.capacity_delta_pct.is_nan(), "{:?}", plan.blast);
                for c in &plan.contained {
                    prop_assert!(!c.capacity_delta_pct.is_nan(), "{:?}", c);
                }
                let p = &plan.predicted;
                for v in [p.headroom, p.max_az_share, p.headroom_after_az_loss, p.headroom_after_az_loss_before].into_iter().flatten() {
                    prop_assert!(!v.is_nan(), "{:?}", p);
                }
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }
}
