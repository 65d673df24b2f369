//! Pending approvals survive a restart: they are read back from the journal, where every
//! hold and every answer to one is recorded, rather than kept only in the process that
//! made them.
//!
//! A hold is open when its verdict (`hold`, with an approval id) has no final answer in the
//! journal: an `approval` event that is not a partial `recorded: N of M approvals` (which
//! only adds its operator to the approvers). Holds older than the longest hold timeout are
//! not looked for: `Gate::restore_controls` journals them expired (run it after this).

use crate::engine::{Gate, GateError, PendingApproval, Permit, PlanView, lock};
use airlock_core::{ActionRequest, EventKind, NewEvent, Risk};
use airlock_store::EventQuery;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// Events are read newest first in pages of this many.
const PAGE: u32 = 500;

/// Whether a journaled value had a secret taken out of it.
fn redacted(v: &Value) -> bool {
    match v {
        Value::String(s) => s == "[redacted]",
        Value::Array(a) => a.iter().any(redacted),
        Value::Object(m) => m.values().any(redacted),
        _ => false,
    }
}

impl Gate {
    /// Every event of `kind` newer than `since` (ms), newest first.
    pub(crate) async fn recent(
        &self,
        kind: EventKind,
        since: i64,
    ) -> Result<Vec<airlock_core::Event>, GateError> {
        let mut out = Vec::new();
        let mut after = None;
        loop {
            let page = self
                .journal
                .read(EventQuery {
                    after_seq: after,
                    limit: Some(PAGE),
                    kind: Some(kind),
                    descending: true,
                    ..EventQuery::default()
                })
                .await?;
            let full = page.len() as u32 == PAGE;
            for e in page {
                if e.ts < since {
                    return Ok(out);
                }
                after = Some(e.seq);
                out.push(e);
            }
            if !full {
                return Ok(out);
            }
        }
    }

    /// Puts back the holds the journal shows open; returns how many. Run before
    /// `restore_controls`, which expires every open hold not put back. A held request whose
    /// journaled copy had secrets taken out cannot be approved as it was asked: it is
    /// denied with that reason (the agent asks again) rather than approved with holes.
    pub async fn restore_holds(&self) -> Result<usize, GateError> {
        // A replica leaves another replica's unreadable holds to it.
        self.read_back_holds(!self.is_replica()).await
    }

    /// [`Gate::restore_holds`]; with `expire_unreadable` false (a replica reading another
    /// replica's holds), a hold whose request cannot be read back whole is left to the
    /// replica that holds it rather than expired.
    pub(crate) async fn read_back_holds(
        &self,
        expire_unreadable: bool,
    ) -> Result<usize, GateError> {
        let now = self.clock.now();
        let window = self
            .config
            .hold_timeout_s
            .max(self.config.handoff_hold_timeout_s) as i64
            * 1000;
        let since = now - window;
        // Answers first: which holds are closed, and who approved the open ones so far.
        let mut closed = BTreeSet::new();
        let mut approvers: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for e in self.recent(EventKind::Approval, since).await? {
            let Some(id) = e.payload["approval_id"].as_str() else {
                continue;
            };
            let outcome = e.payload["outcome"].as_str().unwrap_or_default();
            if outcome.starts_with("recorded:") {
                if let Some(by) = e.payload["by"].as_str() {
                    approvers
                        .entry(id.to_string())
                        .or_default()
                        .push(by.to_string());
                }
            } else {
                closed.insert(id.to_string());
            }
        }
        let mut restored = 0;
        for v in self.recent(EventKind::Verdict, since).await? {
            let p = &v.payload;
            let (Some(id), Some(action), Some(agent)) = (
                p["approval_id"].as_str(),
                v.action_id.as_deref(),
                v.agent.as_deref(),
            ) else {
                continue;
            };
            if p["verdict"] != "hold"
                || closed.contains(id)
                || lock(&self.approvals).contains_key(id)
            {
                continue;
            }
            let request_ev = self
                .journal
                .read(EventQuery {
                    kind: Some(EventKind::Request),
                    action_id: Some(action.to_string()),
                    limit: Some(1),
                    ..EventQuery::default()
                })
                .await?;
            let Some(req_ev) = request_ev.first() else {
                continue;
            };
            let request: Option<ActionRequest> = (!redacted(&req_ev.payload["request"]))
                .then(|| serde_json::from_value(req_ev.payload["request"].clone()).ok())
                .flatten();
            let plan: Option<PlanView> =
                serde_json::from_value(req_ev.payload["plan"].clone()).ok();
            let (Some(request), Some(plan)) = (request, plan) else {
                if !expire_unreadable {
                    continue;
                }
                self.journal
                    .append(
                        NewEvent::new(
                            now,
                            EventKind::Approval,
                            json!({"approval_id": id, "decision": "deny", "by": "restart",
                                   "outcome": "expired: the held request cannot be read back whole after a restart (secrets are not journaled); ask again"}),
                        )
                        .agent(agent)
                        .action(action),
                    )
                    .await?;
                continue;
            };
            let risk: Risk = serde_json::from_value(p["risk"].clone()).unwrap_or(Risk::Critical);
            let strings = |v: &Value| -> Vec<String> {
                v.as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default()
            };
            let mut who = approvers.remove(id).unwrap_or_default();
            who.reverse();
            who.dedup();
            lock(&self.approvals).insert(
                id.to_string(),
                PendingApproval {
                    id: id.to_string(),
                    action_id: action.to_string(),
                    agent: agent.to_string(),
                    request,
                    plan_hash: p["plan_hash"].as_str().unwrap_or_default().to_string(),
                    created_at: v.ts,
                    risk,
                    reasons: strings(&p["reasons"]),
                    details: strings(&p["details"]),
                    plan,
                    approvers: who,
                },
            );
            restored += 1;
        }
        if restored > 0 {
            tracing::info!(
                holds = restored,
                "pending approvals read back from the journal"
            );
        }
        Ok(restored)
    }
}

/// The outcome an approval of a hands-off action is journaled with.
const PERMIT_GRANTED: &str = "approved: the agent's next identical request";

impl Gate {
    /// Puts back the one-shot permits of hands-off approvals that are unexpired and unused:
    /// an operator approved a command the agent runs itself, the server restarted, and the
    /// agent's identical retry must still be allowed once. Returns how many.
    pub async fn restore_permits(&self) -> Result<usize, GateError> {
        let now = self.clock.now();
        let ttl = self.config.permit_ttl_s as i64 * 1000;
        let since = now - ttl;
        let used: BTreeSet<String> = self
            .recent(EventKind::Verdict, since)
            .await?
            .iter()
            .filter_map(|v| v.payload["permit"].as_str().map(str::to_string))
            .collect();
        let mut restored = 0;
        for a in self.recent(EventKind::Approval, since).await? {
            let p = &a.payload;
            let (Some(id), Some(action)) = (p["approval_id"].as_str(), a.action_id.as_deref())
            else {
                continue;
            };
            if !p["outcome"]
                .as_str()
                .unwrap_or_default()
                .starts_with(PERMIT_GRANTED)
                || used.contains(id)
            {
                continue;
            }
            // The hold's verdict: whose request, bound to which plan.
            let verdicts = self
                .journal
                .read(EventQuery {
                    kind: Some(EventKind::Verdict),
                    action_id: Some(action.to_string()),
                    ..EventQuery::default()
                })
                .await?;
            let Some(hold) = verdicts.iter().find(|v| v.payload["approval_id"] == id) else {
                continue;
            };
            let (Some(agent), Some(hash)) =
                (hold.agent.as_deref(), hold.payload["plan_hash"].as_str())
            else {
                continue;
            };
            let by = format!("{}:{id}", p["by"].as_str().unwrap_or("operator"));
            lock(&self.permits)
                .entry((agent.to_string(), hash.to_string()))
                .or_insert(Permit {
                    approval_id: id.to_string(),
                    by,
                    expires_at: a.ts + ttl,
                    applied: None,
                });
            restored += 1;
        }
        Ok(restored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redacted_value_is_found_at_any_depth() {
        assert!(redacted(&json!({"params": {"token": "[redacted]"}})));
        assert!(redacted(&json!([1, {"a": ["[redacted]"]}])));
        assert!(!redacted(&json!({"params": {"replicas": 3}})));
    }
}
