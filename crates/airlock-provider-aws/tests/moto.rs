//! The `aws` provider against a real `moto_server` (one fresh account per test): plan
//! contents (contained resources, importers, per-zone capacity, replacements), apply,
//! snapshot, revert, conflicts, irreversible deletes, and the provider contract the gate's
//! crash safety rests on.
#![cfg(test)]

#[path = "../../../testsupport/moto.rs"]
mod moto;

use airlock_core::conformance::{Fixture, check};
use airlock_core::risk::Risk;
use airlock_core::slo::SignalSource;
use airlock_core::{ActionRequest, Provider, ProviderError, Verb};
use airlock_provider_aws::cloudwatch::CloudWatchSignals;
use airlock_provider_aws::{AwsProvider, Connection, Settings, sdk_config};
use aws_config::SdkConfig;
use moto::Moto;
use serde_json::json;

fn connection(m: &Moto) -> Connection {
    Connection {
        region: "us-east-1".into(),
        endpoint_url: Some(m.url.clone()),
        credentials: Some(aws_credential_types::Credentials::new(
            "testing", "testing", None, None, "tests",
        )),
        ..Connection::default()
    }
}

async fn provider(m: &Moto) -> AwsProvider {
    let settings = Settings {
        connection: connection(m),
        poll_ms: 20,
        wait_s: 60,
        ..Settings::default()
    };
    AwsProvider::connect("aws", settings).await
}

async fn sdk(m: &Moto) -> SdkConfig {
    sdk_config(&connection(m)).await
}

/// Metric points are stamped with the real time: CloudWatch's windows are wall-clock.
#[expect(
    clippy::disallowed_methods,
    reason = "CloudWatch points carry real instants"
)]
fn now() -> aws_smithy_types::DateTime {
    aws_smithy_types::DateTime::from(std::time::SystemTime::now())
}

/// Applies `plan`, reverts it, and checks the resource is back as its snapshot recorded;
/// returns the state the apply left in between.
async fn apply_and_revert(p: &AwsProvider, plan: &airlock_core::Plan) -> Option<serde_json::Value> {
    let target = std::slice::from_ref(&plan.target);
    let before = p.snapshot(target).await.unwrap();
    let applied = p.apply(plan).await.unwrap();
    p.restore(&before, &applied).await.unwrap();
    assert_eq!(
        p.snapshot(target).await.unwrap(),
        before,
        "reverted to the snapshot"
    );
    applied.entries[0].1.clone()
}

fn req(verb: Verb, target: &str) -> ActionRequest {
    ActionRequest::new(verb, target.parse().unwrap())
}

async fn ami(cfg: &SdkConfig) -> String {
    let ec2 = aws_sdk_ec2::Client::new(cfg);
    let images = ec2.describe_images().owners("amazon").send().await.unwrap();
    images.images()[0].image_id().unwrap().to_string()
}

/// A launch configuration and a group of `n` in two zones, tagged.
async fn group(cfg: &SdkConfig, name: &str, n: i32, tags: &[(&str, &str)]) {
    let asg = aws_sdk_autoscaling::Client::new(cfg);
    asg.create_launch_configuration()
        .launch_configuration_name(format!("{name}-lc"))
        .image_id(ami(cfg).await)
        .instance_type("t3.micro")
        .send()
        .await
        .unwrap();
    let mut call = asg
        .create_auto_scaling_group()
        .auto_scaling_group_name(name)
        .launch_configuration_name(format!("{name}-lc"))
        .min_size(1)
        .max_size(10)
        .desired_capacity(n)
        .availability_zones("us-east-1a")
        .availability_zones("us-east-1b");
    for (k, v) in tags {
        call = call.tags(
            aws_sdk_autoscaling::types::Tag::builder()
                .key(*k)
                .value(*v)
                .resource_id(name)
                .resource_type("auto-scaling-group")
                .propagate_at_launch(false)
                .build(),
        );
    }
    call.send().await.unwrap();
}

/// CPU utilisation points of a group, now.
async fn cpu(cfg: &SdkConfig, group: &str, value: f64) {
    let cw = aws_sdk_cloudwatch::Client::new(cfg);
    cw.put_metric_data()
        .namespace("AWS/EC2")
        .metric_data(
            aws_sdk_cloudwatch::types::MetricDatum::builder()
                .metric_name("CPUUtilization")
                .dimensions(
                    aws_sdk_cloudwatch::types::Dimension::builder()
                        .name("AutoScalingGroupName")
                        .value(group)
                        .build(),
                )
                .value(value)
                .timestamp(now())
                .build(),
        )
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn an_autoscaling_scale_predicts_zones_and_headroom_and_meets_the_contract() {
    let m = Moto::start().await;
    let cfg = sdk(&m).await;
    group(&cfg, "web", 4, &[("env", "prod"), ("tier", "critical")]).await;
    cpu(&cfg, "web", 40.0).await;
    let p = provider(&m).await;

    let plan = p
        .plan(&req(Verb::Scale, "aws:autoscaling-group/us-east-1/web").param("desired", 2))
        .await
        .unwrap();
    assert_eq!(
        plan.diffs[0].before,
        Some(json!({"desired": 4, "min": 1, "max": 10}))
    );
    assert_eq!(
        plan.diffs[0].after,
        Some(json!({"desired": 2, "min": 1, "max": 10}))
    );
    assert_eq!(plan.blast.capacity_delta_pct, -50.0);
    assert_eq!(plan.resource.env, "prod");
    assert_eq!(plan.resource.tier, "critical");
    assert_eq!(plan.blast.watch, vec!["web".to_string()]);
    // 4 members at 40% CPU is a demand of 160; 2 at a ceiling of 80% carry 160.
    assert_eq!(plan.predicted.headroom, Some(1.0));
    let zones: u32 = plan.predicted.az_capacity_rps.len() as u32;
    assert_eq!(zones, 2, "{:?}", plan.predicted);
    let total: f64 = plan.predicted.az_capacity_rps.values().sum();
    assert_eq!(total, 160.0);
    assert!(plan.predicted.headroom_after_az_loss.is_some());
    assert!(plan.summary.contains("per zone after"), "{}", plan.summary);

    // A group with no CPU data: headroom is missing, not guessed.
    group(&cfg, "batch", 2, &[]).await;
    let blind = p
        .plan(&req(Verb::Scale, "aws:autoscaling-group/us-east-1/batch").param("desired", 1))
        .await
        .unwrap();
    assert_eq!(blind.predicted.headroom, None);
    assert_eq!(
        blind.resource.env, "unknown",
        "no env tag: the production posture"
    );

    // A listing read: every group in the region, by address name.
    let all = p
        .plan(&req(Verb::Read, "aws:autoscaling-group/us-east-1"))
        .await
        .unwrap();
    assert_eq!(all.diffs[0].after, Some(json!({"names": ["batch", "web"]})));
    let e = p
        .plan(&req(Verb::Delete, "aws:autoscaling-group/us-east-1"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("only a read"), "{e}");

    // Bad input is a clear error that changes nothing.
    let e = p
        .plan(&req(Verb::Scale, "aws:autoscaling-group/us-east-1/web").param("desired", 20))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("between min and max"), "{e}");
    let e = p
        .plan(&req(Verb::Scale, "aws:autoscaling-group/us-east-1/nope").param("desired", 2))
        .await
        .unwrap_err();
    assert!(matches!(e, ProviderError::NotFound(_)), "{e}");

    let scale =
        |n: u32| req(Verb::Scale, "aws:autoscaling-group/us-east-1/web").param("desired", n);
    let passed = check(
        &p,
        &Fixture {
            change: scale(6),
            other: scale(3),
        },
    )
    .await
    .unwrap();
    assert_eq!(passed.len(), 8, "{passed:?}");
}

#[tokio::test]
async fn a_stack_delete_lists_what_it_contains_its_importers_and_what_is_lost() {
    let m = Moto::start().await;
    let cfg = sdk(&m).await;
    let cfn = aws_sdk_cloudformation::Client::new(&cfg);
    let image = ami(&cfg).await;
    let template = json!({
        "Resources": {
            "LC": {"Type": "AWS::AutoScaling::LaunchConfiguration",
                   "Properties": {"ImageId": image, "InstanceType": "t3.micro"}},
            "Web": {"Type": "AWS::AutoScaling::AutoScalingGroup",
                    "Properties": {"AutoScalingGroupName": "billing-web", "LaunchConfigurationName": {"Ref": "LC"},
                                   "MinSize": "1", "MaxSize": "8", "DesiredCapacity": "4",
                                   "AvailabilityZones": ["us-east-1a", "us-east-1b"]}},
            "Ledger": {"Type": "AWS::DynamoDB::Table",
                       "Properties": {"TableName": "billing-ledger", "BillingMode": "PAY_PER_REQUEST",
                                      "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
                                      "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}]}}
        },
        "Outputs": {"Ledger": {"Value": {"Ref": "Ledger"}, "Export": {"Name": "billing-prod-ledger"}}}
    });
    cfn.create_stack()
        .stack_name("Billing-Prod")
        .template_body(template.to_string())
        .tags(
            aws_sdk_cloudformation::types::Tag::builder()
                .key("Environment")
                .value("production")
                .build(),
        )
        .send()
        .await
        .unwrap();
    for importer in ["invoices", "payouts"] {
        let t = json!({"Resources": {"Q": {"Type": "AWS::SQS::Queue", "Properties": {
            "QueueName": {"Fn::Join": ["-", [{"Fn::ImportValue": "billing-prod-ledger"}, importer]]}}}}});
        cfn.create_stack()
            .stack_name(importer)
            .template_body(t.to_string())
            .send()
            .await
            .unwrap();
    }
    // A stack that names the export without importing it is no dependent.
    let t = json!({"Description": "billing-prod-ledger is documented here", "Resources": {"Q": {"Type": "AWS::SQS::Queue"}}});
    cfn.create_stack()
        .stack_name("docs")
        .template_body(t.to_string())
        .send()
        .await
        .unwrap();

    let p = provider(&m).await;
    // The address is lower case; the stack's name is not.
    let plan = p
        .plan(&req(Verb::Delete, "aws:stack/us-east-1/billing-prod"))
        .await
        .unwrap();
    let kinds: Vec<String> = plan.contained.iter().map(|c| c.addr.to_string()).collect();
    assert!(
        kinds.contains(&"aws:autoscaling-group/us-east-1/billing-web".to_string()),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&"aws:table/us-east-1/billing-ledger".to_string()),
        "{kinds:?}"
    );
    assert_eq!(plan.contained.len(), 3, "{kinds:?}");
    assert!(
        plan.contained
            .iter()
            .all(|c| c.resource.parents == vec!["aws:stack/us-east-1/billing-prod".to_string()])
    );
    assert!(plan.contained.iter().all(|c| c.resource.env == "prod"));
    assert_eq!(plan.blast.dependents, 2);
    assert_eq!(
        plan.blast.dependent_names,
        vec!["invoices".to_string(), "payouts".to_string()]
    );
    assert!(
        plan.summary.contains("the other stacks' templates"),
        "{}",
        plan.summary
    );
    assert!(plan.destructive);
    assert!(!plan.reversible);
    assert_eq!(plan.loses.len(), 1, "{:?}", plan.loses);
    assert!(plan.loses[0].contains("billing-ledger"), "{:?}", plan.loses);
    assert_eq!(plan.resource.env, "prod");
    assert_eq!(plan.blast.capacity_delta_pct, -100.0);

    // An update through a change set: renaming the table replaces it, so the update is
    // destructive and loses the table's data; a capacity change alone is neither.
    let mut renamed = template.clone();
    renamed["Resources"]["Ledger"]["Properties"]["TableName"] = json!("billing-ledger-v2");
    let up = p
        .plan(
            &req(Verb::Update, "aws:stack/us-east-1/billing-prod")
                .param("template", renamed.to_string()),
        )
        .await
        .unwrap();
    assert!(up.destructive, "{}", up.summary);
    assert!(
        up.loses
            .iter()
            .any(|l| l.contains("Ledger") && l.contains("replaced")),
        "{:?}",
        up.loses
    );
    let mut smaller = template.clone();
    smaller["Resources"]["Web"]["Properties"]["DesiredCapacity"] = json!("3");
    let up = p
        .plan(
            &req(Verb::Update, "aws:stack/us-east-1/billing-prod")
                .param("template", smaller.to_string()),
        )
        .await
        .unwrap();
    assert!(!up.destructive, "{}", up.summary);
    assert!(up.loses.is_empty());
    assert!(up.reversible);
    assert_eq!(up.contained.len(), 1, "{}", up.summary);
    // Planning created no stack, changed no template and left no change set behind.
    let sets = cfn
        .list_change_sets()
        .stack_name("Billing-Prod")
        .send()
        .await
        .unwrap();
    assert!(sets.summaries().is_empty(), "{:?}", sets.summaries());
}

/// A stack without data (a topic holds no messages): update it through a change set,
/// delete it and recreate it.
#[tokio::test]
async fn a_stateless_stack_meets_the_contract_for_update_and_delete() {
    let m = Moto::start().await;
    let cfg = sdk(&m).await;
    let cfn = aws_sdk_cloudformation::Client::new(&cfg);
    let template = |name: &str| {
        json!({"Parameters": {"Retention": {"Type": "String", "Default": "60"}},
               "Resources": {"T": {"Type": "AWS::SNS::Topic", "Properties": {
                   "TopicName": name, "DisplayName": {"Ref": "Retention"}}}}})
        .to_string()
    };
    cfn.create_stack()
        .stack_name("queues")
        .template_body(template("jobs"))
        .tags(
            aws_sdk_cloudformation::types::Tag::builder()
                .key("env")
                .value("staging")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let p = provider(&m).await;
    let set = |v: &str| {
        req(Verb::Update, "aws:stack/us-east-1/queues").param("parameters", json!({"Retention": v}))
    };
    let passed = check(
        &p,
        &Fixture {
            change: set("120"),
            other: set("300"),
        },
    )
    .await
    .unwrap();
    assert_eq!(passed.len(), 8, "{passed:?}");

    // Create: validated by CloudFormation, reversible by deleting it again.
    let create = p
        .plan(
            &req(Verb::Create, "aws:stack/us-east-1/topics")
                .param(
                    "template",
                    json!({"Resources": {"T": {"Type": "AWS::SNS::Topic"}}}),
                )
                .param("tags", json!({"env": "dev"})),
        )
        .await
        .unwrap();
    assert_eq!(create.diffs[0].before, None);
    assert!(create.reversible && !create.destructive);
    assert_eq!(create.resource.env, "dev");
    let none = p
        .snapshot(std::slice::from_ref(&create.target))
        .await
        .unwrap();
    let made = p.apply(&create).await.unwrap();
    assert_eq!(made.entries[0].1, create.diffs[0].after);
    let e = p
        .plan(&req(Verb::Create, "aws:stack/us-east-1/topics").param("template", "{}"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("exists"), "{e}");
    p.restore(&none, &made).await.unwrap();
    assert!(
        cfn.describe_stacks()
            .stack_name("topics")
            .send()
            .await
            .is_err()
    );
    let bad = p
        .plan(&req(Verb::Create, "aws:stack/us-east-1/broken").param("template", "not a template"))
        .await
        .unwrap_err();
    assert!(
        !matches!(bad, ProviderError::Unavailable(_)),
        "a clear refusal: {bad}"
    );

    // Delete, then revert: the stack is recreated from its template and parameters.
    let plan = p
        .plan(&req(Verb::Delete, "aws:stack/us-east-1/queues"))
        .await
        .unwrap();
    assert!(plan.reversible, "{}", plan.summary);
    assert_eq!(plan.resource.env, "staging");
    let before = p
        .snapshot(std::slice::from_ref(&plan.target))
        .await
        .unwrap();
    let applied = p.apply(&plan).await.unwrap();
    assert_eq!(applied.entries[0].1, None);
    assert!(
        cfn.describe_stacks()
            .stack_name("queues")
            .send()
            .await
            .is_err()
    );
    p.restore(&before, &applied).await.unwrap();
    let again = p
        .snapshot(std::slice::from_ref(&plan.target))
        .await
        .unwrap();
    assert_eq!(again, before, "recreated as it was");
}

#[tokio::test]
async fn ecs_scale_and_deploy_meet_the_contract() {
    let m = Moto::start().await;
    let cfg = sdk(&m).await;
    let ecs = aws_sdk_ecs::Client::new(&cfg);
    ecs.create_cluster()
        .cluster_name("prod")
        .send()
        .await
        .unwrap();
    for image in ["api:1", "api:2", "api:3"] {
        ecs.register_task_definition()
            .family("api")
            .container_definitions(
                aws_sdk_ecs::types::ContainerDefinition::builder()
                    .name("api")
                    .image(image)
                    .memory(256)
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }
    ecs.create_service()
        .cluster("prod")
        .service_name("api")
        .task_definition("api:1")
        .desired_count(4)
        .tags(
            aws_sdk_ecs::types::Tag::builder()
                .key("env")
                .value("prod")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let p = provider(&m).await;
    let plan = p
        .plan(&req(Verb::Scale, "aws:ecs-service/us-east-1/prod/api").param("desired", 1))
        .await
        .unwrap();
    assert_eq!(plan.blast.capacity_delta_pct, -75.0);
    assert_eq!(plan.resource.env, "prod");
    assert_eq!(plan.blast.watch, vec!["api".to_string()]);

    let scale = |n: u32| req(Verb::Scale, "aws:ecs-service/us-east-1/prod/api").param("desired", n);
    assert_eq!(
        check(
            &p,
            &Fixture {
                change: scale(6),
                other: scale(2)
            }
        )
        .await
        .unwrap()
        .len(),
        8
    );
    let deploy = |td: &str| {
        req(Verb::Deploy, "aws:ecs-service/us-east-1/prod/api").param("task_definition", td)
    };
    assert_eq!(
        check(
            &p,
            &Fixture {
                change: deploy("api:2"),
                other: deploy("api:3")
            }
        )
        .await
        .unwrap()
        .len(),
        8
    );
    let e = p.plan(&deploy("api:9")).await.unwrap_err();
    assert!(
        matches!(
            e,
            ProviderError::NotFound(_) | ProviderError::InvalidParams(_)
        ),
        "{e}"
    );
}

#[tokio::test]
async fn instances_stop_and_start_and_a_member_of_a_group_is_its_capacity() {
    let m = Moto::start().await;
    let cfg = sdk(&m).await;
    let ec2 = aws_sdk_ec2::Client::new(&cfg);
    let out = ec2
        .run_instances()
        .image_id(ami(&cfg).await)
        .min_count(1)
        .max_count(1)
        .send()
        .await
        .unwrap();
    let id = out.instances()[0].instance_id().unwrap().to_string();
    let p = provider(&m).await;
    let target = format!("aws:instance/us-east-1/{id}");
    let stop = p
        .plan(&req(Verb::Update, &target).param("state", "stopped"))
        .await
        .unwrap();
    assert!(stop.reversible && !stop.destructive);
    assert_eq!(stop.blast.capacity_delta_pct, -100.0);
    assert_eq!(
        apply_and_revert(&p, &stop).await,
        Some(json!({"state": "stopped"}))
    );

    let terminate = p.plan(&req(Verb::Delete, &target)).await.unwrap();
    assert!(terminate.destructive && !terminate.reversible);

    // A member of a group: its capacity is a share of the group's, and the group is its parent.
    group(&cfg, "workers", 4, &[("env", "prod")]).await;
    let asg = aws_sdk_autoscaling::Client::new(&cfg);
    let g = asg
        .describe_auto_scaling_groups()
        .auto_scaling_group_names("workers")
        .send()
        .await
        .unwrap();
    let member = g.auto_scaling_groups()[0].instances()[0]
        .instance_id()
        .unwrap()
        .to_string();
    let plan = p
        .plan(&req(
            Verb::Delete,
            &format!("aws:instance/us-east-1/{member}"),
        ))
        .await
        .unwrap();
    assert_eq!(
        plan.resource.parents,
        vec!["aws:autoscaling-group/us-east-1/workers".to_string()]
    );
    assert_eq!(plan.blast.capacity_delta_pct, -25.0);
    assert_eq!(plan.blast.watch, vec!["workers".to_string()]);
}

#[tokio::test]
async fn data_deletes_are_irreversible_without_a_backup_and_revertible_with_one() {
    let m = Moto::start().await;
    let cfg = sdk(&m).await;
    let rds = aws_sdk_rds::Client::new(&cfg);
    rds.create_db_instance()
        .db_instance_identifier("orders")
        .db_instance_class("db.t3.micro")
        .engine("postgres")
        .allocated_storage(20)
        .master_username("admin")
        .master_user_password("not-a-real-secret")
        .tags(
            aws_sdk_rds::types::Tag::builder()
                .key("env")
                .value("prod")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let p = provider(&m).await;
    let bare = p
        .plan(&req(Verb::Delete, "aws:db-instance/us-east-1/orders"))
        .await
        .unwrap();
    assert!(!bare.reversible && bare.destructive);
    assert!(
        bare.loses[0].contains("no final snapshot"),
        "{:?}",
        bare.loses
    );
    assert_eq!(bare.resource.env, "prod");
    let kept = p
        .plan(&req(Verb::Delete, "aws:db-instance/us-east-1/orders").param("final_snapshot", true))
        .await
        .unwrap();
    assert!(kept.reversible && kept.loses.is_empty());
    assert_eq!(
        apply_and_revert(&p, &kept).await,
        kept.diffs[0].after,
        "gone, with its final snapshot"
    );

    let ddb = aws_sdk_dynamodb::Client::new(&cfg);
    ddb.create_table()
        .table_name("Sessions")
        .billing_mode(aws_sdk_dynamodb::types::BillingMode::PayPerRequest)
        .attribute_definitions(
            aws_sdk_dynamodb::types::AttributeDefinition::builder()
                .attribute_name("id")
                .attribute_type(aws_sdk_dynamodb::types::ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            aws_sdk_dynamodb::types::KeySchemaElement::builder()
                .attribute_name("id")
                .key_type(aws_sdk_dynamodb::types::KeyType::Hash)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let tables = p
        .plan(&req(Verb::Read, "aws:table/us-east-1"))
        .await
        .unwrap();
    assert_eq!(tables.diffs[0].after, Some(json!({"names": ["sessions"]})));
    let bare = p
        .plan(&req(Verb::Delete, "aws:table/us-east-1/sessions"))
        .await
        .unwrap();
    assert!(
        !bare.reversible && bare.loses[0].contains("no backup"),
        "{:?}",
        bare.loses
    );
    let kept = p
        .plan(&req(Verb::Delete, "aws:table/us-east-1/sessions").param("backup", true))
        .await
        .unwrap();
    assert_eq!(apply_and_revert(&p, &kept).await, kept.diffs[0].after);

    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&cfg)
            .force_path_style(true)
            .build(),
    );
    s3.create_bucket()
        .bucket("invoices-archive")
        .send()
        .await
        .unwrap();
    for k in ["a", "b", "c"] {
        s3.put_object()
            .bucket("invoices-archive")
            .key(k)
            .body(aws_sdk_s3::primitives::ByteStream::from_static(b"12345"))
            .send()
            .await
            .unwrap();
    }
    let empty = p
        .plan(
            &req(Verb::Delete, "aws:bucket/us-east-1/invoices-archive")
                .param("contents_only", true),
        )
        .await
        .unwrap();
    assert!(!empty.reversible);
    assert_eq!(
        empty.loses,
        vec!["3 object(s), 15 bytes, in bucket invoices-archive".to_string()]
    );
    let applied = p.apply(&empty).await.unwrap();
    assert_eq!(
        applied.entries[0].1,
        Some(json!({"objects": 0, "bytes": 0}))
    );
    let gone = p
        .plan(&req(Verb::Delete, "aws:bucket/us-east-1/invoices-archive"))
        .await
        .unwrap();
    p.apply(&gone).await.unwrap();
    assert!(
        s3.head_bucket()
            .bucket("invoices-archive")
            .send()
            .await
            .is_err()
    );
}

#[tokio::test]
async fn attaching_an_admin_equivalent_policy_is_critical() {
    let m = Moto::start().await;
    let cfg = sdk(&m).await;
    let iam = aws_sdk_iam::Client::new(&cfg);
    iam.create_role()
        .role_name("deployer")
        .assume_role_policy_document(r#"{"Version":"2012-10-17","Statement":[]}"#)
        .send()
        .await
        .unwrap();
    let doc = |action: &str| {
        json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": action, "Resource": "*"}]})
            .to_string()
    };
    let escalate = iam
        .create_policy()
        .policy_name("pass-any-role")
        .policy_document(doc("iam:PassRole"))
        .send()
        .await
        .unwrap();
    let reader = iam
        .create_policy()
        .policy_name("read-logs")
        .policy_document(doc("logs:Get*"))
        .send()
        .await
        .unwrap();
    let arn = |o: &aws_sdk_iam::operation::create_policy::CreatePolicyOutput| {
        o.policy().unwrap().arn().unwrap().to_string()
    };
    let p = provider(&m).await;
    let attach =
        |arn: &str| req(Verb::Update, "aws:role/global/deployer").param("attach_policy", arn);
    let admin = p
        .plan(&attach("arn:aws:iam::aws:policy/AdministratorAccess"))
        .await
        .unwrap();
    assert_eq!(admin.min_risk, Some(Risk::Critical), "{}", admin.summary);
    let custom = p.plan(&attach(&arn(&escalate))).await.unwrap();
    assert_eq!(custom.min_risk, Some(Risk::Critical), "{}", custom.summary);
    let narrow = p.plan(&attach(&arn(&reader))).await.unwrap();
    assert_eq!(narrow.min_risk, None, "{}", narrow.summary);
    assert_eq!(
        apply_and_revert(&p, &narrow).await,
        Some(json!({"attached": [arn(&reader)]}))
    );
}

#[tokio::test]
async fn cloudwatch_signals_are_read_and_missing_data_is_missing() {
    let m = Moto::start().await;
    let cfg = sdk(&m).await;
    let cw = aws_sdk_cloudwatch::Client::new(&cfg);
    let put = |metric: &str, value: f64| {
        cw.put_metric_data().namespace("Shop").metric_data(
            aws_sdk_cloudwatch::types::MetricDatum::builder()
                .metric_name(metric)
                .dimensions(
                    aws_sdk_cloudwatch::types::Dimension::builder()
                        .name("Service")
                        .value("web")
                        .build(),
                )
                .value(value)
                .timestamp(now())
                .build(),
        )
    };
    put("Requests", 600.0).send().await.unwrap();
    put("Latency", 0.12).send().await.unwrap();
    let spec = |metric: &str, stat: &str, scale: f64| airlock_watch::cloudwatch::MetricSpec {
        namespace: "Shop".into(),
        metric: metric.into(),
        stat: stat.into(),
        dimensions: [("Service".to_string(), "$service".to_string())].into(),
        scale,
    };
    let config = airlock_watch::cloudwatch::CloudWatchConfig {
        requests: spec("Requests", "Sum", 1.0),
        errors: spec("Errors", "Sum", 1.0),
        p99_ms: spec("Latency", "Maximum", 1000.0),
        ..Default::default()
    };
    let signals = CloudWatchSignals::connect(&connection(&m), config.clone()).await;
    let s = signals.recent("web", 300).await.unwrap().unwrap();
    assert_eq!(s.requests, Some(600.0));
    assert_eq!(
        s.errors,
        Some(0.0),
        "no error points while requests have data: zero errors"
    );
    assert_eq!(s.p99_ms, Some(120.0));
    let c = signals.read("web").await.unwrap().unwrap();
    assert_eq!(c.requests_total, 600.0);
    assert_eq!(
        signals.recent("checkout", 300).await.unwrap(),
        None,
        "a service without data is missing"
    );
    assert_eq!(signals.read("checkout").await.unwrap(), None);
    let strict = CloudWatchSignals::connect(
        &connection(&m),
        airlock_watch::cloudwatch::CloudWatchConfig {
            errors_absent_is_zero: false,
            ..config
        },
    )
    .await;
    assert_eq!(strict.recent("web", 300).await.unwrap(), None);
}

/// With `scoped_sessions`, each apply and revert runs in a session assumed with a policy
/// naming only the plan's resources. moto does not enforce IAM, so this shows the sessions
/// are assumed and used end to end; what the policy allows is checked by the unit tests.
#[tokio::test]
async fn changes_run_in_sessions_scoped_to_their_plan() {
    let m = Moto::start().await;
    let cfg = sdk(&m).await;
    group(&cfg, "web", 4, &[("env", "staging")]).await;
    let iam = aws_sdk_iam::Client::new(&cfg);
    let role = iam
        .create_role()
        .role_name("airlock")
        .assume_role_policy_document(r#"{"Version":"2012-10-17","Statement":[]}"#)
        .send()
        .await
        .unwrap();
    let settings = Settings {
        connection: Connection {
            role_arn: Some(role.role().unwrap().arn().to_string()),
            ..connection(&m)
        },
        poll_ms: 20,
        scoped_sessions: true,
        ..Settings::default()
    };
    let p = AwsProvider::connect("aws", settings).await;
    let plan = p
        .plan(&req(Verb::Scale, "aws:autoscaling-group/us-east-1/web").param("desired", 2))
        .await
        .unwrap();
    assert_eq!(
        apply_and_revert(&p, &plan).await,
        Some(json!({"desired": 2, "min": 1, "max": 10}))
    );
}

/// The same class as the replay's stack, in another form: a `live` environment, an importer
/// written in YAML with the short `!ImportValue`, a bucket (its objects are lost) and a table
/// kept by `DeletionPolicy: Retain` (not lost).
#[tokio::test]
async fn another_stack_shape_gets_the_same_plan_facts() {
    let m = Moto::start().await;
    let cfg = sdk(&m).await;
    let cfn = aws_sdk_cloudformation::Client::new(&cfg);
    let template = json!({
        "Resources": {
            "Receipts": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": "payments-receipts"}},
            "Audit": {"Type": "AWS::DynamoDB::Table", "DeletionPolicy": "Retain",
                      "Properties": {"TableName": "payments-audit", "BillingMode": "PAY_PER_REQUEST",
                                     "AttributeDefinitions": [{"AttributeName": "k", "AttributeType": "S"}],
                                     "KeySchema": [{"AttributeName": "k", "KeyType": "HASH"}]}}
        },
        "Outputs": {"Bucket": {"Value": {"Ref": "Receipts"}, "Export": {"Name": "Payments:ReceiptsBucket"}}}
    });
    cfn.create_stack()
        .stack_name("PaymentsLive")
        .template_body(template.to_string())
        .tags(
            aws_sdk_cloudformation::types::Tag::builder()
                .key("ENV")
                .value("Live")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let yaml = "Resources:\n  Topic:\n    Type: AWS::SNS::Topic\n    Properties:\n      DisplayName: !ImportValue Payments:ReceiptsBucket\n";
    cfn.create_stack()
        .stack_name("ledger-sync")
        .template_body(yaml)
        .send()
        .await
        .unwrap();

    let p = provider(&m).await;
    let plan = p
        .plan(&req(Verb::Delete, "aws:stack/us-west-2/paymentslive"))
        .await
        .unwrap_err();
    assert!(
        matches!(plan, ProviderError::NotFound(_)),
        "another region holds no such stack: {plan}"
    );
    let plan = p
        .plan(&req(Verb::Delete, "aws:stack/us-east-1/paymentslive"))
        .await
        .unwrap();
    assert_eq!(plan.resource.env, "prod", "`ENV=Live` is prod");
    assert_eq!(plan.blast.dependent_names, vec!["ledger-sync".to_string()]);
    assert_eq!(plan.loses.len(), 1, "{:?}", plan.loses);
    assert!(plan.loses[0].contains("Receipts"), "{:?}", plan.loses);
    let lost: Vec<String> = plan
        .contained
        .iter()
        .filter(|c| c.loses_data)
        .map(|c| c.addr.to_string())
        .collect();
    assert_eq!(
        lost,
        vec!["aws:bucket/us-east-1/payments-receipts".to_string()]
    );
    assert!(!plan.reversible && plan.destructive);
}
