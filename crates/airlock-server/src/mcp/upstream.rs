//! Upstream MCP servers behind the gateway. Each `[[upstream]]` is a provider: its tools
//! are listed once at start, re-exposed under its name as a prefix, and every call to one
//! is planned (from the tool's annotations and the config's overrides), decided and
//! journaled like any other action before it is forwarded.

use airlock_core::{
    ActionRequest, Applied, Blast, Diff, Plan, Predicted, Provider, ProviderError, ResourceAddr,
    ResourceAttrs, Restored, Snapshot, Verb, VerbSpec, addr_name,
};
use airlock_gate::frontdoor::{Route, ToolDef};
use async_trait::async_trait;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::RunningService;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{RoleClient, ServiceExt};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

/// How a tool is undone: another tool of the same upstream, with arguments mapped from the
/// original call's (`args = { inverse_arg = "original_arg" }`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Inverse {
    /// The undoing tool, by the upstream's tool name.
    pub tool: String,
    /// Its arguments: each names the original call's argument whose value it takes.
    #[serde(default)]
    pub args: BTreeMap<String, String>,
}

/// Per-tool overrides of what the annotations say.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolOverride {
    /// The verb the tool counts as (default: from its annotations).
    pub verb: Option<Verb>,
    /// The argument that names the resource the tool acts on.
    pub resource_arg: Option<String>,
    /// Resource kind in the target address (default: the upstream's `kind`).
    pub kind: Option<String>,
    /// Environment of the resource (default: the upstream's `env`).
    pub env: Option<String>,
    /// An argument whose value is the environment (wins over `env` when present).
    pub env_arg: Option<String>,
    /// The tool that undoes this one; without it the tool is not reversible.
    pub inverse: Option<Inverse>,
    /// Not offered through the gateway at all.
    #[serde(default)]
    pub hidden: bool,
}

/// One `[[upstream]]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Prefix of its tools and the provider name of its resources (`notes` ⇒ `notes_get_note`).
    pub name: String,
    /// A command to spawn and speak MCP with over stdio.
    #[serde(default)]
    pub command: Vec<String>,
    /// Environment variables for the command.
    #[serde(default)]
    pub command_env: BTreeMap<String, String>,
    /// Or a streamable-HTTP endpoint.
    pub url: Option<String>,
    /// HTTP headers for `url` (for example an `Authorization` for the upstream).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Environment of everything behind this upstream, as policies see it.
    #[serde(default = "default_env")]
    pub env: String,
    /// Default resource kind in target addresses.
    #[serde(default = "default_kind")]
    pub kind: String,
    /// Longest a call to the upstream may take, in milliseconds.
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
    /// Per-tool overrides, by the upstream's tool name.
    #[serde(default)]
    pub tools: BTreeMap<String, ToolOverride>,
    /// Take the upstream's `readOnlyHint` at its word. MCP annotations are untrusted hints,
    /// so by default a tool is a read only when `tools.NAME.verb = "read"` says so; set this
    /// for an upstream you run yourself.
    #[serde(default)]
    pub trust_read_only_hints: bool,
}

fn default_env() -> String {
    "prod".into()
}
fn default_kind() -> String {
    "resource".into()
}
fn default_timeout() -> u64 {
    10_000
}

impl UpstreamConfig {
    /// Problems with this entry, each naming its field.
    pub fn problems(&self, i: usize) -> Vec<String> {
        let at = format!("upstream[{i}]");
        let mut p = Vec::new();
        let valid = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        };
        if !valid(&self.name) {
            p.push(format!(
                "{at}.name: `{}` must be non-empty and use a-z, 0-9 and `-`",
                self.name
            ));
        }
        if self.name == "sim" || self.name == "shell" || self.name == "tool" {
            p.push(format!(
                "{at}.name: `{}` is a built-in provider's name",
                self.name
            ));
        }
        match (self.command.is_empty(), &self.url) {
            (true, None) => p.push(format!("{at}: set `command` or `url`")),
            (false, Some(_)) => p.push(format!("{at}: set `command` or `url`, not both")),
            _ => {}
        }
        if let Some(u) = &self.url
            && !(u.starts_with("http://") || u.starts_with("https://"))
        {
            p.push(format!("{at}.url: `{u}` is not an http(s) URL"));
        }
        if !valid(&self.kind) {
            p.push(format!(
                "{at}.kind: `{}` must use a-z, 0-9 and `-`",
                self.kind
            ));
        }
        if self.timeout_ms == 0 {
            p.push(format!("{at}.timeout_ms: must be above 0"));
        }
        for (name, o) in &self.tools {
            if let Some(k) = &o.kind
                && !valid(k)
            {
                p.push(format!(
                    "{at}.tools.{name}.kind: `{k}` must use a-z, 0-9 and `-`"
                ));
            }
            if let Some(inv) = &o.inverse
                && inv.tool == *name
            {
                p.push(format!(
                    "{at}.tools.{name}.inverse: a tool cannot undo itself"
                ));
            }
        }
        p
    }
}

/// One tool of an upstream as the provider knows it.
#[derive(Debug, Clone)]
struct UpTool {
    def: rmcp::model::Tool,
    verb: Verb,
    destructive: bool,
    over: ToolOverride,
}

type Client = RunningService<RoleClient, ()>;

/// An upstream MCP server as a provider.
pub struct UpstreamProvider {
    config: UpstreamConfig,
    tools: BTreeMap<String, UpTool>,
    verbs: Vec<VerbSpec>,
    client: Mutex<Option<Arc<Client>>>,
}

/// Why an upstream could not be reached.
#[derive(Debug, thiserror::Error)]
#[error("upstream `{name}`: {detail}")]
pub struct UpstreamError {
    pub name: String,
    pub detail: String,
}

async fn connect(cfg: &UpstreamConfig) -> Result<Client, String> {
    let timeout = Duration::from_millis(cfg.timeout_ms.max(1000) * 2);
    let fut = async {
        if let Some(url) = &cfg.url {
            let mut headers = HashMap::new();
            for (k, v) in &cfg.headers {
                let name = axum::http::HeaderName::from_bytes(k.as_bytes())
                    .map_err(|e| format!("header `{k}`: {e}"))?;
                let value = axum::http::HeaderValue::from_str(v)
                    .map_err(|e| format!("header `{k}`: {e}"))?;
                headers.insert(name, value);
            }
            let transport = StreamableHttpClientTransport::from_config(
                StreamableHttpClientTransportConfig::with_uri(url.as_str()).custom_headers(headers),
            );
            ().serve(transport).await.map_err(|e| e.to_string())
        } else {
            let mut cmd = tokio::process::Command::new(&cfg.command[0]);
            cmd.args(&cfg.command[1..]).envs(&cfg.command_env);
            let transport = TokioChildProcess::new(cmd)
                .map_err(|e| format!("cannot start `{}`: {e}", cfg.command[0]))?;
            ().serve(transport).await.map_err(|e| e.to_string())
        }
    };
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "did not finish the MCP handshake within {} ms",
            timeout.as_millis()
        )),
    }
}

fn default_verb(name: &str, a: Option<&rmcp::model::ToolAnnotations>, trust: bool) -> Verb {
    // A server's word that a tool only reads is a hint (MCP): it counts only when trusted.
    let read_only = trust && a.and_then(|a| a.read_only_hint).unwrap_or(false);
    // The protocol's default for a tool that is not read-only is destructive.
    let destructive = a.and_then(|a| a.destructive_hint).unwrap_or(true);
    if read_only {
        Verb::Read
    } else if destructive {
        Verb::Delete
    } else if ["create", "add", "new", "put"]
        .iter()
        .any(|p| name.starts_with(p))
    {
        Verb::Create
    } else {
        Verb::Update
    }
}

impl UpstreamProvider {
    /// Connects, lists the upstream's tools and builds the provider.
    pub async fn connect(config: UpstreamConfig) -> Result<Self, UpstreamError> {
        let err = |detail: String| UpstreamError {
            name: config.name.clone(),
            detail,
        };
        let client = connect(&config).await.map_err(&err)?;
        let listed = tokio::time::timeout(
            Duration::from_millis(config.timeout_ms),
            client.list_all_tools(),
        )
        .await
        .map_err(|_| err("tools/list timed out".into()))?
        .map_err(|e| err(format!("tools/list failed: {e}")))?;
        let mut tools = BTreeMap::new();
        for def in listed {
            let over = config
                .tools
                .get(def.name.as_ref())
                .cloned()
                .unwrap_or_default();
            if over.hidden {
                continue;
            }
            let verb = over.verb.unwrap_or_else(|| {
                default_verb(
                    &def.name,
                    def.annotations.as_ref(),
                    config.trust_read_only_hints,
                )
            });
            let destructive = match over.verb {
                Some(v) => matches!(v, Verb::Delete | Verb::Exec),
                None => {
                    verb != Verb::Read
                        && def
                            .annotations
                            .as_ref()
                            .and_then(|a| a.destructive_hint)
                            .unwrap_or(true)
                }
            };
            tools.insert(
                def.name.to_string(),
                UpTool {
                    def,
                    verb,
                    destructive,
                    over,
                },
            );
        }
        for (name, o) in &config.tools {
            if let Some(inv) = &o.inverse
                && !tools.contains_key(&inv.tool)
            {
                return Err(err(format!(
                    "tools.{name}.inverse: the upstream has no tool `{}`",
                    inv.tool
                )));
            }
        }
        let mut verbs: Vec<VerbSpec> = Vec::new();
        for t in tools.values() {
            if !verbs.iter().any(|v| v.verb == t.verb) {
                verbs.push(VerbSpec {
                    verb: t.verb,
                    params: json!({"type": "object"}),
                    destructive: t.destructive,
                    read_only: t.verb == Verb::Read,
                    description: "a tool of an upstream MCP server",
                });
            }
        }
        Ok(Self {
            config,
            tools,
            verbs,
            client: Mutex::new(Some(Arc::new(client))),
        })
    }

    /// The upstream's name (its prefix).
    pub fn upstream_name(&self) -> &str {
        &self.config.name
    }

    /// The gateway's tools for this upstream.
    pub fn tool_defs(&self) -> Vec<ToolDef> {
        self.tools
            .iter()
            .map(|(name, t)| {
                let a = t.def.annotations.as_ref();
                ToolDef {
                    name: format!("{}_{}", self.config.name, name),
                    description: format!(
                        "{} [via upstream `{}`; decided by Airlock's policy as `{}`{}]",
                        t.def.description.as_deref().unwrap_or(""),
                        self.config.name,
                        t.verb,
                        if t.over.inverse.is_some() {
                            ", reversible"
                        } else {
                            ", not reversible"
                        }
                    ),
                    input_schema: Value::Object((*t.def.input_schema).clone()),
                    read_only: t.verb == Verb::Read,
                    destructive: t.destructive,
                    idempotent: a.and_then(|a| a.idempotent_hint).unwrap_or(false),
                    route: Route::Upstream {
                        provider: self.config.name.clone(),
                        tool: name.clone(),
                        verb: t.verb,
                        resource_kind: t
                            .over
                            .kind
                            .clone()
                            .unwrap_or_else(|| self.config.kind.clone()),
                        resource_arg: t.over.resource_arg.clone(),
                    },
                }
            })
            .collect()
    }

    fn tool_of(
        &self,
        params: &Map<String, Value>,
    ) -> Result<(&UpTool, Map<String, Value>), ProviderError> {
        let name = params
            .get("tool")
            .and_then(Value::as_str)
            .ok_or_else(|| ProviderError::InvalidParams("`tool` is required".into()))?;
        let tool = self.tools.get(name).ok_or_else(|| {
            ProviderError::InvalidParams(format!(
                "upstream `{}` has no tool `{name}`",
                self.config.name
            ))
        })?;
        let args = match params.get("arguments") {
            None => Map::new(),
            Some(Value::Object(m)) => m.clone(),
            Some(_) => {
                return Err(ProviderError::InvalidParams(
                    "`arguments` must be an object".into(),
                ));
            }
        };
        Ok((tool, args))
    }

    async fn client(&self) -> Result<Arc<Client>, ProviderError> {
        let mut slot = self.client.lock().await;
        if let Some(c) = slot.as_ref()
            && !c.is_closed()
        {
            return Ok(c.clone());
        }
        // The upstream went away (a crash, a restart): connect again, once per call. A
        // connection that cannot be made sent nothing.
        let c = Arc::new(connect(&self.config).await.map_err(|e| {
            ProviderError::Unreachable(format!("upstream `{}`: {e}", self.config.name))
        })?);
        *slot = Some(c.clone());
        Ok(c)
    }

    async fn call(&self, tool: &str, args: Map<String, Value>) -> Result<Value, ProviderError> {
        let client = self.client().await?;
        let mut params = CallToolRequestParams::new(tool.to_string());
        params.arguments = Some(args.clone());
        let name = &self.config.name;
        let res: CallToolResult = match tokio::time::timeout(
            Duration::from_millis(self.config.timeout_ms),
            client.call_tool(params),
        )
        .await
        {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                // The connection is gone or broken: the next call connects again.
                let mut slot = self.client.lock().await;
                if slot.as_ref().is_some_and(|c| Arc::ptr_eq(c, &client)) {
                    *slot = None;
                }
                return Err(ProviderError::Unavailable(format!(
                    "upstream `{name}` failed during `{tool}`: {e}"
                )));
            }
            Err(_) => {
                return Err(ProviderError::Unavailable(format!(
                    "upstream `{name}` did not answer `{tool}` within {} ms",
                    self.config.timeout_ms
                )));
            }
        };
        let content = serde_json::to_value(&res.content).unwrap_or(Value::Null);
        if res.is_error == Some(true) {
            let text: Vec<String> = res
                .content
                .iter()
                .filter_map(|c| c.as_text().map(|t| t.text.clone()))
                .collect();
            return Err(ProviderError::InvalidParams(format!(
                "upstream `{name}` tool `{tool}` answered with an error: {}",
                text.join(" ")
            )));
        }
        Ok(
            json!({"tool": tool, "arguments": args, "content": content, "structured": res.structured_content}),
        )
    }
}

#[async_trait]
impl Provider for UpstreamProvider {
    fn name(&self) -> &str {
        &self.config.name
    }
    fn verbs(&self) -> &[VerbSpec] {
        &self.verbs
    }
    async fn plan(&self, req: &ActionRequest) -> Result<Plan, ProviderError> {
        let (tool, args) = self.tool_of(&req.params)?;
        let name = tool.def.name.to_string();
        if req.verb != tool.verb {
            return Err(ProviderError::InvalidParams(format!(
                "tool `{name}` is a `{}`, not a `{}`",
                tool.verb, req.verb
            )));
        }
        let problems = airlock_gate::frontdoor::schema::check(
            &Value::Object((*tool.def.input_schema).clone()),
            &Value::Object(args.clone()),
        );
        if !problems.is_empty() {
            return Err(ProviderError::InvalidParams(problems.join("; ")));
        }
        let kind = tool
            .over
            .kind
            .clone()
            .unwrap_or_else(|| self.config.kind.clone());
        let expected = match tool.over.resource_arg.as_deref().and_then(|a| args.get(a)) {
            Some(Value::String(s)) => ResourceAddr::new(&self.config.name, &kind, &addr_name(s)),
            Some(other) => {
                ResourceAddr::new(&self.config.name, &kind, &addr_name(&other.to_string()))
            }
            None => ResourceAddr::new(&self.config.name, "tool", &addr_name(&name)),
        }
        .map_err(|e| ProviderError::InvalidParams(e.to_string()))?;
        if req.target != expected {
            return Err(ProviderError::InvalidParams(format!(
                "target `{}` does not match the tool's resource `{expected}`",
                req.target
            )));
        }
        let env = tool
            .over
            .env_arg
            .as_deref()
            .and_then(|a| args.get(a))
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| tool.over.env.clone())
            .unwrap_or_else(|| self.config.env.clone());
        let call = json!({"call": name, "arguments": args});
        let (before, after) = match tool.verb {
            Verb::Read => (Some(json!("as is")), Some(json!("as is"))),
            Verb::Create => (None, Some(call)),
            Verb::Delete => (Some(json!("present (not readable through MCP)")), None),
            _ => (Some(json!("as is (not readable through MCP)")), Some(call)),
        };
        Ok(Plan {
            provider: self.config.name.clone(),
            verb: tool.verb,
            target: req.target.clone(),
            params: req.params.clone(),
            diffs: vec![Diff {
                addr: req.target.clone(),
                before,
                after,
            }],
            blast: Blast {
                resources: 1,
                ..Blast::default()
            },
            predicted: Predicted::default(),
            resource: ResourceAttrs {
                env,
                kind,
                service: self.config.name.clone(),
                tags: vec!["mcp".into(), format!("upstream:{}", self.config.name)],
                ..ResourceAttrs::default()
            },
            contained: vec![],
            reversible: tool.over.inverse.is_some(),
            loses: vec![],
            destructive: tool.destructive,
            rollback: false,
            min_risk: None,
            summary: format!("call `{}` on upstream `{}`", name, self.config.name),
            hash: String::new(),
        }
        .seal())
    }
    async fn snapshot(&self, targets: &[ResourceAddr]) -> Result<Snapshot, ProviderError> {
        Ok(Snapshot {
            provider: self.config.name.clone(),
            entries: targets.iter().map(|t| (t.clone(), None)).collect(),
        })
    }
    async fn apply(&self, plan: &Plan) -> Result<Applied, ProviderError> {
        let (tool, args) = self.tool_of(&plan.params)?;
        let out = self.call(&tool.def.name, args).await?;
        Ok(Applied {
            provider: self.config.name.clone(),
            entries: vec![(plan.target.clone(), Some(out))],
        })
    }
    async fn restore(&self, _snap: &Snapshot, expect: &Applied) -> Result<Restored, ProviderError> {
        let (addr, done) = expect
            .entries
            .first()
            .cloned()
            .ok_or_else(|| ProviderError::InvalidParams("nothing was applied".into()))?;
        let done = done.unwrap_or_default();
        let name = done.get("tool").and_then(Value::as_str).unwrap_or("");
        let unsupported = || ProviderError::Unsupported {
            provider: self.config.name.clone(),
            verb: "revert".into(),
            target: addr.to_string(),
        };
        let inverse = self
            .tools
            .get(name)
            .and_then(|t| t.over.inverse.clone())
            .ok_or_else(unsupported)?;
        let original = done
            .get("arguments")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let mut args = Map::new();
        for (to, from) in &inverse.args {
            let v = original.get(from).cloned().ok_or_else(|| {
                ProviderError::InvalidParams(format!(
                    "the inverse `{}` needs `{from}`, which the original call did not have",
                    inverse.tool
                ))
            })?;
            args.insert(to.clone(), v);
        }
        let out = self.call(&inverse.tool, args).await?;
        Ok(Restored {
            provider: self.config.name.clone(),
            entries: vec![(addr, Some(out))],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_only_hint_is_a_read_only_when_the_upstream_is_trusted() {
        let mut hints = rmcp::model::ToolAnnotations::default();
        hints.read_only_hint = Some(true);
        // Untrusted: the hint is ignored, and a tool with no destructive hint counts as one
        // that may destroy (the protocol's default).
        assert_eq!(
            default_verb("list_notes", Some(&hints), false),
            Verb::Delete
        );
        assert_eq!(default_verb("list_notes", Some(&hints), true), Verb::Read);
        hints.destructive_hint = Some(false);
        assert_eq!(default_verb("get_note", Some(&hints), false), Verb::Update);
        assert_eq!(
            default_verb("create_note", Some(&hints), false),
            Verb::Create
        );
    }
}
