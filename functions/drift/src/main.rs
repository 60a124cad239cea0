//! The drift check: recent inferences of the production model against its training reference;
//! past the thresholds an alert to the SNS topic and a retrain execution, under the cooldown and
//! the loop guard.
//!
//! Input: `DriftInput` (see `mlops_core::contracts`). `{"dataset": NAME}` runs a whole check in
//! one invocation. The drift state machine runs a check over more log than one invocation reads
//! in three steps around a Distributed Map: `plan` writes the plan and answers `DriftPlanned`;
//! `part` (one map item) summarises its log files and answers `DriftPartOutput`; `reduce` checks
//! every item's summary exists, adds them up and answers the next round or the report. Log
//! files are grouped by `MLOPS_DRIFT_FILES_PER_ITEM` and `MLOPS_DRIFT_ITEMS_PER_ROUND`, items run
//! `MLOPS_MAP_CONCURRENCY` at once. A check's drift scores and outcome are reported as metrics
//! (`mlops_aws::metrics`).

use std::sync::Arc;

use lambda_runtime::{LambdaEvent, service_fn};
use mlops_aws::executions::Executions;
use mlops_aws::lambda::{self, Failure};
use mlops_aws::s3::S3Store;
use mlops_aws::sns::SnsNotifier;
use mlops_aws::{env, env_or, metrics};
use mlops_core::Store;
use mlops_core::contracts::{DriftInput, DriftPartOutput, DriftPlanned, DriftReport, DriftRound, DriftStep, StageInput};
use mlops_core::{Notifier, Retrainer};
use mlops_pipeline::monitor::logs::{self, LogSizing};
use mlops_pipeline::monitor::{self, Current};
use serde::Serialize;
use tracing::Instrument;

struct Clients {
    store: Arc<dyn Store>,
    notifier: Arc<dyn Notifier + Send + Sync>,
    retrainer: Arc<dyn Retrainer + Send + Sync>,
    sizing: LogSizing,
    max_concurrency: u32,
}

/// What a step answers.
#[derive(Serialize)]
#[serde(untagged)]
enum Answer {
    Report(Box<DriftReport>),
    Planned(DriftPlanned),
    Part(DriftPartOutput),
    Round(DriftRound),
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let clients = Arc::new(
        lambda::cold_start(async {
            let default = LogSizing::default();
            let sizing = LogSizing {
                files_per_item: env_or("MLOPS_DRIFT_FILES_PER_ITEM", default.files_per_item, "a whole number")?,
                items_per_round: env_or("MLOPS_DRIFT_ITEMS_PER_ROUND", default.items_per_round, "a whole number")?,
            };
            let max_concurrency = env_or("MLOPS_MAP_CONCURRENCY", mlops_pipeline::stages::shards::MAP_CONCURRENCY, "a whole number")?;
            let config = mlops_aws::config().await?;
            Ok(Clients {
                store: Arc::new(S3Store::new(&config, env("MLOPS_BUCKET")?)),
                notifier: Arc::new(SnsNotifier::new(&config, env("MLOPS_ALERT_TOPIC_ARN")?)),
                retrainer: Arc::new(Executions::new(&config, env("MLOPS_STATE_MACHINE_ARN")?)),
                sizing,
                max_concurrency,
            })
        })
        .await,
    );
    lambda_runtime::run(service_fn(|event: LambdaEvent<DriftInput>| handle(clients.clone(), event.payload))).await
}

async fn handle(clients: Arc<Clients>, input: DriftInput) -> Result<Answer, Failure> {
    let span = lambda::work_span(&input);
    lambda::blocking(move || {
        let Clients { store, notifier, retrainer, sizing, max_concurrency } = clients.as_ref();
        let (store, notifier, retrainer) = (store.as_ref(), notifier.as_ref(), retrainer.as_ref());
        let spec = lambda::spec(store, input.dataset())?;
        let answer = match input {
            DriftInput::Whole(_) => Answer::Report(Box::new(monitor::check(store, &spec, Current::Logs, notifier, retrainer)?)),
            DriftInput::Step(DriftStep::Plan(_)) => Answer::Planned(monitor::plan_check(store, &spec, *sizing, *max_concurrency)?),
            DriftInput::Step(DriftStep::Part(item)) => Answer::Part(logs::summarize_item(store, &item)?),
            DriftInput::Step(DriftStep::Reduce { planned }) => {
                Answer::Round(monitor::reduce_check(store, &spec, &planned, notifier, retrainer)?)
            }
        };
        if let Answer::Report(report) | Answer::Round(DriftRound::Done(report)) = &answer {
            metrics::emit(&metrics::drift_lines(report, metrics::now()));
        }
        Ok(answer)
    })
    .instrument(span)
    .await
}
