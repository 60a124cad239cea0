//! The dataset spec: one TOML file describing the data, its schema, features, candidate models,
//! split, promotion policy and drift policy.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::hash::sha256_hex;

/// A dataset's spec.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// Dataset name; also its key prefix in the store (`[a-z0-9_-]`).
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// A column unique per row, never a feature; it keys delayed labels to predictions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Columns dropped before anything else (leaks of the target, free text, ids).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore: Vec<String>,
    pub target: TargetSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<TimeSpec>,
    pub columns: Vec<ColumnSpec>,
    #[serde(default)]
    pub features: FeatureSpec,
    /// Candidate models by name.
    pub models: BTreeMap<String, ModelSpec>,
    #[serde(default)]
    pub split: SplitSpec,
    #[serde(default)]
    pub training: TrainingSpec,
    #[serde(default)]
    pub promotion: PromotionSpec,
    #[serde(default)]
    pub drift: DriftSpec,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TargetSpec {
    pub column: String,
    pub task: Task,
    /// The positive class of a binary task (default: the larger of the two labels).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub positive: Option<String>,
}

/// What is predicted.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    Regression,
    Binary,
    Multiclass,
}

impl Task {
    pub fn is_classification(self) -> bool {
        self != Task::Regression
    }
}

/// Where each row's time comes from: a datetime column, or an origin plus numeric offsets.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TimeSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// `YYYY-MM-DDTHH:MM:SS`, the time of offset zero.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub offsets: Vec<TimeOffset>,
}

/// `(value of column + shift)` units after the origin.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TimeOffset {
    pub column: String,
    pub unit: TimeUnit,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub shift: f64,
}

fn is_zero(value: &f64) -> bool {
    *value == 0.0
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TimeUnit {
    Seconds,
    Minutes,
    Hours,
    Days,
    Weeks,
}

impl TimeUnit {
    pub fn seconds(self) -> f64 {
        match self {
            TimeUnit::Seconds => 1.0,
            TimeUnit::Minutes => 60.0,
            TimeUnit::Hours => 3600.0,
            TimeUnit::Days => 86_400.0,
            TimeUnit::Weeks => 604_800.0,
        }
    }
}

/// One column of the schema.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ColumnSpec {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: ColumnType,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub nullable: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// The allowed values of a categorical column: a value outside them is refused. When absent
    /// the set is open: any value is accepted, and one training never saw is encoded as missing
    /// (few levels) or as the prior (target-encoded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub categories: Option<Vec<String>>,
    /// Format of a datetime column: strftime (`%Y-%m-%d %H:%M:%S`), `rfc3339`, `unix` (epoch
    /// seconds) or `unix_ms` (epoch milliseconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum ColumnType {
    Integer,
    Float,
    /// `true/false`, `1/0`, `yes/no` (any case).
    Boolean,
    Categorical,
    /// Free text: kept, never a feature.
    String,
    Datetime,
}

/// Words read as `true` in a boolean column (any case), by prep and by serving alike.
pub const TRUE_WORDS: [&str; 5] = ["true", "1", "yes", "t", "y"];
/// Words read as `false` in a boolean column (any case).
pub const FALSE_WORDS: [&str; 5] = ["false", "0", "no", "f", "n"];

impl ColumnType {
    pub fn is_numeric(self) -> bool {
        matches!(self, ColumnType::Integer | ColumnType::Float | ColumnType::Boolean)
    }

    pub fn name(self) -> &'static str {
        match self {
            ColumnType::Integer => "integer",
            ColumnType::Float => "float",
            ColumnType::Boolean => "boolean",
            ColumnType::Categorical => "categorical",
            ColumnType::String => "string",
            ColumnType::Datetime => "datetime",
        }
    }
}

/// Derived features and encodings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FeatureSpec {
    /// Columns that are inputs (e.g. to build the time) but not features.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// Calendar parts of the row time used as features.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub time_parts: Vec<TimePart>,
    /// Time parts that also get sine and cosine features (for linear models).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cyclical: Vec<TimePart>,
    /// Numeric transforms applied to a column before use, by column.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub transforms: BTreeMap<String, Vec<NumericTransform>>,
    /// Pairs of discrete features (categorical or integer columns, time parts) crossed into one
    /// categorical feature, e.g. `["hour", "workingday"]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub crosses: Vec<[String; 2]>,
    /// A categorical with more levels than this in the training rows is target-encoded (out of
    /// fold); a cross keeps this many levels, the rarest sharing one "other" level.
    #[serde(default = "default_max_levels")]
    pub max_levels: usize,
}

impl Default for FeatureSpec {
    fn default() -> Self {
        FeatureSpec {
            exclude: Vec::new(),
            time_parts: Vec::new(),
            cyclical: Vec::new(),
            transforms: BTreeMap::new(),
            crosses: Vec::new(),
            max_levels: default_max_levels(),
        }
    }
}

fn default_max_levels() -> usize {
    64
}

/// A calendar part of a time.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "snake_case")]
pub enum TimePart {
    Minute,
    Hour,
    /// Monday is 0.
    Weekday,
    DayOfMonth,
    DayOfYear,
    Month,
}

impl TimePart {
    pub const ALL: [TimePart; 6] =
        [TimePart::Minute, TimePart::Hour, TimePart::Weekday, TimePart::DayOfMonth, TimePart::DayOfYear, TimePart::Month];

    pub fn name(self) -> &'static str {
        match self {
            TimePart::Minute => "minute",
            TimePart::Hour => "hour",
            TimePart::Weekday => "weekday",
            TimePart::DayOfMonth => "day_of_month",
            TimePart::DayOfYear => "day_of_year",
            TimePart::Month => "month",
        }
    }

    pub fn from_name(name: &str) -> Option<TimePart> {
        TimePart::ALL.into_iter().find(|p| p.name() == name)
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum NumericTransform {
    /// `ln(1 + x)`, for non-negative skewed values.
    Log1p,
    Sqrt,
}

/// A candidate model and its hyperparameters.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ModelSpec {
    /// L2-regularised linear models (linfa): ridge regression (a Normal GLM), logistic
    /// regression for classification.
    Linear {
        #[serde(default = "default_alpha")]
        alpha: f64,
    },
    DecisionTree {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_depth: Option<usize>,
        #[serde(default = "default_tree_min_samples_leaf")]
        min_samples_leaf: usize,
    },
    RandomForest {
        #[serde(default = "default_trees")]
        trees: usize,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_depth: Option<usize>,
        /// Rows each leaf holds at least (default: one per 50,000 training rows and at least
        /// one, so scikit-learn's 1 below 100,000 rows: a tree's size stops growing with the data).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min_samples_leaf: Option<usize>,
        /// Fraction of the features tried at each split (default: all for regression, the square
        /// root of their number for classification).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_features: Option<f64>,
        /// Rows drawn for each tree (default: as many as there are training rows).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_samples: Option<usize>,
    },
    GradientBoosting {
        /// Regression loss; classification always uses log-loss.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        loss: Option<RegressionLoss>,
        #[serde(default = "default_learning_rate")]
        learning_rate: f64,
        #[serde(default = "default_max_iter")]
        max_iter: usize,
        #[serde(default = "default_max_leaf_nodes")]
        max_leaf_nodes: usize,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_depth: Option<usize>,
        #[serde(default = "default_boosting_min_samples_leaf")]
        min_samples_leaf: usize,
        #[serde(default)]
        l2_regularization: f64,
        #[serde(default)]
        early_stopping: EarlyStoppingSpec,
        #[serde(default)]
        sampling: SamplingSpec,
    },
}

fn default_alpha() -> f64 {
    0.1
}
fn default_tree_min_samples_leaf() -> usize {
    5
}
fn default_trees() -> usize {
    100
}
fn default_learning_rate() -> f64 {
    0.1
}
fn default_max_iter() -> usize {
    200
}
fn default_max_leaf_nodes() -> usize {
    31
}
fn default_boosting_min_samples_leaf() -> usize {
    20
}

impl ModelSpec {
    /// The `kind` name used in specs.
    pub fn kind(&self) -> &'static str {
        match self {
            ModelSpec::Linear { .. } => "linear",
            ModelSpec::DecisionTree { .. } => "decision_tree",
            ModelSpec::RandomForest { .. } => "random_forest",
            ModelSpec::GradientBoosting { .. } => "gradient_boosting",
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RegressionLoss {
    SquaredError,
    /// For non-negative counts: log link.
    Poisson,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum EarlyStoppingSpec {
    /// On from 10 000 training rows.
    #[default]
    Auto,
    On,
    Off,
}

/// Which training rows each boosting round grows on.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SamplingSpec {
    /// Every training row.
    #[default]
    All,
    /// Gradient-based one-side sampling (LightGBM's GOSS): for wide tables.
    Goss,
}

/// Limits of a training run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TrainingSpec {
    /// Seconds for fitting every candidate of a run. Each candidate gets the budget left over
    /// the candidates left; boosting and forests stop adding trees when theirs runs out, with a
    /// note. The default leaves a 15-minute Lambda five minutes to read the data and write.
    #[serde(default = "default_budget_seconds")]
    pub budget_seconds: f64,
}

impl Default for TrainingSpec {
    fn default() -> Self {
        TrainingSpec { budget_seconds: default_budget_seconds() }
    }
}

fn default_budget_seconds() -> f64 {
    600.0
}

/// How rows are split into training and holdout.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SplitSpec {
    /// Share of rows held out for evaluation.
    #[serde(default = "default_holdout")]
    pub holdout: f64,
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// `time` (the latest rows are held out) when there is a time, else `random`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<SplitMethod>,
}

impl Default for SplitSpec {
    fn default() -> Self {
        SplitSpec { holdout: default_holdout(), seed: default_seed(), method: None }
    }
}

fn default_holdout() -> f64 {
    0.2
}
fn default_seed() -> u64 {
    42
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SplitMethod {
    Time,
    /// Seeded; stratified by class for classification.
    Random,
}

/// When a candidate replaces the champion.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct PromotionSpec {
    /// Default: rmse for regression, auc for binary, log_loss for multiclass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<Metric>,
    /// Required improvement over the champion on the same holdout, relative (0.01 = 1 %) unless
    /// `absolute` is set.
    #[serde(default)]
    pub min_improvement: f64,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub absolute: bool,
    /// What serving may cost: a candidate past it is not promoted, however good.
    #[serde(default, skip_serializing_if = "ServingBudget::is_empty")]
    pub budget: ServingBudget,
    /// How a challenger is tried on live traffic; with `rollout` set, a winning candidate starts
    /// as a challenger instead of replacing the champion at once.
    #[serde(default, skip_serializing_if = "CanaryPolicy::is_default")]
    pub canary: CanaryPolicy,
}

/// How a challenger model is tried against the champion on live traffic, and judged on
/// delayed labels.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CanaryPolicy {
    /// How a run's winning candidate starts when a champion serves: `canary` (at `weight`),
    /// `shadow`, or, when absent, promoted at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Rollout>,
    /// Percent of routing keys a canary answers (1 to 99).
    pub weight: u8,
    /// Labelled predictions each version needs before the test may decide.
    pub min_labels: usize,
    /// The sequential test's false-decision rate, over all the looks it takes.
    pub alpha: f64,
    /// A canary failing more than this share of its requests is withdrawn at once.
    pub max_error_rate: f64,
    /// A canary whose scoring p99 (features and model, milliseconds) passes this is withdrawn.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_p99_ms: Option<f64>,
    /// Requests a canary answers before its error rate and latency are judged.
    pub guard_requests: usize,
}

impl Default for CanaryPolicy {
    fn default() -> Self {
        CanaryPolicy { rollout: None, weight: 10, min_labels: 200, alpha: 0.05, max_error_rate: 0.02, max_p99_ms: None, guard_requests: 50 }
    }
}

impl CanaryPolicy {
    fn is_default(&self) -> bool {
        *self == CanaryPolicy::default()
    }
}

/// How a challenger starts.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Rollout {
    Canary,
    Shadow,
}

/// The serving budget a candidate must keep to be promoted.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct ServingBudget {
    /// Longest 99th-percentile time to predict one row, in milliseconds: the features' transform
    /// and the model, in the training process (no HTTP, no JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predict_p99_ms: Option<f64>,
    /// Largest artifact, in megabytes (10^6 bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_mb: Option<f64>,
}

impl ServingBudget {
    fn is_empty(&self) -> bool {
        self.predict_p99_ms.is_none() && self.artifact_mb.is_none()
    }
}

/// A holdout metric.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    Rmse,
    Mae,
    R2,
    Auc,
    Accuracy,
    F1,
    LogLoss,
}

impl Metric {
    pub fn name(self) -> &'static str {
        match self {
            Metric::Rmse => "rmse",
            Metric::Mae => "mae",
            Metric::R2 => "r2",
            Metric::Auc => "auc",
            Metric::Accuracy => "accuracy",
            Metric::F1 => "f1",
            Metric::LogLoss => "log_loss",
        }
    }

    pub fn higher_is_better(self) -> bool {
        matches!(self, Metric::R2 | Metric::Auc | Metric::Accuracy | Metric::F1)
    }

    pub fn for_task(task: Task) -> &'static [Metric] {
        match task {
            Task::Regression => &[Metric::Rmse, Metric::Mae, Metric::R2],
            Task::Binary | Task::Multiclass => &[Metric::Auc, Metric::Accuracy, Metric::F1, Metric::LogLoss],
        }
    }
}

/// When a feature, the data set and the model count as drifted, and what happens then.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DriftSpec {
    /// The statistic deciding numeric drift.
    #[serde(default = "default_numeric_method")]
    pub numeric: DriftMethod,
    /// The statistic deciding categorical drift.
    #[serde(default = "default_categorical_method")]
    pub categorical: DriftMethod,
    /// Significance level of the KS and chi-square tests.
    #[serde(default = "default_p_value")]
    pub p_value: f64,
    /// Wasserstein distance in reference standard deviations; also the effect-size floor of KS.
    #[serde(default = "default_wasserstein")]
    pub wasserstein_threshold: f64,
    /// Jensen-Shannon distance (base 2); also the effect-size floor of chi-square.
    #[serde(default = "default_jensen_shannon")]
    pub jensen_shannon_threshold: f64,
    #[serde(default = "default_psi")]
    pub psi_threshold: f64,
    /// Fewer current rows than this give no verdict.
    #[serde(default = "default_min_samples")]
    pub min_samples: usize,
    /// The data set drifts when this share of its features does.
    #[serde(default = "default_dataset_share")]
    pub dataset_share: f64,
    /// Most recent logged inferences compared with the reference.
    #[serde(default = "default_window")]
    pub window: usize,
    /// Relative degradation of the promotion metric on delayed labels that counts as concept drift.
    #[serde(default = "default_concept")]
    pub concept_threshold: f64,
    /// No second drift retrain within this many minutes of the last.
    #[serde(default = "default_cooldown")]
    pub cooldown_minutes: u64,
}

impl Default for DriftSpec {
    fn default() -> Self {
        DriftSpec {
            numeric: default_numeric_method(),
            categorical: default_categorical_method(),
            p_value: default_p_value(),
            wasserstein_threshold: default_wasserstein(),
            jensen_shannon_threshold: default_jensen_shannon(),
            psi_threshold: default_psi(),
            min_samples: default_min_samples(),
            dataset_share: default_dataset_share(),
            window: default_window(),
            concept_threshold: default_concept(),
            cooldown_minutes: default_cooldown(),
        }
    }
}

fn default_numeric_method() -> DriftMethod {
    DriftMethod::Ks
}
fn default_categorical_method() -> DriftMethod {
    DriftMethod::ChiSquare
}
fn default_p_value() -> f64 {
    0.01
}
fn default_wasserstein() -> f64 {
    0.1
}
fn default_jensen_shannon() -> f64 {
    0.1
}
fn default_psi() -> f64 {
    0.2
}
fn default_min_samples() -> usize {
    200
}
fn default_dataset_share() -> f64 {
    0.3
}
fn default_window() -> usize {
    5000
}
fn default_concept() -> f64 {
    0.2
}
fn default_cooldown() -> u64 {
    24 * 60
}

/// A drift statistic.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DriftMethod {
    /// Two-sample Kolmogorov-Smirnov test (numeric).
    Ks,
    /// Wasserstein-1 distance over the reference standard deviation (numeric).
    Wasserstein,
    /// Chi-square test of homogeneity (categorical).
    ChiSquare,
    /// Jensen-Shannon distance, base 2 (categorical).
    JensenShannon,
    /// Population stability index (both).
    Psi,
}

impl Spec {
    /// The spec as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a spec always serialises")
    }

    /// A hash of the spec's content (independent of formatting and comments).
    pub fn hash(&self) -> String {
        sha256_hex(&serde_json::to_vec(self).expect("a spec always serialises"))
    }

    pub fn column(&self, name: &str) -> Option<&ColumnSpec> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The promotion metric.
    pub fn metric(&self) -> Metric {
        self.promotion.metric.unwrap_or(match self.target.task {
            Task::Regression => Metric::Rmse,
            Task::Binary => Metric::Auc,
            Task::Multiclass => Metric::LogLoss,
        })
    }

    /// How the holdout is chosen.
    pub fn split_method(&self) -> SplitMethod {
        self.split.method.unwrap_or(if self.time.is_some() { SplitMethod::Time } else { SplitMethod::Random })
    }

    /// Columns used as features directly (not the target, id, ignored, excluded, text or the
    /// time column, which contributes through its parts).
    pub fn feature_columns(&self) -> impl Iterator<Item = &ColumnSpec> {
        let time_column = self.time.as_ref().and_then(|t| t.column.as_deref());
        self.columns.iter().filter(move |c| {
            c.name != self.target.column
                && Some(c.name.as_str()) != self.id.as_deref()
                && Some(c.name.as_str()) != time_column
                && !self.ignore.contains(&c.name)
                && !self.features.exclude.contains(&c.name)
                && !matches!(c.kind, ColumnType::String | ColumnType::Datetime)
        })
    }

    /// Columns a prediction request must or may carry: everything but the target and ignored
    /// columns.
    pub fn input_columns(&self) -> impl Iterator<Item = &ColumnSpec> {
        self.columns.iter().filter(|c| c.name != self.target.column && !self.ignore.contains(&c.name))
    }

    /// Whether a request must carry `column` (a non-null feature or a source of the time).
    pub fn requires(&self, column: &ColumnSpec) -> bool {
        if column.nullable || Some(column.name.as_str()) == self.id.as_deref() {
            return false;
        }
        let builds_time = self
            .time
            .as_ref()
            .is_some_and(|t| t.column.as_deref() == Some(column.name.as_str()) || t.offsets.iter().any(|o| o.column == column.name));
        builds_time || self.feature_columns().any(|c| c.name == column.name)
    }
}

/// The names of the fields prep adds to rows: those of quarantine records (row number, file,
/// raw line, reason) and a processed row's place in its batch. No spec column may take one, and
/// prep does not read a raw column that has one.
pub const RESERVED_FIELDS: [&str; 5] = ["_row", "_file", "_text", "_reason", "_order"];

/// The longest drift cooldown a spec may set: ten years.
pub const MAX_COOLDOWN_MINUTES: u64 = 10 * 365 * 24 * 60;
