//! The wall clock, for CloudWatch's time windows only: AWS runs on real time, and metric
//! queries name real instants. Nothing here decides on it.

/// Seconds since the Unix epoch.
#[expect(
    clippy::disallowed_methods,
    reason = "CloudWatch queries name real instants"
)]
pub(crate) fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
