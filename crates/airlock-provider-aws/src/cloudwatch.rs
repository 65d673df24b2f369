//! CloudWatch as a signal source: a service's requests, errors and p99 latency read with
//! `GetMetricStatistics`, so a change to a fleet bakes on real metrics and is reverted on a
//! breach. Data CloudWatch does not have is missing, never zero, and the bake's
//! missing-data rule applies (except an absent error count while requests have data, which
//! is zero errors when `errors_absent_is_zero`: CloudWatch publishes no `HTTPCode_*` point
//! for a minute without errors).

use crate::clients::{Connection, sdk_config, sdk_err};
use airlock_core::slo::{Counters, Sample, SignalSource};
use airlock_watch::cloudwatch::{CloudWatchConfig, MetricSpec};
use async_trait::async_trait;
use aws_config::Region;
use aws_sdk_cloudwatch::types::{Dimension, Statistic};
use aws_smithy_types::DateTime;

/// CloudWatch as a signal source.
pub struct CloudWatchSignals {
    config: CloudWatchConfig,
    client: aws_sdk_cloudwatch::Client,
    /// Counters count from here (unix seconds): `read` sums every point since.
    origin: i64,
}

use crate::wall::now_s;

impl CloudWatchSignals {
    /// Connects with Airlock's own AWS credentials (`conn`, as the `aws` provider's).
    pub async fn connect(conn: &Connection, config: CloudWatchConfig) -> Self {
        let base = sdk_config(conn).await;
        let cfg = base
            .to_builder()
            .region(Region::new(config.region.clone()))
            .build();
        Self {
            client: aws_sdk_cloudwatch::Client::new(&cfg),
            config,
            origin: (now_s() - 3600).div_euclid(60) * 60,
        }
    }

    /// One metric of `service` over `[start, end)`: the sum of its points for a count, the
    /// worst point otherwise; `Ok(None)` when CloudWatch has no point.
    async fn value(
        &self,
        m: &MetricSpec,
        service: &str,
        start: i64,
        end: i64,
    ) -> Result<Option<f64>, String> {
        let span = (end - start).max(60);
        // At most ~1000 points per call: the period grows with the span.
        let period = (span / 1000).max(60).div_euclid(60) * 60;
        let overrides = self.config.services.get(service);
        let dims: Vec<Dimension> = m
            .dimensions
            .iter()
            .map(|(k, v)| {
                let value = overrides
                    .and_then(|o| o.get(k))
                    .cloned()
                    .unwrap_or_else(|| v.replace("$service", service));
                Dimension::builder().name(k).value(value).build()
            })
            .collect();
        let mut call = self
            .client
            .get_metric_statistics()
            .namespace(&m.namespace)
            .metric_name(&m.metric)
            .set_dimensions(Some(dims))
            .start_time(DateTime::from_secs(start))
            .end_time(DateTime::from_secs(end))
            .period(period as i32);
        let percentile = m.stat.starts_with('p');
        call = if percentile {
            call.extended_statistics(&m.stat)
        } else {
            call.statistics(Statistic::from(m.stat.as_str()))
        };
        let out = call.send().await.map_err(|e| {
            format!(
                "CloudWatch {}/{}: {}",
                m.namespace,
                m.metric,
                sdk_err("GetMetricStatistics", e)
            )
        })?;
        let values: Vec<f64> = out
            .datapoints()
            .iter()
            .filter_map(|d| {
                if percentile {
                    d.extended_statistics()
                        .and_then(|x| x.get(&m.stat))
                        .copied()
                } else {
                    match m.stat.as_str() {
                        "Sum" => d.sum(),
                        "Average" => d.average(),
                        "Maximum" => d.maximum(),
                        "Minimum" => d.minimum(),
                        _ => d.sample_count(),
                    }
                }
            })
            .filter(|v| v.is_finite())
            .map(|v| v * m.scale)
            .collect();
        if values.is_empty() {
            return Ok(None);
        }
        Ok(Some(if matches!(m.stat.as_str(), "Sum" | "SampleCount") {
            values.iter().sum()
        } else {
            values.iter().copied().fold(f64::MIN, f64::max)
        }))
    }

    async fn triple(
        &self,
        service: &str,
        start: i64,
        latency_from: i64,
        end: i64,
    ) -> Result<(Option<f64>, Option<f64>, Option<f64>), String> {
        let c = &self.config;
        let (r, e, p) = tokio::try_join!(
            self.value(&c.requests, service, start, end),
            self.value(&c.errors, service, start, end),
            self.value(&c.p99_ms, service, latency_from, end),
        )?;
        let e = match (r, e) {
            (Some(_), None) if c.errors_absent_is_zero => Some(0.0),
            (_, e) => e,
        };
        Ok((r, e, p))
    }
}

#[async_trait]
impl SignalSource for CloudWatchSignals {
    async fn read(&self, service: &str) -> Result<Option<Counters>, String> {
        let end = now_s() + 60;
        let (r, e, p) = self
            .triple(service, self.origin, end - 360, end)
            .await
            .inspect_err(|e| tracing::warn!(service, error = %e, "watch: no signals from CloudWatch; the missing-data rule applies"))?;
        Ok(match (r, e, p) {
            (Some(r), Some(e), Some(p)) => Some(Counters {
                requests_total: r,
                errors_total: e,
                p99_ms: p,
            }),
            _ => None,
        })
    }

    async fn recent(&self, service: &str, window_s: u64) -> Result<Option<Sample>, String> {
        let end = now_s() + 60;
        let start = end - 60 - window_s.max(60) as i64;
        let (r, e, p) = self
            .triple(service, start, start, end)
            .await
            .inspect_err(|e| tracing::warn!(service, error = %e, "watch: no signals from CloudWatch; the missing-data rule applies"))?;
        Ok(match (r, e) {
            (Some(r), Some(e)) => Some(Sample {
                requests: Some(r),
                errors: Some(e),
                p99_ms: p,
            }),
            _ => None,
        })
    }
}
