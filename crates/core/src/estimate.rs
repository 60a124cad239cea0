//! Performance before labels: what a model's metric will be on rows whose labels have not
//! arrived, from an estimator fitted on its holdout and saved in its artifact.
//!
//! Classifiers: confidence-based performance estimation (CBPE, as NannyML describes it): each
//! class's probability is calibrated on the holdout (isotonic regression, pool adjacent
//! violators), and the expected metric is computed as if each row's truth were drawn from its
//! calibrated probabilities. Regressions: direct loss estimation: a small boosted model of the
//! holdout's per-row loss (squared error for RMSE and R², absolute error for MAE) from the
//! features and the prediction.

use ndarray::{Array2, Axis, concatenate};
use serde::{Deserialize, Serialize};

use crate::design::Design;
use crate::features::{Encoding, FeatureError, FittedFeatures};
use crate::frame::Frame;
use crate::models::{self, Model, Problem};
use crate::spec::{Metric, ModelSpec, Task};

/// What an artifact keeps to estimate its metric on unlabelled rows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Estimator {
    /// A model of the per-row loss, read from the ordinal features and the prediction.
    Loss { absolute: bool, model: Model },
    /// Per class, the calibration of the model's probability.
    Calibrated { classes: Vec<Isotonic> },
}

/// A non-decreasing step function fitted by pool adjacent violators: `values[i]` from
/// `thresholds[i]` up to the next threshold.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Isotonic {
    thresholds: Vec<f64>,
    values: Vec<f64>,
}

impl Isotonic {
    /// The isotonic regression of `y` on `x`.
    pub fn fit(x: &[f64], y: &[f64]) -> Isotonic {
        let mut order: Vec<usize> = (0..x.len()).collect();
        order.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
        // Blocks of (first x, sum of y, count), merged while a block's mean is below the last's.
        let mut blocks: Vec<(f64, f64, f64)> = Vec::new();
        for i in order {
            blocks.push((x[i], y[i], 1.0));
            while blocks.len() > 1 {
                let (last, before) = (blocks[blocks.len() - 1], blocks[blocks.len() - 2]);
                if before.1 / before.2 < last.1 / last.2 {
                    break;
                }
                blocks.pop();
                let merged = blocks.last_mut().expect("two blocks");
                merged.1 += last.1;
                merged.2 += last.2;
            }
        }
        Isotonic { thresholds: blocks.iter().map(|b| b.0).collect(), values: blocks.iter().map(|b| b.1 / b.2).collect() }
    }

    /// The calibrated value of `x`.
    pub fn apply(&self, x: f64) -> f64 {
        let at = self.thresholds.partition_point(|&t| t <= x);
        self.values.get(at.saturating_sub(1)).copied().unwrap_or(f64::NAN)
    }
}

/// The boosted model of per-row loss: small, as it learns from the holdout alone.
fn loss_model_spec() -> ModelSpec {
    serde_json::from_value(serde_json::json!({
        "kind": "gradient_boosting", "max_iter": 60, "max_leaf_nodes": 8, "min_samples_leaf": 20, "learning_rate": 0.1
    }))
    .expect("a valid model spec")
}

/// The ordinal features of `frame` with the model's predictions as the last column.
fn loss_inputs(features: &FittedFeatures, frame: &Frame, predictions: &Array2<f64>) -> Result<Array2<f64>, FeatureError> {
    let x = features.transform(frame, Encoding::Ordinal)?;
    Ok(concatenate(Axis(1), &[x.view(), predictions.column(0).insert_axis(Axis(1))]).expect("one row per prediction"))
}

impl Estimator {
    /// The estimator of `metric` for a model whose holdout rows `holdout` got `predictions`
    /// (one row each: the value, or the class probabilities) against the encoded targets `y`;
    /// `None` for a metric it cannot estimate (R² needs the labels' spread).
    pub fn fit(
        task: Task,
        metric: Metric,
        features: &FittedFeatures,
        holdout: &Frame,
        predictions: &Array2<f64>,
        y: &[f64],
        seed: u64,
    ) -> Result<Option<Estimator>, String> {
        match task {
            Task::Regression => {
                let absolute = match metric {
                    Metric::Mae => true,
                    Metric::Rmse => false,
                    _ => return Ok(None),
                };
                let x = loss_inputs(features, holdout, predictions).map_err(|e| e.to_string())?;
                let losses: Vec<f64> =
                    predictions.column(0).iter().zip(y).map(|(p, y)| if absolute { (p - y).abs() } else { (p - y).powi(2) }).collect();
                let problem = Problem { task: Task::Regression, n_classes: 1, seed, max_seconds: None };
                let model = models::fit(&loss_model_spec(), problem, &Design::Dense(x), &losses).map_err(|e| e.to_string())?;
                Ok(Some(Estimator::Loss { absolute, model }))
            }
            _ => {
                let classes = (0..predictions.ncols())
                    .map(|k| {
                        let truth: Vec<f64> = y.iter().map(|&y| f64::from(u8::from(y as usize == k))).collect();
                        Isotonic::fit(&predictions.column(k).to_vec(), &truth)
                    })
                    .collect();
                Ok(Some(Estimator::Calibrated { classes }))
            }
        }
    }

    /// Each row's estimate: its expected loss (regression), or its calibrated class
    /// probabilities (classifiers), beside the model's `outputs` for `frame`'s rows (a row each:
    /// the value, or the class probabilities).
    pub fn per_row(&self, features: &FittedFeatures, frame: &Frame, outputs: &[Vec<f64>]) -> Result<Vec<Vec<f64>>, FeatureError> {
        let width = outputs.first().map_or(1, Vec::len);
        let predictions = Array2::from_shape_fn((outputs.len(), width), |(r, c)| outputs[r].get(c).copied().unwrap_or(f64::NAN));
        match self {
            Estimator::Loss { model, .. } => {
                let x = loss_inputs(features, frame, &predictions)?;
                Ok(model.predict(&x).column(0).iter().map(|&loss| vec![loss.max(0.0)]).collect())
            }
            Estimator::Calibrated { classes } => Ok(predictions
                .rows()
                .into_iter()
                .map(|p| {
                    let calibrated: Vec<f64> = classes.iter().zip(p).map(|(c, &p)| c.apply(p).clamp(0.0, 1.0)).collect();
                    let total: f64 = calibrated.iter().sum();
                    if total > 0.0 { calibrated.iter().map(|q| q / total).collect() } else { calibrated }
                })
                .collect()),
        }
    }
}

/// The expected value of `metric` over rows whose model outputs are `predictions` (a row each)
/// and whose estimates are `estimates` ([`Estimator::per_row`] of an estimator fitted for
/// `metric`); `None` when it cannot be
/// estimated (no rows, R², AUC or F1 of more than two classes).
pub fn expected_metric(metric: Metric, predictions: &[Vec<f64>], estimates: &[Vec<f64>]) -> Option<f64> {
    let n = estimates.len();
    if n == 0 || n != predictions.len() {
        return None;
    }
    let mean = |f: &dyn Fn(&[f64], &[f64]) -> f64| predictions.iter().zip(estimates).map(|(p, q)| f(p, q)).sum::<f64>() / n as f64;
    let best = |p: &[f64]| (0..p.len()).fold(0, |best, k| if p[k] > p[best] { k } else { best });
    match metric {
        // A regression's estimates are the losses of its estimator's metric.
        Metric::Rmse => Some(mean(&|_, q| q[0]).sqrt()),
        Metric::Mae => Some(mean(&|_, q| q[0])),
        Metric::Accuracy => Some(mean(&|p, q| q.get(best(p)).copied().unwrap_or(0.0))),
        Metric::LogLoss => Some(mean(&|p, q| q.iter().zip(p).map(|(q, p)| -q * p.clamp(1e-15, 1.0).ln()).sum())),
        Metric::F1 if predictions[0].len() == 2 => {
            let (mut tp, mut fp, mut fn_) = (0.0, 0.0, 0.0);
            for (p, q) in predictions.iter().zip(estimates) {
                if best(p) == 1 {
                    tp += q[1];
                    fp += q[0];
                } else {
                    fn_ += q[1];
                }
            }
            (tp > 0.0).then(|| 2.0 * tp / (2.0 * tp + fp + fn_))
        }
        Metric::Auc if predictions[0].len() == 2 => {
            // The chance that a positive outscores a negative, each row positive with its
            // calibrated probability: sorted by score, each row meets the weight of negatives
            // below it (ties count half).
            let mut rows: Vec<(f64, f64)> = predictions.iter().zip(estimates).map(|(p, q)| (p[1], q[1])).collect();
            rows.sort_by(|a, b| a.0.total_cmp(&b.0));
            let (mut negatives_below, mut pairs, mut i) = (0.0, 0.0, 0);
            while i < rows.len() {
                let j = rows[i..].iter().position(|r| r.0 != rows[i].0).map_or(rows.len(), |k| i + k);
                let tied_negatives: f64 = rows[i..j].iter().map(|r| 1.0 - r.1).sum();
                pairs += rows[i..j].iter().map(|r| r.1 * (negatives_below + 0.5 * (tied_negatives - (1.0 - r.1)))).sum::<f64>();
                negatives_below += tied_negatives;
                i = j;
            }
            let positives: f64 = rows.iter().map(|r| r.1).sum();
            let total = positives * negatives_below - rows.iter().map(|r| r.1 * (1.0 - r.1)).sum::<f64>();
            (total > 0.0).then(|| pairs / total)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests;
