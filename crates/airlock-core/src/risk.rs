//! Risk assessment: facts computed from a plan and its context.

use crate::plan::Plan;
use serde::{Deserialize, Serialize};
use std::fmt;

/// How much could go wrong.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Risk {
    Low,
    Medium,
    High,
    Critical,
}

impl Risk {
    /// The lower-case name policies compare against.
    pub fn as_str(self) -> &'static str {
        match self {
            Risk::Low => "low",
            Risk::Medium => "medium",
            Risk::High => "high",
            Risk::Critical => "critical",
        }
    }
}

impl fmt::Display for Risk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Health of the services an action touches, right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    Healthy,
    Degraded,
    Unknown,
}

impl HealthStatus {
    /// The lower-case name policies compare against.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Healthy => "healthy",
            HealthStatus::Degraded => "degraded",
            HealthStatus::Unknown => "unknown",
        }
    }
}

/// What the gate knows of the agent's recent behaviour.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentStats {
    pub actions_5m: u32,
    pub reverts_1h: u32,
    /// Anomaly score between 0 and 1 (0 until a detector is configured).
    pub anomaly: f64,
    /// The agent's changes currently baking.
    pub baking: u32,
    /// The agent's rollouts (deploys) currently baking: what `one-rollout-at-a-time`
    /// counts. Its scale-ups baking are not rollouts.
    #[serde(default)]
    pub rollouts_baking: u32,
}

/// Facts computed from the plan and context, handed to policy and guards.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assessment {
    pub risk: Risk,
    pub health: HealthStatus,
    pub agent: AgentStats,
}

/// Rates the risk of a plan. Reads are low; destroying something in prod that is critical
/// or depended upon is critical; large capacity cuts and prod mutations rank in between.
pub fn assess_risk(plan: &Plan) -> Risk {
    let shaped = risk_from_shape(plan);
    plan.min_risk.map_or(shaped, |floor| shaped.max(floor))
}

fn risk_from_shape(plan: &Plan) -> Risk {
    if !plan.verb.is_mutation() || plan.is_noop() {
        return Risk::Low;
    }
    let prod = plan.resource.env == "prod";
    let critical_tier = plan.resource.tier == "critical";
    let cut = plan.blast.capacity_delta_pct;
    if plan.destructive {
        return if prod && (critical_tier || plan.blast.dependents > 0 || plan.blast.resources > 1) {
            Risk::Critical
        } else if prod {
            Risk::High
        } else {
            Risk::Medium
        };
    }
    if cut <= -50.0 || plan.blast.regions > 1 || !plan.reversible {
        return if prod { Risk::High } else { Risk::Medium };
    }
    if prod {
        if critical_tier && cut < 0.0 {
            Risk::High
        } else {
            Risk::Medium
        }
    } else {
        Risk::Low
    }
}
