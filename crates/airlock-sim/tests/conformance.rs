//! The sandbox cloud meets the provider contract the gate's crash safety rests on: plans
//! change nothing, a conflict changes nothing, and whether a change or a revert is in the
//! world can be read back after a crash.
// Marks the whole file as test code, so helpers outside `#[test]` fns may unwrap too.
#![cfg(test)]

use airlock_core::conformance::{Fixture, check};
use airlock_core::{ActionRequest, Provider, Verb};
use airlock_sim::{Sim, SimProvider, testing};
use std::sync::{Arc, Mutex};

fn provider() -> SimProvider {
    let spec = testing::world()
        .region("r", ["a", "b"])
        .service("web", |s| s.replicas(4))
        .service("db", |s| s.replicas(2))
        .build();
    let mut sim = Sim::new(spec, 7, 0, 10).unwrap();
    sim.tick();
    SimProvider::new(Arc::new(Mutex::new(sim)))
}

fn scale(service: &str, replicas: u32) -> ActionRequest {
    ActionRequest::new(
        Verb::Scale,
        format!("sim:service/{service}").parse().unwrap(),
    )
    .param("replicas", replicas)
}

#[tokio::test]
async fn the_sandbox_meets_the_provider_contract_for_every_kind_of_change() {
    let p = provider();
    // `db` runs 3 replicas, so recreating it from its spec (2) is a third state.
    let grow = p.plan(&scale("db", 3)).await.unwrap();
    p.apply(&grow).await.unwrap();
    let fixtures = [
        ("scale", scale("web", 6), scale("web", 2)),
        (
            "deploy",
            ActionRequest::new(Verb::Deploy, "sim:service/web".parse().unwrap())
                .param("version", "v2"),
            scale("web", 5),
        ),
        (
            "delete",
            ActionRequest::new(Verb::Delete, "sim:service/db".parse().unwrap()),
            // Recreated by someone else, from its spec: not as it was before the delete.
            ActionRequest::new(Verb::Create, "sim:service/db".parse().unwrap()),
        ),
    ];
    for (name, change, other) in fixtures {
        let passed = check(&p, &Fixture { change, other })
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(passed.len(), 8, "{name}: {passed:?}");
    }
}
