//! The pipeline: stages over a store, shared by the `mlops` CLI and the Lambda functions. Their
//! JSON contracts live in `mlops_core::contracts`.

pub mod canary;
pub mod feedback;
pub mod html;
pub mod ingest;
pub mod monitor;
pub mod score;
pub mod stages;
#[cfg(test)]
mod testing;

use mlops_core::{CoreError, ErrorKind};
use mlops_prep::PrepError;

/// Why a stage failed. [`PipelineError::is_retryable`] tells the state machine whether to try
/// again.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Core(#[from] CoreError),
    #[error(transparent)]
    Prep(#[from] PrepError),
}

impl From<mlops_core::StoreError> for PipelineError {
    fn from(error: mlops_core::StoreError) -> Self {
        PipelineError::Core(error.into())
    }
}

impl PipelineError {
    /// Input that cannot be used as it is ([`CoreError::BadInput`]).
    pub fn bad_input(message: impl Into<String>) -> Self {
        PipelineError::Core(CoreError::BadInput(message.into()))
    }

    /// Stored data under `key` that should be readable and is not ([`CoreError::Corrupt`]).
    pub fn corrupt(key: &str, message: impl std::fmt::Display) -> Self {
        PipelineError::Core(CoreError::Corrupt { key: key.to_string(), message: message.to_string() })
    }

    pub fn is_retryable(&self) -> bool {
        matches!(self, PipelineError::Core(e) if e.is_retryable())
    }

    /// The kind of failure, for Lambda and Step Functions (`Retry` and `Catch` match on it).
    pub fn kind(&self) -> ErrorKind {
        match self {
            PipelineError::Prep(_) => ErrorKind::BadInput,
            PipelineError::Core(error) => error.kind(),
        }
    }
}
