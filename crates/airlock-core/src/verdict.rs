//! The verdict rule: policy outcome and guard findings combined into one answer.

use crate::guard::{GuardEffect, GuardFinding};
use crate::policy::PolicyOutcome;
use serde::{Deserialize, Serialize};

/// The gate's answer to a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", content = "reasons", rename_all = "lowercase")]
pub enum Verdict {
    Allow,
    Deny(Vec<String>),
    Hold(Vec<String>),
}

impl Verdict {
    /// `allow`, `deny` or `hold`.
    pub fn name(&self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Deny(_) => "deny",
            Verdict::Hold(_) => "hold",
        }
    }
    /// The kind, without reasons.
    pub fn kind(&self) -> crate::VerdictKind {
        match self {
            Verdict::Allow => crate::VerdictKind::Allow,
            Verdict::Deny(_) => crate::VerdictKind::Deny,
            Verdict::Hold(_) => crate::VerdictKind::Hold,
        }
    }
    /// The reasons (policy ids and guard ids); empty for allow.
    pub fn reasons(&self) -> &[String] {
        match self {
            Verdict::Allow => &[],
            Verdict::Deny(r) | Verdict::Hold(r) => r,
        }
    }
}

/// Combines a policy outcome with guard findings. Any deny wins; otherwise any hold holds
/// (unless an operator approved this exact plan, which lifts holds but never denies).
pub fn combine(policy: PolicyOutcome, guards: &[GuardFinding], approved: bool) -> Verdict {
    let mut deny: Vec<String> = Vec::new();
    let mut hold: Vec<String> = Vec::new();
    match policy {
        PolicyOutcome::Allow(_) => {}
        PolicyOutcome::Deny(r) => deny.extend(r),
        PolicyOutcome::Hold(r) => hold.extend(r),
    }
    for f in guards {
        match f.effect {
            GuardEffect::Deny => deny.push(f.id.to_string()),
            GuardEffect::Hold => hold.push(f.id.to_string()),
        }
    }
    if !deny.is_empty() {
        Verdict::Deny(deny)
    } else if !hold.is_empty() && !approved {
        Verdict::Hold(hold)
    } else {
        Verdict::Allow
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deny_beats_hold_and_approval_lifts_only_holds() {
        let g = [GuardFinding {
            id: "breaker-open",
            effect: GuardEffect::Hold,
            detail: String::new(),
            retry_after_s: None,
        }];
        assert_eq!(
            combine(PolicyOutcome::Allow(vec![]), &g, false),
            Verdict::Hold(vec!["breaker-open".into()])
        );
        assert_eq!(
            combine(PolicyOutcome::Allow(vec![]), &g, true),
            Verdict::Allow
        );
        assert_eq!(
            combine(PolicyOutcome::Deny(vec!["x".into()]), &g, true),
            Verdict::Deny(vec!["x".into()])
        );
        let json = serde_json::to_string(&Verdict::Hold(vec!["p".into()])).unwrap();
        assert_eq!(json, r#"{"verdict":"hold","reasons":["p"]}"#);
    }
}
