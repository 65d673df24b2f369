//! Rules for local files and disks: `rm`, `find -delete`, `shred`, `dd`, `mkfs`,
//! permission changes, moves and copies, `rsync`.
//!
//! Where a path points decides how bad deleting it is (see `paths`): inside the workspace
//! it is ordinary coding work (`rm -rf target`); elsewhere, somewhere only known at run
//! time, or the workspace itself it is destructive; the root, the home directory or a
//! top-level system directory is critical.

use crate::detect_env;
use crate::grants::sets_setuid;
use crate::paths::{Place, is_privileged};
use crate::rules::{Change, Cmd, Finding, Nested, Outcome, has, operands, short_flag};
use crate::run::{Arg, Taint, is_block_device};
use airlock_core::{Risk, Verb};

pub(crate) fn classify(cmd: &Cmd) -> Option<Outcome> {
    let p = cmd.program;
    match p {
        "rm" | "unlink" | "rimraf" => rm(cmd),
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
            let inside = target.is_some_and(|t| cmd.state.place(t) == Place::Inside);
            let f = if shrink && inside {
                file_finding("truncate-file", Verb::Update, Risk::Low, target)
            } else if shrink {
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
            if let Some(d) = privileged(&ops) {
                return Outcome::of(file_finding(
                    "privileged-file-write",
                    Verb::Update,
                    Risk::Critical,
                    Some(d),
                ));
            }
            // `tee FILE` and `cp /dev/null FILE` overwrite FILE, as `> FILE` does.
            let append = p == "tee" && (short_flag(cmd.args, 'a') || has(cmd.args, &["--append"]));
            let empties = p != "tee"
                && ops.len() == 2
                && ops
                    .first()
                    .is_some_and(|a| matches!(a.text.as_str(), "/dev/null" | "/dev/zero"));
            if p == "tee" || empties {
                let worst = ops
                    .iter()
                    .skip(usize::from(empties))
                    .filter_map(|d| cmd.state.write_finding(d, append))
                    .max_by_key(|f| (f.risk, f.destructive));
                if let Some(f) = worst {
                    return Outcome::of(f);
                }
            }
            let (rule, verb) = if p == "tee" {
                ("file-write", Verb::Update)
            } else {
                ("file-copy", Verb::Create)
            };
            Outcome::of(file_finding(rule, verb, Risk::Low, dest))
        }
        "mkdir" | "touch" | "ln" | "mktemp" => {
            let ops = operands(cmd.args, &["-m", "--mode", "-t", "--context"]);
            if let Some(d) = privileged(&ops) {
                return Outcome::of(file_finding(
                    "privileged-file-write",
                    Verb::Update,
                    Risk::Critical,
                    Some(d),
                ));
            }
            let mut out = Outcome::from(file_finding(
                "file-create",
                Verb::Create,
                Risk::Low,
                ops.last().copied(),
            ));
            if p == "ln" {
                out.changes.extend(link(&ops));
            }
            Some(out)
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
            let mut out = Outcome::from(file_finding("archive", Verb::Create, Risk::Low, target));
            out.nested.extend(
                archive_commands(p, cmd.args)
                    .into_iter()
                    .map(Nested::Script),
            );
            Some(out)
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

/// Commands an archiver runs: `tar --to-command=CMD`, `--checkpoint-action=exec=CMD`,
/// `--use-compress-program=CMD` (`-I CMD`), volume scripts, `zip -TT CMD`.
fn archive_commands(program: &str, args: &[Arg]) -> Vec<String> {
    let names: &[&str] = match program {
        "tar" => &[
            "--to-command",
            "--checkpoint-action",
            "--use-compress-program",
            "-I",
            "--info-script",
            "--new-volume-script",
            "-F",
            "--rsh-command",
            "--rmt-command",
        ],
        "zip" => &["-TT", "--unzip-command"],
        _ => return Vec::new(),
    };
    let mut out = Vec::new();
    for (i, a) in args.iter().enumerate() {
        let t = a.text.as_str();
        for n in names {
            let value = if t == *n {
                args.get(i + 1).map(|v| v.text.as_str())
            } else {
                t.strip_prefix(n).and_then(|v| v.strip_prefix('='))
            };
            let Some(v) = value else { continue };
            let v = if *n == "--checkpoint-action" {
                match v.strip_prefix("exec=") {
                    Some(c) => c,
                    None => continue,
                }
            } else {
                v
            };
            out.push(if a.resolved {
                v.to_string()
            } else {
                format!("${{{}}}", crate::UNRESOLVED)
            });
        }
    }
    out
}

/// The first of `paths` that decides who may do what (`/etc/sudoers` …), if any.
fn privileged<'a>(paths: &[&'a Arg]) -> Option<&'a Arg> {
    paths
        .iter()
        .copied()
        .find(|a| a.resolved && is_privileged(&a.text))
}

/// The worst place among `paths`, and the path that is there.
fn worst<'a>(cmd: &Cmd, paths: &[&'a Arg]) -> Option<(&'a Arg, Place)> {
    paths
        .iter()
        .map(|a| (*a, cmd.state.place(a)))
        .max_by_key(|(_, p)| *p)
}

/// `/`, `/*`, `~`, `*`, `.`, `..`, `/etc`, `/var/*`, `$HOME` …, as text.
pub(crate) fn catastrophic(path: &str) -> bool {
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
        _ if p == "*" => "cwd".to_string(),
        "" => "root".to_string(),
        "~" => "home".to_string(),
        "." | ".*" | "./.*" => "cwd".to_string(),
        ".." => "parent".to_string(),
        _ => p.to_string(),
    }
}

/// The environment a path names; device paths (`/dev/…`) name none, and neither does the
/// user name of a home directory (`/home/dev/…` is not the `dev` environment).
fn path_env(a: &Arg) -> Option<String> {
    if a.text.starts_with("/dev/") || !a.resolved {
        return None;
    }
    crate::paths::path_env(&a.text)
}

/// A finding on a file (or a device, when the path is one).
pub(crate) fn file_finding(
    rule: &'static str,
    verb: Verb,
    risk: Risk,
    target: Option<&Arg>,
) -> Finding {
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
    let recursive = recursive || cmd.program == "rimraf";
    let force = force || cmd.program == "rimraf";
    let (target, place) = worst(cmd, &targets).map_or((None, Place::Inside), |(a, p)| (Some(a), p));
    let place = if no_preserve {
        Place::Catastrophic
    } else {
        place
    };
    let rule = match (recursive, force) {
        (true, true) => "rm-recursive-force",
        (true, false) => "rm-recursive",
        _ => "rm-file",
    };
    let f = match (place, recursive) {
        (Place::Inside, false) => file_finding(rule, Verb::Delete, Risk::Low, target),
        (Place::Inside, true) => file_finding(rule, Verb::Delete, Risk::Medium, target),
        (Place::Outside | Place::Unknown, false) => {
            file_finding(rule, Verb::Delete, Risk::Medium, target).destructive()
        }
        (Place::Outside | Place::Unknown, true) => {
            file_finding(rule, Verb::Delete, Risk::High, target).destructive()
        }
        (Place::Workspace | Place::Catastrophic, false) => {
            file_finding(rule, Verb::Delete, Risk::High, target).destructive()
        }
        (Place::Workspace | Place::Catastrophic, true) => {
            file_finding(rule, Verb::Delete, Risk::Critical, target).destructive()
        }
    };
    Outcome::of(f)
}

/// `find` tests that pick files by name; without one, `find DIR -delete` takes all of DIR.
const NAME_TESTS: [&str; 8] = [
    "-name",
    "-iname",
    "-path",
    "-ipath",
    "-wholename",
    "-iwholename",
    "-regex",
    "-iregex",
];

fn find(cmd: &Cmd) -> Option<Outcome> {
    let args = cmd.args;
    let start = args
        .iter()
        .take_while(|a| !a.text.starts_with(['-', '(', '!']))
        .next();
    let start_place = start.map_or(Place::Workspace, |s| cmd.state.place(s));
    let by_name = args.iter().enumerate().any(|(i, a)| {
        NAME_TESTS.contains(&a.text.as_str())
            && args
                .get(i + 1)
                .is_some_and(|v| v.resolved && !matches!(v.text.as_str(), "*" | ".*" | "*/*"))
    });
    // The files found are below the start: `{}` of `find build -name '*.o' -exec rm {} +`
    // is in `build`. Without a name test it could be every file there.
    let found = |s: &Arg| {
        if s.resolved && by_name {
            Arg::lit(&format!("{}/{{}}", s.text.trim_end_matches('/')))
        } else {
            Arg::unresolved("{}", Taint::default())
        }
    };
    let found = found(start.unwrap_or(&Arg::lit(".")));
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
                found.clone()
            } else {
                b.clone()
            });
        }
        if !argv.is_empty() {
            out.nested.push(Nested::Argv(argv));
        }
    }
    let f = if has(args, &["-delete"]) {
        match start_place {
            Place::Inside | Place::Workspace if by_name => {
                file_finding("find-delete", Verb::Delete, Risk::Medium, start)
            }
            Place::Workspace | Place::Catastrophic => {
                file_finding("find-delete", Verb::Delete, Risk::Critical, start).destructive()
            }
            _ => file_finding("find-delete", Verb::Delete, Risk::High, start).destructive(),
        }
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
        Some(o) if is_privileged(&o.text) => file_finding(
            "privileged-file-write",
            Verb::Update,
            Risk::Critical,
            Some(o),
        ),
        Some(o)
            if cmd.state.place(o) == Place::Inside
                || cmd.state.site.is_scratch(o)
                || o.text.starts_with("/dev/") =>
        {
            file_finding("file-write", Verb::Update, Risk::Medium, Some(o))
        }
        Some(o) => file_finding("file-overwrite", Verb::Update, Risk::High, Some(o)).destructive(),
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
    let bad = worst(cmd, paths);
    let target = bad.map(|(a, _)| a);
    let setuid = cmd.program == "chmod" && ops.first().is_some_and(|m| sets_setuid(&m.text));
    let f = if setuid {
        file_finding("setuid-grant", Verb::Update, Risk::Critical, target)
    } else if let Some(p) = privileged(paths) {
        file_finding(
            "privileged-file-perm",
            Verb::Update,
            Risk::Critical,
            Some(p),
        )
    } else {
        match bad {
            Some((w, Place::Catastrophic | Place::Workspace)) if recursive => {
                file_finding("perm-recursive-root", Verb::Update, Risk::Critical, Some(w))
            }
            _ => file_finding("file-perm", Verb::Update, Risk::Low, target),
        }
    };
    Outcome::of(f)
}

fn mv(cmd: &Cmd) -> Option<Outcome> {
    let ops = operands(cmd.args, &["-t", "--target-directory", "-S", "--suffix"]);
    let (dest, sources) = match ops.split_last() {
        Some((d, s)) => (Some(*d), s),
        None => (None, &[][..]),
    };
    let bad = worst(cmd, sources);
    let f = if let Some((w, Place::Catastrophic | Place::Workspace)) = bad {
        file_finding("mv-critical", Verb::Delete, Risk::Critical, Some(w)).destructive()
    } else if dest.is_some_and(|d| d.text == "/dev/null") {
        file_finding(
            "mv-to-null",
            Verb::Delete,
            Risk::Medium,
            bad.map(|(a, _)| a),
        )
        .destructive()
    } else if let Some(d) = dest.filter(|d| d.resolved && is_privileged(&d.text)) {
        file_finding(
            "privileged-file-write",
            Verb::Update,
            Risk::Critical,
            Some(d),
        )
    } else {
        file_finding("file-move", Verb::Update, Risk::Low, dest)
    };
    // What was moved in from outside is still that data: deleting it later is deleting it.
    let mut out = Outcome::from(f);
    if let Some(d) = dest.filter(|d| d.resolved) {
        for s in sources.iter().filter(|s| s.resolved) {
            if cmd.state.place(s) != Place::Inside {
                let base = s
                    .text
                    .trim_end_matches('/')
                    .rsplit('/')
                    .next()
                    .unwrap_or("");
                let into = format!("{}/{base}", d.text.trim_end_matches('/'));
                out.changes.push(Change::Link {
                    path: d.text.clone(),
                    target: s.text.clone(),
                });
                out.changes.push(Change::Link {
                    path: into,
                    target: s.text.clone(),
                });
            }
        }
    }
    Some(out)
}

/// `ln [-s] TARGET [LINK]`: the link leads to the target, which a relative target names
/// from the link's directory.
fn link(ops: &[&Arg]) -> Option<Change> {
    let (target, link) = match ops {
        [t] => (
            *t,
            t.text
                .trim_end_matches('/')
                .rsplit('/')
                .next()
                .unwrap_or(""),
        ),
        [t, l] => (*t, l.text.as_str()),
        _ => return None,
    };
    if !target.resolved || link.is_empty() {
        return None;
    }
    let target_text = if target.text.starts_with(['/', '~']) {
        target.text.clone()
    } else {
        match link.rsplit_once('/') {
            Some((dir, _)) => format!("{dir}/{}", target.text),
            None => target.text.clone(),
        }
    };
    Some(Change::Link {
        path: link.to_string(),
        target: target_text,
    })
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
    let f = if delete && dest.is_some_and(|d| cmd.state.place(d) == Place::Inside) {
        file_finding("rsync-delete", Verb::Delete, Risk::Medium, dest)
    } else if delete {
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
