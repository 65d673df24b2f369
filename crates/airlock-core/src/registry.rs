//! The provider registry: each provider crate registers its kind, and `[[provider]]`
//! tables in `airlock.toml` name a kind, the name requests use, and the kind's own
//! settings. The registry checks the tables (every problem, each naming its table) and
//! builds the providers. Adding a provider is a crate with a [`ProviderKind`] and one
//! registration line where the binary wires the registry.

use crate::provider::Provider;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// One `[[provider]]` table: which kind, under which name, with what settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ProviderTable {
    /// The registered kind (`shell`, `tool`, …; `airlock providers` lists them).
    pub kind: String,
    /// The name requests use (`"provider": "…"`); the kind when omitted.
    #[serde(default)]
    pub name: Option<String>,
    /// The kind's own settings: every other key of the table.
    #[serde(flatten)]
    pub settings: Map<String, Value>,
}

impl ProviderTable {
    /// A table of `kind` named after it, with no settings.
    pub fn of(kind: &str) -> Self {
        Self {
            kind: kind.to_string(),
            name: None,
            settings: Map::new(),
        }
    }

    /// The name requests use.
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.kind)
    }
}

/// What a kind's builder gets: the table's name and settings, and server-wide defaults.
#[derive(Debug, Clone)]
pub struct BuildContext {
    pub name: String,
    pub settings: Map<String, Value>,
    /// The environment assumed where a resource does not show one (`[hook] default_env`).
    pub default_env: String,
}

/// A kind of provider, as its crate registers it.
#[async_trait]
pub trait ProviderKind: Send + Sync {
    /// The kind's name in `[[provider]] kind = "…"`.
    fn kind(&self) -> &'static str;
    /// One line for `airlock providers` and error messages.
    fn describe(&self) -> &'static str;
    /// Whether its verbs are offered as MCP tools (hook providers are not: their callers
    /// are coding agents' hooks).
    fn offers_tools(&self) -> bool {
        true
    }
    /// Problems with a table's settings, each naming its key; empty when fine.
    fn check(&self, settings: &Map<String, Value>) -> Vec<String>;
    /// Builds the provider (may connect to the system it adapts).
    async fn build(&self, ctx: BuildContext) -> Result<Arc<dyn Provider>, String>;
    /// Every provider the table makes: the one requests name, first, and any companion
    /// (the `aws` kind's hands-off `aws-cli`, which the hook plans CLI commands with).
    /// Only the first offers tools.
    async fn build_all(&self, ctx: BuildContext) -> Result<Vec<Arc<dyn Provider>>, String> {
        Ok(vec![self.build(ctx).await?])
    }
}

/// The registered kinds.
#[derive(Clone, Default)]
pub struct Registry {
    kinds: BTreeMap<&'static str, Arc<dyn ProviderKind>>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.kinds.keys()).finish()
    }
}

impl Registry {
    /// Registers a kind (a later registration of the same name replaces the earlier).
    pub fn with(mut self, kind: impl ProviderKind + 'static) -> Self {
        self.kinds.insert(kind.kind(), Arc::new(kind));
        self
    }

    /// The kind called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn ProviderKind>> {
        self.kinds.get(name)
    }

    /// Every registered kind, by name.
    pub fn kinds(&self) -> impl Iterator<Item = &Arc<dyn ProviderKind>> {
        self.kinds.values()
    }

    /// Every problem with `tables`, each naming its table: unknown kinds, names used twice
    /// (also against `taken`, names other parts of the config already use), and each
    /// kind's own checks of its settings.
    pub fn check(&self, tables: &[ProviderTable], taken: &[&str]) -> Vec<String> {
        let mut problems = Vec::new();
        for (i, t) in tables.iter().enumerate() {
            let at = format!("provider[{i}]");
            let name = t.name();
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            {
                problems.push(format!(
                    "{at}.name: `{name}` must be lower-case letters, digits and `-`"
                ));
            }
            if tables[..i].iter().any(|o| o.name() == name) || taken.contains(&name) {
                problems.push(format!("{at}.name: `{name}` is used twice"));
            }
            match self.get(&t.kind) {
                None => {
                    let known: Vec<&str> = self.kinds.keys().copied().collect();
                    problems.push(format!(
                        "{at}.kind: unknown provider kind `{}`; known kinds: {}",
                        t.kind,
                        known.join(", ")
                    ));
                }
                Some(kind) => problems.extend(
                    kind.check(&t.settings)
                        .into_iter()
                        .map(|p| format!("{at}.{p}")),
                ),
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Dummy;

    #[async_trait]
    impl ProviderKind for Dummy {
        fn kind(&self) -> &'static str {
            "dummy"
        }
        fn describe(&self) -> &'static str {
            "a kind for tests"
        }
        fn check(&self, settings: &Map<String, Value>) -> Vec<String> {
            settings
                .keys()
                .filter(|k| *k != "size")
                .map(|k| format!("`{k}`: unknown setting"))
                .collect()
        }
        async fn build(&self, _ctx: BuildContext) -> Result<Arc<dyn Provider>, String> {
            Err("not built in tests".into())
        }
    }

    #[test]
    fn tables_are_checked_against_the_registered_kinds() {
        let r = Registry::default().with(Dummy);
        let t: Vec<ProviderTable> = serde_json::from_value(serde_json::json!([
            {"kind": "dummy", "size": 3},
            {"kind": "dummy", "colour": "red"},
            {"kind": "cloud", "name": "Bad Name"},
        ]))
        .unwrap();
        assert_eq!(t[0].name(), "dummy");
        assert_eq!(t[0].settings["size"], 3);
        let p = r.check(&t, &["sim"]);
        assert_eq!(
            p,
            vec![
                "provider[1].name: `dummy` is used twice".to_string(),
                "provider[1].`colour`: unknown setting".to_string(),
                "provider[2].name: `Bad Name` must be lower-case letters, digits and `-`"
                    .to_string(),
                "provider[2].kind: unknown provider kind `cloud`; known kinds: dummy".to_string(),
            ]
        );
        assert!(r.check(&t[..1], &[]).is_empty());
        assert_eq!(
            r.check(&t[..1], &["dummy"]),
            vec!["provider[0].name: `dummy` is used twice".to_string()]
        );
    }
}
