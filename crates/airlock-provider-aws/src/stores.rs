//! EC2 instances (stop, start, terminate) and the resources that hold data: RDS instances,
//! DynamoDB tables and S3 buckets.
//!
//! Deleting data is irreversible unless a backup is taken as part of the action: a
//! database's final snapshot (`final_snapshot: true`), a table's backup (`backup: true`).
//! With one, the delete's after-state names the backup, and a revert restores from it;
//! without one, the plan lists what is lost and the default pack refuses it in prod.

use crate::clients::{Clients, sdk_err};
use crate::provider::{
    AwsProvider, Draft, check_params, env_of, param_bool, param_str, tag_list, tier_of,
};
use crate::target::{Kind, Target, resolve};
use airlock_core::ProviderError;
use airlock_core::action::{ActionRequest, Verb};
use airlock_core::plan::{Diff, Plan, ResourceAttrs};
use serde_json::{Value, json};
use std::collections::BTreeMap;

fn attrs(p: &AwsProvider, t: &Target, tags: &BTreeMap<String, String>) -> ResourceAttrs {
    ResourceAttrs {
        env: env_of(tags, &p.settings.default_env),
        tier: tier_of(tags),
        service: t.name.clone(),
        tags: tag_list(tags),
        ..ResourceAttrs::default()
    }
}

fn deleted_with(key: &str, id: &str) -> Value {
    json!({"deleted": true, key: id})
}

/// An EC2 instance as plans see it.
struct Ec2 {
    id: String,
    /// `running` or `stopped` (a transition counts as where it is going).
    state: String,
    tags: BTreeMap<String, String>,
    /// EBS volumes deleted with the instance.
    volumes: Vec<String>,
}

impl AwsProvider {
    async fn ec2(&self, c: &Clients, id: &str) -> Result<Option<Ec2>, ProviderError> {
        let out = match c.ec2.describe_instances().instance_ids(id).send().await {
            Ok(o) => o,
            Err(e) => match sdk_err("DescribeInstances", e) {
                ProviderError::NotFound(_) => return Ok(None),
                other => return Err(other),
            },
        };
        let Some(i) = out.reservations().iter().flat_map(|r| r.instances()).next() else {
            return Ok(None);
        };
        let state = match i.state().and_then(|s| s.name()).map(|n| n.as_str()) {
            Some("running" | "pending") => "running",
            Some("stopped" | "stopping") => "stopped",
            _ => return Ok(None),
        };
        Ok(Some(Ec2 {
            id: i.instance_id().unwrap_or(id).to_string(),
            state: state.to_string(),
            tags: i
                .tags()
                .iter()
                .map(|t| {
                    (
                        t.key().unwrap_or_default().to_string(),
                        t.value().unwrap_or_default().to_string(),
                    )
                })
                .collect(),
            volumes: i
                .block_device_mappings()
                .iter()
                .filter_map(|b| b.ebs())
                .filter(|e| e.delete_on_termination().unwrap_or(false))
                .filter_map(|e| e.volume_id().map(str::to_string))
                .collect(),
        }))
    }

    pub(crate) async fn instance_state(&self, t: &Target) -> Result<Option<Value>, ProviderError> {
        let c = self.clients(&t.region);
        Ok(self
            .ec2(&c, &t.name)
            .await?
            .map(|i| json!({"state": i.state})))
    }

    pub(crate) async fn instance_plan(
        &self,
        req: &ActionRequest,
        t: &Target,
    ) -> Result<Draft, ProviderError> {
        let c = self.clients(&t.region);
        let i = self
            .ec2(&c, &t.name)
            .await?
            .ok_or_else(|| ProviderError::NotFound(req.target.to_string()))?;
        let before = json!({"state": i.state});
        let after = if req.verb == Verb::Delete {
            check_params(req, &[])?;
            None
        } else {
            check_params(req, &["state"])?;
            match param_str(req, "state")? {
                Some(s @ ("stopped" | "running")) => Some(json!({"state": s})),
                other => {
                    return Err(ProviderError::InvalidParams(format!(
                        "`state` must be `stopped` or `running`, got {other:?}"
                    )));
                }
            }
        };
        let mut resource = attrs(self, t, &i.tags);
        // An instance in an Auto Scaling group is capacity of that group.
        let group = i.tags.get("aws:autoscaling:groupName").cloned();
        let serving_now = i.state == "running";
        let serving_after = after.as_ref().is_some_and(|a| a["state"] == "running");
        let mut watch = Vec::new();
        let mut delta = match (serving_now, serving_after) {
            (true, false) => -100.0,
            (false, true) => 100.0,
            _ => 0.0,
        };
        if let Some(g) = &group {
            let key = airlock_core::addr::addr_name(g);
            resource.parents = vec![format!(
                "{}:autoscaling-group/{}/{key}",
                self.provider_name(),
                t.region
            )];
            resource.service = key.clone();
            let members = self
                .asg_state(&Target {
                    kind: crate::target::Kind::AutoScalingGroup,
                    region: t.region.clone(),
                    name: key.clone(),
                })
                .await?;
            let n = members
                .as_ref()
                .and_then(|m| m["desired"].as_u64())
                .unwrap_or(1)
                .max(1);
            delta /= n as f64;
            watch.push(key);
        }
        let terminate = req.verb == Verb::Delete;
        let loses = if terminate && group.is_none() && !i.volumes.is_empty() {
            vec![format!(
                "instance {} and the volumes deleted with it ({})",
                i.id,
                i.volumes.join(", ")
            )]
        } else {
            vec![]
        };
        let summary = match (&after, &group) {
            (None, Some(g)) => format!(
                "terminate instance {} (a member of autoscaling group {g}, which replaces it unless its desired capacity is lowered)",
                i.id
            ),
            (None, None) => format!(
                "terminate instance {}{}",
                i.id,
                if loses.is_empty() {
                    String::new()
                } else {
                    format!("; irreversible: {}", loses.join("; "))
                }
            ),
            (Some(a), _) => format!(
                "{} instance {}",
                if a["state"] == "running" {
                    "start"
                } else {
                    "stop"
                },
                i.id
            ),
        };
        Ok(Draft {
            diffs: vec![Diff {
                addr: req.target.clone(),
                before: Some(before),
                after,
            }],
            resource,
            capacity_delta_pct: delta,
            watch,
            reversible: !terminate,
            destructive: terminate,
            loses,
            summary,
            ..Draft::default()
        })
    }

    async fn wait_instance(
        &self,
        c: &Clients,
        id: &str,
        want: Option<&str>,
    ) -> Result<(), ProviderError> {
        let mut polls = self.polls();
        loop {
            let out = c
                .ec2
                .describe_instances()
                .instance_ids(id)
                .send()
                .await
                .map_err(|e| sdk_err("DescribeInstances", e))?;
            let now = out
                .reservations()
                .iter()
                .flat_map(|r| r.instances())
                .next()
                .and_then(|i| {
                    i.state()
                        .and_then(|s| s.name())
                        .map(|n| n.as_str().to_string())
                });
            let done = match want {
                None => now.is_none() || now.as_deref() == Some("terminated"),
                Some(w) => now.as_deref() == Some(w),
            };
            if done {
                return Ok(());
            }
            if polls == 0 {
                return Err(ProviderError::Unavailable(format!(
                    "instance {id} is {now:?} after {} s",
                    self.settings.wait_s
                )));
            }
            polls -= 1;
            self.pause().await;
        }
    }

    async fn instance_set(&self, t: &Target, want: &Option<Value>) -> Result<(), ProviderError> {
        let c = self.clients(&t.region);
        let id = t.name.as_str();
        match want.as_ref().and_then(|w| w["state"].as_str()) {
            None => {
                c.ec2
                    .terminate_instances()
                    .instance_ids(id)
                    .send()
                    .await
                    .map_err(|e| sdk_err("TerminateInstances", e))?;
                self.wait_instance(&c, id, None).await
            }
            Some("stopped") => {
                c.ec2
                    .stop_instances()
                    .instance_ids(id)
                    .send()
                    .await
                    .map_err(|e| sdk_err("StopInstances", e))?;
                self.wait_instance(&c, id, Some("stopped")).await
            }
            Some(_) => {
                c.ec2
                    .start_instances()
                    .instance_ids(id)
                    .send()
                    .await
                    .map_err(|e| sdk_err("StartInstances", e))?;
                self.wait_instance(&c, id, Some("running")).await
            }
        }
    }

    pub(crate) async fn instance_apply(
        &self,
        plan: &Plan,
        t: &Target,
    ) -> Result<(), ProviderError> {
        let want = plan.diffs.first().and_then(|d| d.after.clone());
        self.instance_set(t, &want).await
    }

    pub(crate) async fn instance_put_back(
        &self,
        t: &Target,
        prior: &Option<Value>,
        now: &Option<Value>,
    ) -> Result<(), ProviderError> {
        if now.is_none() {
            return Err(ProviderError::Unsupported {
                provider: self.provider_name().to_string(),
                verb: "restore".into(),
                target: format!(
                    "instance {} (terminated instances cannot be brought back)",
                    t.name
                ),
            });
        }
        self.instance_set(t, prior).await
    }

    // --- RDS -------------------------------------------------------------------------

    async fn db(
        &self,
        c: &Clients,
        id: &str,
    ) -> Result<Option<aws_sdk_rds::types::DbInstance>, ProviderError> {
        match c
            .rds
            .describe_db_instances()
            .db_instance_identifier(id)
            .send()
            .await
        {
            Ok(o) => Ok(o.db_instances().first().cloned()),
            Err(e) => match sdk_err("DescribeDBInstances", e) {
                ProviderError::NotFound(_) => Ok(None),
                other => Err(other),
            },
        }
    }

    /// The newest final snapshot Airlock took of database `id`.
    async fn final_snapshot(&self, c: &Clients, id: &str) -> Result<Option<String>, ProviderError> {
        let out = c
            .rds
            .describe_db_snapshots()
            .db_instance_identifier(id)
            .snapshot_type("manual")
            .send()
            .await
            .map_err(|e| sdk_err("DescribeDBSnapshots", e))?;
        let prefix = format!("airlock-final-{id}-");
        Ok(out
            .db_snapshots()
            .iter()
            .filter_map(|s| s.db_snapshot_identifier())
            .filter(|s| s.starts_with(&prefix))
            .max()
            .map(str::to_string))
    }

    pub(crate) async fn db_state(&self, t: &Target) -> Result<Option<Value>, ProviderError> {
        let c = self.clients(&t.region);
        match self.db(&c, &t.name).await? {
            Some(d) => Ok(Some(json!({
                "class": d.db_instance_class().unwrap_or_default(),
                "engine": d.engine().unwrap_or_default(),
                "storage_gb": d.allocated_storage().unwrap_or(0),
            }))),
            None => Ok(self
                .final_snapshot(&c, &t.name)
                .await?
                .map(|s| deleted_with("final_snapshot", &s))),
        }
    }

    pub(crate) async fn db_plan(
        &self,
        req: &ActionRequest,
        t: &Target,
    ) -> Result<Draft, ProviderError> {
        check_params(req, &["final_snapshot"])?;
        let c = self.clients(&t.region);
        let d = self
            .db(&c, &t.name)
            .await?
            .ok_or_else(|| ProviderError::NotFound(req.target.to_string()))?;
        let before = self.db_state(t).await?;
        let keep = param_bool(req, "final_snapshot")?;
        // Named after the instance's creation, so planning twice names the same snapshot
        // and a database restored from it gets a new one next time.
        let created = d.instance_create_time().map_or(0, |t| t.secs());
        let snapshot = format!("airlock-final-{}-{created}", t.name);
        let tags: BTreeMap<String, String> = d
            .tag_list()
            .iter()
            .map(|t| {
                (
                    t.key().unwrap_or_default().to_string(),
                    t.value().unwrap_or_default().to_string(),
                )
            })
            .collect();
        let what = format!(
            "database {} ({}, {} GiB)",
            t.name,
            d.engine().unwrap_or("unknown engine"),
            d.allocated_storage().unwrap_or(0)
        );
        let loses = if keep {
            vec![]
        } else {
            vec![format!("the data of {what}: no final snapshot")]
        };
        Ok(Draft {
            diffs: vec![Diff {
                addr: req.target.clone(),
                before,
                after: keep.then(|| deleted_with("final_snapshot", &snapshot)),
            }],
            resource: attrs(self, t, &tags),
            capacity_delta_pct: -100.0,
            watch: vec![t.name.clone()],
            reversible: keep,
            destructive: true,
            summary: if keep {
                format!("delete {what}, keeping final snapshot {snapshot} to restore from")
            } else {
                format!("delete {what} without a final snapshot; irreversible")
            },
            loses,
            ..Draft::default()
        })
    }

    async fn wait_db(&self, c: &Clients, id: &str, gone: bool) -> Result<(), ProviderError> {
        let mut polls = self.polls();
        loop {
            let d = self.db(c, id).await?;
            let done = match &d {
                None => gone,
                Some(d) => !gone && d.db_instance_status() == Some("available"),
            };
            if done {
                return Ok(());
            }
            if polls == 0 {
                return Err(ProviderError::Unavailable(format!(
                    "database {id} not settled after {} s",
                    self.settings.wait_s
                )));
            }
            polls -= 1;
            self.pause().await;
        }
    }

    pub(crate) async fn db_apply(&self, plan: &Plan, t: &Target) -> Result<(), ProviderError> {
        let c = self.clients(&t.region);
        let snapshot = plan
            .diffs
            .first()
            .and_then(|d| d.after.as_ref())
            .and_then(|a| a["final_snapshot"].as_str())
            .map(str::to_string);
        c.rds
            .delete_db_instance()
            .db_instance_identifier(&t.name)
            .skip_final_snapshot(snapshot.is_none())
            .set_final_db_snapshot_identifier(snapshot)
            .send()
            .await
            .map_err(|e| sdk_err("DeleteDBInstance", e))?;
        self.wait_db(&c, &t.name, true).await
    }

    pub(crate) async fn db_put_back(
        &self,
        t: &Target,
        prior: &Option<Value>,
        now: &Option<Value>,
    ) -> Result<(), ProviderError> {
        let (Some(prior), Some(snapshot)) = (
            prior,
            now.as_ref().and_then(|n| n["final_snapshot"].as_str()),
        ) else {
            return Err(ProviderError::Unsupported {
                provider: self.provider_name().to_string(),
                verb: "restore".into(),
                target: format!("database {} (no final snapshot to restore from)", t.name),
            });
        };
        let c = self.clients(&t.region);
        c.rds
            .restore_db_instance_from_db_snapshot()
            .db_instance_identifier(&t.name)
            .db_snapshot_identifier(snapshot)
            .db_instance_class(prior["class"].as_str().unwrap_or_default())
            .send()
            .await
            .map_err(|e| sdk_err("RestoreDBInstanceFromDBSnapshot", e))?;
        self.wait_db(&c, &t.name, false).await
    }

    // --- DynamoDB --------------------------------------------------------------------

    async fn table_name(&self, c: &Clients, wanted: &str) -> Result<Option<String>, ProviderError> {
        let names = self.names(c, Kind::Table).await?;
        resolve(wanted, names.iter().map(String::as_str), "table")
    }

    async fn table(
        &self,
        c: &Clients,
        wanted: &str,
    ) -> Result<Option<aws_sdk_dynamodb::types::TableDescription>, ProviderError> {
        let Some(name) = self.table_name(c, wanted).await? else {
            return Ok(None);
        };
        match c.ddb.describe_table().table_name(&name).send().await {
            Ok(o) => Ok(o.table().cloned()),
            Err(e) => match sdk_err("DescribeTable", e) {
                ProviderError::NotFound(_) => Ok(None),
                other => Err(other),
            },
        }
    }

    /// The newest backup Airlock took of table `name` before deleting it.
    async fn table_backup(
        &self,
        c: &Clients,
        name: &str,
    ) -> Result<Option<(String, String)>, ProviderError> {
        // Every backup, filtered here: the table's name may differ in case from the
        // address's, and the API's filter is exact.
        let mut found = Vec::new();
        let mut start: Option<String> = None;
        loop {
            let out = c
                .ddb
                .list_backups()
                .set_exclusive_start_backup_arn(start.take())
                .send()
                .await
                .map_err(|e| sdk_err("ListBackups", e))?;
            found.extend(out.backup_summaries().iter().filter_map(|b| {
                b.table_name()
                    .is_some_and(|t| t.eq_ignore_ascii_case(name))
                    .then(|| Some((b.backup_name()?.to_string(), b.backup_arn()?.to_string())))
                    .flatten()
            }));
            match out.last_evaluated_backup_arn() {
                Some(a) => start = Some(a.to_string()),
                None => break,
            }
        }
        let prefix = format!("airlock-{}-", airlock_core::addr::addr_name(name));
        Ok(found
            .into_iter()
            .filter(|(n, _)| n.starts_with(&prefix))
            .max())
    }

    pub(crate) async fn table_state(&self, t: &Target) -> Result<Option<Value>, ProviderError> {
        let c = self.clients(&t.region);
        match self.table(&c, &t.name).await? {
            Some(d) => {
                let keys: Vec<String> = d
                    .key_schema()
                    .iter()
                    .map(|k| format!("{} {}", k.attribute_name(), k.key_type().as_str()))
                    .collect();
                Ok(Some(
                    json!({"name": d.table_name().unwrap_or_default(), "keys": keys}),
                ))
            }
            None => Ok(self
                .table_backup(&c, &t.name)
                .await?
                .map(|(n, _)| deleted_with("backup", &n))),
        }
    }

    pub(crate) async fn table_plan(
        &self,
        req: &ActionRequest,
        t: &Target,
    ) -> Result<Draft, ProviderError> {
        check_params(req, &["backup"])?;
        let c = self.clients(&t.region);
        let d = self
            .table(&c, &t.name)
            .await?
            .ok_or_else(|| ProviderError::NotFound(req.target.to_string()))?;
        let before = self.table_state(t).await?;
        let keep = param_bool(req, "backup")?;
        let name = d.table_name().unwrap_or_default().to_string();
        let created = d.creation_date_time().map_or(0, |t| t.secs());
        let backup = format!("airlock-{}-{created}", airlock_core::addr::addr_name(&name));
        let mut tags = BTreeMap::new();
        if let Some(arn) = d.table_arn()
            && let Ok(out) = c.ddb.list_tags_of_resource().resource_arn(arn).send().await
        {
            tags = out
                .tags()
                .iter()
                .map(|t| (t.key().to_string(), t.value().to_string()))
                .collect();
        }
        let what = format!(
            "table {name} ({} item(s), {} bytes)",
            d.item_count().unwrap_or(0),
            d.table_size_bytes().unwrap_or(0)
        );
        let loses = if keep {
            vec![]
        } else {
            vec![format!("the items of {what}: no backup")]
        };
        Ok(Draft {
            diffs: vec![Diff {
                addr: req.target.clone(),
                before,
                after: keep.then(|| deleted_with("backup", &backup)),
            }],
            resource: attrs(self, t, &tags),
            reversible: keep,
            destructive: true,
            summary: if keep {
                format!("delete {what}, taking backup {backup} first to restore from")
            } else {
                format!("delete {what} without a backup; irreversible")
            },
            loses,
            ..Draft::default()
        })
    }

    async fn wait_table(&self, c: &Clients, name: &str, gone: bool) -> Result<(), ProviderError> {
        let mut polls = self.polls();
        loop {
            let d = self.table(c, name).await?;
            let done = match &d {
                None => gone,
                Some(d) => !gone && d.table_status().map(|s| s.as_str()) == Some("ACTIVE"),
            };
            if done {
                return Ok(());
            }
            if polls == 0 {
                return Err(ProviderError::Unavailable(format!(
                    "table {name} not settled after {} s",
                    self.settings.wait_s
                )));
            }
            polls -= 1;
            self.pause().await;
        }
    }

    pub(crate) async fn table_apply(&self, plan: &Plan, t: &Target) -> Result<(), ProviderError> {
        let c = self.clients(&t.region);
        let name = self
            .table_name(&c, &t.name)
            .await?
            .ok_or_else(|| ProviderError::NotFound(t.name.clone()))?;
        if let Some(backup) = plan
            .diffs
            .first()
            .and_then(|d| d.after.as_ref())
            .and_then(|a| a["backup"].as_str())
        {
            c.ddb
                .create_backup()
                .table_name(&name)
                .backup_name(backup)
                .send()
                .await
                .map_err(|e| sdk_err("CreateBackup", e))?;
        }
        c.ddb
            .delete_table()
            .table_name(&name)
            .send()
            .await
            .map_err(|e| sdk_err("DeleteTable", e))?;
        self.wait_table(&c, &name, true).await
    }

    pub(crate) async fn table_put_back(
        &self,
        t: &Target,
        prior: &Option<Value>,
        now: &Option<Value>,
    ) -> Result<(), ProviderError> {
        let c = self.clients(&t.region);
        let name = prior
            .as_ref()
            .and_then(|p| p["name"].as_str())
            .unwrap_or(&t.name)
            .to_string();
        let backup = match now.as_ref().and_then(|n| n["backup"].as_str()) {
            Some(_) => self.table_backup(&c, &name).await?,
            None => None,
        };
        let (Some(_), Some((_, arn))) = (prior, backup) else {
            return Err(ProviderError::Unsupported {
                provider: self.provider_name().to_string(),
                verb: "restore".into(),
                target: format!("table {} (no backup to restore from)", t.name),
            });
        };
        c.ddb
            .restore_table_from_backup()
            .target_table_name(&name)
            .backup_arn(arn)
            .send()
            .await
            .map_err(|e| sdk_err("RestoreTableFromBackup", e))?;
        self.wait_table(&c, &name, false).await
    }

    // --- S3 --------------------------------------------------------------------------

    /// The bucket's objects: their keys (up to `limit`), count and bytes.
    async fn objects(
        &self,
        c: &Clients,
        bucket: &str,
        limit: usize,
    ) -> Result<Option<(Vec<String>, u64, u64)>, ProviderError> {
        let mut keys = Vec::new();
        let (mut count, mut bytes) = (0_u64, 0_u64);
        let mut token: Option<String> = None;
        loop {
            let out = match c
                .s3
                .list_objects_v2()
                .bucket(bucket)
                .set_continuation_token(token.take())
                .send()
                .await
            {
                Ok(o) => o,
                Err(e) => match sdk_err("ListObjectsV2", e) {
                    ProviderError::NotFound(_) => return Ok(None),
                    other => return Err(other),
                },
            };
            for o in out.contents() {
                count += 1;
                bytes += o.size().and_then(|s| u64::try_from(s).ok()).unwrap_or(0);
                if keys.len() < limit
                    && let Some(k) = o.key()
                {
                    keys.push(k.to_string());
                }
            }
            match out.next_continuation_token() {
                Some(t) if out.is_truncated() == Some(true) => token = Some(t.to_string()),
                _ => return Ok(Some((keys, count, bytes))),
            }
        }
    }

    pub(crate) async fn bucket_state(&self, t: &Target) -> Result<Option<Value>, ProviderError> {
        let c = self.clients(&t.region);
        Ok(self
            .objects(&c, &t.name, 0)
            .await?
            .map(|(_, n, b)| json!({"objects": n, "bytes": b})))
    }

    pub(crate) async fn bucket_plan(
        &self,
        req: &ActionRequest,
        t: &Target,
    ) -> Result<Draft, ProviderError> {
        check_params(req, &["contents_only"])?;
        let c = self.clients(&t.region);
        let (_, n, b) = self
            .objects(&c, &t.name, 0)
            .await?
            .ok_or_else(|| ProviderError::NotFound(req.target.to_string()))?;
        let empty_only = param_bool(req, "contents_only")?;
        let mut tags = BTreeMap::new();
        if let Ok(out) = c.s3.get_bucket_tagging().bucket(&t.name).send().await {
            tags = out
                .tag_set()
                .iter()
                .map(|t| (t.key().to_string(), t.value().to_string()))
                .collect();
        }
        let loses = if n > 0 {
            vec![format!("{n} object(s), {b} bytes, in bucket {}", t.name)]
        } else {
            vec![]
        };
        Ok(Draft {
            diffs: vec![Diff {
                addr: req.target.clone(),
                before: Some(json!({"objects": n, "bytes": b})),
                after: empty_only.then(|| json!({"objects": 0, "bytes": 0})),
            }],
            resource: attrs(self, t, &tags),
            reversible: false,
            destructive: true,
            summary: format!(
                "{} bucket {}: {n} object(s), {b} bytes; irreversible",
                if empty_only { "empty" } else { "delete" },
                t.name
            ),
            loses,
            ..Draft::default()
        })
    }

    pub(crate) async fn bucket_apply(&self, plan: &Plan, t: &Target) -> Result<(), ProviderError> {
        let c = self.clients(&t.region);
        loop {
            let Some((keys, _, _)) = self.objects(&c, &t.name, 1000).await? else {
                return Err(ProviderError::NotFound(t.name.clone()));
            };
            if keys.is_empty() {
                break;
            }
            let ids: Vec<aws_sdk_s3::types::ObjectIdentifier> = keys
                .iter()
                .filter_map(|k| {
                    aws_sdk_s3::types::ObjectIdentifier::builder()
                        .key(k)
                        .build()
                        .ok()
                })
                .collect();
            let delete = aws_sdk_s3::types::Delete::builder()
                .set_objects(Some(ids))
                .build()
                .map_err(|e| ProviderError::InvalidParams(e.to_string()))?;
            c.s3.delete_objects()
                .bucket(&t.name)
                .delete(delete)
                .send()
                .await
                .map_err(|e| sdk_err("DeleteObjects", e))?;
        }
        if plan.diffs.first().is_some_and(|d| d.after.is_none()) {
            c.s3.delete_bucket()
                .bucket(&t.name)
                .send()
                .await
                .map_err(|e| sdk_err("DeleteBucket", e))?;
        }
        Ok(())
    }
}
