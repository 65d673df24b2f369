//! Rules for `git`: force pushes and remote deletions, history rewrites, and the local
//! commands that throw work away (`reset --hard`, `clean -f`, `checkout -- .`); and for
//! the GitHub CLI `gh`, whose deletions are destructive.

use crate::rules::{Cmd, Finding, Nested, Outcome, has, operand_index, operands, opt, short_flag};
use crate::run::Arg;
use airlock_core::{Risk, Verb};

/// Global options of `git` that take a value.
const GLOBAL_WITH_VALUE: [&str; 6] = [
    "-C",
    "-c",
    "--git-dir",
    "--work-tree",
    "--namespace",
    "--exec-path",
];

/// Subcommands that only read.
const READS: [&str; 26] = [
    "status",
    "log",
    "diff",
    "show",
    "fetch",
    "blame",
    "describe",
    "rev-parse",
    "ls-files",
    "ls-remote",
    "ls-tree",
    "shortlog",
    "grep",
    "cat-file",
    "show-ref",
    "for-each-ref",
    "whatchanged",
    "help",
    "version",
    "count-objects",
    "rev-list",
    "reflog",
    "var",
    "check-ignore",
    "merge-base",
    "name-rev",
];

pub(crate) fn classify(cmd: &Cmd) -> Option<Outcome> {
    if cmd.program == "gh" {
        return gh(cmd);
    }
    if cmd.program != "git" {
        return None;
    }
    let i = operand_index(cmd.args, &GLOBAL_WITH_VALUE);
    let sub = cmd.args.get(i).map_or("", |a| a.text.as_str());
    let rest = cmd.args.get(i + 1..).unwrap_or_default();
    // Settings that run commands (`-c alias.x='!…'`, `-c core.pager=…`), given for this
    // run or saved by `git config`, are scripts of their own.
    let mut scripts = Vec::new();
    for (j, a) in cmd.args.iter().enumerate().take(i) {
        if a.text == "-c"
            && let Some(kv) = cmd.args.get(j + 1).and_then(|v| v.text.split_once('='))
        {
            scripts.extend(command_setting(kv.0, kv.1));
        }
    }
    if sub == "config" {
        let ops = operands(rest, &["-f", "--file", "--type", "--default"]);
        if let [key, value, ..] = ops.as_slice() {
            scripts.extend(command_setting(&key.text, &value.text));
        }
    }
    if !scripts.is_empty() {
        let mut out = classify_git(sub, rest).unwrap_or_default();
        out.nested.extend(scripts.into_iter().map(Nested::Script));
        return Some(out);
    }
    classify_git(sub, rest)
}

/// The shell command a git setting runs, if it is one that does.
fn command_setting(key: &str, value: &str) -> Option<String> {
    let key = key.to_ascii_lowercase();
    if key.starts_with("alias.") {
        return value.strip_prefix('!').map(str::to_string);
    }
    matches!(
        key.as_str(),
        "core.pager"
            | "core.editor"
            | "core.sshcommand"
            | "core.fsmonitor"
            | "sequence.editor"
            | "diff.external"
            | "pager.log"
            | "pager.diff"
            | "credential.helper"
    )
    .then(|| value.trim_start_matches('!').to_string())
}

fn classify_git(sub: &str, rest: &[Arg]) -> Option<Outcome> {
    let local = |rule, verb, risk| Finding::new(rule, verb, risk, "git", "worktree");
    let read = || Outcome::of(Finding::read("git-read", "git", "worktree"));
    let discard = || Outcome::of(local("git-discard", Verb::Update, Risk::Medium).destructive());
    let f = match sub {
        "push" => return push(rest),
        "reflog"
            if matches!(
                rest.first().map(|a| a.text.as_str()),
                Some("expire" | "delete")
            ) =>
        {
            local("git-history-rewrite", Verb::Update, Risk::Medium).destructive()
        }
        s if READS.contains(&s) => return read(),
        "" => return read(),
        "reset" if has(rest, &["--hard", "--merge", "--keep"]) => {
            local("git-reset-hard", Verb::Update, Risk::Medium).destructive()
        }
        "clean" => {
            let force = short_flag(rest, 'f') || has(rest, &["--force"]);
            let dry = short_flag(rest, 'n') || has(rest, &["--dry-run"]);
            if !force || dry {
                return read();
            }
            local("git-clean", Verb::Delete, Risk::Medium).destructive()
        }
        "checkout" => {
            let ops = operands(rest, &["-b", "-B", "--orphan"]);
            let discards = has(rest, &["-f", "--force", "--"]) || ops.iter().any(|a| a.text == ".");
            if discards && !short_flag(rest, 'b') && !short_flag(rest, 'B') {
                return discard();
            }
            local("git-local", Verb::Update, Risk::Low)
        }
        "switch" if has(rest, &["--discard-changes", "-f", "--force"]) => return discard(),
        "update-ref" if has(rest, &["-d", "--delete"]) || rest.len() >= 2 => {
            local("git-ref-rewrite", Verb::Update, Risk::Medium).destructive()
        }
        "restore" => {
            let staged_only = has(rest, &["--staged", "-S"]) && !has(rest, &["--worktree", "-W"]);
            if staged_only {
                local("git-local", Verb::Update, Risk::Low)
            } else {
                return discard();
            }
        }
        "branch" => {
            let force_delete = short_flag(rest, 'D')
                || (has(rest, &["--delete", "-d"]) && has(rest, &["--force", "-f"]));
            let name = operands(rest, &["-u", "--set-upstream-to"])
                .first()
                .map_or_else(|| "current".to_string(), |a| a.name());
            let branch =
                |rule, verb, risk| Finding::new(rule, verb, risk, "git", &format!("branch.{name}"));
            if force_delete {
                branch("git-branch-delete", Verb::Delete, Risk::Medium).destructive()
            } else if has(rest, &["-d", "--delete"]) {
                branch("git-branch-delete", Verb::Delete, Risk::Low)
            } else if short_flag(rest, 'm') || short_flag(rest, 'M') || short_flag(rest, 'c') {
                branch("git-local", Verb::Update, Risk::Low)
            } else {
                return read();
            }
        }
        "stash" => match rest.first().map(|a| a.text.as_str()) {
            Some("drop" | "clear") => {
                local("git-stash-drop", Verb::Delete, Risk::Medium).destructive()
            }
            Some("list" | "show") => return read(),
            _ => local("git-local", Verb::Update, Risk::Low),
        },
        "filter-branch" | "filter-repo" => {
            local("git-history-rewrite", Verb::Update, Risk::High).destructive()
        }
        "tag" | "remote" | "config" | "worktree" | "submodule" | "notes" | "stash-list"
            if rest.is_empty()
                || has(
                    rest,
                    &[
                        "-l",
                        "--list",
                        "-v",
                        "--get",
                        "--get-all",
                        "list",
                        "show",
                        "status",
                        "get-url",
                    ],
                ) =>
        {
            return read();
        }
        "clone" | "init" => local("git-local", Verb::Create, Risk::Low),
        _ => local("git-local", Verb::Update, Risk::Low),
    };
    Outcome::of(f)
}

/// `git push`: force and deletion are destructive; on `main`/`master`, critical.
fn push(args: &[Arg]) -> Option<Outcome> {
    let force_flag = short_flag(args, 'f')
        || has(
            args,
            &[
                "--force",
                "--force-with-lease",
                "--force-if-includes",
                "--mirror",
            ],
        );
    let delete_flag = short_flag(args, 'd') || has(args, &["--delete", "--prune", "--mirror"]);
    let ops = operands(
        args,
        &["--repo", "--receive-pack", "--exec", "-o", "--push-option"],
    );
    let remote = ops.first().copied();
    let refspecs = ops.get(1..).unwrap_or_default();
    let mut forced_ref = false;
    let mut deleted_ref = false;
    let mut branches: Vec<String> = Vec::new();
    for r in refspecs {
        if !r.resolved {
            branches.push(r.name());
            continue;
        }
        let spec = r.text.as_str();
        forced_ref |= spec.starts_with('+');
        let spec = spec.trim_start_matches('+');
        deleted_ref |= spec.starts_with(':') && spec.len() > 1;
        let dest = spec.rsplit(':').next().unwrap_or(spec);
        let dest = dest
            .trim_start_matches("refs/heads/")
            .trim_start_matches("refs/tags/");
        branches.push(if dest.is_empty() || dest == "HEAD" {
            "current".to_string()
        } else {
            dest.to_string()
        });
    }
    if branches.is_empty() {
        branches.push("current".to_string());
    }
    let main = branches.iter().any(|b| b == "main" || b == "master");
    let name = format!("branch.{}", branches.join("_"));
    let env = branches
        .iter()
        .find_map(|b| crate::detect_env(b))
        .or_else(|| remote.and_then(Arg::env));
    let f = if force_flag || forced_ref {
        let risk = if main { Risk::Critical } else { Risk::High };
        Finding::new("git-push-force", Verb::Update, risk, "git", &name).destructive()
    } else if delete_flag || deleted_ref {
        let risk = if main { Risk::Critical } else { Risk::High };
        Finding::new("git-push-delete", Verb::Delete, risk, "git", &name).destructive()
    } else {
        Finding::new("git-push", Verb::Update, Risk::Medium, "git", &name)
    };
    Outcome::of(f.env(env))
}

/// `gh`: deletions (`repo delete`, `release delete`, `api -X DELETE`) are destructive;
/// creating, editing and merging are ordinary; the rest reads.
fn gh(cmd: &Cmd) -> Option<Outcome> {
    let args = cmd.args;
    let ops = operands(
        args,
        &[
            "-R",
            "--repo",
            "-X",
            "--method",
            "-t",
            "--title",
            "-b",
            "--body",
            "-F",
            "--field",
            "-f",
            "--raw-field",
            "-H",
            "--header",
            "-B",
            "--base",
            "-L",
            "--limit",
            "-q",
            "--jq",
            "--json",
            "-s",
            "--state",
            "-l",
            "--label",
            "-a",
            "--assignee",
            "--body-file",
        ],
    );
    let sub = ops.first().map_or("", |a| a.text.as_str());
    let sub2 = ops.get(1).map_or("", |a| a.text.as_str());
    let repo = opt(args, &["-R", "--repo"]).map_or_else(|| "current".to_string(), |a| a.name());
    let mk = |rule, verb, risk| Finding::new(rule, verb, risk, "github", &format!("{sub}.{repo}"));
    let method = opt(args, &["-X", "--method"]).map(|m| m.text.to_ascii_uppercase());
    let f = match (sub, sub2) {
        ("api", _) if method.as_deref() == Some("DELETE") => {
            mk("gh-delete", Verb::Delete, Risk::High).destructive()
        }
        ("api", _) if method.is_some_and(|m| m != "GET") => {
            mk("gh-write", Verb::Update, Risk::Medium)
        }
        (_, "delete" | "delete-asset") => mk("gh-delete", Verb::Delete, Risk::High).destructive(),
        (
            _,
            "create" | "edit" | "merge" | "close" | "reopen" | "comment" | "review" | "ready"
            | "set" | "upload" | "rerun" | "cancel" | "fork" | "rename" | "archive" | "transfer"
            | "sync" | "lock" | "unlock" | "pin" | "develop" | "enable" | "disable" | "run" | "add"
            | "remove",
        ) => mk("gh-write", Verb::Update, Risk::Medium),
        ("pr" | "repo", "checkout" | "clone") => mk("gh-local", Verb::Update, Risk::Low),
        _ => return Outcome::of(Finding::read("gh-read", "github", &format!("{sub}.{repo}"))),
    };
    Outcome::of(f)
}
