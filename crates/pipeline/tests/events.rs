//! The sample events in `events/` (for `cargo lambda invoke` and the AWS console) are what the
//! stages write: the shipped data and spec go through prep, features and train, and each output
//! is compared with the event of the next stage. What differs between runs (run ids, batch ids,
//! times, durations, metric values) is masked on both sides. When a contract changes, rewrite the
//! events from a real run with
//! `MLOPS_WRITE_EVENTS=1 cargo test -p mlops-pipeline --test events`.

use std::path::{Path, PathBuf};

use mlops_core::contracts::{BucketItem, PrepStep, ScoreItem, ScoreStep, ShardItem, TrainStep};
use mlops_core::{FsStore, Spec, Store};
use mlops_pipeline::score::sharded;
use mlops_pipeline::stages::shards::Sizing;
use mlops_pipeline::{ingest, stages};
use serde::Serialize;
use serde_json::Value;

fn project() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Fields whose values change from run to run; their names and types still have to match.
const VOLATILE: [&str; 8] = ["started_at", "seconds", "fit_seconds", "train_seconds", "predict_p99_ms", "rmse", "mae", "r2"];

/// `value` with the volatile fields emptied and the run and batch ids replaced by placeholders.
fn masked(value: &Value, ids: &[(String, &str)]) -> Value {
    match value {
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(name, field)| {
                    let field = if VOLATILE.contains(&name.as_str()) { masked_number(field) } else { masked(field, ids) };
                    (name.clone(), field)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|item| masked(item, ids)).collect()),
        Value::String(text) => Value::String(ids.iter().fold(text.clone(), |text, (id, placeholder)| text.replace(id, placeholder))),
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

/// The run, batch and plan ids a stage output carries, wherever they are nested.
fn ids(value: &Value) -> Vec<(String, &'static str)> {
    let mut found = Vec::new();
    collect_ids(value, &mut found);
    found
}

fn collect_ids(value: &Value, found: &mut Vec<(String, &'static str)>) {
    let Value::Object(fields) = value else { return };
    for (name, field) in fields {
        let placeholder = match name.as_str() {
            "run_id" => Some("<run_id>"),
            "batch" => Some("<batch>"),
            "plan" => Some("<plan>"),
            _ => None,
        };
        match (placeholder, field) {
            (Some(placeholder), Value::String(id)) if !found.iter().any(|(known, _)| known == id) => found.push((id.clone(), placeholder)),
            _ => collect_ids(field, found),
        }
    }
}

/// Compares a stage output with its sample event, or rewrites the event when asked to.
fn matches_event(name: &str, output: &impl Serialize) {
    let path = project().join("events").join(name);
    let actual = serde_json::to_value(output).unwrap();
    if std::env::var_os("MLOPS_WRITE_EVENTS").is_some() {
        std::fs::write(&path, serde_json::to_string_pretty(&actual).unwrap() + "\n").unwrap();
        return;
    }
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let expected: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        masked(&actual, &ids(&actual)),
        masked(&expected, &ids(&expected)),
        "events/{name} is not what the stage writes; rewrite it with MLOPS_WRITE_EVENTS=1 cargo test -p mlops-pipeline --test events"
    );
}

#[test]
fn the_sample_events_are_what_the_stages_write() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::new(dir.path());
    let spec = Spec::load(&project().join("specs/bikeshare.toml")).unwrap();
    ingest::ingest(&store, &spec.name, &[&project().join("data/bikeshare/Bikeshare.csv")]).unwrap();
    let step: PrepStep = serde_json::from_str(&std::fs::read_to_string(project().join("events/prep.json")).unwrap()).unwrap();
    let PrepStep::Plan { request } = step else { panic!("events/prep.json is not prep's plan step: {step:?}") };
    // Prep's five steps, as the state machine runs them around its two Distributed Maps.
    let planned = stages::prep_plan(&store, &spec, &request, Sizing::default()).unwrap();
    let item = ShardItem { dataset: planned.dataset.clone(), plan: planned.plan.clone(), item: 0 };
    matches_event("prep-shard.json", &PrepStep::Shard(item.clone()));
    stages::prep_shard(&store, &spec, &item).unwrap();
    matches_event("prep-merge.json", &PrepStep::Merge { planned: planned.clone() });
    let merged = stages::prep_merge(&store, &spec, &planned).unwrap();
    let bucket = BucketItem { dataset: merged.dataset.clone(), plan: merged.plan.clone(), bucket: 0 };
    matches_event("prep-bucket.json", &PrepStep::Bucket(bucket.clone()));
    stages::prep_bucket(&store, &spec, &bucket).unwrap();
    matches_event("prep-finish.json", &PrepStep::Finish { merged: merged.clone() });
    let prepared = stages::prep_finish(&store, &spec, &merged).unwrap();
    matches_event("features.json", &prepared);
    let features = stages::features(&store, &spec, prepared).unwrap();
    // Train's two steps, as the state machine runs them around its Map over candidates.
    let candidate = features.candidate_names[0].clone();
    matches_event("train.json", &TrainStep::Candidate { candidate: candidate.clone(), features: features.clone(), resume: None });
    for name in &features.candidate_names {
        stages::train_candidate_step(&store, &spec, &features, name, None, None).unwrap();
    }
    matches_event("train-collect.json", &TrainStep::Collect { features: features.clone() });
    let trained = stages::train_collect(&store, &spec, features).unwrap();
    matches_event("register.json", &trained);
    let (registered, _) = stages::register(&store, &spec, trained).unwrap();
    assert!(registered.promoted);
    // Batch scoring's three steps, as the scoring state machine runs them around its
    // Distributed Map.
    let step: ScoreStep = serde_json::from_str(&std::fs::read_to_string(project().join("events/score.json")).unwrap()).unwrap();
    let ScoreStep::Plan { request } = step else { panic!("events/score.json is not scoring's plan step: {step:?}") };
    let data = std::fs::read(project().join("data/bikeshare/Bikeshare.csv")).unwrap();
    store.put(&request.key, &data).unwrap();
    let planned = sharded::plan(&store, &request, Sizing::default()).unwrap();
    let item = ScoreItem { dataset: planned.dataset.clone(), plan: planned.plan.clone(), item: 0 };
    matches_event("score-shard.json", &ScoreStep::Shard(item.clone()));
    sharded::score_item(&store, &item).unwrap();
    matches_event("score-finish.json", &ScoreStep::Finish { planned: planned.clone() });
    let scored = sharded::finish(&store, &planned).unwrap();
    assert_eq!((scored.summary.rows, scored.summary.rejected), (data.iter().filter(|&&b| b == b'\n').count() - 1, 0), "{scored:?}");
}

#[test]
fn a_changed_contract_is_caught() {
    // The check above would pass if masking hid everything: a real difference must still show.
    let event: Value = serde_json::from_str(&std::fs::read_to_string(project().join("events/train.json")).unwrap()).unwrap();
    let mut changed = event.clone();
    changed["features"]["features"].as_array_mut().unwrap().pop();
    assert_ne!(masked(&event, &ids(&event)), masked(&changed, &ids(&changed)));
    let mut retimed = event.clone();
    retimed["features"]["seconds"] = Value::from(12.5);
    assert_eq!(masked(&event, &ids(&event)), masked(&retimed, &ids(&retimed)));
}
