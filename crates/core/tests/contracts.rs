//! Every sample event in `events/` is the JSON contract of its function: it parses into the
//! Rust type the handler takes, and that type writes it back unchanged.

use mlops_core::contracts::{DriftInput, DriftRequest, DriftStep, PrepOutput, PrepStep, RunRequest, TrainOutput, TrainStep};
use serde::Serialize;
use serde::de::DeserializeOwned;

fn round_trips<T: DeserializeOwned + Serialize>(name: &str, text: &str) -> T {
    let original: serde_json::Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("events/{name}: {e}"));
    let parsed: T =
        serde_json::from_value(original.clone()).unwrap_or_else(|e| panic!("events/{name} is not a {}: {e}", std::any::type_name::<T>()));
    assert_eq!(serde_json::to_value(&parsed).unwrap(), original, "events/{name} changes when written back");
    parsed
}

#[test]
fn the_sample_events_are_the_stage_contracts() {
    let prep: PrepStep = round_trips("prep.json", include_str!("../../../events/prep.json"));
    assert!(matches!(&prep, PrepStep::Plan { request } if request.dataset == "bikeshare"), "{prep:?}");
    let shard: PrepStep = round_trips("prep-shard.json", include_str!("../../../events/prep-shard.json"));
    let merge: PrepStep = round_trips("prep-merge.json", include_str!("../../../events/prep-merge.json"));
    // The shard step reads an item of the plan the merge step finishes.
    let (PrepStep::Shard(item), PrepStep::Merge { planned }) = (&shard, &merge) else { panic!("{shard:?} {merge:?}") };
    assert!(item.plan == planned.plan && item.item < planned.items);
    // The bucket step reads a bucket of the plan that the finish step closes, in its batch.
    let bucket: PrepStep = round_trips("prep-bucket.json", include_str!("../../../events/prep-bucket.json"));
    let finish: PrepStep = round_trips("prep-finish.json", include_str!("../../../events/prep-finish.json"));
    let (PrepStep::Bucket(bucket), PrepStep::Finish { merged }) = (&bucket, &finish) else { panic!("{bucket:?} {finish:?}") };
    assert!(bucket.plan == planned.plan && merged.plan == planned.plan && bucket.bucket < merged.buckets);
    let features: PrepOutput = round_trips("features.json", include_str!("../../../events/features.json"));
    let train_step: TrainStep = round_trips("train.json", include_str!("../../../events/train.json"));
    let collect: TrainStep = round_trips("train-collect.json", include_str!("../../../events/train-collect.json"));
    let (TrainStep::Candidate { candidate, features: train, .. }, TrainStep::Collect { features: collected }) = (train_step, collect)
    else {
        panic!("events/train.json is train's candidate step, events/train-collect.json its collect step")
    };
    assert!(train.candidate_names.contains(&candidate));
    assert_eq!(collected, train);
    let register: TrainOutput = round_trips("register.json", include_str!("../../../events/register.json"));
    let drift: DriftInput = round_trips("drift.json", include_str!("../../../events/drift.json"));
    assert!(matches!(drift, DriftInput::Whole(DriftRequest { ref dataset }) if dataset == "bikeshare"), "{drift:?}");
    // Each stage's output is the next stage's input.
    assert_eq!(features.batch.as_ref(), Some(&merged.batch));
    assert_eq!(train.prep.as_ref(), Some(&features));
    assert_eq!(register.features, train);
    assert!(register.candidates.iter().any(|c| c.name == register.best));
}

#[test]
fn an_operator_can_start_a_run_with_just_the_dataset() {
    let request: RunRequest = serde_json::from_str(r#"{"dataset": "bikeshare"}"#).unwrap();
    assert!(request.keys.is_empty());
    assert_eq!(request.trigger, mlops_core::contracts::Trigger::Manual);
}

#[test]
fn drift_steps_parse_and_a_mistyped_step_is_refused() {
    let plan: DriftInput = serde_json::from_str(r#"{"step": "plan", "dataset": "toy"}"#).unwrap();
    assert!(matches!(plan, DriftInput::Step(DriftStep::Plan(DriftRequest { ref dataset })) if dataset == "toy"), "{plan:?}");
    let part: DriftInput = serde_json::from_str(r#"{"step": "part", "dataset": "toy", "check": "c", "item": 3}"#).unwrap();
    assert!(matches!(part, DriftInput::Step(DriftStep::Part(ref item)) if item.item == 3), "{part:?}");
    assert!(serde_json::from_str::<DriftInput>(r#"{"step": "plans", "dataset": "toy"}"#).is_err());
}
