//! The `aws` provider: CloudFormation stacks, Auto Scaling groups, ECS services, EC2
//! instances, RDS instances, DynamoDB tables, S3 buckets and IAM roles and users behind the
//! gate, through the official AWS SDK for Rust; and CloudWatch as a signal source.
//!
//! Addresses are `aws:KIND/REGION/NAME` (`aws:stack/us-east-1/billing-prod`; IAM is
//! `aws:role/global/NAME`). Plans read the real state: a stack's delete lists every resource
//! it contains and the stacks importing its exports; a scale predicts capacity per zone and
//! headroom from CloudWatch. Every mutation checks that the resource is still as its plan
//! saw it (a conflict changes nothing), and every change can be read back after a crash.
//! Airlock acts with its own credentials; agents never hold any.

mod clients;
pub mod cloudwatch;
mod fleet;
mod iam;
mod list;
mod metrics;
mod mirror;
mod provider;
mod scope;
mod stack;
mod stores;
pub mod target;
mod wall;

pub use clients::{Connection, sdk_config};
pub use mirror::CliMirror;
pub use provider::{AwsKind, AwsProvider, Settings};
