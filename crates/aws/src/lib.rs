//! The AWS adapters of the pipeline: the core's [`Store`](mlops_core::Store) on S3, alerts on
//! SNS, retrains and uploads as Step Functions executions, and the glue the Lambda functions
//! share. Endpoint and region come from the standard AWS configuration, so the same binary
//! talks to AWS or to LocalStack.
//!
//! The core is synchronous; these adapters run the SDK's futures on the Lambda's tokio runtime
//! through a [`tokio::runtime::Handle`], so core code must be called from a blocking thread
//! ([`lambda::blocking`]).

pub mod executions;
pub mod lambda;
pub mod metrics;
pub mod s3;
pub mod sns;

use aws_config::SdkConfig;
use aws_sdk_sfn::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use mlops_core::CoreError;
use mlops_pipeline::stages::shards::Sizing;

/// What went wrong in an adapter.
#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    #[error("environment variable {0} is not set")]
    MissingVariable(&'static str),
    #[error("environment variable {name} is '{value}', not {expected}")]
    BadVariable { name: &'static str, value: String, expected: &'static str },
}

/// The standard AWS configuration (environment, profile, instance role; `AWS_ENDPOINT_URL`
/// for LocalStack).
pub async fn config() -> SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

/// A required environment variable.
pub fn env(name: &'static str) -> Result<String, AwsError> {
    std::env::var(name).map_err(|_| AwsError::MissingVariable(name))
}

/// An optional environment variable parsed as `T` (`expected` says what it must be), or
/// `default` when it is unset or empty.
pub fn env_or<T: std::str::FromStr>(name: &'static str, default: T, expected: &'static str) -> Result<T, AwsError> {
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => {
            value.trim().parse().map_err(|_| AwsError::BadVariable { name, value: value.clone(), expected })
        }
        _ => Ok(default),
    }
}

/// How prep and batch scoring cut files into shards and run their Distributed Maps: the
/// defaults, or the deployment's `MLOPS_SHARD_BYTES`, `MLOPS_SHARDS_PER_ITEM`,
/// `MLOPS_BUCKET_BYTES` and `MLOPS_MAP_CONCURRENCY`.
pub fn sizing() -> Result<Sizing, AwsError> {
    let default = Sizing::default();
    Ok(Sizing {
        shard_bytes: env_or("MLOPS_SHARD_BYTES", default.shard_bytes, "a number of bytes")?,
        shards_per_item: env_or("MLOPS_SHARDS_PER_ITEM", default.shards_per_item, "a whole number")?,
        max_concurrency: env_or("MLOPS_MAP_CONCURRENCY", default.max_concurrency, "a whole number")?,
        bucket_bytes: env_or("MLOPS_BUCKET_BYTES", default.bucket_bytes, "a number of bytes")?,
    })
}

/// Whether requests go to a custom endpoint (LocalStack), where S3 needs path-style addressing.
pub fn custom_endpoint() -> bool {
    ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"].iter().any(|v| std::env::var(v).is_ok_and(|v| !v.is_empty()))
}

/// A failed AWS call as the core's error: retryable unless the service refused the request or
/// it could not be built.
pub(crate) fn service_error<E: ProvideErrorMetadata + std::error::Error + 'static, R: std::fmt::Debug>(
    service: &str,
    error: SdkError<E, R>,
) -> CoreError {
    let retryable = !matches!(error, SdkError::ServiceError(_) | SdkError::ConstructionFailure(_));
    let message =
        error.as_service_error().and_then(|e| e.message().map(str::to_string)).unwrap_or_else(|| DisplayErrorContext(&error).to_string());
    CoreError::Service { service: service.to_string(), message, retryable }
}
