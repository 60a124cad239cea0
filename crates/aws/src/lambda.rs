//! What every function shares: tracing, typed errors, running core code off the async runtime,
//! and [`run_stage`], the whole `main` of a pipeline stage.

use std::sync::Arc;

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use mlops_core::contracts::StageInput;
use mlops_core::{ErrorKind, Spec, Store};
use mlops_pipeline::PipelineError;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A failed invocation, typed so the state machine retries `Transient` and fails fast on
/// `BadInput` and `Internal` ([`ErrorKind`]).
#[derive(Debug)]
pub struct Failure {
    pub kind: ErrorKind,
    pub message: String,
}

impl Failure {
    pub fn new(kind: ErrorKind, message: impl std::fmt::Display) -> Failure {
        Failure { kind, message: message.to_string() }
    }
}

impl From<mlops_core::CoreError> for Failure {
    fn from(error: mlops_core::CoreError) -> Failure {
        Failure::new(error.kind(), error)
    }
}

impl From<PipelineError> for Failure {
    fn from(error: PipelineError) -> Failure {
        Failure::new(error.kind(), error)
    }
}

impl From<Failure> for Diagnostic {
    fn from(failure: Failure) -> Diagnostic {
        Diagnostic { error_type: failure.kind.name().to_string(), error_message: failure.message }
    }
}

/// Sets up tracing for a function (the format CloudWatch expects).
pub fn init_tracing() {
    lambda_runtime::tracing::init_default_subscriber();
}

/// Runs synchronous core code on a blocking thread, where the adapters may block on the SDK.
pub async fn blocking<T, F>(work: F) -> Result<T, Failure>
where
    F: FnOnce() -> Result<T, Failure> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(work).await.map_err(|e| Failure::new(ErrorKind::Internal, format!("the work panicked: {e}")))?
}

/// The spec of a dataset, from its one home in the bucket (`specs/DATASET.toml`).
pub fn spec(store: &dyn mlops_core::Store, dataset: &str) -> Result<mlops_core::Spec, Failure> {
    Ok(mlops_core::load_spec(store, dataset)?)
}

/// Runs a pipeline stage as a Lambda function. At cold start: tracing, the AWS configuration and
/// the S3 store of `MLOPS_BUCKET`; per event: the spec of the input's dataset from the bucket,
/// then `stage` on a blocking thread, its errors typed for the state machine.
///
/// Outside Lambda (no `AWS_LAMBDA_RUNTIME_API`) with `MLOPS_STEP_INPUT_KEY` set, the same binary
/// runs one step as a container task (ECS on Fargate, past what one invocation holds): its input
/// is the JSON object at that key of the bucket, its output goes to stdout, and a failure is one
/// line on stderr and a non-zero exit.
pub async fn run_stage<I, O, F>(stage: F) -> Result<(), lambda_runtime::Error>
where
    I: StageInput + DeserializeOwned + Send + 'static,
    O: Serialize + Send + 'static,
    F: Fn(&dyn Store, &Spec, I) -> Result<O, PipelineError> + Copy + Send + Sync + 'static,
{
    init_tracing();
    let config = crate::config().await;
    let store: Arc<dyn Store> = Arc::new(crate::s3::S3Store::new(&config, crate::env("MLOPS_BUCKET")?));
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_none()
        && let Ok(key) = crate::env(STEP_INPUT_KEY)
    {
        run_once(store, key, stage).await;
    }
    lambda_runtime::run(service_fn(move |event: LambdaEvent<I>| {
        let store = store.clone();
        blocking(move || {
            let spec = spec(store.as_ref(), event.payload.dataset())?;
            Ok(stage(store.as_ref(), &spec, event.payload)?)
        })
    }))
    .await
}

/// The variable that names a container task's input in the bucket.
const STEP_INPUT_KEY: &str = "MLOPS_STEP_INPUT_KEY";

/// Runs one step on the input stored at `key`, prints its output and exits: 0 when it
/// succeeded, 1 with `KIND: message` on stderr when it failed.
async fn run_once<I, O, F>(store: Arc<dyn Store>, key: String, stage: F) -> !
where
    I: StageInput + DeserializeOwned + Send + 'static,
    O: Serialize + Send + 'static,
    F: Fn(&dyn Store, &Spec, I) -> Result<O, PipelineError> + Copy + Send + Sync + 'static,
{
    let answered = blocking(move || {
        let bad_input = |message: String| Failure::new(ErrorKind::BadInput, format!("{key} ({STEP_INPUT_KEY}): {message}"));
        let bytes =
            store.get(&key).map_err(mlops_core::CoreError::from)?.ok_or_else(|| bad_input("the step's input does not exist".into()))?;
        let input: I = serde_json::from_slice(&bytes).map_err(|e| bad_input(format!("not this step's input: {e}")))?;
        let spec = spec(store.as_ref(), input.dataset())?;
        let output = stage(store.as_ref(), &spec, input)?;
        serde_json::to_string(&output).map_err(|e| Failure::new(ErrorKind::Internal, format!("the output does not serialise: {e}")))
    })
    .await;
    match answered {
        Ok(output) => {
            println!("{output}");
            std::process::exit(0)
        }
        Err(failure) => {
            eprintln!("{}: {}", failure.kind.name(), failure.message);
            std::process::exit(1)
        }
    }
}
