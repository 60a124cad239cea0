//! S3 event to Step Functions: each object created under `raw/DATASET/` starts one pipeline
//! execution, and each under `batch/DATASET/` one scoring execution, named from the object's key
//! and ETag, so a duplicated event starts nothing new.
//!
//! Input: an S3 event notification; output: the executions started (or found).

use std::sync::Arc;

use aws_lambda_events::s3::S3Event;
use lambda_runtime::{LambdaEvent, service_fn};
use mlops_aws::executions::{Executions, Started, execution_name};
use mlops_aws::lambda::{self, Failure};
use mlops_core::contracts::{RunRequest, ScoreRequest, Trigger};

/// The two state machines an upload can start.
struct Machines {
    pipeline: Executions,
    score: Executions,
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let machines = Arc::new(
        lambda::cold_start(async {
            let config = mlops_aws::config().await?;
            Ok(Machines {
                pipeline: Executions::new(&config, mlops_aws::env("MLOPS_STATE_MACHINE_ARN")?),
                score: Executions::new(&config, mlops_aws::env("MLOPS_SCORE_STATE_MACHINE_ARN")?),
            })
        })
        .await,
    );
    lambda_runtime::run(service_fn(|event: LambdaEvent<S3Event>| handle(machines.clone(), event.payload))).await
}

/// What an uploaded object asks for: a run of its dataset (a file under raw/) or the scoring of
/// the file (under batch/).
#[derive(Debug, Clone, PartialEq)]
enum Asked {
    Run(RunRequest),
    Score(ScoreRequest),
}

/// An uploaded object: what it asks for, its key and its ETag.
#[derive(Debug, Clone, PartialEq)]
struct Upload {
    asked: Asked,
    key: String,
    etag: String,
}

impl Upload {
    /// The execution's name: the same for a duplicated event (same key and etag), so that
    /// Step Functions starts it once, and another for a new upload of the same key.
    fn execution_name(&self) -> String {
        let prefix = match &self.asked {
            Asked::Run(request) => format!("upload-{}", request.dataset),
            Asked::Score(request) => format!("score-{}", request.dataset),
        };
        execution_name(&prefix, &[&self.key, &self.etag])
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
            let mut parts = key.splitn(3, '/');
            let (Some(prefix), Some(dataset), Some(file)) = (parts.next(), parts.next(), parts.next()) else { return None };
            let name = file.rsplit('/').next().unwrap_or_default();
            if dataset.is_empty() || name.is_empty() || name.starts_with('.') {
                return None;
            }
            let dataset = dataset.to_string();
            let asked = match prefix {
                "raw" => Asked::Run(RunRequest { dataset, keys: vec![key.clone()], trigger: Trigger::Upload, id: None }),
                "batch" => Asked::Score(ScoreRequest { dataset, key: key.clone(), id: None }),
                _ => return None,
            };
            let etag = record.s3.object.e_tag.clone().unwrap_or_default();
            Some(Upload { asked, key, etag })
        })
        .collect()
}

async fn handle(machines: Arc<Machines>, event: S3Event) -> Result<Vec<Started>, Failure> {
    let uploads = uploads(&event);
    lambda::blocking(move || {
        uploads
            .iter()
            .map(|upload| {
                let name = upload.execution_name();
                let started = match &upload.asked {
                    Asked::Run(request) => machines.pipeline.start(&name, request),
                    Asked::Score(request) => machines.score.start(&name, request),
                }
                .map_err(Failure::from)?;
                tracing::info!(key = %upload.key, execution = %started.name, new = started.new, "upload handled");
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
        let run = RunRequest {
            dataset: "bikeshare".into(),
            keys: vec!["raw/bikeshare/Bikeshare 2011.csv".into()],
            trigger: Trigger::Upload,
            id: None,
        };
        assert_eq!(uploads.iter().map(|u| &u.asked).collect::<Vec<_>>(), [&Asked::Run(run)]);
    }

    #[test]
    fn a_file_under_batch_asks_for_its_scoring() {
        let mut event: S3Event = serde_json::from_str(include_str!("../../../events/trigger.json")).unwrap();
        event.records[0].s3.object.key = Some("batch/bikeshare/2011/May+day.csv".into());
        let uploads = uploads(&event);
        let score = ScoreRequest { dataset: "bikeshare".into(), key: "batch/bikeshare/2011/May day.csv".into(), id: None };
        assert_eq!(uploads.iter().map(|u| &u.asked).collect::<Vec<_>>(), [&Asked::Score(score)]);
        assert!(uploads[0].execution_name().starts_with("score-bikeshare-"), "{}", uploads[0].execution_name());
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
        for key in [
            "processed/bikeshare/x/data.parquet",
            "raw/bikeshare/.hidden",
            "raw/readme.txt",
            "scored/bikeshare/may/scores.csv",
            "batch/bikeshare/sub/.hidden",
        ] {
            event.records[0].s3.object.key = Some(key.into());
            assert!(uploads(&event).is_empty(), "{key}");
        }
    }
}
