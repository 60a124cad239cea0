//! Holdout metrics.

use std::collections::BTreeMap;

use ndarray::Array2;

use crate::spec::{Metric, Task};

/// Metric values by name.
pub type Metrics = BTreeMap<Metric, f64>;

/// Probabilities are clipped to `[EPS, 1 - EPS]` for the log-loss, as scikit-learn does.
const EPS: f64 = 1e-15;

/// Every metric of a task: `y` holds targets (class indices for classification), `predicted`
/// the model's output (the value, or one probability per class).
pub fn evaluate(task: Task, y: &[f64], predicted: &Array2<f64>) -> Metrics {
    match task {
        Task::Regression => regression(y, &predicted.column(0).to_vec()),
        Task::Binary | Task::Multiclass => classification(y, predicted),
    }
}

fn regression(y: &[f64], p: &[f64]) -> Metrics {
    let n = y.len() as f64;
    let mean = y.iter().sum::<f64>() / n;
    let sse: f64 = y.iter().zip(p).map(|(t, p)| (t - p).powi(2)).sum();
    let sst: f64 = y.iter().map(|t| (t - mean).powi(2)).sum();
    let mae = y.iter().zip(p).map(|(t, p)| (t - p).abs()).sum::<f64>() / n;
    Metrics::from([(Metric::Rmse, (sse / n).sqrt()), (Metric::Mae, mae), (Metric::R2, if sst > 0.0 { 1.0 - sse / sst } else { 0.0 })])
}

fn classification(y: &[f64], probabilities: &Array2<f64>) -> Metrics {
    let n_classes = probabilities.ncols();
    let labels: Vec<usize> = y.iter().map(|&c| c as usize).collect();
    let predicted: Vec<usize> =
        probabilities.rows().into_iter().map(|row| (0..n_classes).fold(0, |best, c| if row[c] > row[best] { c } else { best })).collect();
    let accuracy = labels.iter().zip(&predicted).filter(|(a, b)| a == b).count() as f64 / labels.len() as f64;
    let log_loss =
        labels.iter().zip(probabilities.rows()).map(|(&c, row)| -(row[c].clamp(EPS, 1.0 - EPS) / row.sum().max(EPS)).ln()).sum::<f64>()
            / labels.len() as f64;
    let (auc, f1) = if n_classes == 2 {
        (roc_auc(&labels, &probabilities.column(1).to_vec(), 1), f1_of(&labels, &predicted, 1))
    } else {
        // Macro averages over the classes present in the holdout (one-vs-rest AUC).
        let present: Vec<usize> = (0..n_classes).filter(|c| labels.contains(c)).collect();
        let auc = present.iter().map(|&c| roc_auc(&labels, &probabilities.column(c).to_vec(), c)).sum::<f64>() / present.len() as f64;
        let f1 = present.iter().map(|&c| f1_of(&labels, &predicted, c)).sum::<f64>() / present.len() as f64;
        (auc, f1)
    };
    Metrics::from([(Metric::Auc, auc), (Metric::Accuracy, accuracy), (Metric::F1, f1), (Metric::LogLoss, log_loss)])
}

/// Area under the ROC curve of `scores` for `positive` against the rest (ties count half);
/// 0.5 when only one side is present.
fn roc_auc(labels: &[usize], scores: &[f64], positive: usize) -> f64 {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let average_rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += order[i..=j].iter().filter(|&&k| labels[k] == positive).count() as f64 * average_rank;
        i = j + 1;
    }
    let n_positive = labels.iter().filter(|&&l| l == positive).count() as f64;
    let n_negative = labels.len() as f64 - n_positive;
    if n_positive == 0.0 || n_negative == 0.0 {
        return 0.5;
    }
    (rank_sum - n_positive * (n_positive + 1.0) / 2.0) / (n_positive * n_negative)
}

fn f1_of(labels: &[usize], predicted: &[usize], class: usize) -> f64 {
    let tp = labels.iter().zip(predicted).filter(|(l, p)| **l == class && **p == class).count() as f64;
    let fp = labels.iter().zip(predicted).filter(|(l, p)| **l != class && **p == class).count() as f64;
    let fn_ = labels.iter().zip(predicted).filter(|(l, p)| **l == class && **p != class).count() as f64;
    if tp == 0.0 { 0.0 } else { 2.0 * tp / (2.0 * tp + fp + fn_) }
}

/// Whether `candidate` beats `champion` on `metric` by `min_improvement` (relative unless
/// `absolute`).
pub fn improves(metric: Metric, candidate: f64, champion: f64, min_improvement: f64, absolute: bool) -> bool {
    let gain = if metric.higher_is_better() { candidate - champion } else { champion - candidate };
    let needed = if absolute { min_improvement } else { min_improvement * champion.abs() };
    gain > 0.0 && gain >= needed
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn regression_metrics_match_hand_computation() {
        let m = evaluate(Task::Regression, &[1.0, 2.0, 3.0, 4.0], &array![[1.0], [2.0], [3.0], [6.0]]);
        assert_eq!(m[&Metric::Rmse], 1.0);
        assert_eq!(m[&Metric::Mae], 0.5);
        assert!((m[&Metric::R2] - (1.0 - 4.0 / 5.0)).abs() < 1e-12);
    }

    #[test]
    fn binary_metrics_match_scikit_learn() {
        // As scikit-learn computes them: roc_auc 0.75, accuracy 0.75, f1 2/3.
        let y = [0.0, 0.0, 1.0, 1.0];
        let p = array![[0.9, 0.1], [0.6, 0.4], [0.65, 0.35], [0.2, 0.8]];
        let m = evaluate(Task::Binary, &y, &p);
        assert_eq!(m[&Metric::Auc], 0.75);
        assert_eq!(m[&Metric::Accuracy], 0.75);
        assert!((m[&Metric::F1] - 2.0 / 3.0).abs() < 1e-12);
        let expected = -(0.9f64.ln() + 0.6f64.ln() + 0.35f64.ln() + 0.8f64.ln()) / 4.0;
        assert!((m[&Metric::LogLoss] - expected).abs() < 1e-12);
    }

    #[test]
    fn multiclass_auc_is_the_one_vs_rest_macro_average() {
        let y = [0.0, 1.0, 2.0, 2.0];
        let p = array![[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.2, 0.7], [0.3, 0.4, 0.05]];
        let m = evaluate(Task::Multiclass, &y, &p);
        assert_eq!(m[&Metric::Accuracy], 0.75);
        assert!((m[&Metric::Auc] - (1.0 + 1.0 + 0.5) / 3.0).abs() < 1e-12, "{}", m[&Metric::Auc]);
    }

    #[test]
    fn improvement_respects_direction_and_margin() {
        assert!(improves(Metric::Rmse, 95.0, 100.0, 0.01, false));
        assert!(!improves(Metric::Rmse, 99.5, 100.0, 0.01, false));
        assert!(!improves(Metric::Rmse, 100.0, 100.0, 0.0, false));
        assert!(improves(Metric::Auc, 0.82, 0.80, 0.01, true));
        assert!(!improves(Metric::Auc, 0.805, 0.80, 0.01, true));
    }
}
