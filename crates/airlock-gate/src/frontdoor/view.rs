//! An action as a caller sees it: the answer to a submission, and the same shape rebuilt
//! from the journal for a status query, so every door answers in one typed form.

use crate::engine::Decision;
use airlock_core::{ActionStatus, EventKind, Risk, VerdictKind};
use airlock_store::{EventQuery, Journal, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Whether a wait for the action's outcome ended with the outcome or with the time limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Waited {
    Done,
    Timeout,
}

/// An action: its verdict, reasons, plan and where it stands now. The wire format of
/// every door's answer (HTTP body, MCP structured content, what the hook reads back).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ActionView {
    /// The action id (`act_…`).
    pub id: String,
    pub agent: String,
    /// `null` until a verdict is journaled (an invalid request never gets one).
    pub verdict: Option<VerdictKind>,
    #[serde(default)]
    pub reasons: Vec<String>,
    /// Human explanations of the reasons.
    #[serde(default)]
    pub details: Vec<String>,
    pub risk: Option<Risk>,
    /// The plan as decided (diffs, blast, headroom, reversible, destructive, hash);
    /// `null` when the provider could not plan the request.
    #[schema(value_type = Option<crate::engine::PlanView>)]
    pub plan: Option<Value>,
    /// Set on a hold (`apr_…`): the id operators approve or deny.
    pub approval_id: Option<String>,
    /// Set when a mutation was applied (`chg_…`).
    pub change_id: Option<String>,
    /// What a read returned or what an applied change left behind (the new state, or a
    /// proxied tool's answer).
    #[serde(default)]
    #[schema(value_type = Value)]
    pub result: Option<Value>,
    /// Why an allowed action failed, or why the request was invalid.
    #[serde(default)]
    pub error: Option<String>,
    /// For a refused request with numeric parameters: the nearest version the gate would
    /// allow now (send its `params` instead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counter_offer: Option<crate::engine::CounterOffer>,
    /// For a rate-limited request: seconds until the same request fits the limit again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_s: Option<u64>,
    pub status: ActionStatus,
    /// The request as journaled (redacted); in status views only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<airlock_core::ActionRequest>)]
    pub request: Option<Value>,
    /// When it was submitted (ms since the epoch); in status views only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submitted_at: Option<i64>,
    /// How many journal events it has; in status views only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<usize>,
    /// Set when the caller waited for the outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waited: Option<Waited>,
}

impl From<&Decision> for ActionView {
    fn from(d: &Decision) -> Self {
        Self {
            id: d.id.clone(),
            agent: d.agent.clone(),
            verdict: Some(d.verdict),
            reasons: d.reasons.clone(),
            details: d.details.clone(),
            risk: Some(d.risk),
            plan: d.plan.as_ref().and_then(|p| serde_json::to_value(p).ok()),
            approval_id: d.approval_id.clone(),
            change_id: d.change_id.clone(),
            result: d.result.clone(),
            error: d.error.clone(),
            counter_offer: d.counter_offer.clone(),
            retry_after_s: d.retry_after_s,
            status: d.status(),
            request: None,
            submitted_at: None,
            events: None,
            waited: None,
        }
    }
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The state of an action, rebuilt from its journal events; `None` for an unknown id.
pub async fn action_view(
    journal: &dyn Journal,
    id: &str,
) -> Result<Option<ActionView>, StoreError> {
    let events = journal
        .read(EventQuery {
            action_id: Some(id.to_string()),
            ..Default::default()
        })
        .await?;
    let Some(first) = events.first() else {
        return Ok(None);
    };
    let mut view = ActionView {
        id: id.to_string(),
        agent: first.agent.clone().unwrap_or_default(),
        verdict: None,
        reasons: Vec::new(),
        details: Vec::new(),
        risk: first
            .payload
            .get("risk")
            .and_then(|r| serde_json::from_value(r.clone()).ok()),
        plan: first.payload.get("plan").cloned(),
        approval_id: None,
        change_id: None,
        result: None,
        error: None,
        counter_offer: None,
        retry_after_s: None,
        status: ActionStatus::Submitted,
        request: first.payload.get("request").cloned(),
        submitted_at: Some(first.ts),
        events: Some(events.len()),
        waited: None,
    };
    for ev in &events {
        let status = match ev.kind {
            EventKind::Request if ev.payload.get("error").is_some() => {
                view.error = ev.payload["error"].as_str().map(str::to_string);
                Some(ActionStatus::Invalid)
            }
            EventKind::Verdict => {
                let kind: Option<VerdictKind> = ev
                    .payload
                    .get("verdict")
                    .and_then(|v| serde_json::from_value(v.clone()).ok());
                view.verdict = kind;
                view.reasons = strings(ev.payload.get("reasons"));
                view.details = strings(ev.payload.get("details"));
                if let Some(a) = ev.payload.get("approval_id").and_then(Value::as_str) {
                    view.approval_id = Some(a.to_string());
                }
                view.counter_offer = ev
                    .payload
                    .get("counter_offer")
                    .and_then(|c| serde_json::from_value(c.clone()).ok());
                view.retry_after_s = ev.payload.get("retry_after_s").and_then(Value::as_u64);
                Some(match kind {
                    Some(VerdictKind::Deny) | None => ActionStatus::Denied,
                    Some(VerdictKind::Hold) => ActionStatus::Held,
                    Some(VerdictKind::Allow) => ActionStatus::Allowed,
                })
            }
            EventKind::Approval => match ev.payload.get("outcome").and_then(Value::as_str) {
                Some("denied") => Some(ActionStatus::Denied),
                Some(o) if o.starts_with("expired") => Some(ActionStatus::Expired),
                // An approval of what the agent carries out itself: a permit, nothing more.
                Some(o) if o.starts_with("approved: ") => Some(ActionStatus::Done),
                _ => None,
            },
            EventKind::Applied => {
                view.change_id = ev.change_id.clone();
                Some(ActionStatus::Baking)
            }
            EventKind::ApplyFailed => {
                view.error = ev
                    .payload
                    .get("error")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                Some(ActionStatus::Failed)
            }
            EventKind::Settled => Some(ActionStatus::Settled),
            EventKind::Reverted => Some(ActionStatus::Reverted),
            EventKind::NeedsAttention | EventKind::RevertFailed => {
                Some(ActionStatus::NeedsAttention)
            }
            _ => None,
        };
        if let Some(st) = status {
            view.status = st;
        }
    }
    if let Some(cid) = view.change_id.clone() {
        // Later events of the change (breach, revert) carry the action id too, but a manual
        // revert or undo may come later: the change row has the final word.
        if let Some(rec) = journal.change(&cid).await? {
            view.status = rec.status.into();
        }
    }
    Ok(Some(view))
}
