//! `/metrics` in OpenMetrics text: decisions, latency, changes, reverts, holds, breakers,
//! kill switch, alert deliveries.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    pub verdict: String,
    pub agent: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AgentLabels {
    pub agent: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AlertLabels {
    pub receiver: String,
    /// `delivered`, `retried`, `given_up` or `superseded`.
    pub outcome: String,
}

/// Every metric the server exports.
pub struct Metrics {
    registry: Registry,
    pub decisions: Family<DecisionLabels, Counter>,
    pub decision_seconds: Histogram,
    pub changes: Family<StatusLabels, Counter>,
    pub reverts: Counter,
    pub pending_holds: Gauge,
    pub breaker_open: Family<AgentLabels, Gauge>,
    pub anomaly: Family<AgentLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    pub killswitch: Gauge,
    pub journal_writable: Gauge,
    pub journal_write_failures: Gauge,
    pub alert_deliveries: Family<AlertLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("airlock");
        let decisions = Family::<DecisionLabels, Counter>::default();
        registry.register(
            "decisions",
            "Gate decisions by verdict and agent",
            decisions.clone(),
        );
        let decision_seconds = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        registry.register(
            "decision_seconds",
            "Time to decide a submission (plan, policy, guards, journal)",
            decision_seconds.clone(),
        );
        let changes = Family::<StatusLabels, Counter>::default();
        registry.register("changes", "Changes reaching each status", changes.clone());
        let reverts = Counter::default();
        registry.register(
            "reverts",
            "Changes reverted (automatically or by an operator)",
            reverts.clone(),
        );
        let pending_holds = Gauge::default();
        registry.register(
            "pending_holds",
            "Holds waiting for an operator",
            pending_holds.clone(),
        );
        let breaker_open = Family::<AgentLabels, Gauge>::default();
        registry.register(
            "breaker_open",
            "1 while an agent's breaker is open",
            breaker_open.clone(),
        );
        let anomaly = Family::<AgentLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        registry.register(
            "agent_anomaly_score",
            "An agent's last behaviour anomaly score, 0 (usual) to 1",
            anomaly.clone(),
        );
        let killswitch = Gauge::default();
        registry.register(
            "killswitch",
            "1 while the kill switch is on",
            killswitch.clone(),
        );
        let journal_writable = Gauge::default();
        registry.register(
            "journal_writable",
            "1 while the journal's last write succeeded, 0 until one succeeds again",
            journal_writable.clone(),
        );
        let journal_write_failures = Gauge::default();
        registry.register(
            "journal_write_failures",
            "Journal writes that failed since the server started",
            journal_write_failures.clone(),
        );
        let alert_deliveries = Family::<AlertLabels, Counter>::default();
        registry.register(
            "alert_deliveries",
            "Alert deliveries by receiver and outcome: delivered, retried (an attempt failed), given_up (never delivered), superseded",
            alert_deliveries.clone(),
        );
        Self {
            registry,
            alert_deliveries,
            journal_writable,
            journal_write_failures,
            decisions,
            decision_seconds,
            changes,
            reverts,
            pending_holds,
            breaker_open,
            anomaly,
            killswitch,
        }
    }
}

impl Metrics {
    /// The exposition text.
    pub fn encode(&self) -> String {
        self.encode_with(&[])
    }

    /// The exposition with the live simulator's per-service signals added, as a real
    /// service would export them. A service in a metric blackout has no series at all
    /// (missing, not zero).
    pub fn encode_with(&self, sim: &[(String, airlock_core::slo::Counters)]) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        if sim.is_empty() {
            return out;
        }
        let body = out.strip_suffix("# EOF\n").unwrap_or(&out).to_string();
        let mut text = body;
        let family = |text: &mut String,
                      name: &str,
                      kind: &str,
                      help: &str,
                      suffix: &str,
                      value: &dyn Fn(&airlock_core::slo::Counters) -> f64| {
            text.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
            for (service, c) in sim {
                text.push_str(&format!(
                    "{name}{suffix}{{service=\"{}\"}} {}\n",
                    service.replace(['\\', '"'], ""),
                    value(c)
                ));
            }
        };
        family(
            &mut text,
            "airlock_sim_requests",
            "counter",
            "Requests a simulated service has served.",
            "_total",
            &|c| c.requests_total,
        );
        family(
            &mut text,
            "airlock_sim_errors",
            "counter",
            "Requests a simulated service has failed.",
            "_total",
            &|c| c.errors_total,
        );
        family(
            &mut text,
            "airlock_sim_latency_p99_ms",
            "gauge",
            "A simulated service's p99 latency over its last tick, in milliseconds.",
            "",
            &|c| c.p99_ms,
        );
        text.push_str("# EOF\n");
        text
    }
}
