//! `schema/scenario.schema.json` is generated from the scenario types; this test fails when
//! it is stale. Regenerate with `airlock scenario schema > schema/scenario.schema.json`
//! (or run this test with `AIRLOCK_UPDATE_SCHEMA=1`).
#![cfg(test)]

use std::path::Path;

#[test]
fn the_checked_in_scenario_schema_is_up_to_date() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schema/scenario.schema.json");
    let fresh = airlock_prove::scenario::json_schema();
    if std::env::var_os("AIRLOCK_UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &fresh).unwrap();
    }
    let kept = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        kept == fresh,
        "schema/scenario.schema.json is stale: run `airlock scenario schema > schema/scenario.schema.json`"
    );
    // The schema describes what the files hold.
    let v: serde_json::Value = serde_json::from_str(&fresh).unwrap();
    let props = v["properties"].as_object().unwrap();
    for field in [
        "name",
        "duration",
        "agent",
        "assert",
        "peer",
        "reference",
        "region",
        "service",
        "fault",
        "human",
    ] {
        assert!(props.contains_key(field), "{field}");
    }
    assert_eq!(
        v["additionalProperties"], false,
        "unknown fields are refused"
    );
    // Set by whoever reads the file, never written in it.
    assert!(!props.contains_key("origin_dir"));
    let guard = &v["$defs"]["GuardSpec"]["properties"];
    assert!(guard.get("overlay").is_some(), "{guard}");
    let agent = &v["$defs"]["AgentSpec"]["properties"];
    assert!(agent.get("dir").is_none(), "{agent}");
}
