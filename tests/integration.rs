//! End-to-end tests of the `mlops` binary, one test crate with a shared harness.

mod architecture;
mod aws_iam;
mod aws_localstack;
mod canary;
mod contract;
mod deployment_checks;
mod harness;
mod local_pipeline;
mod monitoring;
mod serving;
