//! What every function shares: tracing, typed errors, and running core code off the async
//! runtime.

use lambda_runtime::Diagnostic;
use mlops_core::ErrorKind;

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
    Ok(mlops_core::spec_store::load_spec(store, dataset)?)
}
