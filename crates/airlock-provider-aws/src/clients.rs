//! The SDK clients, one set per region, and how the SDK's errors become the gate's.

use airlock_core::ProviderError;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_smithy_http_client::tls;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// Every service client the provider uses, for one region.
#[derive(Clone, Debug)]
pub(crate) struct Clients {
    pub cfn: aws_sdk_cloudformation::Client,
    pub asg: aws_sdk_autoscaling::Client,
    pub cw: aws_sdk_cloudwatch::Client,
    pub ecs: aws_sdk_ecs::Client,
    pub ec2: aws_sdk_ec2::Client,
    pub rds: aws_sdk_rds::Client,
    pub ddb: aws_sdk_dynamodb::Client,
    pub s3: aws_sdk_s3::Client,
    pub iam: aws_sdk_iam::Client,
}

impl Clients {
    pub fn new(base: &SdkConfig, region: &str) -> Self {
        let cfg = base
            .to_builder()
            .region(Region::new(region.to_string()))
            .build();
        // An endpoint override (a local emulator, a VPC endpoint) rarely serves
        // virtual-hosted bucket names.
        let s3 = aws_sdk_s3::config::Builder::from(&cfg)
            .force_path_style(cfg.endpoint_url().is_some())
            .build();
        Self {
            cfn: aws_sdk_cloudformation::Client::new(&cfg),
            asg: aws_sdk_autoscaling::Client::new(&cfg),
            cw: aws_sdk_cloudwatch::Client::new(&cfg),
            ecs: aws_sdk_ecs::Client::new(&cfg),
            ec2: aws_sdk_ec2::Client::new(&cfg),
            rds: aws_sdk_rds::Client::new(&cfg),
            ddb: aws_sdk_dynamodb::Client::new(&cfg),
            s3: aws_sdk_s3::Client::from_conf(s3),
            iam: aws_sdk_iam::Client::new(&cfg),
        }
    }
}

/// Where Airlock's own credentials and endpoint come from.
#[derive(Debug, Clone, Default)]
pub struct Connection {
    /// The region used for credentials and IAM; addresses name their own regions.
    pub region: String,
    /// A named profile of the shared config files, instead of the default chain.
    pub profile: Option<String>,
    /// A role Airlock assumes for every call it makes.
    pub role_arn: Option<String>,
    /// An endpoint for every service (otherwise `AWS_ENDPOINT_URL`, then AWS's own).
    pub endpoint_url: Option<String>,
    /// Fixed credentials instead of the standard chain (for embedding and tests; never
    /// read from a config file).
    pub credentials: Option<aws_credential_types::Credentials>,
}

/// Loads the SDK configuration: the standard chain (environment, shared files, web
/// identity, container and instance roles), an HTTPS client over rustls, and, when set, a
/// profile, a role to assume and an endpoint.
pub async fn sdk_config(conn: &Connection) -> SdkConfig {
    with_role(conn, root_config(conn).await).await
}

/// The configuration with Airlock's own credentials, before any role is assumed.
pub(crate) async fn root_config(conn: &Connection) -> SdkConfig {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .region(Region::new(conn.region.clone()));
    if let Some(p) = &conn.profile {
        loader = loader.profile_name(p);
    }
    if let Some(url) = &conn.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    if let Some(c) = &conn.credentials {
        loader = loader.credentials_provider(c.clone());
    }
    loader.load().await
}

/// `base` acting as `role_arn`, when one is set.
async fn with_role(conn: &Connection, base: SdkConfig) -> SdkConfig {
    match &conn.role_arn {
        None => base,
        Some(role) => {
            let provider = aws_config::sts::AssumeRoleProvider::builder(role)
                .session_name("airlock")
                .configure(&base)
                .build()
                .await;
            base.to_builder()
                .credentials_provider(
                    aws_credential_types::provider::SharedCredentialsProvider::new(provider),
                )
                .build()
        }
    }
}

/// The gate's error for an SDK error. A service's answer means the request was refused and
/// nothing changed; a request that may have left but got no answer is `Unavailable`, and
/// the gate then reads the world back.
pub(crate) fn sdk_err<E, R>(
    op: &str,
    e: aws_smithy_runtime_api::client::result::SdkError<E, R>,
) -> ProviderError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    use aws_smithy_runtime_api::client::result::SdkError;
    match &e {
        SdkError::ConstructionFailure(_) => {
            ProviderError::InvalidParams(format!("{op}: {}", DisplayErrorContext(&e)))
        }
        SdkError::ServiceError(s) => {
            let code = s.err().code().unwrap_or("unknown");
            let msg = s.err().message().unwrap_or("");
            classify(op, code, msg)
        }
        _ => ProviderError::Unavailable(format!("{op}: {}", DisplayErrorContext(&e))),
    }
}

/// A service error by its code: missing things, bad requests, and the rest (access denied,
/// throttling, a resource busy) as refused.
pub(crate) fn classify(op: &str, code: &str, msg: &str) -> ProviderError {
    let text = format!("{op}: {code}: {msg}");
    let lower = msg.to_ascii_lowercase();
    if code.contains("NotFound")
        || code.starts_with("NoSuch")
        || lower.contains("does not exist")
        || lower.contains("not found")
    {
        ProviderError::NotFound(text)
    } else if code.starts_with("Validation") || code.starts_with("InvalidParameter") {
        ProviderError::InvalidParams(text)
    } else {
        ProviderError::Refused(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_errors_are_classified_by_code() {
        assert!(matches!(
            classify(
                "DescribeStacks",
                "ValidationError",
                "Stack with id x does not exist"
            ),
            ProviderError::NotFound(_)
        ));
        assert!(matches!(
            classify(
                "UpdateAutoScalingGroup",
                "ValidationError",
                "Desired capacity 9 > max 8"
            ),
            ProviderError::InvalidParams(_)
        ));
        assert!(matches!(
            classify("DeleteStack", "AccessDenied", "not authorized"),
            ProviderError::Refused(_)
        ));
        assert!(matches!(
            classify("DescribeDBInstances", "DBInstanceNotFound", "x"),
            ProviderError::NotFound(_)
        ));
    }
}
