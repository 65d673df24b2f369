//! Commands that run other commands: privilege and environment wrappers (`sudo`,
//! `env`, `nohup`, `timeout` …), `xargs`, shells and `eval`, interpreters, and the tool
//! runners of package managers (`npx`, `uv run`, `bundle exec` …). Each is peeled off so
//! the rules see the command that actually runs.

use crate::rules::operand_index;
use crate::run::Arg;

/// What a wrapper runs.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Wrapped {
    /// The rest as a command, with extra environment variables.
    Argv {
        argv: Vec<Arg>,
        assigns: Vec<(String, Arg)>,
    },
    /// `xargs`: the rest, with arguments read from stdin (`replace` for `-I`).
    Xargs {
        argv: Vec<Arg>,
        replace: Option<String>,
    },
    /// Text run as a script (`sh -c`, `eval`, `watch`, `su -c`).
    Script(Arg),
    /// A script file (`bash deploy.sh`, `source x`, `bash <(curl …)`).
    ScriptFile(Arg),
    /// Code read from stdin (`sh`, `bash -s`, `python -`).
    StdinScript,
    /// An interpreter's inline code (`python3 -c CODE`, `node -e CODE`).
    Inline(Arg),
    /// A package manager's tool runner (`npx jest`, `uv run pytest`): the rest as a
    /// command, which is the project's own tooling when no rule knows it.
    Tool(Vec<Arg>),
    /// The wrapper alone, running nothing (`env`, `sudo -l`, `command -v x`).
    Nothing,
}

/// Shells that take `-c SCRIPT`.
const SHELLS: [&str; 9] = [
    "sh", "bash", "zsh", "dash", "ksh", "mksh", "ash", "fish", "busybox",
];

/// Interpreters that run code read from stdin when given no script.
pub(crate) const INTERPRETERS: [&str; 10] = [
    "python", "python3", "python2", "node", "perl", "ruby", "php", "deno", "bun", "lua",
];

/// Wrappers whose options are all flags without values.
const PLAIN: [&str; 11] = [
    "nohup",
    "builtin",
    "chronic",
    "unbuffer",
    "torsocks",
    "proxychains",
    "proxychains4",
    "fakeroot",
    "catchsegv",
    "setsid",
    "caffeinate",
];

/// Peels a wrapper off `prog args…`; `None` when `prog` is not a wrapper.
pub(crate) fn unwrap(prog: &str, args: &[Arg]) -> Option<Wrapped> {
    let rest = |i: usize| args.get(i..).unwrap_or_default().to_vec();
    let argv = |i: usize| {
        let inner = rest(i);
        if inner.is_empty() {
            Wrapped::Nothing
        } else {
            Wrapped::Argv {
                argv: inner,
                assigns: Vec::new(),
            }
        }
    };
    Some(match prog {
        "sudo" | "doas" => {
            let i = operand_index(
                args,
                &[
                    "-u", "-g", "-h", "-p", "-C", "-r", "-t", "-D", "-U", "-T", "-R", "--user",
                    "--group", "--host", "--prompt", "--chdir", "--role", "--type",
                ],
            );
            with_assignments(rest(i))
        }
        "env" => env(args),
        "time" => argv(operand_index(args, &["-f", "--format", "-o", "--output"])),
        "nice" => argv(operand_index(args, &["-n", "--adjustment"])),
        "ionice" => argv(operand_index(args, &["-c", "-n", "-p", "-P", "-u"])),
        "stdbuf" => argv(operand_index(args, &["-i", "-o", "-e"])),
        "exec" => argv(operand_index(args, &["-a"])),
        "command" => {
            if args.iter().any(|a| matches!(a.text.as_str(), "-v" | "-V")) {
                Wrapped::Nothing
            } else {
                argv(operand_index(args, &[]))
            }
        }
        p if PLAIN.contains(&p) => argv(operand_index(args, &["-t", "-w"])),
        "timeout" => {
            let i = operand_index(args, &["-s", "--signal", "-k", "--kill-after"]);
            argv(i + 1)
        }
        "flock" => {
            if let Some(s) = option_value(args, &["-c", "--command"]) {
                Wrapped::Script(s)
            } else {
                argv(operand_index(args, &["-w", "--timeout", "-E", "--conflict-exit-code"]) + 1)
            }
        }
        "watch" => {
            let i = operand_index(args, &["-n", "--interval", "-q", "--equexit"]);
            let exec = args.iter().any(|a| a.text == "-x" || a.text == "--exec");
            if exec { argv(i) } else { joined(&rest(i)) }
        }
        "xargs" => xargs(args),
        "eval" => joined(args),
        "source" | "." => match args.first() {
            Some(f) => Wrapped::ScriptFile(f.clone()),
            None => Wrapped::Nothing,
        },
        "su" | "runuser" => match option_value(args, &["-c", "--command"]) {
            Some(s) => Wrapped::Script(s),
            None => Wrapped::Nothing,
        },
        p if SHELLS.contains(&p) => shell(p, args),
        p if INTERPRETERS.contains(&p) => return interpreter(p, args),
        "npx" | "bunx" | "pnpx" | "uvx" => tool(args, 0),
        "npm" | "pnpm" | "yarn" | "bun" if matches!(first(args), Some("exec" | "x" | "dlx")) => {
            tool(args, 1)
        }
        "uv" if first(args) == Some("tool") && args.get(1).is_some_and(|a| a.text == "run") => {
            tool(args, 2)
        }
        "uv" | "poetry" | "pipenv" | "pdm" | "hatch" | "rye" | "pipx" | "conda" | "mamba"
        | "micromamba"
            if first(args) == Some("run") =>
        {
            tool(args, 1)
        }
        "bundle" if first(args) == Some("exec") => tool(args, 1),
        "cross-env" => match with_assignments(args.to_vec()) {
            Wrapped::Argv { argv, .. } => Wrapped::Tool(argv),
            other => other,
        },
        "dotenv" => tool(args, 0),
        _ => return None,
    })
}

fn first(args: &[Arg]) -> Option<&str> {
    args.first().map(|a| a.text.as_str())
}

/// The command a tool runner runs, after its own options (from `skip` on).
fn tool(args: &[Arg], skip: usize) -> Wrapped {
    let mut i = skip;
    while let Some(a) = args.get(i) {
        let t = a.text.as_str();
        if t == "--" {
            i += 1;
            break;
        }
        if !t.starts_with('-') || !a.resolved {
            break;
        }
        match t {
            "-c" | "--call" => {
                return match args.get(i + 1) {
                    Some(s) => Wrapped::Script(s.clone()),
                    None => Wrapped::Nothing,
                };
            }
            "-p" | "--package" | "-n" | "--name" | "--with" | "--from" | "--python" | "-e"
            | "--env-file" | "--spec" | "--prefix" | "--directory" | "--project" | "-w"
            | "--workspace" | "--filter" | "-F" => i += 2,
            _ => i += 1,
        }
    }
    match args.get(i..) {
        Some(rest) if !rest.is_empty() => Wrapped::Tool(rest.to_vec()),
        _ => Wrapped::Nothing,
    }
}

/// `VAR=value` words at the start of `argv` (as `sudo` and `env` allow) become assignments.
fn with_assignments(mut argv: Vec<Arg>) -> Wrapped {
    let mut assigns = Vec::new();
    while let Some((name, value)) = argv.first().and_then(as_assignment) {
        assigns.push((name, value));
        argv.remove(0);
    }
    if argv.is_empty() {
        Wrapped::Nothing
    } else {
        Wrapped::Argv { argv, assigns }
    }
}

fn as_assignment(a: &Arg) -> Option<(String, Arg)> {
    let (name, value) = a.text.split_once('=')?;
    let ident = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    ident.then(|| {
        (
            name.to_string(),
            Arg {
                text: value.to_string(),
                ..a.clone()
            },
        )
    })
}

fn env(args: &[Arg]) -> Wrapped {
    let mut i = 0;
    let mut prefix: Vec<Arg> = Vec::new();
    while let Some(a) = args.get(i) {
        let t = a.text.as_str();
        if t == "--" {
            i += 1;
            break;
        }
        if let Some(s) = t
            .strip_prefix("--split-string=")
            .or_else(|| t.strip_prefix("-S").filter(|s| !s.is_empty()))
        {
            prefix.extend(s.split_whitespace().map(Arg::lit));
            i += 1;
            continue;
        }
        match t {
            "-S" | "--split-string" => {
                if let Some(s) = args.get(i + 1) {
                    prefix.extend(s.text.split_whitespace().map(Arg::lit));
                }
                i += 2;
            }
            "-u" | "--unset" | "-C" | "--chdir" => i += 2,
            _ if t.starts_with('-') && t.len() > 1 => i += 1,
            _ => break,
        }
    }
    prefix.extend(args.get(i..).unwrap_or_default().iter().cloned());
    with_assignments(prefix)
}

fn xargs(args: &[Arg]) -> Wrapped {
    let mut replace = None;
    let mut i = 0;
    while let Some(a) = args.get(i) {
        let t = a.text.as_str();
        if t == "--" {
            i += 1;
            break;
        }
        if !t.starts_with('-') || t == "-" {
            break;
        }
        match t {
            "-I" | "--replace" => {
                replace = args.get(i + 1).map(|r| r.text.clone());
                i += 2;
            }
            "-i" => {
                replace = Some("{}".to_string());
                i += 1;
            }
            "-n" | "-L" | "-P" | "-d" | "-s" | "-E" | "-a" | "--max-args" | "--max-procs"
            | "--delimiter" | "--arg-file" | "--max-lines" | "--max-chars" => i += 2,
            _ => {
                if let Some(r) = t
                    .strip_prefix("-I")
                    .or_else(|| t.strip_prefix("--replace="))
                {
                    replace = Some(r.to_string());
                } else if let Some(r) = t.strip_prefix("-i") {
                    replace = Some(r.to_string());
                }
                i += 1;
            }
        }
    }
    Wrapped::Xargs {
        argv: args.get(i..).unwrap_or_default().to_vec(),
        replace,
    }
}

/// `sh -c SCRIPT`, `bash -lc SCRIPT`, `bash FILE`, or a shell reading stdin.
fn shell(prog: &str, args: &[Arg]) -> Wrapped {
    let args = if prog == "busybox" {
        match args.split_first() {
            Some((applet, rest)) if SHELLS.contains(&applet.text.as_str()) => rest,
            Some((applet, rest)) => {
                return Wrapped::Argv {
                    argv: std::iter::once(applet.clone())
                        .chain(rest.iter().cloned())
                        .collect(),
                    assigns: Vec::new(),
                };
            }
            None => return Wrapped::Nothing,
        }
    } else {
        args
    };
    let mut command_mode = false;
    let mut stdin_mode = false;
    let mut i = 0;
    while let Some(a) = args.get(i) {
        let t = a.text.as_str();
        if t == "--" || t == "-" {
            stdin_mode |= t == "-";
            i += 1;
            break;
        }
        if !a.resolved || !(t.starts_with('-') || t.starts_with('+')) || t.len() < 2 {
            break;
        }
        match t {
            "-o" | "+o" | "-O" | "+O" | "--rcfile" | "--init-file" => i += 2,
            "--command" => {
                command_mode = true;
                i += 1;
            }
            _ if !t.starts_with("--") => {
                command_mode |= t.contains('c');
                stdin_mode |= t.contains('s');
                i += 1;
            }
            _ => i += 1,
        }
    }
    match (command_mode, args.get(i)) {
        (true, Some(script)) => Wrapped::Script(script.clone()),
        (true, None) => Wrapped::Nothing,
        (false, Some(file)) if !stdin_mode => Wrapped::ScriptFile(file.clone()),
        _ => Wrapped::StdinScript,
    }
}

/// `python`, `node`, `perl` …: inline code (`-c`, `-e`), a script file, or code read
/// from stdin; `None` for `-m MODULE`, which the rules know.
fn interpreter(prog: &str, args: &[Arg]) -> Option<Wrapped> {
    let bundles_e = matches!(prog, "perl" | "ruby");
    let mut i = 0;
    while let Some(a) = args.get(i) {
        let t = a.text.as_str();
        let inline = match t {
            "-c" | "-e" | "-E" | "--eval" => true,
            "-r" => prog == "php",
            "-p" | "--print" => matches!(prog, "node" | "deno" | "bun"),
            _ => {
                bundles_e
                    && t.len() > 2
                    && t.starts_with('-')
                    && !t.starts_with("--")
                    && t.ends_with(['e', 'E'])
            }
        };
        if inline {
            return Some(match args.get(i + 1) {
                Some(code) => Wrapped::Inline(code.clone()),
                None => Wrapped::Nothing,
            });
        }
        match t {
            "-m" => return None,
            "--version" | "-V" | "-h" | "--help" => return Some(Wrapped::Nothing),
            "-" => return Some(Wrapped::StdinScript),
            "-W" | "-X" | "--require" | "--import" | "--loader" => i += 2,
            "-r" => i += 2,
            _ if t.starts_with('-') && a.resolved => i += 1,
            _ => return Some(Wrapped::ScriptFile(a.clone())),
        }
    }
    Some(Wrapped::StdinScript)
}

/// All arguments joined by spaces, as `eval` and `watch` hand them to the shell.
fn joined(args: &[Arg]) -> Wrapped {
    if args.is_empty() {
        return Wrapped::Nothing;
    }
    let text = args
        .iter()
        .map(|a| a.text.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    let resolved = args.iter().all(|a| a.resolved);
    let taint = args
        .iter()
        .fold(Default::default(), |t: crate::run::Taint, a| {
            t.union(a.taint)
        });
    Wrapped::Script(Arg {
        text,
        resolved,
        taint,
    })
}

/// The value of the first of `names` given as `-c VALUE`, `--command=VALUE`.
fn option_value(args: &[Arg], names: &[&str]) -> Option<Arg> {
    for (i, a) in args.iter().enumerate() {
        for n in names {
            if a.text == *n {
                return args.get(i + 1).cloned();
            }
            if let Some(v) = a.text.strip_prefix(n).and_then(|v| v.strip_prefix('='))
                && n.starts_with("--")
            {
                return Some(Arg {
                    text: v.to_string(),
                    ..a.clone()
                });
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<Arg> {
        s.split_whitespace().map(Arg::lit).collect()
    }

    fn inner(prog: &str, s: &str) -> Vec<String> {
        match unwrap(prog, &args(s)) {
            Some(Wrapped::Argv { argv, .. }) => argv.into_iter().map(|a| a.text).collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn wrappers_peel_to_the_command() {
        assert_eq!(inner("sudo", "-u root -E kubectl get"), ["kubectl", "get"]);
        assert_eq!(inner("timeout", "-s KILL 10 rm x"), ["rm", "x"]);
        assert_eq!(inner("nice", "-n 5 rm x"), ["rm", "x"]);
        assert_eq!(inner("nohup", "rm x"), ["rm", "x"]);
        assert_eq!(inner("command", "kubectl get"), ["kubectl", "get"]);
        match unwrap("env", &args("-i AWS_PROFILE=prod aws s3 ls")) {
            Some(Wrapped::Argv { argv, assigns }) => {
                assert_eq!(argv[0].text, "aws");
                assert_eq!(assigns[0].0, "AWS_PROFILE");
                assert_eq!(assigns[0].1.text, "prod");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(unwrap("env", &[]), Some(Wrapped::Nothing));
        assert_eq!(
            unwrap("command", &args("-v kubectl")),
            Some(Wrapped::Nothing)
        );
        assert_eq!(unwrap("kubectl", &args("get")), None);
    }

    #[test]
    fn shells_run_their_script() {
        let script = |p, s: &str| match unwrap(p, &args(s)) {
            Some(Wrapped::Script(a)) => a.text,
            other => panic!("{other:?}"),
        };
        assert_eq!(script("bash", "-lc ls"), "ls");
        assert_eq!(script("sh", "-e -c ls"), "ls");
        assert_eq!(script("eval", "rm -rf x"), "rm -rf x");
        assert_eq!(unwrap("sh", &[]), Some(Wrapped::StdinScript));
        assert_eq!(unwrap("bash", &args("-s")), Some(Wrapped::StdinScript));
        assert!(matches!(
            unwrap("bash", &args("deploy.sh")),
            Some(Wrapped::ScriptFile(_))
        ));
    }

    #[test]
    fn xargs_options() {
        match unwrap("xargs", &args("-0 -n 1 -I % kubectl delete ns %")) {
            Some(Wrapped::Xargs { argv, replace }) => {
                assert_eq!(argv[0].text, "kubectl");
                assert_eq!(replace.as_deref(), Some("%"));
            }
            other => panic!("{other:?}"),
        }
    }
}
