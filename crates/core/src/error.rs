//! The core's error type.

use crate::kind::ErrorKind;
use crate::store::StoreError;

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
    Service { service: String, message: String, kind: ErrorKind },
}

impl CoreError {
    /// The kind of failure: a spec, data or candidate problem is bad input; a lost race is
    /// transient; a store or a service says what its failure was; the rest is internal.
    pub fn kind(&self) -> ErrorKind {
        match self {
            CoreError::Spec { .. } | CoreError::BadInput(_) | CoreError::Model { .. } => ErrorKind::BadInput,
            CoreError::Conflict { .. } => ErrorKind::Transient,
            CoreError::Store(e) => e.kind(),
            CoreError::Service { kind, .. } => *kind,
            CoreError::Corrupt { .. } | CoreError::Registry(_) => ErrorKind::Internal,
        }
    }

    /// Whether trying again may succeed (a transient store failure or a lost race).
    pub fn is_retryable(&self) -> bool {
        self.kind() == ErrorKind::Transient
    }
}
