//! The coding agent's side of the hook: a tool call it is about to make — a shell command,
//! a file edit, an MCP tool — mapped onto requests, and the two providers those requests go
//! to, `shell` (a command line, re-classified here so a client cannot understate it) and
//! `tool` (the agent's other tools). Neither runs anything: "applied" means handed back to
//! the agent to run, and nothing can undo it, so every such change is irreversible.

use crate::{Classification, ShellAction, classify_in, detect_env};
use airlock_core::registry::{BuildContext, ProviderKind};
use airlock_core::{
    ActionRequest, Applied, Blast, Diff, Plan, Predicted, Provider, ProviderError, ResourceAddr,
    ResourceAttrs, Restored, Risk, Snapshot, Verb, VerbSpec, addr_name,
};
use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::Arc;

/// A PreToolUse event as a coding agent sends it on stdin.
#[derive(Debug, Clone, Deserialize)]
pub struct HookEvent {
    #[serde(default)]
    pub session_id: Option<String>,
    #[serde(default)]
    pub cwd: Option<String>,
    pub hook_event_name: String,
    pub tool_name: String,
    #[serde(default)]
    pub tool_input: Value,
}

/// The agent's own tools that only look.
const READ_TOOLS: [&str; 9] = [
    "Read",
    "Glob",
    "Grep",
    "LS",
    "WebFetch",
    "WebSearch",
    "TodoWrite",
    "NotebookRead",
    "Task",
];
/// The agent's own tools that edit files.
const EDIT_TOOLS: [&str; 4] = ["Write", "Edit", "MultiEdit", "NotebookEdit"];

/// The verb an MCP tool's name suggests.
fn verb_of_tool_name(tool: &str) -> Verb {
    let t = tool.to_ascii_lowercase();
    let starts = |ps: &[&str]| ps.iter().any(|p| t.starts_with(p));
    if starts(&[
        "get", "list", "read", "describe", "search", "find", "show", "query", "fetch", "view",
    ]) {
        Verb::Read
    } else if starts(&[
        "delete",
        "remove",
        "destroy",
        "drop",
        "purge",
        "terminate",
        "kill",
        "uninstall",
    ]) {
        Verb::Delete
    } else if starts(&["create", "add", "new", "insert", "upload"]) {
        Verb::Create
    } else if starts(&["run", "exec", "execute", "eval", "invoke"]) {
        Verb::Exec
    } else {
        Verb::Update
    }
}

/// What one hook event asks the gate: requests, and which of them are unrecognized.
#[derive(Debug, Clone, PartialEq)]
pub struct HookRequests {
    pub requests: Vec<(ActionRequest, bool)>,
    /// Set when no gate decision is needed (and why).
    pub skip: Option<String>,
}

/// Maps an event onto requests for the `shell` and `tool` providers.
pub fn requests(ev: &HookEvent) -> Result<HookRequests, String> {
    let intent = ev
        .tool_input
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let mut context = Map::new();
    if let Some(s) = &ev.session_id {
        context.insert("session_id".into(), json!(s));
    }
    if let Some(c) = &ev.cwd {
        context.insert("cwd".into(), json!(c));
    }
    let req = |provider: &str, verb: Verb, target: ResourceAddr, mut params: Map<String, Value>| {
        params.extend(context.clone());
        ActionRequest {
            provider: provider.into(),
            verb,
            target,
            params,
            intent: intent.clone(),
        }
    };
    let addr = |p: &str, k: &str, n: &str| {
        ResourceAddr::new(p, k, &addr_name(n)).map_err(|e| e.to_string())
    };
    let tool = ev.tool_name.as_str();
    if tool == "Bash" {
        let command = ev
            .tool_input
            .get("command")
            .and_then(Value::as_str)
            .ok_or("a Bash event without `tool_input.command`")?;
        let c = classify_in(command, ev.cwd.as_deref());
        let (parts, overflow) = parts(&c)?;
        let mut out = Vec::new();
        for part in parts {
            let mut p = Map::new();
            p.insert("command".into(), json!(command));
            p.insert("segment".into(), json!(part.segment));
            if part.count > 1 {
                p.insert("parts".into(), json!(part.count));
            }
            if part.unknown {
                p.insert("unknown".into(), json!(true));
            }
            out.push((req("shell", part.verb, part.target, p), part.unknown));
        }
        if overflow > 0 {
            let mut p = Map::new();
            p.insert("command".into(), json!(command));
            p.insert(
                "segment".into(),
                json!(format!("{overflow} more parts of the command")),
            );
            p.insert("overflow".into(), json!(overflow));
            let target =
                ResourceAddr::new("shell", "command", OVERFLOW_NAME).map_err(|e| e.to_string())?;
            // Too many different changes to ask about one by one: a person looks.
            out.push((req("shell", Verb::Exec, target, p), true));
        }
        let skip = out
            .is_empty()
            .then(|| "the command runs nothing".to_string());
        return Ok(HookRequests {
            requests: out,
            skip,
        });
    }
    if let Some(rest) = tool.strip_prefix("mcp__") {
        let (server, name) = rest.split_once("__").unwrap_or((rest, ""));
        if server == "airlock" {
            // Airlock's own MCP gateway decides (and journals) these calls itself.
            return Ok(HookRequests {
                requests: Vec::new(),
                skip: Some("Airlock's own MCP tools are gated by the gateway".into()),
            });
        }
        let mut p = Map::new();
        p.insert("tool_name".into(), json!(tool));
        p.insert("tool_input".into(), ev.tool_input.clone());
        let target = addr("tool", "mcp", &format!("{server}.{name}"))?;
        return Ok(HookRequests {
            requests: vec![(req("tool", verb_of_tool_name(name), target, p), false)],
            skip: None,
        });
    }
    let mut p = Map::new();
    p.insert("tool_name".into(), json!(tool));
    p.insert("tool_input".into(), ev.tool_input.clone());
    let (verb, target, unknown) = if READ_TOOLS.contains(&tool) {
        (Verb::Read, addr("tool", "agent", tool)?, false)
    } else if EDIT_TOOLS.contains(&tool) {
        let path = ev
            .tool_input
            .get("file_path")
            .or_else(|| ev.tool_input.get("notebook_path"))
            .and_then(Value::as_str)
            .ok_or_else(|| format!("a {tool} event without `file_path`"))?;
        (Verb::Update, addr("tool", "file", path)?, false)
    } else {
        (Verb::Exec, addr("tool", "agent", tool)?, true)
    };
    Ok(HookRequests {
        requests: vec![(req("tool", verb, target, p), unknown)],
        skip: None,
    })
}

/// How many parts of one command line are asked about one by one; past that, the rest
/// is one request held for a person (a line of thousands of different changes is not
/// ordinary work, and a bounded number of requests keeps the journal and the time to
/// decide in proportion).
pub const MAX_PARTS: usize = 64;

/// The name of the request that stands for the parts past [`MAX_PARTS`].
const OVERFLOW_NAME: &str = "more-parts";

/// One request's worth of a classification: every action with this verb and target (or
/// every plain read, or every unrecognized command of one program), spoken for by the
/// worst of them.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    pub verb: Verb,
    pub target: ResourceAddr,
    /// The worst action's simple command.
    pub segment: String,
    /// How many simple commands it stands for.
    pub count: usize,
    /// Unrecognized commands.
    pub unknown: bool,
}

/// How bad an action is, to pick the one that speaks for its part: risk, then
/// destructiveness, then how sensitive its environment is (none named counts as the
/// default, which may be prod).
fn severity(a: &ShellAction) -> (Risk, bool, u8) {
    let env = match a.env.as_deref() {
        Some("prod") => 3,
        Some("staging") => 1,
        Some("dev") => 0,
        _ => 2,
    };
    (a.risk, a.destructive, env)
}

/// Whether an action is a plain read, folded with the others into one part.
fn plain_read(a: &ShellAction) -> bool {
    a.verb == Verb::Read && a.risk == Risk::Low && !a.destructive
}

/// Groups a classification into parts, in order of first appearance: identical (verb,
/// target) actions together, all plain reads together, unrecognized commands by program.
/// Returns at most [`MAX_PARTS`] - 1 parts when there are more, with how many were left.
pub fn parts(c: &Classification) -> Result<(Vec<Part>, usize), String> {
    let mut out: Vec<Part> = Vec::new();
    let mut worst: Vec<(Risk, bool, u8)> = Vec::new();
    let mut index: HashMap<(Verb, ResourceAddr, bool), usize> = HashMap::new();
    let mut reads: Option<usize> = None;
    for a in &c.actions {
        let slot = if plain_read(a) {
            reads
        } else {
            index.get(&(a.verb, a.target.clone(), false)).copied()
        };
        match slot {
            Some(i) => {
                out[i].count += 1;
                if severity(a) > worst[i] {
                    worst[i] = severity(a);
                    out[i].segment.clone_from(&a.segment);
                }
            }
            None => {
                if plain_read(a) {
                    reads = Some(out.len());
                } else {
                    index.insert((a.verb, a.target.clone(), false), out.len());
                }
                worst.push(severity(a));
                out.push(Part {
                    verb: a.verb,
                    target: a.target.clone(),
                    segment: a.segment.clone(),
                    count: 1,
                    unknown: false,
                });
            }
        }
    }
    for seg in &c.unknown {
        let target = unknown_target(seg)?;
        let key = (Verb::Exec, target.clone(), true);
        match index.get(&key) {
            Some(&i) => out[i].count += 1,
            None => {
                index.insert(key, out.len());
                out.push(Part {
                    verb: Verb::Exec,
                    target,
                    segment: seg.clone(),
                    count: 1,
                    unknown: true,
                });
            }
        }
    }
    if out.len() > MAX_PARTS {
        let kept = MAX_PARTS - 1;
        let left: usize = out[kept..].iter().map(|p| p.count).sum();
        out.truncate(kept);
        return Ok((out, left));
    }
    Ok((out, 0))
}

/// Whether `path` lies inside the project at `cwd` (when `cwd` is a project and not a
/// system or home directory): relative paths that do not climb out of it, absolute paths
/// under it. The repository's own machinery (`.git/`) is not the agent's work.
fn in_workspace(path: &str, cwd: Option<&str>) -> bool {
    let Some(root) = crate::paths::Site::new(cwd).workspace else {
        return false;
    };
    if path.is_empty() || path.starts_with(['~', '$']) {
        return false;
    }
    let mut parts: Vec<&str> = if path.starts_with('/') {
        Vec::new()
    } else {
        root.iter().map(String::as_str).collect()
    };
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return false;
                }
            }
            s => parts.push(s),
        }
    }
    parts.len() > root.len()
        && parts.iter().zip(&root).all(|(a, b)| *a == b.as_str())
        && parts[root.len()] != ".git"
}

fn unknown_target(segment: &str) -> Result<ResourceAddr, String> {
    let program = segment.split_whitespace().next().unwrap_or("");
    let program = program.rsplit('/').next().unwrap_or(program);
    ResourceAddr::new("shell", "command", &addr_name(program)).map_err(|e| e.to_string())
}

/// The `shell` or `tool` provider: plans from the classification, runs nothing.
pub struct HookProvider {
    name: &'static str,
    default_env: String,
    verbs: Vec<VerbSpec>,
}

impl HookProvider {
    /// `shell` (command lines) or `tool` (the agent's other tools).
    pub fn new(name: &'static str, default_env: &str) -> Self {
        let verbs = Verb::ALL
            .iter()
            .map(|v| VerbSpec {
                verb: *v,
                params: json!({"type": "object"}),
                destructive: matches!(v, Verb::Delete | Verb::Exec),
                read_only: *v == Verb::Read,
                description: "an action a coding agent is about to take itself",
            })
            .collect();
        Self {
            name,
            default_env: default_env.to_string(),
            verbs,
        }
    }

    fn shell_facts(
        &self,
        req: &ActionRequest,
    ) -> Result<(Option<String>, bool, Risk, String, String), ProviderError> {
        let command = req
            .params
            .get("command")
            .and_then(Value::as_str)
            .ok_or_else(|| ProviderError::InvalidParams("`command` is required".into()))?;
        let segment = req.params.get("segment").and_then(Value::as_str);
        // The same workspace as when the request was made, so both readings agree.
        let cwd = req.params.get("cwd").and_then(Value::as_str);
        let c: Classification = classify_in(command, cwd);
        if req.params.get("overflow").is_some() {
            let (_, left) = parts(&c).map_err(ProviderError::InvalidParams)?;
            let expected = ResourceAddr::new("shell", "command", OVERFLOW_NAME)
                .map_err(|e| ProviderError::InvalidParams(e.to_string()))?;
            if left == 0 || req.verb != Verb::Exec || req.target != expected {
                return Err(ProviderError::InvalidParams(format!(
                    "the command has no more than {MAX_PARTS} parts to ask about"
                )));
            }
            return Ok((
                None,
                true,
                Risk::High,
                "too-many-parts".into(),
                format!("{left} more parts of the command"),
            ));
        }
        if req.params.get("unknown") == Some(&json!(true)) {
            let seg = c
                .unknown
                .iter()
                .find(|u| Some(u.as_str()) == segment)
                .ok_or_else(|| {
                    ProviderError::InvalidParams(format!(
                        "`{}` is not an unrecognized part of the command",
                        segment.unwrap_or("")
                    ))
                })?;
            let expected = unknown_target(seg).map_err(ProviderError::InvalidParams)?;
            if req.verb != Verb::Exec || req.target != expected {
                return Err(ProviderError::InvalidParams(format!(
                    "an unrecognized command is `exec` on `{expected}`"
                )));
            }
            return Ok((
                None,
                false,
                Risk::Medium,
                "unknown-command".into(),
                seg.clone(),
            ));
        }
        // Every action with the request's verb and target is judged by the worst of
        // them (`requests` merges them into one part), whichever segment is named.
        let a = c
            .actions
            .iter()
            .filter(|a| a.verb == req.verb && a.target == req.target)
            .max_by_key(|a| severity(a))
            .ok_or_else(|| {
                ProviderError::InvalidParams(format!(
                    "the command does not contain a `{}` on `{}`: it classifies as {}",
                    req.verb,
                    req.target,
                    c.actions
                        .iter()
                        .map(|a| format!("{} {} ({})", a.verb, a.target, a.rule))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
        Ok((
            a.env.clone(),
            a.destructive,
            a.risk,
            a.rule.to_string(),
            a.segment.clone(),
        ))
    }

    fn tool_facts(
        &self,
        req: &ActionRequest,
    ) -> Result<(Option<String>, bool, Risk, String, String), ProviderError> {
        let tool = req
            .params
            .get("tool_name")
            .and_then(Value::as_str)
            .ok_or_else(|| ProviderError::InvalidParams("`tool_name` is required".into()))?;
        let input = req.params.get("tool_input").cloned().unwrap_or(Value::Null);
        let ev = HookEvent {
            session_id: None,
            cwd: None,
            hook_event_name: "PreToolUse".into(),
            tool_name: tool.into(),
            tool_input: input.clone(),
        };
        let expected = requests(&ev).map_err(ProviderError::InvalidParams)?;
        let Some((r, _)) = expected.requests.first() else {
            return Err(ProviderError::InvalidParams(format!(
                "`{tool}` needs no decision"
            )));
        };
        if r.verb != req.verb || r.target != req.target {
            return Err(ProviderError::InvalidParams(format!(
                "`{tool}` is a `{}` on `{}`",
                r.verb, r.target
            )));
        }
        let path = input.get("file_path").and_then(Value::as_str).unwrap_or("");
        let risk = match req.verb {
            Verb::Read => Risk::Low,
            Verb::Delete | Verb::Exec => Risk::High,
            _ => Risk::Medium,
        };
        Ok((
            detect_env(path).or_else(|| detect_env(tool)),
            matches!(req.verb, Verb::Delete | Verb::Exec),
            risk,
            format!("tool-{}", req.verb),
            tool.to_string(),
        ))
    }
}

#[async_trait]
impl Provider for HookProvider {
    fn name(&self) -> &str {
        self.name
    }
    fn verbs(&self) -> &[VerbSpec] {
        &self.verbs
    }
    fn hands_off(&self) -> bool {
        true
    }
    async fn plan(&self, req: &ActionRequest) -> Result<Plan, ProviderError> {
        if req.target.provider() != self.name {
            return Err(ProviderError::InvalidParams(format!(
                "target `{}` is not a `{}` resource",
                req.target, self.name
            )));
        }
        let (env, destructive, risk, rule, what) = if self.name == "shell" {
            self.shell_facts(req)?
        } else {
            self.tool_facts(req)?
        };
        // An edit of a file in the project the agent works in is the agent's own work, not
        // an infrastructure mutation: the guards and the anomaly detector do not count it.
        let workspace = self.name == "tool"
            && req.verb == Verb::Update
            && req
                .params
                .get("tool_input")
                .and_then(|i| i.get("file_path").or_else(|| i.get("notebook_path")))
                .and_then(Value::as_str)
                .is_some_and(|p| in_workspace(p, req.params.get("cwd").and_then(Value::as_str)));
        let after = match req.verb {
            Verb::Read => Some(json!("as is")),
            Verb::Delete => None,
            _ => Some(json!({"runs": what})),
        };
        Ok(Plan {
            provider: self.name.into(),
            verb: req.verb,
            target: req.target.clone(),
            params: req.params.clone(),
            diffs: vec![Diff {
                addr: req.target.clone(),
                before: Some(json!("as is")),
                after,
            }],
            blast: Blast {
                resources: 1,
                ..Blast::default()
            },
            predicted: Predicted::default(),
            resource: ResourceAttrs {
                env: env.unwrap_or_else(|| self.default_env.clone()),
                kind: req.target.kind().to_string(),
                tags: vec![self.name.to_string(), rule.clone()],
                workspace,
                ..ResourceAttrs::default()
            },
            contained: vec![],
            reversible: req.verb == Verb::Read,
            loses: vec![],
            destructive,
            rollback: false,
            min_risk: req.verb.is_mutation().then_some(risk),
            summary: format!(
                "{} `{what}` ({rule})",
                if self.name == "shell" { "run" } else { "use" }
            ),
            hash: String::new(),
        }
        .seal())
    }
    async fn snapshot(&self, targets: &[ResourceAddr]) -> Result<Snapshot, ProviderError> {
        Ok(Snapshot {
            provider: self.name.into(),
            entries: targets.iter().map(|t| (t.clone(), None)).collect(),
        })
    }
    async fn apply(&self, plan: &Plan) -> Result<Applied, ProviderError> {
        Ok(Applied {
            provider: self.name.into(),
            entries: vec![(
                plan.target.clone(),
                Some(json!({"handed_to_agent": plan.summary})),
            )],
        })
    }
    async fn restore(&self, _snap: &Snapshot, expect: &Applied) -> Result<Restored, ProviderError> {
        Err(ProviderError::Unsupported {
            provider: self.name.into(),
            verb: "revert".into(),
            target: expect
                .entries
                .first()
                .map(|(a, _)| a.to_string())
                .unwrap_or_default(),
        })
    }
}

/// The registry entry of the `shell` and `tool` kinds. Settings: `default_env`, the
/// environment assumed for commands and files that do not show one.
pub struct HookKind(pub &'static str);

#[async_trait]
impl ProviderKind for HookKind {
    fn kind(&self) -> &'static str {
        self.0
    }
    fn describe(&self) -> &'static str {
        if self.0 == "shell" {
            "a coding agent's shell commands, classified (runs nothing)"
        } else {
            "a coding agent's own tools: edits, reads, MCP tools (runs nothing)"
        }
    }
    fn offers_tools(&self) -> bool {
        false
    }
    fn check(&self, settings: &Map<String, Value>) -> Vec<String> {
        let mut problems = Vec::new();
        for (k, v) in settings {
            match (k.as_str(), v) {
                ("default_env", Value::String(s)) if !s.trim().is_empty() => {}
                ("default_env", _) => {
                    problems.push("default_env: must be a non-empty string".into())
                }
                (other, _) => problems.push(format!(
                    "`{other}`: unknown setting; the only one is `default_env`"
                )),
            }
        }
        problems
    }
    async fn build(&self, ctx: BuildContext) -> Result<Arc<dyn Provider>, String> {
        let env = ctx
            .settings
            .get("default_env")
            .and_then(Value::as_str)
            .unwrap_or(&ctx.default_env)
            .to_string();
        let name: &'static str = match ctx.name.as_str() {
            "shell" => "shell",
            "tool" => "tool",
            other => {
                return Err(format!(
                    "a `{}` provider must be named `{}`, not `{other}`",
                    self.0, self.0
                ));
            }
        };
        Ok(Arc::new(HookProvider::new(name, &env)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(tool: &str, input: Value) -> HookEvent {
        HookEvent {
            session_id: Some("s1".into()),
            cwd: Some("/repo".into()),
            hook_event_name: "PreToolUse".into(),
            tool_name: tool.into(),
            tool_input: input,
        }
    }

    #[test]
    fn events_map_onto_requests() {
        let r = requests(&ev(
            "Bash",
            json!({"command": "ls && kubectl delete ns payments"}),
        ))
        .unwrap();
        let verbs: Vec<Verb> = r.requests.iter().map(|(q, _)| q.verb).collect();
        assert_eq!(verbs, [Verb::Read, Verb::Delete]);
        assert_eq!(r.requests[1].0.params["session_id"], "s1");
        let r = requests(&ev("Bash", json!({"command": "./deploy.sh --all"}))).unwrap();
        assert_eq!(r.requests.len(), 1);
        assert!(r.requests[0].1, "an unrecognized command is marked");
        assert_eq!(
            r.requests[0].0.target.to_string(),
            "shell:command/deploy.sh"
        );
        let r = requests(&ev("Edit", json!({"file_path": "/srv/prod/app.yaml"}))).unwrap();
        assert_eq!(
            r.requests[0].0.target.to_string(),
            "tool:file/srv-prod-app.yaml"
        );
        let r = requests(&ev("mcp__github__delete_repo", json!({"repo": "x"}))).unwrap();
        assert_eq!(r.requests[0].0.verb, Verb::Delete);
        assert!(
            requests(&ev("mcp__airlock__sim_delete", json!({})))
                .unwrap()
                .skip
                .is_some()
        );
        assert!(requests(&ev("Bash", json!({}))).is_err());
    }

    /// A line of `n` simple commands, cycling through everyday ones.
    fn long_line(n: usize) -> String {
        const CMDS: [&str; 8] = [
            "ls -la",
            "git status",
            "cargo build",
            "rm -rf target/tmp",
            "kubectl get pods -n web",
            "grep -rn TODO src",
            "echo done >> build/log.txt",
            "cat README.md",
        ];
        (0..n)
            .map(|i| CMDS[i % CMDS.len()])
            .collect::<Vec<_>>()
            .join("; ")
    }

    #[tokio::test]
    async fn a_long_line_is_a_bounded_number_of_requests_each_of_which_plans() {
        let command = long_line(4000);
        let r = requests(&ev("Bash", json!({"command": command}))).unwrap();
        assert!(
            r.requests.len() <= 8,
            "{} requests for 4000 commands",
            r.requests.len()
        );
        let reads = r
            .requests
            .iter()
            .filter(|(q, _)| q.verb == Verb::Read)
            .count();
        assert_eq!(reads, 1, "plain reads fold into one request");
        let p = HookProvider::new("shell", "unknown");
        for (q, _) in &r.requests {
            p.plan(q).await.unwrap();
        }
    }

    #[tokio::test]
    async fn identical_parts_merge_and_keep_the_worst() {
        let command = "rm -rf target/x; rm -rf target/x; ssh prod-1 rm -rf target/x";
        let r = requests(&ev("Bash", json!({"command": command}))).unwrap();
        let deletes: Vec<_> = r
            .requests
            .iter()
            .filter(|(q, _)| q.verb == Verb::Delete)
            .collect();
        assert_eq!(deletes.len(), 1, "{:?}", r.requests);
        let (q, _) = deletes[0];
        assert_eq!(q.params["parts"], 3);
        let plan = HookProvider::new("shell", "dev").plan(q).await.unwrap();
        assert!(plan.destructive, "the remote one, outside any workspace");
        assert_eq!(plan.resource.env, "prod");
    }

    #[tokio::test]
    async fn past_the_limit_the_rest_is_one_request_held_for_a_person() {
        let command = (0..200)
            .map(|i| format!("kubectl delete ns team-{i}"))
            .collect::<Vec<_>>()
            .join(" && ");
        let r = requests(&ev("Bash", json!({"command": command}))).unwrap();
        assert_eq!(r.requests.len(), MAX_PARTS);
        let (last, held) = r.requests.last().unwrap();
        assert!(held, "the overflow is held like an unrecognized command");
        assert_eq!(last.params["overflow"], 200 - (MAX_PARTS - 1));
        let p = HookProvider::new("shell", "unknown");
        let plan = p.plan(last).await.unwrap();
        assert!(plan.destructive);
        assert_eq!(plan.min_risk, Some(Risk::High));
        // A short line has no overflow to claim.
        let (mut fake, _) = requests(&ev("Bash", json!({"command": "ls"})))
            .unwrap()
            .requests
            .remove(0);
        fake.params = last.params.clone();
        fake.params.insert("command".into(), json!("ls"));
        fake.verb = Verb::Exec;
        fake.target = last.target.clone();
        assert!(p.plan(&fake).await.is_err());
    }

    #[test]
    fn edits_inside_the_project_are_workspace_changes() {
        let cwd = Some("/home/dev/project");
        for p in [
            "src/main.rs",
            "./a/b.txt",
            "/home/dev/project/README.md",
            "x/../y.rs",
        ] {
            assert!(in_workspace(p, cwd), "{p}");
        }
        for p in [
            "../other/x.rs",
            "/etc/hosts",
            "/home/dev/project",
            "~/.bashrc",
            "$HOME/x",
            ".git/hooks/pre-commit",
            "/home/dev/project-other/a",
        ] {
            assert!(!in_workspace(p, cwd), "{p}");
        }
        // No project, or one too broad to be one: nothing is the workspace.
        assert!(!in_workspace("src/main.rs", None));
        assert!(!in_workspace("hosts", Some("/etc")));
    }

    #[tokio::test]
    async fn a_project_edit_is_planned_as_a_workspace_change_and_others_are_not() {
        let p = HookProvider::new("tool", "unknown");
        let plan_of = |path: &str| {
            let (q, _) = requests(&HookEvent {
                session_id: None,
                cwd: Some("/repo/app".into()),
                hook_event_name: "PreToolUse".into(),
                tool_name: "Edit".into(),
                tool_input: json!({"file_path": path}),
            })
            .unwrap()
            .requests
            .remove(0);
            q
        };
        assert!(
            p.plan(&plan_of("/repo/app/src/lib.rs"))
                .await
                .unwrap()
                .resource
                .workspace
        );
        assert!(
            !p.plan(&plan_of("/srv/prod/app.yaml"))
                .await
                .unwrap()
                .resource
                .workspace
        );
    }

    #[tokio::test]
    async fn the_shell_provider_refuses_an_understated_request() {
        let p = HookProvider::new("shell", "dev");
        let (q, _) = requests(&ev("Bash", json!({"command": "rm -rf /"})))
            .unwrap()
            .requests
            .remove(0);
        let plan = p.plan(&q).await.unwrap();
        assert!(plan.destructive);
        assert_eq!(plan.min_risk, Some(Risk::Critical));
        assert!(!plan.reversible);
        let mut lie = q.clone();
        lie.verb = Verb::Read;
        let e = p.plan(&lie).await.unwrap_err();
        assert!(e.to_string().contains("does not contain a `read`"), "{e}");
    }

    #[tokio::test]
    async fn the_workspace_travels_with_the_request_so_both_readings_agree() {
        let p = HookProvider::new("shell", "unknown");
        let mut e = ev("Bash", json!({"command": "rm -rf /repo/target"}));
        let (q, _) = requests(&e).unwrap().requests.remove(0);
        assert_eq!(q.params["cwd"], "/repo");
        let plan = p.plan(&q).await.unwrap();
        assert!(!plan.destructive, "inside the workspace");
        e.cwd = Some("/elsewhere".into());
        let (q, _) = requests(&e).unwrap().requests.remove(0);
        let plan = p.plan(&q).await.unwrap();
        assert!(plan.destructive, "outside the workspace");
        assert_eq!(plan.resource.env, "unknown");
    }

    #[tokio::test]
    async fn the_registry_entry_builds_a_provider_with_its_settings() {
        let kind = HookKind("tool");
        let mut settings = Map::new();
        settings.insert("default_env".into(), json!("staging"));
        assert!(kind.check(&settings).is_empty());
        let p = kind
            .build(BuildContext {
                name: "tool".into(),
                settings,
                default_env: "dev".into(),
            })
            .await
            .unwrap();
        let (q, _) = requests(&ev("Write", json!({"file_path": "notes.txt"})))
            .unwrap()
            .requests
            .remove(0);
        assert_eq!(p.plan(&q).await.unwrap().resource.env, "staging");
        let mut bad = Map::new();
        bad.insert("default_env".into(), json!(""));
        bad.insert("colour".into(), json!("red"));
        assert_eq!(kind.check(&bad).len(), 2);
        let e = kind
            .build(BuildContext {
                name: "other".into(),
                settings: Map::new(),
                default_env: "dev".into(),
            })
            .await
            .err()
            .unwrap();
        assert!(e.contains("must be named `tool`"), "{e}");
    }
}
