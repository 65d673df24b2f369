//! Listing reads: `aws:KIND/REGION` names every resource of the kind in the region, by the
//! names their addresses take (lower case; an ECS service as `CLUSTER/SERVICE`).

use crate::clients::{Clients, sdk_err};
use crate::provider::AwsProvider;
use crate::target::{Kind, Target};
use airlock_core::ProviderError;
use airlock_core::addr::addr_name;

impl AwsProvider {
    /// Every resource of `t.kind` in `t.region`, by address name, sorted.
    pub(crate) async fn list(&self, t: &Target) -> Result<Vec<String>, ProviderError> {
        let c = self.clients(&t.region);
        let mut names: Vec<String> = self
            .names(&c, t.kind)
            .await?
            .iter()
            .map(|n| n.split('/').map(addr_name).collect::<Vec<_>>().join("/"))
            .collect();
        names.sort();
        Ok(names)
    }

    /// Every resource of `kind` the clients' region holds, by its AWS name (an ECS service
    /// as `CLUSTER/SERVICE`), every page read: what a lower-case address name is resolved
    /// against.
    pub(crate) async fn names(
        &self,
        c: &Clients,
        kind: Kind,
    ) -> Result<Vec<String>, ProviderError> {
        Ok(match kind {
            Kind::Stack => self.stack_names(c).await?,
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
                let mut clusters = Vec::new();
                let mut token = None;
                loop {
                    let page = c
                        .ecs
                        .list_clusters()
                        .set_next_token(token)
                        .send()
                        .await
                        .map_err(|e| sdk_err("ListClusters", e))?;
                    clusters.extend(
                        page.cluster_arns()
                            .iter()
                            .map(|a| a.rsplit('/').next().unwrap_or(a).to_string()),
                    );
                    match page.next_token() {
                        Some(n) if !n.is_empty() => token = Some(n.to_string()),
                        _ => break,
                    }
                }
                let mut out = Vec::new();
                for cluster in clusters {
                    let mut token = None;
                    loop {
                        let page = c
                            .ecs
                            .list_services()
                            .cluster(&cluster)
                            .set_next_token(token)
                            .send()
                            .await
                            .map_err(|e| sdk_err("ListServices", e))?;
                        out.extend(
                            page.service_arns().iter().map(|s| {
                                format!("{cluster}/{}", s.rsplit('/').next().unwrap_or(s))
                            }),
                        );
                        match page.next_token() {
                            Some(n) if !n.is_empty() => token = Some(n.to_string()),
                            _ => break,
                        }
                    }
                }
                out
            }
            Kind::Instance => {
                let mut out = Vec::new();
                let mut token = None;
                loop {
                    let page = c
                        .ec2
                        .describe_instances()
                        .set_next_token(token)
                        .send()
                        .await
                        .map_err(|e| sdk_err("DescribeInstances", e))?;
                    out.extend(
                        page.reservations()
                            .iter()
                            .flat_map(|r| r.instances())
                            .filter(|i| {
                                !matches!(
                                    i.state().and_then(|s| s.name()).map(|n| n.as_str()),
                                    Some("terminated" | "shutting-down")
                                )
                            })
                            .filter_map(|i| i.instance_id().map(str::to_string)),
                    );
                    match page.next_token() {
                        Some(n) if !n.is_empty() => token = Some(n.to_string()),
                        _ => break out,
                    }
                }
            }
            Kind::DbInstance => {
                let mut out = Vec::new();
                let mut marker = None;
                loop {
                    let page = c
                        .rds
                        .describe_db_instances()
                        .set_marker(marker)
                        .send()
                        .await
                        .map_err(|e| sdk_err("DescribeDBInstances", e))?;
                    out.extend(
                        page.db_instances()
                            .iter()
                            .filter_map(|d| d.db_instance_identifier().map(str::to_string)),
                    );
                    match page.marker() {
                        Some(m) if !m.is_empty() => marker = Some(m.to_string()),
                        _ => break out,
                    }
                }
            }
            Kind::Table => {
                let mut out = Vec::new();
                let mut start = None;
                loop {
                    let page = c
                        .ddb
                        .list_tables()
                        .set_exclusive_start_table_name(start)
                        .send()
                        .await
                        .map_err(|e| sdk_err("ListTables", e))?;
                    out.extend(page.table_names().iter().cloned());
                    match page.last_evaluated_table_name() {
                        Some(n) => start = Some(n.to_string()),
                        None => break out,
                    }
                }
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
                let mut out = Vec::new();
                let mut marker = None;
                loop {
                    let page = c
                        .iam
                        .list_roles()
                        .set_marker(marker)
                        .send()
                        .await
                        .map_err(|e| sdk_err("ListRoles", e))?;
                    out.extend(page.roles().iter().map(|r| r.role_name().to_string()));
                    match page.marker() {
                        Some(m) if page.is_truncated() => marker = Some(m.to_string()),
                        _ => break out,
                    }
                }
            }
            Kind::User => {
                let mut out = Vec::new();
                let mut marker = None;
                loop {
                    let page = c
                        .iam
                        .list_users()
                        .set_marker(marker)
                        .send()
                        .await
                        .map_err(|e| sdk_err("ListUsers", e))?;
                    out.extend(page.users().iter().map(|u| u.user_name().to_string()));
                    match page.marker() {
                        Some(m) if page.is_truncated() => marker = Some(m.to_string()),
                        _ => break out,
                    }
                }
            }
        })
    }
}
