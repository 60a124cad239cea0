//! S3 event to Step Functions: each object created under `raw/DATASET/` starts one execution,
//! named from the object's key and ETag, so a duplicated event starts nothing new.
//!
//! Input: an S3 event notification; output: the executions started (or found).

use std::sync::Arc;

use aws_lambda_events::s3::S3Event;
use lambda_runtime::{LambdaEvent, service_fn};
use mlops_aws::executions::{Executions, Started, execution_name};
use mlops_aws::lambda::{self, Failure};
use mlops_core::contracts::{RunRequest, Trigger};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::init_tracing();
    let config = mlops_aws::config().await;
    let executions = Arc::new(Executions::new(&config, mlops_aws::env("MLOPS_STATE_MACHINE_ARN")?));
    lambda_runtime::run(service_fn(|event: LambdaEvent<S3Event>| handle(executions.clone(), event.payload))).await
}

/// The run an uploaded object asks for: its dataset (the folder under raw/), its key, its ETag.
#[derive(Debug, Clone, PartialEq)]
struct Upload {
    request: RunRequest,
    etag: String,
}

impl Upload {
    /// The run's execution name: the same for a duplicated event (same key and etag), so that
    /// Step Functions starts it once, and another for a new upload of the same key.
    fn execution_name(&self) -> String {
        execution_name(&format!("upload-{}", self.request.dataset), &[&self.request.keys[0], &self.etag])
    }
}

/// Object keys in S3 events are URL-encoded, with `+` for spaces.
fn decode_key(key: &str) -> String {
    percent_encoding::percent_decode_str(&key.replace('+', " ")).decode_utf8_lossy().to_string()
}

fn uploads(event: &S3Event) -> Vec<Upload> {
    event
        .records
        .iter()
        .filter(|r| r.event_name.as_deref().is_some_and(|n| n.starts_with("ObjectCreated")))
        .filter_map(|record| {
            let key = decode_key(record.s3.object.key.as_deref()?);
            let mut parts = key.split('/');
            let (Some("raw"), Some(dataset), Some(file)) = (parts.next(), parts.next(), parts.next()) else { return None };
            if dataset.is_empty() || file.is_empty() || file.starts_with('.') {
                return None;
            }
            let etag = record.s3.object.e_tag.clone().unwrap_or_default();
            Some(Upload { request: RunRequest { dataset: dataset.to_string(), keys: vec![key.clone()], trigger: Trigger::Upload }, etag })
        })
        .collect()
}

async fn handle(executions: Arc<Executions>, event: S3Event) -> Result<Vec<Started>, Failure> {
    let uploads = uploads(&event);
    lambda::blocking(move || {
        uploads
            .iter()
            .map(|upload| {
                let key = &upload.request.keys[0];
                let started = executions.start(&upload.execution_name(), &upload.request).map_err(Failure::from)?;
                tracing::info!(%key, execution = %started.name, new = started.new, "upload handled");
                Ok(started)
            })
            .collect()
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_event_asks_for_one_run_of_its_dataset() {
        let event: S3Event = serde_json::from_str(include_str!("../../../events/trigger.json")).unwrap();
        let uploads = uploads(&event);
        assert_eq!(uploads.len(), 1);
        assert_eq!(uploads[0].request.dataset, "bikeshare");
        assert_eq!(uploads[0].request.keys, ["raw/bikeshare/Bikeshare 2011.csv"]);
        assert_eq!(uploads[0].request.trigger, Trigger::Upload);
    }

    #[test]
    fn a_duplicated_event_gets_the_same_execution_name_and_a_new_upload_another() {
        let mut event: S3Event = serde_json::from_str(include_str!("../../../events/trigger.json")).unwrap();
        event.records.push(event.records[0].clone());
        event.records.push(event.records[0].clone());
        event.records[2].s3.object.e_tag = Some("\"another-upload\"".into());
        let names: Vec<String> = uploads(&event).iter().map(Upload::execution_name).collect();
        assert_eq!(names[0], names[1], "the same object and etag");
        assert_ne!(names[0], names[2], "the same key uploaded again");
        assert!(names[0].starts_with("upload-bikeshare-"), "{}", names[0]);
    }

    #[test]
    fn objects_outside_raw_datasets_start_nothing() {
        let mut event: S3Event = serde_json::from_str(include_str!("../../../events/trigger.json")).unwrap();
        for key in ["processed/bikeshare/x/data.parquet", "raw/bikeshare/.hidden", "raw/readme.txt"] {
            event.records[0].s3.object.key = Some(key.into());
            assert!(uploads(&event).is_empty(), "{key}");
        }
    }
}
