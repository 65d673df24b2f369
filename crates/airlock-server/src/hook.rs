//! Coding-agent hooks: the adapter that reads a PreToolUse event, asks the gate about each
//! request it maps onto (the mapping and the `shell`/`tool` providers live in
//! `airlock-shell`), and answers in the hook protocol: the most restrictive answer wins, and
//! whatever goes wrong, the answer is `deny`. A PostToolUse event reports that the call
//! ran, so the journal knows what happened and a hold answered at the agent's prompt
//! leaves the operators' queue.

use crate::config::{HookAnswer, RawHook};
use airlock_core::{ActionRequest, VerdictKind};
use airlock_gate::FrontDoor;
use airlock_gate::frontdoor::ActionView;
use airlock_shell::detect_env;
use airlock_shell::hook::{HookEvent, requests};
use serde_json::{Value, json};
use std::sync::Arc;

/// Where the hook's requests are decided.
pub enum HookGate {
    /// This process's gate, through its front door.
    Local(Arc<FrontDoor>),
    /// A running `airlock serve`.
    Remote { base: String, http: reqwest::Client },
}

impl HookGate {
    /// Checks that `token` is an agent's, before anything else is looked at.
    async fn authenticate(&self, token: &str) -> Result<(), String> {
        match self {
            HookGate::Local(door) => door
                .agent(token)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            HookGate::Remote { base, http } => {
                let resp = http
                    .get(format!("{base}/v1/whoami"))
                    .bearer_auth(token)
                    .send()
                    .await
                    .map_err(|e| format!("cannot reach {base}: {e}"))?;
                let status = resp.status();
                let v: Value = resp.json().await.unwrap_or_default();
                if !status.is_success() {
                    return Err(v["error"]["message"]
                        .as_str()
                        .unwrap_or("the server refused the token")
                        .to_string());
                }
                if v["kind"] != "agent" {
                    return Err(format!(
                        "`{}` is not an agent: hooks decide for agents; operators approve",
                        v["name"].as_str().unwrap_or("?")
                    ));
                }
                Ok(())
            }
        }
    }

    /// Reports that a request the agent was handed back ran.
    async fn ran(
        &self,
        token: &str,
        req: &ActionRequest,
        succeeded: Option<bool>,
    ) -> Result<(), String> {
        match self {
            HookGate::Local(door) => {
                let who = door.agent(token).await.map_err(|e| e.to_string())?;
                door.ran(&who, req.clone(), succeeded)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
            HookGate::Remote { base, http } => {
                let resp = http
                    .post(format!("{base}/v1/actions/ran"))
                    .bearer_auth(token)
                    .json(&json!({"request": req, "succeeded": succeeded}))
                    .send()
                    .await
                    .map_err(|e| format!("cannot reach {base}: {e}"))?;
                if resp.status().is_success() {
                    Ok(())
                } else {
                    let v: Value = resp.json().await.unwrap_or_default();
                    Err(v["error"]["message"]
                        .as_str()
                        .unwrap_or("the server refused")
                        .to_string())
                }
            }
        }
    }

    async fn submit(&self, token: &str, req: &ActionRequest) -> Result<ActionView, String> {
        match self {
            HookGate::Local(door) => {
                let who = door.agent(token).await.map_err(|e| e.to_string())?;
                let d = door
                    .submit(&who, req.clone())
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(ActionView::from(&d))
            }
            HookGate::Remote { base, http } => {
                let resp = http
                    .post(format!("{base}/v1/actions"))
                    .bearer_auth(token)
                    .json(req)
                    .send()
                    .await
                    .map_err(|e| format!("cannot reach {base}: {e}"))?;
                let status = resp.status();
                let v: Value = resp.json().await.map_err(|e| e.to_string())?;
                if status.is_success() {
                    serde_json::from_value(v)
                        .map_err(|e| format!("the server's answer does not parse: {e}"))
                } else {
                    Err(v["error"]["message"]
                        .as_str()
                        .unwrap_or("the server refused")
                        .to_string())
                }
            }
        }
    }
}

fn severity(a: HookAnswer) -> u8 {
    match a {
        HookAnswer::Allow => 0,
        HookAnswer::Ask => 1,
        HookAnswer::Deny => 2,
    }
}

fn name(a: HookAnswer) -> &'static str {
    match a {
        HookAnswer::Allow => "allow",
        HookAnswer::Ask => "ask",
        HookAnswer::Deny => "deny",
    }
}

/// The hook's answer in the PreToolUse protocol.
pub fn output(answer: HookAnswer, reason: &str) -> Value {
    json!({"hookSpecificOutput": {
        "hookEventName": "PreToolUse",
        "permissionDecision": name(answer),
        "permissionDecisionReason": reason,
    }})
}

/// Decides one event: every request through the gate, the most restrictive answer wins.
/// Whatever goes wrong, the answer is `deny` with the reason, never a silent allow.
pub async fn decide(raw: &str, cfg: &RawHook, gate: &HookGate, token: Option<&str>) -> Value {
    match decide_inner(raw, cfg, gate, token).await {
        Ok(v) => v,
        Err(e) => output(
            HookAnswer::Deny,
            &format!("Airlock could not decide, so it denies: {e}"),
        ),
    }
}

async fn decide_inner(
    raw: &str,
    cfg: &RawHook,
    gate: &HookGate,
    token: Option<&str>,
) -> Result<Value, String> {
    let ev: HookEvent =
        serde_json::from_str(raw).map_err(|e| format!("the hook event does not parse: {e}"))?;
    if ev.hook_event_name == "PostToolUse" {
        return post_tool_use(raw, &ev, gate, token).await;
    }
    if ev.hook_event_name != "PreToolUse" {
        return Ok(json!({}));
    }
    let planned = requests(&ev)?;
    let token = token.ok_or("no agent token: set AIRLOCK_TOKEN in the hook's environment")?;
    // Who asks comes before any shortcut: even a call that needs no decision is answered
    // only for an agent.
    if let Some(why) = planned.skip {
        gate.authenticate(token).await?;
        return Ok(output(HookAnswer::Allow, &format!("Airlock: {why}")));
    }
    let mut worst = HookAnswer::Allow;
    let mut lines = Vec::new();
    for (req, unknown) in &planned.requests {
        let (d, unknown) = match aws_planned(gate, token, req).await {
            Some(d) => (d, &false),
            None => (gate.submit(token, req).await?, unknown),
        };
        let verdict = d.verdict.unwrap_or(VerdictKind::Deny);
        let mut answer = match verdict {
            VerdictKind::Allow => HookAnswer::Allow,
            VerdictKind::Hold => cfg.on_hold,
            VerdictKind::Deny => HookAnswer::Deny,
        };
        let what = req
            .params
            .get("segment")
            .and_then(Value::as_str)
            .unwrap_or(req.target.name())
            .to_string();
        let reasons = &d.reasons;
        let mut line = format!("`{what}`: {verdict}");
        if !reasons.is_empty() {
            line.push_str(&format!(" ({})", reasons.join(", ")));
        }
        // Why, with the values, and what would pass.
        for detail in &d.details {
            line.push_str(&format!("; {detail}"));
        }
        if let Some(after) = d.retry_after_s {
            line.push_str(&format!("; retry after {after} s"));
        }
        if let Some(apr) = &d.approval_id {
            line.push_str(&match gate {
                HookGate::Remote { .. } => format!(
                    "; held as {apr}: an operator approves with `airlock approve {apr}`, then the same command is allowed once"
                ),
                // The hold lives only in this hook's process: no operator can reach it.
                HookGate::Local(_) => format!(
                    "; held as {apr}, which no operator can approve (no AIRLOCK_URL: this hook decided on its own); the person at this prompt decides, or set AIRLOCK_URL to a running `airlock serve` for approvals"
                ),
            });
        }
        if *unknown {
            let prod = cfg.default_env == "prod" || detect_env(&what).as_deref() == Some("prod");
            let configured = if prod { HookAnswer::Deny } else { cfg.unknown };
            if severity(configured) >= severity(answer) {
                answer = configured;
                line.push_str(&format!(
                    "; not a command Airlock recognizes ({} for unrecognized commands{})",
                    name(configured),
                    if prod { " in prod" } else { "" }
                ));
            }
        }
        if let Some(e) = &d.error {
            answer = HookAnswer::Deny;
            line.push_str(&format!("; {e}"));
        }
        if severity(answer) > severity(worst) {
            worst = answer;
        }
        lines.push(line);
    }
    Ok(output(worst, &format!("Airlock: {}", lines.join(" | "))))
}

/// An `aws` CLI command planned against the real state by the `aws-cli` provider (the
/// hands-off twin of the `aws` provider), when it maps onto one and that provider is
/// configured and can plan it; `None` leaves it to the classifier. The region is the
/// command's own, else `AWS_REGION`/`AWS_DEFAULT_REGION` of the hook's environment, else
/// `us-east-1`.
async fn aws_planned(gate: &HookGate, token: &str, req: &ActionRequest) -> Option<ActionView> {
    if req.provider != "shell" {
        return None;
    }
    let segment = req.params.get("segment").and_then(Value::as_str)?;
    let region = std::env::var("AWS_REGION")
        .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
        .unwrap_or_else(|_| "us-east-1".into());
    let mut aws = airlock_shell::awscli::aws_request(segment, &region)?;
    aws.provider = "aws-cli".into();
    aws.intent = req.intent.clone();
    match gate.submit(token, &aws).await {
        Ok(d) if d.error.is_none() => Some(d),
        Ok(d) => {
            tracing::debug!(error = ?d.error, "hook: the aws provider could not plan the command; the classifier decides");
            None
        }
        Err(e) => {
            tracing::debug!(error = %e, "hook: no aws provider to plan the command; the classifier decides");
            None
        }
    }
}

/// A PostToolUse event: the tool call ran. Each request it maps onto is reported, so the
/// journal records what the agent actually did. The answer is empty (nothing to decide);
/// a report that cannot be made is logged and never blocks the agent.
async fn post_tool_use(
    raw: &str,
    ev: &HookEvent,
    gate: &HookGate,
    token: Option<&str>,
) -> Result<Value, String> {
    let Some(token) = token else {
        return Ok(json!({}));
    };
    let planned = requests(ev)?;
    let full: Value = serde_json::from_str(raw).unwrap_or_default();
    let succeeded = tool_succeeded(&full["tool_response"]);
    for (req, _) in planned
        .requests
        .iter()
        .filter(|(r, _)| r.verb.is_mutation())
    {
        if let Err(e) = gate.ran(token, req, succeeded).await {
            tracing::warn!(error = %e, target = %req.target, "could not record that a tool call ran");
        }
    }
    Ok(json!({}))
}

/// Whether a tool's response says it succeeded: `success`, an `exit_code`/`exitCode` of 0,
/// `interrupted`, or `None` when it does not say.
fn tool_succeeded(response: &Value) -> Option<bool> {
    if let Some(b) = response.get("success").and_then(Value::as_bool) {
        return Some(b);
    }
    if let Some(code) = response
        .get("exit_code")
        .or_else(|| response.get("exitCode"))
        .and_then(Value::as_i64)
    {
        return Some(code == 0);
    }
    if response.get("interrupted").and_then(Value::as_bool) == Some(true) {
        return Some(false);
    }
    None
}
