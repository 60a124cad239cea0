//! Monitoring: drift of the production model's inputs, predictions and quality against its
//! training reference; delayed labels; alerts and retraining under a cooldown and a loop guard.

use mlops_core::CoreError;
use mlops_core::JsonStore;
use mlops_core::ModelArtifact;
use mlops_core::Registry;
use mlops_core::Task;
use mlops_core::contracts::{DriftPlanned, DriftReport, DriftRound, RetrainOutcome, RunRequest, Trigger};
use mlops_core::drift::{self, FeatureDrift, Labelled, Observed, Reference, Verdict};
use mlops_core::prediction_column;
use mlops_core::{Condition, StoreError};
use mlops_core::{Frame, Keys, Spec, Store};
use mlops_core::{Notifier, Retrainer};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::PipelineError;
use logs::{LogPlan, LogSizing};

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
    let (version, artifact) = production(store, spec)?;
    let check = check_id(now);
    let (source, observed) = match current {
        Current::Logs => {
            let plan = LogPlan::new(store, spec, check.clone(), &version, &artifact, LogSizing::local())?;
            ("inference log".to_string(), logs::observe(store, &plan)?)
        }
        Current::Batch { name, frame } => (format!("batch {name}"), from_batch(&artifact, &frame)?),
    };
    let checked = Checked { check, version, reference: &artifact.reference, task: artifact.target.task(), source, observed };
    judge(store, spec, checked, now, notifier, retrainer)
}

/// The production version of `spec`'s dataset and its artifact.
fn production(store: &dyn Store, spec: &Spec) -> Result<(String, ModelArtifact), PipelineError> {
    let registry = Registry::new(store, &spec.name);
    let (production, _) =
        registry.production()?.ok_or_else(|| PipelineError::bad_input(format!("'{}' has no production model to monitor", spec.name)))?;
    let artifact = registry.artifact(&production.version)?;
    Ok((production.version, artifact))
}

/// A check's id and its report's name: the time, then a random suffix, so that checks that
/// overlap get distinct keys.
fn check_id(now: jiff::Timestamp) -> String {
    format!("{}-{}", now.strftime("%Y%m%dT%H%M%S%.3fZ"), &uuid::Uuid::new_v4().simple().to_string()[..8])
}

/// What a check observed of one model's current data.
struct Checked<'a> {
    check: String,
    version: String,
    reference: &'a Reference,
    task: Task,
    source: String,
    observed: Observed,
}

/// Compares what was observed with the reference; writes the report, alerts and retrains.
fn judge(
    store: &dyn Store,
    spec: &Spec,
    checked: Checked,
    now: jiff::Timestamp,
    notifier: &dyn Notifier,
    retrainer: &dyn Retrainer,
) -> Result<DriftReport, PipelineError> {
    let keys = Keys { dataset: &spec.name };
    let policy = &spec.drift;
    let Checked { check, version, reference, task, source, observed } = checked;
    let features: Vec<FeatureDrift> = reference
        .features
        .par_iter()
        .zip(&observed.features)
        .map(|(reference, current)| drift::compare(reference, current, policy))
        .collect();
    let prediction = drift::compare(&reference.predictions, &observed.predictions, policy);
    let concept = observed
        .labelled
        .score(task, reference.metric)
        .map(|(value, n)| drift::concept(reference.metric, reference.baseline, value, n, policy));
    let (drifted_features, judged_features, dataset_drift) = drift::dataset_drift(&features, policy);
    let card = Registry::new(store, &spec.name).card(&version)?;
    let importance = card.importance;
    let attribution = drift::attribution_shift(&importance, &observed.attribution);
    let concept_drift = concept.as_ref().is_some_and(|c| c.verdict == Verdict::Drift);
    let estimated = mlops_core::estimate::expected_metric(reference.metric, &observed.estimated.outputs, &observed.estimated.estimates)
        .map(|value| drift::concept(reference.metric, reference.baseline, value, observed.estimated.outputs.len(), policy));
    let estimated_drift = estimated.as_ref().is_some_and(|c| c.verdict == Verdict::Drift);
    let alert = dataset_drift || concept_drift || estimated_drift;
    let mut report = DriftReport {
        dataset: spec.name.clone(),
        model_version: version.clone(),
        run_id: Some(card.run_id),
        window: observed.window,
        checked_at: now.to_string(),
        source,
        current_rows: observed.rows,
        skipped_rows: observed.skipped,
        features,
        drifted_features,
        judged_features,
        dataset_drift,
        prediction,
        concept,
        estimated,
        attribution,
        canary: crate::canary::evaluate(store, spec, true)?,
        alert,
        retrain: RetrainOutcome {
            requested: false,
            reason: if alert { "alert raised; the retrain decision did not complete".into() } else { "no alert".into() },
            started: None,
        },
        report_key: keys.drift_report(&check, "json"),
        html_key: keys.drift_report(&check, "html"),
    };
    // The report is written first, so an alert never points to a report that does not exist;
    // it is written again with the retrain's outcome.
    let history = previous_reports(store, &keys)?;
    write_report(store, &report, &history)?;
    if alert {
        let why = alert_reason(&report);
        tracing::warn!(dataset = %spec.name, version = %version, "drift alert: {why}");
        store
            .write_json(&keys.alert(&check), &serde_json::json!({ "at": report.checked_at, "reason": why, "report": report.report_key }))?;
        let message = serde_json::json!({ "dataset": spec.name, "model_version": version, "reason": why, "report": report.report_key, "checked_at": report.checked_at });
        notifier.notify(&format!("mlops drift alert: {} {}", spec.name, version), &message.to_string())?;
        report.retrain = decide_retrain(store, &keys, spec, &version, now, &why, retrainer)?;
        write_report(store, &report, &history)?;
    }
    Ok(report)
}

/// Plans a drift check of the production model's inference log (drift's plan step): writes the
/// plan and its first round's items.
pub fn plan_check(store: &dyn Store, spec: &Spec, sizing: LogSizing, max_concurrency: u32) -> Result<DriftPlanned, PipelineError> {
    let (version, artifact) = production(store, spec)?;
    let plan = LogPlan::new(store, spec, check_id(jiff::Timestamp::now()), &version, &artifact, sizing)?;
    logs::save_plan(store, &plan, max_concurrency)
}

/// Adds up the summaries of the rounds so far (drift's reduce step): the next round while the
/// window is not full and older log files remain, else the report, its alert and retrain.
pub fn reduce_check(
    store: &dyn Store,
    spec: &Spec,
    planned: &DriftPlanned,
    notifier: &dyn Notifier,
    retrainer: &dyn Retrainer,
) -> Result<DriftRound, PipelineError> {
    let plan = logs::load_plan(store, &spec.name, &planned.check)?;
    let Some(observed) = logs::reduce(store, &plan, planned)? else {
        return Ok(DriftRound::Next(logs::planned_round(store, &plan, planned.round + 1, planned.max_concurrency)?));
    };
    let checked = Checked {
        check: plan.check.clone(),
        version: plan.version.clone(),
        reference: &plan.reference,
        task: plan.target.task(),
        source: "inference log".into(),
        observed,
    };
    Ok(DriftRound::Done(Box::new(judge(store, spec, checked, jiff::Timestamp::now(), notifier, retrainer)?)))
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
    for (quality, how) in [(&report.concept, "realised on delayed labels"), (&report.estimated, "estimated before labels")] {
        if let Some(quality) = quality.as_ref().filter(|c| c.verdict == Verdict::Drift) {
            parts.push(quality.describe(how));
        }
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

/// The summary of a batch of rows, scored by the model; its labels, when it has the target.
fn from_batch(artifact: &ModelArtifact, frame: &Frame) -> Result<Observed, PipelineError> {
    let spec = artifact.spec()?;
    let predictions = artifact.predict(frame).map_err(|e| PipelineError::bad_input(e.to_string()))?;
    let mut labelled = Labelled::new(artifact.target.n_classes());
    if let Some(column) = frame.column(&spec.target.column) {
        for (y, row) in artifact.target.encode(column).into_iter().zip(predictions.rows()) {
            if let Some(y) = y {
                labelled.push(y, &row.to_vec());
            }
        }
    }
    let task = artifact.target.task();
    let mut observed =
        Observed::of_frame(&artifact.reference, frame, 0, &prediction_column(task, &artifact.target, &predictions), labelled);
    let step = frame.n_rows().div_ceil(EXPLAINED_BATCH_ROWS).max(1);
    let explained: Vec<usize> = (0..frame.n_rows()).step_by(step).collect();
    observed.attribution = mlops_core::attribution(artifact, &frame.take(&explained))
        .map_err(|e| PipelineError::bad_input(format!("the batch could not be explained: {e}")))?;
    let outputs = predictions.rows().into_iter().map(|row| Some(row.to_vec())).collect();
    observed.estimated = logs::estimated(artifact, frame, outputs).map_err(|e| PipelineError::bad_input(format!("the batch: {e}")))?;
    Ok(observed)
}

/// Rows of a batch, evenly spaced, whose explanations give its attribution.
const EXPLAINED_BATCH_ROWS: usize = 256;

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
        let request = RunRequest { dataset: dataset.to_string(), keys: Vec::new(), trigger: Trigger::Drift, id: None };
        let record = crate::stages::run(self.store, self.spec, &request, &crate::stages::quiet).map_err(|e| CoreError::Service {
            service: "retrain".into(),
            message: e.to_string(),
            kind: e.kind(),
        })?;
        Ok(serde_json::to_value(record).expect("run records serialise"))
    }
}

pub mod logs;
#[cfg(test)]
mod tests;
