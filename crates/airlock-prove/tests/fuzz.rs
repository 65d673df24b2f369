//! Property-based fuzzing of scenario files: the shipped scenarios with values swapped for
//! others of every type and size (huge and negative numbers, durations past any calendar,
//! unicode, arrays where tables belong), lines dropped and duplicated, random edits, and
//! random TOML.
//!
//! Properties: no panic; every case returns within a generous watchdog (a hang detector,
//! not a benchmark); a file is refused with a message, or it validates and its world
//! builds a simulator and everything derived from it (start times, seeds, human steps) is
//! computed without overflow.
//!
//! `AIRLOCK_FUZZ_CASES=N` sets the cases per property (see docs/testing.md).
#![cfg(test)]

use airlock_prove::{FLAGSHIPS, Scenario};
use airlock_sim::Sim;
use proptest::prelude::*;
use std::fmt::Debug;
use std::sync::LazyLock;

#[path = "../../../testsupport/fuzz.rs"]
mod harness;
use harness::*;

/// Every shipped scenario: the flagships and the library in `scenarios/`.
static SHIPPED: LazyLock<Vec<String>> = LazyLock::new(|| {
    let mut out: Vec<String> = FLAGSHIPS.iter().map(|(_, t)| t.to_string()).collect();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    out.extend(files.iter().map(|p| std::fs::read_to_string(p).unwrap()));
    out
});

/// A TOML value of any type, sized to hurt.
fn toml_value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        prop::sample::select(
            &[
                "0",
                "-1",
                "1",
                "9223372036854775807",
                "-9223372036854775808",
                "1e308",
                "-1e308",
                "inf",
                "-inf",
                "nan",
                "0.0",
                "-0.0",
                "1.5",
                "true",
                "false",
                "\"\"",
                "\"0s\"",
                "\"1s\"",
                "\"18446744073709551615\"",
                "\"18446744073709551615s\"",
                "\"213503982334601d\"",
                "\"999999999999999999d\"",
                "\"1h30m\"",
                "\"-5m\"",
                "\"prod\"",
                "\"noop\"",
                "\"human\"",
                "\"availability >= 0.999\"",
                "\"availability >= nan\"",
                "\"agent.x.actions >= 1\"",
                "[]",
                "{}",
                "1979-05-27T07:32:00Z",
            ][..]
        )
        .prop_map(str::to_string),
        any::<f64>().prop_map(|f| format!("{f:?}").replace("NaN", "nan")),
        "[a-z0-9 ._-]{0,12}".prop_map(|s| format!("\"{s}\"")),
        any::<String>().prop_map(|s| {
            let s: String = s.chars().take(16).collect();
            toml_string(&s)
        }),
        (1usize..2000).prop_map(|n| format!("\"{}\"", "x".repeat(n))),
    ];
    leaf.prop_recursive(2, 12, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(", "))),
            prop::collection::vec(("[a-z_]{1,10}", inner), 0..4).prop_map(|kv| {
                let f: Vec<String> = kv.into_iter().map(|(k, v)| format!("{k} = {v}")).collect();
                format!("{{ {} }}", f.join(", "))
            }),
        ]
    })
}

/// A value of the type most scenario fields take (a number, a duration, a name), at the
/// edges of its range, so edits get past the parser into validation and the simulator.
fn typed_value() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u64..100_000).prop_map(|n| n.to_string()),
        prop::sample::select(
            &[
                "0",
                "1",
                "4294967295",
                "4294967296",
                "18446744073709551615",
                "-1"
            ][..]
        )
        .prop_map(str::to_string),
        (0.0f64..2.0).prop_map(|f| format!("{f}")),
        prop::sample::select(&["1e300", "0.0", "1.0", "nan", "inf", "-inf"][..])
            .prop_map(str::to_string),
        (0u64..1000, prop::sample::select(&["s", "m", "h", "d"][..]))
            .prop_map(|(n, u)| format!("\"{n}{u}\"")),
        prop::sample::select(
            &[
                "\"18446744073709551615s\"",
                "\"5124095576030431h\"",
                "\"213503982334601d\""
            ][..]
        )
        .prop_map(str::to_string),
    ]
}

/// `s` as a TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// An edit of a TOML file, line by line or byte by byte.
#[derive(Debug, Clone)]
enum Edit {
    /// The value of the n-th `key = value` line becomes this one.
    Value(usize, String),
    /// The n-th line goes.
    Drop(usize),
    /// The n-th line appears twice.
    Repeat(usize),
    /// A new line at the n-th position.
    Line(usize, String),
    /// Text inserted at a byte offset.
    Insert(usize, String),
    /// The file ends at a byte offset.
    Truncate(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        3 => (any::<usize>(), toml_value()).prop_map(|(i, v)| Edit::Value(i, v)),
        8 => (any::<usize>(), typed_value()).prop_map(|(i, v)| Edit::Value(i, v)),
        1 => any::<usize>().prop_map(Edit::Drop),
        1 => any::<usize>().prop_map(Edit::Repeat),
        2 => (
            any::<usize>(),
            prop_oneof![
                prop::sample::select(
                    &[
                        "[[service]]", "[[fault]]", "[[event]]", "[[human]]", "[[peer]]",
                        "[[region]]", "[[version]]", "[[drift]]", "[agent]", "[reference]",
                        "[guard]", "[guard.budgets]", "[guard.bake]", "[guard.anomaly]",
                        "[approver]", "[agent.params]", "[[agent]]",
                    ][..]
                )
                .prop_map(str::to_string),
                (
                    prop::sample::select(
                        &[
                            "name", "seed", "tick", "warmup", "duration", "start_hour", "slo",
                            "misbehaves_at", "seeds", "control", "assert", "id", "cmd", "turn",
                            "kind", "target", "at", "count", "factor", "replicas", "region",
                            "azs", "capacity_rps", "demand", "depends_on", "placement", "env",
                            "service", "version", "error_rate", "onset", "policy", "overlay",
                            "hold_timeout", "mode", "delay", "verb", "params", "cold_start",
                        ][..]
                    ),
                    toml_value()
                )
                    .prop_map(|(k, v)| format!("{k} = {v}")),
            ]
        )
            .prop_map(|(i, l)| Edit::Line(i, l)),
        1 => (
            any::<usize>(),
            prop::sample::select(&["\"", "'", "[", "]", "{", "=", "\n", "\\", "\u{0}", "é", "#", "\"\"\""][..])
                .prop_map(str::to_string)
        )
            .prop_map(|(i, s)| Edit::Insert(i, s)),
        1 => any::<usize>().prop_map(Edit::Truncate),
    ]
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut tail: Vec<&Edit> = Vec::new();
    for e in edits {
        let n = lines.len().max(1);
        match e {
            Edit::Value(i, v) => {
                let valued: Vec<usize> = (0..lines.len())
                    .filter(|&j| {
                        !lines[j].trim_start().starts_with(['#', '[']) && lines[j].contains('=')
                    })
                    .collect();
                if let Some(&j) = valued.get(i % valued.len().max(1)) {
                    let key = lines[j].split('=').next().unwrap_or("").to_string();
                    lines[j] = format!("{key}= {v}");
                }
            }
            Edit::Drop(i) if !lines.is_empty() => {
                lines.remove(i % n);
            }
            Edit::Repeat(i) if !lines.is_empty() => {
                let l = lines[i % n].clone();
                lines.insert(i % n, l);
            }
            Edit::Line(i, l) => lines.insert(i % (lines.len() + 1), l.clone()),
            Edit::Insert(..) | Edit::Truncate(_) => tail.push(e),
            _ => {}
        }
    }
    let mut s = lines.join("\n");
    for e in tail {
        match e {
            Edit::Insert(at, t) => {
                let i = boundary(&s, *at);
                s.insert_str(i, t);
            }
            Edit::Truncate(at) => {
                let i = boundary(&s, *at);
                s.truncate(i);
            }
            _ => {}
        }
    }
    s
}

/// A shipped scenario, edited.
fn edited_scenario() -> impl Strategy<Value = String> {
    (
        prop::sample::select((0..SHIPPED.len()).collect::<Vec<_>>()),
        prop::collection::vec(edit(), 1..3),
    )
        .prop_map(|(i, edits)| apply(&SHIPPED[i], &edits))
}

/// Random TOML of the scenario's top-level shape.
fn random_scenario() -> impl Strategy<Value = String> {
    prop::collection::vec(edit(), 1..16).prop_map(|edits| {
        apply(
            "name = \"x\"\nduration = \"1h\"\n[agent]\nname = \"noop\"\n",
            &edits,
        )
    })
}

/// Reads a scenario and, when it validates, everything a run derives from it.
fn read(text: String) -> Result<(), String> {
    let s = match Scenario::from_toml(&text, "fuzz.toml") {
        Ok(s) => s,
        Err(e) => {
            let m = e.to_string();
            return if m.trim().is_empty() {
                Err("a refusal without a message".into())
            } else {
                Ok(())
            };
        }
    };
    let _ = (
        s.sim_start(),
        s.run_start(),
        s.default_seeds(),
        s.agent_ids(),
    );
    let _ = s.human_steps();
    let _ = s.unreadable_assertions();
    let _ = toml::to_string(&s);
    Sim::new(s.world(), s.seed, s.sim_start(), s.tick.0)
        .map(|mut sim| sim.tick())
        .map_err(|e| format!("a valid scenario's world does not build: {e}"))
}

proptest! {
    #![proptest_config(config(384))]

    #[test]
    fn edited_scenarios_validate_or_are_refused(text in edited_scenario()) {
        let input = text.clone();
        let r = guarded(&input, move || read(text));
        prop_assert!(r.is_ok(), "{}\n{}", r.unwrap_err(), input);
    }

    #[test]
    fn random_scenarios_validate_or_are_refused(text in random_scenario()) {
        let input = text.clone();
        let r = guarded(&input, move || read(text));
        prop_assert!(r.is_ok(), "{}\n{}", r.unwrap_err(), input);
    }

    #[test]
    fn random_text_is_refused_with_a_message(text in any::<String>()) {
        let input = text.clone();
        let r = guarded(&input, move || read(text));
        prop_assert!(r.is_ok(), "{}", r.unwrap_err());
    }
}
