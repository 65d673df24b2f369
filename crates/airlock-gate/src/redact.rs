//! Redaction of secrets before anything reaches the journal or a log.

use serde_json::Value;

const SECRET_WORDS: [&str; 7] = [
    "token",
    "secret",
    "password",
    "passwd",
    "apikey",
    "api_key",
    "credential",
];

/// A copy of `v` with the values of secret-looking keys replaced by `"[redacted]"`.
pub fn redact(v: &Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let lower = k.to_ascii_lowercase();
                    if SECRET_WORDS.iter().any(|w| lower.contains(w)) {
                        (k.clone(), Value::String("[redacted]".into()))
                    } else {
                        (k.clone(), redact(v))
                    }
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redact).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn secret_keys_are_redacted_at_any_depth() {
        let v = serde_json::json!({"replicas": 3, "env": {"DB_PASSWORD": "hunter2", "list": [{"api_key": "x"}]}});
        let r = super::redact(&v);
        assert_eq!(r["replicas"], 3);
        assert_eq!(r["env"]["DB_PASSWORD"], "[redacted]");
        assert_eq!(r["env"]["list"][0]["api_key"], "[redacted]");
    }
}
