//! Rules for local files and disks: `rm`, `find -delete`, `shred`, `dd`, `mkfs`,
//! permission changes, moves and copies, `rsync`.

use crate::detect_env;
use crate::rules::{Cmd, Finding, Nested, Outcome, has, operands, short_flag};
use crate::run::{Arg, Taint, is_block_device};
use airlock_core::{Risk, Verb};

pub(crate) fn classify(cmd: &Cmd) -> Option<Outcome> {
    let p = cmd.program;
    match p {
        "rm" | "unlink" => rm(cmd),
        "rmdir" => {
            let target = operands(cmd.args, &[]).into_iter().next();
            Outcome::of(file_finding("rmdir", Verb::Delete, Risk::Low, target))
        }
        "shred" | "srm" | "wipe" => {
            let target = operands(cmd.args, &["-n", "-s", "--iterations", "--size"])
                .into_iter()
                .next();
            let risk = if target.is_some_and(|t| is_block_device(&t.text)) {
                Risk::Critical
            } else {
                Risk::High
            };
            Outcome::of(file_finding("shred", Verb::Delete, risk, target).destructive())
        }
        "find" => find(cmd),
        "dd" => dd(cmd),
        "wipefs" if !has(cmd.args, &["-a", "--all"]) && !short_flag(cmd.args, 'a') => {
            Outcome::of(Finding::read("read-only", "command", p))
        }
        "fdisk" | "sfdisk" | "parted" | "sgdisk" | "gdisk" | "cfdisk"
            if has(cmd.args, &["-l", "--list", "print", "-p", "--print"]) =>
        {
            Outcome::of(Finding::read("read-only", "command", p))
        }
        "wipefs" | "fdisk" | "sfdisk" | "parted" | "sgdisk" | "gdisk" | "cfdisk" | "mkswap"
        | "mke2fs" | "blkdiscard" => disk(cmd, "disk-format"),
        _ if p.starts_with("mkfs") => disk(cmd, "mkfs"),
        "truncate" => {
            let size = crate::rules::opt(cmd.args, &["-s", "--size"]);
            let target = operands(cmd.args, &["-s", "--size", "-r", "--reference"])
                .into_iter()
                .next();
            let shrink = size.is_some_and(|s| s.text.starts_with(['0', '-', '<', '/']));
            let f = if shrink {
                file_finding("truncate-file", Verb::Delete, Risk::Medium, target).destructive()
            } else {
                file_finding("file-write", Verb::Update, Risk::Low, target)
            };
            Outcome::of(f)
        }
        "chmod" | "chown" | "chgrp" | "chattr" | "setfacl" => perms(cmd),
        "mv" => mv(cmd),
        "cp" | "install" | "tee" => {
            let ops = operands(cmd.args, &["-t", "--target-directory", "-m", "--mode"]);
            let dest = if p == "tee" {
                ops.first().copied()
            } else {
                ops.last().copied()
            };
            if let Some(d) = dest.filter(|d| is_block_device(&d.text)) {
                let f = file_finding("write-device", Verb::Delete, Risk::Critical, Some(d));
                return Outcome::of(f.destructive());
            }
            let (rule, verb) = if p == "tee" {
                ("file-write", Verb::Update)
            } else {
                ("file-copy", Verb::Create)
            };
            Outcome::of(file_finding(rule, verb, Risk::Low, dest))
        }
        "mkdir" | "touch" | "ln" | "mktemp" => {
            let target = operands(cmd.args, &["-m", "--mode", "-t", "--context"])
                .last()
                .copied();
            Outcome::of(file_finding("file-create", Verb::Create, Risk::Low, target))
        }
        "tar" | "unzip" | "zip" | "gzip" | "gunzip" | "bzip2" | "xz" | "7z" => {
            let ops = operands(cmd.args, &["-f", "-C", "-d", "--file", "--directory"]);
            // `tar czf out.tgz dir`: the first word bundles options, the archive follows.
            let bundled = p == "tar"
                && ops.first().is_some_and(|a| {
                    a.text.chars().all(|c| c.is_ascii_alphabetic()) && a.text.contains('f')
                });
            let target = crate::rules::opt(cmd.args, &["-f", "--file"])
                .or_else(|| ops.get(usize::from(bundled)).map(|a| (*a).clone()));
            let target = target.as_ref();
            Outcome::of(file_finding("archive", Verb::Create, Risk::Low, target))
        }
        "rsync" => rsync(cmd),
        "scp" | "sftp" => {
            let ops = operands(cmd.args, &["-P", "-i", "-o", "-F", "-J", "-l", "-S", "-c"]);
            let dest = ops.last().copied();
            let env = ops.iter().find_map(|a| a.env());
            let f = file_finding("file-copy-remote", Verb::Update, Risk::Medium, dest);
            Outcome::of(f.env(env))
        }
        _ => None,
    }
}

/// How bad deleting or clobbering a path would be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Severity {
    Normal,
    /// Only known at run time: could be anything.
    Unknown,
    /// The root, the home directory, the working directory, or a top-level system directory.
    Catastrophic,
}

fn severity(a: &Arg) -> Severity {
    if !a.resolved {
        return if catastrophic(&a.text) {
            Severity::Catastrophic
        } else {
            Severity::Unknown
        };
    }
    if catastrophic(&a.text) {
        Severity::Catastrophic
    } else {
        Severity::Normal
    }
}

/// `/`, `/*`, `~`, `*`, `.`, `..`, `/etc`, `/var/*`, `$HOME` …
fn catastrophic(path: &str) -> bool {
    let p = path.trim();
    if p.starts_with("$HOME") || p.starts_with("${HOME") {
        return p
            .trim_start_matches("${HOME}")
            .trim_start_matches("$HOME")
            .trim_matches(['/', '*', '.'])
            .is_empty();
    }
    let stripped = p.trim_end_matches(['/', '*']).trim_end_matches("/.");
    if stripped.is_empty() || matches!(stripped, "~" | "." | ".." | ".*" | "./.*") {
        return true;
    }
    // One component under the root: /etc, /var, /usr, /home, /boot … (not /tmp).
    stripped
        .strip_prefix('/')
        .is_some_and(|rest| !rest.is_empty() && !rest.contains('/') && rest != "tmp")
}

/// A readable name for a path target.
fn path_name(a: &Arg) -> String {
    if !a.resolved {
        return a.name();
    }
    let p = a.text.trim();
    match p.trim_end_matches(['/', '*']).trim_end_matches("/.") {
        "" => "root".to_string(),
        "~" => "home".to_string(),
        "." | ".." | ".*" | "./.*" => "cwd".to_string(),
        _ if p == "*" => "cwd".to_string(),
        _ => p.to_string(),
    }
}

/// The environment a path names; device paths (`/dev/…`) name none.
fn path_env(a: &Arg) -> Option<String> {
    if a.text.starts_with("/dev/") {
        None
    } else {
        a.env()
    }
}

fn file_finding(rule: &'static str, verb: Verb, risk: Risk, target: Option<&Arg>) -> Finding {
    let kind = if target.is_some_and(|t| is_block_device(&t.text)) {
        "device"
    } else {
        "file"
    };
    let name = target.map_or_else(|| "unnamed".to_string(), path_name);
    Finding::new(rule, verb, risk, kind, &name).env(target.and_then(path_env))
}

fn rm(cmd: &Cmd) -> Option<Outcome> {
    let (mut recursive, mut force, mut no_preserve) = (false, false, false);
    let mut targets: Vec<&Arg> = Vec::new();
    let mut options_done = false;
    for a in cmd.args {
        let t = a.text.as_str();
        if options_done || !a.resolved || !t.starts_with('-') || t == "-" {
            targets.push(a);
            continue;
        }
        match t {
            "--" => options_done = true,
            "--recursive" => recursive = true,
            "--force" => force = true,
            "--no-preserve-root" => no_preserve = true,
            _ if t.starts_with("--") => {}
            _ => {
                recursive |= t.contains(['r', 'R']);
                force |= t.contains('f');
            }
        }
    }
    let worst = targets.iter().copied().max_by_key(|a| severity(a));
    let severe = worst.is_some_and(|a| severity(a) == Severity::Catastrophic) || no_preserve;
    let (rule, risk) = match (recursive, force) {
        (true, true) => ("rm-recursive-force", Risk::High),
        (true, false) => ("rm-recursive", Risk::High),
        _ => ("rm-file", Risk::Medium),
    };
    let risk = match (severe, recursive) {
        (true, true) => Risk::Critical,
        (true, false) => Risk::High,
        _ => risk,
    };
    Outcome::of(file_finding(rule, Verb::Delete, risk, worst).destructive())
}

fn find(cmd: &Cmd) -> Option<Outcome> {
    let args = cmd.args;
    let start = args
        .iter()
        .take_while(|a| !a.text.starts_with(['-', '(', '!']))
        .next();
    let mut out = Outcome::default();
    let mut i = 0;
    while let Some(a) = args.get(i) {
        i += 1;
        if !matches!(a.text.as_str(), "-exec" | "-execdir" | "-ok" | "-okdir") {
            continue;
        }
        let mut argv = Vec::new();
        while let Some(b) = args.get(i) {
            i += 1;
            if matches!(b.text.as_str(), ";" | "+") {
                break;
            }
            argv.push(if b.text.contains("{}") {
                Arg::unresolved("{}", Taint::default())
            } else {
                b.clone()
            });
        }
        if !argv.is_empty() {
            out.nested.push(Nested::Argv(argv));
        }
    }
    let f = if has(args, &["-delete"]) {
        let risk = if start.is_some_and(|s| severity(s) == Severity::Catastrophic) {
            Risk::Critical
        } else {
            Risk::High
        };
        file_finding("find-delete", Verb::Delete, risk, start).destructive()
    } else {
        let name = start.map_or_else(|| ".".to_string(), path_name);
        Finding::read("read-only", "file", &name).env(start.and_then(path_env))
    };
    out.findings.push(f);
    Some(out)
}

fn dd(cmd: &Cmd) -> Option<Outcome> {
    let of = cmd.args.iter().find_map(|a| {
        a.text.strip_prefix("of=").map(|v| Arg {
            text: v.to_string(),
            ..a.clone()
        })
    });
    let f = match &of {
        Some(o) if is_block_device(&o.text) || !o.resolved => {
            let risk = if o.resolved {
                Risk::Critical
            } else {
                Risk::High
            };
            file_finding("dd-device", Verb::Delete, risk, Some(o)).destructive()
        }
        Some(o) => file_finding("file-write", Verb::Update, Risk::Medium, Some(o)),
        None => Finding::read("read-only", "command", "dd"),
    };
    Outcome::of(f)
}

/// `mkfs`, `wipefs -a`, partitioning: everything on the device is gone.
fn disk(cmd: &Cmd, rule: &'static str) -> Option<Outcome> {
    let dev = operands(cmd.args, &["-t", "-L", "-b", "-n", "-O", "-c"])
        .last()
        .copied();
    let name = dev.map_or_else(|| "unnamed".to_string(), Arg::name);
    let f = Finding::new(rule, Verb::Delete, Risk::Critical, "device", &name).destructive();
    Outcome::of(f)
}

fn perms(cmd: &Cmd) -> Option<Outcome> {
    let recursive = short_flag(cmd.args, 'R') || has(cmd.args, &["--recursive"]);
    let ops = operands(cmd.args, &["--reference", "--from"]);
    let paths = ops.get(1..).unwrap_or_default();
    let worst = paths.iter().copied().max_by_key(|a| severity(a));
    let f = match worst {
        Some(w) if recursive && severity(w) == Severity::Catastrophic => {
            file_finding("perm-recursive-root", Verb::Update, Risk::Critical, Some(w))
        }
        _ => file_finding("file-perm", Verb::Update, Risk::Low, worst),
    };
    Outcome::of(f)
}

fn mv(cmd: &Cmd) -> Option<Outcome> {
    let ops = operands(cmd.args, &["-t", "--target-directory", "-S", "--suffix"]);
    let (dest, sources) = match ops.split_last() {
        Some((d, s)) => (Some(*d), s),
        None => (None, &[][..]),
    };
    let worst = sources.iter().copied().max_by_key(|a| severity(a));
    let f = if let Some(w) = worst.filter(|w| severity(w) == Severity::Catastrophic) {
        file_finding("mv-critical", Verb::Delete, Risk::Critical, Some(w)).destructive()
    } else if dest.is_some_and(|d| d.text == "/dev/null") {
        file_finding("mv-to-null", Verb::Delete, Risk::Medium, worst).destructive()
    } else {
        file_finding("file-move", Verb::Update, Risk::Low, dest)
    };
    Outcome::of(f)
}

fn rsync(cmd: &Cmd) -> Option<Outcome> {
    let ops = operands(
        cmd.args,
        &["-e", "--rsh", "--exclude", "--include", "-f", "--filter"],
    );
    let dest = ops.last().copied();
    let env = ops.iter().rev().find_map(|a| a.env());
    let delete = cmd
        .args
        .iter()
        .any(|a| a.text.starts_with("--delete") || a.text == "--remove-source-files");
    let f = if delete {
        file_finding("rsync-delete", Verb::Delete, Risk::High, dest).destructive()
    } else {
        file_finding("file-sync", Verb::Update, Risk::Medium, dest)
    };
    Outcome::of(f.env(env.or_else(|| dest.and_then(|d| detect_env(&d.text)))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catastrophic_paths() {
        for p in [
            "/", "/*", "~", "~/", "~/*", "*", ".", "./*", "..", "/etc", "/var/", "$HOME",
        ] {
            assert!(catastrophic(p), "{p}");
        }
        for p in [
            "/tmp/build",
            "/tmp/*",
            "build",
            "./target",
            "~/x",
            "/var/lib/app",
            "$HOME/x",
        ] {
            assert!(!catastrophic(p), "{p}");
        }
    }
}
