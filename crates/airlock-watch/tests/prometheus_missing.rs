//! The Prometheus adapter against an HTTP server that answers the query API the way
//! Prometheus does when a series is missing: an empty vector for a selector with no series,
//! `NaN` for a ratio of nothing. A missing error or latency series is missing data (the
//! bake's missing-data rule applies), never a healthy zero.
//!
//! Regression tests for "the Prometheus adapter turns a missing error or latency series
//! into 0" (an outside review of the signal sources). `crates/airlock-cli/tests/prom_e2e.rs`
//! runs the same case against a real Prometheus.
#![cfg(test)]

use airlock_core::slo::SignalSource;
use airlock_watch::{PromSignals, SourceKind, WatchConfig};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A stand-in for Prometheus's `/api/v1/query`: each query is answered from `answers` by
/// the first key it contains; anything else gets an empty vector.
async fn prometheus(answers: BTreeMap<&'static str, Value>) -> String {
    let answers = Arc::new(answers);
    let app = axum::Router::new().route(
        "/api/v1/query",
        axum::routing::get(
            move |axum::extract::Query(q): axum::extract::Query<BTreeMap<String, String>>| {
                let answers = answers.clone();
                async move {
                    let query = q.get("query").cloned().unwrap_or_default();
                    let result = answers.iter().find(|(k, _)| query.contains(*k)).map_or(
                        json!([]),
                        |(_, v)| json!([{"metric": {}, "value": [1_767_225_600.0, v]}]),
                    );
                    axum::Json(json!({"status": "success",
                                      "data": {"resultType": "vector", "result": result}}))
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

fn signals(url: String) -> PromSignals {
    PromSignals::new(WatchConfig {
        source: SourceKind::Prometheus,
        prometheus_url: url,
        ..WatchConfig::default()
    })
}

#[tokio::test]
async fn a_missing_error_series_is_missing_data_not_zero_errors() {
    // Requests and latency are there; the error counter has no series at all.
    let url = prometheus(BTreeMap::from([
        ("airlock_sim_requests_total", json!("1200")),
        ("airlock_sim_latency_p99_ms", json!("40")),
    ]))
    .await;
    let s = signals(url);
    assert_eq!(s.read("web").await, Ok(None));
    assert_eq!(s.recent("web", 30).await, Ok(None));
}

#[tokio::test]
async fn a_missing_or_nan_latency_is_missing_data_not_zero_ms() {
    let url = prometheus(BTreeMap::from([
        ("airlock_sim_requests_total", json!("1200")),
        ("airlock_sim_errors_total", json!("3")),
    ]))
    .await;
    assert_eq!(signals(url).read("web").await, Ok(None));
    let url = prometheus(BTreeMap::from([
        ("airlock_sim_requests_total", json!("1200")),
        ("airlock_sim_errors_total", json!("3")),
        ("airlock_sim_latency_p99_ms", json!("NaN")),
    ]))
    .await;
    let s = signals(url);
    assert_eq!(s.read("web").await, Ok(None));
    // Over a window, a missing latency leaves availability judgeable and latency missing.
    let recent = s.recent("web", 30).await.unwrap().unwrap();
    assert_eq!(
        (recent.requests, recent.errors, recent.p99_ms),
        (Some(1200.0), Some(3.0), None)
    );
}

#[tokio::test]
async fn every_series_there_reads_as_counters() {
    let url = prometheus(BTreeMap::from([
        ("airlock_sim_requests_total", json!("1200")),
        ("airlock_sim_errors_total", json!("0")),
        ("airlock_sim_latency_p99_ms", json!("40")),
    ]))
    .await;
    let c = signals(url).read("web").await.unwrap().unwrap();
    assert_eq!(
        (c.requests_total, c.errors_total, c.p99_ms),
        (1200.0, 0.0, 40.0)
    );
}
