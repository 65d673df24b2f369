//! Rules for infrastructure tools: `terraform`/`tofu`/`terragrunt`, the `aws` CLI, and
//! a verb-based rule for `gcloud`, `az` and `doctl`.

use crate::rules::{Change, Cmd, Finding, Outcome, env_of, has, opt};
use crate::run::Arg;
use crate::{detect_env, sql};
use airlock_core::{Risk, Verb};

pub(crate) fn classify(cmd: &Cmd) -> Option<Outcome> {
    match cmd.program {
        "terraform" | "tofu" | "terragrunt" => terraform(cmd),
        "aws" => aws(cmd),
        "gcloud" | "az" | "doctl" => generic(cmd),
        _ => None,
    }
}

/// Terraform flags that take a separate value (terraform flags use one dash).
const TF_WITH_VALUE: &[&str] = &[
    "-var",
    "-var-file",
    "-target",
    "-replace",
    "-state",
    "-state-out",
    "-backup",
    "-lock-timeout",
    "-parallelism",
    "-out",
    "-chdir",
    "-backend-config",
    "-from-module",
    "-json",
];

fn terraform(cmd: &Cmd) -> Option<Outcome> {
    let args = cmd.args;
    let mut ops: Vec<&Arg> = Vec::new();
    let mut i = 0;
    while let Some(a) = args.get(i) {
        i += 1;
        if a.text.starts_with('-') && a.resolved {
            if TF_WITH_VALUE.contains(&a.text.as_str()) && a.text != "-json" {
                i += 1;
            }
            continue;
        }
        ops.push(a);
    }
    // `terragrunt run-all destroy`, `terragrunt run --all destroy`
    while ops
        .first()
        .is_some_and(|a| matches!(a.text.as_str(), "run-all" | "run" | "--all"))
    {
        ops.remove(0);
    }
    let sub = ops.first().map_or("", |a| a.text.as_str());
    let sub2 = ops.get(1).copied();
    let workspace = cmd
        .var("TF_WORKSPACE")
        .or_else(|| cmd.state.tf_workspace.clone());
    let vars: Vec<Arg> = args
        .iter()
        .enumerate()
        .filter_map(|(i, a)| match a.text.as_str() {
            "-var" | "-var-file" | "-chdir" | "-backend-config" => args.get(i + 1).cloned(),
            t => ["-var=", "-var-file=", "-chdir=", "-backend-config="]
                .iter()
                .find_map(|p| t.strip_prefix(p))
                .map(|v| Arg {
                    text: v.to_string(),
                    ..a.clone()
                }),
        })
        .collect();
    let env = workspace
        .as_deref()
        .and_then(detect_env)
        .or_else(|| env_of(vars.iter().map(Some)));
    let ws_name =
        |ws: Option<String>| format!("workspace.{}", ws.unwrap_or_else(|| "current".to_string()));
    let f = |rule, verb, risk| {
        Finding::new(rule, verb, risk, "terraform", &ws_name(workspace.clone())).env(env.clone())
    };
    let finding = match sub {
        "destroy" => f("terraform-destroy", Verb::Delete, Risk::Critical).destructive(),
        "apply" if has(args, &["-destroy"]) => {
            f("terraform-destroy", Verb::Delete, Risk::Critical).destructive()
        }
        "apply" => f("terraform-apply", Verb::Deploy, Risk::High),
        "import" => f("terraform-import", Verb::Update, Risk::Medium),
        "taint" | "untaint" => f("terraform-taint", Verb::Update, Risk::Medium),
        "refresh" => f("terraform-refresh", Verb::Update, Risk::Medium),
        "force-unlock" => f("terraform-force-unlock", Verb::Update, Risk::High),
        "state" => match sub2.map(|a| a.text.as_str()) {
            Some("rm") => f("terraform-state-rm", Verb::Delete, Risk::High).destructive(),
            Some("push") => f("terraform-state-write", Verb::Update, Risk::High).destructive(),
            Some("mv" | "replace-provider") => f("terraform-state-write", Verb::Update, Risk::High),
            _ => f("terraform-read", Verb::Read, Risk::Low),
        },
        "workspace" => {
            let action = sub2.map_or("", |a| a.text.as_str());
            let ws = ops.get(2).copied();
            let name = ws_name(ws.map(Arg::name));
            let ws_env = ws.and_then(Arg::env).or(env.clone());
            let mk = |rule, verb, risk| {
                Finding::new(rule, verb, risk, "terraform", &name).env(ws_env.clone())
            };
            return match action {
                "select" | "new" => {
                    let mut o =
                        Outcome::from(mk("terraform-workspace-select", Verb::Read, Risk::Low));
                    if let Some(w) = ws.filter(|w| w.resolved) {
                        o = o.change(Change::TfWorkspace(w.text.clone()));
                    }
                    Some(o)
                }
                "delete" => Outcome::of(
                    mk("terraform-workspace-delete", Verb::Delete, Risk::High).destructive(),
                ),
                _ => Outcome::of(mk("terraform-read", Verb::Read, Risk::Low)),
            };
        }
        "plan" | "validate" | "fmt" | "show" | "output" | "init" | "providers" | "version"
        | "graph" | "console" | "get" | "test" | "login" | "logout" | "metadata" | "modules"
        | "hclfmt" | "render-json" | "" => f("terraform-read", Verb::Read, Risk::Low),
        _ => f("terraform-other", Verb::Update, Risk::Medium),
    };
    Outcome::of(finding)
}

/// Global `aws` options that take a value.
const AWS_GLOBAL_WITH_VALUE: &[&str] = &[
    "--profile",
    "--region",
    "--output",
    "--endpoint-url",
    "--query",
    "--color",
    "--ca-bundle",
    "--cli-read-timeout",
    "--cli-connect-timeout",
    "--cli-binary-format",
];

/// Deleting these loses data or everything they contain.
const AWS_CRITICAL_DELETES: &[&str] = &[
    "delete-table",
    "delete-bucket",
    "delete-stack",
    "delete-cluster",
    "delete-file-system",
    "delete-backup-vault",
    "delete-db-cluster",
    "delete-global-table",
    "delete-hosted-zone",
];

fn aws(cmd: &Cmd) -> Option<Outcome> {
    let args = cmd.args;
    let mut ops: Vec<&Arg> = Vec::new();
    let mut rest_at = args.len();
    let mut i = 0;
    while let Some(a) = args.get(i) {
        i += 1;
        if a.text.starts_with('-') && a.resolved {
            if AWS_GLOBAL_WITH_VALUE.contains(&a.text.as_str()) {
                i += 1;
            }
            continue;
        }
        ops.push(a);
        if ops.len() == 2 {
            rest_at = i;
            break;
        }
    }
    let service = ops.first().map_or("", |a| a.text.as_str());
    let op = ops.get(1).map_or("", |a| a.text.as_str());
    let rest = args.get(rest_at..).unwrap_or_default();
    let profile = opt(args, &["--profile"])
        .or_else(|| cmd.var("AWS_PROFILE").map(|p| Arg::lit(&p)))
        .or_else(|| cmd.var("AWS_DEFAULT_PROFILE").map(|p| Arg::lit(&p)));
    let id = identifier(rest);
    let env = env_of([profile.as_ref(), id.as_ref()]);
    let name = |id: Option<&Arg>| match id {
        Some(a) => format!("{service}.{}", a.name()),
        None => service.to_string(),
    };

    if service == "s3" {
        return s3(op, rest, env);
    }
    if service == "configure" {
        let f = match op {
            "list" | "get" | "list-profiles" | "" => Finding::read("aws-read", "aws", "configure"),
            _ => Finding::new("aws-configure", Verb::Update, Risk::Low, "aws", "configure"),
        };
        return Outcome::of(f.env(env));
    }
    if matches!(op, "execute-statement" | "batch-execute-statement")
        && let Some(sql_text) = opt(rest, &["--sql"]).filter(|s| s.resolved)
    {
        let db = opt(rest, &["--database"]);
        let env = env.clone().or_else(|| db.as_ref().and_then(Arg::env));
        let findings = sql::statements(&sql_text.text, env);
        if !findings.is_empty() {
            return Some(Outcome {
                findings,
                ..Outcome::default()
            });
        }
    }
    let starts = |prefixes: &[&str]| prefixes.iter().any(|p| op.starts_with(p));
    let (rule, verb, risk, destructive) = if op.is_empty() || op == "help" || op == "wait" {
        ("aws-read", Verb::Read, Risk::Low, false)
    } else if matches!(
        op,
        "invoke" | "send-command" | "start-session" | "execute-command"
    ) || starts(&["execute-", "run-task", "start-query"])
    {
        ("aws-exec", Verb::Exec, Risk::Medium, false)
    } else if starts(&[
        "delete-",
        "terminate-",
        "remove-",
        "deregister-",
        "purge-",
        "destroy-",
    ]) {
        let critical = AWS_CRITICAL_DELETES.contains(&op)
            || (op.starts_with("delete-db-") && has(rest, &["--skip-final-snapshot"]));
        let risk = if critical { Risk::Critical } else { Risk::High };
        ("aws-delete", Verb::Delete, risk, true)
    } else if starts(&[
        "describe-",
        "list-",
        "get-",
        "head-",
        "lookup-",
        "search-",
        "batch-get-",
        "filter-",
        "test-",
        "validate-",
        "estimate-",
        "simulate-",
        "preview-",
        "scan",
        "query",
        "ls",
    ]) {
        ("aws-read", Verb::Read, Risk::Low, false)
    } else if starts(&[
        "create-",
        "run-instances",
        "allocate-",
        "request-",
        "launch-",
    ]) {
        ("aws-create", Verb::Create, Risk::Medium, false)
    } else if starts(&["stop-", "start-", "reboot-", "restart-"]) {
        ("aws-restart", Verb::Restart, Risk::Medium, false)
    } else {
        ("aws-update", Verb::Update, Risk::Medium, false)
    };
    let mut f = Finding::new(rule, verb, risk, "aws", &name(id.as_ref())).env(env);
    f.destructive = destructive;
    Outcome::of(f)
}

/// The first resource identifier among an `aws` operation's options
/// (`--instance-ids i-0abc`, `--db-instance-identifier x`, `--bucket b` …).
fn identifier(args: &[Arg]) -> Option<Arg> {
    const ENDINGS: [&str; 12] = [
        "-id",
        "-ids",
        "-name",
        "-names",
        "-identifier",
        "-arn",
        "bucket",
        "cluster",
        "-url",
        "service",
        "table",
        "function",
    ];
    for (i, a) in args.iter().enumerate() {
        let t = a.text.as_str();
        if !t.starts_with("--") {
            continue;
        }
        let (flag, attached) = match t.split_once('=') {
            Some((f, v)) => (f, Some(v)),
            None => (t, None),
        };
        if ENDINGS.iter().any(|e| flag.ends_with(e)) {
            return match attached {
                Some(v) => Some(Arg {
                    text: v.to_string(),
                    ..a.clone()
                }),
                None => args
                    .get(i + 1)
                    .filter(|v| !v.text.starts_with("--"))
                    .cloned(),
            };
        }
    }
    None
}

/// `aws s3 …`, the high-level file commands.
fn s3(op: &str, rest: &[Arg], env: Option<String>) -> Option<Outcome> {
    let urls: Vec<&Arg> = rest
        .iter()
        .filter(|a| !a.resolved || !a.text.starts_with('-'))
        .collect();
    let dest = urls.last().copied();
    let env = env.or_else(|| env_of(urls.iter().copied().map(Some)));
    let name = |a: Option<&Arg>| {
        let n = a.map_or_else(|| "all".to_string(), Arg::name);
        format!("s3.{}", n.trim_start_matches("s3://"))
    };
    let recursive = has(rest, &["--recursive"]);
    let whole_bucket = dest.is_some_and(|d| {
        d.text
            .strip_prefix("s3://")
            .is_some_and(|b| !b.trim_end_matches('/').contains('/'))
    });
    let f = |rule, verb, risk| Finding::new(rule, verb, risk, "aws", &name(dest));
    let finding = match op {
        "ls" | "presign" | "" => f("aws-read", Verb::Read, Risk::Low),
        "rm" if recursive => {
            let risk = if whole_bucket {
                Risk::Critical
            } else {
                Risk::High
            };
            f("aws-s3-rm-recursive", Verb::Delete, risk).destructive()
        }
        "rm" => f("aws-s3-rm", Verb::Delete, Risk::Medium).destructive(),
        "rb" if has(rest, &["--force"]) => {
            f("aws-s3-rb-force", Verb::Delete, Risk::Critical).destructive()
        }
        "rb" => f("aws-s3-rb", Verb::Delete, Risk::Medium).destructive(),
        "sync" if has(rest, &["--delete"]) => {
            f("aws-s3-sync-delete", Verb::Delete, Risk::High).destructive()
        }
        "mb" => f("aws-create", Verb::Create, Risk::Medium),
        _ => f("aws-s3-write", Verb::Update, Risk::Medium),
    };
    Outcome::of(finding.env(env))
}

/// `gcloud`, `az`, `doctl`: the verb word decides.
fn generic(cmd: &Cmd) -> Option<Outcome> {
    let args = cmd.args;
    let words: Vec<&Arg> = args
        .iter()
        .take_while(|a| !a.text.starts_with('-') || !a.resolved)
        .collect();
    let verb_at = words.iter().position(|a| {
        matches!(
            a.text.as_str(),
            "delete"
                | "destroy"
                | "remove"
                | "purge"
                | "create"
                | "deploy"
                | "update"
                | "set"
                | "patch"
                | "add"
                | "apply"
                | "resize"
                | "scale"
                | "restart"
                | "start"
                | "stop"
                | "reset"
                | "import"
                | "upgrade"
                | "rollback"
                | "list"
                | "describe"
                | "show"
                | "get"
                | "ls"
                | "get-credentials"
                | "ssh"
                | "exec"
                | "run"
                | "invoke"
        )
    });
    let (rule, verb, risk, destructive) = match verb_at.map(|i| words[i].text.as_str()) {
        Some("delete" | "destroy" | "remove" | "purge") => {
            ("cloud-delete", Verb::Delete, Risk::High, true)
        }
        Some("create" | "add" | "import") => ("cloud-create", Verb::Create, Risk::Medium, false),
        Some("deploy" | "apply" | "upgrade" | "rollback") => {
            ("cloud-deploy", Verb::Deploy, Risk::Medium, false)
        }
        Some("resize" | "scale") => ("cloud-scale", Verb::Scale, Risk::Medium, false),
        Some("restart" | "start" | "stop" | "reset") => {
            ("cloud-restart", Verb::Restart, Risk::Medium, false)
        }
        Some("ssh" | "exec" | "run" | "invoke") => ("cloud-exec", Verb::Exec, Risk::Medium, false),
        Some("update" | "set" | "patch") => ("cloud-update", Verb::Update, Risk::Medium, false),
        Some(_) => ("cloud-read", Verb::Read, Risk::Low, false),
        None if words.len() <= 1 => ("cloud-read", Verb::Read, Risk::Low, false),
        None => ("cloud-other", Verb::Update, Risk::Medium, false),
    };
    let resource = opt(args, &["-n", "--name"]);
    let path: Vec<String> = words
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != verb_at)
        .map(|(_, a)| a.name())
        .chain(resource.as_ref().map(Arg::name))
        .collect();
    let name = if path.is_empty() {
        cmd.program.to_string()
    } else {
        path.join(".")
    };
    let scope = opt(
        args,
        &[
            "--project",
            "--subscription",
            "--resource-group",
            "-g",
            "--context",
            "--cluster",
        ],
    );
    let env = env_of([scope.as_ref(), resource.as_ref()])
        .or_else(|| env_of(words.iter().copied().map(Some)));
    let mut f = Finding::new(rule, verb, risk, cmd.program, &name).env(env);
    f.destructive = destructive;
    Outcome::of(f)
}
