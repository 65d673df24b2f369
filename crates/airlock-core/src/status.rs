//! Where an action and a change stand: typed statuses, the same words on the wire, in the
//! journal and in code, so nothing compares them as text.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The kind of a verdict, without its reasons: `allow`, `deny` or `hold`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum VerdictKind {
    Allow,
    Deny,
    Hold,
}

impl VerdictKind {
    /// `allow`, `deny` or `hold`.
    pub fn as_str(self) -> &'static str {
        match self {
            VerdictKind::Allow => "allow",
            VerdictKind::Deny => "deny",
            VerdictKind::Hold => "hold",
        }
    }
}

impl fmt::Display for VerdictKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a change stands after it was applied (or failed to be).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChangeStatus {
    /// Journaled as about to be applied (a write-ahead intent): the provider has been or is
    /// being called, and the outcome is not known yet. After a crash, the gate reads the
    /// resource back and journals what actually happened.
    Applying,
    /// Applied and watched against its SLO rules.
    Baking,
    /// The bake window passed and its rules were judged on data without a breach.
    Settled,
    /// The bake window passed but no rule could be judged (no signal watches the resource,
    /// or every series was missing): live, never looked at, not `settled`.
    Unjudged,
    /// Journaled as about to be restored (a write-ahead intent); the outcome is not known yet.
    Reverting,
    /// Restored to its prior state (a breach, an operator, an undo).
    Reverted,
    /// The provider failed to apply it.
    Failed,
    /// A revert could not finish (a conflict or a provider error): a person must look.
    NeedsAttention,
}

impl ChangeStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [ChangeStatus; 8] = [
        ChangeStatus::Applying,
        ChangeStatus::Baking,
        ChangeStatus::Settled,
        ChangeStatus::Unjudged,
        ChangeStatus::Reverting,
        ChangeStatus::Reverted,
        ChangeStatus::Failed,
        ChangeStatus::NeedsAttention,
    ];

    /// The snake-case word stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeStatus::Applying => "applying",
            ChangeStatus::Baking => "baking",
            ChangeStatus::Settled => "settled",
            ChangeStatus::Unjudged => "unjudged",
            ChangeStatus::Reverting => "reverting",
            ChangeStatus::Reverted => "reverted",
            ChangeStatus::Failed => "failed",
            ChangeStatus::NeedsAttention => "needs_attention",
        }
    }

    /// Whether the change is live in the world and may still be reverted.
    pub fn revertible(self) -> bool {
        matches!(
            self,
            ChangeStatus::Baking | ChangeStatus::Settled | ChangeStatus::Unjudged
        )
    }

    /// Whether the change's outcome is not journaled yet: a write-ahead intent the gate
    /// reconciles on start by reading the resource back.
    pub fn in_flight(self) -> bool {
        matches!(self, ChangeStatus::Applying | ChangeStatus::Reverting)
    }
}

impl fmt::Display for ChangeStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ChangeStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ChangeStatus::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| format!("unknown change status `{s}`"))
    }
}

/// Where an action stands, from submission to its change's last word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActionStatus {
    /// Received; no verdict yet.
    Submitted,
    /// The provider could not plan it (bad target, bad parameters).
    Invalid,
    /// Allowed, and nothing more is known (a read, or an allow without a change yet).
    Allowed,
    /// Allowed and done with no change to watch (a read, a hand-back to a coding agent).
    Done,
    /// Denied by policy, a guard or an operator.
    Denied,
    /// Waiting for an operator.
    Held,
    /// The hold timed out without an operator's answer.
    Expired,
    /// Allowed, and being applied right now: the journal has the intent, not the outcome yet.
    Applying,
    /// Applied and being watched.
    Baking,
    /// Allowed, but applying it failed.
    Failed,
    /// The bake passed.
    Settled,
    /// The bake window passed without any rule judged on data.
    Unjudged,
    /// Being reverted right now: the journal has the intent, not the outcome yet.
    Reverting,
    /// Reverted.
    Reverted,
    /// A revert could not finish: a person must look.
    NeedsAttention,
}

impl ActionStatus {
    /// Every status.
    pub const ALL: [ActionStatus; 15] = [
        ActionStatus::Submitted,
        ActionStatus::Invalid,
        ActionStatus::Allowed,
        ActionStatus::Done,
        ActionStatus::Denied,
        ActionStatus::Held,
        ActionStatus::Expired,
        ActionStatus::Applying,
        ActionStatus::Baking,
        ActionStatus::Failed,
        ActionStatus::Settled,
        ActionStatus::Unjudged,
        ActionStatus::Reverting,
        ActionStatus::Reverted,
        ActionStatus::NeedsAttention,
    ];

    /// The snake-case word on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionStatus::Submitted => "submitted",
            ActionStatus::Invalid => "invalid",
            ActionStatus::Allowed => "allowed",
            ActionStatus::Done => "done",
            ActionStatus::Denied => "denied",
            ActionStatus::Held => "held",
            ActionStatus::Expired => "expired",
            ActionStatus::Applying => "applying",
            ActionStatus::Baking => "baking",
            ActionStatus::Failed => "failed",
            ActionStatus::Settled => "settled",
            ActionStatus::Unjudged => "unjudged",
            ActionStatus::Reverting => "reverting",
            ActionStatus::Reverted => "reverted",
            ActionStatus::NeedsAttention => "needs_attention",
        }
    }

    /// Whether nothing more will happen to the action by itself.
    pub fn is_final(self) -> bool {
        !matches!(
            self,
            ActionStatus::Submitted
                | ActionStatus::Held
                | ActionStatus::Applying
                | ActionStatus::Baking
                | ActionStatus::Reverting
        )
    }
}

impl From<ChangeStatus> for ActionStatus {
    fn from(c: ChangeStatus) -> Self {
        match c {
            ChangeStatus::Applying => ActionStatus::Applying,
            ChangeStatus::Reverting => ActionStatus::Reverting,
            ChangeStatus::Baking => ActionStatus::Baking,
            ChangeStatus::Settled => ActionStatus::Settled,
            ChangeStatus::Unjudged => ActionStatus::Unjudged,
            ChangeStatus::Reverted => ActionStatus::Reverted,
            ChangeStatus::Failed => ActionStatus::Failed,
            ChangeStatus::NeedsAttention => ActionStatus::NeedsAttention,
        }
    }
}

impl fmt::Display for ActionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ActionStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ActionStatus::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| {
                let all: Vec<&str> = ActionStatus::ALL.iter().map(|a| a.as_str()).collect();
                format!("unknown status `{s}`: one of {}", all.join(", "))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip_through_serde_and_from_str() {
        for s in ActionStatus::ALL {
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
            assert_eq!(s.as_str().parse::<ActionStatus>().unwrap(), s);
        }
        for c in ChangeStatus::ALL {
            assert_eq!(serde_json::to_value(c).unwrap(), c.as_str());
            assert_eq!(c.as_str().parse::<ChangeStatus>().unwrap(), c);
            assert_eq!(ActionStatus::from(c).as_str(), c.as_str());
        }
        assert!("stalled".parse::<ActionStatus>().is_err());
        assert_eq!(serde_json::to_value(VerdictKind::Hold).unwrap(), "hold");
    }
}
