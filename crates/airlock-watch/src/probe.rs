//! HTTP probes as a signal source: for a service with a `[[probe]]`, every reading sends a
//! few requests to its URL and counts them — a failed or non-2xx answer is an error, and the
//! slowest answer is the p99 — so a change to a service nothing else measures is still
//! judged. Services without a probe are read from the other source.

use airlock_core::slo::{Counters, Sample, SignalSource};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One `[[probe]]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProbeConfig {
    /// The service it measures.
    pub service: String,
    /// The URL to `GET`; any 2xx answer is a success.
    pub url: String,
    /// Requests per reading (per bake poll).
    #[serde(default = "default_requests")]
    pub requests_per_poll: u32,
    /// Longest one request may take before it counts as an error, in milliseconds.
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
}

fn default_requests() -> u32 {
    5
}
fn default_timeout() -> u64 {
    2000
}

impl ProbeConfig {
    /// Problems, each naming its field.
    pub fn problems(&self, i: usize) -> Vec<String> {
        let at = format!("probe[{i}]");
        let mut p = Vec::new();
        if self.service.trim().is_empty() {
            p.push(format!("{at}.service: must not be empty"));
        }
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            p.push(format!("{at}.url: `{}` is not an http(s) URL", self.url));
        }
        if !(1..=100).contains(&self.requests_per_poll) {
            p.push(format!("{at}.requests_per_poll: must be within 1..100"));
        }
        if self.timeout_ms == 0 {
            p.push(format!("{at}.timeout_ms: must be above 0"));
        }
        p
    }
}

/// Probes for some services, another source for the rest.
pub struct Probed {
    base: Arc<dyn SignalSource>,
    probes: BTreeMap<String, ProbeConfig>,
    http: reqwest::Client,
    totals: tokio::sync::Mutex<BTreeMap<String, Counters>>,
}

#[expect(clippy::disallowed_methods, reason = "a probe measures real latency")]
fn started() -> Instant {
    Instant::now()
}

impl Probed {
    pub fn new(base: Arc<dyn SignalSource>, probes: Vec<ProbeConfig>) -> Self {
        Self {
            base,
            probes: probes.into_iter().map(|p| (p.service.clone(), p)).collect(),
            http: reqwest::Client::new(),
            totals: tokio::sync::Mutex::new(BTreeMap::new()),
        }
    }

    /// Sends one round of requests: (requests, errors, slowest in ms).
    async fn round(&self, p: &ProbeConfig) -> (f64, f64, f64) {
        let (mut errors, mut slowest) = (0.0, 0.0_f64);
        for _ in 0..p.requests_per_poll {
            let t = started();
            let ok = self
                .http
                .get(&p.url)
                .timeout(Duration::from_millis(p.timeout_ms))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            slowest = slowest.max(t.elapsed().as_secs_f64() * 1000.0);
            if !ok {
                errors += 1.0;
            }
        }
        (f64::from(p.requests_per_poll), errors, slowest)
    }
}

#[async_trait]
impl SignalSource for Probed {
    async fn read(&self, service: &str) -> Result<Option<Counters>, String> {
        let Some(p) = self.probes.get(service) else {
            return self.base.read(service).await;
        };
        let (requests, errors, slowest) = self.round(p).await;
        let mut totals = self.totals.lock().await;
        let c = totals.entry(service.to_string()).or_insert(Counters {
            requests_total: 0.0,
            errors_total: 0.0,
            p99_ms: 0.0,
        });
        c.requests_total += requests;
        c.errors_total += errors;
        c.p99_ms = slowest;
        Ok(Some(*c))
    }

    async fn recent(&self, service: &str, window_s: u64) -> Result<Option<Sample>, String> {
        let Some(p) = self.probes.get(service) else {
            return self.base.recent(service, window_s).await;
        };
        let (requests, errors, slowest) = self.round(p).await;
        Ok(Some(Sample {
            requests: Some(requests),
            errors: Some(errors),
            p99_ms: Some(slowest),
        }))
    }

    async fn query(&self, query: &str) -> Result<Option<f64>, String> {
        self.base.query(query).await
    }
}
