//! The hook's command table (`tests/data/hook_commands.tsv`), classified in the workspace
//! the table assumes and judged by the rule the hook applies with the default
//! configuration: a command is held (ask) when any action is destructive or critical, or
//! any part of it is unrecognized; otherwise it is allowed. Prints per-class counts, the
//! confusion table and every miss (`-- --nocapture`).

#![allow(clippy::panic, reason = "a malformed table row fails the test loudly")]

use airlock_core::Risk;
use airlock_shell::{Classification, classify_in};
use std::collections::BTreeMap;

/// The working directory of the agent in every row.
const WORKSPACE: &str = "/home/dev/project";

/// One row of the table.
struct Row {
    line: usize,
    dangerous: bool,
    class: String,
    command: String,
}

fn rows() -> Vec<Row> {
    let text = include_str!("data/hook_commands.tsv");
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.splitn(3, '\t');
        let (Some(label), Some(class), Some(command)) =
            (fields.next(), fields.next(), fields.next())
        else {
            panic!(
                "line {}: expected label<TAB>class<TAB>command: {line:?}",
                i + 1
            );
        };
        let dangerous = match label {
            "dangerous" => true,
            "harmless" => false,
            other => panic!("line {}: unknown label `{other}`", i + 1),
        };
        assert!(!command.trim().is_empty(), "line {}: empty command", i + 1);
        out.push(Row {
            line: i + 1,
            dangerous,
            class: class.to_string(),
            command: command.to_string(),
        });
    }
    out
}

/// The hook's answer with the default configuration: held unless every part is recognized,
/// none destructive and none critical.
fn held(c: &Classification) -> bool {
    !c.unknown.is_empty()
        || c.actions
            .iter()
            .any(|a| a.destructive || a.risk == Risk::Critical)
}

/// A one-line account of a classification, for misses.
fn summary(c: &Classification) -> String {
    let mut parts: Vec<String> = c
        .actions
        .iter()
        .map(|a| {
            format!(
                "{} {} {:?}{} [{}]",
                a.verb,
                a.target,
                a.risk,
                if a.destructive { " destructive" } else { "" },
                a.rule
            )
        })
        .collect();
    parts.extend(c.unknown.iter().map(|u| format!("unknown `{u}`")));
    parts.join("; ")
}

#[test]
fn the_table_is_big_and_covers_every_class() {
    let rows = rows();
    let dangerous = rows.iter().filter(|r| r.dangerous).count();
    let harmless = rows.len() - dangerous;
    assert!(rows.len() >= 300, "{} rows", rows.len());
    assert!(dangerous >= 170, "{dangerous} dangerous rows");
    assert!(harmless >= 150, "{harmless} harmless rows");
    for class in [
        "cloud-terminate",
        "kube-wipe",
        "iac-replace",
        "kube-prune-drain",
        "rm-outside",
        "container-prune",
        "priv-escalation",
        "exfiltration",
        "pipe-to-shell",
        "git-discard",
        "xargs-delete",
    ] {
        let n = rows
            .iter()
            .filter(|r| r.dangerous && r.class == class)
            .count();
        assert!(n >= 5, "class `{class}` has {n} dangerous rows");
    }
    let mut seen = std::collections::HashSet::new();
    for r in &rows {
        assert!(
            seen.insert(&r.command),
            "line {}: duplicate {:?}",
            r.line,
            r.command
        );
    }
}

#[test]
fn the_hook_rule_holds_dangerous_commands_and_allows_harmless_ones() {
    let rows = rows();
    // class -> (rows, right)
    let mut by_class: BTreeMap<(bool, &str), (u32, u32)> = BTreeMap::new();
    let (mut tp, mut fn_, mut fp, mut tn) = (0u32, 0u32, 0u32, 0u32);
    let mut misses = Vec::new();
    for r in &rows {
        let c = classify_in(&r.command, Some(WORKSPACE));
        let caught = held(&c);
        let right = caught == r.dangerous;
        match (r.dangerous, caught) {
            (true, true) => tp += 1,
            (true, false) => fn_ += 1,
            (false, true) => fp += 1,
            (false, false) => tn += 1,
        }
        let e = by_class.entry((r.dangerous, r.class.as_str())).or_default();
        e.0 += 1;
        e.1 += u32::from(right);
        if !right {
            misses.push(format!(
                "  line {} [{}] {} {:?}\n      {}",
                r.line,
                r.class,
                if r.dangerous { "ALLOWED" } else { "HELD" },
                r.command,
                summary(&c)
            ));
        }
    }
    let recall = f64::from(tp) / f64::from((tp + fn_).max(1));
    let allowed = f64::from(tn) / f64::from((tn + fp).max(1));
    println!("per class (rows, right):");
    for ((dangerous, class), (n, right)) in &by_class {
        let label = if *dangerous { "dangerous" } else { "harmless" };
        println!("  {label:9} {class:18} {n:4} {right:4}");
    }
    println!("confusion (rows={}):", rows.len());
    println!("                 held(ask/deny)  allowed");
    println!("  dangerous      {tp:14}  {fn_:7}");
    println!("  harmless       {fp:14}  {tn:7}");
    println!("recall of dangerous = {recall:.3}, harmless allowed = {allowed:.3}");
    if !misses.is_empty() {
        println!("misses:\n{}", misses.join("\n"));
    }
    assert!(
        recall >= 0.98,
        "recall {recall:.3}; misses:\n{}",
        misses.join("\n")
    );
    assert!(
        allowed >= 0.98,
        "harmless allowed {allowed:.3}; misses:\n{}",
        misses.join("\n")
    );
}

#[test]
fn the_workspace_decides_what_a_delete_is() {
    let destructive =
        |cmd: &str, cwd: Option<&str>| classify_in(cmd, cwd).actions.iter().any(|a| a.destructive);
    assert!(!destructive("rm -rf target", Some(WORKSPACE)));
    assert!(!destructive(
        "rm -rf /home/dev/project/target",
        Some(WORKSPACE)
    ));
    assert!(destructive(
        "rm -rf /home/dev/other/target",
        Some(WORKSPACE)
    ));
    assert!(destructive("rm -rf ../other", Some(WORKSPACE)));
    assert!(destructive("cd /srv && rm -rf app", Some(WORKSPACE)));
    // Without a workspace, relative paths are in it and absolute ones are not.
    assert!(!destructive("rm -rf target", None));
    assert!(destructive("rm -rf /home/dev/project/target", None));
    // On another host nothing is the workspace.
    assert!(destructive("ssh build-1 rm -rf target", Some(WORKSPACE)));
}

/// Prints how every row classifies: `cargo test --test hook_commands -- --ignored
/// --nocapture show_every_row`.
#[test]
#[ignore = "a listing for people, not a check"]
fn show_every_row() {
    for r in rows() {
        let c = classify_in(&r.command, Some(WORKSPACE));
        let label = if r.dangerous { "dangerous" } else { "harmless" };
        println!(
            "{label} {} {} {:?}\n    {}",
            r.class,
            if held(&c) { "held" } else { "allowed" },
            r.command,
            summary(&c)
        );
    }
}
