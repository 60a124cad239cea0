//! What a drift check observed of current data, as a summary that merges: each partition of the
//! inference log (or a batch) is summarised apart, and the summaries are added up by one reducer
//! before anything is compared with the reference.

use std::collections::BTreeMap;

use ndarray::Array2;
use serde::{Deserialize, Serialize};

use super::{Distribution, QuantileSketch, Reference};
use crate::error::CoreError;
use crate::frame::{Column, Frame};
use crate::metrics::evaluate;
use crate::spec::Task;

/// Current rows summarised for a drift check: mergeable across partitions of the data.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Observed {
    /// Rows whose features pass the schema.
    pub rows: usize,
    /// Rows whose features break it: counted, not compared.
    pub skipped: usize,
    /// One distribution per reference feature, in the reference's order.
    pub features: Vec<Distribution>,
    pub predictions: Distribution,
    pub labelled: Labelled,
    /// Explanations of some of the rows.
    #[serde(default)]
    pub attribution: Attribution,
    /// The rows' model outputs and their estimates, for the metric estimated before labels.
    #[serde(default)]
    pub estimated: Estimated,
    /// When the first and the last of the rows were logged (none for a batch file).
    #[serde(default)]
    pub window: Option<Window>,
}

/// The time span of the predictions a check read.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Window {
    pub first: jiff::Timestamp,
    pub last: jiff::Timestamp,
}

impl Window {
    /// The span of `times`; `None` when there are none.
    pub fn of(times: impl IntoIterator<Item = jiff::Timestamp>) -> Option<Window> {
        times.into_iter().fold(None, |window, at| Some(Window::merged(window, Window { first: at, last: at })))
    }

    /// The span of both (`window` may be none).
    pub fn merged(window: Option<Window>, other: Window) -> Window {
        window.map_or(other, |w| Window { first: w.first.min(other.first), last: w.last.max(other.last) })
    }
}

/// Rows' model outputs (the value, or the class probabilities) and the artifact estimator's
/// estimates of them ([`crate::estimate::Estimator::per_row`]).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Estimated {
    pub outputs: Vec<Vec<f64>>,
    pub estimates: Vec<Vec<f64>>,
}

/// Predictions with a delayed label: the encoded labels and the predictions' rows, `width`
/// numbers each (one for a regression, the class probabilities for a classifier).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Labelled {
    pub width: usize,
    pub y: Vec<f64>,
    pub predicted: Vec<f64>,
}

impl Labelled {
    /// No labelled predictions, rows of `width` numbers.
    pub fn new(width: usize) -> Labelled {
        Labelled { width, y: Vec::new(), predicted: Vec::new() }
    }

    /// Adds one labelled prediction; a row of another width is not this model's and is left out.
    pub fn push(&mut self, y: f64, predicted: &[f64]) {
        if predicted.len() == self.width {
            self.y.push(y);
            self.predicted.extend_from_slice(predicted);
        }
    }

    /// The value of `metric` on the labelled predictions, and their number; `None` without any.
    pub fn score(&self, task: Task, metric: crate::spec::Metric) -> Option<(f64, usize)> {
        if self.y.is_empty() {
            return None;
        }
        let predictions = Array2::from_shape_vec((self.y.len(), self.width), self.predicted.clone()).ok()?;
        Some((evaluate(task, &self.y, &predictions).get(&metric).copied()?, self.y.len()))
    }
}

impl Observed {
    /// Nothing observed yet: an empty distribution of each reference feature's kind.
    pub fn empty(reference: &Reference, width: usize) -> Observed {
        Observed {
            rows: 0,
            skipped: 0,
            features: reference.features.iter().map(Distribution::empty_like).collect(),
            predictions: Distribution::empty_like(&reference.predictions),
            labelled: Labelled::new(width),
            attribution: Attribution::default(),
            estimated: Estimated::default(),
            window: None,
        }
    }

    /// The summary of `frame`'s rows (with `skipped` more that broke the schema) and their
    /// predictions, for the features of `reference`.
    pub fn of_frame(reference: &Reference, frame: &Frame, skipped: usize, predictions: &Column, labelled: Labelled) -> Observed {
        let features = reference
            .features
            .iter()
            .map(|feature| match frame.column(feature.column()) {
                Some(column) => Distribution::observed(feature.column(), column),
                None => Distribution::empty_like(feature),
            })
            .collect();
        Observed {
            rows: frame.n_rows(),
            skipped,
            features,
            predictions: Distribution::observed("prediction", predictions),
            labelled,
            attribution: Attribution::default(),
            estimated: Estimated::default(),
            window: None,
        }
    }

    /// Rows summarised, those that broke the schema included.
    pub fn lines(&self) -> usize {
        self.rows + self.skipped
    }

    /// Adds `other`'s rows to this summary; summaries of different models do not add up.
    pub fn merge(&mut self, other: Observed) -> Result<(), CoreError> {
        if self.features.len() != other.features.len() || self.labelled.width != other.labelled.width {
            return Err(CoreError::BadInput(format!(
                "drift summaries of different models: {} features of width {} against {} of width {}",
                self.features.len(),
                self.labelled.width,
                other.features.len(),
                other.labelled.width
            )));
        }
        for (mine, theirs) in self.features.iter_mut().zip(other.features) {
            mine.merge(theirs)?;
        }
        self.predictions.merge(other.predictions)?;
        self.rows += other.rows;
        self.skipped += other.skipped;
        self.labelled.y.extend(other.labelled.y);
        self.labelled.predicted.extend(other.labelled.predicted);
        self.attribution.merge(&other.attribution);
        self.estimated.outputs.extend(other.estimated.outputs);
        self.estimated.estimates.extend(other.estimated.estimates);
        if let Some(window) = other.window {
            self.window = Some(Window::merged(self.window, window));
        }
        Ok(())
    }
}

impl Distribution {
    /// An empty current distribution of the kind `reference` compares with.
    pub fn empty_like(reference: &Distribution) -> Distribution {
        let column = reference.column().to_string();
        match reference {
            Distribution::Categorical { .. } => Distribution::Categorical { column, counts: Vec::new(), missing: 0 },
            Distribution::Numeric { .. } | Distribution::Sketched { .. } => {
                Distribution::Sketched { column, sketch: QuantileSketch::default(), missing: 0 }
            }
        }
    }

    /// Adds `other`'s values: sketches merge, counts per level add up.
    pub fn merge(&mut self, other: Distribution) -> Result<(), CoreError> {
        match (self, other) {
            (Distribution::Sketched { sketch, missing, .. }, Distribution::Sketched { sketch: theirs, missing: more, .. }) => {
                sketch.merge(&theirs);
                *missing += more;
            }
            (Distribution::Categorical { counts, missing, .. }, Distribution::Categorical { counts: theirs, missing: more, .. }) => {
                let mut all: BTreeMap<String, u64> = std::mem::take(counts).into_iter().collect();
                for (level, count) in theirs {
                    *all.entry(level).or_default() += count;
                }
                *counts = all.into_iter().collect();
                *missing += more;
            }
            (mine, theirs) => {
                return Err(CoreError::BadInput(format!(
                    "'{}' cannot merge with '{}': a sketch of numbers merges only with a sketch, counts only with counts",
                    mine.column(),
                    theirs.column()
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Metric;

    fn reference() -> Reference {
        let frame = frame(&[1.0, 2.0, 3.0], &["a", "b", "a"]);
        Reference {
            features: vec![Distribution::of("x", frame.column("x").unwrap(), 0), Distribution::of("c", frame.column("c").unwrap(), 0)],
            predictions: Distribution::numeric("prediction", &[1.0, 2.0], 0),
            metric: Metric::Mae,
            baseline: 1.0,
        }
    }

    fn frame(x: &[f64], c: &[&str]) -> Frame {
        Frame::new(vec![("x".to_string(), Column::Numeric(x.to_vec())), ("c".to_string(), Column::categorical(c.iter().map(|s| Some(*s))))])
            .unwrap()
    }

    #[test]
    fn summaries_of_parts_merge_to_the_summary_of_the_whole() {
        let reference = reference();
        let summary = |x: &[f64], c: &[&str], y: &[f64]| {
            let mut labelled = Labelled::new(1);
            y.iter().for_each(|y| labelled.push(*y, &[y * 1.5]));
            Observed::of_frame(&reference, &frame(x, c), 1, &Column::Numeric(x.to_vec()), labelled)
        };
        let whole = summary(&[1.0, f64::NAN, 5.0, 7.0], &["a", "b", "z", "a"], &[1.0, 2.0, 3.0, 4.0]);
        let mut parts = Observed::empty(&reference, 1);
        parts.merge(summary(&[1.0, f64::NAN], &["a", "b"], &[1.0, 2.0])).unwrap();
        parts.merge(summary(&[5.0, 7.0], &["z", "a"], &[3.0, 4.0])).unwrap();
        assert_eq!((parts.rows, parts.skipped, parts.lines()), (4, 2, 6));
        assert_eq!(parts.features, whole.features);
        assert_eq!(parts.labelled.score(Task::Regression, Metric::Mae), whole.labelled.score(Task::Regression, Metric::Mae));
        assert_eq!(parts.labelled.score(Task::Regression, Metric::Mae).map(|(_, n)| n), Some(4));
    }

    #[test]
    fn summaries_that_do_not_fit_are_refused() {
        let reference = reference();
        let mut numbers = Distribution::empty_like(&reference.features[0]);
        let error = numbers.merge(Distribution::empty_like(&reference.features[1])).unwrap_err();
        assert!(error.to_string().contains("'x' cannot merge with 'c'"), "{error}");
        let mut observed = Observed::empty(&reference, 1);
        assert!(observed.merge(Observed::empty(&reference, 3)).is_err());
        let mut labelled = Labelled::new(2);
        labelled.push(1.0, &[0.5]);
        assert!(labelled.y.is_empty(), "a row of another width is left out");
    }
}

/// How much each input moves a model's outputs over some rows: the sums of its absolute
/// contributions (over a classifier's outputs too; `mlops_core::attribution`), and the rows
/// summed. Their means are the model's global importance; sums over parts of the rows merge into
/// the sums over the whole.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Attribution {
    pub rows: usize,
    /// Per input, in the order of the features.
    pub sums: Vec<(String, f64)>,
}

impl Attribution {
    /// Adds the sums of other rows of the same model.
    pub fn merge(&mut self, other: &Attribution) {
        if self.rows == 0 {
            self.clone_from(other);
        } else if other.rows > 0 {
            self.rows += other.rows;
            for (sum, (_, more)) in self.sums.iter_mut().zip(&other.sums) {
                sum.1 += more;
            }
        }
    }

    /// Mean absolute contribution per input, largest first.
    pub fn means(&self) -> Vec<(String, f64)> {
        let mut means: Vec<(String, f64)> = self.sums.iter().map(|(name, sum)| (name.clone(), sum / self.rows.max(1) as f64)).collect();
        means.sort_by(|a, b| b.1.total_cmp(&a.1));
        means
    }
}
