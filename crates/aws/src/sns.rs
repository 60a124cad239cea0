//! Alerts on SNS: every subscriber of the topic gets them.

use mlops_core::CoreError;
use mlops_core::Notifier;
use tokio::runtime::Handle;

use crate::service_error;

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
