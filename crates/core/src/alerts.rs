//! What happens past a drift threshold, behind small traits: a notifier fans the alert out
//! (a log line locally, SNS on AWS) and a retrainer starts a retrain (a local run, a Step
//! Functions execution on AWS).

use crate::error::CoreError;

/// Fans an alert out.
pub trait Notifier {
    fn notify(&self, subject: &str, message: &str) -> Result<(), CoreError>;
}

/// Starts a retrain of a dataset; returns what it started (a run record, an execution).
pub trait Retrainer {
    fn retrain(&self, dataset: &str, reason: &str) -> Result<serde_json::Value, CoreError>;
}
