//! The sandbox cloud as the `sim` provider: plan (dry run), snapshot, apply, restore.
//!
//! Every verb's plan is a set of per-service desired states (before → after); apply and
//! restore only move services between desired states, so an undo is the same mechanism
//! as a change, and conflicts are a comparison of desired states.

use crate::spec::ServiceSpec;
use crate::world::{Desired, Sim};
use airlock_core::slo::{Counters, Sample, SignalSource};
use airlock_core::{
    ActionRequest, Applied, Blast, Contained, Diff, Landing, Plan, Predicted, Provider,
    ProviderError, ResourceAddr, ResourceAttrs, Restored, Snapshot, Verb, VerbSpec,
};
use async_trait::async_trait;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};

/// Shared access to a world.
pub type SimHandle = Arc<Mutex<Sim>>;

/// Window over which the recent p95 demand is taken for headroom predictions.
pub const HEADROOM_WINDOW_S: i64 = 1800;
/// How far ahead the planner looks for demand: the same hours of the previous days, from
/// now to this many seconds ahead, count as expected demand.
pub const FORECAST_HORIZON_S: i64 = 3 * 3600;

/// The `sim` provider over a shared world.
pub struct SimProvider {
    sim: SimHandle,
    verbs: Vec<VerbSpec>,
}

fn verb_specs() -> Vec<VerbSpec> {
    let obj = |props: Value, required: &[&str]| json!({"type": "object", "properties": props, "required": required, "additionalProperties": false});
    vec![
        VerbSpec {
            verb: Verb::Read,
            params: obj(json!({}), &[]),
            destructive: false,
            read_only: true,
            description: "describe a service or an environment",
        },
        VerbSpec {
            verb: Verb::Scale,
            params: obj(
                json!({"replicas": {"type": "integer", "minimum": 0}, "az": {"type": "string"}}),
                &["replicas"],
            ),
            destructive: false,
            read_only: false,
            description: "set a service's replicas, in total or in one zone",
        },
        VerbSpec {
            verb: Verb::Deploy,
            params: obj(json!({"version": {"type": "string"}}), &["version"]),
            destructive: false,
            read_only: false,
            description: "roll a service to a config version",
        },
        VerbSpec {
            verb: Verb::Restart,
            params: obj(json!({}), &[]),
            destructive: false,
            read_only: false,
            description: "restart every replica of a service (they come back cold)",
        },
        VerbSpec {
            verb: Verb::Delete,
            params: obj(json!({}), &[]),
            destructive: true,
            read_only: false,
            description: "delete a service or a whole environment",
        },
        VerbSpec {
            verb: Verb::Create,
            params: obj(
                json!({"spec": {"type": "object"}, "services": {"type": "array"}}),
                &[],
            ),
            destructive: false,
            read_only: false,
            description: "create a service or environment from its declared spec (or a given one); it starts cold",
        },
    ]
}

impl SimProvider {
    /// A provider over `sim`.
    pub fn new(sim: SimHandle) -> Self {
        Self {
            sim,
            verbs: verb_specs(),
        }
    }
    /// The shared world.
    pub fn handle(&self) -> SimHandle {
        self.sim.clone()
    }
    /// Applies a plan now (what `Provider::apply` does, without awaiting).
    pub fn apply_now(&self, plan: &Plan) -> Result<Applied, ProviderError> {
        self.lock()?.apply_plan(plan)
    }
    /// Restores a snapshot now (what `Provider::restore` does, without awaiting).
    pub fn restore_now(
        &self,
        snap: &Snapshot,
        expect: &Applied,
    ) -> Result<Restored, ProviderError> {
        self.lock()?.restore_snapshot(snap, expect)
    }
    fn lock(&self) -> Result<MutexGuard<'_, Sim>, ProviderError> {
        self.sim
            .lock()
            .map_err(|_| ProviderError::Unavailable("the simulator's state is poisoned".into()))
    }
}

fn addr(service: &str) -> Result<ResourceAddr, ProviderError> {
    ResourceAddr::new("sim", "service", service)
        .map_err(|e| ProviderError::InvalidParams(e.to_string()))
}

fn to_json(d: &Desired) -> Option<Value> {
    if d.exists {
        serde_json::to_value(d).ok()
    } else {
        None
    }
}

fn from_json(v: &Option<Value>) -> Result<Desired, ProviderError> {
    match v {
        None => Ok(Desired {
            exists: false,
            version: String::new(),
            replicas: Default::default(),
            generation: 0,
        }),
        Some(v) => serde_json::from_value(v.clone())
            .map_err(|e| ProviderError::InvalidParams(format!("bad state: {e}"))),
    }
}

/// Zone facts of one service before (`b`) and after (`a`) a change: headroom against the
/// `expected` demand (the coming hours), the largest zone's share, and the headroom left
/// after losing the worst zone, before and after, against the `recent` demand: a zone's
/// loss is an event of now, and the fleet can grow again within its cold start.
fn zone_facts(
    b: Option<&Desired>,
    a: Option<&Desired>,
    per: f64,
    cap_after: f64,
    expected: Option<f64>,
    recent: Option<f64>,
) -> Predicted {
    let zones = |d: Option<&Desired>| -> std::collections::BTreeMap<String, f64> {
        d.filter(|d| d.exists)
            .map(|d| {
                d.replicas
                    .iter()
                    .map(|(z, n)| (z.clone(), f64::from(*n) * per))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (zb, za) = (zones(b), zones(a));
    let worst_loss = |z: &std::collections::BTreeMap<String, f64>| {
        let total: f64 = z.values().sum();
        total - z.values().copied().fold(0.0, f64::max)
    };
    // Zone facts mean something only for a service spread over more than one zone.
    let multi_zone = za.len().max(zb.len()) > 1;
    let total_after: f64 = za.values().sum();
    Predicted {
        headroom: expected.map(|d| cap_after / d),
        expected_demand_rps: expected,
        max_az_share: (multi_zone && total_after > 0.0)
            .then(|| za.values().copied().fold(0.0, f64::max) / total_after),
        headroom_after_az_loss: recent.filter(|_| multi_zone).map(|d| worst_loss(&za) / d),
        headroom_after_az_loss_before: recent
            .filter(|_| multi_zone && !zb.is_empty())
            .map(|d| worst_loss(&zb) / d),
        az_capacity_rps: za,
    }
}

fn same(a: &Desired, b: &Desired) -> bool {
    (!a.exists && !b.exists) || a == b
}

fn param_u32(req: &ActionRequest, key: &str) -> Result<Option<u32>, ProviderError> {
    match req.params.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| {
                ProviderError::InvalidParams(format!(
                    "`{key}` must be a non-negative integer, got `{v}`"
                ))
            }),
    }
}

fn param_str<'a>(req: &'a ActionRequest, key: &str) -> Result<Option<&'a str>, ProviderError> {
    match req.params.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(v) => Err(ProviderError::InvalidParams(format!(
            "`{key}` must be a string, got `{v}`"
        ))),
    }
}

fn check_params(req: &ActionRequest, allowed: &[&str]) -> Result<(), ProviderError> {
    for k in req.params.keys() {
        if !allowed.contains(&k.as_str()) {
            return Err(ProviderError::InvalidParams(format!(
                "unknown parameter `{k}` for `{}`; expected: {}",
                req.verb,
                if allowed.is_empty() {
                    "none".to_string()
                } else {
                    allowed.join(", ")
                }
            )));
        }
    }
    Ok(())
}

impl Sim {
    /// The dry run of a request against the current world. Changes nothing.
    pub fn plan(&self, req: &ActionRequest) -> Result<Plan, ProviderError> {
        let t = &req.target;
        if t.provider() != "sim" || req.provider != "sim" {
            return Err(ProviderError::Unsupported {
                provider: "sim".into(),
                verb: req.verb.to_string(),
                target: t.to_string(),
            });
        }
        let unsupported = || ProviderError::Unsupported {
            provider: "sim".into(),
            verb: req.verb.to_string(),
            target: t.to_string(),
        };
        let is_env = match t.kind() {
            "service" => false,
            "environment" => true,
            _ => return Err(ProviderError::NotFound(t.to_string())),
        };
        let members: Vec<String> = if is_env {
            let m = self.environment(t.name());
            if m.is_empty() && req.verb != Verb::Create {
                return Err(ProviderError::NotFound(t.to_string()));
            }
            m
        } else {
            if self.service_spec(t.name()).is_none()
                && !(req.verb == Verb::Create && req.params.contains_key("spec"))
            {
                return Err(ProviderError::NotFound(t.to_string()));
            }
            vec![t.name().to_string()]
        };
        let mut new_specs: Vec<ServiceSpec> = Vec::new();
        let mut changes: Vec<(String, Desired, Desired)> = Vec::new();
        let mut rollback = false;
        let mut reversible = true;
        let before = |name: &str| {
            self.desired(name).unwrap_or(Desired {
                exists: false,
                version: String::new(),
                replicas: Default::default(),
                generation: 0,
            })
        };
        match req.verb {
            Verb::Read => check_params(req, &[])?,
            Verb::Scale => {
                check_params(req, &["replicas", "az"])?;
                if is_env {
                    return Err(unsupported());
                }
                let name = t.name();
                let b = before(name);
                if !b.exists {
                    return Err(ProviderError::Conflict {
                        addr: t.to_string(),
                        detail: "the service does not exist".into(),
                    });
                }
                let replicas = param_u32(req, "replicas")?
                    .ok_or_else(|| ProviderError::InvalidParams("`replicas` is required".into()))?;
                if replicas > 1000 {
                    return Err(ProviderError::InvalidParams(format!(
                        "`replicas` {replicas} is above the limit of 1000"
                    )));
                }
                let mut a = b.clone();
                match param_str(req, "az")? {
                    Some(az) => {
                        if !self.zones_of_service(name).iter().any(|z| z == az) {
                            return Err(ProviderError::InvalidParams(format!(
                                "unknown zone `{az}` for `{name}`"
                            )));
                        }
                        a.replicas.insert(az.to_string(), replicas);
                    }
                    None => a.replicas = self.spread(name, replicas),
                }
                changes.push((name.to_string(), b, a));
            }
            Verb::Deploy => {
                check_params(req, &["version"])?;
                if is_env {
                    return Err(unsupported());
                }
                let name = t.name();
                let version = param_str(req, "version")?
                    .ok_or_else(|| ProviderError::InvalidParams("`version` is required".into()))?;
                if version.is_empty() || version.len() > 64 {
                    return Err(ProviderError::InvalidParams(
                        "`version` must be 1 to 64 characters".into(),
                    ));
                }
                let b = before(name);
                if !b.exists {
                    return Err(ProviderError::Conflict {
                        addr: t.to_string(),
                        detail: "the service does not exist".into(),
                    });
                }
                rollback = self.ran_before(name, version);
                let mut a = b.clone();
                a.version = version.to_string();
                changes.push((name.to_string(), b, a));
            }
            Verb::Restart => {
                check_params(req, &[])?;
                if is_env {
                    return Err(unsupported());
                }
                let b = before(t.name());
                let mut a = b.clone();
                a.generation += 1;
                reversible = false;
                changes.push((t.name().to_string(), b, a));
            }
            Verb::Delete => {
                check_params(req, &[])?;
                for m in &members {
                    let b = before(m);
                    if b.exists {
                        let a = Desired {
                            exists: false,
                            ..b.clone()
                        };
                        changes.push((m.clone(), b, a));
                    }
                }
            }
            Verb::Create => {
                check_params(req, &["spec", "services"])?;
                if let Some(spec) = req.params.get("spec") {
                    let spec: ServiceSpec = serde_json::from_value(spec.clone())
                        .map_err(|e| ProviderError::InvalidParams(format!("`spec`: {e}")))?;
                    if is_env || spec.name != t.name() {
                        return Err(ProviderError::InvalidParams(
                            "`spec.name` must match the target service".into(),
                        ));
                    }
                    new_specs.push(spec);
                }
                if let Some(list) = req.params.get("services") {
                    let list: Vec<ServiceSpec> = serde_json::from_value(list.clone())
                        .map_err(|e| ProviderError::InvalidParams(format!("`services`: {e}")))?;
                    if !is_env || list.iter().any(|s| s.env != t.name()) {
                        return Err(ProviderError::InvalidParams(
                            "`services` must all belong to the target environment".into(),
                        ));
                    }
                    new_specs.extend(list);
                }
                let mut names: BTreeSet<String> = members.iter().cloned().collect();
                names.extend(new_specs.iter().map(|s| s.name.clone()));
                for m in names {
                    let b = before(&m);
                    if b.exists {
                        if !is_env {
                            return Err(ProviderError::Conflict {
                                addr: t.to_string(),
                                detail: "the service already exists".into(),
                            });
                        }
                        continue;
                    }
                    let Some(spec) = new_specs
                        .iter()
                        .find(|s| s.name == m)
                        .or_else(|| self.service_spec(&m))
                    else {
                        continue;
                    };
                    let zones = self
                        .spec()
                        .regions
                        .iter()
                        .find(|r| r.name == spec.region)
                        .map(|r| r.azs.clone())
                        .ok_or_else(|| {
                            ProviderError::InvalidParams(format!(
                                "unknown region `{}`",
                                spec.region
                            ))
                        })?;
                    let n = zones.len().max(1) as u32;
                    let replicas = zones
                        .iter()
                        .enumerate()
                        .map(|(i, z)| {
                            (
                                z.clone(),
                                spec.replicas / n + u32::from((i as u32) < spec.replicas % n),
                            )
                        })
                        .collect();
                    let a = Desired {
                        exists: true,
                        version: spec.version.clone(),
                        replicas,
                        generation: b.generation,
                    };
                    changes.push((m, b, a));
                }
            }
            Verb::Update | Verb::Exec => return Err(unsupported()),
        }
        let changed: BTreeSet<String> = changes
            .iter()
            .filter(|(_, b, a)| !same(b, a))
            .map(|(n, _, _)| n.clone())
            .collect();
        let diffs = changes
            .iter()
            .map(|(n, b, a)| {
                Ok(Diff {
                    addr: addr(n)?,
                    before: to_json(b),
                    after: to_json(a),
                })
            })
            .collect::<Result<Vec<_>, ProviderError>>()?;
        let (mut cap_before, mut cap_after) = (0.0, 0.0);
        let mut regions = BTreeSet::new();
        for (n, b, a) in &changes {
            let per = self
                .service_spec(n)
                .map(|s| s.capacity_rps)
                .or_else(|| {
                    new_specs
                        .iter()
                        .find(|s| &s.name == n)
                        .map(|s| s.capacity_rps)
                })
                .unwrap_or(0.0);
            cap_before += b.total() as f64 * per;
            cap_after += if a.generation != b.generation {
                0.0
            } else {
                a.total() as f64 * per
            };
            if let Some(s) = self.service_spec(n).filter(|_| changed.contains(n)) {
                regions.insert(s.region.clone());
            }
        }
        let capacity_delta_pct = if req.verb == Verb::Create {
            0.0
        } else if cap_before > 0.0 {
            (cap_after - cap_before) / cap_before * 100.0
        } else if cap_after > 0.0 {
            100.0
        } else {
            0.0
        };
        let dependents: BTreeSet<String> = changed
            .iter()
            .flat_map(|s| self.dependents(s))
            .filter(|d| !changed.contains(d))
            .collect();
        let live_dependents = if req.verb == Verb::Delete {
            dependents.len() as u32
        } else {
            members
                .iter()
                .flat_map(|s| self.dependents(s))
                .filter(|d| !members.contains(d))
                .collect::<BTreeSet<_>>()
                .len() as u32
        };
        let mut watch: BTreeSet<String> = changed.clone();
        watch.extend(self.downstream(&changed));
        let capacity_change = matches!(req.verb, Verb::Scale | Verb::Delete | Verb::Restart);
        let predicted = if capacity_change && !is_env {
            let expected = self
                .expected_demand(t.name(), HEADROOM_WINDOW_S, FORECAST_HORIZON_S)
                .filter(|d| *d > 0.0);
            let (b, a) = changes
                .iter()
                .find(|(n, _, _)| n == t.name())
                .map(|(_, b, a)| (b.clone(), a.clone()))
                .unzip();
            let per = self.service_spec(t.name()).map_or(0.0, |s| s.capacity_rps);
            let recent = self
                .recent_p95_demand(t.name(), HEADROOM_WINDOW_S)
                .filter(|d| *d > 0.0);
            zone_facts(b.as_ref(), a.as_ref(), per, cap_after, expected, recent)
        } else {
            Predicted::default()
        };
        let (env, tier, region, tags) = if is_env {
            let crit = members.iter().any(|m| {
                self.service_spec(m)
                    .is_some_and(|s| s.tier == crate::Tier::Critical)
            });
            let regs: BTreeSet<String> = members
                .iter()
                .filter_map(|m| self.service_spec(m).map(|s| s.region.clone()))
                .collect();
            (
                t.name().to_string(),
                if crit { "critical" } else { "standard" },
                if regs.len() == 1 {
                    regs.into_iter().next().unwrap_or_default()
                } else {
                    "multi".into()
                },
                vec![],
            )
        } else {
            let s = self.service_spec(t.name()).or_else(|| new_specs.first());
            (
                s.map(|s| s.env.clone()).unwrap_or_default(),
                s.map_or("standard", |s| s.tier.as_str()),
                s.map(|s| s.region.clone()).unwrap_or_default(),
                s.map(|s| s.tags.clone()).unwrap_or_default(),
            )
        };
        // An environment reaches its services: each is decided as if targeted directly.
        let contained = if is_env {
            changes
                .iter()
                .filter(|(n, _, _)| changed.contains(n))
                .map(|(n, b, a)| {
                    let spec = self
                        .service_spec(n)
                        .or_else(|| new_specs.iter().find(|s| &s.name == n));
                    let dependents = self
                        .dependents(n)
                        .into_iter()
                        .filter(|d| !changed.contains(d))
                        .count() as u32;
                    let delta = if req.verb == Verb::Create {
                        0.0
                    } else if b.total() > 0 {
                        (f64::from(a.total()) - f64::from(b.total())) / f64::from(b.total()) * 100.0
                    } else {
                        0.0
                    };
                    Ok(Contained {
                        addr: addr(n)?,
                        resource: ResourceAttrs {
                            env: spec.map(|s| s.env.clone()).unwrap_or_default(),
                            kind: "service".into(),
                            tier: spec.map_or("standard", |s| s.tier.as_str()).to_string(),
                            region: spec.map(|s| s.region.clone()).unwrap_or_default(),
                            service: n.clone(),
                            tags: spec.map(|s| s.tags.clone()).unwrap_or_default(),
                            dependents,
                            parents: vec![t.to_string()],
                            workspace: false,
                        },
                        dependents,
                        capacity_delta_pct: delta,
                        loses_data: false,
                    })
                })
                .collect::<Result<Vec<_>, ProviderError>>()?
        } else {
            Vec::new()
        };
        let summary = match req.verb {
            Verb::Read => format!("describe {t}"),
            _ if changed.is_empty() => format!("{} {t}: no change", req.verb),
            _ => format!(
                "{} {t}: {} service(s) change, capacity {:+.0}%, {} live dependent(s)",
                req.verb,
                changed.len(),
                capacity_delta_pct,
                live_dependents
            ),
        };
        Ok(Plan {
            provider: "sim".into(),
            verb: req.verb,
            target: t.clone(),
            params: req.params.clone(),
            diffs,
            blast: Blast {
                resources: changed.len() as u32,
                regions: regions.len() as u32,
                dependents: live_dependents,
                capacity_delta_pct,
                watch: watch.into_iter().collect(),
                dependent_names: vec![],
            },
            predicted,
            resource: ResourceAttrs {
                parents: if is_env || env.is_empty() {
                    vec![]
                } else {
                    vec![format!("sim:environment/{env}")]
                },
                env,
                kind: t.kind().to_string(),
                tier: tier.to_string(),
                region,
                service: if is_env {
                    String::new()
                } else {
                    t.name().to_string()
                },
                tags,
                dependents: live_dependents,
                workspace: false,
            },
            contained,
            reversible,
            loses: vec![],
            destructive: req.verb == Verb::Delete,
            rollback,
            min_risk: None,
            summary,
            hash: String::new(),
        }
        .seal())
    }

    fn current_json(&self, a: &ResourceAddr) -> Result<Option<Value>, ProviderError> {
        match self.desired(a.name()) {
            Ok(d) => Ok(to_json(&d)),
            Err(_) => Ok(None),
        }
    }

    /// Applies a plan after checking that every resource is still as the plan saw it.
    pub fn apply_plan(&mut self, plan: &Plan) -> Result<Applied, ProviderError> {
        if plan.verb == Verb::Read {
            let obs = self.observe();
            let entries = if plan.target.kind() == "environment" {
                obs.services
                    .iter()
                    .filter(|s| *s.env == *plan.target.name())
                    .map(|s| Ok((addr(&s.name)?, serde_json::to_value(s).ok())))
                    .collect::<Result<Vec<_>, ProviderError>>()?
            } else {
                vec![(
                    plan.target.clone(),
                    obs.service(plan.target.name())
                        .and_then(|s| serde_json::to_value(s).ok()),
                )]
            };
            return Ok(Applied {
                provider: "sim".into(),
                entries,
            });
        }
        for d in &plan.diffs {
            let now = self.current_json(&d.addr)?;
            if !same(&from_json(&now)?, &from_json(&d.before)?) {
                return Err(ProviderError::Conflict {
                    addr: d.addr.to_string(),
                    detail: "the resource changed since the plan was made; plan again".into(),
                });
            }
        }
        for key in ["spec", "services"] {
            if let Some(v) = plan.params.get(key) {
                let specs: Vec<ServiceSpec> = if key == "spec" {
                    vec![
                        serde_json::from_value(v.clone())
                            .map_err(|e| ProviderError::InvalidParams(e.to_string()))?,
                    ]
                } else {
                    serde_json::from_value(v.clone())
                        .map_err(|e| ProviderError::InvalidParams(e.to_string()))?
                };
                for s in specs {
                    if self.service_spec(&s.name).is_none() {
                        self.add_service(s)
                            .map_err(|e| ProviderError::InvalidParams(e.to_string()))?;
                    }
                }
            }
        }
        let mut entries = Vec::new();
        for d in &plan.diffs {
            let want = from_json(&d.after)?;
            self.set_desired(d.addr.name(), &want)
                .map_err(|e| ProviderError::NotFound(e.to_string()))?;
            entries.push((d.addr.clone(), self.current_json(&d.addr)?));
        }
        Ok(Applied {
            provider: "sim".into(),
            entries,
        })
    }

    /// Puts a snapshot back, unless a resource moved on since `expect` (then nothing changes).
    pub fn restore_snapshot(
        &mut self,
        snap: &Snapshot,
        expect: &Applied,
    ) -> Result<Restored, ProviderError> {
        for (a, after) in &expect.entries {
            let now = self.current_json(a)?;
            if !same(&from_json(&now)?, &from_json(after)?) {
                return Err(ProviderError::Conflict {
                    addr: a.to_string(),
                    detail:
                        "the resource changed after this change was applied; not overwriting it"
                            .into(),
                });
            }
        }
        let mut entries = Vec::new();
        for (a, prior) in &snap.entries {
            let mut want = from_json(prior)?;
            // A restart cannot be undone; keep the current generation so the revert does not restart again.
            if let Ok(cur) = self.desired(a.name()) {
                want.generation = cur.generation;
            }
            self.set_desired(a.name(), &want)
                .map_err(|e| ProviderError::NotFound(e.to_string()))?;
            entries.push((a.clone(), self.current_json(a)?));
        }
        Ok(Restored {
            provider: "sim".into(),
            entries,
        })
    }

    /// Whether `plan` is in the world now: every target as the plan asked (`Landed`),
    /// every target as `before` recorded (`NotLanded`), or a mix (`Unknown`).
    pub fn landing_of_apply(
        &self,
        plan: &Plan,
        before: &Snapshot,
    ) -> Result<Landing, ProviderError> {
        if plan.verb == Verb::Read {
            return Ok(Landing::NotLanded);
        }
        let mut landed = 0;
        let mut untouched = 0;
        let mut entries = Vec::new();
        for d in &plan.diffs {
            let now = self.current_json(&d.addr)?;
            let cur = from_json(&now)?;
            let prior = before
                .entries
                .iter()
                .find(|(a, _)| *a == d.addr)
                .map_or(&d.before, |(_, v)| v);
            if same(&cur, &from_json(&d.after)?) {
                landed += 1;
            } else if same(&cur, &from_json(prior)?) {
                untouched += 1;
            }
            entries.push((d.addr.clone(), now));
        }
        let n = plan.diffs.len();
        Ok(if landed == n {
            Landing::Landed(entries)
        } else if untouched == n {
            Landing::NotLanded
        } else {
            Landing::Unknown(format!(
                "{landed} of {n} resources are as the change asked and {untouched} as before; the rest moved on"
            ))
        })
    }

    /// Whether restoring `snap` is in the world now: every resource as the snapshot
    /// recorded (`Landed`; a restart's generation cannot be undone, so it is not compared),
    /// every resource as the change left it (`NotLanded`), or neither (`Unknown`).
    pub fn landing_of_restore(
        &self,
        snap: &Snapshot,
        applied: &Applied,
    ) -> Result<Landing, ProviderError> {
        let mut restored = 0;
        let mut as_applied = 0;
        let mut entries = Vec::new();
        for (a, prior) in &snap.entries {
            let now = self.current_json(a)?;
            let cur = from_json(&now)?;
            let mut want = from_json(prior)?;
            want.generation = cur.generation;
            if same(&cur, &want) {
                restored += 1;
            }
            let after = applied.entries.iter().find(|(b, _)| b == a).map(|(_, v)| v);
            if let Some(after) = after
                && same(&cur, &from_json(after)?)
            {
                as_applied += 1;
            }
            entries.push((a.clone(), now));
        }
        let n = snap.entries.len();
        Ok(if restored == n {
            Landing::Landed(entries)
        } else if as_applied == n {
            Landing::NotLanded
        } else {
            Landing::Unknown(format!(
                "{restored} of {n} resources are as before the change and {as_applied} as the change left them; the rest moved on"
            ))
        })
    }

    /// The prior state of `targets`.
    pub fn snapshot_of(&self, targets: &[ResourceAddr]) -> Result<Snapshot, ProviderError> {
        let entries = targets
            .iter()
            .map(|a| Ok((a.clone(), self.current_json(a)?)))
            .collect::<Result<_, ProviderError>>()?;
        Ok(Snapshot {
            provider: "sim".into(),
            entries,
        })
    }
}

#[async_trait]
impl Provider for SimProvider {
    fn name(&self) -> &str {
        "sim"
    }
    fn verbs(&self) -> &[VerbSpec] {
        &self.verbs
    }
    /// Every sandbox resource is watched by its service's signals, by name.
    fn signal_key(&self, addr: &ResourceAddr) -> Option<String> {
        Some(addr.name().to_string())
    }
    async fn plan(&self, req: &ActionRequest) -> Result<Plan, ProviderError> {
        self.lock()?.plan(req)
    }
    async fn capacity(&self, addr: &ResourceAddr) -> Result<Option<(f64, f64)>, ProviderError> {
        let sim = self.lock()?;
        if addr.kind() != "service" {
            return Ok(None);
        }
        let Some(spec) = sim.service_spec(addr.name()) else {
            return Ok(None);
        };
        let capacity =
            f64::from(sim.desired(addr.name()).map_or(0, |d| d.total())) * spec.capacity_rps;
        Ok(sim
            .expected_demand(addr.name(), HEADROOM_WINDOW_S, FORECAST_HORIZON_S)
            .map(|expected| (capacity, expected)))
    }
    async fn snapshot(&self, targets: &[ResourceAddr]) -> Result<Snapshot, ProviderError> {
        self.lock()?.snapshot_of(targets)
    }
    async fn apply(&self, plan: &Plan) -> Result<Applied, ProviderError> {
        self.lock()?.apply_plan(plan)
    }
    async fn restore(&self, snap: &Snapshot, expect: &Applied) -> Result<Restored, ProviderError> {
        self.lock()?.restore_snapshot(snap, expect)
    }
    async fn reconcile_apply(
        &self,
        plan: &Plan,
        before: &Snapshot,
    ) -> Result<Landing, ProviderError> {
        self.lock()?.landing_of_apply(plan, before)
    }
    async fn reconcile_restore(
        &self,
        snap: &Snapshot,
        applied: &Applied,
    ) -> Result<Landing, ProviderError> {
        self.lock()?.landing_of_restore(snap, applied)
    }
}

#[async_trait]
impl SignalSource for SimProvider {
    async fn read(&self, service: &str) -> Result<Option<Counters>, String> {
        let sim = self
            .sim
            .lock()
            .map_err(|_| "the simulator's state is poisoned".to_string())?;
        Ok(sim.counters(service))
    }
    async fn recent(&self, service: &str, window_s: u64) -> Result<Option<Sample>, String> {
        let sim = self
            .sim
            .lock()
            .map_err(|_| "the simulator's state is poisoned".to_string())?;
        Ok(sim.recent_sample(service, window_s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::*;

    fn world() -> Sim {
        let spec = crate::testing::world()
            .region("r", ["a", "b"])
            .service("db", |s| s.tier(Tier::Critical).peak_hour(0.0))
            .service("web", |s| {
                s.tier(Tier::Critical).depends_on(["db"]).peak_hour(0.0)
            })
            .build();
        let mut sim = Sim::new(spec, 1, 0, 10).unwrap();
        for _ in 0..10 {
            sim.tick();
        }
        sim
    }

    fn req(verb: Verb, target: &str) -> ActionRequest {
        ActionRequest::new(verb, target.parse().unwrap())
    }

    #[test]
    fn plan_changes_nothing_and_apply_then_restore_round_trips() {
        let mut sim = world();
        let before = sim.desired("web").unwrap();
        let plan = sim
            .plan(&req(Verb::Scale, "sim:service/web").param("replicas", 2))
            .unwrap();
        assert_eq!(sim.desired("web").unwrap(), before);
        assert_eq!(plan.blast.capacity_delta_pct, -50.0);
        assert!((plan.predicted.headroom.unwrap() - 2.0).abs() < 1e-9);
        let targets: Vec<_> = plan.diffs.iter().map(|d| d.addr.clone()).collect();
        let snap = sim.snapshot_of(&targets).unwrap();
        let applied = sim.apply_plan(&plan).unwrap();
        assert_eq!(sim.desired("web").unwrap().total(), 2);
        sim.restore_snapshot(&snap, &applied).unwrap();
        assert_eq!(sim.desired("web").unwrap(), before);
    }

    #[test]
    fn delete_counts_live_dependents_and_env_delete_takes_all() {
        let sim = world();
        let p = sim.plan(&req(Verb::Delete, "sim:service/db")).unwrap();
        assert_eq!(p.blast.dependents, 1);
        assert!(p.destructive);
        assert_eq!(p.blast.watch, vec!["db".to_string(), "web".to_string()]);
        let p = sim
            .plan(&req(Verb::Delete, "sim:environment/prod"))
            .unwrap();
        assert_eq!(p.blast.resources, 2);
        assert_eq!(p.blast.dependents, 0);
        assert_eq!(p.resource.tier, "critical");
    }

    #[test]
    fn plans_predict_zone_capacity_and_list_what_an_environment_contains() {
        let spec = crate::testing::world()
            .region("r", ["a", "b", "c"])
            .service("web", |s| s.tier(Tier::Critical).replicas(6).rps(300.0))
            .build();
        let mut sim = Sim::new(spec, 1, 0, 10).unwrap();
        for _ in 0..10 {
            sim.tick();
        }
        // 2+2+2 replicas of 100 rps for 300 rps: a zone's loss leaves 400, headroom 1.33.
        let up = sim
            .plan(
                &req(Verb::Scale, "sim:service/web")
                    .param("replicas", 4)
                    .param("az", "a"),
            )
            .unwrap();
        let p = &up.predicted;
        assert_eq!(p.az_capacity_rps["a"], 400.0);
        assert!((p.max_az_share.unwrap() - 0.5).abs() < 1e-9);
        assert!((p.headroom_after_az_loss_before.unwrap() - 400.0 / 300.0).abs() < 1e-9);
        // Losing `a` now leaves 400 as before: not worse.
        assert!((p.headroom_after_az_loss.unwrap() - 400.0 / 300.0).abs() < 1e-9);
        sim.apply_plan(&up).unwrap();
        let down = sim
            .plan(
                &req(Verb::Scale, "sim:service/web")
                    .param("replicas", 0)
                    .param("az", "b"),
            )
            .unwrap();
        // 4+0+2: capacity 600 for 300 rps, but losing `a` leaves 200.
        assert!((down.predicted.headroom.unwrap() - 2.0).abs() < 1e-9);
        assert!((down.predicted.headroom_after_az_loss.unwrap() - 200.0 / 300.0).abs() < 1e-9);
        assert_eq!(
            down.resource.parents,
            vec!["sim:environment/prod".to_string()]
        );

        let env = world()
            .plan(&req(Verb::Delete, "sim:environment/prod"))
            .unwrap();
        let names: Vec<String> = env.contained.iter().map(|c| c.addr.to_string()).collect();
        assert_eq!(names, vec!["sim:service/db", "sim:service/web"]);
        let db = &env.contained[0];
        assert_eq!((db.dependents, db.capacity_delta_pct), (0, -100.0));
        assert_eq!(
            db.resource.parents,
            vec!["sim:environment/prod".to_string()]
        );
        assert_eq!(db.resource.tier, "critical");
    }

    #[test]
    fn restore_refuses_when_the_world_moved_on() {
        let mut sim = world();
        let plan = sim
            .plan(&req(Verb::Deploy, "sim:service/web").param("version", "v2"))
            .unwrap();
        let snap = sim.snapshot_of(std::slice::from_ref(&plan.target)).unwrap();
        let applied = sim.apply_plan(&plan).unwrap();
        let other = sim
            .plan(&req(Verb::Scale, "sim:service/web").param("replicas", 6))
            .unwrap();
        sim.apply_plan(&other).unwrap();
        let err = sim.restore_snapshot(&snap, &applied).unwrap_err();
        assert!(matches!(err, ProviderError::Conflict { .. }), "{err}");
        assert_eq!(sim.desired("web").unwrap().version, "v2");
        // Applying a stale plan is refused too.
        assert!(matches!(
            sim.apply_plan(&plan),
            Err(ProviderError::Conflict { .. })
        ));
    }

    #[test]
    fn bad_requests_are_clear_errors() {
        let sim = world();
        assert!(matches!(
            sim.plan(&req(Verb::Scale, "sim:service/nope").param("replicas", 1)),
            Err(ProviderError::NotFound(_))
        ));
        let e = sim
            .plan(&req(Verb::Scale, "sim:service/web").param("replicas", "many"))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid parameters: `replicas` must be a non-negative integer, got `\"many\"`"
        );
        let e = sim
            .plan(
                &req(Verb::Scale, "sim:service/web")
                    .param("replicas", 1)
                    .param("force", true),
            )
            .unwrap_err();
        assert!(e.to_string().contains("unknown parameter `force`"), "{e}");
        assert!(matches!(
            sim.plan(&req(Verb::Exec, "sim:service/web")),
            Err(ProviderError::Unsupported { .. })
        ));
    }

    #[test]
    fn delete_then_recreate_environment_starts_cold() {
        let mut sim = world();
        let del = sim
            .plan(&req(Verb::Delete, "sim:environment/prod"))
            .unwrap();
        sim.apply_plan(&del).unwrap();
        sim.tick();
        assert_eq!(sim.critical_summary().0, 0.0);
        let create = sim
            .plan(&req(Verb::Create, "sim:environment/prod"))
            .unwrap();
        assert_eq!(create.blast.resources, 2);
        sim.apply_plan(&create).unwrap();
        sim.tick();
        assert_eq!(sim.critical_summary().0, 0.0);
        for _ in 0..4 {
            sim.tick();
        }
        assert_eq!(sim.critical_summary().0, 1.0);
    }
}
