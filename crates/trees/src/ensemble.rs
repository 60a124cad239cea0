//! The fitted model of every learner in this crate: a sum or an average of trees.

use linfa::traits::PredictInplace;
use ndarray::{Array2, ArrayBase, Data, Ix2, s};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::tree::Tree;

/// Rows predicted per parallel task.
const ROWS_PER_TASK: usize = 512;

/// Rows that go down each tree together: their features and sums stay in the first-level cache
/// while the tree's nodes are reused for every one of them.
const BLOCK_ROWS: usize = 64;

/// How the raw sum of tree outputs becomes a prediction.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum Link {
    /// The raw value (squared-error regression, forest regression).
    Identity,
    /// `exp(raw)`: Poisson regression with a log link.
    Exp,
    /// Binary classification from one log-odds output: predicts `[1 - p, p]`.
    Sigmoid,
    /// Multiclass classification from one score per class.
    Softmax,
    /// Class proportions averaged over the trees of a forest.
    Proportions,
}

/// A fitted ensemble of trees.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TreeEnsemble {
    pub(crate) link: Link,
    /// Raw outputs per row (1, or one per class).
    pub(crate) n_outputs: usize,
    pub(crate) baseline: Vec<f64>,
    pub(crate) trees: Vec<Tree>,
    /// Forests average their trees; boosting sums them.
    pub(crate) average: bool,
    pub(crate) n_features: usize,
    pub(crate) importances: Vec<f64>,
    /// Whether fitting stopped adding trees because its time limit ran out.
    #[serde(default)]
    pub(crate) time_limited: bool,
}

impl TreeEnsemble {
    /// Number of prediction columns: 1 for regression, one probability per class otherwise.
    pub fn n_predictions(&self) -> usize {
        match self.link {
            Link::Identity | Link::Exp => 1,
            Link::Sigmoid => 2,
            Link::Softmax | Link::Proportions => self.n_outputs,
        }
    }

    /// Number of input features.
    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// Number of trees.
    pub fn n_trees(&self) -> usize {
        self.trees.len()
    }

    /// Whether fitting stopped adding trees because its time limit (`max_seconds`) ran out.
    pub fn time_limited(&self) -> bool {
        self.time_limited
    }

    /// The trees, in the order they were grown.
    pub fn trees(&self) -> &[Tree] {
        &self.trees
    }

    /// Total split gain per feature, normalised to sum to one.
    pub fn importances(&self) -> &[f64] {
        &self.importances
    }

    /// How the raw outputs become predictions.
    pub fn link(&self) -> Link {
        self.link
    }

    /// Number of raw outputs: the values the link turns into predictions (1, or one per class).
    pub fn n_outputs(&self) -> usize {
        self.n_outputs
    }

    /// Exact TreeSHAP contributions of each feature to `row`'s raw outputs (before the link:
    /// log-odds for a boosted classifier, the log for Poisson): [`Self::n_outputs`] blocks of
    /// [`Self::n_features`]` + 1` values, the last of each block the expected raw output over the
    /// training rows. Each block sums to that raw output for `row`.
    pub fn contributions(&self, row: &[f64]) -> Vec<f64> {
        assert_eq!(row.len(), self.n_features, "the model was fitted on {} features", self.n_features);
        let stride = self.n_features + 1;
        let scale = if self.average { 1.0 / self.trees.len().max(1) as f64 } else { 1.0 };
        // Trees in parallel (a deep forest's row costs milliseconds per tree), summed in tree
        // order so that the same row always gets the same values.
        let per_tree: Vec<Vec<f64>> = self
            .trees
            .par_iter()
            .map(|tree| {
                let mut phi = vec![0.0; self.n_outputs * stride];
                tree.add_contributions(row, &mut phi, scale);
                phi
            })
            .collect();
        let mut phi = vec![0.0; self.n_outputs * stride];
        for part in per_tree {
            phi.iter_mut().zip(part).for_each(|(total, value)| *total += value);
        }
        for (output, baseline) in self.baseline.iter().enumerate() {
            phi[output * stride + self.n_features] += baseline;
        }
        phi
    }

    /// Predicts every row of `x`: one row of [`Self::n_predictions`] columns each.
    pub fn predict<S: Data<Elem = f64>>(&self, x: &ArrayBase<S, Ix2>) -> Array2<f64> {
        let mut out = Array2::zeros((x.nrows(), self.n_predictions()));
        self.predict_into(x, &mut out);
        out
    }

    fn predict_into<S: Data<Elem = f64>>(&self, x: &ArrayBase<S, Ix2>, out: &mut Array2<f64>) {
        let (x, width) = (x.view(), self.n_predictions());
        let predict_chunk = |(chunk, out): (usize, &mut [f64])| {
            let (mut rows, mut raw) = (Vec::new(), Vec::new());
            for (block, out) in out.chunks_mut(BLOCK_ROWS * width).enumerate() {
                let first = chunk * ROWS_PER_TASK + block * BLOCK_ROWS;
                rows.clear();
                for row in x.slice(s![first..first + out.len() / width, ..]).rows() {
                    rows.extend(row.iter());
                }
                self.predict_block(&rows, out, &mut raw);
            }
        };
        let out = out.as_slice_mut().expect("a fresh array is contiguous");
        if x.nrows() > ROWS_PER_TASK {
            out.par_chunks_mut(ROWS_PER_TASK * width).enumerate().for_each(predict_chunk);
        } else {
            out.chunks_mut(ROWS_PER_TASK * width).enumerate().for_each(predict_chunk);
        }
    }

    /// Predicts `rows` (contiguous, [`Self::n_features`] values each) into `out`
    /// ([`Self::n_predictions`] values each), tree by tree; `raw` is scratch space.
    fn predict_block(&self, rows: &[f64], out: &mut [f64], raw: &mut Vec<f64>) {
        let width = self.n_predictions();
        raw.clear();
        for _ in 0..out.len() / width {
            raw.extend_from_slice(&self.baseline);
        }
        for tree in &self.trees {
            tree.accumulate_rows(rows, self.n_features, raw, self.n_outputs);
        }
        let n_trees = self.trees.len().max(1) as f64;
        for (raw, out) in raw.chunks_exact_mut(self.n_outputs).zip(out.chunks_exact_mut(width)) {
            if self.average {
                raw.iter_mut().for_each(|v| *v /= n_trees);
            }
            match self.link {
                Link::Identity | Link::Proportions => out.copy_from_slice(raw),
                Link::Exp => out[0] = raw[0].min(700.0).exp(),
                Link::Sigmoid => {
                    let p = sigmoid(raw[0]);
                    out[0] = 1.0 - p;
                    out[1] = p;
                }
                Link::Softmax => softmax_into(raw, out),
            }
        }
    }
}

pub(crate) fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

pub(crate) fn softmax_into(raw: &[f64], out: &mut [f64]) {
    let max = raw.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut total = 0.0;
    for (o, r) in out.iter_mut().zip(raw) {
        *o = (r - max).exp();
        total += *o;
    }
    out.iter_mut().for_each(|o| *o /= total);
}

impl<S: Data<Elem = f64>> PredictInplace<ArrayBase<S, Ix2>, Array2<f64>> for TreeEnsemble {
    fn predict_inplace(&self, x: &ArrayBase<S, Ix2>, y: &mut Array2<f64>) {
        assert_eq!(x.ncols(), self.n_features, "the model was fitted on {} features", self.n_features);
        assert_eq!(y.dim(), (x.nrows(), self.n_predictions()), "wrong shape of the prediction array");
        if y.is_standard_layout() {
            self.predict_into(x, y);
        } else {
            y.assign(&self.predict(x));
        }
    }

    fn default_target(&self, x: &ArrayBase<S, Ix2>) -> Array2<f64> {
        Array2::zeros((x.nrows(), self.n_predictions()))
    }
}

/// Normalised per-feature sums of split gains, from each tree's sums.
pub(crate) fn normalised_importances<'a>(n_features: usize, per_tree: impl Iterator<Item = &'a [f64]>) -> Vec<f64> {
    let mut importances = vec![0.0; n_features];
    for gains in per_tree {
        importances.iter_mut().zip(gains).for_each(|(total, gain)| *total += gain);
    }
    let total: f64 = importances.iter().sum();
    if total > 0.0 {
        importances.iter_mut().for_each(|v| *v /= total);
    }
    importances
}
