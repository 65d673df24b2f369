//! Cedar policy evaluation.
//!
//! Cedar allow ⇒ allow. Cedar deny ⇒ hold when every determining forbid carries
//! `@hold`, else deny. Any error (a request that does not fit the schema, a policy that
//! fails to evaluate) ⇒ deny: the gate fails closed.

use crate::action::Verb;
use crate::addr::ResourceAddr;
use crate::clock::Timestamp;
use crate::plan::{Plan, ResourceAttrs};
use crate::risk::Assessment;
use cedar_policy::{
    Authorizer, Context, Decision, Entities, EntityId, EntityTypeName, EntityUid, Policy, PolicyId,
    PolicySet, Request, RestrictedExpression, Schema, ValidationMode, Validator,
};
use serde_json::json;
use std::collections::BTreeMap;
use std::str::FromStr;

/// The default policy pack, shipped in `policies/default.cedar`.
pub const DEFAULT_POLICIES: &str = include_str!("../../../policies/default.cedar");
/// The policy schema, shipped in `policies/airlock.cedarschema`.
pub const SCHEMA: &str = include_str!("../../../policies/airlock.cedarschema");

/// Reason given when policy evaluation fails.
pub const EVALUATION_ERROR: &str = "policy-evaluation-error";

/// Why a policy pack could not be loaded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PolicyError {
    #[error("policy schema does not parse: {0}")]
    Schema(String),
    #[error("policies do not parse: {0}")]
    Syntax(String),
    #[error("policies do not fit the schema: {0}")]
    Invalid(String),
    #[error("two policies share the id `{0}`: give each an @id(\"…\") of its own")]
    DuplicateId(String),
}

/// Who is asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalKind {
    Agent,
    Operator,
}

/// Everything a policy may look at.
#[derive(Debug, Clone)]
pub struct PolicyInput<'a> {
    pub principal_kind: PrincipalKind,
    pub principal: &'a str,
    pub verb: Verb,
    pub resource: &'a ResourceAddr,
    pub attrs: &'a ResourceAttrs,
    /// The Cedar context record, as built by [`context_json`].
    pub context: serde_json::Value,
}

/// The policy's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyOutcome {
    /// Permitted; reasons are the permitting policy ids.
    Allow(Vec<String>),
    /// Forbidden; reasons are the determining policy ids (or the evaluation error).
    Deny(Vec<String>),
    /// Held for an operator; reasons are the determining `@hold` policy ids.
    Hold(Vec<String>),
}

/// A loaded, validated policy pack.
#[derive(Debug)]
pub struct PolicyEngine {
    schema: Schema,
    policies: PolicySet,
    holds: BTreeMap<String, String>,
    authorizer: Authorizer,
}

impl PolicyEngine {
    /// The default pack against the shipped schema.
    pub fn default_pack() -> Result<Self, PolicyError> {
        Self::new(DEFAULT_POLICIES, SCHEMA)
    }

    /// Parses and validates `policies` (Cedar text) against `schema` (Cedar schema text).
    /// Each policy is named by its `@id` annotation, or `policyN` by position.
    pub fn new(policies: &str, schema: &str) -> Result<Self, PolicyError> {
        let (schema, _warnings) =
            Schema::from_cedarschema_str(schema).map_err(|e| PolicyError::Schema(e.to_string()))?;
        let parsed = PolicySet::from_str(policies)
            .map_err(|e| PolicyError::Syntax(render_parse_errors(&e, policies)))?;
        let mut named: Vec<Policy> = Vec::new();
        let mut holds = BTreeMap::new();
        let mut seen = std::collections::BTreeSet::new();
        let mut ordered: Vec<&Policy> = parsed.policies().collect();
        ordered.sort_by_key(|p| p.id().to_string());
        for p in ordered {
            let id = p
                .annotation("id")
                .map(str::to_string)
                .unwrap_or_else(|| p.id().to_string());
            if !seen.insert(id.clone()) {
                return Err(PolicyError::DuplicateId(id));
            }
            if let Some(why) = p.annotation("hold") {
                holds.insert(id.clone(), why.to_string());
            }
            named.push(p.new_id(PolicyId::new(id)));
        }
        let policies =
            PolicySet::from_policies(named).map_err(|e| PolicyError::Syntax(e.to_string()))?;
        let result = Validator::new(schema.clone()).validate(&policies, ValidationMode::Strict);
        if !result.validation_passed() {
            let msgs: Vec<String> = result.validation_errors().map(|e| format!("{e}")).collect();
            return Err(PolicyError::Invalid(msgs.join("; ")));
        }
        Ok(Self {
            schema,
            policies,
            holds,
            authorizer: Authorizer::new(),
        })
    }

    /// Number of policies loaded.
    pub fn len(&self) -> usize {
        self.policies.policies().count()
    }

    /// Whether the pack is empty (which denies everything).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `@hold` explanation of a policy, if it is a hold policy.
    pub fn hold_reason(&self, id: &str) -> Option<&str> {
        self.holds.get(id).map(String::as_str)
    }

    /// Decides one request. Never panics and never errs: failures are a deny.
    pub fn evaluate(&self, input: &PolicyInput<'_>) -> PolicyOutcome {
        match self.try_evaluate(input) {
            Ok(outcome) => outcome,
            Err(detail) => PolicyOutcome::Deny(vec![format!("{EVALUATION_ERROR}: {detail}")]),
        }
    }

    fn try_evaluate(&self, input: &PolicyInput<'_>) -> Result<PolicyOutcome, String> {
        let principal_type = match input.principal_kind {
            PrincipalKind::Agent => "Airlock::Agent",
            PrincipalKind::Operator => "Airlock::Operator",
        };
        let principal = uid(principal_type, input.principal)?;
        let action = uid("Airlock::Action", input.verb.as_str())?;
        let resource = uid("Airlock::Resource", &input.resource.to_string())?;
        let a = input.attrs;
        let mut entities = vec![json!({
            "uid": {"type": "Airlock::Resource", "id": input.resource.to_string()},
            "attrs": {
                "env": a.env, "kind": a.kind, "tier": a.tier, "region": a.region,
                "service": a.service, "tags": a.tags, "dependents": a.dependents,
            },
            "parents": [],
        })];
        entities.push(match input.principal_kind {
            PrincipalKind::Agent => json!({
                "uid": {"type": principal_type, "id": input.principal},
                "attrs": {"labels": []}, "parents": []}),
            PrincipalKind::Operator => json!({
                "uid": {"type": principal_type, "id": input.principal}, "attrs": {}, "parents": []}),
        });
        let entities =
            Entities::from_json_value(serde_json::Value::Array(entities), Some(&self.schema))
                .map_err(|e| e.to_string())?;
        // Built directly rather than parsed from JSON against the schema: several times
        // faster. `Request::new` below still checks the context against the schema.
        let pairs = match &input.context {
            serde_json::Value::Object(fields) => fields
                .iter()
                .map(|(k, v)| Ok((k.clone(), restricted(v)?)))
                .collect::<Result<Vec<_>, String>>()?,
            other => return Err(format!("the context must be a record, not `{other}`")),
        };
        let context = Context::from_pairs(pairs).map_err(|e| e.to_string())?;
        let request = Request::new(principal, action, resource, context, Some(&self.schema))
            .map_err(|e| e.to_string())?;
        let response = self
            .authorizer
            .is_authorized(&request, &self.policies, &entities);
        let errors: Vec<String> = response
            .diagnostics()
            .errors()
            .map(|e| e.to_string())
            .collect();
        if !errors.is_empty() {
            return Err(errors.join("; "));
        }
        let mut reasons: Vec<String> = response
            .diagnostics()
            .reason()
            .map(|id| id.to_string())
            .collect();
        reasons.sort();
        Ok(match response.decision() {
            Decision::Allow => PolicyOutcome::Allow(reasons),
            Decision::Deny if reasons.is_empty() => {
                PolicyOutcome::Deny(vec!["no-permit".to_string()])
            }
            Decision::Deny if reasons.iter().all(|r| self.holds.contains_key(r)) => {
                PolicyOutcome::Hold(reasons)
            }
            Decision::Deny => {
                // Report the hard forbids; the holds among them are moot.
                let hard: Vec<String> = reasons
                    .into_iter()
                    .filter(|r| !self.holds.contains_key(r))
                    .collect();
                PolicyOutcome::Deny(hard)
            }
        })
    }
}

/// A context value as a Cedar restricted expression: booleans, integers, strings, sets,
/// records, and `{"__extn": {"fn": "decimal", "arg": "…"}}` decimals.
fn restricted(v: &serde_json::Value) -> Result<RestrictedExpression, String> {
    use serde_json::Value;
    Ok(match v {
        Value::Bool(b) => RestrictedExpression::new_bool(*b),
        Value::Number(n) => RestrictedExpression::new_long(
            n.as_i64()
                .ok_or_else(|| format!("`{n}` is not an integer: use a decimal"))?,
        ),
        Value::String(s) => RestrictedExpression::new_string(s.clone()),
        Value::Array(items) => RestrictedExpression::new_set(
            items
                .iter()
                .map(restricted)
                .collect::<Result<Vec<_>, _>>()?,
        ),
        Value::Object(fields) => match fields.get("__extn") {
            Some(ext) if ext.get("fn").and_then(Value::as_str) == Some("decimal") => {
                RestrictedExpression::new_decimal(
                    ext.get("arg").and_then(Value::as_str).unwrap_or_default(),
                )
            }
            Some(ext) => return Err(format!("unsupported extension value `{ext}`")),
            None => RestrictedExpression::new_record(
                fields
                    .iter()
                    .map(|(k, v)| Ok((k.clone(), restricted(v)?)))
                    .collect::<Result<Vec<_>, String>>()?,
            )
            .map_err(|e| e.to_string())?,
        },
        Value::Null => return Err("null is not a Cedar value".into()),
    })
}

fn uid(type_name: &str, id: &str) -> Result<EntityUid, String> {
    let t = EntityTypeName::from_str(type_name).map_err(|e| e.to_string())?;
    Ok(EntityUid::from_type_name_and_id(t, EntityId::new(id)))
}

/// One line per error: `line L, column C: message (help)`.
fn render_parse_errors(errors: &cedar_policy::ParseErrors, src: &str) -> String {
    use miette::Diagnostic;
    let lines: Vec<String> = errors
        .iter()
        .map(|e| {
            let at = e
                .labels()
                .and_then(|mut l| l.next())
                .map(|l| {
                    let upto = &src.as_bytes()[..l.offset().min(src.len())];
                    let line = upto.iter().filter(|b| **b == b'\n').count() + 1;
                    let col = upto.iter().rev().take_while(|b| **b != b'\n').count() + 1;
                    format!("line {line}, column {col}: ")
                })
                .unwrap_or_default();
            let help = e.help().map(|h| format!(" ({h})")).unwrap_or_default();
            format!("{at}{e}{help}")
        })
        .collect();
    lines.join("; ")
}

fn decimal(v: f64) -> serde_json::Value {
    let clamped = if v.is_finite() {
        v.clamp(-1.0e6, 1.0e6)
    } else {
        1.0e6
    };
    json!({"__extn": {"fn": "decimal", "arg": format!("{clamped:.4}")}})
}

/// Hour of day and weekday (0 = Sunday) of a timestamp, in UTC.
pub fn hour_and_weekday(ts: Timestamp) -> (i64, i64) {
    let secs = ts.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    ((secs.rem_euclid(86_400)) / 3600, (days + 4).rem_euclid(7))
}

/// Builds the Cedar context record for a plan.
pub fn context_json(
    plan: &Plan,
    assessment: &Assessment,
    approved: bool,
    now: Timestamp,
) -> serde_json::Value {
    let (hour, weekday) = hour_and_weekday(now);
    let b = &plan.blast;
    json!({
        "risk": assessment.risk.as_str(),
        "blast": {
            "resources": b.resources,
            "regions": b.regions,
            "dependents": b.dependents,
            "capacity_delta_pct": b.capacity_delta_pct.round() as i64,
        },
        "predicted": {
            "has_headroom": plan.predicted.headroom.is_some(),
            "headroom": decimal(plan.predicted.headroom.unwrap_or(1.0e6)),
        },
        "health": {"status": assessment.health.as_str()},
        "reversible": plan.reversible,
        "destructive": plan.destructive,
        "rollback": plan.rollback,
        "approved": approved,
        "time": {"hour": hour, "weekday": weekday},
        "agent": {
            "actions_5m": assessment.agent.actions_5m,
            "reverts_1h": assessment.agent.reverts_1h,
            "anomaly": decimal(assessment.agent.anomaly),
            "baking": assessment.agent.baking,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Blast, Predicted};
    use crate::risk::{AgentStats, HealthStatus, Risk};

    fn plan(verb: Verb, env: &str, dependents: u32, delta: f64, headroom: Option<f64>) -> Plan {
        let target: ResourceAddr = "sim:service/checkout".parse().unwrap();
        Plan {
            provider: "sim".into(),
            verb,
            target,
            params: Default::default(),
            diffs: vec![],
            blast: Blast {
                resources: 1,
                regions: 1,
                dependents,
                capacity_delta_pct: delta,
                watch: vec![],
            },
            predicted: Predicted { headroom },
            resource: ResourceAttrs {
                env: env.into(),
                kind: "service".into(),
                tier: "critical".into(),
                dependents,
                ..Default::default()
            },
            reversible: true,
            destructive: verb == Verb::Delete,
            rollback: false,
            min_risk: None,
            summary: String::new(),
            hash: String::new(),
        }
    }

    fn decide(engine: &PolicyEngine, p: &Plan, health: HealthStatus, baking: u32) -> PolicyOutcome {
        let assessment = Assessment {
            risk: Risk::Medium,
            health,
            agent: AgentStats {
                baking,
                ..Default::default()
            },
        };
        engine.evaluate(&PolicyInput {
            principal_kind: PrincipalKind::Agent,
            principal: "bot",
            verb: p.verb,
            resource: &p.target,
            attrs: &p.resource,
            context: context_json(p, &assessment, false, 0),
        })
    }

    #[test]
    fn default_pack_decides_the_documented_cases() {
        let e = PolicyEngine::default_pack().unwrap();
        let h = HealthStatus::Healthy;
        assert!(matches!(
            decide(&e, &plan(Verb::Read, "prod", 3, 0.0, None), h, 0),
            PolicyOutcome::Allow(_)
        ));
        assert_eq!(
            decide(&e, &plan(Verb::Delete, "prod", 0, -100.0, None), h, 0),
            PolicyOutcome::Hold(vec!["prod-destructive-needs-approval".into()])
        );
        assert_eq!(
            decide(&e, &plan(Verb::Delete, "prod", 2, -100.0, None), h, 0),
            PolicyOutcome::Deny(vec!["no-delete-with-live-dependents".into()])
        );
        assert_eq!(
            decide(&e, &plan(Verb::Scale, "prod", 0, -60.0, Some(3.0)), h, 0),
            PolicyOutcome::Hold(vec!["capacity-step-budget".into()])
        );
        assert_eq!(
            decide(&e, &plan(Verb::Scale, "prod", 0, -20.0, Some(1.1)), h, 0),
            PolicyOutcome::Deny(vec!["headroom-floor".into()])
        );
        assert!(matches!(
            decide(&e, &plan(Verb::Scale, "prod", 0, -20.0, Some(1.5)), h, 0),
            PolicyOutcome::Allow(_)
        ));
        assert!(matches!(
            decide(
                &e,
                &plan(Verb::Scale, "prod", 0, 40.0, Some(0.9)),
                HealthStatus::Degraded,
                0
            ),
            PolicyOutcome::Allow(_)
        ));
        assert_eq!(
            decide(
                &e,
                &plan(Verb::Deploy, "prod", 0, 0.0, None),
                HealthStatus::Degraded,
                0
            ),
            PolicyOutcome::Hold(vec!["unhealthy-service-needs-approval".into()])
        );
        assert_eq!(
            decide(&e, &plan(Verb::Deploy, "staging", 0, 0.0, None), h, 1),
            PolicyOutcome::Deny(vec!["one-rollout-at-a-time".into()])
        );
    }

    #[test]
    fn a_syntax_error_is_a_clear_load_error() {
        let err = PolicyEngine::new("permit(principal, action, resource", SCHEMA).unwrap_err();
        assert!(matches!(err, PolicyError::Syntax(_)), "{err}");
        let text = err.to_string();
        assert!(
            text.starts_with("policies do not parse: line 1, column "),
            "{text}"
        );
        assert!(!text.contains("ParseErrors("), "{text}");
        let err = PolicyEngine::new(
            "permit(principal, action, resource) when { context.nope };",
            SCHEMA,
        )
        .unwrap_err();
        assert!(matches!(err, PolicyError::Invalid(_)), "{err}");
    }

    #[test]
    fn a_context_that_does_not_fit_the_schema_is_a_deny() {
        let e = PolicyEngine::default_pack().unwrap();
        let p = plan(Verb::Read, "prod", 0, 0.0, None);
        let out = e.evaluate(&PolicyInput {
            principal_kind: PrincipalKind::Agent,
            principal: "bot",
            verb: Verb::Read,
            resource: &p.target,
            attrs: &p.resource,
            context: json!({"risk": 3}),
        });
        match out {
            PolicyOutcome::Deny(r) => assert!(r[0].starts_with(EVALUATION_ERROR), "{r:?}"),
            other => panic!("expected deny, got {other:?}"),
        }
    }

    #[test]
    fn weekday_and_hour_are_utc() {
        // 2026-11-29 is a Sunday; 16:55 UTC.
        assert_eq!(hour_and_weekday(1_795_971_300_000), (16, 0));
    }
}
