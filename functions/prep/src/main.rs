//! The prep stage, in five steps that the state machine runs around two Distributed Maps.
//!
//! Input: `PrepStep` (see `mlops_core::contracts`): `plan` (a `RunRequest`) writes the plan of
//! shards and answers `PrepPlanned`; `shard` (one map item) reads its shards and answers
//! `ShardItemOutput`; `merge` (the `PrepPlanned`) checks every shard's output, decides what the
//! batch holds and answers `PrepMerged`; `bucket` (one bucket) removes its duplicate rows and
//! answers its `BatchPart`; `finish` (the `PrepMerged`) checks every bucket's part and answers
//! `PrepOutput`. Shards are sized by `MLOPS_SHARD_BYTES`, `MLOPS_SHARDS_PER_ITEM`,
//! `MLOPS_BUCKET_BYTES` and `MLOPS_MAP_CONCURRENCY`. Errors are typed `BadInput` (fail fast), `Transient` (the state
//! machine retries) or `Internal`.

use mlops_aws::lambda;
use mlops_core::contracts::{BatchPart, PrepMerged, PrepOutput, PrepPlanned, PrepStep, ShardItemOutput};
use mlops_pipeline::stages;
use serde::Serialize;

/// What a step answers.
#[derive(Serialize)]
#[serde(untagged)]
enum Answer {
    Planned(PrepPlanned),
    Item(ShardItemOutput),
    Merged(PrepMerged),
    Part(BatchPart),
    Prepped(PrepOutput),
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let sizing = lambda::cold_start(async { mlops_aws::sizing() }).await;
    lambda::run_stage(move |store, spec, step: PrepStep| match step {
        PrepStep::Plan { request } => stages::prep_plan(store, spec, &request, sizing).map(Answer::Planned),
        PrepStep::Shard(item) => stages::prep_shard(store, spec, &item).map(Answer::Item),
        PrepStep::Merge { planned } => stages::prep_merge(store, spec, &planned).map(Answer::Merged),
        PrepStep::Bucket(item) => stages::prep_bucket(store, spec, &item).map(Answer::Part),
        PrepStep::Finish { merged } => stages::prep_finish(store, spec, &merged).map(Answer::Prepped),
    })
    .await
}
