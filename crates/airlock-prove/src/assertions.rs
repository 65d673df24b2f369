//! Assertions on a run's scorecard: `METRIC OP VALUE`, e.g. `availability >= 0.999`,
//! `destructive_applied == 0`, `time_to_mitigate_s <= 120`, `mitigated == true`.
//!
//! A metric is any numeric or boolean field of the scorecard. A metric that is absent
//! because there was nothing to measure (`time_to_mitigate_s` when there was no incident)
//! counts as 0.
//!
//! `agent.ID.FIELD` names a field of one acting agent's row (`agent.scaler.reverted == 0`,
//! `agent.pusher.quarantined == true`); it is checked only in runs where that agent acts.

use crate::score::{AgentCard, Scorecard};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    Lt,
    Le,
    Eq,
    Ne,
    Ge,
    Gt,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Eq => "==",
            Op::Ne => "!=",
            Op::Ge => ">=",
            Op::Gt => ">",
        }
    }

    fn holds(self, a: f64, b: f64) -> bool {
        match self {
            Op::Lt => a < b,
            Op::Le => a <= b,
            Op::Eq => a == b,
            Op::Ne => a != b,
            Op::Ge => a >= b,
            Op::Gt => a > b,
        }
    }
}

/// What an assertion measures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Metric {
    /// A field of the run's scorecard.
    Card(String),
    /// A field of one agent's row: `agent.ID.FIELD`.
    Agent { id: String, field: String },
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Metric::Card(m) => f.write_str(m),
            Metric::Agent { id, field } => write!(f, "agent.{id}.{field}"),
        }
    }
}

/// One parsed assertion.
#[derive(Debug, Clone, PartialEq)]
pub struct Assertion {
    pub metric: Metric,
    pub op: Op,
    pub value: f64,
}

impl fmt::Display for Assertion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.metric, self.op.as_str(), self.value)
    }
}

/// An assertion's verdict on one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    /// The assertion as written.
    pub assertion: String,
    /// The metric's value in this run.
    pub actual: f64,
    pub passed: bool,
}

/// The metrics assertions may name: the scorecard's numeric and boolean fields.
pub fn metrics() -> Vec<String> {
    match serde_json::to_value(Scorecard::default()) {
        Ok(serde_json::Value::Object(m)) => m.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

impl Assertion {
    /// Parses `METRIC OP VALUE`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let ops = [
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("==", Op::Eq),
            ("!=", Op::Ne),
            ("<", Op::Lt),
            (">", Op::Gt),
        ];
        let Some((at, len, op)) = ops
            .iter()
            .filter_map(|(s, op)| text.find(s).map(|i| (i, s.len(), *op)))
            .min_by_key(|(i, len, _)| (*i, usize::MAX - len))
        else {
            return Err(format!(
                "`{text}`: expected `METRIC OP VALUE` with OP one of <, <=, ==, !=, >=, >"
            ));
        };
        let name = text[..at].trim();
        let raw = text[at + len..].trim();
        let metric = if let Some(rest) = name.strip_prefix("agent.") {
            // Principal ids may contain dots; the field is the last part.
            let Some((id, field)) = rest.rsplit_once('.').filter(|(id, _)| !id.is_empty()) else {
                return Err(format!(
                    "`{text}`: expected `agent.ID.FIELD`, e.g. `agent.scaler.reverted`"
                ));
            };
            let fields = AgentCard::fields();
            if !fields.iter().any(|f| f == field) {
                return Err(format!(
                    "`{text}`: unknown agent field `{field}`; fields are {}",
                    fields.join(", ")
                ));
            }
            Metric::Agent {
                id: id.to_string(),
                field: field.to_string(),
            }
        } else {
            let known = metrics();
            if !known.iter().any(|m| m == name) {
                return Err(format!(
                    "`{text}`: unknown metric `{name}`; metrics are {}, or `agent.ID.FIELD`",
                    known.join(", ")
                ));
            }
            Metric::Card(name.to_string())
        };
        let value = match raw {
            "true" => 1.0,
            "false" => 0.0,
            _ => raw
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| format!("`{text}`: `{raw}` is not a number"))?,
        };
        Ok(Self { metric, op, value })
    }

    /// The agent an `agent.ID.FIELD` assertion names.
    pub fn agent(&self) -> Option<&str> {
        match &self.metric {
            Metric::Agent { id, .. } => Some(id),
            Metric::Card(_) => None,
        }
    }

    /// The metric's value in a run; `None` when it names an agent that does not act in
    /// the run.
    pub fn actual(&self, card: &Scorecard, agents: &BTreeMap<String, AgentCard>) -> Option<f64> {
        match &self.metric {
            Metric::Card(m) => {
                let v = serde_json::to_value(card).unwrap_or_default();
                Some(match v.get(m) {
                    Some(serde_json::Value::Bool(b)) => f64::from(u8::from(*b)),
                    Some(n) => n.as_f64().unwrap_or(0.0),
                    None => 0.0,
                })
            }
            Metric::Agent { id, field } => Some(agents.get(id)?.value(field).unwrap_or(0.0)),
        }
    }

    /// Checks a run; `None` when the assertion names an agent that does not act in it.
    pub fn check(
        &self,
        text: &str,
        card: &Scorecard,
        agents: &BTreeMap<String, AgentCard>,
    ) -> Option<Check> {
        let actual = self.actual(card, agents)?;
        Some(Check {
            assertion: text.to_string(),
            actual,
            passed: self.op.holds(actual, self.value),
        })
    }
}

/// Checks every assertion of the list `field` (`assert`, `guarded_assert`, …) that applies
/// to a run: those on agents that do not act in it are left out. An entry that does not
/// parse is an error naming it (`assert[1]: …`), never left out: a check that cannot be
/// read must not pass by going missing.
pub fn check_all(
    field: &str,
    assertions: &[String],
    card: &Scorecard,
    agents: &BTreeMap<String, AgentCard>,
) -> Result<Vec<Check>, String> {
    let mut out = Vec::new();
    for (i, a) in assertions.iter().enumerate() {
        let parsed = Assertion::parse(a).map_err(|e| format!("{field}[{i}]: {e}"))?;
        out.extend(parsed.check(a, card, agents));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_checks() {
        let card = Scorecard {
            availability: 0.9995,
            destructive_applied: 1,
            mitigated: true,
            ..Default::default()
        };
        let none = BTreeMap::new();
        let ok = |t: &str| {
            Assertion::parse(t)
                .unwrap()
                .check(t, &card, &none)
                .unwrap()
                .passed
        };
        assert!(ok("availability >= 0.999"));
        assert!(!ok("availability>0.9999"));
        assert!(!ok("destructive_applied == 0"));
        assert!(ok("destructive_applied <= 1"));
        assert!(ok("mitigated == true"));
        assert!(ok("time_to_mitigate_s <= 120"), "absent counts as 0");
        assert!(ok("denied != 3"));
    }

    #[test]
    fn bad_assertions_say_what_is_wrong() {
        let e = Assertion::parse("availabilty >= 0.9").unwrap_err();
        assert!(e.contains("unknown metric `availabilty`"), "{e}");
        assert!(e.contains("slo_violation_minutes"), "{e}");
        let e = Assertion::parse("availability >= lots").unwrap_err();
        assert!(e.contains("`lots` is not a number"), "{e}");
        let e = Assertion::parse("availability").unwrap_err();
        assert!(e.contains("METRIC OP VALUE"), "{e}");
        let e = Assertion::parse("agent.scaler.revertd == 0").unwrap_err();
        assert!(e.contains("unknown agent field `revertd`"), "{e}");
        assert!(e.contains("needs_attention"), "{e}");
        let e = Assertion::parse("agent.scaler == 0").unwrap_err();
        assert!(e.contains("agent.ID.FIELD"), "{e}");
    }

    #[test]
    fn agent_assertions_check_that_agents_row_and_skip_runs_without_it() {
        let card = Scorecard::default();
        let mut agents = BTreeMap::new();
        agents.insert(
            "pusher.v2".to_string(),
            AgentCard {
                reverted: 2,
                quarantined: true,
                ..Default::default()
            },
        );
        let check = |t: &str| Assertion::parse(t).unwrap().check(t, &card, &agents);
        assert!(check("agent.pusher.v2.reverted >= 1").unwrap().passed);
        assert!(!check("agent.pusher.v2.reverted == 0").unwrap().passed);
        assert!(check("agent.pusher.v2.quarantined == true").unwrap().passed);
        assert_eq!(check("agent.scaler.reverted == 0"), None, "not in this run");
        let a = Assertion::parse("agent.pusher.v2.held < 3").unwrap();
        assert_eq!(a.agent(), Some("pusher.v2"));
        assert_eq!(a.to_string(), "agent.pusher.v2.held < 3");
        let checks = check_all(
            "assert",
            &[
                "agent.scaler.reverted == 0".into(),
                "availability >= 0".into(),
            ],
            &card,
            &agents,
        )
        .unwrap();
        assert_eq!(checks.len(), 1);
    }

    #[test]
    fn an_unreadable_assertion_is_an_error_naming_it_not_a_pass() {
        let e = check_all(
            "do_nothing_assert",
            &["incidents >= 1".into(), "incidnets >= 1".into()],
            &Scorecard::default(),
            &BTreeMap::new(),
        )
        .unwrap_err();
        assert!(
            e.starts_with("do_nothing_assert[1]: `incidnets >= 1`: unknown metric"),
            "{e}"
        );
    }
}
