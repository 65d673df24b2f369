//! Rules for infrastructure tools: `terraform`/`tofu`/`terragrunt`, `pulumi`, `cdk`,
//! `serverless`, `sam`, the `aws` CLI, and a verb-based rule for the other cloud CLIs
//! (`gcloud`, `gsutil`, `az`, `doctl`, `hcloud`, `heroku`, `fly` …). IAM grants are
//! judged in `grants`.

use crate::grants;
use crate::rules::{Change, Cmd, Finding, Nested, Outcome, env_of, has, operands, opt};
use crate::run::Arg;
use crate::{detect_env, sql};
use airlock_core::{Risk, Verb};

pub(crate) fn classify(cmd: &Cmd) -> Option<Outcome> {
    match cmd.program {
        "terraform" | "tofu" | "terragrunt" => terraform(cmd),
        "pulumi" => pulumi(cmd),
        "cdk" | "cdktf" | "serverless" | "sls" | "sam" => stack_tool(cmd),
        "aws" => aws(cmd),
        p if CLOUD_CLIS.contains(&p) => generic(cmd),
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
            let flag = format!("-{}", a.text.trim_start_matches('-'));
            if TF_WITH_VALUE.contains(&flag.as_str()) && flag != "-json" {
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
        "apply" if tf_flag(args, "destroy") => {
            f("terraform-destroy", Verb::Delete, Risk::Critical).destructive()
        }
        // Forced replacement destroys what it replaces.
        "apply" if tf_flag(args, "replace") => {
            f("terraform-replace", Verb::Deploy, Risk::High).destructive()
        }
        // Approving a plan nobody was shown: it may replace or destroy anything.
        "apply" if tf_flag(args, "auto-approve") && sub2.is_none() => {
            f("terraform-apply", Verb::Deploy, Risk::High).destructive()
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

/// Whether a Terraform flag is given, with one or two dashes, alone or as `-flag=value`
/// (`-flag=false` does not count).
fn tf_flag(args: &[Arg], name: &str) -> bool {
    args.iter().any(|a| {
        let t = a.text.as_str();
        if !t.starts_with('-') {
            return false;
        }
        let bare = t.trim_start_matches('-');
        bare == name
            || bare
                .strip_prefix(name)
                .and_then(|v| v.strip_prefix('='))
                .is_some_and(|v| v != "false")
    })
}

/// `pulumi`: `destroy` is critical; `up` replacing resources or approving without a
/// preview is destructive.
fn pulumi(cmd: &Cmd) -> Option<Outcome> {
    let args = cmd.args;
    let ops = operands(
        args,
        &[
            "-s",
            "--stack",
            "-C",
            "--cwd",
            "-c",
            "--config",
            "--target",
            "--replace",
            "--target-replace",
            "-m",
            "--message",
            "--parallel",
            "-p",
        ],
    );
    let sub = ops.first().map_or("", |a| a.text.as_str());
    let sub2 = ops.get(1).map_or("", |a| a.text.as_str());
    let stack =
        opt(args, &["-s", "--stack"]).or_else(|| cmd.var("PULUMI_STACK").map(|s| Arg::lit(&s)));
    let name = format!(
        "stack.{}",
        stack
            .as_ref()
            .map_or_else(|| "current".to_string(), Arg::name)
    );
    let env = env_of([stack.as_ref()]);
    let f = |rule, verb, risk| Finding::new(rule, verb, risk, "pulumi", &name).env(env.clone());
    let yes = has(args, &["-y", "--yes", "--skip-preview", "-f"]);
    let finding = match (sub, sub2) {
        ("destroy" | "down", _) => f("pulumi-destroy", Verb::Delete, Risk::Critical).destructive(),
        ("up" | "update", _) if has(args, &["--replace", "--target-replace"]) => {
            f("pulumi-replace", Verb::Deploy, Risk::High).destructive()
        }
        ("up" | "update", _) if yes => f("pulumi-up", Verb::Deploy, Risk::High).destructive(),
        ("up" | "update", _) => f("pulumi-up", Verb::Deploy, Risk::High),
        ("stack", "rm" | "remove") | ("state", "delete" | "unprotect") => {
            f("pulumi-state-delete", Verb::Delete, Risk::High).destructive()
        }
        ("refresh" | "import" | "cancel", _)
        | ("config", "set" | "rm")
        | ("stack", "init" | "select") => f("pulumi-update", Verb::Update, Risk::Medium),
        _ => f("pulumi-read", Verb::Read, Risk::Low),
    };
    Outcome::of(finding)
}

/// `cdk`, `cdktf`, `serverless`, `sam`: removing a stack is critical, deploying is high.
fn stack_tool(cmd: &Cmd) -> Option<Outcome> {
    let p = cmd.program;
    let ops = operands(
        cmd.args,
        &[
            "--profile",
            "--region",
            "-c",
            "--context",
            "--stage",
            "-s",
            "--app",
            "-a",
            "--stack-name",
            "--config",
            "--template-file",
            "-t",
        ],
    );
    let sub = ops.first().map_or("", |a| a.text.as_str());
    let stage = opt(cmd.args, &["--stage", "-s", "--profile", "--stack-name"]);
    let env = env_of([stage.as_ref()]).or_else(|| env_of(ops.iter().copied().map(Some)));
    let name = ops.get(1).map_or_else(|| "all".to_string(), |a| a.name());
    let f = |rule, verb, risk| {
        Finding::new(rule, verb, risk, p, &format!("stack.{name}")).env(env.clone())
    };
    let finding = match sub {
        "destroy" | "remove" | "delete" => {
            f("stack-destroy", Verb::Delete, Risk::Critical).destructive()
        }
        "deploy" | "sync" => f("stack-deploy", Verb::Deploy, Risk::High),
        "bootstrap" | "rollback" => f("stack-update", Verb::Update, Risk::Medium),
        _ => f("stack-read", Verb::Read, Risk::Low),
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
    if let Some(f) = grants::aws(service, op, rest) {
        return Outcome::of(f.env(env));
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
    let mut out = Outcome::from(f);
    if op == "send-command" {
        out.nested = ssm_commands(rest);
        out.remote = true;
    }
    Some(out)
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

/// Cloud CLIs judged by their verb word.
const CLOUD_CLIS: [&str; 28] = [
    "gcloud",
    "gsutil",
    "az",
    "doctl",
    "hcloud",
    "linode-cli",
    "oci",
    "scw",
    "vultr-cli",
    "exo",
    "ibmcloud",
    "aliyun",
    "heroku",
    "fly",
    "flyctl",
    "vercel",
    "netlify",
    "firebase",
    "eksctl",
    "civo",
    "railway",
    "wrangler",
    "supabase",
    "pscale",
    "neonctl",
    "upctl",
    "s3cmd",
    "rclone",
];

/// Options of those CLIs that take a separate value (their values are not verb words).
const CLOUD_WITH_VALUE: [&str; 30] = [
    "--project",
    "--zone",
    "--region",
    "--format",
    "--account",
    "--configuration",
    "--filter",
    "--subscription",
    "--resource-group",
    "-g",
    "-n",
    "--name",
    "--location",
    "-l",
    "--output",
    "-o",
    "--query",
    "--app",
    "-a",
    "--context",
    "--cluster",
    "--role",
    "--member",
    "--scope",
    "--assignee",
    "--image",
    "--machine-type",
    "--ids",
    "--confirm",
    "--site",
];

/// What a verb word of a cloud CLI does: `delete`, `delete-batch`, `apps:destroy`, `rm` …;
/// `prev` is the word before it (`db reset` wipes a database).
fn verb_word(word: &str, prev: Option<&str>) -> Option<(&'static str, Verb, Risk, bool)> {
    let w = word.to_ascii_lowercase();
    let (scope, action) = w.rsplit_once(':').unwrap_or(("", w.as_str()));
    let scope = if scope.is_empty() {
        prev.unwrap_or("")
    } else {
        scope
    };
    let head = action.split(['-', '_']).next().unwrap_or(action);
    let is = |ws: &[&str]| ws.contains(&action) || ws.contains(&head);
    let data = matches!(
        scope,
        "pg" | "db" | "database" | "redis" | "sql" | "postgres" | "mysql"
    );
    Some(
        if is(&[
            "delete",
            "del",
            "destroy",
            "remove",
            "rm",
            "rb",
            "purge",
            "terminate",
            "wipe",
            "nuke",
            "erase",
            "drop",
        ]) || (action == "reset" && data)
        {
            ("cloud-delete", Verb::Delete, Risk::High, true)
        } else if is(&["create", "add", "import", "new", "mb", "clone"]) {
            ("cloud-create", Verb::Create, Risk::Medium, false)
        } else if is(&[
            "deploy", "apply", "upgrade", "rollback", "up", "release", "publish", "promote",
        ]) {
            ("cloud-deploy", Verb::Deploy, Risk::Medium, false)
        } else if is(&["resize", "scale"]) {
            ("cloud-scale", Verb::Scale, Risk::Medium, false)
        } else if is(&[
            "restart",
            "start",
            "stop",
            "reset",
            "reboot",
            "deallocate",
            "suspend",
            "resume",
        ]) {
            ("cloud-restart", Verb::Restart, Risk::Medium, false)
        } else if is(&["ssh", "exec", "run", "invoke", "console"]) {
            ("cloud-exec", Verb::Exec, Risk::Medium, false)
        } else if is(&[
            "update", "set", "patch", "edit", "modify", "config", "move", "cp", "mv", "rsync",
            "sync", "put",
        ]) {
            ("cloud-update", Verb::Update, Risk::Medium, false)
        } else if is(&[
            "list", "describe", "show", "get", "ls", "cat", "logs", "log", "info", "status",
            "whoami", "version", "help", "print", "du", "stat", "open", "login", "auth", "diff",
            "validate",
        ]) {
            ("cloud-read", Verb::Read, Risk::Low, false)
        } else {
            return None;
        },
    )
}

/// How much a verb changes, to pick the strongest verb word of a command.
fn strength(v: Verb) -> u8 {
    match v {
        Verb::Read => 0,
        Verb::Update => 1,
        Verb::Exec => 2,
        Verb::Restart => 3,
        Verb::Scale => 4,
        Verb::Create => 5,
        Verb::Deploy => 6,
        Verb::Delete => 7,
    }
}

/// The other cloud CLIs: the strongest verb word decides (`gcloud run deploy` deploys,
/// `gcloud run services delete` deletes).
fn generic(cmd: &Cmd) -> Option<Outcome> {
    let args = cmd.args;
    let before_dashdash = args
        .iter()
        .position(|a| a.text == "--")
        .map_or(args, |i| &args[..i]);
    let words = operands(before_dashdash, &CLOUD_WITH_VALUE);
    let grant = match cmd.program {
        "gcloud" | "gsutil" => grants::gcloud(&words, args),
        "az" => grants::az(&words, args),
        _ => None,
    };
    let prev = |i: usize| {
        i.checked_sub(1)
            .and_then(|j| words.get(j))
            .map(|a| a.text.to_ascii_lowercase())
    };
    let verb_of = |i: usize| verb_word(&words[i].text, prev(i).as_deref());
    // Resource names can hold verb words too (`functions delete resize-image`): the
    // strongest verb on the line decides, so a name never makes a command look milder.
    let verb_at = (0..words.len())
        .filter(|i| words[*i].resolved)
        .filter_map(|i| verb_of(i).map(|v| (i, strength(v.1))))
        .max_by_key(|(i, s)| (*s, std::cmp::Reverse(*i)))
        .map(|(i, _)| i);
    let (rule, verb, risk, destructive) = match verb_at.and_then(verb_of) {
        Some(v) => v,
        None if words.len() <= 1 => ("cloud-read", Verb::Read, Risk::Low, false),
        None => ("cloud-other", Verb::Update, Risk::Medium, false),
    };
    let resource = opt(args, &["-n", "--name", "--app", "-a"]);
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
    if let Some(g) = grant {
        return Outcome::of(g.env(env));
    }
    let mut f = Finding::new(rule, verb, risk, cmd.program, &name).env(env);
    f.destructive = destructive;
    let mut out = Outcome::from(f);
    // What runs on the machine: `gcloud compute ssh vm --command …` or `-- …`,
    // `az vm run-command invoke --scripts …`.
    for s in ["--command", "--scripts"]
        .iter()
        .filter_map(|flag| opt(args, &[flag]))
    {
        out.nested.push(remote_script(s));
    }
    if verb == Verb::Exec
        && let Some(d) = args.iter().position(|a| a.text == "--")
        && let Some(inner) = args.get(d + 1..).filter(|r| !r.is_empty())
    {
        out.nested.push(Nested::Argv(inner.to_vec()));
    }
    out.remote = !out.nested.is_empty();
    Some(out)
}

/// A command line to run on another machine: read as a script when its text is known.
fn remote_script(a: Arg) -> Nested {
    if a.resolved {
        Nested::Script(a.text)
    } else {
        Nested::Argv(vec![a])
    }
}

/// The commands of `aws ssm send-command --parameters commands=…` (shorthand or JSON).
fn ssm_commands(rest: &[Arg]) -> Vec<Nested> {
    let Some(p) = opt(rest, &["--parameters"]) else {
        return Vec::new();
    };
    if !p.resolved {
        return vec![Nested::Argv(vec![p])];
    }
    let text = p.text.trim();
    let body = text
        .strip_prefix("commands=")
        .or_else(|| text.split_once("\"commands\"").map(|(_, r)| r))
        .unwrap_or("");
    let body = body
        .trim_start_matches([':', ' ', '['])
        .trim_end_matches(['}', ']', ' ']);
    body.split("\",")
        .map(|c| c.trim_matches(['"', '[', ']', ' ']))
        .filter(|c| !c.is_empty())
        .map(|c| Nested::Script(c.to_string()))
        .collect()
}
