//! The dataset spec: one TOML file describing the data, its schema, features, candidate models,
//! split, promotion policy and drift policy.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::CoreError;
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
        #[serde(default = "default_forest_min_samples_leaf")]
        min_samples_leaf: usize,
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
fn default_forest_min_samples_leaf() -> usize {
    1
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
    /// Reads and checks a spec file.
    pub fn load(path: &Path) -> Result<Spec, CoreError> {
        let text =
            std::fs::read_to_string(path).map_err(|e| CoreError::Spec { file: path.display().to_string(), message: e.to_string() })?;
        Spec::parse(&text, &path.display().to_string())
    }

    /// Parses and checks spec text; `source` names it in errors.
    pub fn parse(text: &str, source: &str) -> Result<Spec, CoreError> {
        let spec: Spec = toml::from_str(text)
            .map_err(|e| CoreError::Spec { file: source.to_string(), message: e.to_string().trim().replace('\n', " ") })?;
        spec.check().map_err(|message| CoreError::Spec { file: source.to_string(), message })?;
        Ok(spec)
    }

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

    fn check(&self) -> Result<(), String> {
        if !key_safe(&self.name) {
            return Err(format!("name '{}' must be 1 to 64 characters of a-z, 0-9, '_' and '-'", self.name));
        }
        let mut seen = BTreeSet::new();
        for column in &self.columns {
            if !seen.insert(column.name.as_str()) {
                return Err(format!("column '{}' is declared twice", column.name));
            }
            check_column(column)?;
        }
        let known = |name: &str, place: &str| -> Result<&ColumnSpec, String> {
            self.column(name).ok_or_else(|| format!("column '{name}' in {place} is not in [[columns]]"))
        };
        let target = known(&self.target.column, "target.column")?;
        if self.ignore.contains(&target.name) {
            return Err(format!("the target '{}' cannot be ignored", target.name));
        }
        self.check_target(target)?;
        if let Some(id) = &self.id {
            known(id, "id")?;
        }
        for name in &self.ignore {
            known(name, "ignore")?;
        }
        for name in &self.features.exclude {
            known(name, "features.exclude")?;
        }
        self.check_time(&known)?;
        for name in self.features.transforms.keys() {
            if !known(name, "features.transforms")?.kind.is_numeric() {
                return Err(format!("features.transforms: column '{name}' is not numeric"));
            }
        }
        for cyclical in &self.features.cyclical {
            if !self.features.time_parts.contains(cyclical) {
                return Err(format!("features.cyclical: '{}' is not in features.time_parts", cyclical.name()));
            }
        }
        if !self.features.time_parts.is_empty() && self.time.is_none() {
            return Err("features.time_parts needs a [time] section".into());
        }
        for pair in &self.features.crosses {
            for name in pair {
                let is_part = TimePart::from_name(name).is_some_and(|p| self.features.time_parts.contains(&p));
                let is_discrete = self
                    .feature_columns()
                    .any(|c| &c.name == name && matches!(c.kind, ColumnType::Categorical | ColumnType::Integer | ColumnType::Boolean));
                if !is_part && !is_discrete {
                    return Err(format!(
                        "features.crosses: '{name}' is neither a time part in features.time_parts nor a categorical, integer or boolean feature column"
                    ));
                }
            }
        }
        if self.features.max_levels < 2 {
            return Err("features.max_levels must be at least 2".into());
        }
        if self.feature_columns().next().is_none() && self.features.time_parts.is_empty() {
            return Err("no column is left to use as a feature".into());
        }
        if self.models.is_empty() {
            return Err("at least one candidate is needed under [models.NAME]".into());
        }
        for (name, model) in &self.models {
            if !key_safe(name) {
                return Err(format!(
                    "models.{name}: a candidate's name must be 1 to 64 characters of a-z, 0-9, '_' and '-' (it names stored files)"
                ));
            }
            crate::models::check_model_spec(model, self.target.task).map_err(|e| format!("models.{name}: {e}"))?;
        }
        if !(self.training.budget_seconds > 0.0 && self.training.budget_seconds.is_finite()) {
            return Err("training.budget_seconds must be a positive number of seconds".into());
        }
        if !(self.split.holdout > 0.0 && self.split.holdout <= 0.5) {
            return Err("split.holdout must be in (0, 0.5]".into());
        }
        if self.split.method == Some(SplitMethod::Time) && self.time.is_none() {
            return Err("split.method = \"time\" needs a [time] section".into());
        }
        let metric = self.metric();
        if !Metric::for_task(self.target.task).contains(&metric) {
            return Err(format!("promotion.metric '{}' does not apply to a {:?} task", metric.name(), self.target.task));
        }
        if !(self.promotion.min_improvement.is_finite() && self.promotion.min_improvement >= 0.0) {
            return Err("promotion.min_improvement must be a finite, non-negative number".into());
        }
        self.check_drift()
    }

    fn check_target(&self, target: &ColumnSpec) -> Result<(), String> {
        let name = &target.name;
        match (self.target.task, target.kind) {
            (Task::Regression, kind) if !matches!(kind, ColumnType::Integer | ColumnType::Float) => {
                Err(format!("a regression target must be integer or float; '{name}' is {}", kind.name()))
            }
            (Task::Binary | Task::Multiclass, ColumnType::Float | ColumnType::Datetime | ColumnType::String) => {
                Err(format!("a class target must be categorical, integer or boolean; '{name}' is {}", target.kind.name()))
            }
            (Task::Binary, ColumnType::Categorical) if target.categories.as_ref().is_some_and(|c| c.len() != 2) => {
                Err(format!("a binary target needs exactly two categories; '{name}' declares another number"))
            }
            _ if target.nullable => Err(format!("the target '{name}' cannot be nullable")),
            _ => match (&self.target.positive, &target.categories) {
                (Some(positive), Some(categories)) if !categories.contains(positive) => {
                    Err(format!("target.positive '{positive}' is not a category of '{name}'"))
                }
                (Some(_), _) if self.target.task != Task::Binary => Err("target.positive only applies to a binary task".into()),
                _ => Ok(()),
            },
        }
    }

    fn check_time<'s>(&'s self, known: &dyn Fn(&str, &str) -> Result<&'s ColumnSpec, String>) -> Result<(), String> {
        let Some(time) = &self.time else { return Ok(()) };
        match (&time.column, &time.origin) {
            (Some(column), None) if time.offsets.is_empty() => {
                if known(column, "time.column")?.kind != ColumnType::Datetime {
                    return Err(format!("time.column '{column}' must have type \"datetime\""));
                }
            }
            (None, Some(origin)) if !time.offsets.is_empty() => {
                crate::time::parse_origin(origin).map_err(|e| format!("time.origin: {e}"))?;
                for offset in &time.offsets {
                    if !offset.shift.is_finite() {
                        return Err(format!("time.offsets: the shift of '{}' must be a finite number", offset.column));
                    }
                    let column = known(&offset.column, "time.offsets")?;
                    if !matches!(column.kind, ColumnType::Integer | ColumnType::Float) {
                        return Err(format!("time.offsets: column '{}' must be integer or float", column.name));
                    }
                }
            }
            _ => return Err("[time] needs either `column` alone, or `origin` with `offsets`".into()),
        }
        Ok(())
    }

    fn check_drift(&self) -> Result<(), String> {
        let drift = &self.drift;
        if !matches!(drift.numeric, DriftMethod::Ks | DriftMethod::Wasserstein | DriftMethod::Psi) {
            return Err("drift.numeric must be ks, wasserstein or psi".into());
        }
        if !matches!(drift.categorical, DriftMethod::ChiSquare | DriftMethod::JensenShannon | DriftMethod::Psi) {
            return Err("drift.categorical must be chi_square, jensen_shannon or psi".into());
        }
        if !(drift.p_value > 0.0 && drift.p_value < 1.0) {
            return Err("drift.p_value must be in (0, 1)".into());
        }
        if !(drift.dataset_share > 0.0 && drift.dataset_share <= 1.0) {
            return Err("drift.dataset_share must be in (0, 1]".into());
        }
        if drift.min_samples < 2 || drift.window < drift.min_samples {
            return Err("drift.min_samples must be at least 2 and at most drift.window".into());
        }
        for (name, value) in [
            ("wasserstein_threshold", drift.wasserstein_threshold),
            ("jensen_shannon_threshold", drift.jensen_shannon_threshold),
            ("psi_threshold", drift.psi_threshold),
            ("concept_threshold", drift.concept_threshold),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                return Err(format!("drift.{name} must be a finite, non-negative number"));
            }
        }
        if drift.cooldown_minutes > MAX_COOLDOWN_MINUTES {
            return Err(format!("drift.cooldown_minutes must be at most {MAX_COOLDOWN_MINUTES} (ten years)"));
        }
        Ok(())
    }
}

/// The names of the fields of quarantine records (row number, file, raw line, reason): no spec
/// column may take one, and prep does not read a raw column that has one.
pub const QUARANTINE_FIELDS: [&str; 4] = ["_row", "_file", "_text", "_reason"];

/// The longest drift cooldown a spec may set: ten years.
pub const MAX_COOLDOWN_MINUTES: u64 = 10 * 365 * 24 * 60;

/// A name that is safe in a store key: 1 to 64 characters of `a-z`, `0-9`, `_` and `-`.
fn key_safe(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

fn check_column(column: &ColumnSpec) -> Result<(), String> {
    let name = &column.name;
    if name.is_empty() {
        return Err("a column has an empty name".into());
    }
    if QUARANTINE_FIELDS.contains(&name.as_str()) {
        return Err(format!("column '{name}': the name is reserved for quarantine records"));
    }
    for (bound, value) in [("min", column.min), ("max", column.max)] {
        if value.is_some_and(|v| !v.is_finite()) {
            return Err(format!("column '{name}': {bound} must be a finite number"));
        }
    }
    if (column.min.is_some() || column.max.is_some()) && !column.kind.is_numeric() {
        return Err(format!("column '{name}': min and max only apply to numeric columns"));
    }
    if let (Some(min), Some(max)) = (column.min, column.max)
        && min > max
    {
        return Err(format!("column '{name}': min {min} is above max {max}"));
    }
    if column.categories.is_some() && column.kind != ColumnType::Categorical {
        return Err(format!("column '{name}': categories only apply to categorical columns"));
    }
    if let Some(categories) = &column.categories {
        if categories.is_empty() {
            return Err(format!("column '{name}': categories is empty"));
        }
        if categories.iter().collect::<BTreeSet<_>>().len() != categories.len() {
            return Err(format!("column '{name}': categories repeat a value"));
        }
    }
    if column.format.is_some() && column.kind != ColumnType::Datetime {
        return Err(format!("column '{name}': format only applies to datetime columns"));
    }
    if column.kind == ColumnType::Datetime && column.format.is_none() {
        return Err(format!("column '{name}': a datetime column needs a format, e.g. \"%Y-%m-%d %H:%M:%S\""));
    }
    if let Some(format) = column.format.as_deref().filter(|f| !crate::time::is_datetime_format(f)) {
        return Err(format!(
            "column '{name}': format '{format}' is neither a strftime format (with % directives) nor one of rfc3339, unix, unix_ms"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
name = "toy"
[target]
column = "y"
task = "regression"
[[columns]]
name = "x"
type = "float"
[[columns]]
name = "y"
type = "float"
[models.lm]
kind = "linear"
"#;

    #[test]
    fn a_minimal_spec_gets_defaults() {
        let spec = Spec::parse(MINIMAL, "toy.toml").unwrap();
        assert_eq!(spec.metric(), Metric::Rmse);
        assert_eq!(spec.split_method(), SplitMethod::Random);
        assert_eq!(spec.split.holdout, 0.2);
        assert_eq!(spec.models["lm"], ModelSpec::Linear { alpha: 0.1 });
        assert_eq!(spec.feature_columns().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["x"]);
        let again = Spec::parse(&spec.to_toml(), "round trip").unwrap();
        assert_eq!(again, spec);
        assert_eq!(again.hash(), spec.hash());
    }

    #[test]
    fn mistakes_are_named() {
        let cases = [
            (MINIMAL.replace("column = \"y\"", "column = \"z\""), "column 'z' in target.column is not in [[columns]]"),
            (MINIMAL.replace("kind = \"linear\"", "kind = \"linear\"\nalpah = 1.0"), "alpah"),
            (MINIMAL.replace("kind = \"linear\"", "kind = \"svm\""), "svm"),
            (MINIMAL.replace("name = \"toy\"", "name = \"Toy Data\""), "name 'Toy Data'"),
            (MINIMAL.replace("task = \"regression\"", "task = \"binary\""), "class target must be"),
            (MINIMAL.replace("type = \"float\"\n[[columns]]", "type = \"float\"\nmin = 2\nmax = 1\n[[columns]]"), "min 2 is above max 1"),
            (MINIMAL.replace("type = \"float\"\n[[columns]]", "type = \"float\"\nmin = nan\n[[columns]]"), "min must be a finite number"),
            (MINIMAL.replace("type = \"float\"\n[[columns]]", "type = \"float\"\nmax = inf\n[[columns]]"), "max must be a finite number"),
            (MINIMAL.replace("[models.lm]", "[models.\"../lm\"]"), "models.../lm: a candidate's name"),
            (MINIMAL.replace("[models.lm]", "[models.LM]"), "models.LM: a candidate's name"),
            (format!("{MINIMAL}[promotion]\nmin_improvement = nan\n"), "promotion.min_improvement must be a finite"),
            (format!("{MINIMAL}[drift]\npsi_threshold = inf\n"), "drift.psi_threshold must be a finite"),
            (format!("{MINIMAL}[drift]\nconcept_threshold = nan\n"), "drift.concept_threshold must be a finite"),
            (format!("{MINIMAL}[drift]\ncooldown_minutes = 1000000000000000\n"), "drift.cooldown_minutes must be at most"),
            (format!("{MINIMAL}[drift]\np_value = nan\n"), "drift.p_value must be in (0, 1)"),
            (MINIMAL.replace("name = \"x\"", "name = \"_row\""), "reserved"),
        ];
        for (text, expected) in cases {
            let error = Spec::parse(&text, "toy.toml").unwrap_err().to_string();
            assert!(error.contains("toy.toml") && error.contains(expected), "{error:?} should mention {expected:?}");
        }
    }

    #[test]
    fn the_shipped_bikeshare_spec_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../specs/bikeshare.toml");
        let spec = Spec::load(&path).unwrap();
        assert_eq!(spec.target.column, "bikers");
        assert!(spec.ignore.contains(&"casual".to_string()) && spec.ignore.contains(&"registered".to_string()));
        assert_eq!(spec.split_method(), SplitMethod::Time);
        let inputs: Vec<_> = spec.input_columns().filter(|c| spec.requires(c)).map(|c| c.name.as_str()).collect();
        assert!(inputs.contains(&"day") && inputs.contains(&"hr") && !inputs.contains(&"casual"));
    }
}
