//! A provider's dry run of a request ([`Plan`]) and the records of applying and
//! undoing it ([`Snapshot`], [`Applied`], [`Restored`]).

use crate::action::Verb;
use crate::addr::ResourceAddr;
use serde::{Deserialize, Serialize};

/// One resource's state before and after the action; `null` means absent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Diff {
    pub addr: ResourceAddr,
    /// The resource's state before, or `null` when it does not exist.
    #[schema(value_type = Value)]
    pub before: Option<serde_json::Value>,
    /// The resource's state after, or `null` when it will not exist.
    #[schema(value_type = Value)]
    pub after: Option<serde_json::Value>,
}

/// How far an action reaches.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Blast {
    /// Resources changed directly.
    pub resources: u32,
    /// Distinct regions touched.
    pub regions: u32,
    /// Live resources that depend on what is changed (and are not changed themselves).
    pub dependents: u32,
    /// Change of serving capacity of the targets, in percent (−100 = all capacity removed).
    pub capacity_delta_pct: f64,
    /// Services to watch after the change: the targets and their dependents.
    pub watch: Vec<String>,
    /// The live dependents by name, when the provider knows them (stacks importing a
    /// stack's exports): what reasons name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependent_names: Vec<String>,
}

/// Facts the provider predicts for the state after the action. Demand is what the signals
/// show: the recent p95, or the demand expected over the coming hours (the same hours of
/// the previous days) when that is higher. A fact the provider cannot know (no zones, no
/// signals) is `None`, and policies see that it is missing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Predicted {
    /// Predicted capacity divided by the expected demand; `None` when not applicable or
    /// when the signals show no demand to compare with.
    pub headroom: Option<f64>,
    /// The demand the headroom is judged against, in requests per second.
    pub expected_demand_rps: Option<f64>,
    /// Capacity per availability zone after the change, in requests per second.
    pub az_capacity_rps: std::collections::BTreeMap<String, f64>,
    /// The largest share of the capacity in any one zone after the change, 0 to 1.
    pub max_az_share: Option<f64>,
    /// Capacity left after losing the worst zone, divided by the expected demand, after
    /// the change.
    pub headroom_after_az_loss: Option<f64>,
    /// The same before the change: a change that does not lower it does not make the
    /// service less able to survive a zone's loss.
    pub headroom_after_az_loss_before: Option<f64>,
}

/// A resource the action reaches through its target: a service inside an environment
/// that is deleted, a resource inside a stack. The gate decides each as if it were
/// targeted directly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contained {
    pub addr: ResourceAddr,
    pub resource: ResourceAttrs,
    /// Live resources depending on this one that the action does not change.
    pub dependents: u32,
    /// Change of this resource's serving capacity, in percent.
    pub capacity_delta_pct: f64,
    /// Whether the action destroys this resource's data for good (one of the plan's
    /// `loses`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub loses_data: bool,
}

/// Attributes of the target resource, as policies see them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResourceAttrs {
    pub env: String,
    pub kind: String,
    pub tier: String,
    pub region: String,
    pub service: String,
    pub tags: Vec<String>,
    pub dependents: u32,
    /// Resources that contain this one (its environment, stack or namespace), by
    /// address: policies see them as the entity hierarchy (`resource in …`).
    #[serde(default)]
    pub parents: Vec<String>,
    /// The resource lives in the agent's own workspace (a file or build artifact of the
    /// project a coding agent works in): changing it is not an infrastructure mutation, so
    /// rate limits, blast budgets and the anomaly detector do not count it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub workspace: bool,
}

/// The provider's dry run of a request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub provider: String,
    pub verb: Verb,
    pub target: ResourceAddr,
    pub params: serde_json::Map<String, serde_json::Value>,
    pub diffs: Vec<Diff>,
    pub blast: Blast,
    pub predicted: Predicted,
    pub resource: ResourceAttrs,
    /// Resources the action reaches through its target (empty when it reaches only the
    /// target itself).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contained: Vec<Contained>,
    /// Whether a snapshot can undo the change.
    pub reversible: bool,
    /// What the change destroys that nothing can bring back (a table deleted without a
    /// backup, a bucket's objects), one line each; empty when nothing is lost for good.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub loses: Vec<String>,
    /// Whether the verb destroys something (delete, exec).
    pub destructive: bool,
    /// Whether the action returns a resource to a state it recently had (an agent's own rollback).
    pub rollback: bool,
    /// A floor for the assessed risk, when the provider knows more than the plan's shape
    /// shows (a classified `rm -rf /` is critical wherever it runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_risk: Option<crate::risk::Risk>,
    /// One line for humans.
    pub summary: String,
    /// blake3 of the canonical plan content; approvals are bound to it.
    pub hash: String,
}

impl Plan {
    /// Computes the hash of what the plan would do (verb, target, params, diffs).
    pub fn compute_hash(&self) -> String {
        let content = serde_json::json!({
            "provider": self.provider,
            "verb": self.verb,
            "target": self.target,
            "params": self.params,
            "diffs": self.diffs,
        });
        blake3::hash(content.to_string().as_bytes())
            .to_hex()
            .to_string()
    }
    /// Sets `hash` from the content; providers call this last.
    pub fn seal(mut self) -> Self {
        self.hash = self.compute_hash();
        self
    }
    /// Whether the plan only adds capacity (a scale-up). It cannot cause an overload its
    /// services were already in, so a bake does not blame it for a rule they were already
    /// failing before it: taking the capacity away again would only deepen the incident.
    pub fn only_adds_capacity(&self) -> bool {
        self.verb == Verb::Scale && self.blast.capacity_delta_pct > 0.0
    }

    /// Whether the plan rolls out something new (a deploy): what `one-rollout-at-a-time`
    /// counts, unlike a scale.
    pub fn is_rollout(&self) -> bool {
        self.verb == Verb::Deploy
    }

    /// Whether the plan changes nothing.
    pub fn is_noop(&self) -> bool {
        self.diffs.iter().all(|d| d.before == d.after)
    }
}

/// Prior state of resources, taken before apply; opaque to everyone but its provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub provider: String,
    pub entries: Vec<(ResourceAddr, Option<serde_json::Value>)>,
}

/// State of resources right after apply; a revert compares against it to detect conflicts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Applied {
    pub provider: String,
    pub entries: Vec<(ResourceAddr, Option<serde_json::Value>)>,
}

/// What a restore put back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Restored {
    pub provider: String,
    pub entries: Vec<(ResourceAddr, Option<serde_json::Value>)>,
}
