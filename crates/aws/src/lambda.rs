//! What every function shares: tracing, the cold start ([`cold_start`]), typed errors, running
//! core code off the async runtime, and [`run_stage`], the whole `main` of a pipeline stage.

use std::sync::Arc;

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use mlops_core::contracts::StageInput;
use mlops_core::{ErrorKind, Spec, Store};
use mlops_pipeline::PipelineError;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument;

/// A failed invocation, typed so the state machine retries `Transient` and fails fast on the
/// other kinds ([`ErrorKind`]).
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

/// Sets up tracing for a function (the format CloudWatch expects), once per process.
pub fn init_tracing() {
    static TRACING: std::sync::Once = std::sync::Once::new();
    TRACING.call_once(lambda_runtime::tracing::init_default_subscriber);
}

/// A function's cold start: tracing, then `setup`, which reads the configuration and builds the
/// clients. When setup fails, the process logs one line saying what to set, reports it to the
/// Lambda runtime API as the init error (so AWS and `cargo lambda invoke` show it rather than
/// wait for an answer) and exits.
pub async fn cold_start<T>(setup: impl Future<Output = Result<T, crate::AwsError>>) -> T {
    init_tracing();
    match setup.await {
        Ok(clients) => clients,
        Err(error) => {
            tracing::error!(kind = ErrorKind::Configuration.name(), "cannot start: {error}");
            report_init_error(&error).await;
            std::process::exit(1)
        }
    }
}

/// Posts a failed start to the runtime API's `/init/error`, when there is a runtime API.
async fn report_init_error(error: &crate::AwsError) {
    let Ok(api) = std::env::var("AWS_LAMBDA_RUNTIME_API") else { return };
    let diagnostic =
        Diagnostic { error_type: ErrorKind::Configuration.name().to_string(), error_message: format!("cannot start: {error}") };
    let sent = async {
        let endpoint = http::Uri::try_from(api.as_str())?;
        let client = lambda_runtime_api_client::PooledClient::builder().with_endpoint(endpoint).build();
        let request = lambda_runtime_api_client::build_request()
            .method(http::Method::POST)
            .uri("/2018-06-01/runtime/init/error")
            .header("lambda-runtime-function-error-type", &diagnostic.error_type)
            .body(serde_json::to_vec(&diagnostic)?.into())?;
        let status = client.call(request).await?.status();
        if status.is_success() { Ok(()) } else { Err(format!("the runtime API answered {status}").into()) }
    };
    if let Err(failure) = sent.await as Result<(), lambda_runtime::Error> {
        tracing::error!("the init error was not reported to the runtime API ({api}): {failure}");
    }
}

/// Runs synchronous core code on a blocking thread, where the adapters may block on the SDK,
/// inside the caller's tracing span (so its log lines carry the invocation's request id,
/// dataset and run).
pub async fn blocking<T, F>(work: F) -> Result<T, Failure>
where
    F: FnOnce() -> Result<T, Failure> + Send + 'static,
    T: Send + 'static,
{
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(work))
        .await
        .map_err(|e| Failure::new(ErrorKind::Internal, format!("the work panicked: {e}")))?
}

/// The span of one invocation's work: its dataset and, once there is one, its run.
pub fn work_span(input: &impl StageInput) -> tracing::Span {
    tracing::info_span!("work", dataset = input.dataset(), run_id = input.run_id())
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
    let store: Arc<dyn Store> = cold_start(async {
        let config = crate::config().await?;
        Ok(Arc::new(crate::s3::S3Store::new(&config, crate::env("MLOPS_BUCKET")?)))
    })
    .await;
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_none()
        && let Ok(key) = crate::env(STEP_INPUT_KEY)
    {
        run_once(store, key, stage).await;
    }
    lambda_runtime::run(service_fn(move |event: LambdaEvent<I>| {
        let store = store.clone();
        let span = work_span(&event.payload);
        blocking(move || {
            let spec = spec(store.as_ref(), event.payload.dataset())?;
            Ok(stage(store.as_ref(), &spec, event.payload)?)
        })
        .instrument(span)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Log lines written to memory.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_line_logged_by_the_work_carries_the_invocations_dataset() {
        let lines = Lines::default();
        let writer = lines.clone();
        let json = tracing_subscriber::fmt().json().with_writer(move || writer.clone()).finish();
        // The work runs on another thread: only a global subscriber sees it there.
        tracing::subscriber::set_global_default(json).unwrap();
        let input = mlops_core::contracts::RunRequest {
            dataset: "toy".into(),
            keys: Vec::new(),
            trigger: mlops_core::contracts::Trigger::Manual,
            id: None,
        };
        blocking(|| {
            tracing::info!("working");
            Ok(())
        })
        .instrument(work_span(&input))
        .await
        .unwrap();
        let logged = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        let line: serde_json::Value = serde_json::from_str(logged.lines().find(|l| l.contains("working")).expect("the line")).unwrap();
        assert_eq!(line["span"]["dataset"], "toy", "{line}");
        assert_eq!(line["span"]["name"], "work", "{line}");
    }
}
