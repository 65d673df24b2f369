//! The tools agents can call: one per verb of each native provider (`sim_scale`) and one
//! per tool of each upstream MCP server (`notes_delete_note`), how a call maps onto an
//! [`ActionRequest`], and how the gate's answer reads back as a tool result. Protocol
//! neutral: the MCP gateway and `POST /v1/tools/{name}` both serve these.

use super::schema;
use super::view::ActionView;
use crate::engine::GateError;
use airlock_core::{ActionRequest, Provider, ResourceAddr, Verb, addr_name};
use airlock_core::{ActionStatus, VerdictKind};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// Where a tool call goes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Route {
    /// A verb of a provider Airlock runs itself.
    Native { provider: String, verb: Verb },
    /// A tool of an upstream MCP server, re-exposed under its prefix.
    Upstream {
        provider: String,
        tool: String,
        verb: Verb,
        /// Resource kind of the target address.
        resource_kind: String,
        /// The argument that names the resource, if any.
        resource_arg: Option<String>,
    },
}

/// One tool as the gateway lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ToolDef {
    /// E.g. `sim_scale`, `notes_delete_note`.
    pub name: String,
    pub description: String,
    /// JSON Schema of the arguments (an object schema).
    #[schema(value_type = Object)]
    pub input_schema: Value,
    pub read_only: bool,
    pub destructive: bool,
    pub idempotent: bool,
    pub route: Route,
}

/// Why a tool call could not even reach the gate.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallError {
    #[error("unknown tool `{0}`: tools/list shows what this server offers")]
    UnknownTool(String),
    #[error("invalid arguments for `{tool}`: {}", .problems.join("; "))]
    InvalidArguments { tool: String, problems: Vec<String> },
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Unavailable(String),
}

/// The gateway's tools.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Catalog {
    pub tools: Vec<ToolDef>,
}

fn verb_tool_name(verb: Verb) -> &'static str {
    match verb {
        Verb::Read => "describe",
        other => other.as_str(),
    }
}

impl Catalog {
    /// Tools for the verbs of native providers.
    pub fn native(providers: &[Arc<dyn Provider>]) -> Self {
        let mut tools = Vec::new();
        for p in providers {
            for spec in p.verbs() {
                let mut props = Map::new();
                props.insert(
                    "target".into(),
                    json!({"type": "string", "minLength": 1, "description": format!(
                        "the resource: an address like `{0}:service/checkout` or `{0}:environment/prod`, or just a service name",
                        p.name()
                    )}),
                );
                props.insert(
                    "intent".into(),
                    json!({"type": "string", "description": "why: shown to operators and kept in the journal"}),
                );
                let mut required = vec![json!("target")];
                if let Some(ps) = spec.params.get("properties").and_then(Value::as_object) {
                    for (k, v) in ps {
                        props.insert(k.clone(), v.clone());
                    }
                }
                if let Some(r) = spec.params.get("required").and_then(Value::as_array) {
                    required.extend(r.iter().cloned());
                }
                tools.push(ToolDef {
                    name: format!("{}_{}", p.name(), verb_tool_name(spec.verb)),
                    description: format!(
                        "{} ({} on `{}`, decided by Airlock's policy: it may be denied or held for an operator's approval)",
                        spec.description,
                        spec.verb,
                        p.name()
                    ),
                    input_schema: json!({"type": "object", "properties": props, "required": required, "additionalProperties": false}),
                    read_only: spec.read_only,
                    destructive: spec.destructive,
                    idempotent: matches!(spec.verb, Verb::Read | Verb::Scale | Verb::Deploy),
                    route: Route::Native {
                        provider: p.name().to_string(),
                        verb: spec.verb,
                    },
                });
            }
        }
        Self { tools }
    }

    /// Adds tools (from an upstream).
    pub fn extend(&mut self, tools: impl IntoIterator<Item = ToolDef>) {
        self.tools.extend(tools);
    }

    /// The tool called `name`.
    pub fn get(&self, name: &str) -> Option<&ToolDef> {
        self.tools.iter().find(|t| t.name == name)
    }

    /// Maps a call onto the request the gate decides; checks the arguments first.
    pub fn request(
        &self,
        name: &str,
        args: Option<Map<String, Value>>,
    ) -> Result<ActionRequest, CallError> {
        let tool = self
            .get(name)
            .ok_or_else(|| CallError::UnknownTool(name.to_string()))?;
        let args = args.unwrap_or_default();
        let invalid = |problems: Vec<String>| CallError::InvalidArguments {
            tool: name.to_string(),
            problems,
        };
        let problems = schema::check(&tool.input_schema, &Value::Object(args.clone()));
        if !problems.is_empty() {
            return Err(invalid(problems));
        }
        match &tool.route {
            Route::Native { provider, verb } => {
                let raw = args.get("target").and_then(Value::as_str).unwrap_or("");
                let addr = if raw.contains(':') {
                    raw.to_string()
                } else if raw.contains('/') {
                    format!("{provider}:{raw}")
                } else {
                    format!("{provider}:service/{raw}")
                };
                let target: ResourceAddr = addr
                    .parse()
                    .map_err(|e: airlock_core::AddrError| invalid(vec![e.to_string()]))?;
                if target.provider() != provider {
                    return Err(invalid(vec![format!(
                        "target `{target}` belongs to provider `{}`, not `{provider}`",
                        target.provider()
                    )]));
                }
                let intent = args
                    .get("intent")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                let params = args
                    .into_iter()
                    .filter(|(k, _)| k != "target" && k != "intent")
                    .collect();
                Ok(ActionRequest {
                    provider: provider.clone(),
                    verb: *verb,
                    target,
                    params,
                    intent,
                })
            }
            Route::Upstream {
                provider,
                tool: upstream_tool,
                verb,
                resource_kind,
                resource_arg,
            } => {
                let (kind, name) = match resource_arg.as_deref().and_then(|a| args.get(a)) {
                    Some(Value::String(s)) => (resource_kind.as_str(), s.clone()),
                    Some(other) => (resource_kind.as_str(), other.to_string()),
                    None => ("tool", upstream_tool.clone()),
                };
                let target = ResourceAddr::new(provider, kind, &addr_name(&name))
                    .map_err(|e| invalid(vec![e.to_string()]))?;
                let mut params = Map::new();
                params.insert("tool".into(), json!(upstream_tool));
                params.insert("arguments".into(), Value::Object(args));
                Ok(ActionRequest {
                    provider: provider.clone(),
                    verb: *verb,
                    target,
                    params,
                    intent: String::new(),
                })
            }
        }
    }
}

/// What a tool call answers, from the gate's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolAnswer {
    pub is_error: bool,
    /// Content blocks (MCP JSON form).
    pub content: Vec<Value>,
    pub structured: Option<Value>,
}

fn text(t: String) -> Value {
    json!({"type": "text", "text": t})
}

/// Who can answer a hold the door made; it changes only what the hold's text tells the
/// agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HoldNotice {
    /// Operators, with `airlock approve` against the server that made the hold.
    #[default]
    Operators,
    /// Nobody: the gate runs inside the agent's own `airlock mcp` (no `AIRLOCK_URL`), which
    /// no server and no operator can reach.
    Unreachable,
}

/// Renders an answer for a language model: a deny is a tool error carrying the reasons,
/// a hold says it awaits approval and gives the approval id, an allow gives the result.
pub fn answer(view: &ActionView, route: &Route) -> ToolAnswer {
    answer_with(view, route, HoldNotice::Operators)
}

/// [`answer`], telling a held call who can approve it.
pub fn answer_with(view: &ActionView, route: &Route, notice: HoldNotice) -> ToolAnswer {
    let structured = serde_json::to_value(view).ok();
    let explain = |head: String| {
        let mut t = head;
        if !view.reasons.is_empty() {
            t.push_str(&format!("\nReasons: {}.", view.reasons.join(", ")));
        }
        for d in &view.details {
            t.push_str(&format!("\n- {d}"));
        }
        if let Some(c) = &view.counter_offer {
            t.push_str(&format!(
                "\nCounter-offer: {}. To take it, call the tool again with that value and the other arguments unchanged.",
                c.summary
            ));
        }
        if let Some(after) = view.retry_after_s {
            t.push_str(&format!(
                "\nRetry after {after} s: the same call fits the rate limit again then."
            ));
        }
        if let Some(risk) = view.risk {
            t.push_str(&format!("\nRisk: {risk}."));
        }
        t
    };
    match view.verdict {
        Some(VerdictKind::Deny) | None => ToolAnswer {
            is_error: true,
            content: vec![text(explain(match &view.error {
                Some(e) if view.verdict.is_none() => format!("Airlock could not plan this action; nothing was applied: {e}"),
                // The details say why, with the values, and what would pass.
                _ if !view.details.is_empty() => "Airlock denied this action; nothing was applied.".into(),
                _ => "Airlock denied this action; nothing was applied. Choose a safer action (smaller step, non-prod target, reversible change) or ask an operator.".into(),
            }))],
            structured,
        },
        Some(VerdictKind::Hold) => {
            let id = view.approval_id.as_deref().unwrap_or("?");
            let head = match view.status {
                ActionStatus::Denied => format!("An operator denied this action (approval {id}); nothing was applied."),
                ActionStatus::Expired => format!("The hold {id} expired without an operator's answer; nothing was applied."),
                _ if notice == HoldNotice::Unreachable => format!(
                    "Airlock held this action for an operator's approval, and nobody can approve it: this `airlock mcp` runs its own gate (AIRLOCK_URL is not set), which no server and no operator can reach, so `airlock approve {id}` cannot find it. Nothing has been applied; the hold expires as a deny. For approvals, run `airlock serve` and start `airlock mcp` with AIRLOCK_URL set to it (for example http://127.0.0.1:7070); operators then approve there. Approval id: {id}."
                ),
                _ => format!(
                    "Airlock is holding this action for an operator's approval; nothing has been applied yet. Approval id: {id}. An operator can approve it with `airlock approve {id}` (or deny it with `airlock deny {id}`); once approved, Airlock applies it."
                ),
            };
            ToolAnswer {
                is_error: matches!(view.status, ActionStatus::Denied | ActionStatus::Expired),
                content: vec![text(explain(head))],
                structured,
            }
        }
        Some(VerdictKind::Allow) => {
            if let Some(err) = &view.error {
                return ToolAnswer {
                    is_error: true,
                    content: vec![text(format!(
                        "Airlock allowed this action but it failed: {err}"
                    ))],
                    structured,
                };
            }
            let first = view
                .result
                .as_ref()
                .and_then(Value::as_array)
                .and_then(|a| a.first())
                .cloned();
            match (route, first) {
                (Route::Upstream { .. }, Some(r)) => ToolAnswer {
                    is_error: false,
                    content: r
                        .get("content")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default(),
                    structured: r.get("structured").cloned().filter(|v| !v.is_null()),
                },
                _ => {
                    // Without a result (an answer replayed for an approved action), the
                    // details say what happened.
                    let mut t = match &view.result {
                        None if !view.details.is_empty() => view.details.join("\n"),
                        r => serde_json::to_string_pretty(r.as_ref().unwrap_or(&Value::Null))
                            .unwrap_or_default(),
                    };
                    if let Some(c) = &view.change_id {
                        t = format!(
                            "Applied as change {c}. Airlock watches its health and reverts it automatically if it breaches the SLO.\n{t}"
                        );
                    }
                    ToolAnswer {
                        is_error: false,
                        content: vec![text(t)],
                        structured,
                    }
                }
            }
        }
    }
}

impl From<GateError> for CallError {
    fn from(e: GateError) -> Self {
        match e {
            GateError::Unauthenticated => CallError::Unauthenticated(e.to_string()),
            GateError::Forbidden(_) => CallError::Forbidden(e.to_string()),
            GateError::Invalid(m) => CallError::InvalidArguments {
                tool: String::new(),
                problems: vec![m],
            },
            GateError::NotFound(..) | GateError::Conflict(_) | GateError::UnknownProvider(_) => {
                CallError::InvalidArguments {
                    tool: String::new(),
                    problems: vec![e.to_string()],
                }
            }
            GateError::Journal(_) => CallError::Unavailable(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        Catalog {
            tools: vec![
                ToolDef {
                    name: "sim_scale".into(),
                    description: String::new(),
                    input_schema: json!({"type": "object", "properties": {"target": {"type": "string"}, "replicas": {"type": "integer", "minimum": 0}, "intent": {"type": "string"}}, "required": ["target", "replicas"], "additionalProperties": false}),
                    read_only: false,
                    destructive: false,
                    idempotent: true,
                    route: Route::Native {
                        provider: "sim".into(),
                        verb: Verb::Scale,
                    },
                },
                ToolDef {
                    name: "notes_delete_note".into(),
                    description: String::new(),
                    input_schema: json!({"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}),
                    read_only: false,
                    destructive: true,
                    idempotent: true,
                    route: Route::Upstream {
                        provider: "notes".into(),
                        tool: "delete_note".into(),
                        verb: Verb::Delete,
                        resource_kind: "note".into(),
                        resource_arg: Some("name".into()),
                    },
                },
            ],
        }
    }

    fn args(v: Value) -> Option<Map<String, Value>> {
        v.as_object().cloned()
    }

    #[test]
    fn calls_map_onto_requests() {
        let c = catalog();
        let r = c
            .request(
                "sim_scale",
                args(json!({"target": "Checkout", "replicas": 4, "intent": "peak"})),
            )
            .unwrap();
        assert_eq!(r.target.to_string(), "sim:service/checkout");
        assert_eq!(r.params, args(json!({"replicas": 4})).unwrap());
        assert_eq!(r.intent, "peak");
        let r = c
            .request("notes_delete_note", args(json!({"name": "Q3 Plan/draft"})))
            .unwrap();
        assert_eq!(r.target.to_string(), "notes:note/q3-plan-draft");
        assert_eq!(r.verb, Verb::Delete);
        assert_eq!(r.params["tool"], "delete_note");
        assert_eq!(r.params["arguments"]["name"], "Q3 Plan/draft");
    }

    #[test]
    fn bad_calls_are_refused_before_the_gate() {
        let c = catalog();
        assert_eq!(
            c.request("sim_nuke", None).unwrap_err(),
            CallError::UnknownTool("sim_nuke".into())
        );
        let e = c
            .request(
                "sim_scale",
                args(json!({"target": "a", "replicas": "many"})),
            )
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("arguments.replicas: expected integer, got string"),
            "{e}"
        );
        let e = c
            .request(
                "sim_scale",
                args(json!({"target": "other:service/a", "replicas": 1})),
            )
            .unwrap_err();
        assert!(e.to_string().contains("belongs to provider `other`"), "{e}");
    }

    fn view(v: Value) -> ActionView {
        let mut base = json!({"id": "act_1", "agent": "a", "verdict": null, "risk": null, "plan": null,
            "approval_id": null, "change_id": null, "status": "done"});
        for (k, x) in v.as_object().unwrap() {
            base[k] = x.clone();
        }
        serde_json::from_value(base).unwrap()
    }

    #[test]
    fn decisions_read_back_as_tool_results() {
        let route = catalog().tools[0].route.clone();
        let deny = view(
            json!({"verdict": "deny", "reasons": ["headroom-floor"], "details": [], "risk": "high", "status": "denied"}),
        );
        let a = answer(&deny, &route);
        assert!(a.is_error);
        assert!(
            a.content[0]["text"]
                .as_str()
                .unwrap()
                .contains("headroom-floor")
        );
        // A deny that says why carries the values, what would pass and the counter-offer.
        let explained = view(json!({"verdict": "deny", "reasons": ["headroom-floor"],
            "details": ["headroom-floor: after this change `sim:service/web` would have headroom 0.94; the floor is 1.2. Would pass: a smaller cut"],
            "counter_offer": {"params": {"replicas": 14}, "summary": "`replicas` = 14 would be allowed now; 10 would not"},
            "risk": "high", "status": "denied"}));
        let t = answer(&explained, &route).content[0]["text"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            t.contains("headroom 0.94") && t.contains("Would pass"),
            "{t}"
        );
        assert!(t.contains("Counter-offer: `replicas` = 14"), "{t}");
        assert!(!t.contains("Choose a safer action"), "{t}");
        let limited = view(json!({"verdict": "deny", "reasons": ["rate-limit"],
            "details": ["rate-limit: 13 mutations in the last minute; the limit is 12: retry after 7 s"],
            "retry_after_s": 7, "risk": "medium", "status": "denied"}));
        let t = answer(&limited, &route).content[0]["text"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(t.contains("Retry after 7 s"), "{t}");
        let hold = view(
            json!({"verdict": "hold", "reasons": ["prod-destructive-needs-approval"], "details": ["prod-destructive-needs-approval: why"], "approval_id": "apr_1", "status": "held"}),
        );
        let a = answer(&hold, &route);
        assert!(!a.is_error);
        let t = a.content[0]["text"].as_str().unwrap();
        assert!(
            t.contains("apr_1") && t.contains("nothing has been applied"),
            "{t}"
        );
        // A hold nobody can reach says so, and how to get approvals.
        let a = answer_with(&hold, &route, HoldNotice::Unreachable);
        assert!(!a.is_error);
        let t = a.content[0]["text"].as_str().unwrap();
        assert!(
            t.contains("nobody can approve it") && t.contains("AIRLOCK_URL") && t.contains("apr_1"),
            "{t}"
        );
        assert!(!t.contains("An operator can approve it"), "{t}");
        let up = catalog().tools[1].route.clone();
        let allow = view(
            json!({"verdict": "allow", "result": [{"tool": "delete_note", "content": [{"type": "text", "text": "deleted x"}], "structured": null}]}),
        );
        let a = answer(&allow, &up);
        assert_eq!(
            a.content,
            vec![json!({"type": "text", "text": "deleted x"})]
        );
        assert_eq!(a.structured, None);
        assert_eq!(addr_name("  /etc/Pass wd "), "etc-pass-wd");
        assert_eq!(addr_name("///"), "unnamed");
    }
}
