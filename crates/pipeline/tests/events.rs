//! The sample events in `events/` (for `cargo lambda invoke` and the AWS console) run in
//! pipeline order in a fresh store that holds the shipped data: `prep.json` names its run
//! (`RunRequest::id`), so the plan, batch and run ids are known, and each stage's output is the
//! next stage's event, which is what goes on. What differs between runs (times, durations,
//! metric values) is masked on both sides. When a contract changes, rewrite the events from a
//! real run with `MLOPS_WRITE_EVENTS=1 cargo test -p mlops-pipeline --test events`.

use std::path::{Path, PathBuf};

use mlops_core::contracts::{BucketItem, PrepStep, ScoreItem, ScoreStep, ShardItem, TrainStep};
use mlops_core::{FsStore, Spec, Store};
use mlops_pipeline::score::sharded;
use mlops_pipeline::stages::shards::Sizing;
use mlops_pipeline::{ingest, stages};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

fn project() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Fields whose values change from run to run; their names and types still have to match.
const VOLATILE: [&str; 8] = ["started_at", "seconds", "fit_seconds", "train_seconds", "predict_p99_ms", "rmse", "mae", "r2"];

/// `value` with the volatile fields emptied.
fn masked(value: &Value) -> Value {
    match value {
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(name, field)| {
                    let field = if VOLATILE.contains(&name.as_str()) { masked_number(field) } else { masked(field) };
                    (name.clone(), field)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(masked).collect()),
        other => other.clone(),
    }
}

/// A number or a time kept only as its type.
fn masked_number(value: &Value) -> Value {
    match value {
        Value::Number(_) => Value::from(0),
        Value::String(_) => Value::from("<time>"),
        other => other.clone(),
    }
}

/// The sample event `name`.
fn event<T: DeserializeOwned>(name: &str) -> T {
    let path = project().join("events").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The next function's input: what the stage before wrote (`produced`) must be the sample event
/// `name` (or the event is rewritten from it, when asked to), and the event is what goes on.
fn follow<T: Serialize + DeserializeOwned>(name: &str, produced: &T) -> T {
    let path = project().join("events").join(name);
    let actual = serde_json::to_value(produced).unwrap();
    if std::env::var_os("MLOPS_WRITE_EVENTS").is_some() {
        std::fs::write(&path, serde_json::to_string_pretty(&actual).unwrap() + "\n").unwrap();
    }
    let expected: Value = event(name);
    assert_eq!(
        masked(&actual),
        masked(&expected),
        "events/{name} is not what the stage before writes; rewrite it with MLOPS_WRITE_EVENTS=1 cargo test -p mlops-pipeline --test events"
    );
    serde_json::from_value(expected).unwrap()
}

/// A store as the dev stack's setup leaves it: the shipped data under `raw/`.
fn fresh_store(dir: &Path) -> (FsStore, Spec) {
    let store = FsStore::new(dir);
    let spec = Spec::load(&project().join("specs/bikeshare.toml")).unwrap();
    ingest::ingest(&store, &spec.name, &[&project().join("data/bikeshare/Bikeshare.csv")]).unwrap();
    (store, spec)
}

#[test]
fn the_sample_events_run_in_pipeline_order_in_a_fresh_store() {
    let dir = tempfile::tempdir().unwrap();
    let (store, spec) = fresh_store(dir.path());
    // Prep's five steps, as the state machine runs them around its two Distributed Maps; the
    // request names its run, so every event after it names what the one before produced.
    let PrepStep::Plan { request } = event("prep.json") else { panic!("events/prep.json is not prep's plan step") };
    assert!(request.id.is_some(), "events/prep.json names its run");
    let planned = stages::prep_plan(&store, &spec, &request, Sizing::default()).unwrap();
    let PrepStep::Shard(item) =
        follow("prep-shard.json", &PrepStep::Shard(ShardItem { dataset: planned.dataset.clone(), plan: planned.plan.clone(), item: 0 }))
    else {
        unreachable!()
    };
    stages::prep_shard(&store, &spec, &item).unwrap();
    let PrepStep::Merge { planned } = follow("prep-merge.json", &PrepStep::Merge { planned }) else { unreachable!() };
    let merged = stages::prep_merge(&store, &spec, &planned).unwrap();
    let bucket = BucketItem { dataset: merged.dataset.clone(), plan: merged.plan.clone(), bucket: 0 };
    let PrepStep::Bucket(bucket) = follow("prep-bucket.json", &PrepStep::Bucket(bucket)) else { unreachable!() };
    stages::prep_bucket(&store, &spec, &bucket).unwrap();
    let PrepStep::Finish { merged } = follow("prep-finish.json", &PrepStep::Finish { merged }) else { unreachable!() };
    let prepared = follow("features.json", &stages::prep_finish(&store, &spec, &merged).unwrap());
    let features = stages::features(&store, &spec, prepared).unwrap();
    // Train's two steps, as the state machine runs them around its Map over candidates.
    let first = TrainStep::Candidate { candidate: features.candidate_names[0].clone(), features: features.clone(), resume: None };
    let TrainStep::Candidate { candidate, features: named, resume } = follow("train.json", &first) else { unreachable!() };
    stages::train_candidate_step(&store, &spec, &named, &candidate, resume.as_ref(), None).unwrap();
    for name in &features.candidate_names[1..] {
        stages::train_candidate_step(&store, &spec, &features, name, None, None).unwrap();
    }
    let TrainStep::Collect { features } = follow("train-collect.json", &TrainStep::Collect { features }) else { unreachable!() };
    let trained = follow("register.json", &stages::train_collect(&store, &spec, features).unwrap());
    let (registered, _) = stages::register(&store, &spec, trained).unwrap();
    assert!(registered.promoted);
    // Batch scoring's three steps, as the scoring state machine runs them around its
    // Distributed Map.
    let ScoreStep::Plan { request } = event("score.json") else { panic!("events/score.json is not scoring's plan step") };
    let data = std::fs::read(project().join("data/bikeshare/Bikeshare.csv")).unwrap();
    store.put(&request.key, &data).unwrap();
    let planned = sharded::plan(&store, &request, Sizing::default()).unwrap();
    let item = ScoreItem { dataset: planned.dataset.clone(), plan: planned.plan.clone(), item: 0 };
    let ScoreStep::Shard(item) = follow("score-shard.json", &ScoreStep::Shard(item)) else { unreachable!() };
    sharded::score_item(&store, &item).unwrap();
    let ScoreStep::Finish { planned } = follow("score-finish.json", &ScoreStep::Finish { planned }) else { unreachable!() };
    let scored = sharded::finish(&store, &planned).unwrap();
    assert_eq!((scored.summary.rows, scored.summary.rejected), (data.iter().filter(|&&b| b == b'\n').count() - 1, 0), "{scored:?}");

    // A named run runs once per store: replaying its first event is refused, not merged with
    // what it wrote.
    let PrepStep::Plan { request } = event("prep.json") else { unreachable!() };
    let error = stages::prep_plan(&store, &spec, &request, Sizing::default()).unwrap_err();
    assert_eq!(error.kind(), mlops_core::ErrorKind::BadInput);
    assert!(error.to_string().contains("has run in this store before"), "{error}");
}

#[test]
fn a_changed_contract_is_caught() {
    // The check above would pass if masking hid everything: a real difference must still show.
    let event: Value = event("train.json");
    let mut changed = event.clone();
    changed["features"]["features"].as_array_mut().unwrap().pop();
    assert_ne!(masked(&event), masked(&changed));
    let mut retimed = event.clone();
    retimed["features"]["seconds"] = Value::from(12.5);
    assert_eq!(masked(&event), masked(&retimed));
}

#[test]
fn an_event_naming_what_the_store_lacks_is_bad_input_at_every_stage() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::new(dir.path());
    let spec = Spec::load(&project().join("specs/bikeshare.toml")).unwrap();
    let kind = |error: mlops_pipeline::PipelineError| (error.kind(), error.to_string());
    let mut failures = Vec::new();
    let PrepStep::Shard(item) = event("prep-shard.json") else { unreachable!() };
    failures.push(("prep-shard", kind(stages::prep_shard(&store, &spec, &item).unwrap_err())));
    let PrepStep::Merge { planned } = event("prep-merge.json") else { unreachable!() };
    failures.push(("prep-merge", kind(stages::prep_merge(&store, &spec, &planned).unwrap_err())));
    let PrepStep::Bucket(bucket) = event("prep-bucket.json") else { unreachable!() };
    failures.push(("prep-bucket", kind(stages::prep_bucket(&store, &spec, &bucket).unwrap_err())));
    let PrepStep::Finish { merged } = event("prep-finish.json") else { unreachable!() };
    failures.push(("prep-finish", kind(stages::prep_finish(&store, &spec, &merged).unwrap_err())));
    failures.push(("features", kind(stages::features(&store, &spec, event("features.json")).unwrap_err())));
    let TrainStep::Candidate { candidate, features, resume } = event("train.json") else { unreachable!() };
    failures.push(("train", kind(stages::train_candidate_step(&store, &spec, &features, &candidate, resume.as_ref(), None).unwrap_err())));
    let TrainStep::Collect { features } = event("train-collect.json") else { unreachable!() };
    failures.push(("train-collect", kind(stages::train_collect(&store, &spec, features).unwrap_err())));
    failures.push(("register", kind(stages::register(&store, &spec, event("register.json")).unwrap_err())));
    let ScoreStep::Shard(item) = event("score-shard.json") else { unreachable!() };
    failures.push(("score-shard", kind(sharded::score_item(&store, &item).unwrap_err())));
    let ScoreStep::Finish { planned } = event("score-finish.json") else { unreachable!() };
    failures.push(("score-finish", kind(sharded::finish(&store, &planned).unwrap_err())));
    let wrong: Vec<_> = failures.iter().filter(|(_, (kind, _))| *kind != mlops_core::ErrorKind::BadInput).collect();
    assert!(wrong.is_empty(), "a missing artifact the input names is bad input: {wrong:#?}");
}
