//! The provider: settings, the registry kind, and the parts every resource kind shares
//! (conflict checks before a mutation, read-back after it, reconciliation).

use crate::clients::{Clients, Connection, root_config, sdk_config};
use crate::target::{Kind, Target};
use airlock_core::ResourceAddr;
use airlock_core::action::{ActionRequest, Verb};
use airlock_core::plan::{
    Applied, Blast, Contained, Diff, Plan, Predicted, ResourceAttrs, Restored, Snapshot,
};
use airlock_core::provider::{Landing, Provider, ProviderError, VerbSpec};
use airlock_core::registry::{BuildContext, ProviderKind};
use airlock_core::risk::Risk;
use async_trait::async_trait;
use aws_config::SdkConfig;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// `[[provider]] kind = "aws"` settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub connection: Connection,
    /// The environment of a resource without an `env`/`environment` tag: `unknown` by
    /// default, which the default policy pack treats as prod.
    pub default_env: String,
    /// Longest a stack operation or a database restore is waited for, in seconds.
    pub wait_s: u64,
    /// How often a long operation is polled, in milliseconds.
    pub poll_ms: u64,
    /// How far back CloudWatch is read for a fleet's demand, in seconds.
    pub metrics_window_s: u64,
    /// The CPU utilisation, in percent, a fleet may run at: capacity is this per instance
    /// or task, demand is the busiest recent average times the count now.
    pub cpu_ceiling_pct: f64,
    /// Every apply and revert assumes `role_arn` again with a session policy allowing only
    /// the change's own actions on the plan's resources.
    pub scoped_sessions: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            connection: Connection {
                region: "us-east-1".into(),
                ..Connection::default()
            },
            default_env: "unknown".into(),
            wait_s: 900,
            poll_ms: 2000,
            metrics_window_s: 3600,
            cpu_ceiling_pct: 80.0,
            scoped_sessions: false,
        }
    }
}

const SETTINGS: &[&str] = &[
    "region",
    "profile",
    "role_arn",
    "endpoint_url",
    "default_env",
    "wait_s",
    "poll_ms",
    "metrics_window_s",
    "cpu_ceiling_pct",
    "scoped_sessions",
];

impl Settings {
    /// Problems with a table's settings, each naming its key.
    pub fn problems(settings: &Map<String, Value>) -> Vec<String> {
        let mut p = Vec::new();
        for (k, v) in settings {
            let ok = match k.as_str() {
                "region" | "profile" | "role_arn" | "endpoint_url" | "default_env" => {
                    v.as_str().is_some_and(|s| !s.trim().is_empty())
                }
                "wait_s" | "poll_ms" | "metrics_window_s" => v.as_u64().is_some_and(|n| n > 0),
                "cpu_ceiling_pct" => v.as_f64().is_some_and(|n| n > 0.0 && n <= 100.0),
                "scoped_sessions" => v.is_boolean(),
                other => {
                    p.push(format!(
                        "`{other}`: unknown setting; known: {}",
                        SETTINGS.join(", ")
                    ));
                    continue;
                }
            };
            if !ok {
                p.push(format!(
                    "{k}: {}",
                    match k.as_str() {
                        "cpu_ceiling_pct" => "must be a number above 0 and at most 100",
                        "scoped_sessions" => "must be true or false",
                        "wait_s" | "poll_ms" | "metrics_window_s" =>
                            "must be a whole number above 0",
                        _ => "must be a non-empty string",
                    }
                ));
            }
        }
        if settings.get("scoped_sessions") == Some(&Value::Bool(true))
            && !settings.contains_key("role_arn")
        {
            p.push(
                "scoped_sessions: needs `role_arn`, the role each change's session assumes".into(),
            );
        }
        if let Some(url) = settings.get("endpoint_url").and_then(Value::as_str)
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            p.push(format!("endpoint_url: `{url}` is not an http(s) URL"));
        }
        p
    }

    /// The settings of a checked table.
    pub fn from_table(settings: &Map<String, Value>) -> Self {
        let mut s = Self::default();
        let text = |k: &str| settings.get(k).and_then(Value::as_str).map(str::to_string);
        if let Some(r) = text("region") {
            s.connection.region = r;
        }
        s.connection.profile = text("profile");
        s.connection.role_arn = text("role_arn");
        s.connection.endpoint_url = text("endpoint_url");
        if let Some(e) = text("default_env") {
            s.default_env = e;
        }
        let num = |k: &str| settings.get(k).and_then(Value::as_u64);
        s.wait_s = num("wait_s").unwrap_or(s.wait_s);
        s.poll_ms = num("poll_ms").unwrap_or(s.poll_ms);
        s.metrics_window_s = num("metrics_window_s").unwrap_or(s.metrics_window_s);
        s.cpu_ceiling_pct = settings
            .get("cpu_ceiling_pct")
            .and_then(Value::as_f64)
            .unwrap_or(s.cpu_ceiling_pct);
        s.scoped_sessions = settings.get("scoped_sessions") == Some(&Value::Bool(true));
        s
    }
}

/// The registry's `aws` kind.
pub struct AwsKind;

#[async_trait]
impl ProviderKind for AwsKind {
    fn kind(&self) -> &'static str {
        "aws"
    }
    fn describe(&self) -> &'static str {
        "AWS through the official SDK: CloudFormation stacks, Auto Scaling groups, ECS services, EC2 instances, RDS, DynamoDB, S3 and IAM (docs/aws.md)"
    }
    fn check(&self, settings: &Map<String, Value>) -> Vec<String> {
        Settings::problems(settings)
    }
    async fn build(&self, ctx: BuildContext) -> Result<Arc<dyn Provider>, String> {
        let settings = Settings::from_table(&ctx.settings);
        Ok(Arc::new(AwsProvider::connect(&ctx.name, settings).await))
    }
    /// The provider and its hands-off twin `NAME-cli`, which the hook plans `aws` CLI
    /// commands with.
    async fn build_all(&self, ctx: BuildContext) -> Result<Vec<Arc<dyn Provider>>, String> {
        let settings = Settings::from_table(&ctx.settings);
        let aws = Arc::new(AwsProvider::connect(&ctx.name, settings).await);
        let mirror: Arc<dyn Provider> = Arc::new(crate::mirror::CliMirror::new(aws.clone()));
        Ok(vec![aws, mirror])
    }
}

/// The `aws` provider.
pub struct AwsProvider {
    name: String,
    pub(crate) settings: Settings,
    pub(crate) base: SdkConfig,
    /// Airlock's own credentials, before `role_arn`: scoped sessions assume from these.
    pub(crate) root: SdkConfig,
    clients: Mutex<BTreeMap<String, Clients>>,
    verbs: Vec<VerbSpec>,
}

/// What a kind's planner hands back; [`AwsProvider::finish`] makes it a plan.
#[derive(Debug, Default)]
pub(crate) struct Draft {
    pub diffs: Vec<Diff>,
    pub contained: Vec<Contained>,
    pub resource: ResourceAttrs,
    pub predicted: Predicted,
    pub capacity_delta_pct: f64,
    pub dependent_names: Vec<String>,
    pub watch: Vec<String>,
    pub reversible: bool,
    pub destructive: bool,
    pub loses: Vec<String>,
    pub min_risk: Option<Risk>,
    pub summary: String,
}

/// The environment a resource's tags name: `env`, `environment` or `stage` (any case),
/// with `production`/`prd` read as `prod` and `stage`/`stg` as `staging`.
pub(crate) fn env_of(tags: &BTreeMap<String, String>, default_env: &str) -> String {
    let v = tags.iter().find_map(|(k, v)| {
        matches!(
            k.to_ascii_lowercase().as_str(),
            "env" | "environment" | "stage"
        )
        .then(|| v.trim().to_ascii_lowercase())
    });
    match v.as_deref() {
        Some("prod" | "production" | "prd" | "live") => "prod".into(),
        Some("staging" | "stage" | "stg") => "staging".into(),
        Some("dev" | "development") => "dev".into(),
        Some(other) if !other.is_empty() => other.into(),
        _ => default_env.into(),
    }
}

/// The tier a resource's `tier` tag names, `standard` without one.
pub(crate) fn tier_of(tags: &BTreeMap<String, String>) -> String {
    tags.iter()
        .find_map(|(k, v)| {
            k.eq_ignore_ascii_case("tier")
                .then(|| v.to_ascii_lowercase())
        })
        .unwrap_or_else(|| "standard".into())
}

/// Tags as policies see them: `key=value`, lower case.
pub(crate) fn tag_list(tags: &BTreeMap<String, String>) -> Vec<String> {
    tags.iter()
        .map(|(k, v)| format!("{}={}", k.to_ascii_lowercase(), v.to_ascii_lowercase()))
        .collect()
}

pub(crate) fn param_u64(req: &ActionRequest, key: &str) -> Result<Option<u64>, ProviderError> {
    match req.params.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or_else(|| {
            ProviderError::InvalidParams(format!("`{key}` must be a whole number ≥ 0, got {v}"))
        }),
    }
}

pub(crate) fn param_str<'a>(
    req: &'a ActionRequest,
    key: &str,
) -> Result<Option<&'a str>, ProviderError> {
    match req.params.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.as_str())),
        Some(v) => Err(ProviderError::InvalidParams(format!(
            "`{key}` must be a non-empty string, got {v}"
        ))),
    }
}

pub(crate) fn param_bool(req: &ActionRequest, key: &str) -> Result<bool, ProviderError> {
    match req.params.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(v) => Err(ProviderError::InvalidParams(format!(
            "`{key}` must be true or false, got {v}"
        ))),
    }
}

/// Refuses parameters the verb does not take.
pub(crate) fn check_params(req: &ActionRequest, allowed: &[&str]) -> Result<(), ProviderError> {
    if let Some(k) = req.params.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(ProviderError::InvalidParams(format!(
            "`{k}` is not a parameter of `{}` on a {}; it takes {}",
            req.verb,
            req.target.kind(),
            if allowed.is_empty() {
                "none".to_string()
            } else {
                allowed.join(", ")
            }
        )));
    }
    Ok(())
}

pub(crate) fn unsupported(req: &ActionRequest) -> ProviderError {
    ProviderError::Unsupported {
        provider: req.provider.clone(),
        verb: req.verb.to_string(),
        target: req.target.to_string(),
    }
}

impl AwsProvider {
    /// Loads credentials and configuration (nothing is called yet: the first plan is the
    /// first request AWS sees).
    pub async fn connect(name: &str, settings: Settings) -> Self {
        let base = sdk_config(&settings.connection).await;
        let root = root_config(&settings.connection).await;
        Self {
            name: name.to_string(),
            settings,
            base,
            root,
            clients: Mutex::new(BTreeMap::new()),
            verbs: crate::provider::verb_specs(),
        }
    }

    /// The clients for `region` (IAM's `global` uses the configured region).
    pub(crate) fn clients(&self, region: &str) -> Clients {
        let region = if region == "global" {
            self.settings.connection.region.as_str()
        } else {
            region
        };
        // Inside a change's scoped session, its clients.
        if let Ok(Some(c)) =
            crate::scope::SCOPED.try_with(|(r, c)| (r == region).then(|| c.clone()))
        {
            return c;
        }
        let mut map = self
            .clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.entry(region.to_string())
            .or_insert_with(|| Clients::new(&self.base, region))
            .clone()
    }

    pub(crate) fn provider_name(&self) -> &str {
        &self.name
    }

    /// The address of a resource of this provider.
    pub(crate) fn addr(
        &self,
        kind: &str,
        region: &str,
        name: &str,
    ) -> Result<ResourceAddr, ProviderError> {
        Target::addr_of(&self.name, kind, region, name)
    }

    /// How many polls a long operation is waited for: `wait_s` at `poll_ms` each. Counted
    /// rather than timed, so no wall clock is read.
    pub(crate) fn polls(&self) -> u64 {
        (self.settings.wait_s * 1000 / self.settings.poll_ms.max(1)).max(1)
    }

    /// Sleeps between polls of a long operation.
    pub(crate) async fn pause(&self) {
        tokio::time::sleep(Duration::from_millis(self.settings.poll_ms)).await;
    }

    /// The state of one resource as plans, snapshots and conflict checks compare it, or
    /// `None` when it does not exist.
    pub(crate) async fn state(&self, t: &Target) -> Result<Option<Value>, ProviderError> {
        if t.name.is_empty() {
            return Ok(Some(json!({"names": self.list(t).await?})));
        }
        match t.kind {
            Kind::Stack => self.stack_state(t).await,
            Kind::AutoScalingGroup => self.asg_state(t).await,
            Kind::EcsService => self.ecs_state(t).await,
            Kind::Instance => self.instance_state(t).await,
            Kind::DbInstance => self.db_state(t).await,
            Kind::Table => self.table_state(t).await,
            Kind::Bucket => self.bucket_state(t).await,
            Kind::Role | Kind::User => self.iam_state(t).await,
        }
    }

    async fn state_of(&self, a: &ResourceAddr) -> Result<Option<Value>, ProviderError> {
        self.state(&Target::parse(a)?).await
    }

    fn finish(&self, req: &ActionRequest, t: &Target, d: Draft) -> Plan {
        let changed = d.diffs.iter().filter(|x| x.before != x.after).count() as u32;
        let mut resource = d.resource;
        resource.kind = t.kind.as_str().to_string();
        resource.region = t.region.clone();
        Plan {
            provider: self.name.clone(),
            verb: req.verb,
            target: req.target.clone(),
            params: req.params.clone(),
            diffs: d.diffs,
            blast: Blast {
                resources: changed + d.contained.len() as u32,
                regions: u32::from(changed > 0),
                dependents: d.dependent_names.len() as u32,
                capacity_delta_pct: d.capacity_delta_pct,
                watch: d.watch,
                dependent_names: d.dependent_names,
            },
            predicted: d.predicted,
            resource,
            contained: d.contained,
            reversible: d.reversible,
            loses: d.loses,
            destructive: d.destructive,
            rollback: false,
            min_risk: d.min_risk,
            summary: d.summary,
            hash: String::new(),
        }
        .seal()
    }

    /// A read: the resource's state now (or the kind's list in the region).
    async fn plan_read(&self, req: &ActionRequest, t: &Target) -> Result<Draft, ProviderError> {
        check_params(req, &[])?;
        let state = self.state(t).await?;
        if state.is_none() {
            return Err(ProviderError::NotFound(req.target.to_string()));
        }
        Ok(Draft {
            diffs: vec![Diff {
                addr: req.target.clone(),
                before: state.clone(),
                after: state,
            }],
            reversible: true,
            summary: format!("describe {}", req.target),
            ..Draft::default()
        })
    }

    async fn mutate(&self, plan: &Plan, t: &Target) -> Result<(), ProviderError> {
        match t.kind {
            Kind::Stack => self.stack_apply(plan, t).await,
            Kind::AutoScalingGroup => self.asg_apply(plan, t).await,
            Kind::EcsService => self.ecs_apply(plan, t).await,
            Kind::Instance => self.instance_apply(plan, t).await,
            Kind::DbInstance => self.db_apply(plan, t).await,
            Kind::Table => self.table_apply(plan, t).await,
            Kind::Bucket => self.bucket_apply(plan, t).await,
            Kind::Role | Kind::User => self.iam_apply(plan, t).await,
        }
    }

    async fn put_back(
        &self,
        t: &Target,
        prior: &Option<Value>,
        now: &Option<Value>,
    ) -> Result<(), ProviderError> {
        if prior == now {
            return Ok(());
        }
        match t.kind {
            Kind::Stack => self.stack_put_back(t, prior, now).await,
            Kind::AutoScalingGroup => self.asg_put_back(t, prior).await,
            Kind::EcsService => self.ecs_put_back(t, prior).await,
            Kind::Instance => self.instance_put_back(t, prior, now).await,
            Kind::DbInstance => self.db_put_back(t, prior, now).await,
            Kind::Table => self.table_put_back(t, prior, now).await,
            Kind::Bucket => Err(ProviderError::Unsupported {
                provider: self.name.clone(),
                verb: "restore".into(),
                target: format!("bucket {} (deleted objects cannot be brought back)", t.name),
            }),
            Kind::Role | Kind::User => self.iam_put_back(t, prior).await,
        }
    }

    async fn entries(
        &self,
        addrs: impl Iterator<Item = &ResourceAddr>,
    ) -> Result<Vec<(ResourceAddr, Option<Value>)>, ProviderError> {
        let mut out = Vec::new();
        for a in addrs {
            out.push((a.clone(), self.state_of(a).await?));
        }
        Ok(out)
    }
}

#[async_trait]
impl Provider for AwsProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn verbs(&self) -> &[VerbSpec] {
        &self.verbs
    }

    /// Fleets are watched by their name: the key `[watch.cloudwatch]` queries use as
    /// `$service`.
    fn signal_key(&self, addr: &ResourceAddr) -> Option<String> {
        self.signal_key_of(addr)
    }

    async fn plan(&self, req: &ActionRequest) -> Result<Plan, ProviderError> {
        let t = Target::parse(&req.target)?;
        if t.name.is_empty() && req.verb != Verb::Read {
            return Err(ProviderError::InvalidParams(format!(
                "`{}` names every {} in {}: only a read can take it; name one resource to {} it",
                req.target,
                t.kind.as_str(),
                t.region,
                req.verb
            )));
        }
        let draft = match (t.kind, req.verb) {
            (_, Verb::Read) => self.plan_read(req, &t).await?,
            (Kind::Stack, Verb::Create | Verb::Update | Verb::Delete) => {
                self.stack_plan(req, &t).await?
            }
            (Kind::AutoScalingGroup, Verb::Scale) => self.asg_plan(req, &t).await?,
            (Kind::EcsService, Verb::Scale | Verb::Deploy) => self.ecs_plan(req, &t).await?,
            (Kind::Instance, Verb::Update | Verb::Delete) => self.instance_plan(req, &t).await?,
            (Kind::DbInstance, Verb::Delete) => self.db_plan(req, &t).await?,
            (Kind::Table, Verb::Delete) => self.table_plan(req, &t).await?,
            (Kind::Bucket, Verb::Delete) => self.bucket_plan(req, &t).await?,
            (Kind::Role | Kind::User, Verb::Update) => self.iam_plan(req, &t).await?,
            _ => return Err(unsupported(req)),
        };
        Ok(self.finish(req, &t, draft))
    }

    async fn snapshot(&self, targets: &[ResourceAddr]) -> Result<Snapshot, ProviderError> {
        Ok(Snapshot {
            provider: self.name.clone(),
            entries: self.entries(targets.iter()).await?,
        })
    }

    async fn apply(&self, plan: &Plan) -> Result<Applied, ProviderError> {
        let t = Target::parse(&plan.target)?;
        if plan.verb == Verb::Read {
            return Ok(Applied {
                provider: self.name.clone(),
                entries: vec![(plan.target.clone(), self.describe(&t).await?)],
            });
        }
        for d in &plan.diffs {
            let now = self.state_of(&d.addr).await?;
            if now != d.before {
                return Err(ProviderError::Conflict {
                    addr: d.addr.to_string(),
                    detail: "the resource changed since the plan was made; plan again".into(),
                });
            }
        }
        let scope = [real_target(
            &t,
            plan.diffs
                .first()
                .and_then(|d| d.before.as_ref().or(d.after.as_ref())),
        )];
        self.scoped(&scope, &plan.hash, self.mutate(plan, &t))
            .await?;
        Ok(Applied {
            provider: self.name.clone(),
            entries: self.entries(plan.diffs.iter().map(|d| &d.addr)).await?,
        })
    }

    async fn restore(&self, snap: &Snapshot, expect: &Applied) -> Result<Restored, ProviderError> {
        let mut now = BTreeMap::new();
        for (a, after) in &expect.entries {
            let cur = self.state_of(a).await?;
            if &cur != after {
                return Err(ProviderError::Conflict {
                    addr: a.to_string(),
                    detail:
                        "the resource changed after this change was applied; not overwriting it"
                            .into(),
                });
            }
            now.insert(a.clone(), cur);
        }
        for (a, prior) in &snap.entries {
            let cur = match now.get(a) {
                Some(c) => c.clone(),
                None => self.state_of(a).await?,
            };
            let t = Target::parse(a)?;
            let scope = [real_target(&t, prior.as_ref().or(cur.as_ref()))];
            let label = format!("revert-{}", t.name.replace('/', "-"));
            self.scoped(&scope, &label, self.put_back(&t, prior, &cur))
                .await?;
        }
        Ok(Restored {
            provider: self.name.clone(),
            entries: self.entries(snap.entries.iter().map(|(a, _)| a)).await?,
        })
    }

    async fn reconcile_apply(
        &self,
        plan: &Plan,
        before: &Snapshot,
    ) -> Result<Landing, ProviderError> {
        if plan.verb == Verb::Read {
            return Ok(Landing::NotLanded);
        }
        let (mut landed, mut untouched, mut entries) = (0, 0, Vec::new());
        for d in &plan.diffs {
            let now = self.state_of(&d.addr).await?;
            let prior = before
                .entries
                .iter()
                .find(|(a, _)| *a == d.addr)
                .map_or(&d.before, |(_, v)| v);
            if now == d.after {
                landed += 1;
            } else if &now == prior {
                untouched += 1;
            }
            entries.push((d.addr.clone(), now));
        }
        Ok(landing(
            landed,
            untouched,
            plan.diffs.len(),
            entries,
            "as the change asked",
        ))
    }

    async fn reconcile_restore(
        &self,
        snap: &Snapshot,
        applied: &Applied,
    ) -> Result<Landing, ProviderError> {
        let (mut restored, mut as_applied, mut entries) = (0, 0, Vec::new());
        for (a, prior) in &snap.entries {
            let now = self.state_of(a).await?;
            if &now == prior {
                restored += 1;
            }
            if applied.entries.iter().any(|(b, v)| b == a && v == &now) {
                as_applied += 1;
            }
            entries.push((a.clone(), now));
        }
        Ok(landing(
            restored,
            as_applied,
            snap.entries.len(),
            entries,
            "as before the change",
        ))
    }
}

/// `t` with its resource's real name where the state records it (stacks and tables, whose
/// names may have upper case): what ARNs in a scoped session's policy must spell.
fn real_target(t: &Target, state: Option<&Value>) -> Target {
    let mut out = t.clone();
    if let Some(n) = state.and_then(|s| s["name"].as_str()) {
        out.name = n.to_string();
    }
    out
}

fn landing(
    yes: usize,
    no: usize,
    n: usize,
    entries: Vec<(ResourceAddr, Option<Value>)>,
    what: &str,
) -> Landing {
    if yes == n {
        Landing::Landed(entries)
    } else if no == n {
        Landing::NotLanded
    } else {
        Landing::Unknown(format!(
            "{yes} of {n} resources are {what} and {no} as they were; the rest moved on"
        ))
    }
}

impl AwsProvider {
    /// The name a resource's signals are keyed by, when it has any.
    pub(crate) fn signal_key_of(&self, addr: &ResourceAddr) -> Option<String> {
        let t = Target::parse(addr).ok()?;
        match t.kind {
            Kind::AutoScalingGroup | Kind::Instance | Kind::DbInstance | Kind::Table => {
                Some(t.name.clone())
            }
            Kind::EcsService => t.name.split('/').nth(1).map(str::to_string),
            _ => None,
        }
    }

    /// What a read returns: the state and, for some kinds, more to look at.
    async fn describe(&self, t: &Target) -> Result<Option<Value>, ProviderError> {
        let state = self.state(t).await?;
        Ok(match (t.kind, state) {
            (Kind::Stack, Some(mut s)) => {
                let c = self.clients(&t.region);
                let name = self.stack_name(&c, &t.name).await?;
                if let (Some(name), Some(obj)) = (name, s.as_object_mut()) {
                    let resources = self.stack_resources(&c, &name).await?;
                    obj.insert(
                        "resources".into(),
                        json!(resources
                            .iter()
                            .map(|r| json!({"logical_id": r.logical, "type": r.kind, "physical_id": r.physical}))
                            .collect::<Vec<_>>()),
                    );
                }
                Some(s)
            }
            (_, s) => s,
        })
    }
}

fn spec(verb: Verb, description: &'static str, params: Value) -> VerbSpec {
    VerbSpec {
        verb,
        params,
        destructive: matches!(verb, Verb::Delete),
        read_only: verb == Verb::Read,
        description,
    }
}

pub(crate) fn verb_specs() -> Vec<VerbSpec> {
    vec![
        spec(
            Verb::Read,
            "Describe an AWS resource (aws:KIND/REGION/NAME; kinds stack, autoscaling-group, ecs-service, instance, db-instance, table, bucket, role, user). Changes nothing.",
            json!({"type": "object", "additionalProperties": false}),
        ),
        spec(
            Verb::Create,
            "Create a CloudFormation stack from a template (JSON or YAML text, or a JSON object) and parameters.",
            json!({"type": "object", "additionalProperties": false, "required": ["template"], "properties": {
                "template": {"description": "the template body"},
                "parameters": {"type": "object", "additionalProperties": {"type": "string"}},
                "tags": {"type": "object", "additionalProperties": {"type": "string"}}
            }}),
        ),
        spec(
            Verb::Update,
            "Update a stack through a change set (template and/or parameters); stop or start an instance (`state`); attach or detach an IAM policy on a role or user.",
            json!({"type": "object", "additionalProperties": false, "properties": {
                "template": {"description": "a stack's new template body (default: unchanged)"},
                "parameters": {"type": "object", "additionalProperties": {"type": "string"}},
                "state": {"enum": ["stopped", "running"]},
                "attach_policy": {"type": "string", "description": "policy ARN to attach to a role or user"},
                "detach_policy": {"type": "string", "description": "policy ARN to detach"}
            }}),
        ),
        spec(
            Verb::Scale,
            "Set an Auto Scaling group's desired capacity (and min/max), or an ECS service's desired count.",
            json!({"type": "object", "additionalProperties": false, "properties": {
                "desired": {"type": "integer", "minimum": 0},
                "replicas": {"type": "integer", "minimum": 0, "description": "the same as desired"},
                "min": {"type": "integer", "minimum": 0},
                "max": {"type": "integer", "minimum": 0}
            }}),
        ),
        spec(
            Verb::Deploy,
            "Roll an ECS service onto a task definition revision.",
            json!({"type": "object", "additionalProperties": false, "required": ["task_definition"], "properties": {
                "task_definition": {"type": "string", "description": "family:revision or ARN"}
            }}),
        ),
        spec(
            Verb::Delete,
            "Delete a stack (and everything it contains), terminate an instance, delete a database (`final_snapshot: true` keeps a snapshot to restore from), a table (`backup: true`), or a bucket (`contents_only: true` empties it). Deletes without a backup are irreversible.",
            json!({"type": "object", "additionalProperties": false, "properties": {
                "final_snapshot": {"type": "boolean"},
                "backup": {"type": "boolean"},
                "contents_only": {"type": "boolean"}
            }}),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environments_come_from_tags_and_unknown_is_the_default() {
        let tags = |k: &str, v: &str| BTreeMap::from([(k.to_string(), v.to_string())]);
        assert_eq!(
            env_of(&tags("Environment", "Production"), "unknown"),
            "prod"
        );
        assert_eq!(env_of(&tags("env", "stg"), "unknown"), "staging");
        assert_eq!(env_of(&tags("team", "billing"), "unknown"), "unknown");
        assert_eq!(env_of(&tags("env", "qa"), "unknown"), "qa");
    }

    #[test]
    fn reads_are_read_only_and_deletes_destructive_for_mcp_hints() {
        let specs = verb_specs();
        for s in &specs {
            assert_eq!(s.read_only, s.verb == Verb::Read, "{:?}", s.verb);
            assert_eq!(s.destructive, s.verb == Verb::Delete, "{:?}", s.verb);
            assert_eq!(s.params["additionalProperties"], false, "{:?}", s.verb);
        }
        let verbs: Vec<Verb> = specs.iter().map(|s| s.verb).collect();
        assert_eq!(
            verbs,
            [
                Verb::Read,
                Verb::Create,
                Verb::Update,
                Verb::Scale,
                Verb::Deploy,
                Verb::Delete
            ]
        );
    }

    #[test]
    fn settings_are_checked_key_by_key() {
        let m: Map<String, Value> = serde_json::from_value(json!({
            "region": "eu-west-1", "wait_s": 0, "cpu_ceiling_pct": 120, "colour": "red",
            "endpoint_url": "localhost:5000"
        }))
        .unwrap_or_default();
        let p = Settings::problems(&m);
        assert_eq!(p.len(), 4, "{p:?}");
        assert!(p.iter().any(|x| x.starts_with("`colour`: unknown setting")));
        let ok: Map<String, Value> = serde_json::from_value(
            json!({"region": "eu-west-1", "endpoint_url": "http://127.0.0.1:5000"}),
        )
        .unwrap_or_default();
        assert!(Settings::problems(&ok).is_empty());
        let s = Settings::from_table(&ok);
        assert_eq!(s.connection.region, "eu-west-1");
        assert_eq!(s.default_env, "unknown");
    }
}
