//! The register stage: the best candidate registered, and promoted if it beats the champion
//! on the same holdout by the policy's margin.
//!
//! Input: `TrainOutput`; output: `RegisterOutput` (see `mlops_core::contracts`); its
//! `promoted` drives the state machine's choice. Errors are typed `BadInput`, `Transient` or
//! `Internal`. The run's outcome and duration are reported as metrics (`mlops_aws::metrics`).

use mlops_aws::{lambda, metrics};
use mlops_core::contracts::TrainOutput;
use mlops_pipeline::stages;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::run_stage(|store, spec, input: TrainOutput| {
        stages::register(store, spec, input).map(|(output, record)| {
            metrics::emit(&[metrics::run_line(&record, metrics::now())]);
            output
        })
    })
    .await
}
