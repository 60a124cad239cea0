//! The target column as numbers: values for regression, class indices for classification.

use serde::{Deserialize, Serialize};

use crate::features::number_key;
use crate::frame::Column;
use crate::spec::Task;

/// How target values map to numbers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum TargetEncoder {
    Regression,
    /// Class labels by index; for a binary task `[negative, positive]`.
    Classes(Vec<String>),
}

/// The label of row `row` as text (numbers without a trailing `.0`).
fn label(column: &Column, row: usize) -> Option<String> {
    match column {
        Column::Numeric(values) => values[row].is_finite().then(|| number_key(values[row])),
        Column::Categorical { .. } => column.text(row).map(str::to_string),
    }
}

/// Orders labels numerically when they are all numbers, else as text.
fn label_order(a: &String, b: &String) -> std::cmp::Ordering {
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => x.total_cmp(&y),
        _ => a.cmp(b),
    }
}

/// A target column that does not fit the task.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TargetError {
    #[error("a regression target must be numeric")]
    NotNumeric,
    #[error("the target has {0} distinct value(s); classification needs at least two")]
    TooFewClasses(usize),
    #[error("target.positive '{0}' never occurs")]
    PositiveNeverOccurs(String),
    #[error("a binary target has {count} distinct values: {labels}")]
    NotBinary { count: usize, labels: String },
}

impl TargetEncoder {
    /// Learns the classes of a target column (all rows, so the holdout's classes are known).
    pub fn fit(task: Task, column: &Column, positive: Option<&str>) -> Result<TargetEncoder, TargetError> {
        if task == Task::Regression {
            return match column {
                Column::Numeric(_) => Ok(TargetEncoder::Regression),
                Column::Categorical { .. } => Err(TargetError::NotNumeric),
            };
        }
        let mut labels: Vec<String> = (0..column.len()).filter_map(|r| label(column, r)).collect();
        labels.sort_by(label_order);
        labels.dedup();
        match (task, labels.len()) {
            (_, 0 | 1) => Err(TargetError::TooFewClasses(labels.len())),
            (Task::Binary, 2) => {
                if let Some(positive) = positive {
                    let index =
                        labels.iter().position(|l| l == positive).ok_or_else(|| TargetError::PositiveNeverOccurs(positive.to_string()))?;
                    labels.swap(index, 1);
                }
                Ok(TargetEncoder::Classes(labels))
            }
            (Task::Binary, n) => Err(TargetError::NotBinary { count: n, labels: labels.join(", ") }),
            _ => Ok(TargetEncoder::Classes(labels)),
        }
    }

    /// The target of every row as a number; `None` where the value is missing.
    pub fn encode(&self, column: &Column) -> Vec<Option<f64>> {
        match (self, column) {
            (TargetEncoder::Regression, Column::Numeric(values)) => values.iter().map(|v| v.is_finite().then_some(*v)).collect(),
            (TargetEncoder::Classes(labels), _) => {
                (0..column.len()).map(|r| label(column, r).and_then(|l| labels.iter().position(|c| *c == l)).map(|i| i as f64)).collect()
            }
            (TargetEncoder::Regression, Column::Categorical { .. }) => vec![None; column.len()],
        }
    }

    /// Number of classes (1 for regression).
    pub fn n_classes(&self) -> usize {
        match self {
            TargetEncoder::Regression => 1,
            TargetEncoder::Classes(labels) => labels.len(),
        }
    }

    /// The task of a model of this target: by its number of classes.
    pub fn task(&self) -> Task {
        match self.n_classes() {
            1 => Task::Regression,
            2 => Task::Binary,
            _ => Task::Multiclass,
        }
    }

    pub fn labels(&self) -> &[String] {
        match self {
            TargetEncoder::Regression => &[],
            TargetEncoder::Classes(labels) => labels,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_labels_put_the_positive_class_second() {
        let column = Column::categorical([Some("yes"), Some("no"), Some("yes")]);
        let encoder = TargetEncoder::fit(Task::Binary, &column, None).unwrap();
        assert_eq!(encoder.labels(), ["no", "yes"]);
        assert_eq!(encoder.encode(&column), [Some(1.0), Some(0.0), Some(1.0)]);
        let flipped = TargetEncoder::fit(Task::Binary, &column, Some("no")).unwrap();
        assert_eq!(flipped.labels(), ["yes", "no"]);
    }

    #[test]
    fn numeric_classes_sort_numerically_and_bad_targets_are_named() {
        let column = Column::Numeric(vec![10.0, 2.0, 1.0, 2.0]);
        assert_eq!(TargetEncoder::fit(Task::Multiclass, &column, None).unwrap().labels(), ["1", "2", "10"]);
        let error = TargetEncoder::fit(Task::Binary, &column, None).unwrap_err().to_string();
        assert!(error.contains("3 distinct values"), "{error}");
        assert!(TargetEncoder::fit(Task::Binary, &Column::Numeric(vec![1.0, 1.0]), None).is_err());
    }
}
