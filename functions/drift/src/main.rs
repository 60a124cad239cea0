//! The scheduled drift check: recent inferences of the production model against its training
//! reference; past the thresholds an alert to the SNS topic and a retrain execution, under the
//! cooldown and the loop guard.
//!
//! Input: `{"dataset": NAME}` (`DriftRequest`); output: the drift report.

use std::sync::Arc;

use lambda_runtime::{LambdaEvent, service_fn};
use mlops_aws::executions::Executions;
use mlops_aws::lambda::{self, Failure};
use mlops_aws::s3::S3Store;
use mlops_aws::sns::SnsNotifier;
use mlops_core::Store;
use mlops_core::contracts::DriftReport;
use mlops_core::contracts::DriftRequest;
use mlops_core::{Notifier, Retrainer};
use mlops_pipeline::monitor::{self, Current};

struct Clients {
    store: Arc<dyn Store>,
    notifier: Arc<dyn Notifier + Send + Sync>,
    retrainer: Arc<dyn Retrainer + Send + Sync>,
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::init_tracing();
    let config = mlops_aws::config().await;
    let clients = Arc::new(Clients {
        store: Arc::new(S3Store::new(&config, mlops_aws::env("MLOPS_BUCKET")?)),
        notifier: Arc::new(SnsNotifier::new(&config, mlops_aws::env("MLOPS_ALERT_TOPIC_ARN")?)),
        retrainer: Arc::new(Executions::new(&config, mlops_aws::env("MLOPS_STATE_MACHINE_ARN")?)),
    });
    lambda_runtime::run(service_fn(|event: LambdaEvent<DriftRequest>| handle(clients.clone(), event.payload))).await
}

async fn handle(clients: Arc<Clients>, input: DriftRequest) -> Result<DriftReport, Failure> {
    lambda::blocking(move || {
        let spec = lambda::spec(clients.store.as_ref(), &input.dataset)?;
        Ok(monitor::check(clients.store.as_ref(), &spec, Current::Logs, clients.notifier.as_ref(), clients.retrainer.as_ref())?)
    })
    .await
}
