//! `schema/airlock.schema.json` is generated from the config types; this test fails when it
//! is stale. Regenerate with `airlock config schema > schema/airlock.schema.json` (or run
//! this test with `AIRLOCK_UPDATE_SCHEMA=1`).
#![cfg(test)]

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn the_checked_in_config_schema_is_up_to_date() {
    let path = repo().join("schema/airlock.schema.json");
    let fresh = airlock_server::config_schema::json_schema();
    if std::env::var_os("AIRLOCK_UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &fresh).unwrap();
    }
    let kept = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        kept == fresh,
        "schema/airlock.schema.json is stale: run `airlock config schema > schema/airlock.schema.json`"
    );
    // The schema describes what the file holds.
    let v: serde_json::Value = serde_json::from_str(&fresh).unwrap();
    let props = v["properties"].as_object().unwrap();
    for table in [
        "server",
        "store",
        "policy",
        "guards",
        "bake",
        "anomaly",
        "approvals",
        "sim",
        "mcp",
        "redact",
        "upstream",
        "hook",
        "watch",
        "alert",
        "slo",
        "probe",
    ] {
        assert!(props.contains_key(table), "{table}");
    }
    assert_eq!(
        v["additionalProperties"], false,
        "unknown tables are refused"
    );
}
