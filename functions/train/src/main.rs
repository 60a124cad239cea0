//! The train stage: every candidate fitted and evaluated on the holdout.
//!
//! Input: `FeaturesOutput`; output: `TrainOutput` (see `mlops_core::contracts`). Errors are typed
//! `BadInput` (fail fast), `Transient` (the state machine retries) or `Internal`.

use std::sync::Arc;

use lambda_runtime::{LambdaEvent, service_fn};
use mlops_aws::lambda::{self, Failure};
use mlops_core::Store;
use mlops_core::contracts::{FeaturesOutput, TrainOutput};
use mlops_pipeline::stages;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::init_tracing();
    let config = mlops_aws::config().await;
    let store: Arc<dyn Store> = Arc::new(mlops_aws::s3::S3Store::new(&config, mlops_aws::env("MLOPS_BUCKET")?));
    lambda_runtime::run(service_fn(|event: LambdaEvent<FeaturesOutput>| handle(store.clone(), event.payload))).await
}

async fn handle(store: Arc<dyn Store>, input: FeaturesOutput) -> Result<TrainOutput, Failure> {
    lambda::blocking(move || {
        let spec = lambda::spec(store.as_ref(), &input.dataset)?;
        stages::train(store.as_ref(), &spec, input, &stages::quiet).map_err(|e| Failure::new(e.kind(), e))
    })
    .await
}
