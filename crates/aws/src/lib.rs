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
use aws_credential_types::provider::ProvideCredentials;
use aws_sdk_sfn::config::http::HttpResponse;
use aws_sdk_sfn::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use mlops_core::{CoreError, ErrorKind};
use mlops_pipeline::stages::shards::Sizing;

/// A configuration the process cannot start with: each says what to set.
#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    #[error("environment variable {0} is not set")]
    MissingVariable(&'static str),
    #[error("environment variable {name} is '{value}', not {expected}")]
    BadVariable { name: &'static str, value: String, expected: &'static str },
    #[error("no AWS region: set AWS_REGION (or a profile's region)")]
    NoRegion,
    #[error("no AWS credentials: {0}")]
    NoCredentials(String),
}

/// The standard AWS configuration (environment, profile, instance role; `AWS_ENDPOINT_URL`
/// for LocalStack), checked at start-up: a region is set and credentials resolve.
pub async fn config() -> Result<SdkConfig, AwsError> {
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    if config.region().is_none() {
        return Err(AwsError::NoRegion);
    }
    let provider = config.credentials_provider().ok_or_else(|| AwsError::NoCredentials("no credentials provider".into()))?;
    provider.provide_credentials().await.map_err(|e| AwsError::NoCredentials(DisplayErrorContext(e).to_string()))?;
    Ok(config)
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

/// A failed SNS or Step Functions call as the core's error.
pub(crate) fn service_error<E: ProvideErrorMetadata + std::error::Error + 'static>(
    service: &str,
    error: SdkError<E, HttpResponse>,
) -> CoreError {
    CoreError::Service { service: service.to_string(), message: error_message(&error), kind: kind_of(&error) }
}

/// What a failed call says: the service's code and message, or the SDK's account of it.
pub(crate) fn error_message<E: ProvideErrorMetadata + std::error::Error + 'static>(error: &SdkError<E, HttpResponse>) -> String {
    match error.as_service_error() {
        Some(service) if service.code().is_none() && service.message().is_none() => {
            format!("refused with HTTP {}", error.raw_response().map_or(0, |r| r.status().as_u16()))
        }
        Some(service) => format!("{}: {}", service.code().unwrap_or("error"), service.message().unwrap_or_default()),
        None => DisplayErrorContext(error).to_string(),
    }
}

/// The kind of a failed AWS call, one classification for every service: throttling, server
/// errors and transport failures may pass (`Transient`); a request that could not be signed or
/// sent as configured (no credentials, no region), refused credentials or permissions, and a
/// bucket, topic or state machine that does not exist are the deployment's (`Configuration`);
/// any other refusal is `Internal`.
pub(crate) fn kind_of<E: ProvideErrorMetadata>(error: &SdkError<E, HttpResponse>) -> ErrorKind {
    match error {
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => ErrorKind::Transient,
        SdkError::DispatchFailure(failure) if failure.is_io() || failure.is_timeout() => ErrorKind::Transient,
        SdkError::DispatchFailure(_) => ErrorKind::Configuration,
        SdkError::ServiceError(service) => refusal_kind(service.err().code(), service.raw().status().as_u16()),
        _ => ErrorKind::Internal,
    }
}

/// The kind of a service's refusal, by its error code (or, where the answer has no body, as a
/// HEAD's has not, its status).
fn refusal_kind(code: Option<&str>, status: u16) -> ErrorKind {
    const CONFIGURATION: [&str; 17] = [
        "AccessDenied",
        "AccessDeniedException",
        "AuthorizationError",
        "AuthorizationHeaderMalformed",
        "AllAccessDisabled",
        "ExpiredToken",
        "ExpiredTokenException",
        "IncompleteSignature",
        "InvalidAccessKeyId",
        "InvalidClientTokenId",
        "MissingAuthenticationToken",
        "NoSuchBucket",
        "NotFound",
        "PermanentRedirect",
        "SignatureDoesNotMatch",
        "StateMachineDoesNotExist",
        "UnrecognizedClientException",
    ];
    match code {
        Some(code) if CONFIGURATION.contains(&code) => ErrorKind::Configuration,
        Some(code) if code.contains("Throttl") || ["SlowDown", "RequestTimeout", "TooManyRequestsException"].contains(&code) => {
            ErrorKind::Transient
        }
        _ if status == 429 || status >= 500 => ErrorKind::Transient,
        None if status == 401 || status == 403 => ErrorKind::Configuration,
        _ => ErrorKind::Internal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mlops_core::Store;

    /// What the default credentials chain answers when it finds nothing.
    #[derive(Debug)]
    struct NoneFound;

    impl ProvideCredentials for NoneFound {
        fn provide_credentials<'a>(&'a self) -> aws_credential_types::provider::future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            let none = aws_credential_types::provider::error::CredentialsError::not_loaded("no credentials in this test");
            aws_credential_types::provider::future::ProvideCredentials::ready(Err(none))
        }
    }

    /// A store on a loopback port nothing listens on, with credentials or with none found.
    fn unreachable_store(credentials: bool) -> s3::S3Store {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let config = SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(format!("http://{closed}"))
            .retry_config(aws_config::retry::RetryConfig::disabled());
        let config = if credentials {
            let static_keys = aws_credential_types::Credentials::new("test", "test", None, None, "test");
            config.credentials_provider(aws_credential_types::provider::SharedCredentialsProvider::new(static_keys))
        } else {
            config.credentials_provider(aws_credential_types::provider::SharedCredentialsProvider::new(NoneFound))
        };
        s3::S3Store::new(&config.build(), "data")
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn an_unreachable_endpoint_is_transient_and_unsigned_requests_are_configuration() {
        let kinds = tokio::task::spawn_blocking(|| {
            let unreachable = unreachable_store(true).get("specs/x.toml").unwrap_err();
            let unsigned = unreachable_store(false).get("specs/x.toml").unwrap_err();
            (unreachable.kind(), unsigned.kind(), unsigned.to_string())
        })
        .await
        .unwrap();
        assert_eq!(kinds.0, ErrorKind::Transient);
        assert_eq!(kinds.1, ErrorKind::Configuration, "{}", kinds.2);
    }

    #[test]
    fn refusals_are_classified_by_code_then_status() {
        for code in ["AccessDenied", "AuthorizationError", "InvalidClientTokenId", "NoSuchBucket", "NotFound", "StateMachineDoesNotExist"] {
            assert_eq!(refusal_kind(Some(code), 400), ErrorKind::Configuration, "{code}");
        }
        for code in ["SlowDown", "ThrottlingException", "Throttling", "RequestTimeout"] {
            assert_eq!(refusal_kind(Some(code), 400), ErrorKind::Transient, "{code}");
        }
        assert_eq!(refusal_kind(Some("InternalError"), 500), ErrorKind::Transient);
        assert_eq!(refusal_kind(None, 503), ErrorKind::Transient);
        assert_eq!(refusal_kind(None, 403), ErrorKind::Configuration, "a HEAD refused has no code");
        assert_eq!(refusal_kind(Some("InvalidParameter"), 400), ErrorKind::Internal);
        assert_eq!(refusal_kind(Some("ExecutionLimitExceeded"), 400), ErrorKind::Internal);
    }
}
