//! Training: target encoding, the split, feature fitting, candidates and their evaluation.

use std::time::Instant;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::artifact::{ARTIFACT_FORMAT, ModelArtifact};
use crate::drift::{Distribution, Reference, feature_distributions};
use crate::error::CoreError;
use crate::estimate::Estimator;
use crate::features::{FeatureParams, FitTarget, FittedFeatures};
use crate::frame::Frame;
use crate::hash::hash_values;
use crate::metrics::{Metrics, evaluate};
use crate::models::{self, Problem};
use crate::spec::{ColumnType, ModelSpec, Spec, SplitMethod, Task};
use crate::split::{self, Split};
use crate::target::TargetEncoder;
use crate::time;
use mlops_trees::{Boosting, BoostingCheckpoint, BoostingInput};

/// Fewer usable rows than this cannot be split and evaluated.
pub const MIN_ROWS: usize = 10;

/// Rows ready for training: the columns used, numeric targets and the split.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TrainingSet {
    pub frame: Frame,
    pub y: Vec<f64>,
    pub target: TargetEncoder,
    pub split: Split,
    /// Hash of the rows and targets; the same data gives the same hash.
    pub data_hash: String,
}

impl TrainingSet {
    /// Builds the set from merged, validated rows.
    pub fn new(spec: &Spec, frame: Frame) -> Result<TrainingSet, CoreError> {
        let target_name = &spec.target.column;
        let column =
            frame.column(target_name).ok_or_else(|| CoreError::BadInput(format!("the data has no target column '{target_name}'")))?;
        let target = TargetEncoder::fit(spec.target.task, column, spec.target.positive.as_deref())
            .map_err(|e| CoreError::BadInput(format!("target '{target_name}': {e}")))?;
        let encoded = target.encode(column);
        let rows: Vec<usize> = (0..frame.n_rows()).filter(|&r| encoded[r].is_some()).collect();
        if rows.len() < MIN_ROWS {
            return Err(CoreError::BadInput(format!(
                "{} rows have a target; at least {MIN_ROWS} are needed to train and evaluate",
                rows.len()
            )));
        }
        let used: Vec<&str> = spec
            .columns
            .iter()
            .filter(|c| !spec.ignore.contains(&c.name) && c.kind != ColumnType::String)
            .map(|c| c.name.as_str())
            .collect();
        let every_row = rows.len() == frame.n_rows();
        let frame = if every_row { frame.select(&used) } else { frame.select(&used).take(&rows) };
        let y: Vec<f64> = rows.iter().map(|&r| encoded[r].expect("kept rows have a target")).collect();
        let split = match spec.split_method() {
            SplitMethod::Time => {
                let time_spec = spec.time.as_ref().expect("a time split has a time (checked with the spec)");
                let times =
                    time::TimeSource::new(time_spec).and_then(|t| t.row_times(&frame)).map_err(|e| CoreError::BadInput(e.to_string()))?;
                split::by_time(&times, spec.split.holdout).map_err(|e| CoreError::BadInput(e.to_string()))?
            }
            SplitMethod::Random => {
                split::random(y.len(), spec.split.holdout, spec.split.seed, spec.target.task.is_classification().then_some(&y[..]))
            }
        };
        let mut hasher = Sha256::new();
        hasher.update(frame.content_hash());
        hash_values(&mut hasher, &y, |v| v.to_bits().to_le_bytes());
        let data_hash = hex::encode(hasher.finalize());
        Ok(TrainingSet { frame, y, target, split, data_hash })
    }

    fn rows(&self, rows: &[usize]) -> (Frame, Vec<f64>) {
        (self.frame.take(rows), rows.iter().map(|&r| self.y[r]).collect())
    }

    fn problem(&self, spec: &Spec, max_seconds: Option<f64>) -> Problem {
        problem(spec, self.target.n_classes(), max_seconds)
    }

    /// Fits the features on the training rows.
    pub fn fit_features(&self, spec: &Spec) -> Result<FittedFeatures, CoreError> {
        let (train, y) = self.rows(&self.split.train);
        fit_features_on(spec, &train, self.fit_target(spec, &y))
    }

    /// [`Self::fit_features`], consuming the set: each column is cut to the training rows and
    /// freed before the next, so the rows are never held twice.
    pub fn into_features(self, spec: &Spec) -> Result<FittedFeatures, CoreError> {
        let y: Vec<f64> = self.split.train.iter().map(|&r| self.y[r]).collect();
        let target = self.fit_target(spec, &y);
        let train = self.frame.into_rows(&self.split.train);
        fit_features_on(spec, &train, target)
    }

    /// Targets `y` of some rows as the features read them.
    fn fit_target<'y>(&self, spec: &Spec, y: &'y [f64]) -> FitTarget<'y> {
        match spec.target.task {
            Task::Multiclass => FitTarget::Classes { y, n_classes: self.target.n_classes() },
            _ => FitTarget::Values(y),
        }
    }
}

/// A trained candidate and how it did on the holdout.
#[derive(Debug, Clone)]
pub struct Trained {
    pub name: String,
    pub metrics: Metrics,
    /// The whole candidate: features, fit, evaluation.
    pub seconds: f64,
    /// The model's fit alone.
    pub fit_seconds: f64,
    /// Why the fit stopped short, when its time ran out.
    pub note: Option<String>,
    /// 99th percentile of the time to predict one holdout row alone, in milliseconds: the
    /// features' transform and the model, as `/predict` runs them after parsing the request.
    pub predict_p99_ms: f64,
    pub artifact: ModelArtifact,
}

/// Trains one candidate on the training rows (its fit stopping after `max_seconds` where the
/// model can) and evaluates it on the holdout.
pub fn train_candidate(
    spec: &Spec,
    name: &str,
    model: &ModelSpec,
    set: &TrainingSet,
    features: &FittedFeatures,
    max_seconds: Option<f64>,
) -> Result<Trained, CoreError> {
    let started = Instant::now();
    let (train, x_train, y_train) = encode_training_rows(spec, name, model, set, features)?;
    // What drift compares against, taken before the fit so that the rows are not held through it.
    let reference = feature_distributions(spec, &train, spec.split.seed);
    drop(train);
    let fit_started = Instant::now();
    let fitted = models::fit(model, set.problem(spec, max_seconds), &x_train, &y_train).map_err(|e| model_failed(name, e))?;
    drop(x_train);
    let fit_seconds = fit_started.elapsed().as_secs_f64();
    finish_candidate(spec, name, set, features, Fitted { model: fitted, fit_seconds, reference }, started)
}

/// A candidate's training rows, as they are and encoded as its model reads them, and their
/// targets.
fn encode_training_rows(
    spec: &Spec,
    name: &str,
    model: &ModelSpec,
    set: &TrainingSet,
    features: &FittedFeatures,
) -> Result<(Frame, crate::design::Design, Vec<f64>), CoreError> {
    let (train, y_train) = set.rows(&set.split.train);
    let x_train = features
        .transform_training(&train, models::encoding_of(model), set.fit_target(spec, &y_train), spec.split.seed)
        .map_err(|e| model_failed(name, e))?;
    Ok((train, x_train, y_train))
}

/// What a model is fitted for, with `n_classes` classes (1 for regression).
fn problem(spec: &Spec, n_classes: usize, max_seconds: Option<f64>) -> Problem {
    Problem { task: spec.target.task, n_classes, seed: spec.split.seed, max_seconds }
}

/// Candidate `name` could not be trained.
fn model_failed(name: &str, error: impl std::fmt::Display) -> CoreError {
    CoreError::Model { name: name.to_string(), message: error.to_string() }
}

/// A fitted model before its evaluation.
struct Fitted {
    model: models::Model,
    fit_seconds: f64,
    reference: Vec<Distribution>,
}

/// Makes a fitted model the candidate's artifact and evaluates it on the holdout.
fn finish_candidate(
    spec: &Spec,
    name: &str,
    set: &TrainingSet,
    features: &FittedFeatures,
    fitted: Fitted,
    started: Instant,
) -> Result<Trained, CoreError> {
    let Fitted { model, fit_seconds, reference } = fitted;
    let note = model.time_note();
    let mut artifact = ModelArtifact {
        format: ARTIFACT_FORMAT,
        spec_toml: spec.to_toml(),
        candidate: name.to_string(),
        features: features.clone(),
        target: set.target.clone(),
        model,
        reference: Reference {
            features: reference,
            predictions: Distribution::numeric("prediction", &[], 0),
            metric: spec.metric(),
            baseline: f64::NAN,
        },
        estimator: None,
    };
    let (metrics, predictions) = evaluate_on_holdout(&artifact, set)?;
    artifact.reference.baseline = metrics[&spec.metric()];
    let (holdout, y) = set.rows(&set.split.holdout);
    artifact.estimator = Estimator::fit(spec.target.task, spec.metric(), features, &holdout, &predictions, &y, spec.split.seed)
        .map_err(|e| model_failed(name, format!("its performance estimator: {e}")))?;
    artifact.reference.predictions =
        Distribution::of("prediction", &prediction_column(spec.target.task, &artifact.target, &predictions), spec.split.seed);
    let predict_p99_ms = one_row_p99_ms(&artifact, set)?;
    Ok(Trained { name: name.to_string(), metrics, seconds: started.elapsed().as_secs_f64(), fit_seconds, note, predict_p99_ms, artifact })
}

/// Holdout rows predicted one at a time to time a model's one-row prediction.
const LATENCY_ROWS: usize = 200;
/// Predictions made first and not timed (caches, lazily built state).
const LATENCY_WARMUP: usize = 5;

/// The 99th percentile of the time `artifact` takes to predict one row alone, in milliseconds,
/// over up to [`LATENCY_ROWS`] holdout rows.
fn one_row_p99_ms(artifact: &ModelArtifact, set: &TrainingSet) -> Result<f64, CoreError> {
    let rows = &set.split.holdout[..set.split.holdout.len().min(LATENCY_ROWS)];
    let failed = |e: crate::features::FeatureError| CoreError::Model { name: artifact.candidate.clone(), message: e.to_string() };
    let mut millis = Vec::with_capacity(rows.len());
    for (i, &row) in rows.iter().cycle().take(rows.len() + LATENCY_WARMUP).enumerate() {
        let (frame, _) = set.rows(&[row]);
        let started = Instant::now();
        std::hint::black_box(artifact.predict(&frame).map_err(failed)?);
        if i >= LATENCY_WARMUP {
            millis.push(started.elapsed().as_secs_f64() * 1e3);
        }
    }
    millis.sort_by(f64::total_cmp);
    Ok(millis.get((millis.len() * 99).div_ceil(100).saturating_sub(1)).copied().unwrap_or(0.0))
}

/// A gradient-boosting candidate's binned training rows, prepared once for a fit that runs over
/// several calls (each a Lambda invocation on AWS): the first call stores it, later calls load it
/// instead of the processed data.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PreparedBoosting {
    n_classes: usize,
    input: BoostingInput,
}

/// Where a candidate fit over several calls got to.
#[derive(Debug)]
pub enum Resumable {
    /// Boosting is done: the model, still to be evaluated ([`finish_boosting`]).
    Done(Box<BoostedModel>),
    /// The call's rounds ran out first: carry on from this checkpoint.
    Paused(BoostingCheckpoint),
}

/// A boosted model whose fit is done, before its evaluation.
#[derive(Debug)]
pub struct BoostedModel {
    model: models::Model,
    fit_seconds: f64,
}

/// Encodes and bins a gradient-boosting candidate's training rows ([`PreparedBoosting`]).
pub fn prepare_boosting(
    spec: &Spec,
    name: &str,
    model: &ModelSpec,
    set: &TrainingSet,
    features: &FittedFeatures,
) -> Result<PreparedBoosting, CoreError> {
    let (train, x_train, y_train) = encode_training_rows(spec, name, model, set, features)?;
    drop(train);
    let input = models::prepare_boosting(model, set.problem(spec, None), &x_train, &y_train).map_err(|e| model_failed(name, e))?;
    Ok(PreparedBoosting { n_classes: set.target.n_classes(), input })
}

/// At most `rounds` more rounds of a gradient-boosting candidate, from `from` or from the start,
/// within `max_seconds` over every call: the same model, to the byte, as [`train_candidate`].
pub fn boost_candidate(
    spec: &Spec,
    name: &str,
    model: &ModelSpec,
    prepared: &PreparedBoosting,
    from: Option<BoostingCheckpoint>,
    rounds: usize,
    max_seconds: Option<f64>,
) -> Result<Resumable, CoreError> {
    match models::boost(model, problem(spec, prepared.n_classes, max_seconds), &prepared.input, from, rounds) {
        Ok(Boosting::Done { model, seconds }) => {
            Ok(Resumable::Done(Box::new(BoostedModel { model: models::Model::Trees(model), fit_seconds: seconds })))
        }
        Ok(Boosting::Paused(checkpoint)) => Ok(Resumable::Paused(checkpoint)),
        Err(e) => Err(model_failed(name, e)),
    }
}

/// Makes a boosted model the candidate's artifact and evaluates it on the holdout, as
/// [`train_candidate`] does.
pub fn finish_boosting(
    spec: &Spec,
    name: &str,
    set: &TrainingSet,
    features: &FittedFeatures,
    boosted: BoostedModel,
) -> Result<Trained, CoreError> {
    let started = Instant::now();
    let (train, _) = set.rows(&set.split.train);
    let reference = feature_distributions(spec, &train, spec.split.seed);
    drop(train);
    let fitted = Fitted { model: boosted.model, fit_seconds: boosted.fit_seconds, reference };
    finish_candidate(spec, name, set, features, fitted, started)
}

/// Metrics of any artifact (a champion too) on the set's holdout, and its predictions.
pub fn evaluate_on_holdout(artifact: &ModelArtifact, set: &TrainingSet) -> Result<(Metrics, ndarray::Array2<f64>), CoreError> {
    let (holdout, y) = set.rows(&set.split.holdout);
    let predictions =
        artifact.predict(&holdout).map_err(|e| CoreError::Model { name: artifact.candidate.clone(), message: e.to_string() })?;
    Ok((evaluate(artifact.target.task(), &y, &predictions), predictions))
}

/// What prediction drift compares: predicted values, or predicted classes.
pub fn prediction_column(task: Task, target: &TargetEncoder, predictions: &ndarray::Array2<f64>) -> crate::frame::Column {
    match task {
        Task::Regression => crate::frame::Column::Numeric(predictions.column(0).to_vec()),
        _ => {
            let labels = target.labels();
            let classes = predictions.rows().into_iter().map(|row| {
                let best = (0..row.len()).fold(0, |best, c| if row[c] > row[best] { c } else { best });
                Some(labels[best].as_str())
            });
            crate::frame::Column::categorical(classes)
        }
    }
}

fn fit_features_on(spec: &Spec, train: &Frame, target: FitTarget) -> Result<FittedFeatures, CoreError> {
    FeatureParams::new(spec).fit(train, target).map_err(|e| CoreError::BadInput(format!("features: {e}")))
}
