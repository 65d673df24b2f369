//! Listing reads: `aws:KIND/REGION` names every resource of the kind in the region, by the
//! names their addresses take (lower case; an ECS service as `CLUSTER/SERVICE`).

use crate::clients::sdk_err;
use crate::provider::AwsProvider;
use crate::target::{Kind, Target};
use airlock_core::ProviderError;
use airlock_core::addr::addr_name;

impl AwsProvider {
    /// Every resource of `t.kind` in `t.region`, sorted.
    pub(crate) async fn list(&self, t: &Target) -> Result<Vec<String>, ProviderError> {
        let c = self.clients(&t.region);
        let mut names: Vec<String> = match t.kind {
            Kind::Stack => self.stack_names(&c).await?,
            Kind::AutoScalingGroup => {
                let mut out = Vec::new();
                let mut token = None;
                loop {
                    let page = c
                        .asg
                        .describe_auto_scaling_groups()
                        .set_next_token(token)
                        .send()
                        .await
                        .map_err(|e| sdk_err("DescribeAutoScalingGroups", e))?;
                    out.extend(
                        page.auto_scaling_groups()
                            .iter()
                            .filter_map(|g| g.auto_scaling_group_name().map(str::to_string)),
                    );
                    match page.next_token() {
                        Some(n) if !n.is_empty() => token = Some(n.to_string()),
                        _ => break out,
                    }
                }
            }
            Kind::EcsService => {
                let clusters = c
                    .ecs
                    .list_clusters()
                    .send()
                    .await
                    .map_err(|e| sdk_err("ListClusters", e))?;
                let mut out = Vec::new();
                for arn in clusters.cluster_arns() {
                    let cluster = arn.rsplit('/').next().unwrap_or(arn);
                    let services = c
                        .ecs
                        .list_services()
                        .cluster(cluster)
                        .send()
                        .await
                        .map_err(|e| sdk_err("ListServices", e))?;
                    out.extend(
                        services
                            .service_arns()
                            .iter()
                            .map(|s| format!("{}/{}", cluster, s.rsplit('/').next().unwrap_or(s))),
                    );
                }
                out
            }
            Kind::Instance => {
                let out = c
                    .ec2
                    .describe_instances()
                    .send()
                    .await
                    .map_err(|e| sdk_err("DescribeInstances", e))?;
                out.reservations()
                    .iter()
                    .flat_map(|r| r.instances())
                    .filter(|i| {
                        !matches!(
                            i.state().and_then(|s| s.name()).map(|n| n.as_str()),
                            Some("terminated" | "shutting-down")
                        )
                    })
                    .filter_map(|i| i.instance_id().map(str::to_string))
                    .collect()
            }
            Kind::DbInstance => {
                let out = c
                    .rds
                    .describe_db_instances()
                    .send()
                    .await
                    .map_err(|e| sdk_err("DescribeDBInstances", e))?;
                out.db_instances()
                    .iter()
                    .filter_map(|d| d.db_instance_identifier().map(str::to_string))
                    .collect()
            }
            Kind::Table => {
                let out = c
                    .ddb
                    .list_tables()
                    .send()
                    .await
                    .map_err(|e| sdk_err("ListTables", e))?;
                out.table_names().to_vec()
            }
            Kind::Bucket => {
                let out =
                    c.s3.list_buckets()
                        .send()
                        .await
                        .map_err(|e| sdk_err("ListBuckets", e))?;
                out.buckets()
                    .iter()
                    .filter_map(|b| b.name().map(str::to_string))
                    .collect()
            }
            Kind::Role => {
                let out = c
                    .iam
                    .list_roles()
                    .send()
                    .await
                    .map_err(|e| sdk_err("ListRoles", e))?;
                out.roles()
                    .iter()
                    .map(|r| r.role_name().to_string())
                    .collect()
            }
            Kind::User => {
                let out = c
                    .iam
                    .list_users()
                    .send()
                    .await
                    .map_err(|e| sdk_err("ListUsers", e))?;
                out.users()
                    .iter()
                    .map(|u| u.user_name().to_string())
                    .collect()
            }
        };
        names = names
            .iter()
            .map(|n| n.split('/').map(addr_name).collect::<Vec<_>>().join("/"))
            .collect();
        names.sort();
        Ok(names)
    }
}
