//! Batch scoring on AWS, in three steps that the scoring state machine runs around a
//! Distributed Map.
//!
//! Input: `ScoreStep` (see `mlops_core::contracts`): `plan` (a `ScoreRequest`: the dataset and a
//! key under `batch/DATASET/`) pins the production version, checks the header, writes the plan of
//! shards and answers `ScorePlanned`; `shard` (one map item) scores its shards into parts at fixed
//! keys and answers `ShardItemOutput`; `finish` (the `ScorePlanned`) checks every shard's parts,
//! writes `scored/DATASET/NAME/` (`scores.csv`, `rejects.csv`, `summary.json`, `_SUCCESS`) and
//! answers `ScoredFile`. Shards are sized by `MLOPS_SHARD_BYTES`, `MLOPS_SHARDS_PER_ITEM` and
//! `MLOPS_MAP_CONCURRENCY`. Errors are typed `BadInput` (fail fast), `Transient` (the state
//! machine retries) or `Internal`.

use mlops_aws::lambda;
use mlops_core::contracts::{ScorePlanned, ScoreStep, ScoredFile, ShardItemOutput};
use mlops_pipeline::score::sharded;
use serde::Serialize;

/// What a step answers.
#[derive(Serialize)]
#[serde(untagged)]
enum Answer {
    Planned(ScorePlanned),
    Item(ShardItemOutput),
    Scored(ScoredFile),
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let sizing = lambda::cold_start(async { mlops_aws::sizing() }).await;
    lambda::run_stage(move |store, _spec, step: ScoreStep| match step {
        ScoreStep::Plan { request } => sharded::plan(store, &request, sizing).map(Answer::Planned),
        ScoreStep::Shard(item) => sharded::score_item(store, &item).map(Answer::Item),
        ScoreStep::Finish { planned } => sharded::finish(store, &planned).map(Answer::Scored),
    })
    .await
}
