//! Rules for Kubernetes: `kubectl` (and `oc`) and `helm`.
//!
//! Targets are `shell:kubectl/<kind>[.<namespace>].<name>`, e.g.
//! `shell:kubectl/namespace.payments` or `shell:kubectl/deployment.payments.web`, and
//! `shell:helm/release[.<namespace>].<name>`.

use crate::rules::{Change, Cmd, Finding, Nested, Outcome, env_of, has, operands, opt};
use crate::run::Arg;
use airlock_core::{Risk, Verb};

/// `kubectl` options that take a separate value.
const KUBECTL_WITH_VALUE: &[&str] = &[
    "-n",
    "--namespace",
    "--context",
    "--cluster",
    "--kubeconfig",
    "--user",
    "-s",
    "--server",
    "--token",
    "--as",
    "--as-group",
    "--request-timeout",
    "-l",
    "--selector",
    "-f",
    "--filename",
    "-o",
    "--output",
    "-c",
    "--container",
    "--replicas",
    "--grace-period",
    "--timeout",
    "-p",
    "--patch",
    "--type",
    "--field-selector",
    "-k",
    "--kustomize",
    "--for",
    "--since",
    "--tail",
    "--image",
    "--port",
    "--current-replicas",
    "--min",
    "--max",
    "--cpu-percent",
    "--to-revision",
    "--overrides",
    "--restart",
    "--sort-by",
    "--template",
    "-e",
    "--env",
    "--field-manager",
    "--cascade",
    "--selector",
    "--patch-file",
    "--subresource",
    "--clusterrole",
    "--role",
    "--serviceaccount",
    "--group",
    "--verb",
    "--resource",
];

/// Subcommands that only read.
const KUBECTL_READS: &[&str] = &[
    "get",
    "describe",
    "logs",
    "log",
    "top",
    "diff",
    "explain",
    "version",
    "api-resources",
    "api-versions",
    "cluster-info",
    "auth",
    "events",
    "wait",
    "port-forward",
    "proxy",
    "completion",
    "plugin",
    "kustomize",
    "options",
    "alpha",
    "convert",
];

pub(crate) fn classify(cmd: &Cmd) -> Option<Outcome> {
    match cmd.program {
        "kubectl" | "oc" | "kubecolor" => kubectl(cmd),
        "helm" => helm(cmd),
        _ => None,
    }
}

/// The canonical name of a resource kind (`deploy` is `deployment`).
fn canonical_kind(kind: &str) -> String {
    let lower = kind.to_ascii_lowercase();
    let base = lower.split('.').next().unwrap_or(&lower);
    let k = match base {
        "ns" | "namespace" | "namespaces" => "namespace",
        "po" | "pod" | "pods" => "pod",
        "deploy" | "deployment" | "deployments" => "deployment",
        "svc" | "service" | "services" => "service",
        "sts" | "statefulset" | "statefulsets" => "statefulset",
        "ds" | "daemonset" | "daemonsets" => "daemonset",
        "rs" | "replicaset" | "replicasets" => "replicaset",
        "cm" | "configmap" | "configmaps" => "configmap",
        "secret" | "secrets" => "secret",
        "pvc" | "persistentvolumeclaim" | "persistentvolumeclaims" => "persistentvolumeclaim",
        "pv" | "persistentvolume" | "persistentvolumes" => "persistentvolume",
        "no" | "node" | "nodes" => "node",
        "ing" | "ingress" | "ingresses" => "ingress",
        "job" | "jobs" => "job",
        "cj" | "cronjob" | "cronjobs" => "cronjob",
        "crd" | "crds" | "customresourcedefinition" | "customresourcedefinitions" => {
            "customresourcedefinition"
        }
        "sa" | "serviceaccount" | "serviceaccounts" => "serviceaccount",
        "hpa" | "horizontalpodautoscaler" | "horizontalpodautoscalers" => "hpa",
        other => other,
    };
    k.to_string()
}

/// Kinds whose deletion takes data or everything inside with it.
const CRITICAL_KINDS: [&str; 5] = [
    "namespace",
    "persistentvolume",
    "persistentvolumeclaim",
    "customresourcedefinition",
    "all",
];

/// What a kubectl command acts on: kind and names.
struct Target {
    kind: String,
    names: Vec<Arg>,
}

/// Reads `KIND NAME…`, `KIND/NAME…`, `-f FILE` or `-k DIR` from the operands.
fn target(args: &[Arg], ops: &[&Arg], default_kind: &str) -> Target {
    if let Some(f) = opt(args, &["-f", "--filename"]) {
        return Target {
            kind: "file".to_string(),
            names: vec![f],
        };
    }
    if let Some(k) = opt(args, &["-k", "--kustomize"]) {
        return Target {
            kind: "kustomization".to_string(),
            names: vec![k],
        };
    }
    let mut kind = None;
    let mut names = Vec::new();
    for (i, a) in ops.iter().enumerate() {
        if let Some((k, n)) = a.text.split_once('/').filter(|_| a.resolved) {
            kind.get_or_insert_with(|| canonical_kind(k));
            names.push(Arg {
                text: n.to_string(),
                ..(*a).clone()
            });
        } else if i == 0 && default_kind.is_empty() {
            kind = Some(if a.resolved {
                canonical_kind(&a.text)
            } else {
                a.name()
            });
        } else {
            names.push((*a).clone());
        }
    }
    if names.is_empty() {
        let name = if has(args, &["--all"]) {
            "all".to_string()
        } else if let Some(sel) = opt(args, &["-l", "--selector"]) {
            format!("selector-{}", sel.name())
        } else {
            "all".to_string()
        };
        names.push(Arg::lit(&name));
    }
    Target {
        kind: kind.unwrap_or_else(|| default_kind.to_string()),
        names,
    }
}

fn kubectl(cmd: &Cmd) -> Option<Outcome> {
    let args = cmd.args;
    let all_ops = operands(args, KUBECTL_WITH_VALUE);
    // Everything after `--` belongs to `kubectl exec`'s command.
    let dashdash = args.iter().position(|a| a.text == "--");
    let ops: Vec<&Arg> = match dashdash {
        Some(d) => operands(args.get(..d).unwrap_or_default(), KUBECTL_WITH_VALUE),
        None => all_ops,
    };
    let sub = ops.first().map_or("", |a| a.text.as_str());
    let sub2 = ops.get(1).map_or("", |a| a.text.as_str());
    let namespace = opt(args, &["-n", "--namespace"]);
    let context = opt(args, &["--context", "--cluster"])
        .or_else(|| cmd.state.kube_context.as_deref().map(Arg::lit));
    let kubeconfig =
        opt(args, &["--kubeconfig"]).or_else(|| cmd.var("KUBECONFIG").map(|k| Arg::lit(&k)));
    let dry_run = args.iter().any(|a| {
        a.text == "--dry-run" || (a.text.starts_with("--dry-run=") && a.text != "--dry-run=none")
    });

    let rest = ops.get(1..).unwrap_or_default();
    if let Some(f) = crate::grants::kube(&ops, args).filter(|_| !dry_run) {
        let env = env_of([namespace.as_ref(), context.as_ref(), kubeconfig.as_ref()]);
        return Outcome::of(f.env(env));
    }
    let (rule, verb, risk, default_kind, rest) = match sub {
        "" => return Outcome::of(Finding::read("kubectl-read", "kubectl", "cluster")),
        s if KUBECTL_READS.contains(&s) => ("kubectl-read", Verb::Read, Risk::Low, "", rest),
        "config" => {
            let mut out = Outcome::from(Finding::read("kubectl-config", "kubectl", "config"));
            if matches!(sub2, "use-context" | "use")
                && let Some(c) = ops.get(2).filter(|c| c.resolved)
            {
                out = out.change(Change::KubeContext(c.text.clone()));
            }
            return Some(out);
        }
        "rollout" => {
            let rest = ops.get(2..).unwrap_or_default();
            match sub2 {
                "restart" => (
                    "kubectl-rollout-restart",
                    Verb::Restart,
                    Risk::Medium,
                    "",
                    rest,
                ),
                "undo" => ("kubectl-rollout-undo", Verb::Deploy, Risk::Medium, "", rest),
                "status" | "history" => ("kubectl-read", Verb::Read, Risk::Low, "", rest),
                _ => ("kubectl-rollout", Verb::Update, Risk::Medium, "", rest),
            }
        }
        "delete" => ("kubectl-delete", Verb::Delete, Risk::High, "", rest),
        "apply" => ("kubectl-apply", Verb::Deploy, Risk::Medium, "", rest),
        "create" => ("kubectl-create", Verb::Create, Risk::Medium, "", rest),
        "replace" => ("kubectl-replace", Verb::Update, Risk::Medium, "", rest),
        "scale" | "autoscale" => ("kubectl-scale", Verb::Scale, Risk::Medium, "", rest),
        "patch" => ("kubectl-patch", Verb::Update, Risk::Medium, "", rest),
        "edit" => ("kubectl-edit", Verb::Update, Risk::Medium, "", rest),
        "label" | "annotate" | "set" | "taint" => {
            ("kubectl-patch", Verb::Update, Risk::Medium, "", rest)
        }
        "drain" => ("kubectl-drain", Verb::Update, Risk::Medium, "node", rest),
        "cordon" | "uncordon" => ("kubectl-cordon", Verb::Update, Risk::Medium, "node", rest),
        "run" => ("kubectl-run", Verb::Create, Risk::Medium, "pod", rest),
        "expose" => ("kubectl-create", Verb::Create, Risk::Medium, "", rest),
        "exec" | "attach" | "debug" => ("kubectl-exec", Verb::Exec, Risk::Medium, "pod", rest),
        "cp" => ("kubectl-cp", Verb::Update, Risk::Medium, "pod", rest),
        "certificate" => ("kubectl-patch", Verb::Update, Risk::Medium, "csr", rest),
        _ => ("kubectl-other", Verb::Update, Risk::Medium, "", rest),
    };
    let t = target(args, rest, default_kind);
    let names: Vec<String> = t.names.iter().map(Arg::name).collect();
    let name = match namespace
        .as_ref()
        .filter(|_| t.kind != "namespace" && t.kind != "node")
    {
        Some(ns) => format!("{}.{}.{}", t.kind, ns.name(), names.join("_")),
        None => format!("{}.{}", t.kind, names.join("_")),
    };
    let env = env_of([namespace.as_ref(), context.as_ref(), kubeconfig.as_ref()])
        .or_else(|| env_of(t.names.iter().map(Some)));

    let replicas = opt(args, &["--replicas"]);
    let everywhere = has(args, &["--all-namespaces", "-A"]) && has(args, &["--all"]);
    let (rule, verb, risk, destructive) = if dry_run && verb != Verb::Read {
        ("kubectl-dry-run", Verb::Read, Risk::Low, false)
    } else {
        match rule {
            "kubectl-delete" => {
                let critical = CRITICAL_KINDS.contains(&t.kind.as_str()) || everywhere;
                (
                    rule,
                    verb,
                    if critical { Risk::Critical } else { Risk::High },
                    true,
                )
            }
            // Every pod it ran is terminated.
            "kubectl-scale" if replicas.as_ref().is_some_and(|r| r.text == "0") => {
                ("kubectl-scale-to-zero", verb, Risk::High, true)
            }
            // Pods without a controller, local data and disruption budgets are lost.
            "kubectl-drain"
                if has(
                    args,
                    &[
                        "--force",
                        "--delete-emptydir-data",
                        "--delete-local-data",
                        "--disable-eviction",
                    ],
                ) =>
            {
                ("kubectl-drain-force", verb, Risk::High, true)
            }
            "kubectl-apply" if has(args, &["--prune", "--force"]) => {
                ("kubectl-apply-prune", verb, Risk::High, true)
            }
            "kubectl-replace" if has(args, &["--force"]) => (rule, verb, Risk::High, true),
            _ => (rule, verb, risk, false),
        }
    };
    let mut f = Finding::new(rule, verb, risk, "kubectl", &name).env(env);
    f.destructive = destructive;
    let mut out = Outcome::from(f);
    if matches!(sub, "exec" | "run" | "debug")
        && let Some(inner) = dashdash
            .and_then(|d| args.get(d + 1..))
            .filter(|a| !a.is_empty())
    {
        out.nested.push(Nested::Argv(inner.to_vec()));
        out.remote = true;
    }
    Some(out)
}

/// `helm` options that take a separate value.
const HELM_WITH_VALUE: &[&str] = &[
    "-n",
    "--namespace",
    "--kube-context",
    "--kubeconfig",
    "-f",
    "--values",
    "--set",
    "--set-string",
    "--set-file",
    "--set-json",
    "--version",
    "--repo",
    "-o",
    "--output",
    "--timeout",
    "--post-renderer",
    "--description",
    "--revision",
    "--max",
    "--history-max",
];

fn helm(cmd: &Cmd) -> Option<Outcome> {
    let args = cmd.args;
    let ops = operands(args, HELM_WITH_VALUE);
    let sub = ops.first().map_or("", |a| a.text.as_str());
    let release = ops.get(1).copied();
    let namespace = opt(args, &["-n", "--namespace"]);
    let context = opt(args, &["--kube-context"]);
    let values: Vec<Arg> = args
        .windows(2)
        .filter(|w| {
            matches!(
                w[0].text.as_str(),
                "-f" | "--values" | "--set" | "--set-string"
            )
        })
        .map(|w| w[1].clone())
        .collect();
    let env = env_of([namespace.as_ref(), context.as_ref(), release])
        .or_else(|| env_of(values.iter().map(Some)));
    let dry_run = has(args, &["--dry-run"]);
    let (rule, verb, risk, destructive) = match sub {
        "uninstall" | "delete" | "del" | "un" => ("helm-uninstall", Verb::Delete, Risk::High, true),
        _ if dry_run => ("helm-dry-run", Verb::Read, Risk::Low, false),
        // `--force` deletes and recreates what cannot be patched.
        "upgrade" | "install" | "i" | "rollback" if has(args, &["--force", "--replace"]) => {
            ("helm-force", Verb::Deploy, Risk::High, true)
        }
        "upgrade" => ("helm-upgrade", Verb::Deploy, Risk::Medium, false),
        "install" | "i" => ("helm-install", Verb::Deploy, Risk::Medium, false),
        "rollback" => ("helm-rollback", Verb::Deploy, Risk::Medium, false),
        _ => ("helm-read", Verb::Read, Risk::Low, false),
    };
    let release_name = if verb == Verb::Read && sub != "status" && sub != "get" && sub != "history"
    {
        "all".to_string()
    } else {
        release.map_or_else(|| "unnamed".to_string(), Arg::name)
    };
    let name = match &namespace {
        Some(ns) => format!("release.{}.{release_name}", ns.name()),
        None => format!("release.{release_name}"),
    };
    let mut f = Finding::new(rule, verb, risk, "helm", &name).env(env);
    f.destructive = destructive;
    Outcome::of(f)
}
