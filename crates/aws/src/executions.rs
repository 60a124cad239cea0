//! Runs of the pipeline as Step Functions executions: an upload's run (started by the trigger
//! function) and a retrain (asked for by the drift check).

use aws_sdk_sfn::operation::start_execution::StartExecutionError;
use mlops_core::CoreError;
use mlops_core::Retrainer;
use mlops_core::contracts::{RunRequest, Trigger};
use sha2::{Digest, Sha256};
use tokio::runtime::Handle;

use crate::service_error;

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

    /// Starts an execution named `name` on `input`; an existing execution of that name starts
    /// nothing.
    pub fn start(&self, name: &str, input: &impl serde::Serialize) -> Result<Started, CoreError> {
        let input = serde_json::to_string(input).map_err(|e| CoreError::Service {
            service: "states start-execution".into(),
            message: format!("the input does not serialise: {e}"),
            kind: mlops_core::ErrorKind::Internal,
        })?;
        let request = self.client.start_execution().state_machine_arn(&self.state_machine_arn).name(name).input(input);
        match self.runtime.block_on(request.send()) {
            Ok(output) => Ok(Started { name: name.to_string(), execution_arn: Some(output.execution_arn().to_string()), new: true }),
            Err(error) if error.as_service_error().is_some_and(StartExecutionError::is_execution_already_exists) => {
                Ok(Started { name: name.to_string(), execution_arn: None, new: false })
            }
            Err(error) => Err(service_error("states start-execution", error)),
        }
    }
}

impl Retrainer for Executions {
    fn retrain(&self, dataset: &str, _reason: &str) -> Result<serde_json::Value, CoreError> {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis().to_string();
        let name = execution_name(&format!("drift-{dataset}"), &[dataset, &now]);
        let run = RunRequest { dataset: dataset.to_string(), keys: Vec::new(), trigger: Trigger::Drift, id: None };
        let started = self.start(&name, &run)?;
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
        // Stable across releases: a redelivered event must find the execution it started.
        assert_eq!(name, "upload-bike-share-2011-4de17d1bc1972357d57d");
        assert_ne!(name, execution_name("upload-bike share/2011", &["raw/bikeshare/a.csv", "\"other\""]));
        assert_ne!(execution_name("x", &["ab", "c"]), execution_name("x", &["a", "bc"]));
    }
}
