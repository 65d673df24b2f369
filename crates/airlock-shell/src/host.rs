//! Rules for hosts and services: HTTP clients, `ssh`, containers, `systemctl`,
//! shutdowns, signals, `crontab` and firewalls.

use crate::rules::{
    Cmd, Finding, Nested, Outcome, env_of, has, operand_index, operands, opt, short_flag,
};
use crate::run::Arg;
use airlock_core::{Risk, Verb};

pub(crate) fn classify(cmd: &Cmd) -> Option<Outcome> {
    match cmd.program {
        "curl" | "wget" | "http" | "https" | "xh" => http(cmd),
        "ssh" => ssh(cmd),
        "docker" | "podman" | "nerdctl" => docker(cmd),
        "docker-compose" | "podman-compose" => {
            let args: Vec<Arg> = std::iter::once(Arg::lit("compose"))
                .chain(cmd.args.iter().cloned())
                .collect();
            docker(&Cmd {
                program: "docker",
                args: &args,
                ..*cmd
            })
        }
        "nc" | "ncat" | "netcat" | "socat" | "telnet" => {
            let listen_or_probe = short_flag(cmd.args, 'z') || short_flag(cmd.args, 'l');
            let host = operands(cmd.args, &["-p", "-s", "-w", "-i", "-q"])
                .first()
                .map_or_else(|| "unnamed".to_string(), |a| a.name());
            let f = if listen_or_probe {
                Finding::read("network-probe", "host", &host)
            } else {
                Finding::new("network-send", Verb::Update, Risk::Medium, "host", &host)
            };
            Outcome::of(f.env(env_of(cmd.args.iter().map(Some))))
        }
        "systemctl" | "service" => systemctl(cmd),
        "shutdown" | "reboot" | "halt" | "poweroff" => {
            let f = Finding::new(
                "host-shutdown",
                Verb::Restart,
                Risk::Critical,
                "host",
                "local",
            );
            Outcome::of(f)
        }
        "init" | "telinit" if matches!(cmd.arg(0), Some("0" | "6")) => {
            let f = Finding::new(
                "host-shutdown",
                Verb::Restart,
                Risk::Critical,
                "host",
                "local",
            );
            Outcome::of(f)
        }
        "kill" | "pkill" | "killall" => {
            let target = operands(cmd.args, &["-s", "-n", "-u", "-g", "-t"])
                .first()
                .map(|a| a.name());
            let all = target.as_deref() == Some("1") || target.as_deref() == Some("-1");
            let risk = if all { Risk::Critical } else { Risk::Medium };
            let name = target.unwrap_or_else(|| "unnamed".to_string());
            Outcome::of(Finding::new(
                "process-kill",
                Verb::Restart,
                risk,
                "process",
                &name,
            ))
        }
        "crontab" if short_flag(cmd.args, 'r') => {
            let f = Finding::new(
                "crontab-remove",
                Verb::Delete,
                Risk::High,
                "host",
                "crontab",
            );
            Outcome::of(f.destructive())
        }
        "crontab" if short_flag(cmd.args, 'l') => {
            Outcome::of(Finding::read("read-only", "host", "crontab"))
        }
        "crontab" => Outcome::of(Finding::new(
            "crontab-edit",
            Verb::Update,
            Risk::Medium,
            "host",
            "crontab",
        )),
        "iptables" | "ip6tables" | "nft" | "ufw" => firewall(cmd),
        _ => None,
    }
}

/// `curl`/`wget`: the method decides; `DELETE` is destructive.
fn http(cmd: &Cmd) -> Option<Outcome> {
    let args = cmd.args;
    let method = opt(args, &["-X", "--request", "--method"]).map(|m| m.text.to_ascii_uppercase());
    let sends = has(
        args,
        &[
            "-d",
            "--data",
            "--data-raw",
            "--data-binary",
            "--data-urlencode",
            "-F",
            "--form",
            "--json",
            "-T",
            "--upload-file",
            "--post-data",
            "--post-file",
        ],
    ) || args
        .iter()
        .any(|a| a.text.starts_with("--data") || a.text.starts_with("--post-"));
    let httpie_method = if matches!(cmd.program, "http" | "https" | "xh") {
        cmd.args
            .iter()
            .find(|a| !a.text.starts_with('-'))
            .map(|a| a.text.to_ascii_uppercase())
    } else {
        None
    };
    let url = args
        .iter()
        .find(|a| a.text.contains("://") || a.text.starts_with("localhost"));
    let host = url.map_or_else(
        || "unnamed".to_string(),
        |u| {
            if !u.resolved {
                return u.name();
            }
            let rest = u.text.split_once("://").map_or(u.text.as_str(), |(_, r)| r);
            rest.split(['/', '?', '#'])
                .next()
                .unwrap_or(rest)
                .to_string()
        },
    );
    let env = env_of([url]);
    let method = method.or(httpie_method).unwrap_or_else(|| {
        if sends {
            "POST".to_string()
        } else {
            "GET".to_string()
        }
    });
    let f = match method.as_str() {
        "DELETE" => {
            Finding::new("http-delete", Verb::Delete, Risk::High, "http", &host).destructive()
        }
        "POST" | "PUT" | "PATCH" => {
            Finding::new("http-write", Verb::Update, Risk::Medium, "http", &host)
        }
        _ => Finding::read("http-get", "http", &host),
    };
    Outcome::of(f.env(env))
}

/// `ssh host command…`: the remote command is classified as a script.
fn ssh(cmd: &Cmd) -> Option<Outcome> {
    const WITH_VALUE: [&str; 16] = [
        "-i", "-p", "-l", "-o", "-F", "-J", "-L", "-R", "-D", "-b", "-c", "-E", "-e", "-m", "-O",
        "-S",
    ];
    let i = operand_index(cmd.args, &WITH_VALUE);
    let host = cmd.args.get(i);
    let remote = cmd.args.get(i + 1..).unwrap_or_default();
    let name = host.map_or_else(|| "unnamed".to_string(), Arg::name);
    let env = env_of([host]);
    let mut out = if remote.is_empty() {
        Outcome::from(Finding::new("ssh-session", Verb::Exec, Risk::Medium, "host", &name).env(env))
    } else {
        Outcome::from(Finding::new("ssh-exec", Verb::Exec, Risk::Low, "host", &name).env(env))
    };
    if !remote.is_empty() {
        out.remote = true;
        if remote.iter().all(|a| a.resolved) {
            let script = remote
                .iter()
                .map(|a| a.text.as_str())
                .collect::<Vec<_>>()
                .join(" ");
            out.nested.push(Nested::Script(script));
        } else {
            out.nested.push(Nested::Argv(remote.to_vec()));
        }
    }
    Some(out)
}

/// `docker`/`podman`: removals and prunes are destructive; `exec` runs the inner command.
fn docker(cmd: &Cmd) -> Option<Outcome> {
    const GLOBAL: [&str; 5] = ["-H", "--host", "--context", "-c", "--config"];
    let i = operand_index(cmd.args, &GLOBAL);
    let mut sub = cmd.arg(i).unwrap_or("").to_string();
    let mut rest = cmd.args.get(i + 1..).unwrap_or_default();
    // `docker container rm`, `docker image prune` …
    if matches!(
        sub.as_str(),
        "container"
            | "image"
            | "volume"
            | "network"
            | "system"
            | "builder"
            | "compose"
            | "stack"
            | "service"
            | "buildx"
    ) {
        let obj = sub.clone();
        let verb = rest.first().map_or("", |a| a.text.as_str()).to_string();
        rest = rest.get(1..).unwrap_or_default();
        sub = match (obj.as_str(), verb.as_str()) {
            ("volume", "rm" | "remove") => "volume-rm".to_string(),
            ("system" | "volume" | "image" | "container" | "builder" | "network", "prune") => {
                format!("{obj}-prune")
            }
            ("buildx", "prune") => "builder-prune".to_string(),
            ("system", "reset") => "system-prune".to_string(),
            ("compose" | "stack", "down") if has(rest, &["-v", "--volumes"]) => {
                "volume-rm".to_string()
            }
            ("compose" | "stack", "down" | "rm") => "stop".to_string(),
            ("compose", "up") | ("stack", "deploy") | ("service", "update" | "create") => {
                "deploy".to_string()
            }
            (_, v) => v.to_string(),
        };
    }
    // Options taking a value differ between subcommands (`-f` is `--force` for `rm`).
    let with_value: &[&str] = match sub.as_str() {
        "run" | "create" | "exec" => &[
            "-e",
            "--env",
            "-v",
            "--volume",
            "-p",
            "--publish",
            "--name",
            "-w",
            "--workdir",
            "-u",
            "--user",
            "--network",
            "--entrypoint",
            "--mount",
            "--platform",
            "-m",
            "--memory",
            "--cpus",
            "-l",
            "--label",
            "--env-file",
            "--add-host",
            "-h",
            "--hostname",
            "--restart",
            "--cap-add",
            "--cap-drop",
            "--device",
            "--pid",
            "--ipc",
            "--gpus",
            "--shm-size",
            "--ulimit",
            "--tmpfs",
            "--dns",
            "--link",
            "--log-driver",
            "--health-cmd",
            "--security-opt",
            "--stop-signal",
            "--pull",
        ],
        "build" => &["-t", "--tag", "-f", "--file", "--build-arg", "--target"],
        "rm" | "rmi" | "kill" | "stop" | "restart" | "start" | "pause" | "unpause" => {
            &["-s", "--signal", "-t", "--time"]
        }
        _ => &["-f", "--filter", "--format"],
    };
    let target = operands(rest, with_value)
        .first()
        .map_or_else(|| "all".to_string(), |a| a.name());
    let env = opt(cmd.args, &["--context", "-c"]).and_then(|c| c.env());
    let mk = |rule, verb, risk| Finding::new(rule, verb, risk, "docker", &target).env(env.clone());
    let f = match sub.as_str() {
        "volume-rm" | "system-prune" | "volume-prune" => {
            mk("docker-prune", Verb::Delete, Risk::High).destructive()
        }
        "image-prune" | "container-prune" | "builder-prune" | "network-prune" => {
            mk("docker-prune", Verb::Delete, Risk::Medium).destructive()
        }
        // Named containers and images are rebuilt at will; all of them, whatever a
        // substitution lists, or their volumes are not.
        "rm" | "rmi" => {
            let ops = operands(rest, with_value);
            let all = short_flag(rest, 'a') || has(rest, &["--all"]);
            let volumes = sub == "rm" && (short_flag(rest, 'v') || has(rest, &["--volumes"]));
            if all || volumes || ops.is_empty() || ops.iter().any(|a| !a.resolved) {
                mk("docker-rm", Verb::Delete, Risk::High).destructive()
            } else {
                mk("docker-rm", Verb::Delete, Risk::Medium)
            }
        }
        "kill" | "stop" | "restart" | "start" | "pause" | "unpause" => {
            mk("docker-restart", Verb::Restart, Risk::Medium)
        }
        "exec" => {
            let inner_at = operand_index(rest, &["-e", "--env", "-u", "--user", "-w", "--workdir"]);
            let mut out = Outcome::from(mk("docker-exec", Verb::Exec, Risk::Medium));
            if let Some(inner) = rest.get(inner_at + 1..).filter(|r| !r.is_empty()) {
                out.nested.push(Nested::Argv(inner.to_vec()));
                out.remote = true;
            }
            return Some(out);
        }
        "run" | "create" if host_access(rest) => {
            mk("container-host-access", Verb::Exec, Risk::Critical)
        }
        // The container's command runs elsewhere (in the container), on what it mounts.
        "run" => {
            let mut out = Outcome::from(mk("docker-run", Verb::Exec, Risk::Medium));
            let image_at = operand_index(rest, with_value);
            if let Some(inner) = rest.get(image_at + 1..).filter(|r| !r.is_empty()) {
                out.nested.push(Nested::Argv(inner.to_vec()));
                out.remote = true;
            }
            return Some(out);
        }
        "push" | "deploy" => mk("docker-deploy", Verb::Deploy, Risk::Medium),
        "build" | "pull" | "tag" | "login" | "create" | "commit" | "cp" | "up" => {
            mk("docker-build", Verb::Create, Risk::Low)
        }
        _ => mk("docker-read", Verb::Read, Risk::Low),
    };
    Outcome::of(f)
}

/// A container given the host: privileged, the host's process namespace, all
/// capabilities, or the host's root, `/etc` or Docker socket mounted. From inside, that
/// is root on the host.
fn host_access(args: &[Arg]) -> bool {
    let texts: Vec<&str> = args.iter().map(|a| a.text.as_str()).collect();
    let value_of = |i: usize, flags: &[&str]| -> Option<String> {
        let t = texts[i];
        flags.iter().find_map(|f| {
            if t == *f {
                texts.get(i + 1).map(|v| v.to_string())
            } else {
                t.strip_prefix(f)
                    .and_then(|v| v.strip_prefix('='))
                    .map(str::to_string)
            }
        })
    };
    let sensitive_source = |src: &str| {
        let src = src.trim_end_matches('/');
        src.is_empty()
            || matches!(
                src,
                "/etc"
                    | "/root"
                    | "/var/run/docker.sock"
                    | "/run/docker.sock"
                    | "/boot"
                    | "/proc"
                    | "/sys"
            )
    };
    let host_source = |src: &str| src.starts_with('/') && sensitive_source(src);
    (0..texts.len()).any(|i| {
        let t = texts[i];
        let privileged = t == "--privileged" || t == "--privileged=true";
        let host_namespace =
            value_of(i, &["--pid", "--userns", "--uts"]).is_some_and(|v| v == "host");
        let all_caps = value_of(i, &["--cap-add"]).is_some_and(|v| {
            matches!(
                v.to_ascii_uppercase().as_str(),
                "ALL" | "SYS_ADMIN" | "CAP_SYS_ADMIN"
            )
        });
        let bind = value_of(i, &["-v", "--volume"])
            .is_some_and(|v| v.split(':').next().is_some_and(host_source));
        let mount = value_of(i, &["--mount"]).is_some_and(|v| {
            v.split(',').any(|kv| {
                kv.split_once('=')
                    .is_some_and(|(k, src)| matches!(k, "source" | "src") && host_source(src))
            })
        });
        privileged || host_namespace || all_caps || bind || mount
    })
}

fn systemctl(cmd: &Cmd) -> Option<Outcome> {
    let ops = operands(
        cmd.args,
        &[
            "-H",
            "--host",
            "-M",
            "--machine",
            "-t",
            "--type",
            "-p",
            "--property",
        ],
    );
    // `service NAME ACTION` versus `systemctl ACTION NAME`.
    let (action, unit) = if cmd.program == "service" {
        (ops.get(1).copied(), ops.first().copied())
    } else {
        (ops.first().copied(), ops.get(1).copied())
    };
    let action = action.map_or("", |a| a.text.as_str());
    let unit_name = unit.map_or_else(|| "all".to_string(), Arg::name);
    let env = opt(cmd.args, &["-H", "--host"]).and_then(|h| h.env());
    let mk =
        |rule, verb, risk| Finding::new(rule, verb, risk, "service", &unit_name).env(env.clone());
    let f = match action {
        "restart" | "reload" | "start" | "try-restart" | "reload-or-restart" => {
            mk("service-restart", Verb::Restart, Risk::Medium)
        }
        "stop" | "disable" | "mask" | "kill" => mk("service-stop", Verb::Update, Risk::Medium),
        "poweroff" | "reboot" | "halt" | "kexec" | "rescue" | "emergency" => {
            return Outcome::of(Finding::new(
                "host-shutdown",
                Verb::Restart,
                Risk::Critical,
                "host",
                "local",
            ));
        }
        "enable" | "unmask" | "daemon-reload" | "set-property" | "edit" | "link" => {
            mk("service-update", Verb::Update, Risk::Low)
        }
        _ => mk("read-only", Verb::Read, Risk::Low),
    };
    Outcome::of(f)
}

/// Flushing or rewriting firewall rules can cut a host off.
fn firewall(cmd: &Cmd) -> Option<Outcome> {
    let flush = short_flag(cmd.args, 'F')
        || has(
            cmd.args,
            &[
                "--flush",
                "flush",
                "disable",
                "reset",
                "-X",
                "--delete-chain",
            ],
        );
    let list = short_flag(cmd.args, 'L')
        || short_flag(cmd.args, 'S')
        || has(cmd.args, &["--list", "list", "status", "-S"]);
    let f = if flush {
        Finding::new(
            "firewall-flush",
            Verb::Delete,
            Risk::High,
            "host",
            "firewall",
        )
        .destructive()
    } else if list {
        Finding::read("read-only", "host", "firewall")
    } else {
        Finding::new(
            "firewall-update",
            Verb::Update,
            Risk::Medium,
            "host",
            "firewall",
        )
    };
    Outcome::of(f)
}
