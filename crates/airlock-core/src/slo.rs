//! The bake judge: SLO rules evaluated on samples taken after a change, compared with
//! the baseline recorded just before it.
//!
//! A rule that was already failing before the change is not blamed on it, but it is not
//! allowed to mask a new regression either: it breaches when the value gets worse than
//! the baseline by more than the rule's tolerance.

use serde::{Deserialize, Serialize};

/// A health signal a rule looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SignalKind {
    /// Success ratio, 0 to 1 (request weighted).
    Availability,
    /// 99th percentile latency in milliseconds.
    P99LatencyMs,
}

/// `>=` or `<=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum Comparator {
    #[serde(rename = ">=")]
    Ge,
    #[serde(rename = "<=")]
    Le,
}

/// What to do when a signal has no data during a poll.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum MissingData {
    /// No data counts as a breach (the safest for critical services).
    Breach,
    /// No data is skipped; the judgement waits for data.
    #[default]
    Ignore,
    /// No data keeps the change baking past its window until data returns.
    Hold,
}

/// One SLO rule, e.g. `availability >= 0.999`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SloRule {
    pub signal: SignalKind,
    pub comparator: Comparator,
    pub threshold: f64,
    /// How much worse than a failing baseline still counts as "the same".
    #[serde(default)]
    pub tolerance: f64,
}

impl SloRule {
    /// The default availability rule: `availability >= 0.999`.
    pub fn availability(threshold: f64) -> Self {
        Self {
            signal: SignalKind::Availability,
            comparator: Comparator::Ge,
            threshold,
            tolerance: 0.0005,
        }
    }
    /// The default latency rule: `p99_latency_ms <= bound`.
    pub fn p99_latency(bound_ms: f64) -> Self {
        Self {
            signal: SignalKind::P99LatencyMs,
            comparator: Comparator::Le,
            threshold: bound_ms,
            tolerance: 50.0,
        }
    }
    /// Whether `value` satisfies the rule.
    pub fn passes(&self, value: f64) -> bool {
        match self.comparator {
            Comparator::Ge => value >= self.threshold,
            Comparator::Le => value <= self.threshold,
        }
    }
    /// Whether `value` is worse than `baseline` by more than the tolerance.
    pub fn worse_than(&self, value: f64, baseline: f64) -> bool {
        match self.comparator {
            Comparator::Ge => value < baseline - self.tolerance,
            Comparator::Le => value > baseline + self.tolerance,
        }
    }
    /// Human form, `availability >= 0.999`.
    pub fn describe(&self) -> String {
        let s = match self.signal {
            SignalKind::Availability => "availability",
            SignalKind::P99LatencyMs => "p99_latency_ms",
        };
        let c = match self.comparator {
            Comparator::Ge => ">=",
            Comparator::Le => "<=",
        };
        format!("{s} {c} {}", self.threshold)
    }
}

/// One poll's observation of one service: request and error counts over the poll interval
/// and its p99 latency. `None` fields are missing data (a blackout), never zeros.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub requests: Option<f64>,
    pub errors: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// The value of one rule over a set of samples, or `None` when there is no data.
pub fn rule_value(rule: &SloRule, samples: &[Sample]) -> Option<f64> {
    match rule.signal {
        SignalKind::Availability => {
            let (mut req, mut err, mut any) = (0.0, 0.0, false);
            for s in samples {
                if let (Some(r), Some(e)) = (s.requests, s.errors) {
                    req += r;
                    err += e;
                    any = true;
                }
            }
            if !any {
                None
            } else if req <= 0.0 {
                Some(1.0)
            } else {
                Some(1.0 - err / req)
            }
        }
        SignalKind::P99LatencyMs => samples.iter().filter_map(|s| s.p99_ms).reduce(f64::max),
    }
}

/// Requests observed in a set of samples.
pub fn request_count(samples: &[Sample]) -> f64 {
    samples.iter().filter_map(|s| s.requests).sum()
}

/// The baseline of one rule on one service, recorded just before a change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselineEntry {
    pub service: String,
    pub rule: SloRule,
    pub value: Option<f64>,
    pub passing: bool,
}

/// The judge's answer for one poll.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "judgement", rename_all = "snake_case")]
pub enum Judgement {
    /// Every rule holds (or is no worse than its failing baseline).
    Pass,
    /// Not enough requests or data yet to judge.
    Insufficient { detail: String },
    /// A rule breaks because of the change.
    Breach {
        service: String,
        rule: String,
        value: Option<f64>,
        baseline: Option<f64>,
    },
    /// Data is missing and the rule says to hold the bake open.
    Hold { service: String },
}

/// Judges one service's recent samples against its baseline entries.
pub fn judge(
    service: &str,
    baseline: &[BaselineEntry],
    window: &[Sample],
    min_requests: f64,
    missing: MissingData,
) -> Judgement {
    let any_data = window.iter().any(|s| s.requests.is_some());
    if !any_data {
        return match missing {
            MissingData::Breach => Judgement::Breach {
                service: service.to_string(),
                rule: "missing data".into(),
                value: None,
                baseline: None,
            },
            MissingData::Hold => Judgement::Hold {
                service: service.to_string(),
            },
            MissingData::Ignore => Judgement::Insufficient {
                detail: format!("no data for `{service}`"),
            },
        };
    }
    let requests = request_count(window);
    if requests < min_requests {
        return Judgement::Insufficient {
            detail: format!(
                "{requests:.0} requests for `{service}`, judging from {min_requests:.0}"
            ),
        };
    }
    for b in baseline.iter().filter(|b| b.service == service) {
        let Some(value) = rule_value(&b.rule, window) else {
            continue;
        };
        if b.rule.passes(value) {
            continue;
        }
        let blamed = match (b.passing, b.value) {
            (true, _) | (false, None) => true,
            (false, Some(base)) => b.rule.worse_than(value, base),
        };
        if blamed {
            return Judgement::Breach {
                service: service.to_string(),
                rule: b.rule.describe(),
                value: Some(value),
                baseline: b.value,
            };
        }
    }
    Judgement::Pass
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(req: f64, err: f64, p99: f64) -> Sample {
        Sample {
            requests: Some(req),
            errors: Some(err),
            p99_ms: Some(p99),
        }
    }

    fn base(passing: bool, value: f64) -> Vec<BaselineEntry> {
        vec![BaselineEntry {
            service: "web".into(),
            rule: SloRule::availability(0.999),
            value: Some(value),
            passing,
        }]
    }

    #[test]
    fn query_rules_blame_only_what_got_worse() {
        let r = QueryRule {
            name: "error-ratio".into(),
            service: "*".into(),
            query: "sum(rate(errors{service=\"$service\"}[1m]))".into(),
            comparator: Comparator::Le,
            threshold: 0.01,
            tolerance: 0.005,
            min_samples: 1,
            missing: MissingData::Ignore,
        };
        assert!(r.applies("web"));
        assert_eq!(r.query_for("web"), "sum(rate(errors{service=\"web\"}[1m]))");
        assert!(!r.passes(0.2));
        assert!(
            r.blamed(0.2, Some(0.0)),
            "a passing baseline blames any failure"
        );
        assert!(
            !r.blamed(0.052, Some(0.05)),
            "as bad as before is not the change's doing"
        );
        assert!(r.blamed(0.1, Some(0.05)), "worse than before is");
        assert_eq!(r.describe(), "error-ratio <= 0.01");
    }

    #[test]
    fn a_new_regression_breaches() {
        let j = judge(
            "web",
            &base(true, 1.0),
            &[s(1000.0, 50.0, 80.0)],
            500.0,
            MissingData::Ignore,
        );
        assert!(matches!(j, Judgement::Breach { .. }), "{j:?}");
    }

    #[test]
    fn a_rule_failing_before_is_not_blamed_unless_it_gets_worse() {
        let b = base(false, 0.99);
        assert_eq!(
            judge(
                "web",
                &b,
                &[s(1000.0, 10.0, 80.0)],
                500.0,
                MissingData::Ignore
            ),
            Judgement::Pass
        );
        assert!(matches!(
            judge(
                "web",
                &b,
                &[s(1000.0, 100.0, 80.0)],
                500.0,
                MissingData::Ignore
            ),
            Judgement::Breach { .. }
        ));
    }

    #[test]
    fn too_few_requests_and_missing_data_follow_their_rules() {
        let b = base(true, 1.0);
        assert!(matches!(
            judge("web", &b, &[s(10.0, 10.0, 1.0)], 500.0, MissingData::Ignore),
            Judgement::Insufficient { .. }
        ));
        let blackout = [Sample {
            requests: None,
            errors: None,
            p99_ms: None,
        }];
        assert!(matches!(
            judge("web", &b, &blackout, 500.0, MissingData::Ignore),
            Judgement::Insufficient { .. }
        ));
        assert!(matches!(
            judge("web", &b, &blackout, 500.0, MissingData::Breach),
            Judgement::Breach { .. }
        ));
        assert!(matches!(
            judge("web", &b, &blackout, 500.0, MissingData::Hold),
            Judgement::Hold { .. }
        ));
    }
}

/// Cumulative counters of one service at one instant, like a Prometheus counter pair.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Counters {
    pub requests_total: f64,
    pub errors_total: f64,
    pub p99_ms: f64,
}

impl Counters {
    /// The sample between an earlier reading and this one.
    pub fn since(&self, earlier: &Counters) -> Sample {
        Sample {
            requests: Some((self.requests_total - earlier.requests_total).max(0.0)),
            errors: Some((self.errors_total - earlier.errors_total).max(0.0)),
            p99_ms: Some(self.p99_ms),
        }
    }
}

/// Where health signals come from (the simulator, Prometheus, a probe).
#[async_trait::async_trait]
pub trait SignalSource: Send + Sync {
    /// Current counters of a service; `Ok(None)` when its signals are missing.
    async fn read(&self, service: &str) -> Result<Option<Counters>, String>;
    /// Requests, errors and worst p99 of a service over the last `window_s` seconds;
    /// `Ok(None)` when its signals are missing.
    async fn recent(&self, service: &str, window_s: u64) -> Result<Option<Sample>, String>;
    /// The value of a query (PromQL for Prometheus); `Ok(None)` when it returns nothing.
    async fn query(&self, query: &str) -> Result<Option<f64>, String> {
        Err(format!(
            "this signal source cannot run queries such as `{query}`"
        ))
    }
}

/// A source with no series at all: every service's signals are missing. For a gate over
/// resources no signal watches (a coding agent's commands and edits, a gate kept for its
/// kill switch and breakers).
pub struct NoSignals;

#[async_trait::async_trait]
impl SignalSource for NoSignals {
    async fn read(&self, _: &str) -> Result<Option<Counters>, String> {
        Ok(None)
    }
    async fn recent(&self, _: &str, _: u64) -> Result<Option<Sample>, String> {
        Ok(None)
    }
}

/// An SLO rule on a query's value (`[[slo]]`), e.g. an error ratio `<= 0.01`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryRule {
    /// The rule's name, in breaches and timelines.
    pub name: String,
    /// The service it watches, or `*` for every watched service.
    #[serde(default = "every_service")]
    pub service: String,
    /// The query; `$service` stands for the service's name.
    pub query: String,
    pub comparator: Comparator,
    pub threshold: f64,
    /// How much worse than a failing baseline still counts as "the same".
    #[serde(default)]
    pub tolerance: f64,
    /// Polls with data needed before the rule is judged.
    #[serde(default = "one")]
    pub min_samples: u32,
    /// What a poll without data means for this rule.
    #[serde(default)]
    pub missing: MissingData,
}

fn every_service() -> String {
    "*".into()
}
fn one() -> u32 {
    1
}

impl QueryRule {
    /// Whether the rule watches `service`.
    pub fn applies(&self, service: &str) -> bool {
        self.service == "*" || self.service == service
    }
    /// The query for `service`.
    pub fn query_for(&self, service: &str) -> String {
        self.query
            .replace("$service", &service.replace(['"', '\\'], ""))
    }
    /// As a plain rule (for `passes` and `worse_than`).
    fn as_rule(&self) -> SloRule {
        SloRule {
            signal: SignalKind::Availability,
            comparator: self.comparator,
            threshold: self.threshold,
            tolerance: self.tolerance,
        }
    }
    /// Whether `value` satisfies the rule.
    pub fn passes(&self, value: f64) -> bool {
        self.as_rule().passes(value)
    }
    /// Whether a failing `value` is blamed on the change, given the baseline.
    pub fn blamed(&self, value: f64, baseline: Option<f64>) -> bool {
        match baseline {
            Some(b) if !self.passes(b) => self.as_rule().worse_than(value, b),
            _ => true,
        }
    }
    /// Human form, `error-ratio: … <= 0.01`.
    pub fn describe(&self) -> String {
        let c = match self.comparator {
            Comparator::Ge => ">=",
            Comparator::Le => "<=",
        };
        format!("{} {c} {}", self.name, self.threshold)
    }
}
