//! The train stage, in two steps that the state machine runs around a Map over candidates.
//!
//! Input: `TrainStep` (see `mlops_core::contracts`): `candidate` fits and evaluates one
//! candidate of the run and answers its `CandidateOutcome`; `collect` reads every candidate's
//! outcome and answers `TrainOutput`. With `MLOPS_BOOSTING_ROUNDS_PER_INVOCATION` set, a
//! gradient-boosting candidate stops after that many rounds, saves a checkpoint and answers
//! `paused`; the state machine invokes it again with `resume` until it is done. Errors are typed
//! `BadInput`, `Configuration` or `Internal` (fail fast), or `Transient` (the state machine retries).

use std::num::NonZeroUsize;

use mlops_aws::lambda;
use mlops_core::contracts::{CandidateOutcome, TrainOutput, TrainStep};
use mlops_pipeline::stages;
use serde::Serialize;

// mimalloc hands freed memory back to the system: a whole run's peak is far lower than with glibc's
// per-thread arenas (1.1 GB against 1.6 GB at 1M rows, measured).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// What a step answers.
#[derive(Serialize)]
#[serde(untagged)]
enum Answer {
    Candidate(CandidateOutcome),
    Trained(Box<TrainOutput>),
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    // Boosting rounds per invocation: 0 (the default) fits a candidate in one invocation.
    let rounds =
        lambda::cold_start(async { mlops_aws::env_or("MLOPS_BOOSTING_ROUNDS_PER_INVOCATION", 0, "a whole number of rounds") }).await;
    let rounds = NonZeroUsize::new(rounds);
    lambda::run_stage(move |store, spec, step: TrainStep| match step {
        TrainStep::Candidate { candidate, features, resume } => {
            stages::train_candidate_step(store, spec, &features, &candidate, resume.as_ref(), rounds).map(Answer::Candidate)
        }
        TrainStep::Collect { features } => stages::train_collect(store, spec, features).map(|output| Answer::Trained(Box::new(output))),
    })
    .await
}
