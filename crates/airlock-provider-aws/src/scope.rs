//! Sessions scoped to one change: with `scoped_sessions = true`, every apply and every
//! revert assumes Airlock's role (`role_arn`) again with a session policy that allows only
//! the actions the change's kind needs, only on the resources of its plan. What the session
//! may do is the intersection of the role and that policy, so a change can never reach past
//! its plan even if the code acting on it were wrong — the least privilege the incident's
//! agent did not have.

use crate::clients::{Clients, sdk_err};
use crate::provider::AwsProvider;
use crate::target::{Kind, Target};
use airlock_core::ProviderError;
use aws_config::Region;
use serde_json::{Value, json};

tokio::task_local! {
    /// The clients of the scoped session the current change runs in.
    pub(crate) static SCOPED: (String, Clients);
}

/// Reads every change needs (the state is read back through the same session).
const READS: &[&str] = &[
    "cloudformation:DescribeStacks",
    "cloudformation:GetTemplate",
    "cloudformation:ListStackResources",
    "cloudformation:DescribeChangeSet",
    "autoscaling:DescribeAutoScalingGroups",
    "ecs:DescribeServices",
    "ecs:ListClusters",
    "ecs:ListServices",
    "ecs:DescribeTaskDefinition",
    "ec2:DescribeInstances",
    "rds:DescribeDBInstances",
    "rds:DescribeDBSnapshots",
    "dynamodb:ListTables",
    "dynamodb:DescribeTable",
    "dynamodb:ListBackups",
    "s3:ListBucket",
    "iam:ListAttachedRolePolicies",
    "iam:ListAttachedUserPolicies",
];

/// The actions a change of `kind` (or its revert) may call, and the ARNs it may call them on.
fn grants(t: &Target, account: &str) -> (Vec<&'static str>, Vec<String>) {
    let (r, a, n) = (t.region.as_str(), account, t.name.as_str());
    match t.kind {
        Kind::Stack => (
            vec![
                "cloudformation:CreateStack",
                "cloudformation:DeleteStack",
                "cloudformation:CreateChangeSet",
                "cloudformation:ExecuteChangeSet",
                "cloudformation:DeleteChangeSet",
            ],
            vec![format!("arn:aws:cloudformation:{r}:{a}:stack/{n}/*")],
        ),
        Kind::AutoScalingGroup => (
            vec!["autoscaling:UpdateAutoScalingGroup"],
            vec![format!(
                "arn:aws:autoscaling:{r}:{a}:autoScalingGroup:*:autoScalingGroupName/{n}"
            )],
        ),
        Kind::EcsService => (
            vec!["ecs:UpdateService"],
            vec![format!("arn:aws:ecs:{r}:{a}:service/{n}")],
        ),
        Kind::Instance => (
            vec![
                "ec2:StopInstances",
                "ec2:StartInstances",
                "ec2:TerminateInstances",
            ],
            vec![format!("arn:aws:ec2:{r}:{a}:instance/{n}")],
        ),
        Kind::DbInstance => (
            vec![
                "rds:DeleteDBInstance",
                "rds:CreateDBSnapshot",
                "rds:RestoreDBInstanceFromDBSnapshot",
            ],
            vec![
                format!("arn:aws:rds:{r}:{a}:db:{n}"),
                format!("arn:aws:rds:{r}:{a}:snapshot:airlock-final-{n}-*"),
            ],
        ),
        Kind::Table => (
            vec![
                "dynamodb:CreateBackup",
                "dynamodb:DeleteTable",
                "dynamodb:RestoreTableFromBackup",
            ],
            vec![
                format!("arn:aws:dynamodb:{r}:{a}:table/{n}"),
                format!("arn:aws:dynamodb:{r}:{a}:table/{n}/backup/*"),
            ],
        ),
        Kind::Bucket => (
            vec!["s3:DeleteObject", "s3:DeleteBucket"],
            vec![format!("arn:aws:s3:::{n}"), format!("arn:aws:s3:::{n}/*")],
        ),
        Kind::Role => (
            vec!["iam:AttachRolePolicy", "iam:DetachRolePolicy"],
            vec![format!("arn:aws:iam::{a}:role/{n}")],
        ),
        Kind::User => (
            vec!["iam:AttachUserPolicy", "iam:DetachUserPolicy"],
            vec![format!("arn:aws:iam::{a}:user/{n}")],
        ),
    }
}

/// The session policy of a change to `targets`. A stack's resources are changed by
/// CloudFormation with the caller's session: the session may call any action, but only
/// through CloudFormation (`aws:CalledVia`), whose own actions are limited to the stack.
pub(crate) fn session_policy(targets: &[Target], account: &str) -> Value {
    let mut statements = vec![json!({
        "Sid": "ReadBack",
        "Effect": "Allow",
        "Action": READS,
        "Resource": "*",
    })];
    for (i, t) in targets.iter().enumerate() {
        let (actions, resources) = grants(t, account);
        statements.push(json!({
            "Sid": format!("Change{i}"),
            "Effect": "Allow",
            "Action": actions,
            "Resource": resources,
        }));
        if t.kind == Kind::Stack {
            statements.push(json!({
                "Sid": format!("ThroughCloudFormation{i}"),
                "Effect": "Allow",
                "Action": "*",
                "Resource": "*",
                "Condition": {"ForAnyValue:StringEquals": {"aws:CalledVia": ["cloudformation.amazonaws.com"]}},
            }));
        }
    }
    json!({"Version": "2012-10-17", "Statement": statements})
}

impl AwsProvider {
    /// Runs `work` in a session scoped to `targets`, when `scoped_sessions` is on.
    pub(crate) async fn scoped<F, T>(
        &self,
        targets: &[Target],
        label: &str,
        work: F,
    ) -> Result<T, ProviderError>
    where
        F: std::future::Future<Output = Result<T, ProviderError>>,
    {
        let (Some(role), true) = (
            &self.settings.connection.role_arn,
            self.settings.scoped_sessions,
        ) else {
            return work.await;
        };
        let Some(first) = targets.first() else {
            return work.await;
        };
        let sts = aws_sdk_sts::Client::new(&self.root);
        let who = sts
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| sdk_err("GetCallerIdentity", e))?;
        let account = who.account().unwrap_or("*");
        let policy = session_policy(targets, account);
        let out = sts
            .assume_role()
            .role_arn(role)
            .role_session_name(format!(
                "airlock-{}",
                label.chars().take(40).collect::<String>()
            ))
            .policy(policy.to_string())
            .duration_seconds(900)
            .send()
            .await
            .map_err(|e| sdk_err("AssumeRole", e))?;
        let c = out
            .credentials()
            .ok_or_else(|| ProviderError::Refused("AssumeRole returned no credentials".into()))?;
        let creds = aws_credential_types::Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_string()),
            None,
            "airlock-scoped-session",
        );
        let region = if first.kind.global() {
            self.settings.connection.region.clone()
        } else {
            first.region.clone()
        };
        let cfg = self
            .base
            .to_builder()
            .credentials_provider(
                aws_credential_types::provider::SharedCredentialsProvider::new(creds),
            )
            .region(Region::new(region.clone()))
            .build();
        tracing::debug!(role = %role, policy = %policy, "a session scoped to the change");
        SCOPED
            .scope((region.clone(), Clients::new(&cfg, &region)), work)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Target {
        Target::parse(&s.parse().unwrap_or_else(|e| panic!("{e}")))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_session_may_change_only_the_plans_resources() {
        let p = session_policy(&[t("aws:autoscaling-group/eu-west-1/web")], "123456789012");
        let change = &p["Statement"][1];
        assert_eq!(
            change["Action"],
            json!(["autoscaling:UpdateAutoScalingGroup"])
        );
        assert_eq!(
            change["Resource"],
            json!([
                "arn:aws:autoscaling:eu-west-1:123456789012:autoScalingGroup:*:autoScalingGroupName/web"
            ])
        );
        assert_eq!(p["Statement"].as_array().map(Vec::len), Some(2));
        // Reads are allowed everywhere; nothing else is.
        assert!(
            p["Statement"][0]["Action"]
                .as_array()
                .is_some_and(|a| a.iter().all(|x| {
                    let x = x.as_str().unwrap_or_default();
                    x.contains(":Describe") || x.contains(":List") || x.contains(":Get")
                }))
        );

        let s = session_policy(&[t("aws:stack/us-east-1/billing-prod")], "123456789012");
        assert_eq!(
            s["Statement"][1]["Resource"],
            json!(["arn:aws:cloudformation:us-east-1:123456789012:stack/billing-prod/*"])
        );
        assert_eq!(
            s["Statement"][2]["Condition"]["ForAnyValue:StringEquals"]["aws:CalledVia"],
            json!(["cloudformation.amazonaws.com"])
        );
        let d = session_policy(&[t("aws:db-instance/us-east-1/orders")], "1");
        assert!(d.to_string().contains("snapshot:airlock-final-orders-*"));
    }
}
