//! An `aws` CLI command as a request to the `aws` provider, so the hook can plan it against
//! the real state (a `delete-stack` with the stack's real contents and importers) instead of
//! the classifier's guess. Only plain commands map: every word a literal (no variables, no
//! substitutions), one command, a known operation on one resource. Anything else is left
//! to the classifier.

use crate::lex::{Part, Token, tokenize};
use airlock_core::{ActionRequest, ResourceAddr, Verb};
use serde_json::{Map, Value, json};

/// The words of a plain command, or `None` when any word is not a literal or the text holds
/// more than one command.
fn literal_words(segment: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    for t in tokenize(segment) {
        match t {
            Token::Word(w) => {
                let mut s = String::new();
                for p in &w.parts {
                    match p {
                        Part::Lit { text, .. } => s.push_str(text),
                        _ => return None,
                    }
                }
                out.push(s);
            }
            Token::Op(_) => return None,
            Token::Redir(_) => {}
        }
    }
    Some(out)
}

/// Global options of the `aws` CLI that take a value.
const GLOBAL_WITH_VALUE: &[&str] = &[
    "--profile",
    "--region",
    "--output",
    "--endpoint-url",
    "--query",
    "--color",
    "--ca-bundle",
    "--cli-read-timeout",
    "--cli-connect-timeout",
    "--cli-binary-format",
];

/// An operation's options: `--key value`, `--key=value`, or a flag.
struct Opts(Vec<(String, Option<String>)>);

impl Opts {
    fn parse(words: &[String]) -> Self {
        let mut out = Vec::new();
        let mut i = 0;
        while let Some(w) = words.get(i) {
            i += 1;
            let Some(key) = w.strip_prefix("--") else {
                out.push((String::new(), Some(w.clone())));
                continue;
            };
            if let Some((k, v)) = key.split_once('=') {
                out.push((k.to_string(), Some(v.to_string())));
            } else if let Some(v) = words.get(i).filter(|v| !v.starts_with("--")) {
                out.push((key.to_string(), Some(v.clone())));
                i += 1;
            } else {
                out.push((key.to_string(), None));
            }
        }
        Self(out)
    }
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.as_deref())
    }
    fn flag(&self, key: &str) -> bool {
        self.0.iter().any(|(k, _)| k == key)
    }
    fn positional(&self) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k.is_empty())
            .filter_map(|(_, v)| v.as_deref())
            .collect()
    }
    fn number(&self, key: &str) -> Option<Option<u64>> {
        match self.get(key) {
            None => Some(None),
            Some(v) => v.parse().ok().map(Some),
        }
    }
}

fn request(
    verb: Verb,
    kind: &str,
    region: &str,
    name: &str,
    params: Map<String, Value>,
) -> Option<ActionRequest> {
    let target: ResourceAddr = format!("aws:{kind}/{region}/{name}").parse().ok()?;
    let mut r = ActionRequest::new(verb, target);
    r.params = params;
    Some(r)
}

fn params(pairs: &[(&str, Option<Value>)]) -> Map<String, Value> {
    pairs
        .iter()
        .filter_map(|(k, v)| v.clone().map(|v| (k.to_string(), v)))
        .collect()
}

/// The request an `aws` CLI command makes of the `aws` provider, with `region` where the
/// command names none (`--region`, or `AWS_REGION`/`AWS_DEFAULT_REGION` set on the command).
pub fn aws_request(segment: &str, region: &str) -> Option<ActionRequest> {
    let words = literal_words(segment)?;
    let mut region = region.to_string();
    let mut i = 0;
    // `AWS_REGION=eu-west-1 aws …`
    while let Some((k, v)) = words.get(i).and_then(|w| w.split_once('=')) {
        if !k
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        {
            break;
        }
        if k == "AWS_REGION" || k == "AWS_DEFAULT_REGION" {
            region = v.to_string();
        }
        i += 1;
    }
    if words.get(i).map(String::as_str) != Some("aws") {
        return None;
    }
    i += 1;
    let mut ops = Vec::new();
    while let Some(w) = words.get(i) {
        i += 1;
        if let Some(opt) = w.strip_prefix("--") {
            let (k, inline) = opt
                .split_once('=')
                .map_or((opt, None), |(k, v)| (k, Some(v)));
            let takes = GLOBAL_WITH_VALUE.contains(&w.split('=').next().unwrap_or(w));
            let value = match inline {
                Some(v) => Some(v.to_string()),
                None if takes => {
                    i += 1;
                    words.get(i - 1).cloned()
                }
                None => None,
            };
            if k == "region"
                && let Some(v) = value
            {
                region = v;
            }
            continue;
        }
        ops.push(w.clone());
        if ops.len() == 2 {
            break;
        }
    }
    let (service, op) = (ops.first()?.as_str(), ops.get(1)?.as_str());
    let o = Opts::parse(words.get(i..).unwrap_or_default());
    let r = region.as_str();
    match (service, op) {
        ("cloudformation", "delete-stack") => {
            request(Verb::Delete, "stack", r, o.get("stack-name")?, Map::new())
        }
        ("autoscaling", "set-desired-capacity") => request(
            Verb::Scale,
            "autoscaling-group",
            r,
            o.get("auto-scaling-group-name")?,
            params(&[("desired", o.number("desired-capacity")?.map(|n| json!(n)))]),
        ),
        ("autoscaling", "update-auto-scaling-group") => {
            let p = params(&[
                ("desired", o.number("desired-capacity")?.map(|n| json!(n))),
                ("min", o.number("min-size")?.map(|n| json!(n))),
                ("max", o.number("max-size")?.map(|n| json!(n))),
            ]);
            // Other settings (launch template, zones…) are the classifier's to judge.
            let known = [
                "auto-scaling-group-name",
                "desired-capacity",
                "min-size",
                "max-size",
            ];
            if p.is_empty() || o.0.iter().any(|(k, _)| !known.contains(&k.as_str())) {
                return None;
            }
            request(
                Verb::Scale,
                "autoscaling-group",
                r,
                o.get("auto-scaling-group-name")?,
                p,
            )
        }
        ("ecs", "update-service") => {
            let name = format!(
                "{}/{}",
                o.get("cluster").unwrap_or("default"),
                o.get("service")?
            );
            match (o.number("desired-count")?, o.get("task-definition")) {
                (Some(n), None) => request(
                    Verb::Scale,
                    "ecs-service",
                    r,
                    &name,
                    params(&[("desired", Some(json!(n)))]),
                ),
                (None, Some(td)) => request(
                    Verb::Deploy,
                    "ecs-service",
                    r,
                    &name,
                    params(&[("task_definition", Some(json!(td)))]),
                ),
                _ => None,
            }
        }
        ("ec2", "terminate-instances" | "stop-instances" | "start-instances") => {
            let ids = o.get("instance-ids")?;
            // One instance per request; several are the classifier's.
            if o.0.iter().filter(|(k, _)| k.is_empty()).count() > 0 || ids.contains(',') {
                return None;
            }
            match op {
                "terminate-instances" => request(Verb::Delete, "instance", r, ids, Map::new()),
                "stop-instances" => request(
                    Verb::Update,
                    "instance",
                    r,
                    ids,
                    params(&[("state", Some(json!("stopped")))]),
                ),
                _ => request(
                    Verb::Update,
                    "instance",
                    r,
                    ids,
                    params(&[("state", Some(json!("running")))]),
                ),
            }
        }
        ("rds", "delete-db-instance") => {
            let keep =
                !o.flag("skip-final-snapshot") || o.get("final-db-snapshot-identifier").is_some();
            request(
                Verb::Delete,
                "db-instance",
                r,
                o.get("db-instance-identifier")?,
                params(&[("final_snapshot", keep.then(|| json!(true)))]),
            )
        }
        ("dynamodb", "delete-table") => {
            request(Verb::Delete, "table", r, o.get("table-name")?, Map::new())
        }
        ("s3", "rb") => {
            let bucket = o
                .positional()
                .first()?
                .strip_prefix("s3://")?
                .trim_end_matches('/')
                .to_string();
            (!bucket.contains('/')).then_some(())?;
            request(Verb::Delete, "bucket", r, &bucket, Map::new())
        }
        ("s3", "rm") if o.flag("recursive") => {
            let bucket = o
                .positional()
                .first()?
                .strip_prefix("s3://")?
                .trim_end_matches('/')
                .to_string();
            // A prefix is part of a bucket: the classifier judges it.
            (!bucket.contains('/')).then_some(())?;
            request(
                Verb::Delete,
                "bucket",
                r,
                &bucket,
                params(&[("contents_only", Some(json!(true)))]),
            )
        }
        (
            "iam",
            op @ ("attach-role-policy" | "detach-role-policy" | "attach-user-policy"
            | "detach-user-policy"),
        ) => {
            let (kind, name) = if op.ends_with("role-policy") {
                ("role", o.get("role-name")?)
            } else {
                ("user", o.get("user-name")?)
            };
            let key = if op.starts_with("attach") {
                "attach_policy"
            } else {
                "detach_policy"
            };
            request(
                Verb::Update,
                kind,
                "global",
                name,
                params(&[(key, Some(json!(o.get("policy-arn")?)))]),
            )
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(s: &str) -> Option<(Verb, String, Value)> {
        aws_request(s, "us-east-1").map(|r| (r.verb, r.target.to_string(), Value::Object(r.params)))
    }

    #[test]
    fn plain_aws_commands_map_onto_the_provider() {
        assert_eq!(
            req("aws cloudformation delete-stack --stack-name Billing-Prod"),
            Some((
                Verb::Delete,
                "aws:stack/us-east-1/billing-prod".into(),
                json!({})
            ))
        );
        assert_eq!(
            req(
                "aws --region eu-west-1 autoscaling set-desired-capacity --auto-scaling-group-name web --desired-capacity 2"
            ),
            Some((
                Verb::Scale,
                "aws:autoscaling-group/eu-west-1/web".into(),
                json!({"desired": 2})
            ))
        );
        assert_eq!(
            req(
                "AWS_REGION=eu-central-1 aws rds delete-db-instance --db-instance-identifier orders --skip-final-snapshot"
            ),
            Some((
                Verb::Delete,
                "aws:db-instance/eu-central-1/orders".into(),
                json!({})
            ))
        );
        assert_eq!(
            req(
                "aws rds delete-db-instance --db-instance-identifier orders --final-db-snapshot-identifier last"
            ),
            Some((
                Verb::Delete,
                "aws:db-instance/us-east-1/orders".into(),
                json!({"final_snapshot": true})
            ))
        );
        assert_eq!(
            req("aws ecs update-service --cluster prod --service api --desired-count=3"),
            Some((
                Verb::Scale,
                "aws:ecs-service/us-east-1/prod/api".into(),
                json!({"desired": 3})
            ))
        );
        assert_eq!(
            req("aws s3 rm s3://invoices/ --recursive"),
            Some((
                Verb::Delete,
                "aws:bucket/us-east-1/invoices".into(),
                json!({"contents_only": true})
            ))
        );
        assert_eq!(
            req(
                "aws iam attach-role-policy --role-name deployer --policy-arn arn:aws:iam::aws:policy/AdministratorAccess"
            ),
            Some((
                Verb::Update,
                "aws:role/global/deployer".into(),
                json!({"attach_policy": "arn:aws:iam::aws:policy/AdministratorAccess"})
            ))
        );
        // Another spelling of the same class: a profile, `--opt=value`, an output option
        // after the operation, a mixed-case name.
        assert_eq!(
            req(
                "aws --profile ops --region=ap-south-1 dynamodb delete-table --table-name=Orders --output json"
            ),
            Some((
                Verb::Delete,
                "aws:table/ap-south-1/orders".into(),
                json!({})
            ))
        );
        assert_eq!(
            req("aws ec2 stop-instances --instance-ids i-0abc"),
            Some((
                Verb::Update,
                "aws:instance/us-east-1/i-0abc".into(),
                json!({"state": "stopped"})
            ))
        );
    }

    #[test]
    fn anything_not_plain_is_left_to_the_classifier() {
        for s in [
            "aws cloudformation delete-stack --stack-name $STACK",
            "aws cloudformation delete-stack --stack-name \"$(cat name)\"",
            "aws cloudformation delete-stack --stack-name a && aws cloudformation delete-stack --stack-name b",
            "aws ec2 terminate-instances --instance-ids i-1 i-2",
            "aws s3 rm s3://invoices/2024 --recursive",
            "aws s3 rm s3://invoices/a.pdf",
            "aws autoscaling update-auto-scaling-group --auto-scaling-group-name web --launch-template x",
            "aws cloudformation describe-stacks",
            "aws autoscaling set-desired-capacity --auto-scaling-group-name web --desired-capacity many",
            "gcloud compute instances delete x",
        ] {
            assert_eq!(req(s), None, "{s}");
        }
    }
}
