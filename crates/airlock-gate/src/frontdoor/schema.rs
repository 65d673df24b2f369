//! A small JSON Schema check for tool arguments: the keywords tool schemas use (`type`,
//! `properties`, `required`, `additionalProperties`, `enum`, `minimum`, `maximum`,
//! `items`, `minLength`, `maxLength`). Unknown keywords are ignored, as the
//! specification asks; every problem is reported with its path.

use serde_json::Value;

/// Checks `value` against `schema`; returns every problem found, each naming its path.
pub fn check(schema: &Value, value: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    walk(schema, value, "arguments", &mut problems);
    problems
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_matches(want: &str, v: &Value) -> bool {
    let got = type_name(v);
    want == got
        || (want == "number" && got == "integer")
        || (want == "integer" && v.as_f64().is_some_and(|f| f.fract() == 0.0))
}

fn walk(schema: &Value, value: &Value, path: &str, problems: &mut Vec<String>) {
    let Some(s) = schema.as_object() else {
        return;
    };
    match s.get("type") {
        Some(Value::String(t)) if !type_matches(t, value) => {
            problems.push(format!("{path}: expected {t}, got {}", type_name(value)));
            return;
        }
        Some(Value::Array(ts))
            if !ts
                .iter()
                .filter_map(Value::as_str)
                .any(|t| type_matches(t, value)) =>
        {
            let names: Vec<&str> = ts.iter().filter_map(Value::as_str).collect();
            problems.push(format!(
                "{path}: expected one of {}, got {}",
                names.join("|"),
                type_name(value)
            ));
            return;
        }
        _ => {}
    }
    if let Some(Value::Array(allowed)) = s.get("enum")
        && !allowed.contains(value)
    {
        problems.push(format!(
            "{path}: {value} is not one of {}",
            Value::Array(allowed.clone())
        ));
    }
    if let Some(n) = value.as_f64() {
        if let Some(min) = s.get("minimum").and_then(Value::as_f64)
            && n < min
        {
            problems.push(format!("{path}: {n} is below the minimum {min}"));
        }
        if let Some(max) = s.get("maximum").and_then(Value::as_f64)
            && n > max
        {
            problems.push(format!("{path}: {n} is above the maximum {max}"));
        }
    }
    if let Some(text) = value.as_str() {
        let len = text.chars().count() as u64;
        if let Some(min) = s.get("minLength").and_then(Value::as_u64)
            && len < min
        {
            problems.push(format!("{path}: shorter than {min} characters"));
        }
        if let Some(max) = s.get("maxLength").and_then(Value::as_u64)
            && len > max
        {
            problems.push(format!("{path}: longer than {max} characters"));
        }
    }
    if let Some(obj) = value.as_object() {
        let props = s.get("properties").and_then(Value::as_object);
        if let Some(Value::Array(required)) = s.get("required") {
            for r in required.iter().filter_map(Value::as_str) {
                if !obj.contains_key(r) {
                    problems.push(format!("{path}: missing required property `{r}`"));
                }
            }
        }
        for (k, v) in obj {
            match props.and_then(|p| p.get(k)) {
                Some(sub) => walk(sub, v, &format!("{path}.{k}"), problems),
                None => match s.get("additionalProperties") {
                    Some(Value::Bool(false)) => {
                        let known: Vec<&str> = props
                            .map(|p| p.keys().map(String::as_str).collect())
                            .unwrap_or_default();
                        problems.push(format!(
                            "{path}: unknown property `{k}` (expected: {})",
                            known.join(", ")
                        ));
                    }
                    Some(sub @ Value::Object(_)) => walk(sub, v, &format!("{path}.{k}"), problems),
                    _ => {}
                },
            }
        }
    }
    if let (Some(items), Some(arr)) = (s.get("items"), value.as_array()) {
        for (i, v) in arr.iter().enumerate() {
            walk(items, v, &format!("{path}[{i}]"), problems);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::check;
    use serde_json::json;

    #[test]
    fn reports_every_problem_with_its_path() {
        let schema = json!({"type": "object", "additionalProperties": false,
            "required": ["target", "replicas"],
            "properties": {"target": {"type": "string", "minLength": 1},
                           "replicas": {"type": "integer", "minimum": 0},
                           "tags": {"type": "array", "items": {"type": "string"}},
                           "mode": {"enum": ["a", "b"]}}});
        assert!(check(&schema, &json!({"target": "x", "replicas": 3})).is_empty());
        let p = check(
            &schema,
            &json!({"replicas": -1, "tags": ["ok", 3], "mode": "c", "force": true}),
        );
        assert_eq!(
            p,
            [
                "arguments: missing required property `target`",
                "arguments.replicas: -1 is below the minimum 0",
                "arguments.tags[1]: expected string, got integer",
                "arguments.mode: \"c\" is not one of [\"a\",\"b\"]",
                "arguments: unknown property `force` (expected: target, replicas, tags, mode)",
            ]
        );
        assert_eq!(
            check(&schema, &json!("nope")),
            ["arguments: expected object, got string"]
        );
        // 3.0 is an integer; 3.5 is not.
        assert!(check(&json!({"type": "integer"}), &json!(3.0)).is_empty());
        assert_eq!(check(&json!({"type": "integer"}), &json!(3.5)).len(), 1);
    }
}
