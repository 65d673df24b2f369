//! What an agent asks for: an [`ActionRequest`] with a [`Verb`].

use crate::addr::ResourceAddr;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// What the agent asks a provider to do. Every verb except `read` is a mutation.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Verb {
    Read,
    Create,
    Update,
    Scale,
    Deploy,
    Restart,
    Delete,
    Exec,
}

impl Verb {
    /// Every verb, in a stable order.
    pub const ALL: [Verb; 8] = [
        Verb::Read,
        Verb::Create,
        Verb::Update,
        Verb::Scale,
        Verb::Deploy,
        Verb::Restart,
        Verb::Delete,
        Verb::Exec,
    ];
    /// The verb's wire name, also its Cedar action id.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Read => "read",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Scale => "scale",
            Verb::Deploy => "deploy",
            Verb::Restart => "restart",
            Verb::Delete => "delete",
            Verb::Exec => "exec",
        }
    }
    /// Whether the verb changes anything.
    pub fn is_mutation(self) -> bool {
        self != Verb::Read
    }
}

impl fmt::Display for Verb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown verb name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown verb `{0}`: expected one of read, create, update, scale, deploy, restart, delete, exec"
)]
pub struct UnknownVerb(pub String);

impl FromStr for Verb {
    type Err = UnknownVerb;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Verb::ALL
            .into_iter()
            .find(|v| v.as_str() == s.trim().to_ascii_lowercase())
            .ok_or_else(|| UnknownVerb(s.to_string()))
    }
}

/// What an agent asks for. The agent's identity comes from its bearer token, never from the
/// body; unknown fields (such as `agent`) are refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"provider": "sim", "verb": "scale", "target": "sim:service/checkout",
    "params": {"replicas": 6}, "intent": "evening traffic is falling"}))]
pub struct ActionRequest {
    /// The provider to run the action, e.g. `sim`.
    pub provider: String,
    pub verb: Verb,
    pub target: ResourceAddr,
    /// Verb parameters, checked by the provider (`sim`: `replicas` and `az` for `scale`,
    /// `version` for `deploy`, `spec`/`services` for `create`). Values of keys that look
    /// secret are redacted before they reach the journal.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub params: serde_json::Map<String, serde_json::Value>,
    /// Free text: why the agent wants this.
    #[serde(default)]
    pub intent: String,
}

impl ActionRequest {
    /// A request with no parameters.
    pub fn new(verb: Verb, target: ResourceAddr) -> Self {
        Self {
            provider: target.provider().to_string(),
            verb,
            target,
            params: serde_json::Map::new(),
            intent: String::new(),
        }
    }
    /// Adds a parameter.
    pub fn param(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.params.insert(key.to_string(), value.into());
        self
    }
    /// Sets the free-text intent.
    pub fn intent(mut self, intent: &str) -> Self {
        self.intent = intent.to_string();
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_json_rejects_unknown_fields_and_verbs() {
        let ok: ActionRequest = serde_json::from_str(
            r#"{"provider":"sim","verb":"scale","target":"sim:svc/Checkout","params":{"replicas":4}}"#,
        )
        .unwrap();
        assert_eq!(ok.target.to_string(), "sim:service/checkout");
        let e = serde_json::from_str::<ActionRequest>(
            r#"{"provider":"sim","verb":"nuke","target":"sim:service/a"}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("unknown variant `nuke`"), "{e}");
        let e = serde_json::from_str::<ActionRequest>(
            r#"{"provider":"sim","verb":"read","target":"sim:service/a","agent":"root"}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("unknown field `agent`"), "{e}");
        assert_eq!("NUKE".parse::<Verb>().unwrap_err().0, "NUKE");
    }
}
