//! CloudFormation stacks: create, update through a change set, delete.
//!
//! A stack's state is what recreating it needs: its template, parameters, tags and
//! termination protection. The plan of a delete lists every resource the stack contains
//! (each decided as if targeted) and the stacks importing its exports; the plan of an
//! update comes from a change set, and a replacement of a stateful resource is destructive.

use crate::clients::{Clients, sdk_err};
use crate::provider::{AwsProvider, Draft, check_params, env_of, tag_list, tier_of};
use crate::target::{Kind, Target, cfn_type_kind, cfn_type_stateful, resolve};
use airlock_core::ProviderError;
use airlock_core::action::{ActionRequest, Verb};
use airlock_core::plan::{Contained, Diff, Plan, ResourceAttrs};
use aws_sdk_cloudformation::types::{
    Capability, ChangeAction, ChangeSetStatus, ChangeSetType, Parameter, Replacement, Stack, Tag,
    TemplateStage,
};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// One resource of a stack.
#[derive(Debug, Clone)]
pub(crate) struct StackResource {
    pub logical: String,
    pub kind: String,
    pub physical: String,
}

/// One resource a change set changes.
#[derive(Debug, Clone)]
struct Change {
    action: String,
    logical: String,
    physical: String,
    kind: String,
    replacement: bool,
}

/// Parameter values CloudFormation hides (`NoEcho`) read back as this.
const HIDDEN: &str = "****";

fn capabilities() -> Vec<Capability> {
    vec![
        Capability::CapabilityIam,
        Capability::CapabilityNamedIam,
        Capability::CapabilityAutoExpand,
    ]
}

fn string_map(v: Option<&Value>, key: &str) -> Result<BTreeMap<String, String>, ProviderError> {
    match v {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                Value::Number(n) => Ok((k.clone(), n.to_string())),
                Value::Bool(b) => Ok((k.clone(), b.to_string())),
                other => Err(ProviderError::InvalidParams(format!(
                    "`{key}.{k}` must be a string, got {other}"
                ))),
            })
            .collect(),
        Some(other) => Err(ProviderError::InvalidParams(format!(
            "`{key}` must be an object of strings, got {other}"
        ))),
    }
}

fn template_param(req: &ActionRequest) -> Result<Option<String>, ProviderError> {
    match req.params.get("template") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.clone())),
        Some(v @ Value::Object(_)) => Ok(Some(v.to_string())),
        Some(v) => Err(ProviderError::InvalidParams(format!(
            "`template` must be the template's text or a JSON object, got {v}"
        ))),
    }
}

fn obj(m: &BTreeMap<String, String>) -> Value {
    Value::Object(m.iter().map(|(k, v)| (k.clone(), json!(v))).collect())
}

fn map_of(v: &Value, key: &str) -> BTreeMap<String, String> {
    v[key]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// The resources of a JSON template, by logical id (`None` for a YAML template: what
/// needs it then comes from CloudFormation's own answers).
fn template_resources(body: &str) -> Option<Map<String, Value>> {
    let v: Value = serde_json::from_str(body).ok()?;
    v.get("Resources")?.as_object().cloned()
}

/// Whether deleting (or replacing) `logical` keeps its data: a `Retain` or `Snapshot`
/// deletion (or update-replace) policy in a JSON template.
fn keeps_data(resources: Option<&Map<String, Value>>, logical: &str, replace: bool) -> bool {
    let Some(r) = resources.and_then(|m| m.get(logical)) else {
        return false;
    };
    let key = if replace {
        "UpdateReplacePolicy"
    } else {
        "DeletionPolicy"
    };
    matches!(
        r.get(key).and_then(Value::as_str),
        Some("Retain" | "Snapshot" | "RetainExceptOnCreate")
    )
}

/// Properties whose change replaces a stateful resource (CloudFormation's reference: "Update
/// requires: Replacement"), for when a change set does not say.
fn replaces(kind: &str, property: &str) -> bool {
    match kind {
        "AWS::DynamoDB::Table" => matches!(
            property,
            "TableName" | "KeySchema" | "LocalSecondaryIndexes"
        ),
        "AWS::RDS::DBInstance" => matches!(
            property,
            "DBInstanceIdentifier"
                | "DBName"
                | "Engine"
                | "StorageEncrypted"
                | "KmsKeyId"
                | "AvailabilityZone"
                | "DBSnapshotIdentifier"
                | "SourceDBInstanceIdentifier"
                | "CharacterSetName"
                | "DBClusterIdentifier"
        ),
        "AWS::S3::Bucket" => property == "BucketName",
        "AWS::EC2::Volume" => matches!(property, "AvailabilityZone" | "SnapshotId" | "Encrypted"),
        _ => false,
    }
}

/// Whether the JSON templates show `logical` replaced: a property that forces replacement
/// differs.
fn replaced_by_templates(
    old: Option<&Map<String, Value>>,
    new: Option<&Map<String, Value>>,
    logical: &str,
) -> bool {
    let (Some(o), Some(n)) = (
        old.and_then(|m| m.get(logical)),
        new.and_then(|m| m.get(logical)),
    ) else {
        return false;
    };
    let kind = o["Type"].as_str().unwrap_or_default();
    if n["Type"] != o["Type"] {
        return true;
    }
    let empty = Map::new();
    let op = o["Properties"].as_object().unwrap_or(&empty);
    let np = n["Properties"].as_object().unwrap_or(&empty);
    op.keys()
        .chain(np.keys())
        .any(|p| replaces(kind, p) && op.get(p) != np.get(p))
}

/// Whether a template value refers to parameter `p` (`Ref`, or `${p}` in `Fn::Sub`).
fn uses_parameter(v: &Value, p: &str) -> bool {
    match v {
        Value::Object(m) => {
            m.get("Ref").and_then(Value::as_str) == Some(p)
                || m.get("Fn::Sub").is_some_and(|s| {
                    let text = match s {
                        Value::Array(a) => a.first().and_then(Value::as_str).unwrap_or_default(),
                        other => other.as_str().unwrap_or_default(),
                    };
                    text.contains(&format!("${{{p}}}"))
                })
                || m.values().any(|x| uses_parameter(x, p))
        }
        Value::Array(a) => a.iter().any(|x| uses_parameter(x, p)),
        _ => false,
    }
}

/// Whether `body` imports `export`: it uses `ImportValue` and names the export as a whole
/// token (an import through `Fn::Sub` or `Fn::Join` that spells the name in pieces is not
/// seen; ListImports, when granted, sees those too).
pub(crate) fn template_imports(body: &str, export: &str) -> bool {
    if export.is_empty() || !body.contains("ImportValue") {
        return false;
    }
    let boundary = |c: Option<char>| {
        c.is_none_or(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ':' | '.')))
    };
    let mut from = 0;
    while let Some(i) = body[from..].find(export) {
        let start = from + i;
        let end = start + export.len();
        if boundary(body[..start].chars().next_back()) && boundary(body[end..].chars().next()) {
            return true;
        }
        from = start + 1;
        while !body.is_char_boundary(from) {
            from += 1;
        }
    }
    false
}

impl AwsProvider {
    /// The live stack called exactly `name`, or `None` (no such stack, or deleted).
    async fn describe_stack(
        &self,
        c: &Clients,
        name: &str,
    ) -> Result<Option<Stack>, ProviderError> {
        match c.cfn.describe_stacks().stack_name(name).send().await {
            Ok(out) => Ok(out
                .stacks()
                .first()
                .filter(|s| s.stack_status().map(|st| st.as_str()) != Some("DELETE_COMPLETE"))
                .cloned()),
            Err(e) => match sdk_err("DescribeStacks", e) {
                ProviderError::NotFound(_) => Ok(None),
                other => Err(other),
            },
        }
    }

    /// The live stack an address's lower-case name stands for: its exact name, else the
    /// one stack whose name matches case-insensitively.
    async fn find_stack(&self, c: &Clients, wanted: &str) -> Result<Option<Stack>, ProviderError> {
        if let Some(s) = self.describe_stack(c, wanted).await? {
            return Ok(Some(s));
        }
        let names = self.stack_names(c).await?;
        match resolve(wanted, names.iter().map(String::as_str), "stack")? {
            Some(real) => self.describe_stack(c, &real).await,
            None => Ok(None),
        }
    }

    /// The real name of the stack an address's lower-case name stands for.
    pub(crate) async fn stack_name(
        &self,
        c: &Clients,
        wanted: &str,
    ) -> Result<Option<String>, ProviderError> {
        Ok(self
            .find_stack(c, wanted)
            .await?
            .and_then(|s| s.stack_name().map(str::to_string)))
    }

    /// Every live stack's name in the client's region.
    pub(crate) async fn stack_names(&self, c: &Clients) -> Result<Vec<String>, ProviderError> {
        let mut names = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = c
                .cfn
                .describe_stacks()
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| sdk_err("DescribeStacks", e))?;
            for s in out.stacks() {
                if s.stack_status().map(|st| st.as_str()) != Some("DELETE_COMPLETE")
                    && let Some(n) = s.stack_name()
                {
                    names.push(n.to_string());
                }
            }
            match out.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => return Ok(names),
            }
        }
    }

    async fn template(&self, c: &Clients, name: &str) -> Result<String, ProviderError> {
        let out = c
            .cfn
            .get_template()
            .stack_name(name)
            .template_stage(TemplateStage::Original)
            .send()
            .await
            .map_err(|e| sdk_err("GetTemplate", e))?;
        Ok(out.template_body().unwrap_or_default().to_string())
    }

    pub(crate) async fn stack_state(&self, t: &Target) -> Result<Option<Value>, ProviderError> {
        let c = self.clients(&t.region);
        let Some(s) = self.find_stack(&c, &t.name).await? else {
            return Ok(None);
        };
        let name = s.stack_name().unwrap_or(&t.name).to_string();
        let status = s
            .stack_status()
            .map(|x| x.as_str().to_string())
            .unwrap_or_default();
        let parameters: BTreeMap<String, String> = s
            .parameters()
            .iter()
            .map(|p| {
                (
                    p.parameter_key().unwrap_or_default().to_string(),
                    p.parameter_value().unwrap_or_default().to_string(),
                )
            })
            .collect();
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
        let template = self.template(&c, &name).await?;
        let mut state = json!({
            "name": name,
            "parameters": obj(&parameters),
            "tags": obj(&tags),
            "termination_protection": s.enable_termination_protection().unwrap_or(false),
            "template": template,
        });
        // A stack that failed is not the stack its template describes.
        if status.ends_with("_FAILED")
            || status == "ROLLBACK_COMPLETE"
            || status.ends_with("_IN_PROGRESS")
        {
            state["status"] = json!(status);
        }
        Ok(Some(state))
    }

    async fn stack_exports(&self, c: &Clients, name: &str) -> Result<Vec<String>, ProviderError> {
        Ok(self
            .describe_stack(c, name)
            .await?
            .map(|s| {
                s.outputs()
                    .iter()
                    .filter_map(|o| o.export_name().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default())
    }

    pub(crate) async fn stack_resources(
        &self,
        c: &Clients,
        name: &str,
    ) -> Result<Vec<StackResource>, ProviderError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = c
                .cfn
                .list_stack_resources()
                .stack_name(name)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| sdk_err("ListStackResources", e))?;
            for r in page.stack_resource_summaries() {
                if r.resource_status().map(|s| s.as_str()) == Some("DELETE_COMPLETE") {
                    continue;
                }
                out.push(StackResource {
                    logical: r.logical_resource_id().unwrap_or_default().to_string(),
                    kind: r.resource_type().unwrap_or_default().to_string(),
                    physical: r.physical_resource_id().unwrap_or_default().to_string(),
                });
            }
            match page.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => return Ok(out),
            }
        }
    }

    /// The live stacks importing any of `exports`, and how they were found: `ListImports`,
    /// or, where it is not implemented or not granted, the other stacks' templates.
    async fn importers(
        &self,
        c: &Clients,
        name: &str,
        exports: &[String],
    ) -> Result<(BTreeSet<String>, &'static str), ProviderError> {
        let mut found = BTreeSet::new();
        let mut listed = true;
        for e in exports {
            // Asked once, without retries: where it is not implemented or not granted, the
            // templates answer instead, at once.
            let once = aws_sdk_cloudformation::config::Builder::default()
                .retry_config(aws_config::retry::RetryConfig::disabled());
            match c
                .cfn
                .list_imports()
                .export_name(e)
                .customize()
                .config_override(once)
                .send()
                .await
            {
                Ok(out) => found.extend(out.imports().iter().cloned()),
                Err(err) => {
                    tracing::debug!(export = %e, error = %sdk_err("ListImports", err), "ListImports unavailable; reading the other stacks' templates");
                    listed = false;
                    break;
                }
            }
        }
        if listed {
            found.remove(name);
            return Ok((found, "ListImports"));
        }
        found.clear();
        for other in self.stack_names(c).await? {
            if other == name {
                continue;
            }
            let body = match self.template(c, &other).await {
                Ok(b) => b,
                Err(ProviderError::NotFound(_)) => continue,
                Err(e) => return Err(e),
            };
            if exports.iter().any(|e| template_imports(&body, e)) {
                found.insert(other);
            }
        }
        Ok((found, "the other stacks' templates"))
    }

    fn contained_of(
        &self,
        t: &Target,
        r: &StackResource,
        attrs: &ResourceAttrs,
        stack: &str,
    ) -> Result<Contained, ProviderError> {
        let kind = cfn_type_kind(&r.kind);
        let name = match Kind::of_cfn_type(&r.kind) {
            // An ECS service's physical id is its ARN: `…:service/CLUSTER/NAME`.
            Some(Kind::EcsService) => r
                .physical
                .rsplit_once(":service/")
                .map_or_else(|| r.physical.clone(), |(_, n)| n.to_string()),
            Some(_) => r.physical.clone(),
            None => r
                .physical
                .rsplit(['/', ':'])
                .next()
                .unwrap_or(&r.physical)
                .to_string(),
        };
        let name = if name.is_empty() {
            r.logical.clone()
        } else {
            name
        };
        let segments: Vec<String> = name.split('/').map(airlock_core::addr::addr_name).collect();
        let addr = self.addr(&kind, &t.region, &segments.join("/"))?;
        let fleet = matches!(
            Kind::of_cfn_type(&r.kind),
            Some(Kind::AutoScalingGroup | Kind::EcsService | Kind::Instance)
        );
        Ok(Contained {
            addr,
            resource: ResourceAttrs {
                kind,
                service: name,
                parents: vec![stack.to_string()],
                dependents: 0,
                ..attrs.clone()
            },
            dependents: 0,
            capacity_delta_pct: if fleet { -100.0 } else { 0.0 },
            loses_data: false,
        })
    }

    pub(crate) async fn stack_plan(
        &self,
        req: &ActionRequest,
        t: &Target,
    ) -> Result<Draft, ProviderError> {
        let before = self.stack_state(t).await?;
        match req.verb {
            Verb::Create => self.stack_plan_create(req, t, before).await,
            Verb::Update => self.stack_plan_update(req, t, before).await,
            _ => self.stack_plan_delete(req, t, before).await,
        }
    }

    fn attrs(&self, t: &Target, tags: &BTreeMap<String, String>) -> ResourceAttrs {
        ResourceAttrs {
            env: env_of(tags, &self.settings.default_env),
            tier: tier_of(tags),
            service: t.name.clone(),
            tags: tag_list(tags),
            ..ResourceAttrs::default()
        }
    }

    async fn stack_plan_create(
        &self,
        req: &ActionRequest,
        t: &Target,
        before: Option<Value>,
    ) -> Result<Draft, ProviderError> {
        check_params(req, &["template", "parameters", "tags"])?;
        if before.is_some() {
            return Err(ProviderError::InvalidParams(format!(
                "stack `{}` exists; update it, or delete it first",
                t.name
            )));
        }
        let template = template_param(req)?.ok_or_else(|| {
            ProviderError::InvalidParams("`template` is required to create a stack".into())
        })?;
        let parameters = string_map(req.params.get("parameters"), "parameters")?;
        let tags = string_map(req.params.get("tags"), "tags")?;
        let c = self.clients(&t.region);
        c.cfn
            .validate_template()
            .template_body(&template)
            .send()
            .await
            .map_err(|e| sdk_err("ValidateTemplate", e))?;
        let resources = template_resources(&template);
        let attrs = self.attrs(t, &tags);
        let after = json!({
            "name": t.name,
            "parameters": obj(&parameters),
            "tags": obj(&tags),
            "termination_protection": false,
            "template": template,
        });
        Ok(Draft {
            diffs: vec![Diff {
                addr: req.target.clone(),
                before: None,
                after: Some(after),
            }],
            resource: attrs,
            reversible: true,
            summary: format!(
                "create stack {} in {}{}",
                t.name,
                t.region,
                resources.map_or(String::new(), |r| format!(" with {} resource(s)", r.len()))
            ),
            ..Draft::default()
        })
    }

    /// Creates a change set for `template` and `parameters` and waits until it is ready.
    /// `Ok(None)` when it contains no changes.
    async fn change_set(
        &self,
        c: &Clients,
        stack: &str,
        name: &str,
        template: &str,
        parameters: &BTreeMap<String, String>,
        tags: &BTreeMap<String, String>,
    ) -> Result<Option<(String, Vec<Change>)>, ProviderError> {
        let params: Vec<Parameter> = parameters
            .iter()
            .map(|(k, v)| {
                let p = Parameter::builder().parameter_key(k);
                if v == HIDDEN {
                    p.use_previous_value(true).build()
                } else {
                    p.parameter_value(v).build()
                }
            })
            .collect();
        let tags: Vec<Tag> = tags
            .iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect();
        let out = c
            .cfn
            .create_change_set()
            .stack_name(stack)
            .change_set_name(name)
            .change_set_type(ChangeSetType::Update)
            .template_body(template)
            .set_parameters(Some(params))
            .set_tags(Some(tags))
            .set_capabilities(Some(capabilities()))
            .send()
            .await
            .map_err(|e| sdk_err("CreateChangeSet", e))?;
        let id = out.id().unwrap_or(name).to_string();
        let mut polls = self.polls();
        loop {
            let d = c
                .cfn
                .describe_change_set()
                .stack_name(stack)
                .change_set_name(&id)
                .send()
                .await
                .map_err(|e| sdk_err("DescribeChangeSet", e))?;
            match d.status() {
                Some(ChangeSetStatus::CreateComplete) | None => {
                    let changes = d
                        .changes()
                        .iter()
                        .filter_map(|ch| ch.resource_change())
                        .map(|rc| Change {
                            action: rc
                                .action()
                                .map(|a| a.as_str().to_string())
                                .unwrap_or_default(),
                            logical: rc.logical_resource_id().unwrap_or_default().to_string(),
                            physical: rc.physical_resource_id().unwrap_or_default().to_string(),
                            kind: rc.resource_type().unwrap_or_default().to_string(),
                            replacement: matches!(
                                rc.replacement(),
                                Some(Replacement::True | Replacement::Conditional)
                            ) || rc.action() == Some(&ChangeAction::Remove),
                        })
                        .collect();
                    return Ok(Some((id, changes)));
                }
                Some(ChangeSetStatus::Failed) => {
                    let why = d.status_reason().unwrap_or_default().to_string();
                    let _ = c
                        .cfn
                        .delete_change_set()
                        .stack_name(stack)
                        .change_set_name(&id)
                        .send()
                        .await;
                    if why.contains("didn't contain changes") || why.contains("No updates") {
                        return Ok(None);
                    }
                    return Err(ProviderError::InvalidParams(format!(
                        "change set failed: {why}"
                    )));
                }
                _ if polls == 0 => {
                    return Err(ProviderError::Unavailable(format!(
                        "change set {id} not ready after {} s",
                        self.settings.wait_s
                    )));
                }
                _ => {
                    polls -= 1;
                    self.pause().await;
                }
            }
        }
    }

    async fn stack_plan_update(
        &self,
        req: &ActionRequest,
        t: &Target,
        before: Option<Value>,
    ) -> Result<Draft, ProviderError> {
        check_params(req, &["template", "parameters", "tags"])?;
        let before = before.ok_or_else(|| ProviderError::NotFound(req.target.to_string()))?;
        let name = before["name"].as_str().unwrap_or(&t.name).to_string();
        let old_template = before["template"].as_str().unwrap_or_default().to_string();
        let template = template_param(req)?.unwrap_or_else(|| old_template.clone());
        let mut parameters = map_of(&before, "parameters");
        parameters.extend(string_map(req.params.get("parameters"), "parameters")?);
        let mut tags = map_of(&before, "tags");
        tags.extend(string_map(req.params.get("tags"), "tags")?);
        let mut after = before.clone();
        after["template"] = json!(template);
        after["parameters"] = obj(&parameters);
        after["tags"] = obj(&tags);
        let attrs = self.attrs(t, &map_of(&before, "tags"));
        let stack_addr = req.target.to_string();
        let c = self.clients(&t.region);
        let plan_name = format!(
            "airlock-plan-{}",
            &blake3::hash(after.to_string().as_bytes()).to_hex()[..16]
        );
        let mut changes = match self
            .change_set(&c, &name, &plan_name, &template, &parameters, &tags)
            .await?
        {
            None => Vec::new(),
            Some((id, changes)) => {
                // A plan changes nothing: the change set was only for reading.
                let _ = c
                    .cfn
                    .delete_change_set()
                    .stack_name(&name)
                    .change_set_name(&id)
                    .send()
                    .await;
                changes
            }
        };
        let (old_r, new_r) = (
            template_resources(&old_template),
            template_resources(&template),
        );
        // What the change set may leave out (CloudFormation reports every resource a
        // changed parameter reaches; an emulator may not): resources whose properties use a
        // parameter that changes, from the JSON template.
        let before_params = map_of(&before, "parameters");
        let changed: Vec<&String> = parameters
            .iter()
            .filter(|(k, v)| before_params.get(*k) != Some(*v))
            .map(|(k, _)| k)
            .collect();
        for (logical, r) in new_r.iter().flatten() {
            if changes.iter().any(|c| &c.logical == logical) {
                continue;
            }
            let props = r["Properties"].as_object().cloned().unwrap_or_default();
            let using: Vec<&String> = props
                .iter()
                .filter(|(_, v)| changed.iter().any(|p| uses_parameter(v, p)))
                .map(|(k, _)| k)
                .collect();
            if using.is_empty() {
                continue;
            }
            let kind = r["Type"].as_str().unwrap_or_default().to_string();
            changes.push(Change {
                action: "Modify".into(),
                logical: logical.clone(),
                physical: String::new(),
                replacement: using.iter().any(|p| replaces(&kind, p)),
                kind,
            });
        }
        // Physical ids the change set did not give.
        if changes
            .iter()
            .any(|c| c.physical.is_empty() && c.action != "Add")
        {
            let live = self.stack_resources(&c, &name).await?;
            for ch in changes.iter_mut().filter(|c| c.physical.is_empty()) {
                if let Some(r) = live.iter().find(|r| r.logical == ch.logical) {
                    ch.physical = r.physical.clone();
                }
            }
        }
        let mut contained = Vec::new();
        let mut loses = Vec::new();
        let mut destructive = false;
        let mut capacity = 0.0_f64;
        for ch in &changes {
            let replaced = ch.replacement
                || (ch.action == "Modify"
                    && replaced_by_templates(old_r.as_ref(), new_r.as_ref(), &ch.logical));
            let removed = ch.action == "Remove";
            if ch.action == "Add" {
                continue;
            }
            let r = StackResource {
                logical: ch.logical.clone(),
                kind: ch.kind.clone(),
                physical: ch.physical.clone(),
            };
            let mut item = self.contained_of(t, &r, &attrs, &stack_addr)?;
            if !(removed || replaced) {
                item.capacity_delta_pct = 0.0;
            } else {
                capacity = capacity.min(item.capacity_delta_pct);
            }
            if (removed || replaced) && cfn_type_stateful(&ch.kind) {
                destructive = true;
                if !keeps_data(old_r.as_ref(), &ch.logical, !removed) {
                    item.loses_data = true;
                    loses.push(format!(
                        "the data of {} `{}` ({}), {} by this update",
                        ch.kind,
                        ch.logical,
                        if ch.physical.is_empty() {
                            "not yet created"
                        } else {
                            ch.physical.as_str()
                        },
                        if removed { "deleted" } else { "replaced" }
                    ));
                }
            }
            if removed {
                destructive = true;
            }
            contained.push(item);
        }
        // The fleets the update changes are watched while it bakes.
        let watch: Vec<String> = contained
            .iter()
            .filter(|c| {
                matches!(
                    c.resource.kind.as_str(),
                    "autoscaling-group" | "ecs-service"
                )
            })
            .filter_map(|c| self.signal_key_of(&c.addr))
            .collect();
        let summary = if changes.is_empty() {
            format!("update stack {}: no change", t.name)
        } else {
            let list: Vec<String> = changes
                .iter()
                .map(|c| {
                    format!(
                        "{} {}{}",
                        c.action.to_lowercase(),
                        c.logical,
                        if c.replacement { " (replaced)" } else { "" }
                    )
                })
                .collect();
            format!(
                "update stack {} through a change set: {}",
                t.name,
                list.join(", ")
            )
        };
        Ok(Draft {
            diffs: vec![Diff {
                addr: req.target.clone(),
                before: Some(before),
                after: Some(after),
            }],
            contained,
            resource: attrs,
            capacity_delta_pct: capacity,
            watch,
            reversible: loses.is_empty(),
            destructive,
            loses,
            summary,
            ..Draft::default()
        })
    }

    async fn stack_plan_delete(
        &self,
        req: &ActionRequest,
        t: &Target,
        before: Option<Value>,
    ) -> Result<Draft, ProviderError> {
        check_params(req, &[])?;
        let before = before.ok_or_else(|| ProviderError::NotFound(req.target.to_string()))?;
        let name = before["name"].as_str().unwrap_or(&t.name).to_string();
        let c = self.clients(&t.region);
        let resources = self.stack_resources(&c, &name).await?;
        let exports = self.stack_exports(&c, &name).await?;
        let (importers, how) = self.importers(&c, &name, &exports).await?;
        let tags = map_of(&before, "tags");
        let attrs = self.attrs(t, &tags);
        let template_r = template_resources(before["template"].as_str().unwrap_or_default());
        let stack_addr = req.target.to_string();
        let mut contained = Vec::new();
        let mut loses = Vec::new();
        let mut fleets = 0;
        for r in &resources {
            let mut item = self.contained_of(t, r, &attrs, &stack_addr)?;
            if item.capacity_delta_pct < 0.0 {
                fleets += 1;
            }
            if cfn_type_stateful(&r.kind) && !keeps_data(template_r.as_ref(), &r.logical, false) {
                item.loses_data = true;
                loses.push(format!(
                    "the data of {} `{}` ({})",
                    r.kind, r.logical, r.physical
                ));
            }
            contained.push(item);
        }
        let hidden: Vec<String> = map_of(&before, "parameters")
            .into_iter()
            .filter(|(_, v)| v == HIDDEN)
            .map(|(k, _)| k)
            .collect();
        let protected = before["termination_protection"].as_bool().unwrap_or(false);
        let mut summary = format!(
            "delete stack {} in {}: {} contained resource(s){}; {} export(s), {} live importer(s){}",
            t.name,
            t.region,
            resources.len(),
            if fleets > 0 {
                format!(", {fleets} serving fleet(s)")
            } else {
                String::new()
            },
            exports.len(),
            importers.len(),
            if importers.is_empty() {
                String::new()
            } else {
                format!(
                    " ({}, found through {how})",
                    importers.iter().cloned().collect::<Vec<_>>().join(", ")
                )
            },
        );
        if !loses.is_empty() {
            summary.push_str(&format!("; irreversible: {}", loses.join("; ")));
        }
        if !hidden.is_empty() {
            summary.push_str(&format!(
                "; cannot be recreated as it was: the values of NoEcho parameter(s) {} cannot be read back",
                hidden.join(", ")
            ));
        }
        if protected {
            summary.push_str(
                "; termination protection is on: AWS will refuse the delete until it is turned off",
            );
        }
        Ok(Draft {
            diffs: vec![Diff {
                addr: req.target.clone(),
                before: Some(before),
                after: None,
            }],
            contained,
            resource: attrs,
            capacity_delta_pct: if fleets > 0 { -100.0 } else { 0.0 },
            dependent_names: importers.into_iter().collect(),
            reversible: loses.is_empty() && hidden.is_empty(),
            destructive: true,
            loses,
            summary,
            ..Draft::default()
        })
    }

    /// Waits until the stack is out of every `*_IN_PROGRESS` status; its final status, or
    /// `None` once it is gone.
    async fn wait_stack(
        &self,
        c: &Clients,
        name: &str,
    ) -> Result<Option<(String, String)>, ProviderError> {
        let mut polls = self.polls();
        loop {
            let Some(s) = self.describe_stack(c, name).await? else {
                return Ok(None);
            };
            let status = s
                .stack_status()
                .map(|x| x.as_str().to_string())
                .unwrap_or_default();
            if !status.ends_with("_IN_PROGRESS") {
                return Ok(Some((
                    status,
                    s.stack_status_reason().unwrap_or_default().to_string(),
                )));
            }
            if polls == 0 {
                return Err(ProviderError::Unavailable(format!(
                    "stack {name} still {status} after {} s",
                    self.settings.wait_s
                )));
            }
            polls -= 1;
            self.pause().await;
        }
    }

    async fn create_stack(&self, c: &Clients, state: &Value) -> Result<(), ProviderError> {
        let name = state["name"].as_str().unwrap_or_default();
        let parameters = map_of(state, "parameters");
        if let Some((k, _)) = parameters.iter().find(|(_, v)| *v == HIDDEN) {
            return Err(ProviderError::Unsupported {
                provider: self.provider_name().to_string(),
                verb: "restore".into(),
                target: format!(
                    "stack {name} (the value of NoEcho parameter {k} cannot be read back)"
                ),
            });
        }
        let params: Vec<Parameter> = parameters
            .iter()
            .map(|(k, v)| {
                Parameter::builder()
                    .parameter_key(k)
                    .parameter_value(v)
                    .build()
            })
            .collect();
        let tags: Vec<Tag> = map_of(state, "tags")
            .iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect();
        c.cfn
            .create_stack()
            .stack_name(name)
            .template_body(state["template"].as_str().unwrap_or_default())
            .set_parameters(Some(params))
            .set_tags(Some(tags))
            .set_capabilities(Some(capabilities()))
            .enable_termination_protection(
                state["termination_protection"].as_bool().unwrap_or(false),
            )
            .send()
            .await
            .map_err(|e| sdk_err("CreateStack", e))?;
        match self.wait_stack(c, name).await? {
            Some((s, _)) if s == "CREATE_COMPLETE" => Ok(()),
            Some((s, why)) => Err(ProviderError::Unavailable(format!(
                "stack {name} ended {s}: {why}"
            ))),
            None => Err(ProviderError::Unavailable(format!(
                "stack {name} vanished while it was created"
            ))),
        }
    }

    async fn delete_stack(&self, c: &Clients, name: &str) -> Result<(), ProviderError> {
        c.cfn
            .delete_stack()
            .stack_name(name)
            .send()
            .await
            .map_err(|e| sdk_err("DeleteStack", e))?;
        match self.wait_stack(c, name).await? {
            None => Ok(()),
            Some((s, why)) => Err(ProviderError::Unavailable(format!(
                "stack {name} ended {s}: {why}"
            ))),
        }
    }

    async fn update_stack(
        &self,
        c: &Clients,
        before: &Value,
        want: &Value,
    ) -> Result<(), ProviderError> {
        let name = before["name"].as_str().unwrap_or_default();
        let template = want["template"].as_str().unwrap_or_default();
        let change_set_name = format!(
            "airlock-{}",
            &blake3::hash(want.to_string().as_bytes()).to_hex()[..16]
        );
        let Some((id, _)) = self
            .change_set(
                c,
                name,
                &change_set_name,
                template,
                &map_of(want, "parameters"),
                &map_of(want, "tags"),
            )
            .await?
        else {
            return Ok(());
        };
        c.cfn
            .execute_change_set()
            .stack_name(name)
            .change_set_name(&id)
            .send()
            .await
            .map_err(|e| sdk_err("ExecuteChangeSet", e))?;
        match self.wait_stack(c, name).await? {
            Some((s, _)) if s == "UPDATE_COMPLETE" => Ok(()),
            Some((s, why)) if s == "UPDATE_ROLLBACK_COMPLETE" => Err(ProviderError::Refused(
                format!("the update of stack {name} rolled back: {why}"),
            )),
            Some((s, why)) => Err(ProviderError::Unavailable(format!(
                "stack {name} ended {s}: {why}"
            ))),
            None => Err(ProviderError::Unavailable(format!(
                "stack {name} vanished during the update"
            ))),
        }
    }

    pub(crate) async fn stack_apply(&self, plan: &Plan, t: &Target) -> Result<(), ProviderError> {
        let c = self.clients(&t.region);
        let Some(d) = plan.diffs.first() else {
            return Ok(());
        };
        match (&d.before, &d.after) {
            (None, Some(after)) => self.create_stack(&c, after).await,
            (Some(before), None) => {
                self.delete_stack(&c, before["name"].as_str().unwrap_or(&t.name))
                    .await
            }
            (Some(before), Some(after)) => self.update_stack(&c, before, after).await,
            (None, None) => Ok(()),
        }
    }

    pub(crate) async fn stack_put_back(
        &self,
        t: &Target,
        prior: &Option<Value>,
        now: &Option<Value>,
    ) -> Result<(), ProviderError> {
        let c = self.clients(&t.region);
        match (prior, now) {
            (None, Some(now)) => {
                self.delete_stack(&c, now["name"].as_str().unwrap_or(&t.name))
                    .await
            }
            (Some(prior), None) => self.create_stack(&c, prior).await,
            (Some(prior), Some(now)) => self.update_stack(&c, now, prior).await,
            (None, None) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn importers_are_found_by_whole_export_names() {
        let t = r#"{"Resources": {"Q": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": {"Fn::ImportValue": "billing-prod-VpcId"}}}}}"#;
        assert!(template_imports(t, "billing-prod-VpcId"));
        assert!(!template_imports(t, "billing-prod-Vpc"));
        assert!(!template_imports(t, "prod-VpcId"));
        let yaml =
            "Resources:\n  Q:\n    Properties:\n      Name: !ImportValue billing-prod-VpcId\n";
        assert!(template_imports(yaml, "billing-prod-VpcId"));
        // Named, but never imported.
        assert!(!template_imports(
            r#"{"Description": "billing-prod-VpcId"}"#,
            "billing-prod-VpcId"
        ));
    }

    #[test]
    fn replacements_and_retained_data_come_from_json_templates() {
        let old = template_resources(
            r#"{"Resources": {"T": {"Type": "AWS::DynamoDB::Table", "DeletionPolicy": "Retain", "Properties": {"TableName": "a", "BillingMode": "PAY_PER_REQUEST"}}}}"#,
        );
        let renamed = template_resources(
            r#"{"Resources": {"T": {"Type": "AWS::DynamoDB::Table", "Properties": {"TableName": "b", "BillingMode": "PAY_PER_REQUEST"}}}}"#,
        );
        let billing = template_resources(
            r#"{"Resources": {"T": {"Type": "AWS::DynamoDB::Table", "Properties": {"TableName": "a", "BillingMode": "PROVISIONED"}}}}"#,
        );
        assert!(replaced_by_templates(old.as_ref(), renamed.as_ref(), "T"));
        assert!(!replaced_by_templates(old.as_ref(), billing.as_ref(), "T"));
        assert!(keeps_data(old.as_ref(), "T", false));
        assert!(!keeps_data(renamed.as_ref(), "T", false));
        assert!(template_resources("Resources:\n  T: {}\n").is_none());
        assert!(uses_parameter(
            &json!({"MaxSize": {"Ref": "WebMax"}}),
            "WebMax"
        ));
        assert!(uses_parameter(&json!([{"Fn::Sub": "${Env}-web"}]), "Env"));
        assert!(!uses_parameter(&json!({"Ref": "WebMaxOld"}), "WebMax"));
    }
}
