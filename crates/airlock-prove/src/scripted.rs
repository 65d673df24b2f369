//! Requests at fixed times of the scored run, as a scenario writes them: the `script`
//! agent's steps and `[[human]]` changes. One reader and one validation serve both, so a
//! step means the same thing wherever it is written.

use crate::scenario::Scenario;
use airlock_core::{ActionRequest, ResourceAddr, Verb};
use airlock_sim::Secs;
use serde::{Deserialize, Serialize};

/// A request at a fixed time: `{ at = "1h", verb = "scale", target = "service/orders",
/// params = { replicas = 4 } }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    /// When, counted from the start of the scored run.
    pub at: Secs,
    /// The verb: `scale`, `deploy`, `restart`, `delete`, `create` (any verb name).
    pub verb: String,
    /// The resource on the sandbox, `KIND/NAME`: `service/orders` or `environment/prod`.
    pub target: String,
    /// The request's parameters, e.g. `{ replicas = 4, az = "us-east-a" }` for `scale`,
    /// `{ version = "v2" }` for `deploy`.
    #[serde(default)]
    #[schemars(with = "serde_json::Map<String, serde_json::Value>")]
    pub params: toml::Table,
    /// Why: kept with the request in the journal and the timeline.
    #[serde(default)]
    pub intent: Option<String>,
}

/// A validated step: when, and the request it makes.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// From the start of the scored run.
    pub at: Secs,
    pub request: ActionRequest,
}

const FIELDS: [&str; 5] = ["at", "verb", "target", "params", "intent"];

impl StepSpec {
    /// Reads a step from TOML (a `script` agent's `params.steps[i]`). Every problem names
    /// its field relative to the step (`verb: …`, or `: …` for the step itself).
    pub fn from_toml(v: &toml::Value) -> Result<Self, Vec<String>> {
        let Some(t) = v.as_table() else {
            return Err(vec![format!(
                ": expected a table with {}, got `{v}`",
                FIELDS.join(", ")
            )]);
        };
        let mut problems = Vec::new();
        for k in t.keys() {
            if !FIELDS.contains(&k.as_str()) {
                problems.push(format!(
                    ".{k}: unknown field; a step has {}",
                    FIELDS.join(", ")
                ));
            }
        }
        let mut string = |key: &str, required: bool| -> Option<String> {
            match t.get(key) {
                Some(toml::Value::String(s)) => Some(s.clone()),
                Some(other) => {
                    problems.push(format!(".{key}: expected a string, got `{other}`"));
                    None
                }
                None if required => {
                    problems.push(format!(".{key}: required"));
                    None
                }
                None => None,
            }
        };
        let verb = string("verb", true);
        let target = string("target", true);
        let intent = string("intent", false);
        let at = match t.get("at") {
            Some(toml::Value::String(s)) => Secs::parse(s).map_err(|e| format!(".at: {e}")),
            Some(toml::Value::Integer(i)) if *i >= 0 => Ok(Secs(i.unsigned_abs())),
            Some(other) => Err(format!(
                ".at: expected a duration such as `90m`, got `{other}`"
            )),
            None => Err(".at: required".into()),
        }
        .map_err(|e| problems.push(e))
        .ok();
        let params = match t.get("params") {
            Some(toml::Value::Table(p)) => Some(p.clone()),
            Some(other) => {
                problems.push(format!(".params: expected a table, got `{other}`"));
                None
            }
            None => Some(toml::Table::new()),
        };
        match (at, verb, target, params) {
            (Some(at), Some(verb), Some(target), Some(params)) if problems.is_empty() => Ok(Self {
                at,
                verb,
                target,
                params,
                intent,
            }),
            _ => Err(problems),
        }
    }

    /// Validates the step against the scenario's world and builds its request; `intent`
    /// is used when the step has none. Every problem names its field (`.verb: …`).
    pub fn check(&self, scenario: &Scenario, intent: &str) -> Result<Step, Vec<String>> {
        let mut problems = Vec::new();
        let verb = verb(&self.verb).map_err(|e| problems.push(e)).ok();
        let target = target(&self.target, verb, scenario)
            .map_err(|e| problems.push(format!(".target: {e}")))
            .ok();
        let params = match serde_json::to_value(&self.params) {
            Ok(serde_json::Value::Object(m)) => Some(m),
            _ => {
                problems.push(".params: cannot be read as request parameters".into());
                None
            }
        };
        match (verb, target, params) {
            (Some(verb), Some(target), Some(params)) if problems.is_empty() => {
                let mut request = ActionRequest::new(verb, target);
                request.params = params;
                request.intent = self.intent.clone().unwrap_or_else(|| intent.to_string());
                Ok(Step {
                    at: self.at,
                    request,
                })
            }
            _ => Err(problems),
        }
    }
}

/// Reads and validates a step written in TOML (a `script` agent's `params.steps[i]`),
/// reporting every problem at once, each naming its field (`.verb: …`).
pub fn read(v: &toml::Value, scenario: &Scenario, intent: &str) -> Result<Step, Vec<String>> {
    match StepSpec::from_toml(v) {
        Ok(spec) => spec.check(scenario, intent),
        Err(mut problems) => {
            // The fields that did read are checked too.
            let field = |k: &str| v.get(k).and_then(toml::Value::as_str);
            let verb = field("verb").and_then(|x| verb(x).map_err(|e| problems.push(e)).ok());
            if let Some(t) = field("target")
                && let Err(e) = target(t, verb, scenario)
            {
                problems.push(format!(".target: {e}"));
            }
            Err(problems)
        }
    }
}

fn verb(name: &str) -> Result<Verb, String> {
    name.parse::<Verb>().map_err(|_| {
        let all: Vec<&str> = Verb::ALL.iter().map(|v| v.as_str()).collect();
        format!(".verb: unknown verb `{name}`; verbs are {}", all.join(", "))
    })
}

/// `KIND/NAME` (or `sim:KIND/NAME`) as a sandbox address naming a declared service or
/// environment (a `create` may name a new one).
fn target(raw: &str, verb: Option<Verb>, scenario: &Scenario) -> Result<ResourceAddr, String> {
    let bare = raw.strip_prefix("sim:").unwrap_or(raw);
    let expected =
        || format!("`{raw}`: expected KIND/NAME, e.g. `service/checkout` or `environment/prod`");
    let (kind, name) = bare.split_once('/').ok_or_else(expected)?;
    let addr = ResourceAddr::new("sim", kind, name).map_err(|e| format!("`{raw}`: {e}"))?;
    let known = match kind {
        "service" => scenario.services.iter().any(|s| s.name == name),
        "environment" => scenario.services.iter().any(|s| s.env == name),
        _ => {
            return Err(format!(
                "`{raw}`: unknown kind `{kind}`; the sandbox has `service` and `environment`"
            ));
        }
    };
    if !known && verb != Some(Verb::Create) {
        return Err(format!("unknown {kind} `{name}`"));
    }
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario() -> Scenario {
        Scenario::from_toml(crate::FLAGSHIPS[2].1, "x").unwrap()
    }

    fn step(text: &str) -> toml::Value {
        toml::from_str::<toml::Table>(&format!("s = {text}")).unwrap()["s"].clone()
    }

    #[test]
    fn a_step_becomes_its_request() {
        let s = StepSpec::from_toml(&step(
            r#"{ at = "90m", verb = "scale", target = "service/checkout", params = { replicas = 4 } }"#,
        ))
        .unwrap();
        let st = s.check(&scenario(), "scripted").unwrap();
        assert_eq!(st.at, Secs(5400));
        assert_eq!(st.request.verb, Verb::Scale);
        assert_eq!(st.request.target.to_string(), "sim:service/checkout");
        assert_eq!(st.request.params["replicas"], 4);
        assert_eq!(st.request.intent, "scripted");
        let st = StepSpec::from_toml(&step(
            r#"{ at = 60, verb = "delete", target = "sim:environment/prod", intent = "why" }"#,
        ))
        .unwrap()
        .check(&scenario(), "scripted")
        .unwrap();
        assert_eq!(st.request.intent, "why");
    }

    #[test]
    fn every_bad_field_is_named() {
        let e = StepSpec::from_toml(&step(
            r#"{ at = "1h30", verb = 3, target = "service/checkout", colour = "red" }"#,
        ))
        .unwrap_err()
        .join("\n");
        assert!(e.contains(".at: invalid duration `1h30`"), "{e}");
        assert!(e.contains(".verb: expected a string"), "{e}");
        assert!(e.contains(".colour: unknown field"), "{e}");
        let e = StepSpec::from_toml(&step(r#"{ at = "1h", target = "x" }"#))
            .unwrap_err()
            .join("\n");
        assert!(e.contains(".verb: required"), "{e}");

        let s = scenario();
        let bad = |text: &str| {
            StepSpec::from_toml(&step(text))
                .unwrap()
                .check(&s, "x")
                .unwrap_err()
                .join("\n")
        };
        let e = bad(r#"{ at = "1h", verb = "scael", target = "service/checkout" }"#);
        assert!(
            e.contains(".verb: unknown verb `scael`; verbs are read, "),
            "{e}"
        );
        let e = bad(r#"{ at = "1h", verb = "scale", target = "checkout" }"#);
        assert!(e.contains(".target: `checkout`: expected KIND/NAME"), "{e}");
        let e = bad(r#"{ at = "1h", verb = "scale", target = "service/nope" }"#);
        assert!(e.contains(".target: unknown service `nope`"), "{e}");
        let e = bad(r#"{ at = "1h", verb = "delete", target = "environment/staging" }"#);
        assert!(e.contains(".target: unknown environment `staging`"), "{e}");
        let e = bad(r#"{ at = "1h", verb = "delete", target = "bucket/x" }"#);
        assert!(e.contains("unknown kind `bucket`"), "{e}");
    }
}
