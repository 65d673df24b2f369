//! Property-based fuzzing of the core's readers of outside input: an agent's action
//! request as JSON (with its resource address and verb), durations, and the Cedar request
//! and context built from a plan and an assessment holding arbitrary strings, numbers
//! (NaN and infinities included) and long names.
//!
//! Properties: no panic; every case returns within a generous watchdog (a hang detector,
//! not a benchmark); a request either parses to a canonical request that survives the
//! wire unchanged or is refused with a message; policy evaluation always answers, and a
//! number that could not be computed (NaN) is never judged more leniently than a real one.
//!
//! `AIRLOCK_FUZZ_CASES=N` sets the cases per property (see docs/testing.md).
#![cfg(test)]

use airlock_core::plan::{Blast, Contained, Diff, Predicted, ResourceAttrs};
use airlock_core::policy::{PrincipalKind, render};
use airlock_core::{
    ActionRequest, AgentStats, Assessment, HealthStatus, Plan, PolicyEngine, PolicyOutcome,
    ResourceAddr, Risk, Secs, Verb,
};
use proptest::prelude::*;
use serde_json::{Value, json};
use std::sync::{Arc, LazyLock};

#[path = "../../../testsupport/fuzz.rs"]
mod harness;
use harness::*;

// ---------------------------------------------------------------------------------------
// Text and JSON generators

/// Text with unicode, controls, separators and the odd very long run.
fn odd_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9._-]{0,12}",
        "[ -~]{0,16}",
        any::<String>().prop_map(|s| s.chars().take(24).collect()),
        Just("é\u{200b}\u{202e}日本\u{0}".to_string()),
        (1usize..5000).prop_map(|n| "x".repeat(n)),
    ]
}

/// A random edit of a text, with this format's syntax among what it inserts.
fn mutation() -> impl Strategy<Value = Mutation> {
    harness::mutation(
        &[
            "\"", "{", "}", "[", "]", ",", ":", "\\", "\\u", "\\ud800", "null", "1e99999", "\u{0}",
            "é", "\n",
        ],
        odd_text(),
    )
}

/// Numbers JSON can spell, including ones no type here holds.
fn number_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| format!("{f:e}")),
        Just("1e400".to_string()),
        Just("-0".to_string()),
        Just("123456789012345678901234567890".to_string()),
        Just("0.0000000000000000000000001".to_string()),
    ]
}

/// Any JSON value, as text, nested.
fn json_text() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("null".to_string()),
        Just("true".to_string()),
        number_text(),
        odd_text().prop_map(|s| json!(s).to_string()),
    ];
    leaf.prop_recursive(4, 32, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(|v| format!("[{}]", v.join(","))),
            prop::collection::vec((odd_text(), inner), 0..5).prop_map(|kv| {
                let fields: Vec<String> = kv
                    .into_iter()
                    .map(|(k, v)| format!("{}:{v}", json!(k)))
                    .collect();
                format!("{{{}}}", fields.join(","))
            }),
        ]
    })
}

/// Something shaped like a resource address, often valid, often not.
fn address_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => (
            prop::sample::select(&["sim", "SIM", " sim", "shell", "aws", "k8s", ""][..]),
            prop::sample::select(&["service", "svc", "Services", "env", "environment", "", "a/b"][..]),
            prop_oneof!["[a-zA-Z0-9._-]{1,20}", odd_text()],
            prop::sample::select(&["", "/", "//", " ", "\t"][..]),
        )
            .prop_map(|(p, k, n, tail)| format!("{p}:{k}/{n}{tail}")),
        1 => odd_text(),
    ]
}

/// An action request as an agent might send it: the real fields with values of every
/// shape, sometimes unknown fields, sometimes duplicated ones, then random edits.
fn action_json() -> impl Strategy<Value = String> {
    let verb = prop_oneof![
        prop::sample::select(&Verb::ALL[..]).prop_map(|v| json!(v.as_str()).to_string()),
        prop::sample::select(
            &[
                "\"READ\"",
                "\" scale\"",
                "\"nuke\"",
                "\"\"",
                "7",
                "null",
                "[\"read\"]"
            ][..]
        )
        .prop_map(str::to_string),
    ];
    let field = prop_oneof![
        address_text().prop_map(|t| ("target".to_string(), json!(t).to_string())),
        odd_text().prop_map(|p| ("provider".to_string(), json!(p).to_string())),
        verb.prop_map(|v| ("verb".to_string(), v)),
        json_text().prop_map(|v| ("params".to_string(), v)),
        odd_text().prop_map(|i| ("intent".to_string(), json!(i).to_string())),
        json_text().prop_map(|v| ("agent".to_string(), v)),
        (odd_text(), json_text()).prop_map(|(k, v)| (k, v)),
    ];
    (
        address_text(),
        prop::collection::vec(field, 0..4),
        prop::collection::vec(mutation(), 0..3),
    )
        .prop_map(|(target, extra, edits)| {
            let mut fields = vec![
                format!("\"provider\":\"sim\""),
                format!("\"verb\":\"scale\""),
                format!("\"target\":{}", json!(target)),
                "\"params\":{\"replicas\":4}".to_string(),
            ];
            for (k, v) in extra {
                fields.push(format!("{}:{v}", json!(k)));
            }
            mutate(format!("{{{}}}", fields.join(",")), &edits)
        })
}

// ---------------------------------------------------------------------------------------
// Plans and assessments

fn any_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        3 => -1000.0f64..1000.0,
        1 => Just(f64::NAN),
        1 => Just(f64::INFINITY),
        1 => Just(f64::NEG_INFINITY),
        1 => any::<f64>(),
        1 => prop::sample::select(&[0.0, -0.0, 1.0e300, -1.0e300, f64::MIN_POSITIVE, 1.2, -50.0, 300.0][..]),
    ]
}

fn attrs() -> impl Strategy<Value = ResourceAttrs> {
    (
        prop_oneof![
            prop::sample::select(&["prod", "staging", "dev", "unknown", ""][..])
                .prop_map(str::to_string),
            odd_text()
        ],
        (
            odd_text(),
            prop_oneof![
                prop::sample::select(&["critical", "standard", ""][..]).prop_map(str::to_string),
                odd_text()
            ],
            odd_text(),
            odd_text(),
        ),
        prop::collection::vec(odd_text(), 0..4),
        any::<u32>(),
        prop::collection::vec(prop_oneof![address_text(), odd_text()], 0..3),
        any::<bool>(),
    )
        .prop_map(
            |(env, (kind, tier, region, service), tags, dependents, parents, workspace)| {
                ResourceAttrs {
                    env,
                    kind,
                    tier,
                    region,
                    service,
                    tags,
                    dependents,
                    parents,
                    workspace,
                }
            },
        )
}

fn addr() -> impl Strategy<Value = ResourceAddr> {
    (
        "[a-z][a-z0-9]{0,6}",
        "[a-z]{1,10}",
        "[a-z0-9][a-z0-9._-]{0,300}",
    )
        .prop_map(|(p, k, n)| ResourceAddr::new(&p, &k, &n).unwrap())
}

fn plan() -> impl Strategy<Value = Plan> {
    (
        (prop::sample::select(&Verb::ALL[..]), addr(), attrs()),
        (any::<u32>(), any::<u32>(), any::<u32>(), any_f64()),
        (
            prop::option::of(any_f64()),
            prop::option::of(any_f64()),
            prop::option::of(any_f64()),
            prop::option::of(any_f64()),
        ),
        prop::collection::vec((addr(), attrs(), any::<u32>(), any_f64()), 0..3),
        (any::<bool>(), any::<bool>(), any::<bool>()),
        prop::option::of(prop::sample::select(
            &[Risk::Low, Risk::Medium, Risk::High, Risk::Critical][..],
        )),
        any::<bool>(),
    )
        .prop_map(
            |(
                (verb, target, resource),
                (resources, regions, dependents, delta),
                (h, share, after, before),
                contained,
                (reversible, destructive, rollback),
                min_risk,
                changes,
            )| {
                Plan {
                    provider: target.provider().to_string(),
                    verb,
                    diffs: vec![Diff {
                        addr: target.clone(),
                        before: Some(json!(1)),
                        after: Some(json!(if changes { 2 } else { 1 })),
                    }],
                    target,
                    params: Default::default(),
                    blast: Blast {
                        resources,
                        regions,
                        dependents,
                        capacity_delta_pct: delta,
                        watch: vec![],
                        dependent_names: vec![],
                    },
                    predicted: Predicted {
                        headroom: h,
                        max_az_share: share,
                        headroom_after_az_loss: after,
                        headroom_after_az_loss_before: before,
                        ..Default::default()
                    },
                    resource,
                    contained: contained
                        .into_iter()
                        .map(
                            |(addr, resource, dependents, capacity_delta_pct)| Contained {
                                addr,
                                resource,
                                dependents,
                                capacity_delta_pct,
                                loses_data: false,
                            },
                        )
                        .collect(),
                    reversible,
                    loses: vec![],
                    destructive,
                    rollback,
                    min_risk,
                    summary: String::new(),
                    hash: String::new(),
                }
                .seal()
            },
        )
}

fn assessment() -> impl Strategy<Value = Assessment> {
    (
        prop::sample::select(&[Risk::Low, Risk::Medium, Risk::High, Risk::Critical][..]),
        prop::sample::select(
            &[
                HealthStatus::Healthy,
                HealthStatus::Degraded,
                HealthStatus::Unknown,
            ][..],
        ),
        (
            any::<u32>(),
            any::<u32>(),
            any_f64(),
            any::<u32>(),
            any::<u32>(),
        ),
    )
        .prop_map(
            |(risk, health, (actions_5m, reverts_1h, anomaly, baking, rollouts_baking))| {
                Assessment {
                    risk,
                    health,
                    agent: AgentStats {
                        actions_5m,
                        reverts_1h,
                        anomaly,
                        baking,
                        rollouts_baking,
                    },
                }
            },
        )
}

static PACK: LazyLock<Arc<PolicyEngine>> =
    LazyLock::new(|| Arc::new(PolicyEngine::default_pack().unwrap()));

/// Deny is stricter than hold, hold than allow.
fn strictness(o: &PolicyOutcome) -> u8 {
    match o {
        PolicyOutcome::Allow(_) => 0,
        PolicyOutcome::Hold(_) => 1,
        PolicyOutcome::Deny(_) => 2,
    }
}

fn decide(plan: &Plan, a: &Assessment, principal: &str, approved: bool, now: i64) -> PolicyOutcome {
    PACK.evaluate_plan(PrincipalKind::Agent, principal, plan, a, approved, now)
}

// ---------------------------------------------------------------------------------------
// Properties

proptest! {
    #![proptest_config(config(1024))]

    #[test]
    fn action_json_parses_canonically_or_is_refused_with_a_message(text in action_json()) {
        let input = text.clone();
        let parsed = guarded(&input, move || serde_json::from_slice::<ActionRequest>(text.as_bytes()));
        match parsed {
            Ok(req) => {
                let printed = req.target.to_string();
                prop_assert_eq!(printed.parse::<ResourceAddr>().unwrap(), req.target.clone());
                prop_assert_eq!(printed.to_ascii_lowercase(), printed.clone());
                let wire = serde_json::to_vec(&req).unwrap();
                let again: ActionRequest = serde_json::from_slice(&wire).unwrap();
                prop_assert_eq!(again, req);
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn addresses_parse_canonically_or_are_refused(text in prop_oneof![address_text(), any::<String>()]) {
        match text.parse::<ResourceAddr>() {
            Ok(a) => {
                let printed = a.to_string();
                prop_assert_eq!(printed.parse::<ResourceAddr>().unwrap(), a);
                prop_assert!(!printed.ends_with('/'));
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn durations_parse_or_are_refused(text in prop_oneof![
        "[0-9]{0,25}[smhdw]?([0-9]{0,25}[smhd])?",
        odd_text(),
    ]) {
        if let Ok(s) = Secs::parse(&text) {
            // Whatever parsed prints and parses back to itself.
            prop_assert_eq!(Secs::parse(&s.to_string()).unwrap(), s);
            let _ = s.ms();
        }
    }

    #[test]
    fn policy_templates_render_any_text(template in any::<String>(), values in json_text()) {
        let v: Value = serde_json::from_str(&values).unwrap_or(Value::Null);
        let input = (template.clone(), values);
        guarded(&input, move || render(&template, &v));
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn the_policy_context_is_built_and_decided_for_any_plan(
        plan in plan(),
        a in assessment(),
        principal in odd_text(),
        approved in any::<bool>(),
        now in any::<i64>(),
    ) {
        let input = (plan.clone(), a.clone(), principal.clone());
        let outcome = guarded(&input, move || decide(&plan, &a, &principal, approved, now));
        match &outcome {
            PolicyOutcome::Deny(r) | PolicyOutcome::Hold(r) => prop_assert!(!r.is_empty()),
            PolicyOutcome::Allow(_) => {}
        }
    }

    #[test]
    fn a_number_that_could_not_be_computed_is_never_judged_more_leniently(
        plan in plan(),
        a in assessment(),
        finite in -1.0e4f64..1.0e4,
        unit in 0.0f64..=1.0,
        which in 0usize..5,
    ) {
        let (mut real, mut unknown) = (plan.clone(), plan);
        let (mut a_real, mut a_unknown) = (a.clone(), a);
        match which {
            0 => {
                real.blast.capacity_delta_pct = finite;
                unknown.blast.capacity_delta_pct = f64::NAN;
            }
            1 => {
                real.predicted.headroom = Some(finite);
                unknown.predicted.headroom = Some(f64::NAN);
            }
            2 => {
                real.predicted.headroom_after_az_loss = Some(finite);
                unknown.predicted.headroom_after_az_loss = Some(f64::NAN);
            }
            3 => {
                real.predicted.headroom_after_az_loss_before = Some(finite);
                unknown.predicted.headroom_after_az_loss_before = Some(f64::NAN);
            }
            _ => {
                a_real.agent.anomaly = unit;
                a_unknown.agent.anomaly = f64::NAN;
            }
        }
        let input = (real.clone(), unknown.clone(), which);
        let (r, u) = guarded(&input, move || {
            (decide(&real, &a_real, "bot", false, 0), decide(&unknown, &a_unknown, "bot", false, 0))
        });
        prop_assert!(
            strictness(&u) >= strictness(&r),
            "NaN in field {} gave {:?}, the finite {} gave {:?}", which, u, finite, r
        );
    }
}

proptest! {
    #![proptest_config(config(48))]

    #[test]
    fn edited_policy_packs_load_or_are_refused_with_a_message(edits in prop::collection::vec(mutation(), 1..4)) {
        let text = mutate(airlock_core::policy::DEFAULT_POLICIES.to_string(), &edits);
        let input = edits.clone();
        let loaded = guarded(&input, move || {
            PolicyEngine::new(&text, airlock_core::policy::SCHEMA).map(|_| ())
        });
        if let Err(e) = loaded {
            prop_assert!(!e.to_string().is_empty());
        }
    }
}
