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
    let mut out = builtin_effects(cmd)?;
    // Arithmetic and variable names expand array subscripts, which run substitutions
    // (`let 'a[$(cmd)]=1'`, `[[ $x -eq 0 ]]` with `x='a[$(cmd)]'`).
    if matches!(
        cmd.program,
        "((" | "let"
            | "[["
            | "test"
            | "["
            | "declare"
            | "typeset"
            | "local"
            | "readonly"
            | "export"
            | "unset"
            | "read"
            | "mapfile"
            | "readarray"
            | "printf"
            | "shift"
            | "return"
            | "exit"
    ) {
        for a in cmd.args.iter().filter(|a| a.resolved) {
            let scripts = crate::run::arith_scripts(&a.text, cmd.state, true);
            out.nested.extend(scripts.into_iter().map(Nested::Script));
        }
    }
    if cmd.program == "trap" {
        out.nested.extend(trap_script(cmd.args).map(Nested::Script));
    }
    Some(out)
}

/// The command `trap CMD SIGNAL…` installs; it runs when the signal comes (or the shell
/// exits), so it counts as run. `trap - SIG`, `trap -p`, `trap -l` install nothing.
fn trap_script(args: &[Arg]) -> Option<String> {
    let ops = match args.first().map(|a| a.text.as_str()) {
        Some("--") => args.get(1..).unwrap_or_default(),
        Some("-p" | "-l" | "-P") => return None,
        _ => args,
    };
    match ops {
        [cmd, _, ..] if cmd.text != "-" && !cmd.text.is_empty() => Some(cmd.text.clone()),
        _ => None,
    }
}

fn builtin_effects(cmd: &Cmd) -> Option<Outcome> {
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
        | "((" | "let" | "false" | ":" | "exit" | "return" | "test" | "[" | "[[" | "jobs"
        | "fg" | "bg" | "disown" | "history" | "type" | "break" | "continue" | "shift"
        | "getopts" => Some(read()),
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
        let mut out = Outcome::from(f.env(env_of([file])));
        sed_run(cmd, &mut out);
        return Some(out);
    }
    if matches!(p, "awk" | "gawk" | "mawk" | "nawk") {
        return awk(cmd);
    }
    if p == "sed" {
        let mut out = Outcome::from(Finding::read("read-only", "command", p));
        sed_run(cmd, &mut out);
        return Some(out);
    }
    if let Some(out) = pager(cmd) {
        return Some(out);
    }
    if READS.contains(&p) {
        return Outcome::of(Finding::read("read-only", "command", p));
    }
    None
}

/// A command run on text nobody can see (`awk '{system($0)}'`, `sed 's/x/y/e'`): it
/// could be anything, so it is rated as the worst.
fn opaque_run(program: &str) -> Finding {
    Finding::new(
        "opaque-command",
        Verb::Exec,
        Risk::High,
        "command",
        &format!("{program}-{}", crate::UNRESOLVED),
    )
    .destructive()
}

/// The text of a string literal starting at `s` (after optional blanks), and the rest.
fn string_literal(s: &str) -> Option<(&str, &str)> {
    let s = s.trim_start();
    let q = s.chars().next().filter(|c| matches!(c, '"' | '\''))?;
    let body = &s[1..];
    let mut escaped = false;
    for (i, c) in body.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == q {
            return Some((&body[..i], &body[i + 1..]));
        }
    }
    None
}

/// `awk` reads, unless its program runs commands: `system("…")`, printing into a
/// command (`print | "sort"`) and reading from one (`"date" | getline`) run their text
/// as a script; a command on computed text (`system($0)`, `print | cmd`) or a shell fed
/// the program's output (`print | "sh"`) could be anything.
fn awk(cmd: &Cmd) -> Option<Outcome> {
    let mut out = Outcome::from(Finding::read("read-only", "command", cmd.program));
    let mut opaque = false;
    let program = operands(
        cmd.args,
        &["-F", "-v", "-f", "--field-separator", "--assign"],
    )
    .into_iter()
    .next();
    let Some(program) = program.map(|a| a.text.as_str()) else {
        return Some(out);
    };
    let mut rest = program;
    while let Some(at) = rest.find("system(") {
        rest = &rest[at + "system(".len()..];
        match string_literal(rest).filter(|(_, after)| after.trim_start().starts_with(')')) {
            Some((script, _)) => out.nested.push(Nested::Script(script.to_string())),
            None => opaque = true,
        }
    }
    let bytes: Vec<char> = program.chars().collect();
    for (i, c) in bytes.iter().enumerate() {
        if *c != '|' || bytes.get(i + 1) == Some(&'|') || (i > 0 && bytes[i - 1] == '|') {
            continue;
        }
        let after: String = bytes[i + 1..].iter().collect();
        let after = after.trim_start_matches('&');
        if after.trim_start().starts_with("getline") {
            // `"cmd" | getline`: the command is the literal before the bar.
            let before: String = bytes[..i].iter().collect();
            let before = before.trim_end();
            match before
                .strip_suffix('"')
                .and_then(|b| b.rfind('"').map(|q| &b[q + 1..]))
            {
                Some(script) => out.nested.push(Nested::Script(script.to_string())),
                None => opaque = true,
            }
            continue;
        }
        let before: String = bytes[..i].iter().collect();
        let statement = before.rsplit([';', '{', '}', '\n']).next().unwrap_or("");
        if !statement.contains("print") {
            // A bar in a regular expression (`/a|b/`).
            continue;
        }
        match string_literal(after) {
            Some((script, _)) => {
                let first = script.split_whitespace().next().unwrap_or("");
                let first = first.rsplit('/').next().unwrap_or(first);
                // What reads its commands from the printed text.
                if crate::wrap::unwrap(first, &[]).is_some() {
                    opaque = true;
                } else {
                    out.nested.push(Nested::Script(script.to_string()));
                }
            }
            None => opaque = true,
        }
    }
    if opaque {
        out.findings.push(opaque_run(cmd.program));
    }
    Some(out)
}

/// What a `sed` script does besides printing: commands it runs (`e cmd`, and `e` or the
/// `s///e` flag on the pattern space) and files it writes (`w file`, `s///w file`).
#[derive(Debug, Default, PartialEq)]
pub(crate) struct SedEffects {
    pub scripts: Vec<String>,
    pub opaque: bool,
    pub writes: Vec<String>,
}

/// Reads a `sed` script far enough to find `e`, `s///e` and `w`.
pub(crate) fn sed_effects(script: &str) -> SedEffects {
    let mut fx = SedEffects::default();
    let chars: Vec<char> = script.chars().collect();
    let mut i = 0;
    let line_rest = |i: usize| -> (String, usize) {
        let mut j = i;
        while chars.get(j).is_some_and(|c| *c != '\n') {
            j += 1;
        }
        (chars[i.min(j)..j].iter().collect(), j)
    };
    // Skips a delimited field (`/re/`), honouring escapes; returns the index after it.
    let field = |mut i: usize, delim: char| -> usize {
        while let Some(c) = chars.get(i) {
            if *c == '\\' {
                i += 2;
                continue;
            }
            if *c == delim {
                return i + 1;
            }
            i += 1;
        }
        i
    };
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() || matches!(c, ';' | '{' | '}' | '!') {
            i += 1;
            continue;
        }
        // Addresses: numbers, `$`, `/re/`, `\cREc`, ranges and steps.
        if c.is_ascii_digit() || matches!(c, '$' | ',' | '~' | '+') {
            i += 1;
            continue;
        }
        if c == '/' {
            i = field(i + 1, '/');
            continue;
        }
        if c == '\\' {
            if let Some(d) = chars.get(i + 1) {
                i = field(i + 2, *d);
            } else {
                i += 1;
            }
            continue;
        }
        match c {
            's' | 'y' => {
                let Some(&d) = chars.get(i + 1) else {
                    break;
                };
                i = field(i + 2, d);
                i = field(i, d);
                if c == 'y' {
                    continue;
                }
                while let Some(&f) = chars.get(i) {
                    match f {
                        'e' => {
                            fx.opaque = true;
                            i += 1;
                        }
                        'w' => {
                            let (file, j) = line_rest(i + 1);
                            fx.writes.push(file.trim().to_string());
                            i = j;
                            break;
                        }
                        'g' | 'p' | 'i' | 'I' | 'm' | 'M' => i += 1,
                        _ if f.is_ascii_digit() => i += 1,
                        _ => break,
                    }
                }
            }
            'e' => {
                let (cmd, j) = line_rest(i + 1);
                let cmd = cmd.trim();
                if cmd.is_empty() {
                    fx.opaque = true;
                } else {
                    fx.scripts.push(cmd.to_string());
                }
                i = j;
            }
            'w' | 'W' => {
                let (file, j) = line_rest(i + 1);
                fx.writes.push(file.trim().to_string());
                i = j;
            }
            'a' | 'i' | 'c' | 'r' | 'R' | ':' | 'b' | 't' | 'T' | 'q' | 'Q' | 'l' | 'L' => {
                // Text, file names and labels run to the end of the line (labels and
                // branch targets also end at `;`); text continues past a line that
                // ends with a backslash (`a\` then the text on the next line).
                let stop_at_semi = matches!(c, ':' | 'b' | 't' | 'T' | 'q' | 'Q' | 'l' | 'L');
                i += 1;
                while let Some(&n) = chars.get(i) {
                    if n == '\\' && !stop_at_semi {
                        i += 2;
                        continue;
                    }
                    if n == '\n' || (stop_at_semi && matches!(n, ';' | '}')) {
                        break;
                    }
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    fx
}

/// `sed`'s scripts: every `-e`/`--expression`, or the first operand when there is none.
fn sed_scripts(args: &[Arg]) -> Vec<Arg> {
    let mut out = Vec::new();
    let mut i = 0;
    let mut file = false;
    while let Some(a) = args.get(i) {
        let t = a.text.as_str();
        if t == "--" {
            break;
        }
        let attached = t.strip_prefix("--expression=").or_else(|| {
            t.strip_prefix("-e")
                .filter(|v| !v.is_empty() && !t.starts_with("--"))
        });
        match t {
            "-e" | "--expression" => {
                out.extend(args.get(i + 1).cloned());
                i += 2;
                continue;
            }
            "-f" | "--file" => file = true,
            _ if attached.is_some() => out.extend(attached.map(|v| Arg {
                text: v.to_string(),
                ..a.clone()
            })),
            _ => {}
        }
        i += 1;
    }
    if out.is_empty() && !file {
        out.extend(
            operands(
                args,
                &["-e", "-f", "--expression", "--file", "-l", "--line-length"],
            )
            .into_iter()
            .next()
            .cloned(),
        );
    }
    out
}

/// What a `sed` script runs and writes, as findings and nested scripts.
fn sed_run(cmd: &Cmd, out: &mut Outcome) {
    for s in sed_scripts(cmd.args) {
        let fx = sed_effects(&s.text);
        out.nested
            .extend(fx.scripts.into_iter().map(Nested::Script));
        if fx.opaque {
            out.findings.push(opaque_run("sed"));
        }
        for w in fx.writes {
            let target = Arg {
                text: w,
                ..s.clone()
            };
            out.findings.extend(cmd.state.write_finding(&target, false));
        }
    }
}

/// Pagers and editors given a command to run: `less '+!cmd'`, `man -P CMD`, `vim -c
/// '!cmd'`. Editors are not recognized otherwise (what they edit is not known).
fn pager(cmd: &Cmd) -> Option<Outcome> {
    let p = cmd.program;
    let mut out = Outcome::from(Finding::read("read-only", "command", p));
    match p {
        "less" | "more" => {
            for a in cmd.args.iter().filter(|a| a.text.starts_with('+')) {
                if let Some((_, script)) = a.text.split_once('!') {
                    out.nested.push(Nested::Script(script.to_string()));
                }
            }
        }
        "man" => {
            if let Some(v) = opt(cmd.args, &["-P", "--pager", "-H", "--html"]) {
                out.nested.push(Nested::Script(v.text));
            }
        }
        "vim" | "vi" | "nvim" | "ex" | "view" | "vimdiff" | "gvim" | "rvim" => {
            let mut any = false;
            let mut i = 0;
            while let Some(a) = cmd.args.get(i) {
                let command = match a.text.as_str() {
                    "-c" | "--cmd" | "-S" => {
                        i += 1;
                        cmd.args.get(i).map(|v| v.text.clone())
                    }
                    t if t.starts_with('+') => Some(t[1..].to_string()),
                    _ => None,
                };
                i += 1;
                let Some(command) = command else { continue };
                let c = command.trim_start_matches([':', ' ']);
                let c = c
                    .strip_prefix("silent!")
                    .or_else(|| c.strip_prefix("silent"))
                    .unwrap_or(c)
                    .trim_start();
                if let Some((_, script)) = c.split_once('!').filter(|(head, _)| {
                    matches!(
                        head.trim(),
                        "" | "r" | "read" | "w" | "write" | "%" | "%w" | "."
                    )
                }) {
                    out.nested.push(Nested::Script(script.to_string()));
                    any = true;
                } else if [
                    "system(", "term", "py", "lua", "perl", "ruby", "call", "exe", "so",
                ]
                .iter()
                .any(|k| c.contains(k))
                {
                    out.findings.push(opaque_run(p));
                    any = true;
                }
            }
            if !any {
                return None;
            }
        }
        _ => return None,
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sed_scripts_are_read_for_what_they_run_and_write() {
        let fx = sed_effects("1e echo hi");
        assert_eq!(fx.scripts, ["echo hi"]);
        assert!(sed_effects("s/a/b/e").opaque);
        assert!(sed_effects("/x/{s|a|b|ge}").opaque);
        assert_eq!(sed_effects("s/a/b/w out.txt").writes, ["out.txt"]);
        assert_eq!(sed_effects("$w /tmp/x").writes, ["/tmp/x"]);
        for plain in [
            "5p",
            "s/e/E/g",
            "/^#/d; s/exec/run/",
            "s|/usr/bin|/opt/bin|",
            "/start/,/end/p",
            "y/abc/xyz/",
            ":a;N;$!ba;s/\\n/ /g",
            "1i\\\nheader",
        ] {
            assert_eq!(sed_effects(plain), SedEffects::default(), "{plain:?}");
        }
    }

    #[test]
    fn string_literals_and_traps() {
        assert_eq!(
            string_literal(r#" "a \" b" rest"#),
            Some((r#"a \" b"#, " rest"))
        );
        assert_eq!(string_literal("x"), None);
        let args = |s: &str| s.split_whitespace().map(Arg::lit).collect::<Vec<_>>();
        assert_eq!(trap_script(&args("ls EXIT")).as_deref(), Some("ls"));
        assert_eq!(trap_script(&args("-- ls INT TERM")).as_deref(), Some("ls"));
        assert_eq!(trap_script(&args("- EXIT")), None);
        assert_eq!(trap_script(&args("-p")), None);
    }
}
