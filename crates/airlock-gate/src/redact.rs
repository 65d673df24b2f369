//! Redaction of secrets before anything reaches the journal or a log.

use serde::{Deserialize, Serialize};
use serde_json::Value;

const SECRET_WORDS: [&str; 8] = [
    "token",
    "secret",
    "password",
    "passwd",
    "apikey",
    "api_key",
    "credential",
    "authorization",
];

const SECRET_PREFIXES: [&str; 6] = ["sk-", "ghp_", "gho_", "xoxb-", "AKIA", "Bearer "];

/// What counts as a secret. Keys are matched case-insensitively by substring; string
/// values are matched by prefix (a key `password` or a value `ghp_…` is redacted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Redactor {
    /// Substrings of key names whose values are secrets.
    pub keys: Vec<String>,
    /// Prefixes of string values that are secrets wherever they appear.
    pub value_prefixes: Vec<String>,
}

impl Default for Redactor {
    fn default() -> Self {
        Self {
            keys: SECRET_WORDS.iter().map(|s| s.to_string()).collect(),
            value_prefixes: SECRET_PREFIXES.iter().map(|s| s.to_string()).collect(),
        }
    }
}

const REDACTED: &str = "[redacted]";

impl Redactor {
    /// A copy of `v` with secrets replaced by `"[redacted]"`, at any depth.
    pub fn redact(&self, v: &Value) -> Value {
        match v {
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| {
                        let lower = k.to_ascii_lowercase();
                        if self
                            .keys
                            .iter()
                            .any(|w| !w.is_empty() && lower.contains(&w.to_ascii_lowercase()))
                        {
                            (k.clone(), Value::String(REDACTED.into()))
                        } else {
                            (k.clone(), self.redact(v))
                        }
                    })
                    .collect(),
            ),
            Value::Array(items) => Value::Array(items.iter().map(|i| self.redact(i)).collect()),
            Value::String(s) if self.secret_value(s) => Value::String(REDACTED.into()),
            other => other.clone(),
        }
    }

    fn secret_value(&self, s: &str) -> bool {
        self.value_prefixes
            .iter()
            .any(|p| !p.is_empty() && s.trim_start().starts_with(p.as_str()))
    }
}

/// [`Redactor::redact`] with the default patterns.
pub fn redact(v: &Value) -> Value {
    Redactor::default().redact(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_keys_are_redacted_at_any_depth() {
        let v = serde_json::json!({"replicas": 3, "env": {"DB_PASSWORD": "hunter2", "list": [{"api_key": "x"}]}});
        let r = redact(&v);
        assert_eq!(r["replicas"], 3);
        assert_eq!(r["env"]["DB_PASSWORD"], "[redacted]");
        assert_eq!(r["env"]["list"][0]["api_key"], "[redacted]");
    }

    #[test]
    fn configured_patterns_catch_keys_and_values() {
        let r = Redactor {
            keys: vec!["Pin".into()],
            value_prefixes: vec!["xyz-".into()],
        };
        let v = serde_json::json!({"pin_code": "1234", "note": "xyz-abc", "args": ["xyz-1", "plain"], "token": "kept"});
        let out = r.redact(&v);
        assert_eq!(out["pin_code"], "[redacted]");
        assert_eq!(out["note"], "[redacted]");
        assert_eq!(out["args"], serde_json::json!(["[redacted]", "plain"]));
        // Only the configured patterns apply.
        assert_eq!(out["token"], "kept");
        let d = redact(&serde_json::json!({"msg": "ghp_abcdef", "ok": "fine"}));
        assert_eq!(d["msg"], "[redacted]");
        assert_eq!(d["ok"], "fine");
    }
}
