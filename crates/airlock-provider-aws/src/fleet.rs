//! Serving fleets: Auto Scaling groups (desired capacity, min, max) and ECS services
//! (desired count, task definition). Plans predict capacity per zone and headroom from
//! CloudWatch, so the zone and headroom policies apply to real fleets.

use crate::clients::{Clients, sdk_err};
use crate::metrics::{predict, spread};
use crate::provider::{
    AwsProvider, Draft, check_params, env_of, param_str, param_u64, tag_list, tier_of,
};
use crate::target::{Kind, Target, resolve};
use airlock_core::ProviderError;
use airlock_core::action::{ActionRequest, Verb};
use airlock_core::plan::{Diff, Plan, ResourceAttrs};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// An Auto Scaling group as plans see it.
struct Group {
    name: String,
    desired: u32,
    min: u32,
    max: u32,
    /// In-service members per zone (every zone of the group, empty ones too).
    zones: BTreeMap<String, u32>,
    tags: BTreeMap<String, String>,
}

fn count(v: Option<i32>) -> u32 {
    v.and_then(|n| u32::try_from(n).ok()).unwrap_or(0)
}

fn to_i32(n: u64, key: &str) -> Result<i32, ProviderError> {
    i32::try_from(n).map_err(|_| ProviderError::InvalidParams(format!("`{key}` is too large")))
}

impl AwsProvider {
    async fn group(&self, c: &Clients, wanted: &str) -> Result<Option<Group>, ProviderError> {
        let by_name = |name: String| {
            c.asg
                .describe_auto_scaling_groups()
                .auto_scaling_group_names(name)
                .send()
        };
        let mut out = by_name(wanted.to_string())
            .await
            .map_err(|e| sdk_err("DescribeAutoScalingGroups", e))?;
        if out.auto_scaling_groups().is_empty() {
            let names = self.names(c, Kind::AutoScalingGroup).await?;
            let Some(real) = resolve(
                wanted,
                names.iter().map(String::as_str),
                "Auto Scaling group",
            )?
            else {
                return Ok(None);
            };
            out = by_name(real)
                .await
                .map_err(|e| sdk_err("DescribeAutoScalingGroups", e))?;
        }
        let Some(g) = out.auto_scaling_groups().first() else {
            return Ok(None);
        };
        let mut zones: BTreeMap<String, u32> = g
            .availability_zones()
            .iter()
            .map(|z| (z.clone(), 0))
            .collect();
        for i in g.instances() {
            if i.lifecycle_state().map(|s| s.as_str()) == Some("InService")
                && let Some(z) = i.availability_zone()
            {
                *zones.entry(z.to_string()).or_default() += 1;
            }
        }
        Ok(Some(Group {
            name: g.auto_scaling_group_name().unwrap_or_default().to_string(),
            desired: count(g.desired_capacity()),
            min: count(g.min_size()),
            max: count(g.max_size()),
            zones,
            tags: g
                .tags()
                .iter()
                .map(|t| {
                    (
                        t.key().unwrap_or_default().to_string(),
                        t.value().unwrap_or_default().to_string(),
                    )
                })
                .collect(),
        }))
    }

    pub(crate) async fn asg_state(&self, t: &Target) -> Result<Option<Value>, ProviderError> {
        let c = self.clients(&t.region);
        Ok(self
            .group(&c, &t.name)
            .await?
            .map(|g| json!({"desired": g.desired, "min": g.min, "max": g.max})))
    }

    fn fleet_attrs(&self, t: &Target, tags: &BTreeMap<String, String>) -> ResourceAttrs {
        ResourceAttrs {
            env: env_of(tags, &self.settings.default_env),
            tier: tier_of(tags),
            service: t.name.rsplit('/').next().unwrap_or(&t.name).to_string(),
            tags: tag_list(tags),
            parents: tags
                .get("aws:cloudformation:stack-name")
                .map(|s| {
                    vec![format!(
                        "{}:stack/{}/{}",
                        self.provider_name(),
                        t.region,
                        airlock_core::addr::addr_name(s)
                    )]
                })
                .unwrap_or_default(),
            ..ResourceAttrs::default()
        }
    }

    pub(crate) async fn asg_plan(
        &self,
        req: &ActionRequest,
        t: &Target,
    ) -> Result<Draft, ProviderError> {
        check_params(req, &["desired", "replicas", "min", "max"])?;
        let c = self.clients(&t.region);
        let g = self
            .group(&c, &t.name)
            .await?
            .ok_or_else(|| ProviderError::NotFound(req.target.to_string()))?;
        let desired = match (param_u64(req, "desired")?, param_u64(req, "replicas")?) {
            (Some(a), Some(b)) if a != b => {
                return Err(ProviderError::InvalidParams(
                    "`desired` and `replicas` disagree; give one".into(),
                ));
            }
            (a, b) => a.or(b),
        };
        let min = param_u64(req, "min")?;
        let max = param_u64(req, "max")?;
        if desired.is_none() && min.is_none() && max.is_none() {
            return Err(ProviderError::InvalidParams(
                "scale needs `desired` (or `replicas`), `min` or `max`".into(),
            ));
        }
        let d = desired.map_or(Ok(g.desired as i32), |n| to_i32(n, "desired"))? as u32;
        let lo = min.map_or(Ok(g.min as i32), |n| to_i32(n, "min"))? as u32;
        let hi = max.map_or(Ok(g.max as i32), |n| to_i32(n, "max"))? as u32;
        if !(lo <= d && d <= hi) {
            return Err(ProviderError::InvalidParams(format!(
                "the group would have min {lo}, desired {d}, max {hi}: desired must lie between min and max"
            )));
        }
        let before = json!({"desired": g.desired, "min": g.min, "max": g.max});
        let after = json!({"desired": d, "min": lo, "max": hi});
        let now_total: u32 = g.zones.values().sum();
        let after_zones = spread(&g.zones, d);
        let demand = self
            .busiest(
                &c,
                "AWS/EC2",
                "CPUUtilization",
                &[("AutoScalingGroupName", &g.name)],
            )
            .await?
            .map(|cpu| cpu * f64::from(now_total.max(g.desired)));
        let predicted = predict(
            &g.zones,
            &after_zones,
            d,
            demand,
            self.settings.cpu_ceiling_pct,
        );
        let delta = if g.desired > 0 {
            (f64::from(d) - f64::from(g.desired)) / f64::from(g.desired) * 100.0
        } else if d > 0 {
            100.0
        } else {
            0.0
        };
        let per_zone: Vec<String> = after_zones
            .iter()
            .map(|(z, n)| format!("{z}: {n}"))
            .collect();
        let summary = format!(
            "scale autoscaling group {} from {} to {} (min {}, max {}); per zone after: {}{}",
            g.name,
            g.desired,
            d,
            lo,
            hi,
            if per_zone.is_empty() {
                "no zones".into()
            } else {
                per_zone.join(", ")
            },
            predicted.headroom.map_or_else(
                || "; headroom unknown (no CPU metrics in CloudWatch)".to_string(),
                |h| format!("; headroom {h:.2}")
            )
        );
        let key = t.name.clone();
        Ok(Draft {
            diffs: vec![Diff {
                addr: req.target.clone(),
                before: Some(before),
                after: Some(after),
            }],
            resource: self.fleet_attrs(t, &g.tags),
            predicted,
            capacity_delta_pct: delta,
            watch: vec![key],
            reversible: true,
            summary,
            ..Draft::default()
        })
    }

    pub(crate) async fn asg_apply(&self, plan: &Plan, t: &Target) -> Result<(), ProviderError> {
        let want = plan
            .diffs
            .first()
            .and_then(|d| d.after.clone())
            .unwrap_or(Value::Null);
        self.asg_set(t, &want).await
    }

    async fn asg_set(&self, t: &Target, want: &Value) -> Result<(), ProviderError> {
        let c = self.clients(&t.region);
        let g = self
            .group(&c, &t.name)
            .await?
            .ok_or_else(|| ProviderError::NotFound(t.name.clone()))?;
        let n = |k: &str| want[k].as_u64().map_or(Ok(0), |v| to_i32(v, k));
        c.asg
            .update_auto_scaling_group()
            .auto_scaling_group_name(&g.name)
            .min_size(n("min")?)
            .max_size(n("max")?)
            .desired_capacity(n("desired")?)
            .send()
            .await
            .map_err(|e| sdk_err("UpdateAutoScalingGroup", e))?;
        Ok(())
    }

    pub(crate) async fn asg_put_back(
        &self,
        t: &Target,
        prior: &Option<Value>,
    ) -> Result<(), ProviderError> {
        match prior {
            Some(p) => self.asg_set(t, p).await,
            None => Err(ProviderError::Unsupported {
                provider: self.provider_name().to_string(),
                verb: "restore".into(),
                target: format!("autoscaling group {} (it did not exist)", t.name),
            }),
        }
    }

    /// The real cluster and service names of `CLUSTER/SERVICE`, and the service.
    async fn service(
        &self,
        c: &Clients,
        wanted: &str,
    ) -> Result<Option<(String, aws_sdk_ecs::types::Service)>, ProviderError> {
        let (cluster, service) = wanted.split_once('/').unwrap_or(("default", wanted));
        let describe = |cl: String, sv: String| {
            c.ecs
                .describe_services()
                .cluster(cl)
                .services(sv)
                .include(aws_sdk_ecs::types::ServiceField::Tags)
                .send()
        };
        let live = |o: &aws_sdk_ecs::operation::describe_services::DescribeServicesOutput| {
            o.services()
                .iter()
                .find(|s| s.status() != Some("INACTIVE"))
                .cloned()
        };
        if let Ok(out) = describe(cluster.to_string(), service.to_string()).await
            && let Some(s) = live(&out)
        {
            return Ok(Some((cluster.to_string(), s)));
        }
        let names = self.names(c, Kind::EcsService).await?;
        let Some(real) = resolve(wanted, names.iter().map(String::as_str), "ECS service")? else {
            return Ok(None);
        };
        let (cl, sv) = real
            .split_once('/')
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .unwrap_or_default();
        let out = describe(cl.clone(), sv)
            .await
            .map_err(|e| sdk_err("DescribeServices", e))?;
        Ok(live(&out).map(|s| (cl, s)))
    }

    pub(crate) async fn ecs_state(&self, t: &Target) -> Result<Option<Value>, ProviderError> {
        let c = self.clients(&t.region);
        Ok(self.service(&c, &t.name).await?.map(|(_, s)| {
            json!({"desired": s.desired_count(), "task_definition": s.task_definition().unwrap_or_default()})
        }))
    }

    pub(crate) async fn ecs_plan(
        &self,
        req: &ActionRequest,
        t: &Target,
    ) -> Result<Draft, ProviderError> {
        let c = self.clients(&t.region);
        let (cluster, s) = self
            .service(&c, &t.name)
            .await?
            .ok_or_else(|| ProviderError::NotFound(req.target.to_string()))?;
        let name = s.service_name().unwrap_or_default().to_string();
        let desired_now = u32::try_from(s.desired_count()).unwrap_or(0);
        let td_now = s.task_definition().unwrap_or_default().to_string();
        let tags: BTreeMap<String, String> = s
            .tags()
            .iter()
            .map(|t| {
                (
                    t.key().unwrap_or_default().to_string(),
                    t.value().unwrap_or_default().to_string(),
                )
            })
            .collect();
        let (desired, td) = if req.verb == Verb::Scale {
            check_params(req, &["desired", "replicas"])?;
            let n = param_u64(req, "desired")?
                .or(param_u64(req, "replicas")?)
                .ok_or_else(|| {
                    ProviderError::InvalidParams("scale needs `desired` (or `replicas`)".into())
                })?;
            (to_i32(n, "desired")? as u32, td_now.clone())
        } else {
            check_params(req, &["task_definition"])?;
            let wanted = param_str(req, "task_definition")?.ok_or_else(|| {
                ProviderError::InvalidParams(
                    "deploy needs `task_definition` (family:revision or ARN)".into(),
                )
            })?;
            let out = c
                .ecs
                .describe_task_definition()
                .task_definition(wanted)
                .send()
                .await
                .map_err(|e| match sdk_err("DescribeTaskDefinition", e) {
                    // ECS answers a revision that does not exist with a client error.
                    ProviderError::Refused(why) => ProviderError::InvalidParams(format!(
                        "task definition `{wanted}` cannot be deployed: {why}"
                    )),
                    other => other,
                })?;
            let arn = out
                .task_definition()
                .and_then(|d| d.task_definition_arn())
                .ok_or_else(|| ProviderError::NotFound(format!("task definition {wanted}")))?;
            (desired_now, arn.to_string())
        };
        let before = json!({"desired": desired_now, "task_definition": td_now});
        let after = json!({"desired": desired, "task_definition": td});
        let running = u32::try_from(s.running_count()).unwrap_or(0);
        let demand = self
            .busiest(
                &c,
                "AWS/ECS",
                "CPUUtilization",
                &[("ClusterName", &cluster), ("ServiceName", &name)],
            )
            .await?
            .map(|cpu| cpu * f64::from(running.max(desired_now)));
        let one = |n: u32| BTreeMap::from([(String::new(), n)]);
        let predicted = predict(
            &one(desired_now),
            &one(desired),
            desired,
            demand,
            self.settings.cpu_ceiling_pct,
        );
        let delta = if desired_now > 0 {
            (f64::from(desired) - f64::from(desired_now)) / f64::from(desired_now) * 100.0
        } else if desired > 0 {
            100.0
        } else {
            0.0
        };
        let summary = if req.verb == Verb::Scale {
            format!("scale ECS service {cluster}/{name} from {desired_now} to {desired} task(s)")
        } else {
            format!("deploy ECS service {cluster}/{name}: {td_now} → {td}")
        };
        Ok(Draft {
            diffs: vec![Diff {
                addr: req.target.clone(),
                before: Some(before),
                after: Some(after),
            }],
            resource: self.fleet_attrs(t, &tags),
            predicted,
            capacity_delta_pct: delta,
            watch: vec![name],
            reversible: true,
            summary,
            ..Draft::default()
        })
    }

    async fn ecs_set(&self, t: &Target, want: &Value) -> Result<(), ProviderError> {
        let c = self.clients(&t.region);
        let (cluster, s) = self
            .service(&c, &t.name)
            .await?
            .ok_or_else(|| ProviderError::NotFound(t.name.clone()))?;
        let mut call = c
            .ecs
            .update_service()
            .cluster(cluster)
            .service(s.service_name().unwrap_or_default());
        if let Some(n) = want["desired"].as_u64() {
            call = call.desired_count(to_i32(n, "desired")?);
        }
        if let Some(td) = want["task_definition"].as_str()
            && Some(td) != s.task_definition()
        {
            call = call.task_definition(td);
        }
        call.send().await.map_err(|e| sdk_err("UpdateService", e))?;
        Ok(())
    }

    pub(crate) async fn ecs_apply(&self, plan: &Plan, t: &Target) -> Result<(), ProviderError> {
        let want = plan
            .diffs
            .first()
            .and_then(|d| d.after.clone())
            .unwrap_or(Value::Null);
        self.ecs_set(t, &want).await
    }

    pub(crate) async fn ecs_put_back(
        &self,
        t: &Target,
        prior: &Option<Value>,
    ) -> Result<(), ProviderError> {
        match prior {
            Some(p) => self.ecs_set(t, p).await,
            None => Err(ProviderError::Unsupported {
                provider: self.provider_name().to_string(),
                verb: "restore".into(),
                target: format!("ECS service {} (it did not exist)", t.name),
            }),
        }
    }
}
