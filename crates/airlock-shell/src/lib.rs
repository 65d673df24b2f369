//! Shell-command classification: what a command line an agent wants to run would do.
//!
//! [`classify`] reads a command line the way a POSIX shell would — quotes, escapes,
//! variables assigned earlier on the line, `$( … )` and backticks, pipes, wrappers such
//! as `sudo`, `env`, `xargs`, `sh -c` or `eval` — and reports, for every simple command
//! in it, a verb, a target address, the environment it names and a risk. It runs
//! nothing and reads nothing: what it cannot resolve statically it rates as the worst
//! it could be, so spelling a command differently never makes it look safer.
//!
//! [`classify_in`] also knows the workspace the command runs in (a coding agent's
//! working directory), so that deleting `target` inside it is ordinary work while
//! deleting `/var/lib/postgresql`, `~/data` or `../other` is destructive.
//!
//! Layout: `lex` turns text into words and operators, `run` models the shell (pipes,
//! expansion, wrappers, nested scripts, where data flows) and hands each simple command
//! to `rules`, which dispatches to the per-domain rules (`kube`, `cloud`, `sql`, `files`,
//! `host`, `vcs`, `grants`, `project`); `wrap` peels off the commands that run other
//! commands; `paths` places paths against the workspace; `egress` follows secrets to
//! the network. Verbs, risks and addresses are the core's ([`airlock_core`]).

pub mod awscli;
mod cloud;
mod egress;
mod files;
mod grants;
pub mod hook;
mod host;
mod kube;
mod lex;
mod paths;
mod project;
mod rules;
mod run;
mod sql;
mod vcs;
mod wrap;

use airlock_core::addr::addr_name;
use airlock_core::{ResourceAddr, Risk, Verb};
use serde::Serialize;

/// The name part used when a target comes from something only known at run time
/// (`$NS` never assigned, `xargs` input, `$( … )` output). Kubernetes, SQL and file
/// names never look like this, so a policy can match it.
pub const UNRESOLVED: &str = "_unresolved_";

/// What one simple command would do.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShellAction {
    pub verb: Verb,
    /// Always of provider `shell`, e.g. `shell:kubectl/namespace.payments`.
    pub target: ResourceAddr,
    /// `prod`, `staging` or `dev` when the command names one.
    pub env: Option<String>,
    pub risk: Risk,
    pub destructive: bool,
    /// The id of the rule that matched, e.g. `kubectl-delete`.
    pub rule: &'static str,
    /// The simple command this came from, as it would run (wrappers removed,
    /// variables resolved).
    pub segment: String,
}

impl ShellAction {
    /// Whether this action counts as dangerous on its own.
    pub fn is_dangerous(&self) -> bool {
        self.destructive || self.risk >= Risk::High
    }
}

/// Everything a command line would do.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Classification {
    /// One per recognized simple command (reads included), in order of appearance.
    pub actions: Vec<ShellAction>,
    /// Simple commands that were not recognized at all.
    pub unknown: Vec<String>,
}

impl Classification {
    /// The highest risk of any action, `None` when nothing was recognized.
    pub fn max_risk(&self) -> Option<Risk> {
        self.actions.iter().map(|a| a.risk).max()
    }
    /// Whether any action is destructive or at least high risk.
    pub fn is_dangerous(&self) -> bool {
        self.actions.iter().any(ShellAction::is_dangerous)
    }
    /// The actions that change something.
    pub fn mutations(&self) -> impl Iterator<Item = &ShellAction> {
        self.actions.iter().filter(|a| a.verb.is_mutation())
    }
}

/// Classifies a shell command line. Never fails: what is not understood ends up in
/// [`Classification::unknown`], or as a high-risk `exec` when it could run anything.
/// Relative paths count as inside the workspace, absolute ones as outside it.
pub fn classify(command: &str) -> Classification {
    classify_in(command, None)
}

/// Classifies a command line run in `cwd`, the workspace: an absolute path below it is
/// inside, like a relative path that does not climb out with `..`. A `cwd` that is not
/// absolute is ignored.
pub fn classify_in(command: &str, cwd: Option<&str>) -> Classification {
    let mut out = Classification::default();
    run::Runner::new(&mut out, cwd).run_script(command, 0, run::Stdin::Terminal);
    out
}

/// Builds a `shell:` address, falling back to `shell:command/unnamed`.
fn shell_addr(kind: &str, name: &str) -> ResourceAddr {
    ResourceAddr::new("shell", &addr_name(kind), &addr_name(name))
        .unwrap_or_else(|_| unnamed_addr())
}

/// `shell:command/unnamed`.
#[expect(
    clippy::expect_used,
    reason = "the literal is a valid address, checked by a test"
)]
fn unnamed_addr() -> ResourceAddr {
    "shell:command/unnamed"
        .parse()
        .expect("valid literal address")
}

/// The environment a piece of text names: `prod`, `staging` or `dev`, looking at
/// whole tokens (`payments-prod`, `prod_db`, `/srv/staging/app`), so `product` or
/// `device` name none. When several appear, the most sensitive wins.
pub fn detect_env(text: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    let tokens: Vec<&str> = lower
        .split(|c: char| !c.is_ascii_alphanumeric())
        .map(|t| t.trim_end_matches(|c: char| c.is_ascii_digit()))
        .filter(|t| !t.is_empty())
        .collect();
    let has = |names: &[&str]| tokens.iter().any(|t| names.contains(t));
    if has(&["prod", "production", "prd"]) {
        Some("prod".to_string())
    } else if has(&["staging", "stage", "stg"]) {
        Some("staging".to_string())
    } else if has(&["dev", "development"]) {
        Some("dev".to_string())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_is_detected_by_token() {
        assert_eq!(detect_env("payments-prod").as_deref(), Some("prod"));
        assert_eq!(detect_env("Production").as_deref(), Some("prod"));
        assert_eq!(detect_env("prod_db").as_deref(), Some("prod"));
        assert_eq!(detect_env("/srv/staging/app").as_deref(), Some("staging"));
        assert_eq!(detect_env("dev1").as_deref(), Some("dev"));
        assert_eq!(detect_env("products"), None);
        assert_eq!(detect_env("device"), None);
        assert_eq!(detect_env("dev-and-prod").as_deref(), Some("prod"));
    }

    #[test]
    fn fallback_address_is_valid() {
        assert_eq!(shell_addr("", "").to_string(), "shell:unnamed/unnamed");
        assert_eq!(unnamed_addr().to_string(), "shell:command/unnamed");
    }
}
