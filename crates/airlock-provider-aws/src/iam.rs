//! IAM roles and users: attaching and detaching managed policies. Attaching a policy that
//! is admin-equivalent (one that allows everything, or lets the holder grant itself
//! anything) is rated critical, whatever the environment.

use crate::clients::{Clients, sdk_err};
use crate::provider::{AwsProvider, Draft, check_params, env_of, param_str, tag_list, tier_of};
use crate::target::{Kind, Target};
use airlock_core::ProviderError;
use airlock_core::action::ActionRequest;
use airlock_core::plan::{Diff, Plan, ResourceAttrs};
use airlock_core::risk::Risk;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// AWS managed policies that grant everything, or the means to grant oneself everything.
const ADMIN_MANAGED: &[&str] = &[
    "AdministratorAccess",
    "IAMFullAccess",
    "AWSOrganizationsFullAccess",
];

/// IAM actions that let a principal grant itself more.
const ESCALATING: &[&str] = &[
    "iam:*",
    "iam:attachrolepolicy",
    "iam:attachuserpolicy",
    "iam:putrolepolicy",
    "iam:putuserpolicy",
    "iam:createpolicyversion",
    "iam:setdefaultpolicyversion",
    "iam:passrole",
    "iam:updateassumerolepolicy",
    "iam:createaccesskey",
];

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn as_list(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.to_ascii_lowercase()],
        Value::Array(a) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_ascii_lowercase)
            .collect(),
        _ => vec![],
    }
}

/// Why a policy document is admin-equivalent, if it is: an `Allow` of every action, or of
/// an action that escalates, on every resource.
pub(crate) fn admin_equivalent(doc: &Value) -> Option<String> {
    let statements = match &doc["Statement"] {
        Value::Array(a) => a.clone(),
        s @ Value::Object(_) => vec![s.clone()],
        _ => vec![],
    };
    for s in statements {
        if s["Effect"] != "Allow" {
            continue;
        }
        let resources = as_list(&s["Resource"]);
        if !resources.iter().any(|r| r == "*") {
            continue;
        }
        if s.get("NotAction").is_some() {
            return Some("it allows every action but a few (`NotAction`) on every resource".into());
        }
        let actions = as_list(&s["Action"]);
        if let Some(a) = actions
            .iter()
            .find(|a| *a == "*" || ESCALATING.contains(&a.as_str()))
        {
            return Some(format!("it allows `{a}` on every resource"));
        }
    }
    None
}

impl AwsProvider {
    async fn attached(
        &self,
        c: &Clients,
        t: &Target,
    ) -> Result<Option<BTreeSet<String>>, ProviderError> {
        let arns: Result<Vec<String>, _> = match t.kind {
            Kind::Role => c
                .iam
                .list_attached_role_policies()
                .role_name(&t.name)
                .send()
                .await
                .map(|o| {
                    o.attached_policies()
                        .iter()
                        .filter_map(|p| p.policy_arn().map(str::to_string))
                        .collect()
                })
                .map_err(|e| sdk_err("ListAttachedRolePolicies", e)),
            _ => c
                .iam
                .list_attached_user_policies()
                .user_name(&t.name)
                .send()
                .await
                .map(|o| {
                    o.attached_policies()
                        .iter()
                        .filter_map(|p| p.policy_arn().map(str::to_string))
                        .collect()
                })
                .map_err(|e| sdk_err("ListAttachedUserPolicies", e)),
        };
        match arns {
            Ok(a) => Ok(Some(a.into_iter().collect())),
            Err(ProviderError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub(crate) async fn iam_state(&self, t: &Target) -> Result<Option<Value>, ProviderError> {
        let c = self.clients(&t.region);
        Ok(self.attached(&c, t).await?.map(|a| json!({"attached": a})))
    }

    /// Why attaching `arn` makes the principal an administrator, if it does.
    async fn escalation(&self, c: &Clients, arn: &str) -> Result<Option<String>, ProviderError> {
        let name = arn.rsplit('/').next().unwrap_or(arn);
        if arn.starts_with("arn:aws:iam::aws:policy/") && ADMIN_MANAGED.contains(&name) {
            return Ok(Some(format!(
                "AWS managed policy {name} is admin-equivalent"
            )));
        }
        let policy = c
            .iam
            .get_policy()
            .policy_arn(arn)
            .send()
            .await
            .map_err(|e| sdk_err("GetPolicy", e))?;
        let Some(version) = policy.policy().and_then(|p| p.default_version_id()) else {
            return Ok(None);
        };
        let v = c
            .iam
            .get_policy_version()
            .policy_arn(arn)
            .version_id(version)
            .send()
            .await
            .map_err(|e| sdk_err("GetPolicyVersion", e))?;
        let doc = v
            .policy_version()
            .and_then(|p| p.document())
            .unwrap_or_default();
        let parsed: Value = serde_json::from_str(doc)
            .or_else(|_| serde_json::from_str(&percent_decode(doc)))
            .unwrap_or(Value::Null);
        Ok(admin_equivalent(&parsed).map(|why| format!("policy {name}: {why}")))
    }

    pub(crate) async fn iam_plan(
        &self,
        req: &ActionRequest,
        t: &Target,
    ) -> Result<Draft, ProviderError> {
        check_params(req, &["attach_policy", "detach_policy"])?;
        let c = self.clients(&t.region);
        let before = self
            .attached(&c, t)
            .await?
            .ok_or_else(|| ProviderError::NotFound(req.target.to_string()))?;
        let attach = param_str(req, "attach_policy")?;
        let detach = param_str(req, "detach_policy")?;
        if attach.is_none() && detach.is_none() {
            return Err(ProviderError::InvalidParams(
                "update of a role or user needs `attach_policy` or `detach_policy` (a policy ARN)"
                    .into(),
            ));
        }
        let mut after = before.clone();
        let mut min_risk = None;
        let mut notes = Vec::new();
        if let Some(a) = attach {
            if let Some(why) = self.escalation(&c, a).await? {
                min_risk = Some(Risk::Critical);
                notes.push(format!("admin-equivalent: {why}"));
            }
            after.insert(a.to_string());
        }
        if let Some(d) = detach {
            after.remove(d);
        }
        let kind = if t.kind == Kind::Role { "role" } else { "user" };
        let summary = format!(
            "{}{} {kind} {}{}",
            attach.map_or(String::new(), |a| format!("attach {a} to")),
            detach.map_or(String::new(), |d| format!(
                "{}detach {d} from",
                if attach.is_some() { " and " } else { "" }
            )),
            t.name,
            if notes.is_empty() {
                String::new()
            } else {
                format!("; {}", notes.join("; "))
            }
        );
        let tags = BTreeMap::new();
        Ok(Draft {
            diffs: vec![Diff {
                addr: req.target.clone(),
                before: Some(json!({"attached": before})),
                after: Some(json!({"attached": after})),
            }],
            resource: ResourceAttrs {
                env: env_of(&tags, &self.settings.default_env),
                tier: tier_of(&tags),
                service: t.name.clone(),
                tags: tag_list(&tags),
                ..ResourceAttrs::default()
            },
            reversible: true,
            min_risk,
            summary,
            ..Draft::default()
        })
    }

    async fn iam_set(&self, t: &Target, want: &Value) -> Result<(), ProviderError> {
        let c = self.clients(&t.region);
        let now = self
            .attached(&c, t)
            .await?
            .ok_or_else(|| ProviderError::NotFound(t.name.clone()))?;
        let want: BTreeSet<String> = want["attached"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        for arn in want.difference(&now) {
            let r = if t.kind == Kind::Role {
                c.iam
                    .attach_role_policy()
                    .role_name(&t.name)
                    .policy_arn(arn)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| sdk_err("AttachRolePolicy", e))
            } else {
                c.iam
                    .attach_user_policy()
                    .user_name(&t.name)
                    .policy_arn(arn)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| sdk_err("AttachUserPolicy", e))
            };
            r?;
        }
        for arn in now.difference(&want) {
            let r = if t.kind == Kind::Role {
                c.iam
                    .detach_role_policy()
                    .role_name(&t.name)
                    .policy_arn(arn)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| sdk_err("DetachRolePolicy", e))
            } else {
                c.iam
                    .detach_user_policy()
                    .user_name(&t.name)
                    .policy_arn(arn)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| sdk_err("DetachUserPolicy", e))
            };
            r?;
        }
        Ok(())
    }

    pub(crate) async fn iam_apply(&self, plan: &Plan, t: &Target) -> Result<(), ProviderError> {
        let want = plan
            .diffs
            .first()
            .and_then(|d| d.after.clone())
            .unwrap_or(Value::Null);
        self.iam_set(t, &want).await
    }

    pub(crate) async fn iam_put_back(
        &self,
        t: &Target,
        prior: &Option<Value>,
    ) -> Result<(), ProviderError> {
        match prior {
            Some(p) => self.iam_set(t, p).await,
            None => Err(ProviderError::NotFound(t.name.clone())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_equivalent_documents_are_recognised() {
        let star = json!({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]});
        assert!(admin_equivalent(&star).is_some());
        let escalate = json!({"Statement": {"Effect": "Allow", "Action": ["s3:GetObject", "iam:PassRole"], "Resource": ["*"]}});
        assert!(
            admin_equivalent(&escalate)
                .unwrap()
                .contains("iam:passrole")
        );
        let not_action =
            json!({"Statement": [{"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}]});
        assert!(admin_equivalent(&not_action).is_some());
        let narrow = json!({"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::logs/*"}]});
        assert!(admin_equivalent(&narrow).is_none());
        let scoped_star = json!({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "arn:aws:s3:::logs"}]});
        assert!(admin_equivalent(&scoped_star).is_none());
        let deny = json!({"Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*"}]});
        assert!(admin_equivalent(&deny).is_none());
        assert_eq!(percent_decode("%7B%22a%22%3A1%7D"), "{\"a\":1}");
    }
}
