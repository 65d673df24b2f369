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
    /// `sim` (the live simulator in process) or `prometheus`.
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
}

/// Where signals come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    Sim,
    Prometheus,
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

    fn warn(&self, service: &str, e: &str) {
        tracing::warn!(service, error = %e, "watch: no signals from Prometheus; the missing-data rule applies");
    }
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
            Ok((Some(requests_total), errors, p99)) => Ok(Some(Counters {
                requests_total,
                // No error series yet means no errors counted.
                errors_total: errors.unwrap_or(0.0),
                p99_ms: p99.unwrap_or(0.0),
            })),
            Ok((None, _, _)) => Ok(None),
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
            Ok((None, _, _)) => Ok(None),
            Ok((requests, errors, p99)) => Ok(Some(Sample {
                requests,
                errors: errors.or(Some(0.0)),
                p99_ms: p99,
            })),
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
