//! The JSON Schema of `airlock.toml`, generated from [`RawConfig`] and its tables.
//! `airlock config schema` prints it; `schema/airlock.schema.json` is that output, kept
//! current by `tests/config_schema.rs`.

use crate::config::RawConfig;

/// The schema as pretty JSON with a final newline: what `schema/airlock.schema.json` holds.
pub fn json_schema() -> String {
    let mut schema = schemars::schema_for!(RawConfig);
    schema.insert(
        "$id".into(),
        "https://airlock.dev/schema/airlock.schema.json".into(),
    );
    schema.insert("title".into(), "airlock.toml".into());
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}
