use super::*;
use crate::feedback::store_feedback;
use crate::stages::{quiet, run};
use logs::summarize_item;
use mlops_core::Action;
use mlops_core::FsStore;
use mlops_core::JsonStore;
use mlops_core::contracts::DriftItem;
use mlops_core::contracts::{RunRequest, Trigger};

use crate::testing::TOY_SPEC as SPEC;

/// `n` rows; `shift` moves x and makes group "c" dominant.
fn csv(n: usize, seed: usize, shift: f64) -> String {
    let mut text = String::from("x,group,y\n");
    for i in seed..seed + n {
        let x = ((i * 7919) % 1000) as f64 / 100.0 + shift;
        let group = if shift > 0.0 && i % 4 != 0 { "c" } else { ["a", "b", "c"][i % 3] };
        text.push_str(&format!("{x},{group},{}\n", 2.0 * x + (i % 5) as f64));
    }
    text
}

fn batch(spec: &Spec, text: &str) -> Current {
    let parsed = mlops_prep::parse_csv("batch.csv", text.as_bytes(), spec).unwrap();
    Current::Batch { name: "batch.csv".into(), frame: mlops_prep::to_frame(parsed.valid.clone(), spec).unwrap() }
}

fn runs(store: &FsStore) -> usize {
    store.list("runs/toy/").unwrap().iter().filter(|k| k.ends_with("run.json")).count()
}

/// A store whose production model (v1) was trained on 1,000 unshifted rows, the spec, and the
/// request of a manual run.
fn trained() -> (tempfile::TempDir, FsStore, Spec, RunRequest) {
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::new(dir.path());
    let spec = Spec::parse(SPEC, "toy").unwrap();
    store.put("raw/toy/a.csv", csv(1000, 0, 0.0).as_bytes()).unwrap();
    let request = RunRequest { dataset: "toy".into(), keys: Vec::new(), trigger: Trigger::Manual, id: None };
    run(&store, &spec, &request, &quiet).unwrap();
    (dir, store, spec, request)
}

#[test]
fn drift_alerts_and_retrains_once_per_version_and_respects_the_cooldown() {
    let (_dir, store, spec, request) = trained();
    let retrainer = LocalRetrainer { store: &store, spec: &spec };
    let start: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();

    // Same distribution: no drift, no alert.
    let calm = check_at(&store, &spec, batch(&spec, &csv(400, 5000, 0.0)), start, &LogNotifier, &retrainer).unwrap();
    assert!(!calm.alert && !calm.dataset_drift, "{:?}", calm.features);
    assert!(calm.features.iter().all(|f| f.verdict == Verdict::NoDrift));
    assert_eq!(calm.concept.as_ref().unwrap().verdict, Verdict::NoDrift);

    // Too few rows of shifted data: no verdict, so no false alarm.
    let few = check_at(&store, &spec, batch(&spec, &csv(50, 7000, 5.0)), start, &LogNotifier, &retrainer).unwrap();
    assert!(!few.alert);
    assert!(few.features.iter().all(|f| f.verdict == Verdict::InsufficientData));

    // Shifted data: x and group drift, an alert, and one retrain.
    let before = runs(&store);
    let drifted = check_at(&store, &spec, batch(&spec, &csv(400, 9000, 5.0)), start, &LogNotifier, &retrainer).unwrap();
    assert!(drifted.alert && drifted.dataset_drift);
    assert_eq!(drifted.features.iter().filter(|f| f.verdict == Verdict::Drift).count(), 2);
    assert!(drifted.retrain.requested, "{}", drifted.retrain.reason);
    assert_eq!(runs(&store), before + 1);
    let retrain: mlops_core::contracts::RunRecord = serde_json::from_value(drifted.retrain.started.clone().unwrap()).unwrap();
    assert_eq!(retrain.trigger, Trigger::Drift);
    assert!(store.list("monitor/toy/alerts/").unwrap().len() == 1);
    let html = String::from_utf8(store.get(&drifted.html_key).unwrap().unwrap()).unwrap();
    assert!(
        html.contains("<svg") && html.contains("Drift score over time") && html.contains(">x <span"),
        "the report charts every feature"
    );
    // It names what it checked, and its summary lists the drifted features first.
    let run_id = drifted.run_id.as_deref().expect("the model's run");
    assert!(html.contains(&format!("trained by run {run_id}")) && html.contains("<h2>Summary</h2>"));
    let summary = &html[html.find("<h2>Summary</h2>").unwrap()..html.find("</table>").unwrap()];
    let drifted_at = summary.find(">drift<").unwrap();
    assert!(summary.find(">no drift<").is_none_or(|calm| calm > drifted_at), "drifted features come first");

    // The retrain found nothing better on the same data: still v1, and the loop guard holds.
    let (production, etag) = Registry::new(&store, "toy").production().unwrap().unwrap();
    assert_eq!(production.version, "v1");
    let later = start + jiff::SignedDuration::from_hours(5);
    let guarded = check_at(&store, &spec, batch(&spec, &csv(400, 11000, 5.0)), later, &LogNotifier, &retrainer).unwrap();
    assert!(guarded.alert && !guarded.retrain.requested);
    assert!(guarded.retrain.reason.starts_with("loop guard"), "{}", guarded.retrain.reason);
    assert_eq!(runs(&store), before + 1);

    // A new production version is allowed one retrain, but not within the cooldown.
    store.put("raw/toy/b.csv", csv(500, 20000, 1.0).as_bytes()).unwrap();
    let record = run(&store, &spec, &request, &quiet).unwrap();
    if !record.promoted {
        Registry::new(&store, "toy").promote(&record.version, Action::Manual, "test", None, Some(&etag)).unwrap();
    }
    let soon = start + jiff::SignedDuration::from_mins(30);
    let cooling = check_at(&store, &spec, batch(&spec, &csv(400, 30000, 6.0)), soon, &LogNotifier, &retrainer).unwrap();
    assert!(cooling.alert && !cooling.retrain.requested);
    assert!(cooling.retrain.reason.starts_with("cooldown"), "{}", cooling.retrain.reason);
    let after_cooldown = check_at(&store, &spec, batch(&spec, &csv(400, 30000, 6.0)), later, &LogNotifier, &retrainer).unwrap();
    assert!(after_cooldown.retrain.requested, "{}", after_cooldown.retrain.reason);
}

#[test]
fn the_card_holds_global_importance_and_a_shifted_batch_shows_attribution_drift() {
    let (_dir, store, spec, _) = trained();
    let registry = Registry::new(&store, "toy");
    let importance = registry.card("v1").unwrap().importance;
    let names: Vec<&str> = importance.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names.first(), Some(&"x"), "y = 2x + noise: x matters most: {importance:?}");
    assert!(names.contains(&"group") && importance.iter().all(|(_, v)| v.is_finite() && *v >= 0.0), "{importance:?}");
    assert!(importance.windows(2).all(|w| w[0].1 >= w[1].1), "largest first: {importance:?}");

    // Sums over parts of the rows merge into the sums over the whole.
    let artifact = registry.artifact("v1").unwrap();
    let Current::Batch { frame, .. } = batch(&spec, &csv(100, 5000, 0.0)) else { unreachable!() };
    let whole = mlops_core::attribution(&artifact, &frame).unwrap();
    let mut parts = mlops_core::attribution(&artifact, &frame.take(&(0..40).collect::<Vec<_>>())).unwrap();
    parts.merge(&mlops_core::attribution(&artifact, &frame.take(&(40..100).collect::<Vec<_>>())).unwrap());
    assert_eq!(parts.rows, whole.rows);
    for ((name, a), (_, b)) in parts.sums.iter().zip(&whole.sums) {
        assert!((a - b).abs() <= 1e-9 * b.abs().max(1.0), "{name}: {a} against {b}");
    }

    let retrainer = LocalRetrainer { store: &store, spec: &spec };
    let at: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
    let change = |shift: f64| {
        let report = check_at(&store, &spec, batch(&spec, &csv(400, 9000, shift)), at, &LogNotifier, &retrainer).unwrap();
        let x = report.attribution.iter().find(|a| a.feature == "x").unwrap_or_else(|| panic!("{:?}", report.attribution)).clone();
        (x.change.unwrap().abs(), report)
    };
    let (calm, _) = change(0.0);
    let (shifted, report) = change(5.0);
    assert!(calm < 0.25 && shifted > calm + 0.25, "x's contribution: {calm:.3} calm, {shifted:.3} shifted");
    let html = String::from_utf8(store.get(&report.html_key).unwrap().unwrap()).unwrap();
    assert!(html.contains("Attribution drift"), "the report shows it");
}

#[test]
fn feedback_files_are_checked_and_name_the_bad_row() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::new(dir.path());
    let spec = Spec::parse(SPEC, "toy").unwrap();
    let summary = store_feedback(&store, &spec, "labels.csv", b"prediction_id,y\nr-0,1.5\nr-1,2\n").unwrap();
    assert_eq!((summary.rows, summary.matched), (2, 0));
    let cases: [(&[u8], &str); 3] = [
        (b"id,y\nr-0,1\n", "no 'prediction_id' column"),
        (b"prediction_id,y\nr-0,1\nr-1,lots\n", "row 2: 'y' is 'lots', not a number"),
        (b"prediction_id,y\nr-0,\n", "row 1: no 'y'"),
    ];
    for (bytes, expected) in cases {
        let error = store_feedback(&store, &spec, "bad.csv", bytes).unwrap_err().to_string();
        assert!(error.contains("bad.csv") && error.contains(expected), "{error}");
    }
    assert_eq!(store.list("feedback/toy/").unwrap().len(), 1, "bad files are not stored");
}

/// A retrainer whose executions never start (a service outage).
struct Unavailable;

impl Retrainer for Unavailable {
    fn retrain(&self, _dataset: &str, _reason: &str) -> Result<serde_json::Value, CoreError> {
        Err(CoreError::Service {
            service: "states start-execution".into(),
            message: "unavailable".into(),
            kind: mlops_core::ErrorKind::Transient,
        })
    }
}

#[test]
fn a_retrain_that_does_not_start_leaves_the_version_its_retrain_and_a_report_behind_its_alert() {
    let (_dir, store, spec, _) = trained();
    let at: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();

    let error = check_at(&store, &spec, batch(&spec, &csv(400, 9000, 5.0)), at, &LogNotifier, &Unavailable).unwrap_err();
    assert!(error.to_string().contains("unavailable"), "{error}");
    // The alert points to a report that exists, and the state gives the version its retrain back.
    let alerts = store.list("monitor/toy/alerts/").unwrap();
    assert_eq!(alerts.len(), 1);
    let alert: serde_json::Value = serde_json::from_slice(&store.get(&alerts[0]).unwrap().unwrap()).unwrap();
    assert!(store.get(alert["report"].as_str().unwrap()).unwrap().is_some(), "{alert}");
    let state: MonitorState = serde_json::from_slice(&store.get("monitor/toy/state.json").unwrap().unwrap()).unwrap();
    assert_eq!(state.last_retrain_for, None, "{state:?}");

    // The next check (same instant, so the same millisecond stamp) retrains, in a report of its own.
    let retrainer = LocalRetrainer { store: &store, spec: &spec };
    let next = check_at(&store, &spec, batch(&spec, &csv(400, 9000, 5.0)), at, &LogNotifier, &retrainer).unwrap();
    assert!(next.retrain.requested, "{}", next.retrain.reason);
    assert_eq!(store.list("monitor/toy/reports/").unwrap().iter().filter(|k| k.ends_with(".json")).count(), 2);
}

/// Log files `inference/toy/2026-01-01/NNN.jsonl` (oldest first by name) of `lines` predictions
/// each; every fifth is version v0's, every 37th has an `x` the schema refuses. Answers the
/// v1 predictions newest first: their id and `x` (`None`: refused).
fn write_logs(store: &FsStore, files: usize, lines: usize) -> Vec<(String, Option<f64>)> {
    let mut logged = Vec::new();
    for file in 0..files {
        let mut text = String::new();
        for line in 0..lines {
            let seq = file * lines + line;
            let version = if seq.is_multiple_of(5) { "v0" } else { "v1" };
            let x = if seq.is_multiple_of(37) { serde_json::json!("oops") } else { serde_json::json!(seq as f64 / 10.0) };
            let group = ["a", "b", "c"][seq % 3];
            let features = serde_json::json!({ "x": x, "group": group });
            let id = format!("p-{seq}");
            text.push_str(&format!(
                "{}\n",
                serde_json::json!({ "prediction_id": id, "model_version": version, "features": features, "prediction": seq as f64 })
            ));
            if version == "v1" {
                logged.push((id, x.as_f64()));
            }
        }
        store.put(&format!("inference/toy/2026-01-01/{file:03}.jsonl"), text.as_bytes()).unwrap();
    }
    logged.reverse();
    logged
}

/// Labels for every third logged prediction.
fn label_logs(store: &FsStore, spec: &Spec, logged: &[(String, Option<f64>)]) {
    let mut feedback = String::from("prediction_id,y\n");
    for (id, _) in logged.iter().step_by(3) {
        feedback.push_str(&format!("{id},1.5\n"));
    }
    store_feedback(store, spec, "labels.csv", feedback.as_bytes()).unwrap();
}

#[test]
fn the_log_check_sees_exactly_the_newest_window_however_it_is_partitioned() {
    let (_dir, store, mut spec, _) = trained();
    spec.drift.window = 300;
    let logged = write_logs(&store, 7, 70);
    label_logs(&store, &spec, &logged);
    let (version, artifact) = production(&store, &spec).unwrap();
    let window = &logged[..300];
    let mut expected: Vec<f64> = window.iter().filter_map(|(_, x)| *x).collect();
    expected.sort_unstable_by(f64::total_cmp);
    let labelled = window.iter().enumerate().filter(|(i, (_, x))| i % 3 == 0 && x.is_some()).count();

    let mut seen = Vec::new();
    for (files_per_item, items_per_round) in [(1, 1), (2, 3), (3, 1), (16, 40)] {
        let sizing = LogSizing { files_per_item, items_per_round };
        let plan = LogPlan::new(&store, &spec, "c".into(), &version, &artifact, sizing).unwrap();
        let observed = logs::observe(&store, &plan).unwrap();
        assert_eq!((observed.lines(), observed.skipped), (300, 300 - expected.len()), "{sizing:?}");
        let mlops_core::drift::Distribution::Sketched { sketch, .. } = &observed.features[0] else { panic!("x is sketched") };
        assert_eq!(sketch.items().0, expected, "{sizing:?}: the newest 300 predictions of v1, no other");
        assert_eq!(observed.labelled.y.len(), labelled, "{sizing:?}");
        seen.push(observed);
    }
    assert!(seen.windows(2).all(|pair| pair[0] == pair[1]), "every partitioning gives the same summary");
}

/// A retrainer whose executions start and do nothing.
struct Started;

impl Retrainer for Started {
    fn retrain(&self, _dataset: &str, _reason: &str) -> Result<serde_json::Value, CoreError> {
        Ok(serde_json::json!("started"))
    }
}

#[test]
fn the_mapped_log_check_matches_the_local_one_and_fails_on_a_missing_summary() {
    let (_dir, store, mut spec, _) = trained();
    spec.drift.window = 300;
    let logged = write_logs(&store, 7, 70);
    label_logs(&store, &spec, &logged);
    let at: jiff::Timestamp = "2026-01-02T00:00:00Z".parse().unwrap();
    let local = check_at(&store, &spec, Current::Logs, at, &LogNotifier, &Started).unwrap();

    // As the state machine runs it: plan, each round's items (read from their JSON array), reduce.
    let sizing = LogSizing { files_per_item: 1, items_per_round: 2 };
    let mut planned = plan_check(&store, &spec, sizing, 5).unwrap();
    let mut rounds = 1;
    let report = loop {
        let items: Vec<serde_json::Value> = store.read_json(&planned.items_key).unwrap().unwrap();
        assert_eq!(items.len(), planned.items);
        for item in items {
            let item = DriftItem { dataset: "toy".into(), check: planned.check.clone(), item: item["item"].as_u64().unwrap() as usize };
            summarize_item(&store, &item).unwrap();
        }
        match reduce_check(&store, &spec, &planned, &LogNotifier, &Started).unwrap() {
            DriftRound::Next(next) => (planned, rounds) = (next, rounds + 1),
            DriftRound::Done(report) => break report,
        }
    };
    // 240 predictions of v1 in the newest four files, so the window needs a third round.
    assert_eq!(rounds, 3);
    assert_eq!((report.current_rows, report.skipped_rows), (local.current_rows, local.skipped_rows));
    assert_eq!(report.features, local.features);
    assert_eq!(report.prediction, local.prediction);
    assert_eq!(report.concept, local.concept);

    // An item whose summary is missing (a failed map item reported as a null success) fails the check.
    let planned = plan_check(&store, &spec, sizing, 5).unwrap();
    summarize_item(&store, &DriftItem { dataset: "toy".into(), check: planned.check.clone(), item: 1 }).unwrap();
    let error = reduce_check(&store, &spec, &planned, &LogNotifier, &Started).unwrap_err().to_string();
    assert!(error.contains("map item 0") && error.contains(&format!("staging/toy/drift/{}/parts/0.bin", planned.check)), "{error}");
}
