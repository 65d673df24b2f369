//! Assertions on a run's scorecard: `METRIC OP VALUE`, e.g. `availability >= 0.999`,
//! `destructive_applied == 0`, `time_to_mitigate_s <= 120`, `mitigated == true`.
//!
//! A metric is any numeric or boolean field of the scorecard. A metric that is absent
//! because there was nothing to measure (`time_to_mitigate_s` when there was no incident)
//! counts as 0.

use crate::score::Scorecard;
use serde::{Deserialize, Serialize};
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

/// One parsed assertion.
#[derive(Debug, Clone, PartialEq)]
pub struct Assertion {
    pub metric: String,
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
        let metric = text[..at].trim().to_string();
        let raw = text[at + len..].trim();
        let known = metrics();
        if !known.contains(&metric) {
            return Err(format!(
                "`{text}`: unknown metric `{metric}`; metrics are {}",
                known.join(", ")
            ));
        }
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

    /// The metric's value in `card`.
    pub fn actual(&self, card: &Scorecard) -> f64 {
        let v = serde_json::to_value(card).unwrap_or_default();
        match v.get(&self.metric) {
            Some(serde_json::Value::Bool(b)) => f64::from(u8::from(*b)),
            Some(n) => n.as_f64().unwrap_or(0.0),
            None => 0.0,
        }
    }

    /// Checks `card`.
    pub fn check(&self, text: &str, card: &Scorecard) -> Check {
        let actual = self.actual(card);
        Check {
            assertion: text.to_string(),
            actual,
            passed: self.op.holds(actual, self.value),
        }
    }
}

/// Checks every assertion (unparsable ones were refused when the scenario loaded).
pub fn check_all(assertions: &[String], card: &Scorecard) -> Vec<Check> {
    assertions
        .iter()
        .filter_map(|a| Assertion::parse(a).ok().map(|p| p.check(a, card)))
        .collect()
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
        let ok = |t: &str| Assertion::parse(t).unwrap().check(t, &card).passed;
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
    }
}
