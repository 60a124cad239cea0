//! Alerts on SNS, retrains and uploads as Step Functions executions.

use aws_sdk_sfn::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use mlops_core::CoreError;
use mlops_core::alerts::{Notifier, Retrainer};
use sha2::{Digest, Sha256};
use tokio::runtime::Handle;

/// Publishes alerts to an SNS topic (every subscriber gets them).
pub struct SnsNotifier {
    client: aws_sdk_sns::Client,
    topic_arn: String,
    runtime: Handle,
}

impl SnsNotifier {
    pub fn new(config: &aws_config::SdkConfig, topic_arn: impl Into<String>) -> SnsNotifier {
        SnsNotifier { client: aws_sdk_sns::Client::new(config), topic_arn: topic_arn.into(), runtime: Handle::current() }
    }
}

fn service_error<E: ProvideErrorMetadata + std::error::Error + 'static, R: std::fmt::Debug>(
    service: &str,
    error: SdkError<E, R>,
) -> CoreError {
    let retryable = !matches!(error, SdkError::ServiceError(_) | SdkError::ConstructionFailure(_));
    let message =
        error.as_service_error().and_then(|e| e.message().map(str::to_string)).unwrap_or_else(|| DisplayErrorContext(&error).to_string());
    CoreError::Service { service: service.to_string(), message, retryable }
}

impl Notifier for SnsNotifier {
    fn notify(&self, subject: &str, message: &str) -> Result<(), CoreError> {
        // SNS subjects are at most 100 printable ASCII characters.
        let subject: String = subject.chars().filter(|c| c.is_ascii() && !c.is_ascii_control()).take(100).collect();
        self.runtime
            .block_on(self.client.publish().topic_arn(&self.topic_arn).subject(subject).message(message).send())
            .map_err(|e| service_error("sns publish", e))?;
        Ok(())
    }
}

/// Starts executions of the pipeline's state machine.
pub struct Executions {
    client: aws_sdk_sfn::Client,
    state_machine_arn: String,
    runtime: Handle,
}

/// Whether an execution was started or already existed under that name.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Started {
    pub name: String,
    pub execution_arn: Option<String>,
    /// False when an execution of that name already existed (a duplicated event).
    pub new: bool,
}

/// A valid execution name (at most 80 of `A-Za-z0-9-_`): a readable prefix and a hash of `parts`.
pub fn execution_name(prefix: &str, parts: &[&str]) -> String {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    let clean: String = prefix.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' }).take(56).collect();
    format!("{clean}-{}", &hex::encode(hash.finalize())[..20])
}

impl Executions {
    pub fn new(config: &aws_config::SdkConfig, state_machine_arn: impl Into<String>) -> Executions {
        Executions { client: aws_sdk_sfn::Client::new(config), state_machine_arn: state_machine_arn.into(), runtime: Handle::current() }
    }

    /// Starts an execution named `name` with `input`; an existing one of that name starts nothing.
    pub fn start(&self, name: &str, input: &serde_json::Value) -> Result<Started, CoreError> {
        let request = self.client.start_execution().state_machine_arn(&self.state_machine_arn).name(name).input(input.to_string());
        match self.runtime.block_on(request.send()) {
            Ok(output) => Ok(Started { name: name.to_string(), execution_arn: Some(output.execution_arn().to_string()), new: true }),
            Err(error) if error.as_service_error().is_some_and(|e| e.is_execution_already_exists()) => {
                Ok(Started { name: name.to_string(), execution_arn: None, new: false })
            }
            Err(error) => Err(service_error("states start-execution", error)),
        }
    }
}

impl Retrainer for Executions {
    fn retrain(&self, dataset: &str, reason: &str) -> Result<serde_json::Value, CoreError> {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis().to_string();
        let name = execution_name(&format!("drift-{dataset}"), &[dataset, &now]);
        let started = self.start(&name, &serde_json::json!({ "dataset": dataset, "trigger": "drift", "reason": reason }))?;
        Ok(serde_json::to_value(started).expect("serialises"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn execution_names_are_valid_and_stable() {
        let name = execution_name("upload-bike share/2011", &["raw/bikeshare/a.csv", "\"etag\""]);
        assert!(name.len() <= 80 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'), "{name}");
        assert!(name.starts_with("upload-bike-share-2011-"));
        assert_eq!(name, execution_name("upload-bike share/2011", &["raw/bikeshare/a.csv", "\"etag\""]));
        assert_ne!(name, execution_name("upload-bike share/2011", &["raw/bikeshare/a.csv", "\"other\""]));
        assert_ne!(execution_name("x", &["ab", "c"]), execution_name("x", &["a", "bc"]));
    }
}
