//! The pipeline: stages over a store, shared by the `mlops` CLI and the Lambda functions. Their
//! JSON contracts live in `mlops_core::contracts`.

pub mod html;
pub mod ingest;
pub mod monitor;
pub mod stages;

use mlops_core::{CoreError, ErrorKind};
use mlops_prep::PrepError;

/// Why a stage failed. [`PipelineError::is_retryable`] tells the state machine whether to try
/// again.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The input cannot be used as it is; trying again will not help.
    #[error("{0}")]
    BadInput(String),
    /// Stored data that should be readable is not.
    #[error("corrupt data: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Core(#[from] CoreError),
    #[error(transparent)]
    Prep(#[from] PrepError),
}

impl From<mlops_core::store::StoreError> for PipelineError {
    fn from(error: mlops_core::store::StoreError) -> Self {
        PipelineError::Core(error.into())
    }
}

impl PipelineError {
    /// Core errors about the data itself are bad input; the rest keep their kind.
    pub(crate) fn from_data(error: CoreError) -> Self {
        match error {
            CoreError::Data(message) => PipelineError::BadInput(message),
            other => PipelineError::Core(other),
        }
    }

    pub fn is_retryable(&self) -> bool {
        matches!(self, PipelineError::Core(e) if e.is_retryable())
    }

    /// The kind of failure, for Lambda and Step Functions (`Retry` and `Catch` match on it).
    pub fn kind(&self) -> ErrorKind {
        match self {
            PipelineError::BadInput(_) | PipelineError::Prep(_) => ErrorKind::BadInput,
            PipelineError::Corrupt(_) => ErrorKind::Internal,
            PipelineError::Core(error) => error.kind(),
        }
    }
}
