//! The prep stage: every raw file not yet processed, validated into one processed batch.
//!
//! Input: `RunRequest`; output: `PrepOutput` (see `mlops_core::contracts`). Errors are typed
//! `BadInput` (fail fast), `Transient` (the state machine retries) or `Internal`.

use mlops_aws::lambda;
use mlops_core::contracts::RunRequest;
use mlops_pipeline::stages;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::run_stage(|store, spec, input: RunRequest| stages::prep(store, spec, &input)).await
}
