//! Health signals from Prometheus: a service's request and error counters and its p99
//! latency, read through the HTTP API with PromQL. The queries are instant-vector
//! selectors with `$service` standing for the service's name, so a user's own metrics
//! plug in the same way the live simulator's do.

use airlock_core::slo::{Counters, Sample, SignalSource};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::Duration;

/// `[watch]`: where the bake judge reads health signals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct WatchConfig {
    /// `sim` (the live simulator in process), `prometheus`, or `cloudwatch`.
    pub source: SourceKind,
    /// The Prometheus server, e.g. `http://127.0.0.1:9090`.
    pub prometheus_url: String,
    /// Selector of a service's cumulative request counter.
    pub requests: String,
    /// Selector of a service's cumulative error counter.
    pub errors: String,
    /// Selector of a service's p99 latency in milliseconds.
    pub p99_ms: String,
    /// Longest one query may take, in milliseconds.
    pub timeout_ms: u64,
    /// The CloudWatch metrics read with `source = "cloudwatch"` (the `aws` provider's
    /// connection and credentials are used).
    pub cloudwatch: crate::cloudwatch::CloudWatchConfig,
}

/// Where signals come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    Sim,
    Prometheus,
    Cloudwatch,
}

impl Default for WatchConfig {
    fn default() -> Self {
        Self {
            source: SourceKind::Sim,
            prometheus_url: "http://127.0.0.1:9090".into(),
            requests: r#"airlock_sim_requests_total{service="$service"}"#.into(),
            errors: r#"airlock_sim_errors_total{service="$service"}"#.into(),
            p99_ms: r#"airlock_sim_latency_p99_ms{service="$service"}"#.into(),
            timeout_ms: 2000,
            cloudwatch: crate::cloudwatch::CloudWatchConfig::default(),
        }
    }
}

impl WatchConfig {
    /// Problems, each naming its field: every query must parse as PromQL and be an
    /// instant-vector selector (the judge wraps it in `increase(…[window])`).
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.source == SourceKind::Prometheus
            && !(self.prometheus_url.starts_with("http://")
                || self.prometheus_url.starts_with("https://"))
        {
            p.push(format!(
                "watch.prometheus_url: `{}` is not an http(s) URL",
                self.prometheus_url
            ));
        }
        for (field, q) in [
            ("requests", &self.requests),
            ("errors", &self.errors),
            ("p99_ms", &self.p99_ms),
        ] {
            let text = q.replace("$service", "svc");
            match promql_parser::parser::parse(&text) {
                Ok(promql_parser::parser::Expr::VectorSelector(_)) => {}
                Ok(_) => p.push(format!(
                    "watch.{field}: `{q}` must be a plain selector such as `metric{{service=\"$service\"}}`"
                )),
                Err(e) => p.push(format!(
                    "watch.{field}: `{q}` is not valid PromQL: {}",
                    e.trim()
                )),
            }
        }
        if self.timeout_ms == 0 {
            p.push("watch.timeout_ms: must be above 0".into());
        }
        if self.source == SourceKind::Cloudwatch {
            p.extend(self.cloudwatch.problems());
        }
        p
    }
}

/// Problems with `[[slo]]` rules, each naming its field: names, and queries that must parse
/// as PromQL (with `$service` standing for a service's name).
pub fn slo_problems(rules: &[airlock_core::slo::QueryRule], watch: &WatchConfig) -> Vec<String> {
    let mut p = Vec::new();
    if !rules.is_empty() && watch.source != SourceKind::Prometheus {
        p.push("slo: query rules need `[watch] source = \"prometheus\"`".into());
    }
    for (i, r) in rules.iter().enumerate() {
        if r.name.trim().is_empty() {
            p.push(format!("slo[{i}].name: must not be empty"));
        }
        if rules[..i].iter().any(|o| o.name == r.name) {
            p.push(format!("slo[{i}].name: `{}` is used twice", r.name));
        }
        if let Err(e) = promql_parser::parser::parse(&r.query.replace("$service", "svc")) {
            p.push(format!(
                "slo[{i}].query: `{}` is not valid PromQL: {}",
                r.query,
                e.trim()
            ));
        }
        if !r.threshold.is_finite() {
            p.push(format!("slo[{i}].threshold: must be a number"));
        }
    }
    p
}

/// A Prometheus server as a signal source.
pub struct PromSignals {
    config: WatchConfig,
    http: reqwest::Client,
}

impl PromSignals {
    pub fn new(config: WatchConfig) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_millis(config.timeout_ms))
                .build()
                .unwrap_or_default(),
            config,
        }
    }

    fn selector(template: &str, service: &str) -> String {
        template.replace("$service", &service.replace(['"', '\\'], ""))
    }

    /// One instant query; `Ok(None)` when it returns no series (missing data).
    async fn scalar(&self, query: &str) -> Result<Option<f64>, String> {
        let url = format!(
            "{}/api/v1/query",
            self.config.prometheus_url.trim_end_matches('/')
        );
        let url = reqwest::Url::parse_with_params(&url, &[("query", query)])
            .map_err(|e| format!("watch.prometheus_url: {e}"))?;
        let resp = self.http.get(url).send().await.map_err(|e| {
            format!(
                "Prometheus at {} is unreachable: {e}",
                self.config.prometheus_url
            )
        })?;
        let status = resp.status();
        let body: Value = resp
            .json()
            .await
            .map_err(|e| format!("Prometheus answered {status} without JSON: {e}"))?;
        answer_value(&body, query)
    }

    fn warn(&self, service: &str, e: &str) {
        tracing::warn!(service, error = %e, "watch: no signals from Prometheus; the missing-data rule applies");
    }

    fn missing(&self, service: &str, queries: &[(&str, Option<f64>)]) {
        let empty: Vec<&str> = queries
            .iter()
            .filter(|(_, v)| v.is_none())
            .map(|(q, _)| *q)
            .collect();
        tracing::debug!(service, queries = ?empty, "watch: series missing in Prometheus; the missing-data rule applies");
    }
}

/// The value of one instant query's answer. An answer without a series, without a sample,
/// or with a value that is not a finite number (`NaN`, `+Inf`) is `Ok(None)`: missing data,
/// never a zero.
fn answer_value(body: &Value, query: &str) -> Result<Option<f64>, String> {
    if body["status"] != "success" {
        return Err(format!(
            "Prometheus refused `{query}`: {}",
            body["error"].as_str().unwrap_or("no reason given")
        ));
    }
    let result = &body["data"]["result"];
    let value = match body["data"]["resultType"].as_str() {
        Some("vector") => result
            .as_array()
            .and_then(|a| a.first())
            .and_then(|s| s["value"][1].as_str()),
        Some("scalar") => result[1].as_str(),
        _ => None,
    };
    Ok(value
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|v| v.is_finite()))
}

/// A service's counters from its three series, or `None` (missing data) when any of them
/// is missing: an error counter that is not there is not a count of zero errors, and a
/// latency that is not there is not 0 ms.
fn counters(requests: Option<f64>, errors: Option<f64>, p99: Option<f64>) -> Option<Counters> {
    Some(Counters {
        requests_total: requests?,
        errors_total: errors?,
        p99_ms: p99?,
    })
}

/// A service's recent sample, or `None` (missing data) when its requests or errors are
/// missing; a missing latency stays missing in the sample (its rule is not judged).
fn sample(requests: Option<f64>, errors: Option<f64>, p99: Option<f64>) -> Option<Sample> {
    Some(Sample {
        requests: Some(requests?),
        errors: Some(errors?),
        p99_ms: p99,
    })
}

#[async_trait]
impl SignalSource for PromSignals {
    async fn read(&self, service: &str) -> Result<Option<Counters>, String> {
        let c = &self.config;
        let q = |t: &str, agg: &str| format!("{agg}({})", Self::selector(t, service));
        // The three queries go out together: this runs every poll for every watched service.
        let (rq, eq, pq) = (
            q(&c.requests, "sum"),
            q(&c.errors, "sum"),
            q(&c.p99_ms, "max"),
        );
        let got = tokio::try_join!(self.scalar(&rq), self.scalar(&eq), self.scalar(&pq));
        match got {
            Ok((requests, errors, p99)) => {
                let counters = counters(requests, errors, p99);
                if counters.is_none() {
                    self.missing(service, &[(&rq, requests), (&eq, errors), (&pq, p99)]);
                }
                Ok(counters)
            }
            Err(e) => {
                self.warn(service, &e);
                Err(e)
            }
        }
    }

    async fn query(&self, query: &str) -> Result<Option<f64>, String> {
        self.scalar(query).await.inspect_err(|e| self.warn("-", e))
    }

    async fn recent(&self, service: &str, window_s: u64) -> Result<Option<Sample>, String> {
        let c = &self.config;
        let w = window_s.max(2);
        let inc = |t: &str| format!("sum(increase({}[{w}s]))", Self::selector(t, service));
        let (rq, eq, pq) = (
            inc(&c.requests),
            inc(&c.errors),
            format!(
                "max(max_over_time({}[{w}s]))",
                Self::selector(&c.p99_ms, service)
            ),
        );
        let got = tokio::try_join!(self.scalar(&rq), self.scalar(&eq), self.scalar(&pq));
        match got {
            Ok((requests, errors, p99)) => {
                let sample = sample(requests, errors, p99);
                if sample.is_none() {
                    self.missing(service, &[(&rq, requests), (&eq, errors)]);
                }
                Ok(sample)
            }
            Err(e) => {
                self.warn(service, &e);
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vector(result: Value) -> Value {
        json!({"status": "success", "data": {"resultType": "vector", "result": result}})
    }

    #[test]
    fn an_empty_answer_a_nan_and_an_infinity_are_missing_data_not_zero() {
        let q = "sum(airlock_sim_errors_total{service=\"web\"})";
        // `sum()` over no series: Prometheus answers an empty vector.
        assert_eq!(answer_value(&vector(json!([])), q), Ok(None));
        // A series without a sample, and values that are no number of errors.
        assert_eq!(answer_value(&vector(json!([{"metric": {}}])), q), Ok(None));
        for v in ["NaN", "+Inf", "-Inf", "not a number"] {
            let body = vector(json!([{"metric": {}, "value": [1_767_225_600.0, v]}]));
            assert_eq!(answer_value(&body, q), Ok(None), "{v}");
        }
        let scalar =
            json!({"status": "success", "data": {"resultType": "scalar", "result": [1.0, "NaN"]}});
        assert_eq!(answer_value(&scalar, q), Ok(None));
        let body = vector(json!([{"metric": {}, "value": [1_767_225_600.0, "0"]}]));
        assert_eq!(
            answer_value(&body, q),
            Ok(Some(0.0)),
            "a real zero stays zero"
        );
        let refused = json!({"status": "error", "error": "parse error"});
        assert!(
            answer_value(&refused, q)
                .unwrap_err()
                .contains("parse error")
        );
    }

    #[test]
    fn a_missing_error_or_latency_series_makes_the_service_missing() {
        assert_eq!(counters(Some(100.0), None, Some(20.0)), None);
        assert_eq!(counters(Some(100.0), Some(1.0), None), None);
        assert_eq!(counters(None, Some(1.0), Some(20.0)), None);
        assert_eq!(
            counters(Some(100.0), Some(0.0), Some(20.0)),
            Some(Counters {
                requests_total: 100.0,
                errors_total: 0.0,
                p99_ms: 20.0
            })
        );
        assert_eq!(sample(Some(100.0), None, Some(20.0)), None);
        assert_eq!(sample(None, Some(0.0), Some(20.0)), None);
        let s = sample(Some(100.0), Some(0.0), None).unwrap();
        assert_eq!(
            (s.requests, s.errors, s.p99_ms),
            (Some(100.0), Some(0.0), None)
        );
    }

    #[test]
    fn queries_are_checked_as_promql_selectors() {
        assert!(WatchConfig::default().problems().is_empty());
        let bad = WatchConfig {
            requests: r#"http_requests_total{service="$service""#.into(),
            errors: r#"rate(errors_total{service="$service"}[1m])"#.into(),
            ..WatchConfig::default()
        };
        let p = bad.problems();
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(
            p[0].starts_with("watch.requests: ") && p[0].contains("not valid PromQL"),
            "{p:?}"
        );
        assert!(
            p[1].starts_with("watch.errors: ") && p[1].contains("plain selector"),
            "{p:?}"
        );
    }
}
