//! `[watch.cloudwatch]`: which CloudWatch metrics are a service's requests, errors and
//! latency. The source itself is the `aws` provider's (`airlock_provider_aws::cloudwatch`);
//! this is its configuration, checked with the rest of `[watch]`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One metric, with `$service` in dimension values standing for the service's name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricSpec {
    /// The metric's namespace, e.g. `AWS/ApplicationELB`.
    pub namespace: String,
    /// The metric's name, e.g. `RequestCount`.
    pub metric: String,
    /// The statistic: `Sum`, `Average`, `Maximum`, `Minimum`, `SampleCount`, or a
    /// percentile such as `p99`.
    pub stat: String,
    /// Dimensions, e.g. `{ TargetGroup = "$service" }`.
    #[serde(default)]
    pub dimensions: BTreeMap<String, String>,
    /// Multiplies every value (1000 turns seconds into milliseconds).
    #[serde(default = "one")]
    pub scale: f64,
}

fn one() -> f64 {
    1.0
}

/// `[watch.cloudwatch]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CloudWatchConfig {
    /// The region the metrics are in.
    pub region: String,
    /// A service's requests (summed over each window).
    pub requests: MetricSpec,
    /// A service's errors (summed over each window).
    pub errors: MetricSpec,
    /// A service's p99 latency in milliseconds (the worst value of each window).
    pub p99_ms: MetricSpec,
    /// An error metric with no data while requests have data counts as zero errors:
    /// CloudWatch publishes no `HTTPCode_*` data point for a minute without errors. Set
    /// false for a metric that is always published, so its absence is missing data.
    pub errors_absent_is_zero: bool,
    /// Per-service overrides of the dimensions, by service name (e.g. a target group ARN
    /// suffix that differs from the fleet's name).
    pub services: BTreeMap<String, BTreeMap<String, String>>,
}

impl Default for CloudWatchConfig {
    fn default() -> Self {
        let alb = |metric: &str, stat: &str, scale: f64| MetricSpec {
            namespace: "AWS/ApplicationELB".into(),
            metric: metric.into(),
            stat: stat.into(),
            dimensions: BTreeMap::from([("TargetGroup".to_string(), "$service".to_string())]),
            scale,
        };
        Self {
            region: "us-east-1".into(),
            requests: alb("RequestCount", "Sum", 1.0),
            errors: alb("HTTPCode_Target_5XX_Count", "Sum", 1.0),
            p99_ms: alb("TargetResponseTime", "p99", 1000.0),
            errors_absent_is_zero: true,
            services: BTreeMap::new(),
        }
    }
}

fn valid_stat(s: &str) -> bool {
    matches!(s, "Sum" | "Average" | "Maximum" | "Minimum" | "SampleCount")
        || s.strip_prefix('p')
            .and_then(|n| n.parse::<f64>().ok())
            .is_some_and(|n| n > 0.0 && n < 100.0)
}

impl CloudWatchConfig {
    /// Problems, each naming its field.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.region.trim().is_empty() {
            p.push("watch.cloudwatch.region: must not be empty".into());
        }
        for (field, m) in [
            ("requests", &self.requests),
            ("errors", &self.errors),
            ("p99_ms", &self.p99_ms),
        ] {
            if m.namespace.trim().is_empty() || m.metric.trim().is_empty() {
                p.push(format!(
                    "watch.cloudwatch.{field}: `namespace` and `metric` must not be empty"
                ));
            }
            if !valid_stat(&m.stat) {
                p.push(format!(
                    "watch.cloudwatch.{field}.stat: `{}` is not a CloudWatch statistic (Sum, Average, Maximum, Minimum, SampleCount, or pNN)",
                    m.stat
                ));
            }
            if !(m.scale.is_finite() && m.scale > 0.0) {
                p.push(format!("watch.cloudwatch.{field}.scale: must be above 0"));
            }
        }
        for field in ["requests", "errors"] {
            let m = if field == "requests" {
                &self.requests
            } else {
                &self.errors
            };
            if m.stat != "Sum" && m.stat != "SampleCount" {
                p.push(format!(
                    "watch.cloudwatch.{field}.stat: a count is summed over a window: use `Sum` (or `SampleCount`)"
                ));
            }
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid_and_bad_fields_are_named() {
        assert!(CloudWatchConfig::default().problems().is_empty());
        let mut c = CloudWatchConfig::default();
        c.p99_ms.stat = "p100".into();
        c.requests.stat = "Average".into();
        c.errors.scale = 0.0;
        let p = c.problems();
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(
            p.iter()
                .any(|x| x.starts_with("watch.cloudwatch.p99_ms.stat"))
        );
    }
}
