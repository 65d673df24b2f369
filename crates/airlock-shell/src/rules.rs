//! The rules: given one simple command with wrappers peeled off, what it does. This
//! file holds the shared vocabulary (command view, findings, option parsing), the
//! dispatcher and the rules for shell builtins and harmless reads; the other domains
//! live in their own files.

use crate::run::{Arg, State, Stdin, Value};
use crate::{cloud, files, grants, host, kube, project, sql, vcs};
use airlock_core::{Risk, Verb};

/// One simple command, as the rules see it.
pub(crate) struct Cmd<'a> {
    /// The program's base name (`kubectl`, not `/usr/bin/kubectl`).
    pub program: &'a str,
    pub args: &'a [Arg],
    /// Variables set on the command itself (`AWS_PROFILE=prod aws …`).
    pub assigns: &'a [(String, Arg)],
    pub stdin: &'a Stdin,
    pub state: &'a State,
}

impl Cmd<'_> {
    /// A variable the command sees: set on it, or earlier on the line.
    pub fn var(&self, name: &str) -> Option<String> {
        self.assigns
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.resolved.then(|| v.text.clone()))
            .or_else(|| self.state.var(name).map(str::to_string))
    }
    /// The first argument's text, usually the subcommand.
    pub fn arg(&self, i: usize) -> Option<&str> {
        self.args.get(i).map(|a| a.text.as_str())
    }
}

/// What a rule found out about a command.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Finding {
    pub rule: &'static str,
    pub verb: Verb,
    pub risk: Risk,
    pub destructive: bool,
    /// The address kind (`kubectl`, `file`, `sql` …) and name, before sanitizing.
    pub kind: String,
    pub name: String,
    pub env: Option<String>,
}

impl Finding {
    pub fn new(rule: &'static str, verb: Verb, risk: Risk, kind: &str, name: &str) -> Self {
        Self {
            rule,
            verb,
            risk,
            destructive: false,
            kind: kind.to_string(),
            name: name.to_string(),
            env: None,
        }
    }
    /// A low-risk read.
    pub fn read(rule: &'static str, kind: &str, name: &str) -> Self {
        Self::new(rule, Verb::Read, Risk::Low, kind, name)
    }
    pub fn destructive(mut self) -> Self {
        self.destructive = true;
        self
    }
    /// Sets the environment when one is given.
    pub fn env(mut self, env: Option<String>) -> Self {
        if env.is_some() {
            self.env = env;
        }
        self
    }
}

/// What an earlier command sets up for later ones.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Change {
    /// `cd DIR`; `None` when the directory is only known at run time.
    Cwd(Option<String>),
    TfWorkspace(String),
    KubeContext(String),
    Var(String, Value),
    Alias(String, String),
    /// `path` now leads to `target`: a symbolic link, or data moved in from there.
    Link {
        path: String,
        target: String,
    },
}

/// A command run by the classified one (`find -exec`, `kubectl exec --`, `ssh host …`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Nested {
    Argv(Vec<Arg>),
    Script(String),
}

/// Everything a rule reports.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Outcome {
    pub findings: Vec<Finding>,
    pub changes: Vec<Change>,
    pub nested: Vec<Nested>,
    /// The nested commands run on another host or in a container, not in the workspace.
    pub remote: bool,
}

impl Outcome {
    pub fn of(f: Finding) -> Option<Outcome> {
        Some(Outcome {
            findings: vec![f],
            ..Outcome::default()
        })
    }
    pub fn change(mut self, c: Change) -> Self {
        self.changes.push(c);
        self
    }
}

impl From<Finding> for Outcome {
    fn from(f: Finding) -> Self {
        Outcome {
            findings: vec![f],
            ..Outcome::default()
        }
    }
}

/// Classifies a command; `None` when no rule knows the program.
pub(crate) fn classify(cmd: &Cmd) -> Option<Outcome> {
    kube::classify(cmd)
        .or_else(|| cloud::classify(cmd))
        .or_else(|| sql::classify(cmd))
        .or_else(|| files::classify(cmd))
        .or_else(|| vcs::classify(cmd))
        .or_else(|| host::classify(cmd))
        .or_else(|| grants::classify(cmd))
        .or_else(|| builtin(cmd))
        .or_else(|| project::classify(cmd))
        .or_else(|| read_only(cmd))
}

// ---- option parsing shared by the rules ----

/// Index of the first operand after leading options; `with_value` lists the options
/// that take a separate value. `--` ends the options.
pub(crate) fn operand_index(args: &[Arg], with_value: &[&str]) -> usize {
    let mut i = 0;
    while let Some(a) = args.get(i) {
        let t = a.text.as_str();
        if t == "--" {
            return i + 1;
        }
        if !t.starts_with('-') || t == "-" {
            break;
        }
        i += if with_value.contains(&t) { 2 } else { 1 };
    }
    i.min(args.len())
}

/// All operands, options skipped wherever they appear (GNU style).
pub(crate) fn operands<'a>(args: &'a [Arg], with_value: &[&str]) -> Vec<&'a Arg> {
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(a) = args.get(i) {
        let t = a.text.as_str();
        if t == "--" {
            out.extend(args.get(i + 1..).unwrap_or_default());
            break;
        }
        if t.starts_with('-') && t.len() > 1 && a.resolved {
            i += if with_value.contains(&t) { 2 } else { 1 };
            continue;
        }
        out.push(a);
        i += 1;
    }
    out
}

/// The value of an option: `-n X`, `-nX`, `--name X` or `--name=X` for any of `names`.
pub(crate) fn opt(args: &[Arg], names: &[&str]) -> Option<Arg> {
    for (i, a) in args.iter().enumerate() {
        let t = a.text.as_str();
        if t == "--" {
            return None;
        }
        for n in names {
            if t == *n {
                return args.get(i + 1).cloned();
            }
            let attached = if n.starts_with("--") {
                t.strip_prefix(n).and_then(|v| v.strip_prefix('='))
            } else if n.len() == 2 {
                t.strip_prefix(n).filter(|v| !v.is_empty())
            } else {
                t.strip_prefix(n).and_then(|v| v.strip_prefix('='))
            };
            if let Some(v) = attached {
                return Some(Arg {
                    text: v.to_string(),
                    ..a.clone()
                });
            }
        }
    }
    None
}

/// Whether any of `names` is given, alone or as `--name=value`.
pub(crate) fn has(args: &[Arg], names: &[&str]) -> bool {
    args.iter().any(|a| {
        names.iter().any(|n| {
            a.text == *n
                || (n.starts_with("--")
                    && a.text.strip_prefix(n).is_some_and(|v| v.starts_with('=')))
        })
    })
}

/// Whether a short flag letter is set, alone or bundled (`-rf` sets `r` and `f`).
pub(crate) fn short_flag(args: &[Arg], letter: char) -> bool {
    args.iter().any(|a| {
        let t = a.text.as_str();
        t.len() > 1
            && t.starts_with('-')
            && !t.starts_with("--")
            && t[1..].chars().all(|c| c.is_ascii_alphanumeric())
            && t[1..].contains(letter)
    })
}

/// The environment named by any of the values (first that names one).
pub(crate) fn env_of<'a>(values: impl IntoIterator<Item = Option<&'a Arg>>) -> Option<String> {
    values.into_iter().flatten().find_map(Arg::env)
}

// ---- shell builtins, harmless reads and build tools ----

/// Builtins that change what later commands see.
fn builtin(cmd: &Cmd) -> Option<Outcome> {
    let read = || Outcome::from(Finding::read("shell-builtin", "command", cmd.program));
    match cmd.program {
        "cd" | "pushd" => {
            let dir = cmd
                .args
                .iter()
                .find(|a| !a.text.starts_with('-') || a.text == "-");
            let target = match dir {
                None => Some("~".to_string()),
                Some(d) if d.resolved && d.text != "-" => Some(d.text.clone()),
                Some(_) => None,
            };
            Some(read().change(Change::Cwd(target)))
        }
        "popd" => Some(read().change(Change::Cwd(None))),
        "export" | "declare" | "typeset" | "local" | "readonly" => {
            let mut o = read();
            for a in cmd.args {
                if let Some((n, v)) = a.text.split_once('=') {
                    let value = Value {
                        text: a.resolved.then(|| v.to_string()),
                        taint: a.taint,
                    };
                    o = o.change(Change::Var(n.to_string(), value));
                }
            }
            Some(o)
        }
        "alias" => {
            let mut o = read();
            for a in cmd.args.iter().filter(|a| a.resolved) {
                if let Some((n, v)) = a.text.split_once('=') {
                    o = o.change(Change::Alias(n.to_string(), v.to_string()));
                }
            }
            Some(o)
        }
        "unset" | "read" | "mapfile" | "readarray" => {
            let mut o = read();
            for a in cmd.args.iter().filter(|a| !a.text.starts_with('-')) {
                let v = Value {
                    text: None,
                    taint: cmd.stdin.taint(),
                };
                o = o.change(Change::Var(a.text.clone(), v));
            }
            Some(o)
        }
        "set" | "shopt" | "ulimit" | "umask" | "hash" | "wait" | "trap" | "unalias" | "true"
        | "false" | ":" | "exit" | "return" | "test" | "[" | "[[" | "jobs" | "fg" | "bg"
        | "disown" | "history" | "type" | "break" | "continue" | "shift" | "getopts" => {
            Some(read())
        }
        _ => None,
    }
}

/// Commands that only read or print.
const READS: &[&str] = &[
    "ls",
    "ll",
    "la",
    "cat",
    "head",
    "tail",
    "less",
    "more",
    "grep",
    "egrep",
    "fgrep",
    "rg",
    "ag",
    "ack",
    "echo",
    "printf",
    "pwd",
    "wc",
    "sort",
    "uniq",
    "which",
    "whereis",
    "printenv",
    "date",
    "whoami",
    "id",
    "hostname",
    "uname",
    "ps",
    "top",
    "htop",
    "df",
    "du",
    "free",
    "uptime",
    "stat",
    "file",
    "tree",
    "diff",
    "cmp",
    "jq",
    "yq",
    "cut",
    "tr",
    "basename",
    "dirname",
    "realpath",
    "readlink",
    "sleep",
    "man",
    "help",
    "column",
    "xxd",
    "hexdump",
    "od",
    "md5sum",
    "sha1sum",
    "sha256sum",
    "sha512sum",
    "base64",
    "base32",
    "awk",
    "gawk",
    "mawk",
    "nl",
    "fold",
    "paste",
    "join",
    "comm",
    "tac",
    "bat",
    "fd",
    "locate",
    "lsof",
    "netstat",
    "ss",
    "dig",
    "nslookup",
    "host",
    "ping",
    "traceroute",
    "w",
    "who",
    "last",
    "groups",
    "nproc",
    "lscpu",
    "lsblk",
    "seq",
    "tput",
    "clear",
    "vmstat",
    "iostat",
    "dmesg",
    "journalctl",
    "locale",
    "cal",
    "bc",
    "expr",
    "zcat",
    "zless",
    "zgrep",
    "strings",
    "nm",
    "objdump",
    "ldd",
    "env",
    "getent",
    "wc",
    "tldr",
    "fzf",
    "shellcheck",
    "rustc",
    "rustup",
    "rustfmt",
    "tsc",
    "eslint",
    "prettier",
    "black",
    "ruff",
    "mypy",
    "flake8",
    "pylint",
    "gofmt",
    "tokei",
    "cloc",
    "lsb_release",
    "arch",
    "sw_vers",
    "ip",
    "ifconfig",
    "route",
    "kubectx",
    "kubens",
    "stern",
    "k9s",
    "yes",
];

fn read_only(cmd: &Cmd) -> Option<Outcome> {
    let p = cmd.program;
    if p == "sed" && (short_flag(cmd.args, 'i') || has(cmd.args, &["--in-place"])) {
        let file = operands(cmd.args, &["-e", "-f", "--expression", "--file"])
            .into_iter()
            .nth(1);
        let name = file.map_or_else(|| "unnamed".to_string(), Arg::name);
        let privileged = operands(cmd.args, &["-e", "-f", "--expression", "--file"])
            .iter()
            .any(|a| a.resolved && crate::paths::is_privileged(&a.text));
        let f = if privileged {
            Finding::new(
                "privileged-file-write",
                Verb::Update,
                Risk::Critical,
                "file",
                &name,
            )
        } else {
            Finding::new("file-edit", Verb::Update, Risk::Low, "file", &name)
        };
        return Outcome::of(f.env(env_of([file])));
    }
    if matches!(p, "awk" | "gawk" | "mawk" | "nawk") {
        return awk(cmd);
    }
    if p == "sed" || READS.contains(&p) {
        return Outcome::of(Finding::read("read-only", "command", p));
    }
    None
}

/// `awk` reads, unless its program runs commands: `system("…")` runs its text as a
/// script; a command it pipes to or reads from (`| "cmd"`, `"cmd" | getline`) or a
/// `system` call on computed text is not judged here.
fn awk(cmd: &Cmd) -> Option<Outcome> {
    let mut out = Outcome::from(Finding::read("read-only", "command", cmd.program));
    for a in cmd.args {
        let program = a.text.as_str();
        if program.contains("getline") || program.contains("| \"") || program.contains("|\"") {
            return None;
        }
        let mut rest = program;
        while let Some(at) = rest.find("system(") {
            rest = &rest[at + "system(".len()..];
            let literal = rest
                .trim_start()
                .strip_prefix('"')
                .and_then(|r| r.split_once('"'))
                .filter(|(_, after)| after.trim_start().starts_with(')'));
            match literal {
                Some((script, _)) => out.nested.push(Nested::Script(script.to_string())),
                None => return None,
            }
        }
    }
    Some(out)
}
