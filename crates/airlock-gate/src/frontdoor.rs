//! The front door: the one service every protocol adapter calls — the HTTP API, the MCP
//! gateway, the coding-agent hook and the proving ground's external agents. It
//! authenticates, checks that the caller is an agent, submits, waits for an outcome, and
//! answers in one typed form ([`ActionView`]). Adapters only parse their protocol.

#[cfg(feature = "mcp")]
pub mod mcp;
pub mod schema;
pub mod tools;
mod view;

pub use tools::{CallError, Catalog, HoldNotice, Route, ToolAnswer, ToolDef, answer, answer_with};
pub use view::{ActionView, Waited, action_view};

use crate::bake::BakeOutcome;
use crate::engine::{Decision, Gate, GateError, Principal, PrincipalKind2};
use crate::feed::Notifying;
use airlock_core::{ActionRequest, ActionStatus, Event, EventKind, VerdictKind};
use airlock_store::StoreError;
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::broadcast;

/// Sees every decision and bake outcome that passes the front door (metrics, logs).
pub trait Observer: Send + Sync {
    /// A submission was decided in `elapsed` (real time).
    fn decided(&self, decision: &Decision, elapsed: Duration);
    /// A change settled, was reverted or needs attention.
    fn baked(&self, outcome: &BakeOutcome);
}

/// An observer that looks away.
pub struct NoObserver;

impl Observer for NoObserver {
    fn decided(&self, _: &Decision, _: Duration) {}
    fn baked(&self, _: &BakeOutcome) {}
}

/// The token of an `Authorization` header value `Bearer TOKEN` (scheme case-insensitive).
/// The one parser of bearer tokens: every door that reads HTTP headers calls it.
pub fn bearer_token(header_value: &str) -> Option<&str> {
    let scheme = header_value.get(..7)?;
    if !scheme.eq_ignore_ascii_case("bearer ") {
        return None;
    }
    let token = header_value[7..].trim();
    (!token.is_empty()).then_some(token)
}

/// The front door's settings.
#[derive(Debug, Clone)]
pub struct DoorConfig {
    /// Longest any caller may wait for an outcome.
    pub max_wait: Duration,
    /// How long a held tool call waits for an operator before answering `held`.
    pub tool_hold_wait: Duration,
}

impl Default for DoorConfig {
    fn default() -> Self {
        Self {
            max_wait: Duration::from_secs(600),
            tool_hold_wait: Duration::ZERO,
        }
    }
}

/// The front-door service.
pub struct FrontDoor {
    gate: Arc<Gate>,
    feed: Arc<Notifying>,
    tools: Arc<Catalog>,
    observer: Arc<dyn Observer>,
    config: DoorConfig,
}

#[expect(
    clippy::disallowed_methods,
    reason = "decision latency is measured in real time"
)]
fn started() -> Instant {
    Instant::now()
}

impl FrontDoor {
    /// A front door to `gate`, whose journal is `feed` (so waits see every event).
    pub fn new(
        gate: Arc<Gate>,
        feed: Arc<Notifying>,
        tools: Arc<Catalog>,
        observer: Arc<dyn Observer>,
        config: DoorConfig,
    ) -> Self {
        Self {
            gate,
            feed,
            tools,
            observer,
            config,
        }
    }

    /// The gate behind the door (operator actions: freeze, kill switch, tokens).
    pub fn gate(&self) -> &Arc<Gate> {
        &self.gate
    }

    /// The journal, with its event feed.
    pub fn feed(&self) -> &Arc<Notifying> {
        &self.feed
    }

    /// The tools on offer.
    pub fn tools(&self) -> &Arc<Catalog> {
        &self.tools
    }

    /// The settings.
    pub fn config(&self) -> &DoorConfig {
        &self.config
    }

    /// Who holds `token`.
    pub async fn authenticate(&self, token: &str) -> Result<Principal, GateError> {
        self.gate.authenticate(token).await
    }

    /// Who holds `token`, who must be an agent: operators approve, they never act.
    pub async fn agent(&self, token: &str) -> Result<Principal, GateError> {
        self.gate.authenticate(token).await?.require_agent()
    }

    /// Decides (and, when allowed, applies) an agent's request.
    pub async fn submit(
        &self,
        agent: &Principal,
        req: ActionRequest,
    ) -> Result<Decision, GateError> {
        let t0 = started();
        let d = self.gate.submit_as(&agent.name, req).await?;
        self.observer.decided(&d, t0.elapsed());
        Ok(d)
    }

    /// Records that an action the agent carried out itself (a hook's) ran: see
    /// [`Gate::ran`](crate::Gate::ran).
    pub async fn ran(
        &self,
        agent: &Principal,
        req: ActionRequest,
        succeeded: Option<bool>,
    ) -> Result<crate::RanReport, GateError> {
        self.gate.ran(&agent.name, req, succeeded).await
    }

    /// Submits, then waits up to `wait` (capped by `max_wait`) for what can be waited for:
    /// an operator's answer to a hold, or the end of an applied change's bake.
    pub async fn submit_and_wait(
        &self,
        agent: &Principal,
        req: ActionRequest,
        wait: Option<Duration>,
    ) -> Result<ActionView, GateError> {
        // Subscribe before deciding, so no event of this action is missed.
        let rx = wait.map(|_| self.feed.subscribe());
        let d = self.submit(agent, req).await?;
        match (wait, rx) {
            (Some(limit), Some(rx)) if waitable(&d) => {
                let limit = limit.min(self.config.max_wait);
                Ok(self.wait_for_outcome(rx, &d, limit).await?)
            }
            _ => Ok(ActionView::from(&d)),
        }
    }

    /// An action's view, for its agent or an operator; `NotFound` otherwise.
    pub async fn action(&self, caller: &Principal, id: &str) -> Result<ActionView, GateError> {
        let view = action_view(self.feed.as_ref(), id)
            .await?
            .ok_or_else(|| GateError::NotFound("action", id.to_string()))?;
        if caller.kind == PrincipalKind2::Agent && view.agent != caller.name {
            return Err(GateError::Forbidden(format!(
                "agent `{}`: agents may see only their own actions",
                caller.name
            )));
        }
        Ok(view)
    }

    /// A tool call by the holder of `token`: mapped onto a request, decided, and, for a
    /// hold, waited on for `tool_hold_wait`.
    pub async fn call_tool(
        &self,
        token: &str,
        name: &str,
        args: Option<Map<String, Value>>,
    ) -> Result<(ActionView, Route), CallError> {
        let who = self.agent(token).await?;
        let route = self
            .tools
            .get(name)
            .map(|t| t.route.clone())
            .ok_or_else(|| CallError::UnknownTool(name.to_string()))?;
        let req = self.tools.request(name, args)?;
        let wait = (!self.config.tool_hold_wait.is_zero()).then_some(self.config.tool_hold_wait);
        let rx = wait.map(|_| self.feed.subscribe());
        let d = self
            .submit(&who, req)
            .await
            .map_err(|e| match CallError::from(e) {
                CallError::InvalidArguments { problems, .. } => CallError::InvalidArguments {
                    tool: name.to_string(),
                    problems,
                },
                other => other,
            })?;
        let view = match (wait, rx) {
            (Some(limit), Some(rx)) if d.verdict == VerdictKind::Hold => self
                .wait_for_outcome(rx, &d, limit)
                .await
                .map_err(|e| CallError::Unavailable(e.to_string()))?,
            _ => ActionView::from(&d),
        };
        Ok((view, route))
    }

    /// Resolves a hold by an operator; an approval that lets the action through is counted
    /// as a decision.
    pub async fn resolve(
        &self,
        approval_id: &str,
        approver: &Principal,
        approve: bool,
        reason: &str,
    ) -> Result<Decision, GateError> {
        let t0 = started();
        let d = self
            .gate
            .resolve(approval_id, approver, approve, reason)
            .await?;
        if approve && d.verdict != VerdictKind::Hold {
            self.observer.decided(&d, t0.elapsed());
        }
        Ok(d)
    }

    /// Reverts a change by an operator's hand.
    pub async fn revert(&self, change_id: &str, by: &str) -> Result<BakeOutcome, GateError> {
        let o = self.gate.revert(change_id, by).await?;
        self.observer.baked(&o);
        Ok(o)
    }

    /// Reverts an agent's changes since `since`, newest first, stopping at a conflict.
    pub async fn undo(
        &self,
        agent: &str,
        since: i64,
        by: &str,
    ) -> Result<Vec<BakeOutcome>, GateError> {
        let outcomes = self.gate.undo(agent, since, by).await?;
        for o in &outcomes {
            self.observer.baked(o);
        }
        Ok(outcomes)
    }

    /// One bake poll, every outcome observed.
    pub async fn poll(&self) -> Result<Vec<BakeOutcome>, GateError> {
        let outcomes = self.gate.poll().await?;
        for o in &outcomes {
            self.observer.baked(o);
        }
        Ok(outcomes)
    }

    /// Waits (up to `limit`) until an operator answers a hold or an applied change finishes
    /// baking, then returns the action's view with `waited`. `rx` must have been subscribed
    /// before the decision was made, so no event is missed.
    pub async fn wait_for_outcome(
        &self,
        mut rx: broadcast::Receiver<Event>,
        decision: &Decision,
        limit: Duration,
    ) -> Result<ActionView, StoreError> {
        let action_id = decision.id.clone();
        let mut change_id = decision.change_id.clone();
        let waited = tokio::time::timeout(limit, async {
            loop {
                match rx.recv().await {
                    Ok(ev) => {
                        let ours = ev.action_id.as_deref() == Some(&action_id)
                            || (change_id.is_some() && ev.change_id == change_id);
                        if ours && ends(&ev, &mut change_id) {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        })
        .await;
        let mut view = action_view(self.feed.as_ref(), &action_id)
            .await?
            .unwrap_or_else(|| ActionView::from(decision));
        view.waited = Some(if waited.is_ok() {
            Waited::Done
        } else {
            Waited::Timeout
        });
        Ok(view)
    }
}

/// Whether a decision has an outcome to wait for: a hold (an operator's answer) or an
/// applied change (its bake).
fn waitable(d: &Decision) -> bool {
    matches!(d.status(), ActionStatus::Held | ActionStatus::Baking)
}

/// Whether `ev` (one of the action's events) ends the wait; remembers the change id.
fn ends(ev: &Event, change_id: &mut Option<String>) -> bool {
    match ev.kind {
        EventKind::Applied => {
            change_id.clone_from(&ev.change_id);
            false
        }
        EventKind::Settled
        | EventKind::Unjudged
        | EventKind::Reverted
        | EventKind::NeedsAttention
        | EventKind::RevertFailed
        | EventKind::ApplyFailed => true,
        EventKind::Approval => {
            let outcome = ev
                .payload
                .get("outcome")
                .and_then(Value::as_str)
                .unwrap_or("");
            outcome == "denied" || outcome == "expired" || outcome.starts_with("refused")
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::bearer_token;

    #[test]
    fn bearer_tokens_parse_in_one_place() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer   abc  "), Some("abc"));
        assert_eq!(bearer_token("BEARER abc"), Some("abc"));
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearerabc"), None);
        assert_eq!(bearer_token(""), None);
    }
}
