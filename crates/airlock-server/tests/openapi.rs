//! The OpenAPI document is generated from the handlers (`airlock_server::openapi`). These
//! tests fail when `docs/openapi.json` is stale, when a route the router serves has no
//! documented operation (or the document names one it does not serve), and when
//! `/openapi.json` serves anything but the generated document.
//!
//! Regenerate the file with `cargo run -p airlock-cli -- openapi > docs/openapi.json` (or run
//! this test with `AIRLOCK_UPDATE_SCHEMA=1`).
#![cfg(test)]

use airlock_server::{RawConfig, app};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use tower::ServiceExt;

/// Routes served beside `api::routes()`, not by an axum handler: the MCP transport.
const MOUNTED: &[(&str, &str)] = &[("post", "/mcp")];

#[test]
fn the_checked_in_openapi_document_is_up_to_date() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
    let fresh = airlock_server::openapi::json().unwrap();
    if std::env::var_os("AIRLOCK_UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &fresh).unwrap();
    }
    let kept = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        kept == fresh,
        "docs/openapi.json is stale: run `cargo run -p airlock-cli -- openapi > docs/openapi.json`"
    );
}

/// The (method, path) of every operation in a document.
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let paths = doc["paths"].as_object().expect("the document has paths");
    paths
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .into_iter()
                .flatten()
                .map(move |(method, _)| (method.clone(), path.clone()))
        })
        .collect()
}

#[tokio::test]
async fn every_route_is_served_and_documented_with_its_method() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = RawConfig::default().validate(Path::new(".")).unwrap();
    config.store = dir.path().join("j.db").display().to_string();
    let (state, _) = airlock_server::live::build(&config).await.unwrap();
    let resp = app(state)
        .oneshot(Request::get("/openapi.json").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let served: Value = serde_json::from_slice(&bytes).unwrap();

    // What is served is the generated document, not a placeholder.
    let generated = serde_json::to_value(airlock_server::openapi::openapi()).unwrap();
    assert_eq!(
        served, generated,
        "/openapi.json is not the generated document"
    );
    assert_eq!(served["openapi"], "3.1.0");
    assert!(served["paths"].as_object().is_some_and(|p| !p.is_empty()));

    let routed: BTreeSet<(String, String)> = airlock_server::api::ROUTES
        .iter()
        .chain(MOUNTED)
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(
        routed.len(),
        airlock_server::api::ROUTES.len() + MOUNTED.len(),
        "a route is listed twice"
    );
    let documented = operations(&served);
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "routes without an operation in the OpenAPI document (annotate the handler with \
         `#[utoipa::path]` and list it in `openapi.rs`): {undocumented:?}"
    );
    let unserved: Vec<_> = documented.difference(&routed).collect();
    assert!(
        unserved.is_empty(),
        "operations in the OpenAPI document that no route serves: {unserved:?}"
    );
}

#[test]
fn every_operation_names_its_errors_and_its_security() {
    let doc = serde_json::to_value(airlock_server::openapi::openapi()).unwrap();
    for (method, path) in operations(&doc) {
        let op = &doc["paths"][&path][&method];
        let responses = op["responses"].as_object().unwrap();
        let open = ["/healthz", "/readyz", "/metrics", "/openapi.json"].contains(&path.as_str());
        if open {
            assert!(
                op.get("security").is_none(),
                "{method} {path} needs no token"
            );
            continue;
        }
        assert_eq!(
            op["security"],
            serde_json::json!([{"bearer": []}]),
            "{method} {path} names the bearer scheme"
        );
        assert!(
            responses.contains_key("401"),
            "{method} {path} documents 401"
        );
        // Every error answer is the JSON envelope.
        for (status, r) in responses {
            if !status.starts_with('4') && !status.starts_with('5') || path == "/mcp" {
                continue;
            }
            let schema = match r.get("$ref").and_then(Value::as_str) {
                Some(name) => {
                    let name = name.trim_start_matches("#/components/responses/");
                    &doc["components"]["responses"][name]["content"]["application/json"]["schema"]
                }
                None => &r["content"]["application/json"]["schema"],
            };
            assert!(
                schema["$ref"] == "#/components/schemas/Error"
                    || schema["$ref"] == "#/components/schemas/RevertConflict",
                "{method} {path} {status}: {schema}"
            );
        }
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
}
