//! Delayed labels: `mlops feedback` files, checked and stored under `feedback/DATASET/`, and
//! read back by the drift check to score logged predictions (concept drift).

use std::borrow::Cow;
use std::collections::HashMap;

use mlops_core::canary::Role;
use mlops_core::{Keys, Spec, Store};
use mlops_core::{Predicted, TargetEncoder, Task};
use serde::{Deserialize, Serialize};

use crate::PipelineError;

/// Column of a feedback file that keys labels to predictions when the spec has no id.
pub const PREDICTION_ID: &str = "prediction_id";

/// The key of a log line, for matching delayed labels.
#[derive(Deserialize)]
struct LoggedId<'a> {
    #[serde(borrow)]
    prediction_id: Cow<'a, str>,
    #[serde(default)]
    role: Role,
}

/// The key column of feedback files.
pub fn feedback_key(spec: &Spec) -> &str {
    spec.id.as_deref().unwrap_or(PREDICTION_ID)
}

/// A delayed label and the logged prediction it scores, as the metrics take them: the encoded
/// label (a number, or a class's index in `target`'s labels) and the prediction's row (the
/// number, or the class probabilities); `None` when either cannot be read.
pub(crate) fn labelled_row(
    target: &TargetEncoder,
    label: &str,
    prediction: &Predicted,
    probabilities: Option<&[f64]>,
) -> Option<(f64, Vec<f64>)> {
    match target.task() {
        Task::Regression => Some((label.parse::<f64>().ok()?, vec![prediction.number()?])),
        _ => Some((target.labels().iter().position(|l| l == label)? as f64, probabilities?.to_vec())),
    }
}

/// Delayed labels by prediction id (later files win).
pub(crate) fn read_feedback(store: &dyn Store, keys: &Keys, spec: &Spec) -> Result<HashMap<String, String>, PipelineError> {
    let mut labels = HashMap::new();
    for key in store.list(&keys.feedback_prefix())? {
        let Some(bytes) = store.get(&key)? else { continue };
        for (id, label) in parse_feedback(&bytes, spec).map_err(|e| PipelineError::corrupt(&key, e))? {
            labels.insert(id, label);
        }
    }
    Ok(labels)
}

/// A feedback file that cannot be used, naming the row where there is one.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FeedbackError {
    #[error("not a readable CSV file: {0}")]
    Unreadable(String),
    #[error("the header has no '{column}' column (found: {found})")]
    MissingColumn { column: String, found: String },
    #[error("row {row}: {reason}")]
    BadRecord { row: usize, reason: String },
    #[error("row {row}: no '{column}'")]
    EmptyField { row: usize, column: String },
    #[error("row {row}: '{column}' is '{label}', not a number")]
    NotANumber { row: usize, column: String, label: String },
    #[error("no labelled rows")]
    Empty,
}

/// `(key, label)` pairs of a feedback CSV; the error names the row.
fn parse_feedback(bytes: &[u8], spec: &Spec) -> Result<Vec<(String, String)>, FeedbackError> {
    let key_column = feedback_key(spec);
    let target = &spec.target.column;
    let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(bytes);
    let header: Vec<String> =
        reader.headers().map_err(|e| FeedbackError::Unreadable(e.to_string()))?.iter().map(|h| h.trim().to_string()).collect();
    let position = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| FeedbackError::MissingColumn { column: name.to_string(), found: header.join(", ") })
    };
    let (key_at, target_at) = (position(key_column)?, position(target)?);
    let mut pairs = Vec::new();
    for (index, record) in reader.records().enumerate() {
        let row = index + 1;
        let record = record.map_err(|e| FeedbackError::BadRecord { row, reason: e.to_string() })?;
        let field = |at: usize, column: &str| {
            record
                .get(at)
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| FeedbackError::EmptyField { row, column: column.to_string() })
        };
        let (key, label) = (field(key_at, key_column)?, field(target_at, target)?);
        if spec.target.task == Task::Regression && !label.parse::<f64>().is_ok_and(f64::is_finite) {
            return Err(FeedbackError::NotANumber { row, column: target.clone(), label: label.to_string() });
        }
        pairs.push((key.to_string(), label.to_string()));
    }
    if pairs.is_empty() {
        return Err(FeedbackError::Empty);
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
    let pairs = parse_feedback(bytes, spec).map_err(|e| PipelineError::bad_input(format!("{name}: {e}")))?;
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
            .filter(|l| l.role.answered() && ids.contains(l.prediction_id.as_ref()))
            .count();
    }
    Ok(FeedbackSummary { key, rows: pairs.len(), matched })
}
