//! Rules for granting privileges: IAM grants on AWS, GCP and Azure, Kubernetes RBAC
//! bindings, local users and groups, setuid bits and file capabilities. Granting rights
//! equivalent to an administrator's is critical wherever it happens, and a grant whose
//! content cannot be read (`file://policy.json`, `$DOC`) is rated as if it were one;
//! other grants are high risk.

use crate::rules::{Cmd, Finding, Outcome, has, operands, opt};
use crate::run::Arg;
use airlock_core::{Risk, Verb};

/// Groups whose members are root in all but name.
const ADMIN_GROUPS: [&str; 9] = [
    "sudo", "wheel", "admin", "root", "docker", "lxd", "disk", "shadow", "adm",
];

fn grant(rule: &'static str, admin: bool, kind: &str, name: &str) -> Finding {
    let risk = if admin { Risk::Critical } else { Risk::High };
    Finding::new(rule, Verb::Update, risk, kind, name)
}

/// Local users, groups and capabilities: `usermod -aG sudo`, `visudo`, `setcap` ….
pub(crate) fn classify(cmd: &Cmd) -> Option<Outcome> {
    let args = cmd.args;
    let admin_group = |g: &str| g.split(',').any(|g| ADMIN_GROUPS.contains(&g.trim()));
    let groups = || {
        bundled_value(args, 'G')
            .or_else(|| opt(args, &["--groups", "--append-groups"]).map(|a| a.text))
            .unwrap_or_default()
    };
    let uid_zero = || {
        opt(args, &["-u", "--uid"]).is_some_and(|u| u.text == "0")
            || bundled_value(args, 'u').is_some_and(|u| u == "0")
    };
    let user = operands(
        args,
        &["-G", "-g", "-u", "-s", "-d", "-c", "-e", "-f", "-p", "-k"],
    )
    .last()
    .map_or_else(|| "unnamed".to_string(), |a| a.name());
    let f = match cmd.program {
        "usermod" | "useradd" => {
            let admin = admin_group(&groups())
                || uid_zero()
                || opt(args, &["-g", "--gid"]).is_some_and(|g| admin_group(&g.text));
            let verb_rule = if cmd.program == "useradd" {
                "user-add"
            } else {
                "user-modify"
            };
            if admin {
                grant("admin-group-grant", true, "user", &user)
            } else {
                Finding::new(verb_rule, Verb::Update, Risk::Medium, "user", &user)
            }
        }
        "adduser" | "addgroup" => {
            let ops = operands(
                args,
                &[
                    "--ingroup",
                    "--uid",
                    "--gid",
                    "--home",
                    "--shell",
                    "--gecos",
                    "-G",
                ],
            );
            let group = ops
                .get(1)
                .map(|a| a.text.clone())
                .or_else(|| opt(args, &["--ingroup", "-G"]).map(|a| a.text))
                .unwrap_or_default();
            let name = ops
                .first()
                .map_or_else(|| "unnamed".to_string(), |a| a.name());
            if admin_group(&group) || uid_zero() {
                grant("admin-group-grant", true, "user", &name)
            } else {
                Finding::new("user-add", Verb::Create, Risk::Medium, "user", &name)
            }
        }
        "gpasswd" => {
            let ops = operands(
                args,
                &[
                    "-a",
                    "--add",
                    "-d",
                    "--delete",
                    "-M",
                    "--members",
                    "-A",
                    "--administrators",
                ],
            );
            let group = ops.last().map(|a| a.text.clone()).unwrap_or_default();
            let adds = has(
                args,
                &["-a", "--add", "-M", "--members", "-A", "--administrators"],
            );
            if adds && admin_group(&group) {
                grant("admin-group-grant", true, "group", &group)
            } else {
                Finding::new("group-modify", Verb::Update, Risk::Medium, "group", &group)
            }
        }
        "visudo" | "sudoedit" => grant("sudoers-edit", true, "file", "etc-sudoers"),
        "chpasswd" => grant("password-change", true, "user", "unnamed"),
        // Removing, locking or setting root's password.
        "passwd" => {
            let root = args.iter().any(|a| a.text == "root")
                || has(args, &["-d", "--delete", "-l", "--lock", "-u", "--unlock"]);
            grant("password-change", root, "user", &user)
        }
        "setcap" => {
            let text = args
                .iter()
                .map(|a| a.text.to_ascii_lowercase())
                .collect::<Vec<_>>()
                .join(" ");
            let admin = [
                "cap_setuid",
                "cap_setgid",
                "cap_sys_admin",
                "cap_dac_override",
                "cap_dac_read_search",
                "cap_sys_ptrace",
                "cap_sys_module",
                "cap_chown",
                "cap_fowner",
                "all=",
                "all+",
            ]
            .iter()
            .any(|c| text.contains(c));
            let file = operands(args, &[])
                .last()
                .map_or_else(|| "unnamed".to_string(), |a| a.name());
            grant("capability-grant", admin, "file", &file)
        }
        _ => return None,
    };
    Outcome::of(f)
}

/// The value of a short option, also inside a bundle (`-aG sudo`, `-aGsudo`).
fn bundled_value(args: &[Arg], letter: char) -> Option<String> {
    for (i, a) in args.iter().enumerate() {
        let t = a.text.as_str();
        let Some(flags) = t.strip_prefix('-').filter(|f| !f.starts_with('-')) else {
            continue;
        };
        if let Some(at) = flags.find(letter) {
            let attached = &flags[at + letter.len_utf8()..];
            return if attached.is_empty() {
                args.get(i + 1).map(|v| v.text.clone())
            } else {
                Some(attached.to_string())
            };
        }
    }
    None
}

/// Whether a mode given to `chmod` sets the setuid or setgid bit (`u+s`, `4755`, `+s`).
pub(crate) fn sets_setuid(mode: &str) -> bool {
    if mode.chars().all(|c| c.is_ascii_digit()) {
        return mode.len() == 4 && mode.starts_with(['2', '3', '4', '5', '6', '7']);
    }
    mode.split(',').any(|clause| {
        clause
            .split_once(['+', '='])
            .is_some_and(|(who, perms)| !who.contains('o') && perms.contains('s'))
    })
}

/// An IAM policy text that grants everything, or one that cannot be read.
fn admin_document(doc: Option<&Arg>) -> bool {
    let Some(d) = doc else { return false };
    if !d.resolved
        || d.text.starts_with("file://")
        || d.text.starts_with("fileb://")
        || d.text.contains("://")
    {
        return true;
    }
    let compact: String = d
        .text
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase();
    [
        "\"action\":\"*\"",
        "\"action\":[\"*\"",
        "\"iam:*\"",
        "\"*:*\"",
        "\"notaction\"",
        "\"principal\":\"*\"",
        "\"aws\":\"*\"",
        "\"actions\":[\"*\"",
    ]
    .iter()
    .any(|p| compact.contains(p))
}

/// `aws iam attach-user-policy … AdministratorAccess`, `put-role-policy` with `"*"` ….
pub(crate) fn aws(service: &str, op: &str, rest: &[Arg]) -> Option<Finding> {
    let managed = |arn: Option<Arg>| {
        arn.is_some_and(|a| {
            let t = a.text.to_ascii_lowercase();
            !a.resolved
                || [
                    "administratoraccess",
                    "poweruseraccess",
                    "iamfullaccess",
                    "admin",
                ]
                .iter()
                .any(|p| t.contains(p))
        })
    };
    let name =
        |flags: &[&str]| opt(rest, flags).map_or_else(|| "unnamed".to_string(), |a| a.name());
    let who = name(&[
        "--user-name",
        "--role-name",
        "--group-name",
        "--permission-set-arn",
    ]);
    let admin = match (service, op) {
        ("iam", "attach-user-policy" | "attach-role-policy" | "attach-group-policy")
        | ("sso-admin", "attach-managed-policy-to-permission-set") => {
            managed(opt(rest, &["--policy-arn", "--managed-policy-arn"]))
        }
        (
            "iam",
            "put-user-policy"
            | "put-role-policy"
            | "put-group-policy"
            | "create-policy-version"
            | "update-assume-role-policy"
            | "create-policy",
        )
        | ("sso-admin", "put-inline-policy-to-permission-set") => {
            let doc = opt(rest, &["--policy-document", "--inline-policy"]);
            doc.is_none() || admin_document(doc.as_ref())
        }
        ("iam", "add-user-to-group") => {
            let g = name(&["--group-name"]).to_ascii_lowercase();
            g.contains("admin") || g.contains("root") || g == crate::UNRESOLVED
        }
        ("iam", "create-access-key" | "create-login-profile" | "update-login-profile") => false,
        _ => return None,
    };
    Some(grant(
        "cloud-iam-grant",
        admin,
        "aws",
        &format!("iam.{who}"),
    ))
}

/// Whether a GCP role is as good as owning the project.
fn gcp_admin_role(role: &str) -> bool {
    let r = role.to_ascii_lowercase();
    matches!(
        r.as_str(),
        "roles/owner"
            | "roles/editor"
            | "roles/iam.serviceaccounttokencreator"
            | "roles/iam.serviceaccountuser"
            | "roles/iam.workloadidentityuser"
    ) || r.contains("admin")
        || r.ends_with(":owner")
        || r.ends_with(":admin")
}

/// `gcloud … add-iam-policy-binding --role roles/owner`, `set-iam-policy`, and `gsutil
/// iam ch` / `acl ch` making a bucket public or handing out admin.
pub(crate) fn gcloud(words: &[&Arg], args: &[Arg]) -> Option<Finding> {
    let has_word = |w: &str| words.iter().any(|a| a.text == w);
    let public = |t: &str| {
        let t = t.to_ascii_lowercase();
        t.contains("allusers") || t.contains("allauthenticatedusers")
    };
    let scope = words.first().map_or("project", |a| a.text.as_str());
    if has_word("set-iam-policy") {
        return Some(grant(
            "cloud-iam-grant",
            true,
            "gcloud",
            &format!("iam.{scope}"),
        ));
    }
    if has_word("add-iam-policy-binding") {
        let role = opt(args, &["--role"]);
        let member = opt(args, &["--member"]);
        let admin = role
            .as_ref()
            .is_none_or(|r| !r.resolved || gcp_admin_role(&r.text))
            || member.as_ref().is_some_and(|m| public(&m.text));
        return Some(grant(
            "cloud-iam-grant",
            admin,
            "gcloud",
            &format!("iam.{scope}"),
        ));
    }
    // gsutil iam ch MEMBER:ROLE gs://b, gsutil acl ch -u AllUsers:R gs://b
    if (has_word("iam") || has_word("acl")) && (has_word("ch") || has_word("set")) {
        let admin = has_word("set")
            || args
                .iter()
                .any(|a| !a.resolved || public(&a.text) || gcp_admin_role(&a.text));
        return Some(grant("cloud-iam-grant", admin, "gcloud", "iam.bucket"));
    }
    None
}

/// Whether an Azure role is as good as owning the scope.
fn azure_admin_role(role: &str) -> bool {
    let r = role.to_ascii_lowercase();
    r == "owner"
        || r == "contributor"
        || r.contains("administrator")
        || r.contains("owner")
        // Owner, Contributor, User Access Administrator by id.
        || r.ends_with("8e3af657-a8ff-443c-a75c-2fe8c4bcb635")
        || r.ends_with("b24988ac-6180-42a0-ab88-20f7382dd24c")
        || r.ends_with("18d7d88d-d35e-4fb5-a5c3-7773c20a72d9")
}

/// `az role assignment create --role Owner`, `az ad sp create-for-rbac --role Contributor`,
/// a custom role with every action.
pub(crate) fn az(words: &[&Arg], args: &[Arg]) -> Option<Finding> {
    let texts: Vec<&str> = words.iter().map(|a| a.text.as_str()).collect();
    let role = opt(args, &["--role"]);
    let admin_role = || {
        role.as_ref()
            .is_some_and(|r| !r.resolved || azure_admin_role(&r.text))
    };
    match texts.as_slice() {
        ["role", "assignment", "create", ..] => Some(grant(
            "cloud-iam-grant",
            role.is_none() || admin_role(),
            "az",
            "role-assignment",
        )),
        ["ad", "sp", "create-for-rbac", ..] => Some(grant(
            "cloud-iam-grant",
            admin_role(),
            "az",
            "service-principal",
        )),
        ["role", "definition", "create" | "update", ..] => {
            let doc = opt(args, &["--role-definition"]);
            let admin = doc.is_none()
                || doc.as_ref().is_some_and(|d| {
                    !d.resolved || d.text.starts_with('@') || admin_document(Some(d))
                });
            Some(grant("cloud-iam-grant", admin, "az", "role-definition"))
        }
        _ => None,
    }
}

/// `kubectl create clusterrolebinding … --clusterrole=cluster-admin`, a role allowing
/// every verb on every resource, `oc adm policy add-cluster-role-to-user cluster-admin`.
pub(crate) fn kube(ops: &[&Arg], args: &[Arg]) -> Option<Finding> {
    let texts: Vec<&str> = ops.iter().map(|a| a.text.as_str()).collect();
    let admin_role = |r: &str| matches!(r, "cluster-admin" | "admin" | "system:masters");
    let name = |i: usize| {
        ops.get(i)
            .map_or_else(|| "unnamed".to_string(), |a| a.name())
    };
    let f = match texts.as_slice() {
        ["create", "clusterrolebinding" | "rolebinding", ..] => {
            let role = opt(args, &["--clusterrole", "--role"]);
            let group = opt(args, &["--group"]);
            let admin = role
                .as_ref()
                .is_some_and(|r| !r.resolved || admin_role(&r.text))
                || group.as_ref().is_some_and(|g| g.text == "system:masters");
            grant(
                "kube-rbac-grant",
                admin,
                "kubectl",
                &format!("binding.{}", name(2)),
            )
        }
        ["create", "clusterrole" | "role", ..] => {
            let star = |flag: &[&str]| {
                args.iter().enumerate().any(|(i, a)| {
                    flag.iter().any(|f| {
                        a.text
                            .strip_prefix(f)
                            .and_then(|v| v.strip_prefix('='))
                            .is_some_and(|v| v.split(',').any(|x| x == "*"))
                            || (a.text == *f
                                && args
                                    .get(i + 1)
                                    .is_some_and(|v| v.text.split(',').any(|x| x == "*")))
                    })
                })
            };
            let admin =
                star(&["--verb"]) && (star(&["--resource"]) || star(&["--non-resource-url"]));
            grant(
                "kube-rbac-grant",
                admin,
                "kubectl",
                &format!("role.{}", name(2)),
            )
        }
        ["adm", "policy", action, role, ..] if action.starts_with("add-") => {
            let admin = admin_role(role) || matches!(*role, "privileged" | "anyuid" | "hostaccess");
            grant(
                "kube-rbac-grant",
                admin,
                "kubectl",
                &format!("binding.{role}"),
            )
        }
        _ => return None,
    };
    Some(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setuid_modes() {
        for m in [
            "u+s", "+s", "g+s", "4755", "6755", "2755", "ug+rwxs", "a=rwxs",
        ] {
            assert!(sets_setuid(m), "{m}");
        }
        for m in ["755", "+x", "u+x", "0755", "644", "o+t", "go-w"] {
            assert!(!sets_setuid(m), "{m}");
        }
    }

    #[test]
    fn admin_documents() {
        let doc = |t: &str| admin_document(Some(&Arg::lit(t)));
        assert!(doc(
            r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#
        ));
        assert!(doc(
            r#"{"Statement":[{"Effect":"Allow","Action":["iam:*"],"Resource":"*"}]}"#
        ));
        assert!(doc("file://policy.json"));
        assert!(!doc(
            r#"{"Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}"#
        ));
    }
}
