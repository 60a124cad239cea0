//! The features stage: all processed batches merged and split, the features fitted.
//!
//! Input: `PrepOutput`; output: `FeaturesOutput` (see `mlops_core::contracts`). Errors are typed
//! `BadInput`, `Configuration` or `Internal` (fail fast), or `Transient` (the state machine retries).

use mlops_aws::lambda;
use mlops_core::contracts::PrepOutput;
use mlops_pipeline::stages;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::run_stage(|store, spec, input: PrepOutput| stages::features(store, spec, input)).await
}
