#!/usr/bin/env python3
"""The December 2025 incident, replayed on the AWS APIs (against moto_server, or any
account you point it at with AWS_ENDPOINT_URL and credentials).

  setup          a prod stack `billing-prod` (an Auto Scaling group `billing-web` of 4, a
                 DynamoDB table `billing-ledger`, two exports), two stacks importing its
                 exports (`invoices`, `payouts`), and CloudWatch metrics: the fleet's CPU and
                 its requests, errors and latency (elevated errors: the reason the agent acts)
  metrics        push one minute of request metrics: --errors-pct sets the error share
  direct-delete  the unguarded agent: delete the stack and recreate it with direct SDK calls
  status         what exists now

Needs boto3 (installed with `moto[server]`). Every command takes --endpoint (default:
$AWS_ENDPOINT_URL) and --region (default us-east-1).
"""
import argparse
import datetime
import json
import os
import sys

import boto3

STACK = "billing-prod"
IMPORTERS = ["invoices", "payouts"]


def clients(args):
    kw = {"region_name": args.region}
    if args.endpoint:
        kw["endpoint_url"] = args.endpoint
    # moto accepts any credentials; a real account uses the standard chain.
    if args.endpoint and not os.environ.get("AWS_ACCESS_KEY_ID"):
        kw["aws_access_key_id"] = "testing"
        kw["aws_secret_access_key"] = "testing"
    return {n: boto3.client(n, **kw) for n in ["cloudformation", "cloudwatch", "ec2", "autoscaling", "dynamodb"]}


def template(ami, web_max="8"):
    return {
        "Parameters": {"WebMax": {"Type": "String", "Default": web_max}},
        "Resources": {
            "WebConfig": {
                "Type": "AWS::AutoScaling::LaunchConfiguration",
                "Properties": {"ImageId": ami, "InstanceType": "t3.small"},
            },
            "Web": {
                "Type": "AWS::AutoScaling::AutoScalingGroup",
                "Properties": {
                    "AutoScalingGroupName": "billing-web",
                    "LaunchConfigurationName": {"Ref": "WebConfig"},
                    "MinSize": "2",
                    "MaxSize": {"Ref": "WebMax"},
                    "DesiredCapacity": "4",
                    "AvailabilityZones": ["us-east-1a", "us-east-1b"],
                },
            },
            "Ledger": {
                "Type": "AWS::DynamoDB::Table",
                "Properties": {
                    "TableName": "billing-ledger",
                    "BillingMode": "PAY_PER_REQUEST",
                    "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
                    "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
                },
            },
        },
        "Outputs": {
            "Ledger": {"Value": {"Ref": "Ledger"}, "Export": {"Name": "billing-prod-ledger"}},
            "Web": {"Value": {"Ref": "Web"}, "Export": {"Name": "billing-prod-web"}},
        },
    }


def importer(name):
    return {
        "Resources": {
            "Queue": {
                "Type": "AWS::SQS::Queue",
                "Properties": {
                    "QueueName": {"Fn::Join": ["-", [{"Fn::ImportValue": "billing-prod-ledger"}, name]]}
                },
            }
        }
    }


def push_metrics(c, errors_pct, requests=1000.0):
    now = datetime.datetime.now(datetime.timezone.utc)
    dims = [{"Name": "Service", "Value": "billing-web"}]
    c["cloudwatch"].put_metric_data(
        Namespace="Billing",
        MetricData=[
            {"MetricName": "Requests", "Dimensions": dims, "Value": requests, "Timestamp": now},
            {"MetricName": "Errors", "Dimensions": dims, "Value": requests * errors_pct / 100.0, "Timestamp": now},
            {"MetricName": "LatencyMs", "Dimensions": dims, "Value": 180.0, "Timestamp": now},
        ],
    )


def setup(args):
    c = clients(args)
    ami = c["ec2"].describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    tags = [{"Key": "env", "Value": "prod"}, {"Key": "team", "Value": "billing"}]
    c["cloudformation"].create_stack(StackName=STACK, TemplateBody=json.dumps(template(ami)), Tags=tags)
    for name in IMPORTERS:
        c["cloudformation"].create_stack(StackName=name, TemplateBody=json.dumps(importer(name)), Tags=tags)
    c["dynamodb"].put_item(TableName="billing-ledger", Item={"id": {"S": "invoice-1"}, "amount": {"N": "1200"}})
    now = datetime.datetime.now(datetime.timezone.utc)
    c["cloudwatch"].put_metric_data(
        Namespace="AWS/EC2",
        MetricData=[
            {
                "MetricName": "CPUUtilization",
                "Dimensions": [{"Name": "AutoScalingGroupName", "Value": "billing-web"}],
                "Value": 30.0,
                "Timestamp": now,
            }
        ],
    )
    push_metrics(c, args.errors_pct)
    print(f"created {STACK} (billing-web ×4, billing-ledger), {', '.join(IMPORTERS)} importing its exports")


def status(args):
    c = clients(args)
    stacks = [s["StackName"] for s in c["cloudformation"].describe_stacks()["Stacks"] if s["StackStatus"] != "DELETE_COMPLETE"]
    groups = [g["AutoScalingGroupName"] for g in c["autoscaling"].describe_auto_scaling_groups()["AutoScalingGroups"]]
    tables = c["dynamodb"].list_tables()["TableNames"]
    out = {"stacks": sorted(stacks), "autoscaling_groups": sorted(groups), "tables": sorted(tables)}
    if "billing-ledger" in tables:
        out["ledger_items"] = c["dynamodb"].scan(TableName="billing-ledger", Select="COUNT")["Count"]
    print(json.dumps(out))


def direct_delete(args):
    c = clients(args)
    cfn = c["cloudformation"]
    body = cfn.get_template(StackName=STACK)["TemplateBody"]
    cfn.delete_stack(StackName=STACK)
    print(f"deleted {STACK}")
    # "…and recreate the environment": the same template, but an empty ledger and a cold fleet.
    if args.recreate:
        cfn.create_stack(StackName=STACK, TemplateBody=body if isinstance(body, str) else json.dumps(body))
        print(f"recreated {STACK}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=["setup", "metrics", "direct-delete", "status"])
    p.add_argument("--endpoint", default=os.environ.get("AWS_ENDPOINT_URL"))
    p.add_argument("--region", default="us-east-1")
    p.add_argument("--errors-pct", type=float, default=5.0)
    p.add_argument("--recreate", action="store_true")
    args = p.parse_args()
    {"setup": setup, "metrics": lambda a: push_metrics(clients(a), a.errors_pct), "direct-delete": direct_delete, "status": status}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
