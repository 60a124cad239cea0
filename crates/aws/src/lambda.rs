//! What every function shares: tracing, typed errors, and running core code off the async
//! runtime.

use lambda_runtime::Diagnostic;

/// A failed invocation, typed so the state machine retries `Transient` and fails fast on
/// `BadInput`.
#[derive(Debug)]
pub struct Failure {
    pub kind: &'static str,
    pub message: String,
}

impl Failure {
    pub fn new(kind: &'static str, message: impl std::fmt::Display) -> Failure {
        Failure { kind, message: message.to_string() }
    }

    /// A failure of the core, typed by whether a retry may help.
    pub fn core(error: mlops_core::CoreError) -> Failure {
        let kind = match &error {
            mlops_core::CoreError::Spec { .. } | mlops_core::CoreError::Data(_) | mlops_core::CoreError::Model { .. } => "BadInput",
            e if e.is_retryable() => "Transient",
            _ => "Internal",
        };
        Failure::new(kind, error)
    }
}

impl From<Failure> for Diagnostic {
    fn from(failure: Failure) -> Diagnostic {
        Diagnostic { error_type: failure.kind.to_string(), error_message: failure.message }
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
    tokio::task::spawn_blocking(work).await.map_err(|e| Failure::new("Internal", format!("the work panicked: {e}")))?
}

/// The spec of a dataset, from its one home in the bucket (`specs/DATASET.toml`).
pub fn spec(store: &dyn mlops_core::Store, dataset: &str) -> Result<mlops_core::Spec, Failure> {
    mlops_core::spec_store::load_spec(store, dataset).map_err(Failure::core)
}
