//! The core's error type.

use crate::store::StoreError;

/// What failed, and where.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("spec {file}: {message}")]
    Spec { file: String, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The data cannot be used as it is (no rows, a target that does not fit the task, ...).
    #[error("{0}")]
    Data(String),
    #[error("candidate '{name}': {message}")]
    Model { name: String, message: String },
    #[error("{key}: {message}")]
    Corrupt { key: String, message: String },
    /// Another writer moved the production pointer first.
    #[error("the production pointer of '{dataset}' changed while this promotion was decided; nothing was promoted")]
    Conflict { dataset: String },
    #[error("{0}")]
    Registry(String),
    /// A service the pipeline calls (a notifier, a retrainer) failed.
    #[error("{service}: {message}")]
    Service { service: String, message: String, retryable: bool },
}

impl CoreError {
    /// Whether trying again may succeed (a transient store failure or a lost race).
    pub fn is_retryable(&self) -> bool {
        match self {
            CoreError::Store(e) => e.is_retryable(),
            CoreError::Conflict { .. } => true,
            CoreError::Service { retryable, .. } => *retryable,
            _ => false,
        }
    }
}
