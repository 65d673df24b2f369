//! Cedar policy evaluation.
//!
//! Cedar allow ⇒ allow. Cedar deny ⇒ hold when every determining forbid carries
//! `@hold`, else deny. Any error (a request that does not fit the schema, a policy that
//! fails to evaluate) ⇒ deny: the gate fails closed.

use crate::action::Verb;
use crate::addr::ResourceAddr;
use crate::clock::Timestamp;
use crate::plan::{Contained, Plan, ResourceAttrs};
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
    /// `@reason` and `@pass` of each policy, by id.
    texts: BTreeMap<String, Texts>,
    authorizer: Authorizer,
    /// Entities already checked against the schema, by their JSON: the same resource and
    /// principal come back on most requests, and building entities is most of a decision.
    entities: std::sync::Mutex<std::collections::HashMap<String, std::sync::Arc<Entities>>>,
    /// Requests already checked against the schema, by [`request_shape`]: whether a request
    /// fits the schema depends only on its entities and on its context's shape (names and
    /// kinds of value, not the values), so a request of a shape seen before is not checked
    /// again.
    fitting: std::sync::Mutex<std::collections::HashSet<String>>,
}

/// Entity sets remembered at most; past it the memo starts again.
const ENTITY_MEMO: usize = 4096;

/// What a policy says about itself: why it objects and what would pass, each a template
/// whose `{path}` placeholders are filled from the decision's values.
#[derive(Debug, Clone, Default)]
struct Texts {
    reason: Option<String>,
    pass: Option<String>,
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
        let mut texts = BTreeMap::new();
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
            texts.insert(
                id.clone(),
                Texts {
                    reason: p.annotation("reason").map(str::to_string),
                    pass: p.annotation("pass").map(str::to_string),
                },
            );
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
            texts,
            authorizer: Authorizer::new(),
            entities: Default::default(),
            fitting: Default::default(),
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

    /// The policies without an `@reason` explanation (the default pack has none).
    pub fn unexplained(&self) -> Vec<String> {
        self.texts
            .iter()
            .filter(|(_, t)| t.reason.is_none())
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// A reason of a verdict (`RULE` or `RULE on ADDR`) for people: the rule's `@reason`
    /// with the values of this decision filled in, then what would pass (`@pass`). Falls
    /// back to the `@hold` text; `None` for a reason that is not a policy here.
    pub fn explain(
        &self,
        reason: &str,
        plan: &Plan,
        assessment: &Assessment,
        approved: bool,
        now: Timestamp,
    ) -> Option<String> {
        let id = reason_policy(reason);
        let texts = self.texts.get(id)?;
        let why = texts.reason.as_deref().or_else(|| self.hold_reason(id))?;
        let via = reason.split_once(VIA).map(|(_, addr)| addr);
        let contained = via.and_then(|a| plan.contained.iter().find(|c| c.addr.to_string() == a));
        let (target, attrs, context) = match contained {
            Some(c) => (
                &c.addr,
                &c.resource,
                contained_context_json(plan, c, assessment, approved, now),
            ),
            None => (
                &plan.target,
                &plan.resource,
                context_json(plan, assessment, approved, now),
            ),
        };
        let dependents: Vec<&str> = plan
            .blast
            .watch
            .iter()
            .map(String::as_str)
            .filter(|s| *s != attrs.service && !s.is_empty())
            .collect();
        let values = json!({
            "target": target.to_string(),
            "resource": attrs,
            "context": context,
            "dependent_names": if !plan.blast.dependent_names.is_empty() {
                plan.blast.dependent_names.join(", ")
            } else if dependents.is_empty() {
                "none named".to_string()
            } else {
                dependents.join(", ")
            },
            "lost": if plan.loses.is_empty() { "nothing".to_string() } else { plan.loses.join("; ") },
        });
        let mut out = render(why, &values);
        if let Some(pass) = &texts.pass {
            out.push_str(". Would pass: ");
            out.push_str(&render(pass, &values));
        }
        Some(out)
    }

    /// The entities `json` describes, checked against the schema (remembered: a pure
    /// function of the JSON and this pack's schema).
    fn entities(&self, json: serde_json::Value) -> Result<std::sync::Arc<Entities>, String> {
        let key = json.to_string();
        let memo = || {
            self.entities
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        if let Some(e) = memo().get(&key) {
            return Ok(e.clone());
        }
        let e = std::sync::Arc::new(
            Entities::from_json_value(json, Some(&self.schema)).map_err(|e| e.to_string())?,
        );
        let mut m = memo();
        if m.len() >= ENTITY_MEMO {
            m.clear();
        }
        m.insert(key, e.clone());
        Ok(e)
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
        // The resource's containers are its parents in the entity hierarchy, so a policy
        // on an environment (`resource in …`) applies to everything inside it.
        let parents: Vec<serde_json::Value> = a
            .parents
            .iter()
            .map(|p| json!({"type": "Airlock::Resource", "id": p}))
            .collect();
        let mut entities = vec![json!({
            "uid": {"type": "Airlock::Resource", "id": input.resource.to_string()},
            "attrs": {
                "env": a.env, "kind": a.kind, "tier": a.tier, "region": a.region,
                "service": a.service, "tags": a.tags, "dependents": a.dependents,
            },
            "parents": parents,
        })];
        entities.push(match input.principal_kind {
            PrincipalKind::Agent => json!({
                "uid": {"type": principal_type, "id": input.principal},
                "attrs": {"labels": []}, "parents": []}),
            PrincipalKind::Operator => json!({
                "uid": {"type": principal_type, "id": input.principal}, "attrs": {}, "parents": []}),
        });
        let entities = self.entities(serde_json::Value::Array(entities))?;
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
        // Checked against the schema once per shape (most of building a request was this
        // check); a request that does not fit is checked, and denied, every time.
        let shape = request_shape(&principal, &action, &resource, &input.context);
        let fitting = || {
            self.fitting
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        let known = fitting().contains(&shape);
        let schema = (!known).then_some(&self.schema);
        let request = Request::new(principal, action, resource, context, schema)
            .map_err(|e| e.to_string())?;
        if !known {
            let mut f = fitting();
            if f.len() >= ENTITY_MEMO {
                f.clear();
            }
            f.insert(shape);
        }
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

impl PolicyEngine {
    /// Decides a plan: its target, and each resource it reaches through the target
    /// (containment) as if that resource were targeted directly. The strictest outcome
    /// wins (deny, then hold, then allow); a reason that comes from a contained resource
    /// names it: `no-delete-with-live-dependents on sim:service/payments`.
    pub fn evaluate_plan(
        &self,
        principal_kind: PrincipalKind,
        principal: &str,
        plan: &Plan,
        assessment: &Assessment,
        approved: bool,
        now: Timestamp,
    ) -> PolicyOutcome {
        let mut outcome = self.evaluate(&PolicyInput {
            principal_kind,
            principal,
            verb: plan.verb,
            resource: &plan.target,
            attrs: &plan.resource,
            context: context_json(plan, assessment, approved, now),
        });
        for c in &plan.contained {
            let inner = self.evaluate(&PolicyInput {
                principal_kind,
                principal,
                verb: plan.verb,
                resource: &c.addr,
                attrs: &c.resource,
                context: contained_context_json(plan, c, assessment, approved, now),
            });
            outcome = stricter(outcome, inner, &c.addr);
        }
        outcome
    }
}

/// The stricter of two outcomes; the second one's reasons are named after `via`.
fn stricter(a: PolicyOutcome, b: PolicyOutcome, via: &ResourceAddr) -> PolicyOutcome {
    let named = |r: Vec<String>| -> Vec<String> {
        r.into_iter().map(|r| format!("{r}{VIA}{via}")).collect()
    };
    match (a, b) {
        (PolicyOutcome::Deny(mut x), PolicyOutcome::Deny(y)) => {
            x.extend(named(y));
            PolicyOutcome::Deny(x)
        }
        (a @ PolicyOutcome::Deny(_), _) => a,
        (_, PolicyOutcome::Deny(y)) => PolicyOutcome::Deny(named(y)),
        (PolicyOutcome::Hold(mut x), PolicyOutcome::Hold(y)) => {
            x.extend(named(y));
            PolicyOutcome::Hold(x)
        }
        (a @ PolicyOutcome::Hold(_), _) => a,
        (_, PolicyOutcome::Hold(y)) => PolicyOutcome::Hold(named(y)),
        (a, _) => a,
    }
}

/// Fills `{a.b.c}` placeholders from `values`: decimals and fractions with two digits,
/// lists joined by commas. A placeholder that names nothing stays as written.
pub fn render(template: &str, values: &serde_json::Value) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return out;
        };
        let path = &after[..end];
        let value = path.split('.').try_fold(values, |v, k| v.get(k));
        match value.and_then(show_value) {
            Some(s) => out.push_str(&s),
            None => {
                out.push('{');
                out.push_str(path);
                out.push('}');
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// A value as people read it.
fn show_value(v: &serde_json::Value) -> Option<String> {
    let trim = |x: f64| {
        let s = format!("{x:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    };
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        serde_json::Value::Number(n) => Some(
            n.as_i64()
                .map_or_else(|| trim(n.as_f64().unwrap_or_default()), |i| i.to_string()),
        ),
        serde_json::Value::Array(items) => Some(
            items
                .iter()
                .filter_map(show_value)
                .collect::<Vec<_>>()
                .join(", "),
        ),
        serde_json::Value::Object(m) => {
            let arg = m.get("__extn")?.get("arg")?.as_str()?;
            Some(arg.parse::<f64>().map_or_else(|_| arg.to_string(), trim))
        }
        serde_json::Value::Null => None,
    }
}

/// What separates a policy id from the contained resource that triggered it in a reason.
pub const VIA: &str = " on ";

/// The policy id of a reason (without the contained resource it names, if any).
pub fn reason_policy(reason: &str) -> &str {
    reason.split_once(VIA).map_or(reason, |(id, _)| id)
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
                decimal_expr(ext.get("arg").and_then(Value::as_str).unwrap_or_default())
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

/// A decimal as a Cedar expression, remembered per thread: building one parses the
/// extension's name each time (a tenth of a read's CPU), and contexts carry few distinct
/// values (four places, mostly 0–1).
fn decimal_expr(arg: &str) -> RestrictedExpression {
    use std::cell::RefCell;
    use std::collections::HashMap;
    const KEEP: usize = 4096;
    thread_local! {
        static DECIMALS: RefCell<HashMap<Box<str>, RestrictedExpression>> =
            RefCell::new(HashMap::new());
    }
    DECIMALS.with_borrow_mut(|memo| {
        if let Some(e) = memo.get(arg) {
            return e.clone();
        }
        let e = RestrictedExpression::new_decimal(arg);
        if memo.len() >= KEEP {
            memo.clear();
        }
        memo.insert(arg.into(), e.clone());
        e
    })
}

/// What decides whether a request fits the schema: its principal, action and resource (ids
/// included, since a schema may enumerate an entity type's ids) and its context's shape —
/// each field's name and kind of value, recursively, with a set's distinct element shapes —
/// but none of the context's values.
fn request_shape(
    principal: &EntityUid,
    action: &EntityUid,
    resource: &EntityUid,
    context: &serde_json::Value,
) -> String {
    fn shape(v: &serde_json::Value, out: &mut String) {
        use serde_json::Value;
        match v {
            Value::Null => out.push('n'),
            Value::Bool(_) => out.push('b'),
            Value::Number(n) if n.is_i64() => out.push('l'),
            Value::Number(_) => out.push('f'),
            Value::String(_) => out.push('s'),
            Value::Array(items) => {
                let mut kinds: Vec<String> = items
                    .iter()
                    .map(|x| {
                        let mut k = String::new();
                        shape(x, &mut k);
                        k
                    })
                    .collect();
                kinds.sort_unstable();
                kinds.dedup();
                out.push('[');
                out.push_str(&kinds.join(","));
                out.push(']');
            }
            Value::Object(fields) => {
                out.push('{');
                for (k, x) in fields {
                    // A name is written with its length, so no name can pass for another.
                    out.push_str(&k.len().to_string());
                    out.push(':');
                    out.push_str(k);
                    if k == "__extn" {
                        // An extension value: which function, not its argument.
                        out.push_str(&x.get("fn").map(ToString::to_string).unwrap_or_default());
                    } else {
                        shape(x, out);
                    }
                    out.push(';');
                }
                out.push('}');
            }
        }
    }
    let mut out = format!("{principal}\u{1f}{action}\u{1f}{resource}\u{1f}");
    shape(context, &mut out);
    out
}

/// An entity's id; its type's name is parsed once per thread (parsing it is most of what
/// building a request costs).
fn uid(type_name: &'static str, id: &str) -> Result<EntityUid, String> {
    use std::cell::RefCell;
    use std::collections::HashMap;
    thread_local! {
        static TYPES: RefCell<HashMap<&'static str, EntityTypeName>> = RefCell::new(HashMap::new());
    }
    let t = TYPES.with_borrow_mut(|types| match types.get(type_name) {
        Some(t) => Ok(t.clone()),
        None => {
            let t = EntityTypeName::from_str(type_name).map_err(|e| e.to_string())?;
            types.insert(type_name, t.clone());
            Ok::<_, String>(t)
        }
    })?;
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

/// A Cedar decimal. A value that could not be computed (NaN) is 0: for headroom, the
/// worst there is, so a broken prediction never reads as room to spare.
fn decimal(v: f64) -> serde_json::Value {
    let clamped = if v.is_nan() {
        0.0
    } else {
        v.clamp(-1.0e6, 1.0e6)
    };
    json!({"__extn": {"fn": "decimal", "arg": format!("{clamped:.4}")}})
}

/// A capacity change in whole percent. A change that could not be computed (NaN) counts
/// as a full cut, the one every capacity rule looks at, so a broken prediction never reads
/// as no change at all.
fn capacity_pct(v: f64) -> i64 {
    if v.is_nan() { -100 } else { v.round() as i64 }
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
    context_with(
        plan,
        plan.blast.dependents,
        plan.blast.capacity_delta_pct,
        !plan.loses.is_empty(),
        assessment,
        approved,
        now,
    )
}

/// The Cedar context record for a resource the plan reaches through its target: the
/// plan's context with that resource's own dependents and capacity change.
pub fn contained_context_json(
    plan: &Plan,
    c: &Contained,
    assessment: &Assessment,
    approved: bool,
    now: Timestamp,
) -> serde_json::Value {
    context_with(
        plan,
        c.dependents,
        c.capacity_delta_pct,
        c.loses_data,
        assessment,
        approved,
        now,
    )
}

fn context_with(
    plan: &Plan,
    dependents: u32,
    capacity_delta_pct: f64,
    loses_data: bool,
    assessment: &Assessment,
    approved: bool,
    now: Timestamp,
) -> serde_json::Value {
    let (hour, weekday) = hour_and_weekday(now);
    let b = &plan.blast;
    let p = &plan.predicted;
    let az_loss_after = p.headroom_after_az_loss;
    json!({
        "risk": assessment.risk.as_str(),
        "blast": {
            "resources": b.resources,
            "regions": b.regions,
            "dependents": dependents,
            "capacity_delta_pct": capacity_pct(capacity_delta_pct),
        },
        "predicted": {
            "has_headroom": p.headroom.is_some(),
            "headroom": decimal(p.headroom.unwrap_or(1.0e6)),
            "has_az": az_loss_after.is_some(),
            "max_az_share": decimal(p.max_az_share.unwrap_or(0.0)),
            "headroom_after_az_loss": decimal(az_loss_after.unwrap_or(1.0e6)),
            // Lower after than before: the change makes a zone's loss hurt more. Either
            // side not computed (NaN) counts as worse.
            "az_loss_worse": match (az_loss_after, p.headroom_after_az_loss_before) {
                (Some(after), Some(before)) => {
                    after.is_nan() || before.is_nan() || after < before - 1e-9
                }
                (Some(_), None) => true,
                _ => false,
            },
        },
        "health": {"status": assessment.health.as_str()},
        "reversible": plan.reversible,
        "loses_data": loses_data,
        "destructive": plan.destructive,
        "rollback": plan.rollback,
        "approved": approved,
        "time": {"hour": hour, "weekday": weekday},
        "agent": {
            "actions_5m": assessment.agent.actions_5m,
            "reverts_1h": assessment.agent.reverts_1h,
            // An anomaly score that could not be computed is the worst one.
            "anomaly": decimal(if assessment.agent.anomaly.is_nan() { 1.0 } else { assessment.agent.anomaly }),
            "baking": assessment.agent.baking,
            "rollouts_baking": assessment.agent.rollouts_baking,
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
                dependent_names: vec![],
            },
            predicted: Predicted {
                headroom,
                ..Default::default()
            },
            resource: ResourceAttrs {
                env: env.into(),
                kind: "service".into(),
                tier: "critical".into(),
                dependents,
                ..Default::default()
            },
            contained: vec![],
            reversible: true,
            loses: vec![],
            destructive: verb == Verb::Delete,
            rollback: false,
            min_risk: None,
            summary: String::new(),
            hash: String::new(),
        }
    }

    /// `rollouts` of the agent's changes are baking, besides one scale-up.
    fn decide(
        engine: &PolicyEngine,
        p: &Plan,
        health: HealthStatus,
        rollouts: u32,
    ) -> PolicyOutcome {
        let assessment = Assessment {
            risk: Risk::Medium,
            health,
            agent: AgentStats {
                baking: rollouts + 1,
                rollouts_baking: rollouts,
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
    fn data_nothing_can_bring_back_is_never_destroyed_in_prod() {
        let e = PolicyEngine::default_pack().unwrap();
        let healthy = HealthStatus::Healthy;
        for env in ["prod", "unknown"] {
            let mut p = plan(Verb::Delete, env, 0, 0.0, None);
            p.loses = vec!["the items of table orders: no backup".into()];
            let out = decide(&e, &p, healthy, 0);
            assert!(
                matches!(&out, PolicyOutcome::Deny(r) if r.contains(&"no-data-loss-in-prod".to_string())),
                "{env}: {out:?}"
            );
        }
        // With the backup taken, the same delete is only held for an operator.
        let mut kept = plan(Verb::Delete, "prod", 0, 0.0, None);
        kept.loses.clear();
        assert_eq!(
            decide(&e, &kept, healthy, 0),
            PolicyOutcome::Hold(vec!["prod-destructive-needs-approval".into()])
        );
        // Outside prod the loss is the team's to decide.
        let mut staging = plan(Verb::Delete, "staging", 0, 0.0, None);
        staging.loses = vec!["3 object(s) in bucket scratch".into()];
        assert!(matches!(
            decide(&e, &staging, healthy, 0),
            PolicyOutcome::Allow(_)
        ));
    }

    /// Found by `tests/fuzz.rs` (`a_number_that_could_not_be_computed_is_never_judged_more_leniently`):
    /// a NaN capacity change read as 0% and slipped past every rule about cuts.
    #[test]
    fn r_fuzz_nan_capacity_change_is_judged_as_a_full_cut() {
        let e = PolicyEngine::default_pack().unwrap();
        let cut = plan(Verb::Scale, "prod", 0, -40.0, Some(1.0));
        let unknown = plan(Verb::Scale, "prod", 0, f64::NAN, Some(1.0));
        let healthy = HealthStatus::Healthy;
        assert_eq!(
            decide(&e, &cut, healthy, 0),
            PolicyOutcome::Deny(vec!["headroom-floor".into()])
        );
        assert_eq!(
            decide(&e, &unknown, healthy, 0),
            PolicyOutcome::Deny(vec!["headroom-floor".into()])
        );
    }

    /// Found by `tests/fuzz.rs`: a NaN zone-loss headroom (after or before the change)
    /// made the change look no worse for a zone's loss, so `survive-zone-loss` never fired.
    #[test]
    fn r_fuzz_nan_zone_loss_headroom_counts_as_worse() {
        let e = PolicyEngine::default_pack().unwrap();
        for (after, before) in [(f64::NAN, 1.5), (0.5, f64::NAN)] {
            let mut p = plan(Verb::Scale, "staging", 0, 10.0, None);
            p.predicted.headroom_after_az_loss = Some(after);
            p.predicted.headroom_after_az_loss_before = Some(before);
            let c = context_json(
                &p,
                &Assessment {
                    risk: Risk::Low,
                    health: HealthStatus::Healthy,
                    agent: AgentStats::default(),
                },
                false,
                0,
            );
            assert_eq!(
                c["predicted"]["az_loss_worse"],
                json!(true),
                "{after} after, {before} before"
            );
            assert_eq!(
                decide(&e, &p, HealthStatus::Healthy, 0),
                PolicyOutcome::Deny(vec!["survive-zone-loss".into()]),
                "{after} after, {before} before"
            );
        }
    }

    #[test]
    fn every_default_policy_explains_itself_with_values_that_resolve() {
        let e = PolicyEngine::default_pack().unwrap();
        assert_eq!(
            e.unexplained(),
            Vec::<String>::new(),
            "policies without @reason"
        );
        let mut p = plan(Verb::Delete, "prod", 2, -60.0, Some(0.94));
        p.blast.watch = vec!["checkout".into(), "search".into(), "cart".into()];
        p.resource.service = "checkout".into();
        let assessment = Assessment {
            risk: Risk::Critical,
            health: HealthStatus::Degraded,
            agent: AgentStats::default(),
        };
        for id in e.texts.keys() {
            let text = e.explain(id, &p, &assessment, false, 0).unwrap();
            assert!(
                !text.contains('{'),
                "{id}: a placeholder names nothing: {text}"
            );
            if id != "default-permit" {
                assert!(text.contains("Would pass: "), "{id}: no @pass: {text}");
            }
        }
        let floor = e
            .explain("headroom-floor", &p, &assessment, false, 0)
            .unwrap();
        assert!(floor.contains("headroom 0.94"), "{floor}");
        assert!(floor.contains("the floor is 1.2"), "{floor}");
        let deps = e
            .explain("no-delete-with-live-dependents", &p, &assessment, false, 0)
            .unwrap();
        assert!(deps.contains("2 live dependents"), "{deps}");
        assert!(deps.contains("search, cart"), "{deps}");
        // A reason about a contained resource is explained with that resource's values.
        let c = Contained {
            addr: "sim:service/payments".parse().unwrap(),
            resource: ResourceAttrs {
                env: "prod".into(),
                service: "payments".into(),
                ..Default::default()
            },
            dependents: 5,
            capacity_delta_pct: -100.0,
            loses_data: false,
        };
        p.contained = vec![c];
        let via = e
            .explain(
                "no-delete-with-live-dependents on sim:service/payments",
                &p,
                &assessment,
                false,
                0,
            )
            .unwrap();
        assert!(
            via.contains("`sim:service/payments` has 5 live dependents"),
            "{via}"
        );
        assert_eq!(e.explain("rate-limit", &p, &assessment, false, 0), None);
    }

    #[test]
    fn a_pack_without_reasons_is_reported_and_falls_back_to_hold_texts() {
        let e = PolicyEngine::new(
            "@id(\"p\") permit (principal, action, resource);\n\
             @id(\"h\") @hold(\"why\") forbid (principal, action, resource) when { context.destructive };",
            SCHEMA,
        )
        .unwrap();
        assert_eq!(e.unexplained(), ["h", "p"]);
        let p = plan(Verb::Delete, "prod", 0, 0.0, None);
        let a = Assessment {
            risk: Risk::High,
            health: HealthStatus::Healthy,
            agent: AgentStats::default(),
        };
        assert_eq!(e.explain("h", &p, &a, false, 0).as_deref(), Some("why"));
        assert_eq!(e.explain("p", &p, &a, false, 0), None);
    }

    #[test]
    fn a_headroom_that_could_not_be_computed_is_no_room_at_all() {
        let e = PolicyEngine::default_pack().unwrap();
        let h = HealthStatus::Healthy;
        let nan = plan(Verb::Scale, "prod", 0, -20.0, Some(f64::NAN));
        assert!(
            matches!(decide(&e, &nan, h, 0), PolicyOutcome::Deny(r) if r == ["headroom-floor"]),
            "a NaN headroom must not pass the floor"
        );
        let inf = plan(Verb::Scale, "prod", 0, -20.0, Some(f64::INFINITY));
        assert!(matches!(decide(&e, &inf, h, 0), PolicyOutcome::Allow(_)));
    }

    #[test]
    fn placeholders_render_numbers_decimals_and_lists() {
        let v = json!({"a": {"n": 3, "f": 0.5, "d": {"__extn": {"fn": "decimal", "arg": "0.9400"}},
                        "l": ["x", "y"], "s": "prod"}});
        assert_eq!(
            render("{a.n} {a.f} {a.d} {a.l} {a.s} {a.missing} {", &v),
            "3 0.5 0.94 x, y prod {a.missing} {"
        );
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
        // A scale-up baking is not a rollout: a release during scaling goes through.
        assert!(matches!(
            decide(&e, &plan(Verb::Deploy, "staging", 0, 0.0, None), h, 0),
            PolicyOutcome::Allow(_)
        ));
        // Missing signals: a capacity cut is held, an addition is not.
        let unknown = HealthStatus::Unknown;
        assert_eq!(
            decide(&e, &plan(Verb::Scale, "prod", 0, -20.0, None), unknown, 0),
            PolicyOutcome::Hold(vec!["blind-capacity-cut-needs-approval".into()])
        );
        assert!(matches!(
            decide(&e, &plan(Verb::Scale, "prod", 0, 20.0, None), unknown, 0),
            PolicyOutcome::Allow(_)
        ));
    }

    fn zoned(p: &mut Plan, after: f64, before: f64) {
        p.predicted.headroom_after_az_loss = Some(after);
        p.predicted.headroom_after_az_loss_before = Some(before);
        p.predicted.max_az_share = Some(0.8);
    }

    #[test]
    fn a_critical_service_must_survive_a_zone_loss() {
        let e = PolicyEngine::default_pack().unwrap();
        let h = HealthStatus::Healthy;
        // Capacity unchanged in total, concentrated in one zone: losing it would overload.
        let mut p = plan(Verb::Scale, "prod", 0, -10.0, Some(2.0));
        zoned(&mut p, 0.6, 1.3);
        assert_eq!(
            decide(&e, &p, h, 0),
            PolicyOutcome::Deny(vec!["survive-zone-loss".into()])
        );
        // Already unable to survive it, but this change does not make it worse: allowed.
        zoned(&mut p, 0.6, 0.6);
        assert!(matches!(decide(&e, &p, h, 0), PolicyOutcome::Allow(_)));
        // Worse but still survivable: allowed.
        zoned(&mut p, 1.1, 1.3);
        assert!(matches!(decide(&e, &p, h, 0), PolicyOutcome::Allow(_)));
        // A standard-tier service is the owner's call.
        zoned(&mut p, 0.6, 1.3);
        p.resource.tier = "standard".into();
        assert!(matches!(decide(&e, &p, h, 0), PolicyOutcome::Allow(_)));
    }

    #[test]
    fn a_contained_resource_is_decided_as_if_targeted() {
        // A rule written against one service applies when its environment is deleted,
        // and a rule on the environment applies to the services inside it.
        let text = format!(
            "{DEFAULT_POLICIES}\n@id(\"keep-payments\")\nforbid (principal, action == Airlock::Action::\"delete\", resource == Airlock::Resource::\"sim:service/payments\");\n@id(\"staging-frozen\")\nforbid (principal, action in Airlock::Action::\"mutation\", resource in Airlock::Resource::\"sim:environment/frozen\");"
        );
        let e = PolicyEngine::new(&text, SCHEMA).unwrap();
        let assessment = Assessment {
            risk: Risk::High,
            health: HealthStatus::Healthy,
            agent: AgentStats::default(),
        };
        let mut env = plan(Verb::Delete, "staging", 0, -100.0, None);
        env.target = "sim:environment/staging".parse().unwrap();
        env.resource.kind = "environment".into();
        let member = |name: &str, env: &str| Contained {
            addr: format!("sim:service/{name}").parse().unwrap(),
            resource: ResourceAttrs {
                env: env.into(),
                kind: "service".into(),
                tier: "critical".into(),
                service: name.into(),
                parents: vec![format!("sim:environment/{env}")],
                ..Default::default()
            },
            dependents: 0,
            capacity_delta_pct: -100.0,
            loses_data: false,
        };
        env.contained = vec![member("web", "staging")];
        let decide =
            |p: &Plan| e.evaluate_plan(PrincipalKind::Agent, "bot", p, &assessment, false, 0);
        assert!(matches!(decide(&env), PolicyOutcome::Allow(_)));
        env.contained.push(member("payments", "staging"));
        assert_eq!(
            decide(&env),
            PolicyOutcome::Deny(vec!["keep-payments on sim:service/payments".into()])
        );
        // Through the hierarchy: a service of the frozen environment, targeted directly.
        let mut svc = plan(Verb::Scale, "frozen", 0, 10.0, None);
        svc.resource.parents = vec!["sim:environment/frozen".into()];
        assert_eq!(
            decide(&svc),
            PolicyOutcome::Deny(vec!["staging-frozen".into()])
        );
        // A contained resource with live dependents outside the deletion is a deny too.
        let mut env = plan(Verb::Delete, "staging", 0, -100.0, None);
        let mut db = member("db", "staging");
        db.dependents = 2;
        env.contained = vec![db];
        assert_eq!(
            decide(&env),
            PolicyOutcome::Deny(vec![
                "no-delete-with-live-dependents on sim:service/db".into()
            ])
        );
        assert_eq!(
            reason_policy("keep-payments on sim:service/payments"),
            "keep-payments"
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
    fn a_misfit_is_denied_after_its_request_fitted_before() {
        // The fitting request's shape is remembered first; each misfit below has the same
        // principal, action and resource and differs from it in one place only.
        let e = PolicyEngine::default_pack().unwrap();
        let p = plan(Verb::Read, "prod", 0, 0.0, None);
        let assessment = Assessment {
            risk: Risk::Medium,
            health: HealthStatus::Healthy,
            agent: AgentStats::default(),
        };
        let fits = context_json(&p, &assessment, false, 0);
        let ask = |context: serde_json::Value| {
            e.evaluate(&PolicyInput {
                principal_kind: PrincipalKind::Agent,
                principal: "bot",
                verb: Verb::Read,
                resource: &p.target,
                attrs: &p.resource,
                context,
            })
        };
        assert!(matches!(ask(fits.clone()), PolicyOutcome::Allow(_)));
        assert!(
            matches!(ask(fits.clone()), PolicyOutcome::Allow(_)),
            "again"
        );
        let misfit = |edit: &dyn Fn(&mut serde_json::Value)| {
            let mut c = fits.clone();
            edit(&mut c);
            c
        };
        let misfits = [
            ("a string as a number", misfit(&|c| c["risk"] = json!(3))),
            (
                "a long as a string",
                misfit(&|c| c["time"]["hour"] = json!("3")),
            ),
            (
                "a decimal as a string",
                misfit(&|c| c["agent"]["anomaly"] = json!("0.5")),
            ),
            (
                "a field missing",
                misfit(&|c| {
                    c["blast"].as_object_mut().unwrap().remove("regions");
                }),
            ),
            (
                "a field unknown",
                misfit(&|c| c["health"]["extra"] = json!(true)),
            ),
            (
                "a record as a bool",
                misfit(&|c| c["predicted"] = json!(true)),
            ),
        ];
        for (what, context) in misfits {
            for round in 0..2 {
                match ask(context.clone()) {
                    PolicyOutcome::Deny(r) => {
                        assert!(
                            r[0].starts_with(EVALUATION_ERROR),
                            "{what}, round {round}: {r:?}"
                        )
                    }
                    other => panic!("{what}, round {round}: expected deny, got {other:?}"),
                }
            }
        }
        // Other values of the remembered shape are still decided on their values.
        let mut destructive = fits.clone();
        destructive["destructive"] = json!(true);
        assert!(
            matches!(ask(fits), PolicyOutcome::Allow(_)),
            "after the misfits"
        );
        assert_eq!(
            request_shape_of(&destructive),
            request_shape_of(&context_json(&p, &assessment, false, 0)),
            "values do not change the shape"
        );
    }

    /// The shape a read by `bot` on `prod`'s plan target with `context` is remembered by.
    fn request_shape_of(context: &serde_json::Value) -> String {
        let p = plan(Verb::Read, "prod", 0, 0.0, None);
        request_shape(
            &uid("Airlock::Agent", "bot").unwrap(),
            &uid("Airlock::Action", "read").unwrap(),
            &uid("Airlock::Resource", &p.target.to_string()).unwrap(),
            context,
        )
    }

    #[test]
    fn weekday_and_hour_are_utc() {
        // 2026-11-29 is a Sunday; 16:55 UTC.
        assert_eq!(hour_and_weekday(1_795_971_300_000), (16, 0));
    }
}
