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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
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
                    .map(|(k, v)| (k.clone(), self.redact_field(k, v)))
                    .collect(),
            ),
            Value::Array(items) => Value::Array(items.iter().map(|i| self.redact(i)).collect()),
            Value::String(s) if self.secret_value(s) => Value::String(REDACTED.into()),
            Value::String(s) => Value::String(self.redact_text(s)),
            other => other.clone(),
        }
    }

    /// What `redact` makes of the value `v` of an object's field `key`: so a field added to
    /// an object already redacted is redacted as it would have been with the rest.
    pub fn redact_field(&self, key: &str, v: &Value) -> Value {
        if self.secret_key(key) {
            Value::String(REDACTED.into())
        } else {
            self.redact(v)
        }
    }

    fn secret_key(&self, key: &str) -> bool {
        self.keys.iter().any(|w| {
            !w.is_empty()
                && key
                    .as_bytes()
                    .windows(w.len())
                    .any(|part| part.eq_ignore_ascii_case(w.as_bytes()))
        })
    }

    /// Secrets inside free text, such as a command line: `KEY=VALUE` where the key names a
    /// secret, a word with a secret prefix, and the word after `Bearer`.
    pub fn redact_text(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut after_bearer = false;
        for (i, piece) in text.split(' ').enumerate() {
            if i > 0 {
                out.push(' ');
            }
            let word = piece.trim_matches(|c| matches!(c, '"' | '\'' | ','));
            if after_bearer && !word.is_empty() {
                out.push_str(&piece.replace(word, REDACTED));
                after_bearer = false;
                continue;
            }
            if word.eq_ignore_ascii_case("bearer") {
                after_bearer = true;
                out.push_str(piece);
                continue;
            }
            if let Some((key, value)) = word.split_once(['=', ':'])
                && !value.is_empty()
                && self.secret_key(key)
            {
                out.push_str(&piece.replace(value, REDACTED));
                continue;
            }
            if self
                .value_prefixes
                .iter()
                .any(|p| !p.trim().is_empty() && word.starts_with(p.trim()))
            {
                out.push_str(&piece.replace(word, REDACTED));
                continue;
            }
            out.push_str(piece);
        }
        out
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

    #[test]
    fn secrets_inside_command_lines_are_redacted() {
        let r = Redactor::default();
        assert_eq!(
            r.redact_text("export AWS_SECRET_ACCESS_KEY=abc123 && aws s3 ls"),
            "export AWS_SECRET_ACCESS_KEY=[redacted] && aws s3 ls"
        );
        assert_eq!(
            r.redact_text("curl -H 'Authorization: Bearer xyz.789' https://api"),
            "curl -H 'Authorization: Bearer [redacted]' https://api"
        );
        assert_eq!(
            r.redact_text("gh auth login --with-token ghp_0123"),
            "gh auth login --with-token [redacted]"
        );
        assert_eq!(
            r.redact_text("kubectl delete ns payments"),
            "kubectl delete ns payments"
        );
        let v =
            redact(&serde_json::json!({"command": "PGPASSWORD=hunter2 psql -c 'drop table x'"}));
        assert_eq!(v["command"], "PGPASSWORD=[redacted] psql -c 'drop table x'");
    }
}
