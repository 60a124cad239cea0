//! Monitoring: drift of the production model's inputs, predictions and quality against its
//! training reference; delayed labels; alerts and retraining under a cooldown and a loop guard.

use std::collections::HashMap;

use mlops_core::CoreError;
use mlops_core::JsonStore;
use mlops_core::ModelArtifact;
use mlops_core::Registry;
use mlops_core::Task;
use mlops_core::contracts::{DriftReport, RetrainOutcome, RunRequest, Trigger};
use mlops_core::drift::{self, Distribution, FeatureDrift, Verdict};
use mlops_core::evaluate;
use mlops_core::prediction_column;
use mlops_core::{Cell, RowSchema};
use mlops_core::{Column, Frame};
use mlops_core::{Condition, StoreError};
use mlops_core::{Keys, Spec, Store};
use mlops_core::{LogQuery, LoggedPrediction, read_logs};
use mlops_core::{Notifier, Retrainer};
use ndarray::Array2;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::PipelineError;
use crate::feedback::read_feedback;

/// What a drift check looks at.
pub enum Current {
    /// The most recent inferences logged by the production version.
    Logs,
    /// A batch of rows (validated like prep); the target, when present, gives concept drift.
    Batch { name: String, frame: Frame },
}

/// What the monitor remembers between checks: the loop guard and the cooldown.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct MonitorState {
    pub last_alert_at: Option<String>,
    pub last_retrain_at: Option<String>,
    /// The production version a retrain was last requested for: at most one per version.
    pub last_retrain_for: Option<String>,
}

/// Checks drift now; see [`check_at`].
pub fn check(
    store: &dyn Store,
    spec: &Spec,
    current: Current,
    notifier: &dyn Notifier,
    retrainer: &dyn Retrainer,
) -> Result<DriftReport, PipelineError> {
    check_at(store, spec, current, jiff::Timestamp::now(), notifier, retrainer)
}

/// Compares `current` with the production model's reference, writes the report (JSON and
/// HTML), and past the thresholds raises an alert and, unless in cooldown or already done for
/// this version, a retrain.
pub fn check_at(
    store: &dyn Store,
    spec: &Spec,
    current: Current,
    now: jiff::Timestamp,
    notifier: &dyn Notifier,
    retrainer: &dyn Retrainer,
) -> Result<DriftReport, PipelineError> {
    let keys = Keys { dataset: &spec.name };
    let registry = Registry::new(store, &spec.name);
    let (production, _) =
        registry.production()?.ok_or_else(|| PipelineError::bad_input(format!("'{}' has no production model to monitor", spec.name)))?;
    let artifact = registry.artifact(&production.version)?;
    let model_spec = artifact.spec()?;
    let policy = &spec.drift;
    let observed = match current {
        Current::Logs => from_logs(store, &keys, &model_spec, &artifact, &production.version, policy.window)?,
        Current::Batch { name, frame } => from_batch(&model_spec, &artifact, name, frame)?,
    };
    let features: Vec<FeatureDrift> = artifact
        .reference
        .features
        .par_iter()
        .map(|reference| {
            let column = observed.frame.column(reference.column());
            let current = match column {
                Some(column) => Distribution::observed(reference.column(), column),
                None => Distribution::numeric(reference.column(), &[], 0),
            };
            drift::compare(reference, &current, policy)
        })
        .collect();
    let prediction = drift::compare(&artifact.reference.predictions, &observed.predictions, policy);
    let concept =
        observed.labelled.map(|(value, n)| drift::concept(artifact.reference.metric, artifact.reference.baseline, value, n, policy));
    let (drifted_features, judged_features, dataset_drift) = drift::dataset_drift(&features, policy);
    let concept_drift = concept.as_ref().is_some_and(|c| c.verdict == Verdict::Drift);
    let alert = dataset_drift || concept_drift;
    // Checks that overlap get distinct keys: the time, then a random suffix.
    let stamp = format!("{}-{}", now.strftime("%Y%m%dT%H%M%S%.3fZ"), &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let mut report = DriftReport {
        dataset: spec.name.clone(),
        model_version: production.version.clone(),
        checked_at: now.to_string(),
        source: observed.source,
        current_rows: observed.frame.n_rows(),
        skipped_rows: observed.skipped,
        features,
        drifted_features,
        judged_features,
        dataset_drift,
        prediction,
        concept,
        alert,
        retrain: RetrainOutcome {
            requested: false,
            reason: if alert { "alert raised; the retrain decision did not complete".into() } else { "no alert".into() },
            started: None,
        },
        report_key: keys.drift_report(&stamp, "json"),
        html_key: keys.drift_report(&stamp, "html"),
    };
    // The report is written first, so an alert never points to a report that does not exist;
    // it is written again with the retrain's outcome.
    let history = previous_reports(store, &keys)?;
    write_report(store, &report, &history)?;
    if alert {
        let why = alert_reason(&report);
        tracing::warn!(dataset = %spec.name, version = %production.version, "drift alert: {why}");
        store
            .write_json(&keys.alert(&stamp), &serde_json::json!({ "at": report.checked_at, "reason": why, "report": report.report_key }))?;
        let message = serde_json::json!({ "dataset": spec.name, "model_version": production.version, "reason": why, "report": report.report_key, "checked_at": report.checked_at });
        notifier.notify(&format!("mlops drift alert: {} {}", spec.name, production.version), &message.to_string())?;
        report.retrain = decide_retrain(store, &keys, spec, &production.version, now, &why, retrainer)?;
        write_report(store, &report, &history)?;
    }
    Ok(report)
}

fn write_report(store: &dyn Store, report: &DriftReport, history: &[DriftReport]) -> Result<(), PipelineError> {
    store.write_json(&report.report_key, report)?;
    store.put(&report.html_key, crate::html::render(report, history).as_bytes())?;
    Ok(())
}

fn alert_reason(report: &DriftReport) -> String {
    let mut parts = Vec::new();
    if report.dataset_drift {
        let drifted: Vec<&str> = report.features.iter().filter(|f| f.verdict == Verdict::Drift).map(|f| f.column.as_str()).collect();
        parts.push(format!("{} of {} features drifted ({})", report.drifted_features, report.judged_features, drifted.join(", ")));
    }
    if let Some(concept) = report.concept.as_ref().filter(|c| c.verdict == Verdict::Drift) {
        parts.push(format!(
            "{} {:.4} on {} delayed labels against {:.4} at training ({:+.0}%)",
            concept.metric.name(),
            concept.current,
            concept.labelled,
            concept.baseline,
            concept.degradation * 100.0
        ));
    }
    parts.join("; ")
}

/// The loop guard and the cooldown: at most one retrain per production version, none within
/// the cooldown of the last; the state moves by a conditional write so two checks cannot both
/// start one.
fn decide_retrain(
    store: &dyn Store,
    keys: &Keys,
    spec: &Spec,
    version: &str,
    now: jiff::Timestamp,
    why: &str,
    retrainer: &dyn Retrainer,
) -> Result<RetrainOutcome, PipelineError> {
    let key = keys.monitor_state();
    let (mut state, etag) = match store.read_json_tagged::<MonitorState>(&key)? {
        Some((state, etag)) => (state, Some(etag)),
        None => (MonitorState::default(), None),
    };
    let skipped = |reason: String| Ok(RetrainOutcome { requested: false, reason, started: None });
    if state.last_retrain_for.as_deref() == Some(version) {
        return skipped(format!(
            "loop guard: a retrain was already requested for {version} at {}; the next one needs a new production version",
            state.last_retrain_at.as_deref().unwrap_or("?")
        ));
    }
    // The spec bounds the cooldown, so this cannot overflow.
    let cooldown = jiff::SignedDuration::from_mins(spec.drift.cooldown_minutes as i64);
    if let Some(last) = state.last_retrain_at.as_deref().and_then(|t| t.parse::<jiff::Timestamp>().ok())
        && now.duration_since(last) < cooldown
    {
        let next = last.checked_add(cooldown).map_or_else(|_| "the end of time".to_string(), |t| t.to_string());
        return skipped(format!("cooldown: the last retrain was at {last}; the next is allowed after {next}"));
    }
    let before = state.clone();
    state.last_alert_at = Some(now.to_string());
    state.last_retrain_at = Some(now.to_string());
    state.last_retrain_for = Some(version.to_string());
    let bytes = serde_json::to_vec_pretty(&state).expect("the state serialises");
    let written = match store.put_if(&key, &bytes, etag.map_or(Condition::Absent, Condition::Matches)) {
        Ok(written) => written,
        Err(StoreError::PreconditionFailed { .. }) => return skipped("another drift check requested a retrain at the same time".into()),
        Err(e) => return Err(e.into()),
    };
    match retrainer.retrain(&spec.name, why) {
        Ok(started) => Ok(RetrainOutcome { requested: true, reason: why.to_string(), started: Some(started) }),
        Err(error) => {
            // The retrain did not start: give the version its retrain back, unless another
            // check moved the state since.
            let bytes = serde_json::to_vec_pretty(&before).expect("the state serialises");
            if let Err(restore) = store.put_if(&key, &bytes, Condition::Matches(written)) {
                tracing::warn!("the loop guard stays set after a failed retrain: {restore}");
            }
            Err(error.into())
        }
    }
}

/// Current rows and predictions, and the metric on delayed labels when there are any.
struct Observed {
    source: String,
    frame: Frame,
    skipped: usize,
    predictions: Distribution,
    /// The promotion metric on labelled rows, and their number.
    labelled: Option<(f64, usize)>,
}

fn from_batch(spec: &Spec, artifact: &ModelArtifact, name: String, frame: Frame) -> Result<Observed, PipelineError> {
    let predictions = artifact.predict(&frame).map_err(|e| PipelineError::bad_input(e.to_string()))?;
    let labelled = frame.column(&spec.target.column).map(|column| {
        let encoded = artifact.target.encode(column);
        let rows: Vec<usize> = (0..frame.n_rows()).filter(|&r| encoded[r].is_some()).collect();
        let y: Vec<f64> = rows.iter().map(|&r| encoded[r].expect("kept")).collect();
        let selected = predictions.select(ndarray::Axis(0), &rows);
        (evaluate(task_of(artifact), &y, &selected).get(&artifact.reference.metric).copied().unwrap_or(f64::NAN), rows.len())
    });
    Ok(Observed {
        source: format!("batch {name}"),
        predictions: Distribution::observed("prediction", &prediction_column(task_of(artifact), &artifact.target, &predictions)),
        frame,
        skipped: 0,
        labelled: labelled.filter(|(_, n)| *n > 0),
    })
}

fn task_of(artifact: &ModelArtifact) -> Task {
    match artifact.target.n_classes() {
        1 => Task::Regression,
        2 => Task::Binary,
        _ => Task::Multiclass,
    }
}

fn from_logs(
    store: &dyn Store,
    keys: &Keys,
    spec: &Spec,
    artifact: &ModelArtifact,
    version: &str,
    window: usize,
) -> Result<Observed, PipelineError> {
    let schema = RowSchema::new(spec);
    let labels = read_feedback(store, keys, spec)?;
    let logged = read_logs(store, keys, &LogQuery { version, window, schema: &schema, ids: !labels.is_empty() })?;
    let skipped = logged.iter().filter(|c| c.row.is_none()).count();
    let (rows, kept): (Vec<Vec<Cell>>, Vec<LoggedPrediction>) = logged.into_iter().filter_map(|c| Some((c.row?, c.line))).unzip();
    let frame = schema.frame(&rows);
    drop(rows);
    let kept: Vec<&LoggedPrediction> = kept.iter().collect();
    let task = task_of(artifact);
    let predictions = match task {
        Task::Regression => {
            Distribution::observed("prediction", &Column::Numeric(kept.iter().filter_map(|l| l.prediction.number()).collect()))
        }
        _ => Distribution::observed("prediction", &Column::categorical(kept.iter().map(|l| l.prediction.label()))),
    };
    let labelled = delayed_metric(artifact, task, &kept, &labels);
    Ok(Observed { source: "inference log".into(), frame, skipped, predictions, labelled })
}

/// The promotion metric of logged predictions against their delayed labels.
fn delayed_metric(
    artifact: &ModelArtifact,
    task: Task,
    logged: &[&LoggedPrediction],
    labels: &HashMap<String, String>,
) -> Option<(f64, usize)> {
    let target = &artifact.target;
    let width = target.n_classes().max(1);
    let mut y = Vec::new();
    let mut predicted = Vec::new();
    for line in logged {
        let Some(label) = labels.get(&line.prediction_id) else { continue };
        let encoded = match task {
            Task::Regression => label.parse::<f64>().ok(),
            _ => target.labels().iter().position(|l| l == label).map(|i| i as f64),
        };
        let row: Option<Vec<f64>> = match task {
            Task::Regression => line.prediction.number().map(|v| vec![v]),
            _ => line.probabilities.clone().filter(|p| p.len() == width),
        };
        if let (Some(encoded), Some(row)) = (encoded, row) {
            y.push(encoded);
            predicted.extend(row);
        }
    }
    if y.is_empty() {
        return None;
    }
    let predictions = Array2::from_shape_vec((y.len(), width), predicted).expect("rows of equal width");
    let value = evaluate(task, &y, &predictions).get(&artifact.reference.metric).copied()?;
    Some((value, y.len()))
}

/// The most recent drift report of `dataset`, if a check ever ran.
pub fn latest_report(store: &dyn Store, dataset: &str) -> Result<Option<DriftReport>, PipelineError> {
    let keys = Keys { dataset };
    let Some(key) = store.list(&keys.drift_reports_prefix())?.into_iter().rfind(|k| k.ends_with(".json")) else {
        return Ok(None);
    };
    Ok(Some(store.read_json(&key)?.ok_or_else(|| PipelineError::corrupt(&key, "listed but cannot be read"))?))
}

/// Earlier reports, oldest first, for the score-over-time chart.
fn previous_reports(store: &dyn Store, keys: &Keys) -> Result<Vec<DriftReport>, PipelineError> {
    let mut reports = Vec::new();
    for key in store.list(&keys.drift_reports_prefix())?.into_iter().filter(|k| k.ends_with(".json")) {
        if let Some(report) = store.get(&key)?.and_then(|bytes| serde_json::from_slice::<DriftReport>(&bytes).ok()) {
            reports.push(report);
        }
    }
    Ok(reports)
}

/// Alerts as a warning on the log (the alert record is written by the check itself).
pub struct LogNotifier;

impl Notifier for LogNotifier {
    fn notify(&self, subject: &str, message: &str) -> Result<(), CoreError> {
        tracing::warn!("{subject}: {message}");
        Ok(())
    }
}

/// Retrains in this process: a whole pipeline run, marked as started by drift.
pub struct LocalRetrainer<'a> {
    pub store: &'a dyn Store,
    pub spec: &'a Spec,
}

impl Retrainer for LocalRetrainer<'_> {
    fn retrain(&self, dataset: &str, _reason: &str) -> Result<serde_json::Value, CoreError> {
        let request = RunRequest { dataset: dataset.to_string(), keys: Vec::new(), trigger: Trigger::Drift };
        let record = crate::stages::run(self.store, self.spec, &request, &crate::stages::quiet).map_err(|e| CoreError::Service {
            service: "retrain".into(),
            message: e.to_string(),
            retryable: e.is_retryable(),
        })?;
        Ok(serde_json::to_value(record).expect("run records serialise"))
    }
}

#[cfg(test)]
mod tests;
