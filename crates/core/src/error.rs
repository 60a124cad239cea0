//! The core's error type, and the one classification of failures that the pipeline, the Lambda
//! functions and the state machine share.

use crate::store::StoreError;

/// What kind of failure an error is: the state machine retries `Transient` with backoff and
/// fails fast on the others (`Retry`/`Catch` in `statemachine/pipeline.asl.json` name these).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The data, the spec or a request cannot be used as they are: trying again will not help.
    BadInput,
    /// A store or a service failed in a way that may pass.
    Transient,
    /// Anything else: a bug, or stored data that should be readable and is not.
    Internal,
}

impl ErrorKind {
    /// The name Lambda reports as the error type and the state machine matches.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::BadInput => "BadInput",
            ErrorKind::Transient => "Transient",
            ErrorKind::Internal => "Internal",
        }
    }
}

/// What failed, and where.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("spec {file}: {message}")]
    Spec { file: String, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The input cannot be used as it is (no rows, a target that does not fit the task, a run or
    /// file that does not exist, ...): trying again will not help.
    #[error("{0}")]
    BadInput(String),
    #[error("candidate '{name}': {message}")]
    Model { name: String, message: String },
    /// Stored data that should be readable is not.
    #[error("{key}: {message}")]
    Corrupt { key: String, message: String },
    /// Another writer changed the object first (the production pointer while a promotion was
    /// decided, a manifest being merged); nothing was written.
    #[error("{key} changed while it was being updated; nothing was written")]
    Conflict { key: String },
    #[error("{0}")]
    Registry(String),
    /// A service the pipeline calls (a notifier, a retrainer) failed.
    #[error("{service}: {message}")]
    Service { service: String, message: String, retryable: bool },
}

impl CoreError {
    /// The kind of failure: a spec, data or candidate problem is bad input; a retryable one is
    /// transient; the rest internal.
    pub fn kind(&self) -> ErrorKind {
        match self {
            CoreError::Spec { .. } | CoreError::BadInput(_) | CoreError::Model { .. } => ErrorKind::BadInput,
            e if e.is_retryable() => ErrorKind::Transient,
            _ => ErrorKind::Internal,
        }
    }

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
