//! Drafting a spec from a CSV file (`mlops init`): column types, categories, ranges, nulls, a
//! likely time column, id-like columns, the task, and default candidates.

use std::collections::{BTreeMap, BTreeSet};

use mlops_core::time::{RFC3339, UNIX_MILLISECONDS, UNIX_SECONDS, parse_datetime};
use mlops_core::{
    ColumnSpec, ColumnType, DriftSpec, EarlyStoppingSpec, FeatureSpec, ModelSpec, PromotionSpec, RegressionLoss, SamplingSpec, Spec,
    SplitSpec, TargetSpec, Task, TimePart, TimeSpec, TrainingSpec,
};

use crate::{Rejection, read_strings};

/// Datetime formats tried, most specific first.
const DATETIME_FORMATS: [&str; 13] = [
    RFC3339,
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d",
    "%Y/%m/%d",
    "%d/%m/%Y %H:%M",
    "%m/%d/%Y %H:%M",
    "%d/%m/%Y",
    "%m/%d/%Y",
];
/// Text columns with at most this many distinct values are categorical with their categories
/// listed; text columns with more are open categoricals while their values repeat.
const MAX_CATEGORIES: usize = 100;
/// Epoch seconds from 1973 to 2286; milliseconds are the same range times 1000.
const EPOCH_SECONDS: std::ops::Range<f64> = 1e8..1e10;
/// Integer columns with at most this many distinct values get their observed range.
const SMALL_DOMAIN: usize = 32;

/// What the user tells `mlops init`.
#[derive(Debug, Clone)]
pub struct InitOptions {
    pub name: String,
    pub target: String,
    pub time: Option<String>,
    pub task: Option<Task>,
}

/// Observations about one column.
struct Profile {
    name: String,
    values: Vec<Option<String>>,
    distinct: usize,
}

impl Profile {
    fn present(&self) -> impl Iterator<Item = &str> {
        self.values.iter().flatten().map(String::as_str)
    }
    fn has_missing(&self) -> bool {
        self.values.iter().any(Option::is_none)
    }
    fn numbers(&self) -> Option<Vec<f64>> {
        self.present().map(|v| v.parse::<f64>().ok().filter(|x| x.is_finite())).collect()
    }
    fn unique_per_row(&self) -> bool {
        !self.has_missing() && self.distinct == self.values.len()
    }
}

fn profile(name: &str, column: &polars::prelude::Column) -> Result<Profile, polars::prelude::PolarsError> {
    let text = column.str()?;
    let values: Vec<Option<String>> = text.iter().map(|v| v.map(str::trim).filter(|v| !v.is_empty()).map(str::to_string)).collect();
    let distinct = values.iter().flatten().collect::<BTreeSet<_>>().len();
    Ok(Profile { name: name.to_string(), values, distinct })
}

fn datetime_format(profile: &Profile) -> Option<&'static str> {
    let sample: Vec<&str> = profile.present().take(2000).collect();
    if sample.is_empty() || sample.iter().all(|v| v.parse::<f64>().is_ok()) {
        return None;
    }
    DATETIME_FORMATS.into_iter().find(|format| sample.iter().all(|v| parse_datetime(v, format).is_ok()))
}

fn looks_like_id(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower == "id"
        || lower.ends_with("_id")
        || lower.ends_with("id") && name.ends_with("ID")
        || name.ends_with("Id")
        || lower.starts_with("id_")
}

fn infer_column(profile: &Profile) -> ColumnSpec {
    let mut column = ColumnSpec {
        name: profile.name.clone(),
        kind: ColumnType::String,
        nullable: profile.has_missing(),
        min: None,
        max: None,
        categories: None,
        format: None,
    };
    if let Some(numbers) = profile.numbers().filter(|n| !n.is_empty()) {
        let integral = numbers.iter().all(|v| v.fract() == 0.0);
        column.kind = if integral { ColumnType::Integer } else { ColumnType::Float };
        let (min, max) = numbers.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
        if integral && profile.distinct <= SMALL_DOMAIN {
            (column.min, column.max) = (Some(min), Some(max));
        } else if min >= 0.0 {
            column.min = Some(0.0);
            if !integral && max <= 1.0 {
                column.max = Some(1.0);
            }
        }
        return column;
    }
    let lower: BTreeSet<String> = profile.present().map(str::to_ascii_lowercase).collect();
    if !lower.is_empty() && lower.iter().all(|v| ["true", "false", "yes", "no"].contains(&v.as_str())) {
        column.kind = ColumnType::Boolean;
    } else if let Some(format) = datetime_format(profile) {
        column.kind = ColumnType::Datetime;
        column.format = Some(format.to_string());
    } else if profile.distinct * 2 <= profile.values.len().max(2) {
        // Values repeat (two rows a level on average): levels, not free text.
        column.kind = ColumnType::Categorical;
        if profile.distinct <= MAX_CATEGORIES {
            column.categories = Some(profile.present().map(str::to_string).collect::<BTreeSet<_>>().into_iter().collect());
        }
    }
    column
}

fn infer_task(column: &ColumnSpec, distinct: usize) -> Task {
    match column.kind {
        ColumnType::Float => Task::Regression,
        ColumnType::Integer if distinct == 2 => Task::Binary,
        ColumnType::Integer if distinct <= 10 && column.min.is_some_and(|m| m >= 0.0) && column.max.is_some_and(|m| m < 10.0) => {
            Task::Multiclass
        }
        ColumnType::Integer => Task::Regression,
        _ if distinct == 2 => Task::Binary,
        _ => Task::Multiclass,
    }
}

/// Time parts worth having for times spread like `times` (seconds).
fn time_parts(times: &[f64]) -> Vec<TimePart> {
    let part_varies = |part: TimePart| {
        let values: BTreeSet<i64> = times.iter().map(|t| mlops_core::time::part(*t, part) as i64).collect();
        values.len() > 1
    };
    let mut parts = Vec::new();
    if part_varies(TimePart::Hour) {
        parts.push(TimePart::Hour);
    }
    if part_varies(TimePart::Weekday) {
        parts.push(TimePart::Weekday);
    }
    if part_varies(TimePart::Month) {
        parts.push(TimePart::Month);
    }
    parts
}

/// Drafts a spec for a CSV file; also returns what was decided, one line each.
pub fn infer_spec(file: &str, bytes: &[u8], options: &InitOptions) -> Result<(Spec, Vec<String>), Rejection> {
    let reject = |reason: String| Rejection { file: file.to_string(), reason };
    let header = crate::read_header(bytes).map_err(|e| reject(crate::Unreadable::Csv(e.to_string()).to_string()))?;
    let (table, _, _) = read_strings(bytes, &header, 0).map_err(|e| reject(e.to_string()))?;
    let header = crate::readable(&header);
    if table.height() < 2 {
        return Err(reject("at least two data rows are needed to infer a spec".into()));
    }
    let profiles: Vec<Profile> = header
        .iter()
        .map(|h| profile(h, table.column(h).expect("read with this header")))
        .collect::<Result<_, _>>()
        .map_err(|e| reject(e.to_string()))?;
    if !header.contains(&options.target) {
        return Err(reject(format!("target column '{}' is not in the header ({})", options.target, header.join(", "))));
    }
    let mut notes = Vec::new();
    let mut columns: Vec<ColumnSpec> = profiles.iter().map(infer_column).collect();
    let target_index = header.iter().position(|h| *h == options.target).expect("checked above");
    let target_distinct = profiles[target_index].distinct;
    let task = options.task.unwrap_or_else(|| infer_task(&columns[target_index], target_distinct));
    {
        let target = &mut columns[target_index];
        if target.nullable {
            notes.push(format!("target '{}' has missing values: those rows will be quarantined", target.name));
            target.nullable = false;
        }
        if task.is_classification() && matches!(target.kind, ColumnType::Float | ColumnType::String) {
            target.kind = ColumnType::Categorical;
            target.min = None;
            target.max = None;
            target.categories = Some(profiles[target_index].present().map(str::to_string).collect::<BTreeSet<_>>().into_iter().collect());
        }
        if task == Task::Regression && !matches!(target.kind, ColumnType::Integer | ColumnType::Float) {
            return Err(reject(format!(
                "target '{}' is not numeric, so it cannot be a regression target; pass --task binary or multiclass",
                target.name
            )));
        }
    }
    notes.push(format!("task: {task:?} ({target_distinct} distinct target values)").to_lowercase());

    let time_column = match &options.time {
        Some(name) => {
            let column =
                columns.iter().find(|c| &c.name == name).ok_or_else(|| reject(format!("time column '{name}' is not in the header")))?;
            if matches!(column.kind, ColumnType::Integer | ColumnType::Float)
                && let Some(format) = epoch_format(&profiles[header.iter().position(|h| h == name).expect("in the header")])
            {
                let column = columns.iter_mut().find(|c| &c.name == name).expect("found above");
                notes.push(format!(
                    "time: '{name}' holds Unix times in {}",
                    if format == UNIX_SECONDS { "seconds" } else { "milliseconds" }
                ));
                (column.kind, column.format, column.min, column.max) = (ColumnType::Datetime, Some(format.to_string()), None, None);
            }
            let column = columns.iter().find(|c| &c.name == name).expect("found above");
            if column.kind != ColumnType::Datetime {
                return Err(reject(format!(
                    "time column '{name}' does not look like a datetime (tried {}, and Unix times in seconds or milliseconds)",
                    DATETIME_FORMATS.join(", ")
                )));
            }
            Some(name.clone())
        }
        None => columns.iter().find(|c| c.kind == ColumnType::Datetime && c.name != options.target).map(|c| c.name.clone()),
    };
    let mut ignore = Vec::new();
    let mut id = None;
    for (column, profile) in columns.iter().zip(&profiles) {
        if column.name == options.target || Some(&column.name) == time_column.as_ref() {
            continue;
        }
        let id_like = profile.unique_per_row()
            && match column.kind {
                ColumnType::String | ColumnType::Categorical => true,
                ColumnType::Integer => looks_like_id(&column.name) || is_consecutive(profile),
                _ => false,
            };
        if id_like {
            if id.is_none() {
                notes.push(format!("id: '{}' is unique per row; it keys delayed labels and is not a feature", column.name));
                id = Some(column.name.clone());
            } else {
                notes.push(format!("ignored: '{}' is unique per row (id-like)", column.name));
                ignore.push(column.name.clone());
            }
        } else if column.kind == ColumnType::Categorical && column.categories.is_none() {
            notes.push(format!(
                "'{}' is categorical with {} levels: an open set (a new level is accepted), target-encoded beyond {} levels",
                column.name,
                profile.distinct,
                FeatureSpec::default().max_levels
            ));
        } else if column.kind == ColumnType::String {
            notes.push(format!("'{}' is free text ({} distinct values): kept, not a feature", column.name, profile.distinct));
        } else if column.kind == ColumnType::Datetime {
            notes.push(format!("'{}' is a datetime other than the time: kept, not a feature", column.name));
        }
    }
    let mut features = FeatureSpec::default();
    let time = time_column.map(|name| {
        let column = columns.iter().find(|c| c.name == name).expect("found above");
        let format = column.format.clone().unwrap_or_default();
        let times: Vec<f64> =
            profiles.iter().find(|p| p.name == name).expect("profiled").present().filter_map(|v| parse_datetime(v, &format).ok()).collect();
        features.time_parts = time_parts(&times);
        features.cyclical.clone_from(&features.time_parts);
        notes.push(format!(
            "time: '{name}' ({format}); the latest rows are the holdout; time parts: {}",
            features.time_parts.iter().map(|p| p.name()).collect::<Vec<_>>().join(", ")
        ));
        TimeSpec { column: Some(name), origin: None, offsets: Vec::new() }
    });
    let counts = task == Task::Regression
        && columns[target_index].kind == ColumnType::Integer
        && columns[target_index].min.is_some_and(|m| m >= 0.0);
    let mut models = BTreeMap::new();
    models.insert("linear".to_string(), ModelSpec::Linear { alpha: 0.1 });
    models.insert("decision_tree".to_string(), ModelSpec::DecisionTree { max_depth: None, min_samples_leaf: 5 });
    models.insert(
        "random_forest".to_string(),
        ModelSpec::RandomForest { trees: 100, max_depth: None, min_samples_leaf: None, max_features: None, max_samples: None },
    );
    models.insert(
        "gradient_boosting".to_string(),
        ModelSpec::GradientBoosting {
            loss: if counts { Some(RegressionLoss::Poisson) } else { None },
            learning_rate: 0.1,
            max_iter: 200,
            max_leaf_nodes: 31,
            max_depth: None,
            min_samples_leaf: 20,
            l2_regularization: 0.0,
            early_stopping: EarlyStoppingSpec::default(),
            sampling: SamplingSpec::default(),
        },
    );
    if counts {
        notes.push("the target is a non-negative count: gradient boosting uses the Poisson loss".into());
    }
    let spec = Spec {
        name: options.name.clone(),
        description: format!("drafted by `mlops init` from {file}"),
        id,
        ignore,
        target: TargetSpec { column: options.target.clone(), task, positive: None },
        time,
        columns,
        features,
        models,
        split: SplitSpec::default(),
        promotion: PromotionSpec { min_improvement: 0.01, ..PromotionSpec::default() },
        drift: DriftSpec::default(),
        training: TrainingSpec::default(),
    };
    let text = spec.to_toml();
    let spec = Spec::parse(&text, "the drafted spec").map_err(|e| reject(e.to_string()))?;
    Ok((spec, notes))
}

/// The Unix time format of a numeric column whose every value is a plausible epoch.
fn epoch_format(profile: &Profile) -> Option<&'static str> {
    let numbers = profile.numbers().filter(|n| !n.is_empty())?;
    let within = |scale: f64| numbers.iter().all(|v| EPOCH_SECONDS.contains(&(v / scale)));
    if within(1.0) {
        Some(UNIX_SECONDS)
    } else if within(1000.0) {
        Some(UNIX_MILLISECONDS)
    } else {
        None
    }
}

fn is_consecutive(profile: &Profile) -> bool {
    let Some(mut numbers) = profile.numbers() else { return false };
    numbers.sort_unstable_by(f64::total_cmp);
    numbers.windows(2).all(|w| w[1] - w[0] == 1.0)
}
