//! What an `aws` address names: `aws:KIND/REGION/NAME`, e.g. `aws:stack/us-east-1/billing-prod`.
//!
//! Addresses are lower case; AWS names may not be. A name is resolved against what the
//! account holds, case-insensitively, and two resources whose names differ only by case are
//! refused as ambiguous rather than guessed between.

use airlock_core::{ProviderError, ResourceAddr};

/// The kinds of resource the provider manages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Stack,
    AutoScalingGroup,
    EcsService,
    Instance,
    DbInstance,
    Table,
    Bucket,
    Role,
    User,
}

impl Kind {
    pub const ALL: [Kind; 9] = [
        Kind::Stack,
        Kind::AutoScalingGroup,
        Kind::EcsService,
        Kind::Instance,
        Kind::DbInstance,
        Kind::Table,
        Kind::Bucket,
        Kind::Role,
        Kind::User,
    ];

    /// The kind's name in addresses.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Stack => "stack",
            Kind::AutoScalingGroup => "autoscaling-group",
            Kind::EcsService => "ecs-service",
            Kind::Instance => "instance",
            Kind::DbInstance => "db-instance",
            Kind::Table => "table",
            Kind::Bucket => "bucket",
            Kind::Role => "role",
            Kind::User => "user",
        }
    }

    /// The kind a CloudFormation resource type maps to, when the provider manages it.
    pub fn of_cfn_type(t: &str) -> Option<Kind> {
        Some(match t {
            "AWS::CloudFormation::Stack" => Kind::Stack,
            "AWS::AutoScaling::AutoScalingGroup" => Kind::AutoScalingGroup,
            "AWS::ECS::Service" => Kind::EcsService,
            "AWS::EC2::Instance" => Kind::Instance,
            "AWS::RDS::DBInstance" => Kind::DbInstance,
            "AWS::DynamoDB::Table" => Kind::Table,
            "AWS::S3::Bucket" => Kind::Bucket,
            "AWS::IAM::Role" => Kind::Role,
            "AWS::IAM::User" => Kind::User,
            _ => return None,
        })
    }

    /// Whether the resource holds data that is gone when it is deleted or replaced.
    pub fn stateful(self) -> bool {
        matches!(self, Kind::DbInstance | Kind::Table | Kind::Bucket)
    }

    /// IAM is global: its addresses carry `global` where others carry a region.
    pub fn global(self) -> bool {
        matches!(self, Kind::Role | Kind::User)
    }
}

/// Whether a CloudFormation resource type holds data that its deletion destroys (the
/// managed kinds above, and the other common stores).
pub fn cfn_type_stateful(t: &str) -> bool {
    Kind::of_cfn_type(t).is_some_and(Kind::stateful)
        || matches!(
            t,
            "AWS::RDS::DBCluster"
                | "AWS::EC2::Volume"
                | "AWS::EFS::FileSystem"
                | "AWS::ElastiCache::ReplicationGroup"
                | "AWS::Elasticsearch::Domain"
                | "AWS::OpenSearchService::Domain"
                | "AWS::SQS::Queue"
                | "AWS::Kinesis::Stream"
                | "AWS::DocDB::DBCluster"
                | "AWS::Neptune::DBCluster"
                | "AWS::Redshift::Cluster"
        )
}

/// The address kind of a CloudFormation resource type the provider does not manage:
/// `AWS::SQS::Queue` ⇒ `sqs-queue`.
pub fn cfn_type_kind(t: &str) -> String {
    match Kind::of_cfn_type(t) {
        Some(k) => k.as_str().to_string(),
        None => {
            let parts: Vec<&str> = t.split("::").skip(1).collect();
            airlock_core::addr::addr_name(&parts.join("-"))
        }
    }
}

/// A parsed `aws` address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub kind: Kind,
    /// The region, or `global` for IAM.
    pub region: String,
    /// The resource's name as the address spells it (lower case); for an ECS service,
    /// `CLUSTER/SERVICE`. Empty for `aws:KIND/REGION`: every resource of the kind there.
    pub name: String,
}

fn valid_region(r: &str) -> bool {
    let parts: Vec<&str> = r.split('-').collect();
    parts.len() >= 3
        && parts[0].len() == 2
        && parts[0].chars().all(|c| c.is_ascii_lowercase())
        && parts[parts.len() - 1].chars().all(|c| c.is_ascii_digit())
        && parts[1..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
}

impl Target {
    /// Parses an address of this provider; a clear error names what is wrong.
    pub fn parse(addr: &ResourceAddr) -> Result<Self, ProviderError> {
        let kinds: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
        let kind = Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == addr.kind())
            .ok_or_else(|| {
                ProviderError::InvalidParams(format!(
                    "`{addr}`: unknown aws kind `{}`; known kinds: {}",
                    addr.kind(),
                    kinds.join(", ")
                ))
            })?;
        // `aws:KIND/REGION` alone names every resource of the kind there (for reads).
        let (region, name) = match addr.name().split_once('/') {
            Some(parts) => parts,
            None if valid_region(addr.name()) || (kind.global() && addr.name() == "global") => {
                return Ok(Self {
                    kind,
                    region: addr.name().to_string(),
                    name: String::new(),
                });
            }
            None => {
                return Err(ProviderError::InvalidParams(format!(
                    "`{addr}` is not of the form `{}:{}/REGION/NAME`",
                    addr.provider(),
                    kind.as_str()
                )));
            }
        };
        if kind.global() {
            if region != "global" {
                return Err(ProviderError::InvalidParams(format!(
                    "`{addr}`: IAM is global; write `{}:{}/global/{name}`",
                    addr.provider(),
                    kind.as_str()
                )));
            }
        } else if !valid_region(region) {
            return Err(ProviderError::InvalidParams(format!(
                "`{addr}`: `{region}` is not an AWS region such as `us-east-1`"
            )));
        }
        let segments = name.split('/').count();
        let want = if kind == Kind::EcsService { 2 } else { 1 };
        if segments != want {
            return Err(ProviderError::InvalidParams(if kind == Kind::EcsService {
                format!("`{addr}`: an ECS service is named `REGION/CLUSTER/SERVICE`")
            } else {
                format!("`{addr}`: the name after the region has no `/`")
            }));
        }
        Ok(Self {
            kind,
            region: region.to_string(),
            name: name.to_string(),
        })
    }

    /// The address of a resource of `kind` named `name` (any case) in `region`.
    pub fn addr_of(
        provider: &str,
        kind: &str,
        region: &str,
        name: &str,
    ) -> Result<ResourceAddr, ProviderError> {
        ResourceAddr::new(provider, kind, &format!("{region}/{name}"))
            .map_err(|e| ProviderError::InvalidParams(e.to_string()))
    }
}

/// The one name among `names` that matches `wanted` case-insensitively: an exact match
/// first, then a unique case-insensitive one. Two that differ only by case are ambiguous.
pub fn resolve<'a>(
    wanted: &str,
    names: impl IntoIterator<Item = &'a str>,
    what: &str,
) -> Result<Option<String>, ProviderError> {
    let mut found: Vec<&str> = Vec::new();
    for n in names {
        if n == wanted {
            return Ok(Some(n.to_string()));
        }
        if n.eq_ignore_ascii_case(wanted) {
            found.push(n);
        }
    }
    match found.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some((*one).to_string())),
        many => Err(ProviderError::InvalidParams(format!(
            "{what} `{wanted}` is ambiguous: {} differ only by case; Airlock's addresses are lower case, so rename one",
            many.join(", ")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Result<Target, ProviderError> {
        Target::parse(&s.parse().unwrap())
    }

    #[test]
    fn addresses_name_a_kind_a_region_and_a_name() {
        let a = t("aws:stack/us-east-1/billing-prod").unwrap();
        assert_eq!(
            (a.kind, a.region.as_str(), a.name.as_str()),
            (Kind::Stack, "us-east-1", "billing-prod")
        );
        let e = t("aws:ecs-service/eu-west-2/prod/api").unwrap();
        assert_eq!(e.name, "prod/api");
        assert!(t("aws:role/global/deployer").is_ok());
        assert!(t("aws:role/us-east-1/deployer").is_err());
        assert!(t("aws:stack/billing-prod").is_err());
        let all = t("aws:stack/eu-west-1").unwrap();
        assert_eq!((all.region.as_str(), all.name.as_str()), ("eu-west-1", ""));
        assert_eq!(t("aws:role/global").unwrap().name, "");
        assert!(t("aws:stack/useast1/x").is_err());
        assert!(t("aws:stack/us-east-1/a/b").is_err());
        assert!(t("aws:ecs-service/us-east-1/api").is_err());
        let e = t("aws:vpc/us-east-1/x").unwrap_err().to_string();
        assert!(e.contains("unknown aws kind `vpc`"), "{e}");
        assert!(t("aws:stack/us-gov-west-1/x").is_ok());
    }

    #[test]
    fn names_resolve_case_insensitively_and_refuse_ambiguity() {
        assert_eq!(
            resolve("billing", ["Billing", "other"], "stack").unwrap(),
            Some("Billing".to_string())
        );
        assert_eq!(
            resolve("billing", ["Billing", "billing"], "stack").unwrap(),
            Some("billing".to_string())
        );
        assert!(resolve("billing", ["Billing", "BILLING"], "stack").is_err());
        assert_eq!(resolve("x", ["y"], "stack").unwrap(), None);
    }

    #[test]
    fn cloudformation_types_map_to_kinds() {
        assert_eq!(
            cfn_type_kind("AWS::AutoScaling::AutoScalingGroup"),
            "autoscaling-group"
        );
        assert_eq!(cfn_type_kind("AWS::SQS::Queue"), "sqs-queue");
        assert!(cfn_type_stateful("AWS::DynamoDB::Table"));
        assert!(!cfn_type_stateful("AWS::AutoScaling::LaunchConfiguration"));
    }
}
