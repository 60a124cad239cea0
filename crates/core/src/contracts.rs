//! The JSON passed between stages: the input and output of each Lambda and state of the state
//! machine, and what `mlops run --json` prints.

use std::collections::BTreeMap;

use crate::drift::{ConceptDrift, FeatureDrift};
use crate::metrics::Metrics;
use serde::{Deserialize, Serialize};

/// What started a run.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// Started by hand (`mlops run`, or `{"dataset": NAME}` in the Step Functions console).
    #[default]
    Manual,
    /// A file arrived under raw/.
    Upload,
    /// The drift check asked for a retrain.
    Drift,
}

/// A drift check of a dataset's production model (a step name or any other field is refused,
/// so that a mistyped step never runs as a whole check).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DriftRequest {
    pub dataset: String,
}

/// The input of a run: only `dataset` is required.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunRequest {
    pub dataset: String,
    /// Raw keys to prepare; every raw file not yet processed when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<String>,
    #[serde(default)]
    pub trigger: Trigger,
    /// The run's id, when the caller names it (a sample event, a replay): its plan, batch and
    /// run take it, so the events that follow can name them. A stamp (`20261204T190703Z-sample`,
    /// see `mlops_pipeline::stages::named_or_stamped`); a fresh one each run when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// A prep plan, by reference: written by prep's plan step, read by the Distributed Map over its
/// items and by the merge step after it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PrepPlanned {
    pub dataset: String,
    #[serde(default)]
    pub trigger: Trigger,
    /// The plan's id, a sortable stamp.
    pub plan: String,
    /// Map items in the plan (each reads one or more shards); 0 when nothing new is to be read.
    pub items: usize,
    /// Shards in the plan.
    pub shards: usize,
    /// The key of the JSON array of items the Distributed Map reads.
    pub items_key: String,
    /// Map items run at once (the Distributed Map's `MaxConcurrencyPath`).
    pub max_concurrency: u32,
}

/// One item of a prep plan, as the Distributed Map hands it to prep's shard step.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ShardItem {
    pub dataset: String,
    pub plan: String,
    pub item: usize,
}

/// What prep's shard step did with one item: the shards it read, each written to its fixed key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ShardItemOutput {
    pub item: usize,
    pub shards: usize,
    pub rows: usize,
    pub seconds: f64,
}

/// What prep's merge step decided, by reference: the files' outcomes and the shards whose rows
/// make the batch are written under staging/; the Distributed Map reads the JSON array of
/// buckets, one item each, and the finish step closes the batch.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PrepMerged {
    pub dataset: String,
    #[serde(default)]
    pub trigger: Trigger,
    pub plan: String,
    /// The processed batch the buckets write.
    pub batch: String,
    /// Buckets of rows to remove duplicates from; 0 when no file has a valid row.
    pub buckets: usize,
    /// The key of the JSON array of buckets the Distributed Map reads.
    pub items_key: String,
    /// Map items run at once (the Distributed Map's `MaxConcurrencyPath`).
    pub max_concurrency: u32,
}

/// One bucket of a prep plan, as the Distributed Map hands it to prep's bucket step.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BucketItem {
    pub dataset: String,
    pub plan: String,
    pub bucket: usize,
}

/// One part of a processed batch: the rows of one bucket, duplicates removed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BatchPart {
    pub bucket: usize,
    pub key: String,
    pub rows: usize,
    /// Rows of the bucket that repeated an earlier row, removed.
    pub duplicates: usize,
    /// SHA-256 of the part's parquet bytes.
    pub sha256: String,
}

/// The input of the prep function: which of its steps to run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum PrepStep {
    /// Lists the raw files to read and cuts them into shards: `{"step": "plan", "request": {..}}`.
    Plan { request: RunRequest },
    /// Reads one item's shards.
    Shard(ShardItem),
    /// Checks every shard's output exists, puts each file back together and decides what the
    /// batch holds: `{"step": "merge", "planned": {..}}`.
    Merge { planned: PrepPlanned },
    /// Removes the duplicate rows of one bucket and writes it as a part of the batch.
    Bucket(BucketItem),
    /// Checks every bucket's part exists and closes the batch: `{"step": "finish", "merged": {..}}`.
    Finish { merged: PrepMerged },
}

/// A CSV file uploaded under `batch/DATASET/` to be scored by the production model: the input
/// of the scoring state machine.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ScoreRequest {
    pub dataset: String,
    /// The file's key, under `batch/DATASET/`.
    pub key: String,
    /// The scoring's id, when the caller names it (as [`RunRequest::id`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// A scoring plan, by reference: written by the score function's plan step, read by the
/// Distributed Map over its items and by the finish step after it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ScorePlanned {
    pub dataset: String,
    /// The plan's id, a sortable stamp.
    pub plan: String,
    /// The file scored.
    pub key: String,
    /// The model version every shard scores with, pinned when the plan was made.
    pub version: String,
    /// Map items in the plan (each scores one or more shards of the file).
    pub items: usize,
    pub shards: usize,
    /// The key of the JSON array of items the Distributed Map reads.
    pub items_key: String,
    /// Map items run at once (the Distributed Map's `MaxConcurrencyPath`).
    pub max_concurrency: u32,
}

/// One item of a scoring plan, as the Distributed Map hands it to the shard step.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ScoreItem {
    pub dataset: String,
    pub plan: String,
    pub item: usize,
}

/// The input of the score function: which of its steps to run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum ScoreStep {
    /// Pins the model, checks the file's header and cuts the file into shards:
    /// `{"step": "plan", "request": {"dataset": .., "key": ..}}`.
    Plan { request: ScoreRequest },
    /// Scores one item's shards into parts at fixed keys.
    Shard(ScoreItem),
    /// Checks every shard's parts exist and joins them into the outputs:
    /// `{"step": "finish", "planned": {..}}`.
    Finish { planned: ScorePlanned },
}

/// What a batch scoring did.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ScoreSummary {
    pub dataset: String,
    /// The model version that scored every row.
    pub version: String,
    /// The batch's id: the request id of its log lines and the prefix of its prediction ids.
    pub batch: String,
    /// Data rows read.
    pub rows: usize,
    pub scored: usize,
    pub rejected: usize,
    /// Inference log files written.
    pub log_files: usize,
}

/// What the scoring of an uploaded file wrote, and where.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ScoredFile {
    #[serde(flatten)]
    pub summary: ScoreSummary,
    /// The file scored.
    pub key: String,
    /// The scored rows (the file's columns, then the prediction's).
    pub scores: String,
    /// The rejected rows, each with its line and reason.
    pub rejects: String,
    /// Shards the file was scored in: 1 when a quoted field held a line break across a cut
    /// and the file was scored whole.
    pub shards: usize,
}

/// What prep did with one raw file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FileOutcome {
    pub key: String,
    pub status: FileStatus,
    #[serde(default)]
    pub rows: usize,
    #[serde(default)]
    pub quarantined: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FileStatus {
    Processed,
    Rejected,
    /// Already processed (the same content).
    Skipped,
}

/// Output of prep.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PrepOutput {
    pub dataset: String,
    pub trigger: Trigger,
    /// The id the request named ([`RunRequest::id`]), which the run takes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The processed batch written, if any file had valid rows.
    pub batch: Option<String>,
    pub files: Vec<FileOutcome>,
    pub rows_in: usize,
    pub rows_out: usize,
    pub quarantined: usize,
    pub duplicates: usize,
    pub seconds: f64,
}

/// The `_SUCCESS` marker that closes a processed batch.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SuccessMarker {
    pub batch: String,
    pub files: Vec<FileOutcome>,
    pub rows_in: usize,
    pub rows_out: usize,
    pub quarantined: usize,
    pub duplicates: usize,
    /// The batch's parquet parts, one per bucket of rows. Rows are in the batch's order within
    /// each part, and their `_order` column puts the parts' rows back in that order. Empty in
    /// a batch written before parts: it is one `data.parquet`.
    #[serde(default)]
    pub parts: Vec<BatchPart>,
    pub spec_hash: String,
    pub created_at: String,
}

/// Output of features: the run's merged data, split and fitted features are stored at
/// `features_key`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FeaturesOutput {
    pub dataset: String,
    pub trigger: Trigger,
    pub run_id: String,
    pub started_at: String,
    pub features_key: String,
    pub data_hash: String,
    pub batches: usize,
    pub rows: usize,
    pub rows_train: usize,
    pub rows_holdout: usize,
    /// Rows repeated across batches, removed.
    pub duplicates: usize,
    pub features: Vec<String>,
    /// The spec's candidates: train fits each apart (one Map iteration each on AWS).
    #[serde(default)]
    pub candidate_names: Vec<String>,
    pub prep: Option<PrepOutput>,
    pub seconds: f64,
}

/// One trained candidate.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CandidateSummary {
    pub name: String,
    pub kind: String,
    /// Holdout metrics under their usual names (rmse, mae, r2; auc, accuracy, f1, log_loss).
    pub metrics: Metrics,
    /// The whole candidate: features, fit, evaluation.
    pub seconds: f64,
    /// The model's fit alone.
    #[serde(default)]
    pub fit_seconds: f64,
    /// Why the fit stopped short (its share of the time budget ran out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub artifact_key: String,
    /// 99th percentile of the time to predict one row, in milliseconds ([`crate::Trained`]).
    #[serde(default)]
    pub predict_p99_ms: f64,
    /// Size of the stored artifact.
    #[serde(default)]
    pub artifact_bytes: u64,
}

/// A candidate that failed to train; the others go on.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CandidateFailure {
    pub name: String,
    pub error: String,
}

/// A candidate whose fit spans invocations: it stopped after its invocation's round budget and
/// saved a checkpoint; the next invocation resumes from it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CandidatePaused {
    pub name: String,
    /// Boosting rounds done so far.
    pub rounds: usize,
}

/// What train did with one candidate, written to the run's fixed key for it once it is trained
/// or failed; a paused candidate is the state machine's to resume.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum CandidateOutcome {
    Trained(CandidateSummary),
    Failed(CandidateFailure),
    Paused(CandidatePaused),
}

/// The input of the train function: which of its two steps to run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum TrainStep {
    /// Fits and evaluates one candidate: `{"step": "candidate", "candidate": NAME, "features": {..}}`,
    /// with `"resume": {..}` when an earlier invocation paused it.
    Candidate {
        candidate: String,
        features: FeaturesOutput,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resume: Option<CandidatePaused>,
    },
    /// Reads every candidate's outcome (failing on any without one) and picks the best.
    Collect { features: FeaturesOutput },
}

impl StageInput for TrainStep {
    fn dataset(&self) -> &str {
        match self {
            TrainStep::Candidate { features, .. } | TrainStep::Collect { features } => &features.dataset,
        }
    }

    fn run_id(&self) -> Option<&str> {
        match self {
            TrainStep::Candidate { features, .. } | TrainStep::Collect { features } => Some(&features.run_id),
        }
    }
}

/// Output of train.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TrainOutput {
    #[serde(flatten)]
    pub features: FeaturesOutput,
    pub candidates: Vec<CandidateSummary>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<CandidateFailure>,
    /// The best candidate by the promotion metric.
    pub best: String,
    pub train_seconds: f64,
}

/// A version and its metrics.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VersionMetrics {
    pub version: String,
    pub metrics: Metrics,
}

/// Output of register: the decision and the production pointer after it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RegisterOutput {
    pub dataset: String,
    pub trigger: Trigger,
    pub run_id: String,
    /// The version the best candidate was registered as.
    pub version: String,
    pub promoted: bool,
    pub reason: String,
    /// The champion before this run, evaluated on this run's holdout.
    pub champion: Option<VersionMetrics>,
    /// The version serving after this run: none while no candidate has been promoted (the first
    /// one was over the serving budget).
    pub production: Option<VersionMetrics>,
}

/// Everything a run did: the run record, and the summary `mlops run --json` prints.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunRecord {
    pub run_id: String,
    pub dataset: String,
    pub trigger: Trigger,
    pub started_at: String,
    pub finished_at: String,
    pub spec_hash: String,
    pub data_hash: String,
    pub rows_train: usize,
    pub rows_holdout: usize,
    pub prep: Option<PrepOutput>,
    pub candidates: Vec<CandidateSummary>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<CandidateFailure>,
    /// Hyperparameters of each candidate as the spec gave them.
    pub params: BTreeMap<String, serde_json::Value>,
    pub best: String,
    pub metric: String,
    pub champion: Option<VersionMetrics>,
    pub version: String,
    pub promoted: bool,
    pub reason: String,
    /// The version serving after this run, as [`RegisterOutput::production`].
    pub production: Option<VersionMetrics>,
    /// Seconds per stage.
    pub durations: BTreeMap<String, f64>,
    /// The run's HTML report (none when it could not be written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_key: Option<String>,
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
    /// The training run that made the model checked.
    #[serde(default)]
    pub run_id: Option<String>,
    /// When the first and the last prediction checked were logged (none for a batch file).
    #[serde(default)]
    pub window: Option<crate::drift::Window>,
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
    /// The metric estimated without labels on the checked rows (CBPE for classifiers, direct
    /// loss estimation for regressions), judged against the baseline like `concept`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimated: Option<ConceptDrift>,
    /// Attribution drift: each input's mean absolute contribution on explained current rows
    /// against the model card's importance, largest shift first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attribution: Vec<crate::drift::AttributionShift>,
    /// The challenger's trial on delayed labels, when one is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<crate::canary::TrialStatus>,
    pub alert: bool,
    pub retrain: RetrainOutcome,
    pub report_key: String,
    pub html_key: String,
}

/// A drift check over the inference log, by reference: written by drift's plan step (round 0)
/// and by its reduce step (each later round), read by the Distributed Map over the round's
/// items and by the reduce step that adds their summaries up.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DriftPlanned {
    pub dataset: String,
    /// The check's id, a sortable stamp: its report's name.
    pub check: String,
    /// This round's number; a round summarises the next log files when the earlier ones held
    /// fewer predictions than the window.
    pub round: usize,
    /// Map items in this round; 0 when there is no log to read.
    pub items: usize,
    /// The key of the JSON array of this round's items the Distributed Map reads.
    pub items_key: String,
    /// Map items run at once (the Distributed Map's `MaxConcurrencyPath`).
    pub max_concurrency: u32,
}

/// One item of a drift check, as the Distributed Map hands it to drift's part step.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DriftItem {
    pub dataset: String,
    pub check: String,
    pub item: usize,
}

/// What drift's part step summarised, written to the item's fixed key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DriftPartOutput {
    pub item: usize,
    pub files: usize,
    /// Predictions of the checked version in those files.
    pub lines: usize,
}

/// The input of the drift function: a whole check in one invocation, or one step of a check
/// that the drift state machine runs around a Distributed Map.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum DriftInput {
    Step(DriftStep),
    /// `{"dataset": NAME}`: the whole check at once.
    Whole(DriftRequest),
}

/// A step of a drift check over the inference log.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum DriftStep {
    /// Lists the log files newest first and writes the plan: `{"step": "plan", "dataset": NAME}`.
    Plan(DriftRequest),
    /// Summarises one map item's log files.
    Part(DriftItem),
    /// Checks every item's summary exists and adds them up: `{"step": "reduce", "planned": {..}}`.
    Reduce { planned: DriftPlanned },
}

/// What drift's reduce step answers: the next round, while the window is not full and older
/// log files remain, or the report.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum DriftRound {
    Next(DriftPlanned),
    Done(Box<DriftReport>),
}

/// The input of a pipeline stage names the dataset whose spec the stage runs with.
pub trait StageInput {
    fn dataset(&self) -> &str;

    /// The run the input belongs to, once there is one (from features on).
    fn run_id(&self) -> Option<&str> {
        None
    }
}

impl StageInput for RunRequest {
    fn dataset(&self) -> &str {
        &self.dataset
    }
}

impl StageInput for PrepStep {
    fn dataset(&self) -> &str {
        match self {
            PrepStep::Plan { request } => &request.dataset,
            PrepStep::Shard(item) => &item.dataset,
            PrepStep::Merge { planned } => &planned.dataset,
            PrepStep::Bucket(item) => &item.dataset,
            PrepStep::Finish { merged } => &merged.dataset,
        }
    }
}

impl StageInput for ScoreStep {
    fn dataset(&self) -> &str {
        match self {
            ScoreStep::Plan { request } => &request.dataset,
            ScoreStep::Shard(item) => &item.dataset,
            ScoreStep::Finish { planned } => &planned.dataset,
        }
    }
}

impl StageInput for DriftInput {
    fn dataset(&self) -> &str {
        match self {
            DriftInput::Whole(request) | DriftInput::Step(DriftStep::Plan(request)) => &request.dataset,
            DriftInput::Step(DriftStep::Part(item)) => &item.dataset,
            DriftInput::Step(DriftStep::Reduce { planned }) => &planned.dataset,
        }
    }
}

impl StageInput for PrepOutput {
    fn dataset(&self) -> &str {
        &self.dataset
    }
}

impl StageInput for FeaturesOutput {
    fn dataset(&self) -> &str {
        &self.dataset
    }
}

impl StageInput for TrainOutput {
    fn dataset(&self) -> &str {
        &self.features.dataset
    }

    fn run_id(&self) -> Option<&str> {
        Some(&self.features.run_id)
    }
}
