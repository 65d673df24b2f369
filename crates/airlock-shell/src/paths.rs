//! Where a path points, seen from the workspace a command runs in: inside it, the
//! workspace itself, elsewhere, somewhere only known at run time, or a place whose loss
//! is catastrophic. Also which paths hold secrets and which decide who may do what.
//!
//! Paths are names here, never opened: `..` and `cd` are followed on the text alone.

use crate::run::Arg;
use std::collections::HashMap;

/// Where a path points, from the least to the most serious.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Place {
    /// Below the workspace root (`target`, `src/x.rs`, `/repo/build` when `/repo` is it).
    Inside,
    /// Anywhere else: another directory, the home directory's contents, a system path,
    /// a `..` escape, a path on another host.
    Outside,
    /// Only known at run time (`$DIR`, `xargs` input, `$( … )` output).
    Unknown,
    /// The workspace itself or all of it (`.`, `*`, the repository's `.git`).
    Workspace,
    /// The root, the home directory, a top-level system directory, or a directory that
    /// contains the workspace.
    Catastrophic,
}

/// The directory relative paths start from.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Dir {
    /// The workspace or a directory inside it, as components below its root; used when
    /// the workspace's absolute path is not known.
    Project(Vec<String>),
    /// An absolute directory, as components.
    Abs(Vec<String>),
    /// The home directory or below it.
    Home(Vec<String>),
    /// Another host (`ssh host …`, `kubectl exec …`): nothing there is the workspace.
    Elsewhere,
    /// Only known at run time (`cd "$X"`, `cd -`, `popd`).
    Unknown,
}

/// How deep a current directory is followed before it counts as unknown.
const MAX_DIR_DEPTH: usize = 64;

/// Where commands run: the workspace root (absolute, when known) and the current directory.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Site {
    pub workspace: Option<Vec<String>>,
    pub dir: Dir,
    /// Paths that now lead somewhere else, with where: symbolic links made on the line
    /// (`ln -s /var/lib/pg data`) and what was moved in (`mv /srv/data junk`).
    /// Keyed by path, with the order it was made in (the latest one wins).
    links: HashMap<String, (usize, String)>,
}

impl Site {
    /// A site rooted at `cwd` (an absolute path); without one, relative paths are in the
    /// workspace and absolute ones are not. A `cwd` no project lives in — the root, a
    /// system directory, a home directory itself, a credentials directory — is no
    /// workspace: relative paths there are what they name, outside.
    pub fn new(cwd: Option<&str>) -> Site {
        let Some(parts) = cwd
            .filter(|c| c.starts_with('/'))
            .map(|c| normalize(Vec::new(), c).0)
        else {
            return Site {
                workspace: None,
                dir: Dir::Project(Vec::new()),
                links: HashMap::new(),
            };
        };
        if broad(&parts) {
            return Site {
                workspace: None,
                dir: Dir::Abs(parts),
                links: HashMap::new(),
            };
        }
        Site {
            workspace: Some(parts.clone()),
            dir: Dir::Abs(parts),
            links: HashMap::new(),
        }
    }

    /// The site seen from another host.
    pub fn elsewhere() -> Site {
        Site {
            workspace: None,
            dir: Dir::Elsewhere,
            links: HashMap::new(),
        }
    }

    /// Where `cd TARGET` leads (`None`: a target only known at run time).
    pub fn cd(&mut self, target: Option<&str>) {
        self.dir = match target {
            None | Some("-") => Dir::Unknown,
            Some(t) => match self.locate(t) {
                // Deeper than any real tree (`cd a` thousands of times): not followed,
                // so each step costs the same.
                Loc::Project(p) | Loc::Abs(p) | Loc::Home(p) if p.len() > MAX_DIR_DEPTH => {
                    Dir::Unknown
                }
                Loc::Project(p) => Dir::Project(p),
                Loc::Abs(p) => Dir::Abs(p),
                Loc::Home(p) => Dir::Home(p),
                Loc::Elsewhere => Dir::Elsewhere,
                Loc::Above(_) | Loc::Unknown => Dir::Unknown,
            },
        };
    }

    /// The current directory as a path, when it is known (what `pwd` prints).
    pub fn dir_text(&self) -> Option<String> {
        match &self.dir {
            Dir::Abs(p) => Some(format!("/{}", p.join("/"))),
            Dir::Project(p) if p.is_empty() => Some(".".to_string()),
            Dir::Project(p) => Some(format!("./{}", p.join("/"))),
            Dir::Home(p) if p.is_empty() => Some("~".to_string()),
            Dir::Home(p) => Some(format!("~/{}", p.join("/"))),
            Dir::Elsewhere | Dir::Unknown => None,
        }
    }

    /// Records that `path` now leads to `target` (a link made, or data moved in).
    pub fn link(&mut self, path: &str, target: &str) {
        let key = link_key(path);
        if !key.is_empty() {
            let order = self.links.len();
            self.links.insert(key, (order, target.to_string()));
        }
    }

    /// Where a path argument points: the worst of its brace expansions, through links.
    pub fn place(&self, a: &Arg) -> Place {
        if !a.resolved {
            return if crate::files::catastrophic(&a.text) {
                Place::Catastrophic
            } else {
                Place::Unknown
            };
        }
        expand_braces(&a.text)
            .iter()
            .map(|t| self.place_of(&self.locate(&self.through_links(t))))
            .max()
            .unwrap_or(Place::Unknown)
    }

    /// The path a link or a move made `text` stand for, if any.
    fn through_links(&self, text: &str) -> String {
        if self.links.is_empty() {
            return text.to_string();
        }
        let key = link_key(text);
        // The path itself and each directory above it, by the link made last.
        let cuts = key.match_indices('/').map(|(i, _)| i).chain([key.len()]);
        let best = cuts
            .filter_map(|i| {
                let (order, target) = self.links.get(&key[..i])?;
                Some((*order, i, target))
            })
            .max_by_key(|(order, _, _)| *order);
        match best {
            Some((_, i, target)) if i == key.len() => target.clone(),
            Some((_, i, target)) => format!("{}/{}", target.trim_end_matches('/'), &key[i + 1..]),
            None => text.to_string(),
        }
    }

    /// Whether a resolved path is scratch space (`/tmp/…`), where writing harms nothing.
    pub fn is_scratch(&self, a: &Arg) -> bool {
        a.resolved
            && matches!(self.locate(&a.text), Loc::Abs(p)
                if p.len() >= 2 && (p[0] == "tmp" || (p[0] == "var" && p[1] == "tmp")
                    || (p[0] == "dev" && p[1] == "shm")))
    }

    fn place_of(&self, loc: &Loc) -> Place {
        match loc {
            Loc::Unknown => Place::Unknown,
            Loc::Elsewhere => Place::Outside,
            Loc::Project(p) => project_place(p),
            Loc::Above(rest) if rest.is_empty() => Place::Catastrophic,
            Loc::Above(_) => Place::Outside,
            Loc::Home(p) if p.is_empty() => Place::Catastrophic,
            Loc::Home(_) => Place::Outside,
            Loc::Abs(p) => {
                if let Some(ws) = &self.workspace {
                    if let Some(below) = p.strip_prefix(ws.as_slice()) {
                        return project_place(below);
                    }
                    if ws.starts_with(p) {
                        return Place::Catastrophic;
                    }
                }
                if p.len() <= 1 && p.first().is_none_or(|c| c != "tmp") {
                    Place::Catastrophic
                } else {
                    Place::Outside
                }
            }
        }
    }

    /// Resolves a path's text against the current directory.
    fn locate(&self, text: &str) -> Loc {
        let text = text.trim();
        // `host:path`, `user@host:/srv`, `s3://bucket`: on another machine.
        if let Some((head, _)) = text.split_once(':')
            && !head.is_empty()
            && !head.contains('/')
        {
            return Loc::Elsewhere;
        }
        if let Some(rest) = text.strip_prefix('/') {
            return Loc::Abs(normalize(Vec::new(), rest).0);
        }
        if text == "~" || text.starts_with("~/") {
            let (parts, escaped) = normalize(Vec::new(), text.trim_start_matches('~'));
            return if escaped {
                Loc::Abs(parts)
            } else {
                Loc::Home(parts)
            };
        }
        if text.starts_with('~') {
            // `~root/…`: another user's home.
            return Loc::Abs(vec!["home".to_string(), text.to_string()]);
        }
        match &self.dir {
            Dir::Unknown => Loc::Unknown,
            Dir::Elsewhere => Loc::Elsewhere,
            Dir::Abs(base) => Loc::Abs(normalize(base.clone(), text).0),
            Dir::Home(base) => match normalize(base.clone(), text) {
                (_, true) => Loc::Unknown,
                (p, false) => Loc::Home(p),
            },
            Dir::Project(base) => {
                let mut parts = base.clone();
                let mut above: Option<Vec<String>> = None;
                for c in components(text) {
                    match (c, above.as_mut()) {
                        ("..", Some(a)) => {
                            a.pop();
                        }
                        ("..", None) => {
                            if parts.pop().is_none() {
                                above = Some(Vec::new());
                            }
                        }
                        (c, Some(a)) => a.push(c.to_string()),
                        (c, None) => parts.push(c.to_string()),
                    }
                }
                match above {
                    Some(a) => Loc::Above(drop_glob(a)),
                    None => Loc::Project(drop_glob(parts)),
                }
            }
        }
    }
}

/// A path as links are keyed: without leading `./` or trailing `/`.
fn link_key(path: &str) -> String {
    let mut p = path.trim();
    while let Some(rest) = p.strip_prefix("./") {
        p = rest;
    }
    p.trim_end_matches('/').to_string()
}

/// Brace expansion as the shell does it (`/var/lib/{pg,mysql}` is two paths), up to a
/// limit; a word without a `{…,…}` group is itself.
pub(crate) fn expand_braces(text: &str) -> Vec<String> {
    const LIMIT: usize = 64;
    let mut out = vec![text.to_string()];
    for _ in 0..8 {
        let mut next = Vec::new();
        let mut changed = false;
        for word in &out {
            match brace_group(word) {
                Some((pre, alts, post)) if next.len() + alts.len() <= LIMIT => {
                    changed = true;
                    next.extend(alts.iter().map(|a| format!("{pre}{a}{post}")));
                }
                _ => next.push(word.clone()),
            }
        }
        out = next;
        if !changed {
            break;
        }
    }
    out
}

/// The first `{a,b,…}` group of a word: what comes before, the alternatives, what after.
fn brace_group(word: &str) -> Option<(&str, Vec<&str>, &str)> {
    let open = word.find('{')?;
    let mut depth = 0usize;
    let mut commas = Vec::new();
    for (i, c) in word[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    let close = open + i;
                    if commas.is_empty() {
                        return None;
                    }
                    let mut alts = Vec::new();
                    let mut from = open + 1;
                    for c in commas {
                        alts.push(&word[from..c]);
                        from = c + 1;
                    }
                    alts.push(&word[from..close]);
                    return Some((&word[..open], alts, &word[close + 1..]));
                }
            }
            ',' if depth == 1 => commas.push(open + i),
            _ => {}
        }
    }
    None
}

/// Whether a directory is too broad or too sensitive to be a workspace.
fn broad(parts: &[String]) -> bool {
    const TOP: [&str; 26] = [
        "bin", "boot", "dev", "etc", "home", "lib", "lib32", "lib64", "media", "mnt", "opt",
        "proc", "root", "run", "sbin", "srv", "sys", "tmp", "usr", "var", "Users", "Volumes",
        "System", "Library", "private", "data",
    ];
    const UNDER: [&[&str]; 14] = [
        &["etc"],
        &["boot"],
        &["proc"],
        &["sys"],
        &["dev"],
        &["bin"],
        &["sbin"],
        &["lib"],
        &["lib64"],
        &["run"],
        &["usr", "bin"],
        &["usr", "lib"],
        &["var", "lib"],
        &["var", "log"],
    ];
    const SECRET_DIRS: [&str; 7] = [
        ".ssh", ".aws", ".gnupg", ".kube", ".docker", ".config", ".local",
    ];
    let p: Vec<&str> = parts.iter().map(String::as_str).collect();
    match p.as_slice() {
        [] => true,
        [top] => TOP.contains(top),
        ["home" | "Users", _] => true,
        _ => UNDER.iter().any(|u| p.starts_with(u)) || p.iter().any(|c| SECRET_DIRS.contains(c)),
    }
}

/// A path resolved as far as the text allows.
#[derive(Debug, Clone, PartialEq)]
enum Loc {
    Project(Vec<String>),
    Abs(Vec<String>),
    Home(Vec<String>),
    /// Above the workspace root (`..`, `../x`), its components after the escape.
    Above(Vec<String>),
    Elsewhere,
    Unknown,
}

fn project_place(below: &[String]) -> Place {
    match below {
        [] => Place::Workspace,
        // The repository itself: its history goes with it.
        [git] if git == ".git" => Place::Workspace,
        [git, ..] if git == ".git" => Place::Outside,
        _ => Place::Inside,
    }
}

fn components(text: &str) -> impl Iterator<Item = &str> {
    text.split('/').filter(|c| !c.is_empty() && *c != ".")
}

/// Appends `text`'s components to `base`, following `..`; the flag says whether `..`
/// went above `base`'s start. A trailing glob that matches everything is dropped: `dir/*`
/// is all of `dir`.
fn normalize(mut base: Vec<String>, text: &str) -> (Vec<String>, bool) {
    let mut escaped = false;
    for c in components(text) {
        if c == ".." {
            escaped |= base.pop().is_none();
        } else {
            base.push(c.to_string());
        }
    }
    (drop_glob(base), escaped)
}

fn drop_glob(mut parts: Vec<String>) -> Vec<String> {
    while parts
        .last()
        .is_some_and(|c| matches!(c.as_str(), "*" | ".*" | "{*,.*}" | ".[!.]*" | "**"))
    {
        parts.pop();
    }
    parts
}

/// The environment a path names (`/srv/staging/app`), leaving out the user name of a home
/// directory: `/home/dev/…` is not the `dev` environment.
pub(crate) fn path_env(path: &str) -> Option<String> {
    let rest = ["/home/", "/Users/"]
        .iter()
        .find_map(|h| path.strip_prefix(h))
        .map_or(path, |r| r.split_once('/').map_or("", |(_, rest)| rest));
    crate::detect_env(rest)
}

/// Whether a path names a file that holds credentials or keys: `.env`, `~/.aws/…`,
/// `~/.ssh/id_*`, `*.pem`, `.netrc`, `/etc/shadow`, a Terraform state, `/proc/*/environ` …
pub(crate) fn is_secret(path: &str) -> bool {
    let expanded = expand_braces(path);
    if expanded.len() > 1 {
        return expanded.iter().any(|p| is_secret(p));
    }
    let p = path.trim().trim_end_matches('/');
    let lower = p.to_ascii_lowercase();
    let parts: Vec<&str> = lower.split('/').filter(|c| !c.is_empty()).collect();
    let Some(base) = parts.last().copied() else {
        return false;
    };
    const DIRS: [&str; 7] = [
        ".ssh",
        ".aws",
        ".gnupg",
        ".kube",
        ".azure",
        ".docker",
        ".password-store",
    ];
    const FILES: [&str; 22] = [
        ".env",
        ".netrc",
        ".pgpass",
        ".git-credentials",
        ".npmrc",
        ".pypirc",
        ".dockercfg",
        ".vault-token",
        ".htpasswd",
        ".bash_history",
        ".zsh_history",
        "credentials",
        "credentials.json",
        "credentials.csv",
        "kubeconfig",
        "shadow",
        "gshadow",
        "master.key",
        "secrets.yml",
        "secrets.yaml",
        "secrets.json",
        "application_default_credentials.json",
    ];
    const ENDINGS: [&str; 8] = [
        ".pem", ".key", ".p12", ".pfx", ".jks", ".kdbx", ".tfstate", ".ovpn",
    ];
    let in_dir = |d: &str| parts.iter().rev().skip(1).any(|c| *c == d);
    if DIRS.iter().any(|d| in_dir(d) || base == *d) {
        // A public key or a known-hosts list is no secret.
        return !(base.ends_with(".pub") || base == "known_hosts" || base == "config")
            || in_dir(".aws")
            || in_dir(".kube")
            || in_dir(".docker");
    }
    if in_dir(".config") && parts.iter().any(|c| matches!(*c, "gcloud" | "gh" | "hub")) {
        return true;
    }
    let env_file = base == ".env"
        || (base.starts_with(".env.")
            && !["example", "sample", "template", "dist", "defaults"]
                .iter()
                .any(|s| base.ends_with(s)));
    let private_key = ["id_rsa", "id_ed25519", "id_ecdsa", "id_dsa"]
        .iter()
        .any(|k| base.starts_with(k))
        && !base.ends_with(".pub");
    let service_account = (base.contains("service-account") || base.contains("serviceaccount"))
        && base.ends_with(".json");
    env_file
        || private_key
        || service_account
        || FILES.contains(&base)
        || ENDINGS.iter().any(|e| base.ends_with(e))
        || (base == "environ" && parts.first() == Some(&"proc"))
}

/// Whether writing to a path changes who may log in or what runs as whom: sudoers, the
/// user and password databases, SSH's authorized keys and daemon config, PAM, cron and
/// system units, preloaded libraries.
pub(crate) fn is_privileged(path: &str) -> bool {
    let trimmed = path.trim();
    let normal;
    let p = match trimmed.strip_prefix('/') {
        Some(rest) => {
            normal = format!("/{}", normalize(Vec::new(), rest).0.join("/"));
            normal.as_str()
        }
        None => trimmed,
    };
    let under = |dir: &str| p == dir || p.starts_with(&format!("{dir}/"));
    [
        "/etc/sudoers",
        "/etc/sudoers.d",
        "/etc/pam.d",
        "/etc/security",
        "/etc/ssh",
        "/etc/cron.d",
        "/etc/cron.daily",
        "/etc/cron.hourly",
        "/etc/crontab",
        "/var/spool/cron",
        "/etc/systemd/system",
        "/etc/init.d",
        "/root",
        "/etc/profile.d",
        "/var/run/docker.sock",
        "/run/docker.sock",
    ]
    .iter()
    .any(|d| under(d))
        || matches!(
            p,
            "/etc/passwd"
                | "/etc/shadow"
                | "/etc/group"
                | "/etc/gshadow"
                | "/etc/ld.so.preload"
                | "/etc/rc.local"
                | "/etc/profile"
                | "/etc/environment"
        )
        || p.ends_with("/.ssh/authorized_keys")
        || p.ends_with("/.ssh/authorized_keys2")
        || p == "~/.ssh/authorized_keys"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place(cwd: Option<&str>, p: &str) -> Place {
        Site::new(cwd).place(&Arg::lit(p))
    }

    #[test]
    fn paths_are_placed_against_the_workspace() {
        for p in [
            "target",
            "./node_modules",
            "build/*",
            "*.o",
            "a/../b",
            ".github",
        ] {
            assert_eq!(place(None, p), Place::Inside, "{p}");
        }
        for p in [".", "*", "./*", "a/..", ".git"] {
            assert_eq!(place(None, p), Place::Workspace, "{p}");
        }
        for p in [
            "../other",
            "~/data",
            "/var/lib/postgresql",
            "/tmp/x",
            ".git/objects",
        ] {
            assert_eq!(place(None, p), Place::Outside, "{p}");
        }
        for p in ["/", "/*", "~", "~/", "/etc", "..", "../.."] {
            assert_eq!(place(None, p), Place::Catastrophic, "{p}");
        }
        let ws = Some("/home/dev/project");
        assert_eq!(place(ws, "/home/dev/project/target"), Place::Inside);
        assert_eq!(place(ws, "/home/dev/project"), Place::Workspace);
        assert_eq!(place(ws, "/home/dev"), Place::Catastrophic);
        assert_eq!(place(ws, "/home/dev/other"), Place::Outside);
        assert_eq!(place(ws, "../project/src"), Place::Inside);
        assert_eq!(place(ws, "../other"), Place::Outside);
        let unresolved = Arg::unresolved("$D", crate::run::Taint::default());
        assert_eq!(Site::new(None).place(&unresolved), Place::Unknown);
    }

    #[test]
    fn cd_moves_the_base() {
        let mut s = Site::new(None);
        s.cd(Some("build"));
        assert_eq!(s.place(&Arg::lit("*")), Place::Inside);
        s.cd(Some("/tmp"));
        assert_eq!(s.place(&Arg::lit("x")), Place::Outside);
        s.cd(None);
        assert_eq!(s.place(&Arg::lit("x")), Place::Unknown);
        let mut s = Site::new(Some("/repo"));
        s.cd(Some(".."));
        assert_eq!(s.place(&Arg::lit("repo")), Place::Workspace);
        assert_eq!(Site::elsewhere().place(&Arg::lit("build")), Place::Outside);
    }

    #[test]
    fn braces_and_links_are_followed() {
        assert_eq!(expand_braces("/srv/{a,b}/x"), ["/srv/a/x", "/srv/b/x"]);
        assert_eq!(expand_braces("{a,b}{c,d}").len(), 4);
        assert_eq!(expand_braces("${X}"), ["${X}"]);
        assert_eq!(place(None, "{target,/srv/data}"), Place::Outside);
        let mut s = Site::new(None);
        s.link("pgdata", "/var/lib/postgresql");
        assert_eq!(s.place(&Arg::lit("pgdata/")), Place::Outside);
        assert_eq!(s.place(&Arg::lit("./pgdata/base")), Place::Outside);
        assert_eq!(s.place(&Arg::lit("pgdata2")), Place::Inside);
    }

    #[test]
    fn a_broad_cwd_is_no_workspace() {
        for cwd in [
            "/",
            "/var/lib",
            "/var/lib/postgresql",
            "/home/dev",
            "/srv",
            "/home/dev/.ssh",
        ] {
            let s = Site::new(Some(cwd));
            assert_ne!(s.place(&Arg::lit("data")), Place::Inside, "{cwd}");
        }
        for cwd in [
            "/repo",
            "/app",
            "/home/dev/project",
            "/srv/app",
            "/usr/src/app",
        ] {
            let s = Site::new(Some(cwd));
            assert_eq!(s.place(&Arg::lit("data")), Place::Inside, "{cwd}");
        }
    }

    #[test]
    fn secrets_and_privileged_files() {
        for p in [
            ".env",
            ".env.local",
            "~/.aws/credentials",
            "~/.ssh/id_rsa",
            "/home/u/.ssh/id_ed25519",
            "~/.kube/config",
            "server.pem",
            "/etc/shadow",
            "terraform.tfstate",
            "/proc/self/environ",
            "~/.config/gcloud/application_default_credentials.json",
        ] {
            assert!(is_secret(p), "{p}");
        }
        for p in [
            ".env.example",
            "src/env.rs",
            "~/.ssh/id_rsa.pub",
            "README.md",
            "keys.rs",
        ] {
            assert!(!is_secret(p), "{p}");
        }
        for p in [
            "/etc/sudoers",
            "/etc/sudoers.d/dev",
            "~/.ssh/authorized_keys",
            "/etc/passwd",
        ] {
            assert!(is_privileged(p), "{p}");
        }
        for p in ["/etc/hosts", "src/sudoers.rs", "/tmp/passwd"] {
            assert!(!is_privileged(p), "{p}");
        }
    }
}
