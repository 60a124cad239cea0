//! Monitoring: drift of the production model's inputs, predictions and quality against its
//! training reference; delayed labels; alerts and retraining under a cooldown and a loop guard.

use std::borrow::Cow;
use std::collections::HashMap;

use mlops_core::CoreError;
use mlops_core::alerts::{Notifier, Retrainer};
use mlops_core::artifact::ModelArtifact;
use mlops_core::contracts::{RunRequest, Trigger};
use mlops_core::drift::{self, ConceptDrift, Distribution, FeatureDrift, Verdict};
use mlops_core::frame::{Column, Frame};
use mlops_core::metrics::evaluate;
use mlops_core::registry::Registry;
use mlops_core::rows::{Cell, RawRow, RowSchema};
use mlops_core::serve::{LogLine, Predicted};
use mlops_core::spec::Task;
use mlops_core::store::{Condition, StoreError};
use mlops_core::train::prediction_distribution;
use mlops_core::{Keys, Spec, Store};
use ndarray::Array2;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::PipelineError;

/// Column of a feedback file that keys labels to predictions when the spec has no id.
pub const PREDICTION_ID: &str = "prediction_id";

/// What a drift check looks at.
pub enum Current {
    /// The most recent inferences logged by the production version.
    Logs,
    /// A batch of rows (validated like prep); the target, when present, gives concept drift.
    Batch { name: String, frame: Frame },
}

/// Whether this check asked for a retrain, and why (not).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RetrainOutcome {
    pub requested: bool,
    pub reason: String,
    /// What the retrainer started (the run record locally, the execution on AWS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<serde_json::Value>,
}

/// The result of a drift check.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DriftReport {
    pub dataset: String,
    pub model_version: String,
    pub checked_at: String,
    /// `inference log` or the batch file.
    pub source: String,
    pub current_rows: usize,
    /// Logged rows that no longer pass the model's schema.
    pub skipped_rows: usize,
    pub features: Vec<FeatureDrift>,
    pub drifted_features: usize,
    pub judged_features: usize,
    pub dataset_drift: bool,
    pub prediction: FeatureDrift,
    pub concept: Option<ConceptDrift>,
    pub alert: bool,
    pub retrain: RetrainOutcome,
    pub report_key: String,
    pub html_key: String,
}

/// What the monitor remembers between checks: the loop guard and the cooldown.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct MonitorState {
    pub last_alert_at: Option<String>,
    pub last_retrain_at: Option<String>,
    /// The production version a retrain was last requested for: at most one per version.
    pub last_retrain_for: Option<String>,
}

/// What a logged prediction keeps once its features are checked.
#[derive(Debug)]
struct LoggedPrediction {
    prediction_id: String,
    prediction: Predicted<'static>,
    probabilities: Option<Vec<f64>>,
}

/// The key of a log line, for matching delayed labels.
#[derive(Deserialize)]
struct LoggedId<'a> {
    #[serde(borrow)]
    prediction_id: Cow<'a, str>,
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
        registry.production()?.ok_or_else(|| PipelineError::BadInput(format!("'{}' has no production model to monitor", spec.name)))?;
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
                Some(column) => Distribution::of(reference.column(), column, 0),
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
        store.put(
            &keys.alert(&stamp),
            &serde_json::to_vec_pretty(&serde_json::json!({ "at": report.checked_at, "reason": why, "report": report.report_key }))
                .expect("alerts serialise"),
        )?;
        let message = serde_json::json!({ "dataset": spec.name, "model_version": production.version, "reason": why, "report": report.report_key, "checked_at": report.checked_at });
        notifier.notify(&format!("mlops drift alert: {} {}", spec.name, production.version), &message.to_string())?;
        report.retrain = decide_retrain(store, &keys, spec, &production.version, now, &why, retrainer)?;
        write_report(store, &report, &history)?;
    }
    Ok(report)
}

fn write_report(store: &dyn Store, report: &DriftReport, history: &[DriftReport]) -> Result<(), PipelineError> {
    store.put(&report.report_key, &serde_json::to_vec_pretty(report).expect("reports serialise"))?;
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
    let (mut state, etag) = match store.get_tagged(&key)? {
        Some(tagged) => {
            (serde_json::from_slice(&tagged.bytes).map_err(|e| PipelineError::Corrupt(format!("{key}: {e}")))?, Some(tagged.etag))
        }
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
    let predictions = artifact.predict(&frame).map_err(PipelineError::BadInput)?;
    let labelled = frame.column(&spec.target.column).map(|column| {
        let encoded = artifact.target.encode(column);
        let rows: Vec<usize> = (0..frame.n_rows()).filter(|&r| encoded[r].is_some()).collect();
        let y: Vec<f64> = rows.iter().map(|&r| encoded[r].expect("kept")).collect();
        let selected = predictions.select(ndarray::Axis(0), &rows);
        (evaluate(task_of(artifact), &y, &selected).get(&artifact.reference.metric).copied().unwrap_or(f64::NAN), rows.len())
    });
    Ok(Observed {
        source: format!("batch {name}"),
        predictions: prediction_distribution(task_of(artifact), &artifact.target, &predictions, 0),
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

/// Log files parsed at once: enough to keep every core busy, few enough not to read far past
/// the window.
const LOG_FILES_AT_ONCE: usize = 16;

/// A logged prediction with its features checked against the schema (`None`: they break it).
struct Checked {
    line: LoggedPrediction,
    row: Option<Vec<Cell>>,
}

/// How to read the inference log.
struct LogQuery<'a> {
    version: &'a str,
    window: usize,
    schema: &'a RowSchema,
    /// Keep prediction ids (only delayed labels need them).
    ids: bool,
}

/// The newest `window` predictions of `version`, newest log files first, their features checked
/// as they are read (files in parallel) so that only typed rows stay in memory.
fn read_logs(store: &dyn Store, keys: &Keys, query: &LogQuery) -> Result<Vec<Checked>, PipelineError> {
    let LogQuery { version, window, schema, ids } = *query;
    let parse = |bytes: &[u8]| -> Vec<Checked> {
        // `from_utf8` validates valid text faster than the lossy decoder, which is the fallback.
        let text = std::str::from_utf8(bytes).map_or_else(|_| String::from_utf8_lossy(bytes), Cow::Borrowed);
        let mut lines: Vec<Checked> = text
            .lines()
            .filter_map(|line| serde_json::from_str::<LogLine>(line).ok())
            .filter(|l| l.model_version == version)
            .enumerate()
            .map(|(index, line)| Checked {
                row: schema.check(&RawRow::parse(line.features), index).ok(),
                line: LoggedPrediction {
                    prediction_id: if ids { line.prediction_id.into_owned() } else { String::new() },
                    prediction: line.prediction.into_owned(),
                    probabilities: line.probabilities.map(Cow::into_owned),
                },
            })
            .collect();
        lines.reverse();
        lines
    };
    let mut logged = Vec::new();
    let keys = store.list(&keys.inference_prefix())?;
    for group in keys.rchunks(LOG_FILES_AT_ONCE).map(|g| g.iter().rev().collect::<Vec<_>>()) {
        let parsed = group
            .par_iter()
            .map(|key| Ok(store.get(key)?.as_deref().map(parse).unwrap_or_default()))
            .collect::<Result<Vec<_>, StoreError>>()?;
        logged.extend(parsed.into_iter().flatten());
        if logged.len() >= window {
            logged.truncate(window);
            break;
        }
    }
    Ok(logged)
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
        Task::Regression => Distribution::numeric("prediction", &kept.iter().filter_map(|l| l.prediction.number()).collect::<Vec<_>>(), 0),
        _ => Distribution::of("prediction", &Column::categorical(kept.iter().map(|l| l.prediction.label())), 0),
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

/// The key column of feedback files.
pub fn feedback_key(spec: &Spec) -> &str {
    spec.id.as_deref().unwrap_or(PREDICTION_ID)
}

/// Delayed labels by prediction id (later files win).
fn read_feedback(store: &dyn Store, keys: &Keys, spec: &Spec) -> Result<HashMap<String, String>, PipelineError> {
    let mut labels = HashMap::new();
    for key in store.list(&keys.feedback_prefix())? {
        let Some(bytes) = store.get(&key)? else { continue };
        for (id, label) in parse_feedback(&bytes, spec).map_err(|e| PipelineError::Corrupt(format!("{key}: {e}")))? {
            labels.insert(id, label);
        }
    }
    Ok(labels)
}

/// `(key, label)` pairs of a feedback CSV; the error names the row.
fn parse_feedback(bytes: &[u8], spec: &Spec) -> Result<Vec<(String, String)>, String> {
    let key_column = feedback_key(spec);
    let target = &spec.target.column;
    let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(bytes);
    let header: Vec<String> =
        reader.headers().map_err(|e| format!("not a readable CSV file: {e}"))?.iter().map(|h| h.trim().to_string()).collect();
    let position = |name: &str| {
        header.iter().position(|h| h == name).ok_or_else(|| format!("the header has no '{name}' column (found: {})", header.join(", ")))
    };
    let (key_at, target_at) = (position(key_column)?, position(target)?);
    let mut pairs = Vec::new();
    for (index, record) in reader.records().enumerate() {
        let row = index + 1;
        let record = record.map_err(|e| format!("row {row}: {e}"))?;
        let key = record.get(key_at).map(str::trim).filter(|k| !k.is_empty()).ok_or_else(|| format!("row {row}: no '{key_column}'"))?;
        let label = record.get(target_at).map(str::trim).filter(|l| !l.is_empty()).ok_or_else(|| format!("row {row}: no '{target}'"))?;
        if spec.target.task == Task::Regression && !label.parse::<f64>().is_ok_and(f64::is_finite) {
            return Err(format!("row {row}: '{target}' is '{label}', not a number"));
        }
        pairs.push((key.to_string(), label.to_string()));
    }
    if pairs.is_empty() {
        return Err("no labelled rows".into());
    }
    Ok(pairs)
}

/// What `mlops feedback` stored.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FeedbackSummary {
    pub key: String,
    pub rows: usize,
    /// Labels whose key matches a logged prediction.
    pub matched: usize,
}

/// Checks and stores a file of delayed labels (`KEY,TARGET` columns, the key being the spec's
/// id column or `prediction_id`).
pub fn store_feedback(store: &dyn Store, spec: &Spec, name: &str, bytes: &[u8]) -> Result<FeedbackSummary, PipelineError> {
    let pairs = parse_feedback(bytes, spec).map_err(|e| PipelineError::BadInput(format!("{name}: {e}")))?;
    let keys = Keys { dataset: &spec.name };
    let stamp = jiff::Timestamp::now().strftime("%Y%m%dT%H%M%S%.3fZ").to_string();
    let key = keys.feedback(&format!("{stamp}-{}", name.replace(['/', ' '], "_")));
    store.put(&key, bytes)?;
    let ids: std::collections::HashSet<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
    let mut matched = 0;
    for log in store.list(&keys.inference_prefix())? {
        let Some(bytes) = store.get(&log)? else { continue };
        matched += String::from_utf8_lossy(&bytes)
            .lines()
            .filter_map(|line| serde_json::from_str::<LoggedId>(line).ok())
            .filter(|l| ids.contains(l.prediction_id.as_ref()))
            .count();
    }
    Ok(FeedbackSummary { key, rows: pairs.len(), matched })
}

/// The most recent drift report of `dataset`, if a check ever ran.
pub fn latest_report(store: &dyn Store, dataset: &str) -> Result<Option<DriftReport>, PipelineError> {
    let keys = Keys { dataset };
    let Some(key) = store.list(&keys.drift_reports_prefix())?.into_iter().rfind(|k| k.ends_with(".json")) else {
        return Ok(None);
    };
    let bytes = store.get(&key)?.ok_or_else(|| PipelineError::Corrupt(format!("{key} was listed but cannot be read")))?;
    Ok(Some(serde_json::from_slice(&bytes).map_err(|e| PipelineError::Corrupt(format!("{key}: {e}")))?))
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
