//! The register stage: the best candidate registered, and promoted if it beats the champion
//! on the same holdout by the policy's margin.
//!
//! Input: `TrainOutput`; output: `RegisterOutput` (see `mlops_core::contracts`); its
//! `promoted` drives the state machine's choice. Errors are typed `BadInput`, `Transient` or
//! `Internal`.

use std::sync::Arc;

use lambda_runtime::{LambdaEvent, service_fn};
use mlops_aws::lambda::{self, Failure};
use mlops_core::Store;
use mlops_core::contracts::{RegisterOutput, TrainOutput};
use mlops_pipeline::stages;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::init_tracing();
    let config = mlops_aws::config().await;
    let store: Arc<dyn Store> = Arc::new(mlops_aws::s3::S3Store::new(&config, mlops_aws::env("MLOPS_BUCKET")?));
    lambda_runtime::run(service_fn(|event: LambdaEvent<TrainOutput>| handle(store.clone(), event.payload))).await
}

async fn handle(store: Arc<dyn Store>, input: TrainOutput) -> Result<RegisterOutput, Failure> {
    lambda::blocking(move || {
        let spec = lambda::spec(store.as_ref(), &input.features.dataset)?;
        let (output, _) = stages::register(store.as_ref(), &spec, input).map_err(|e| Failure::new(e.kind(), e))?;
        Ok(output)
    })
    .await
}
