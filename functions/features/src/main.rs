//! The features stage: all processed batches merged and split, the features fitted.
//!
//! Input: `PrepOutput`; output: `FeaturesOutput` (see `mlops_core::contracts`). Errors are typed
//! `BadInput` (fail fast), `Transient` (the state machine retries) or `Internal`.

use mlops_aws::lambda;
use mlops_core::contracts::PrepOutput;
use mlops_pipeline::stages;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::run_stage(|store, spec, input: PrepOutput| stages::features(store, spec, input)).await
}
