//! The one classification of failures that the pipeline, the Lambda functions and the state
//! machine share.

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
    /// The deployment is not set up as the code needs: a missing or invalid setting, no
    /// credentials or region, a permission refused, a bucket, topic or state machine that the
    /// configuration names and that does not exist. Trying again will not help until the
    /// deployment changes.
    Configuration,
}

impl ErrorKind {
    /// The name Lambda reports as the error type and the state machine matches.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::BadInput => "BadInput",
            ErrorKind::Transient => "Transient",
            ErrorKind::Internal => "Internal",
            ErrorKind::Configuration => "Configuration",
        }
    }
}
