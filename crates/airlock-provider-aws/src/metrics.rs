//! Fleet facts from CloudWatch: the demand a fleet carries, and what its capacity will be
//! per zone after a change.
//!
//! Capacity and demand are in units of one instance's (or task's) CPU: each member can run
//! at `cpu_ceiling_pct`, and the demand is the busiest average CPU utilisation of the recent
//! window times the members serving now. Headroom is their ratio, so a fleet at 40% CPU on
//! 4 instances with a ceiling of 80% has headroom 2.0, and 1.0 after a cut to 2.

use crate::clients::{Clients, sdk_err};
use crate::provider::AwsProvider;
use airlock_core::ProviderError;
use airlock_core::plan::Predicted;
use aws_sdk_cloudwatch::types::{Dimension, Statistic};
use aws_smithy_types::DateTime;
use std::collections::BTreeMap;

/// Members per zone after changing the count to `target`, the way an Auto Scaling group
/// balances: each added member goes to the zone with the fewest, each removed one comes
/// from the zone with the most (ties: added to the first zone by name, removed from the
/// last).
pub(crate) fn spread(now: &BTreeMap<String, u32>, target: u32) -> BTreeMap<String, u32> {
    let mut out = now.clone();
    if out.is_empty() {
        return out;
    }
    let mut total: u32 = out.values().sum();
    while total < target {
        if let Some((_, n)) = out.iter_mut().min_by_key(|(z, n)| (**n, (*z).clone())) {
            *n += 1;
        }
        total += 1;
    }
    while total > target {
        if let Some((_, n)) = out.iter_mut().max_by_key(|(z, n)| (**n, (*z).clone())) {
            *n = n.saturating_sub(1);
        }
        total -= 1;
    }
    out
}

/// The predicted facts of a fleet going from `before` to `after` members per zone, with
/// `demand` (busiest CPU × members now) when CloudWatch has it.
pub(crate) fn predict(
    before: &BTreeMap<String, u32>,
    after: &BTreeMap<String, u32>,
    after_total: u32,
    demand: Option<f64>,
    ceiling: f64,
) -> Predicted {
    let Some(demand) = demand.filter(|d| *d > 0.0) else {
        return Predicted::default();
    };
    let capacity = |m: &BTreeMap<String, u32>| -> (f64, f64) {
        let total: f64 = m.values().map(|n| f64::from(*n) * ceiling).sum();
        let max = m
            .values()
            .map(|n| f64::from(*n) * ceiling)
            .fold(0.0, f64::max);
        (total, max)
    };
    let mut p = Predicted {
        headroom: Some(f64::from(after_total) * ceiling / demand),
        expected_demand_rps: Some(demand),
        ..Predicted::default()
    };
    if after.len() > 1 {
        let (total, max) = capacity(after);
        let (total_b, max_b) = capacity(before);
        p.az_capacity_rps = after
            .iter()
            .map(|(z, n)| (z.clone(), f64::from(*n) * ceiling))
            .collect();
        p.max_az_share = (total > 0.0).then(|| max / total);
        p.headroom_after_az_loss = Some((total - max) / demand);
        p.headroom_after_az_loss_before = Some((total_b - max_b) / demand);
    }
    p
}

impl AwsProvider {
    /// The busiest `Average` of a metric over the recent window (5-minute periods), or
    /// `None` when CloudWatch has no data for it (then policies see headroom missing).
    pub(crate) async fn busiest(
        &self,
        c: &Clients,
        namespace: &str,
        metric: &str,
        dimensions: &[(&str, &str)],
    ) -> Result<Option<f64>, ProviderError> {
        let now = crate::wall::now_s();
        let window = self.settings.metrics_window_s as i64;
        let dims: Vec<Dimension> = dimensions
            .iter()
            .map(|(k, v)| Dimension::builder().name(*k).value(*v).build())
            .collect();
        let out =
            c.cw.get_metric_statistics()
                .namespace(namespace)
                .metric_name(metric)
                .set_dimensions(Some(dims))
                .start_time(DateTime::from_secs(now - window))
                .end_time(DateTime::from_secs(now + 60))
                .period(300)
                .statistics(Statistic::Average)
                .send()
                .await
                .map_err(|e| sdk_err("GetMetricStatistics", e))?;
        Ok(out
            .datapoints()
            .iter()
            .filter_map(|d| d.average())
            .filter(|v| v.is_finite())
            .reduce(f64::max))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zones(v: &[(&str, u32)]) -> BTreeMap<String, u32> {
        v.iter().map(|(z, n)| (z.to_string(), *n)).collect()
    }

    #[test]
    fn members_are_added_to_the_emptiest_zone_and_removed_from_the_fullest() {
        let now = zones(&[("a", 2), ("b", 1), ("c", 1)]);
        assert_eq!(spread(&now, 6), zones(&[("a", 2), ("b", 2), ("c", 2)]));
        assert_eq!(spread(&now, 2), zones(&[("a", 1), ("b", 1), ("c", 0)]));
        assert_eq!(spread(&now, 4), now);
    }

    #[test]
    fn headroom_is_capacity_over_the_busiest_demand() {
        let before = zones(&[("a", 2), ("b", 2)]);
        let after = spread(&before, 2);
        // 4 instances at 40% CPU: demand 160; 2 instances at a ceiling of 80: capacity 160.
        let p = predict(&before, &after, 2, Some(160.0), 80.0);
        assert_eq!(p.headroom, Some(1.0));
        assert_eq!(p.max_az_share, Some(0.5));
        assert_eq!(p.headroom_after_az_loss, Some(0.5));
        assert_eq!(p.headroom_after_az_loss_before, Some(1.0));
        assert_eq!(
            predict(&before, &after, 2, None, 80.0),
            Predicted::default()
        );
    }
}
