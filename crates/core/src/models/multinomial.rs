//! Multinomial logistic regression solved by L-BFGS: the softmax log-loss and its gradient are
//! two products over the rows' non-zero entries per evaluation (in parallel blocks, summed in
//! block order), and the quasi-Newton direction comes from the last few steps, as scikit-learn's
//! `lbfgs` solver does. Classes absent from the training rows get probability 0.

use ndarray::{Array1, Array2, ArrayView2, s};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::FitError;
use crate::design::SparseRows;

/// Iterations at most.
const MAX_ITERATIONS: usize = 500;
/// Past steps the inverse-Hessian estimate remembers.
const MEMORY: usize = 10;
/// Converged when no component of the gradient of the mean loss exceeds this (ten times
/// tighter than scikit-learn's `lbfgs` default, `tol = 1e-4`).
const GRADIENT_TOLERANCE: f64 = 1e-5;
/// Converged when an iteration lowers the mean loss by less than this, relatively.
const LOSS_TOLERANCE: f64 = 64.0 * f64::EPSILON;
/// Sufficient decrease (Armijo) for the backtracking line search.
const ARMIJO: f64 = 1e-4;
/// Halvings of the step before the line search gives up.
const MAX_HALVINGS: usize = 40;

/// A fitted multinomial logistic regression: `P(class k) ∝ exp(intercept_k + x · coefficients_k)`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Multinomial {
    n_classes: usize,
    /// The classes seen in training, in order; the others have probability 0.
    classes: Vec<usize>,
    /// `(p + 1) × classes.len()`, row-major, the intercepts in the last row.
    weights: Vec<f64>,
}

impl Multinomial {
    /// Minimises the summed log-loss plus `α‖W‖² / 2` (intercepts not penalised), the objective
    /// of the binary [`super::Logistic`]; `y` holds class indices below `n_classes`.
    pub fn fit(x: &SparseRows, y: &[f64], n_classes: usize, alpha: f64) -> Result<Multinomial, FitError> {
        let (n, p) = (x.n_rows(), x.width());
        if n == 0 || y.len() != n {
            return Err(FitError::TargetCount { targets: y.len(), rows: n });
        }
        let mut counts = vec![0usize; n_classes];
        for &class in y {
            match counts.get_mut(class as usize) {
                Some(count) if class >= 0.0 && class.fract() == 0.0 => *count += 1,
                _ => return Err(FitError::NotAClass { target: class, classes: n_classes }),
            }
        }
        let classes: Vec<usize> = (0..n_classes).filter(|&c| counts[c] > 0).collect();
        let mut position = vec![usize::MAX; n_classes];
        classes.iter().enumerate().for_each(|(at, &class)| position[class] = at);
        let labels: Vec<usize> = y.iter().map(|&class| position[class as usize]).collect();
        let objective = Objective { x, labels: &labels, k: classes.len(), alpha, blocks: super::row_blocks(n) };

        // Start from the class log-frequencies, which makes the intercepts' gradient zero.
        let mut w = Array1::<f64>::zeros((p + 1) * objective.k);
        for (at, &class) in classes.iter().enumerate() {
            w[p * objective.k + at] = (counts[class] as f64 / n as f64).ln();
        }
        let weights = minimise(&objective, w)?;
        Ok(Multinomial { n_classes, classes, weights: weights.to_vec() })
    }

    /// Number of classes, seen in training or not.
    pub fn n_classes(&self) -> usize {
        self.n_classes
    }

    /// Each feature's contribution to each class's score for `row` (weight times value), then the
    /// intercept, in `n_classes` blocks of `row.len() + 1`: a block sums to the class's score, the
    /// log of its probability up to a constant shared by the classes. A class unseen in training
    /// has no score: its block is zeros and a `-inf` intercept.
    pub fn contributions(&self, row: &[f64]) -> Vec<f64> {
        let k = self.classes.len();
        let p = row.len();
        let mut phi = vec![0.0; self.n_classes * (p + 1)];
        for block in phi.chunks_mut(p + 1) {
            block[p] = f64::NEG_INFINITY;
        }
        for (at, &class) in self.classes.iter().enumerate() {
            let coefficients: Vec<f64> = (0..p).map(|j| self.weights[j * k + at]).collect();
            let block = super::linear_contributions(&coefficients, self.weights[p * k + at], row);
            phi[class * (p + 1)..(class + 1) * (p + 1)].copy_from_slice(&block);
        }
        phi
    }

    /// One probability per class (`n_classes` columns) for each row of `x`.
    pub fn predict_probabilities(&self, x: &Array2<f64>) -> Array2<f64> {
        let k = self.classes.len();
        let p = self.weights.len() / k - 1;
        let weights = ArrayView2::from_shape((p + 1, k), &self.weights).expect("weights hold (p + 1) × k values");
        let mut scores = x.dot(&weights.slice(s![..p, ..])) + weights.row(p);
        let mut out = Array2::zeros((x.nrows(), self.n_classes));
        for (mut row, mut probabilities) in scores.rows_mut().into_iter().zip(out.rows_mut()) {
            softmax_in_place(row.as_slice_mut().expect("a fresh array is contiguous"));
            for (&class, &value) in self.classes.iter().zip(row.iter()) {
                probabilities[class] = value;
            }
        }
        out
    }
}

/// The mean penalised log-loss over the rows, as a function of the flattened weights.
struct Objective<'a> {
    x: &'a SparseRows,
    /// Each row's class, as a column of the weights.
    labels: &'a [usize],
    k: usize,
    alpha: f64,
    blocks: Vec<(usize, usize)>,
}

impl Objective<'_> {
    /// The loss and its gradient at `w`.
    fn evaluate(&self, w: &Array1<f64>) -> (f64, Array1<f64>) {
        let (n, p, k) = (self.x.n_rows(), self.x.width(), self.k);
        let weights = w.view().into_shape_with_order((p + 1, k)).expect("w holds (p + 1) × k values");
        let coefficients = weights.slice(s![..p, ..]);
        let flat = w.as_slice().expect("a fresh array is contiguous");
        let parts: Vec<(f64, Array2<f64>, Array1<f64>)> = self
            .blocks
            .par_iter()
            .map(|&(a, b)| {
                let mut block_gradient = Array2::<f64>::zeros((p, k));
                let mut intercept_gradient = Array1::<f64>::zeros(k);
                let gradient_cells = block_gradient.as_slice_mut().expect("a fresh array is contiguous");
                let mut row = vec![0.0; k];
                let mut loss = 0.0;
                for r in a..b {
                    // Scores, then in place the residuals P − Y.
                    row.copy_from_slice(&flat[p * k..]);
                    let (columns, values) = self.x.row(r);
                    for (&c, &v) in columns.iter().zip(values) {
                        let line = &flat[c as usize * k..(c as usize + 1) * k];
                        row.iter_mut().zip(line).for_each(|(score, weight)| *score += v * weight);
                    }
                    let label = self.labels[r];
                    loss += log_sum_exp(&row) - row[label];
                    softmax_in_place(&mut row);
                    row[label] -= 1.0;
                    for (&c, &v) in columns.iter().zip(values) {
                        let line = &mut gradient_cells[c as usize * k..(c as usize + 1) * k];
                        line.iter_mut().zip(&row).for_each(|(g, residual)| *g += v * residual);
                    }
                    intercept_gradient.iter_mut().zip(&row).for_each(|(g, residual)| *g += residual);
                }
                (loss, block_gradient, intercept_gradient)
            })
            .collect();
        let mut loss = 0.0;
        let mut gradient = Array2::<f64>::zeros((p + 1, self.k));
        for (block_loss, block_gradient, intercept_gradient) in parts {
            loss += block_loss;
            gradient.slice_mut(s![..p, ..]).scaled_add(1.0, &block_gradient);
            gradient.row_mut(p).scaled_add(1.0, &intercept_gradient);
        }
        loss += 0.5 * self.alpha * coefficients.iter().map(|v| v * v).sum::<f64>();
        gradient.slice_mut(s![..p, ..]).scaled_add(self.alpha, &coefficients);
        let scale = 1.0 / n as f64;
        (loss * scale, gradient.into_shape_with_order((p + 1) * self.k).expect("a fresh array is contiguous") * scale)
    }
}

/// L-BFGS with a backtracking line search from `w`.
fn minimise(objective: &Objective, mut w: Array1<f64>) -> Result<Array1<f64>, FitError> {
    let (mut loss, mut gradient) = objective.evaluate(&w);
    let mut history: std::collections::VecDeque<(Array1<f64>, Array1<f64>, f64)> = std::collections::VecDeque::new();
    for _ in 0..MAX_ITERATIONS {
        if gradient.iter().all(|g| g.abs() <= GRADIENT_TOLERANCE) {
            break;
        }
        let direction = two_loop_direction(&gradient, &history);
        let slope = gradient.dot(&direction);
        // Not a descent direction (the estimate went stale): fall back to steepest descent.
        let (direction, slope) = if slope < 0.0 { (direction, slope) } else { (-&gradient, -gradient.dot(&gradient)) };
        let mut step = if history.is_empty() { 1.0 / gradient.iter().map(|g| g.abs()).fold(1.0, f64::max) } else { 1.0 };
        let mut accepted = None;
        for _ in 0..MAX_HALVINGS {
            let candidate = &w + &(&direction * step);
            let (candidate_loss, candidate_gradient) = objective.evaluate(&candidate);
            if candidate_loss.is_finite() && candidate_loss <= loss + ARMIJO * step * slope {
                accepted = Some((candidate, candidate_loss, candidate_gradient));
                break;
            }
            step *= 0.5;
        }
        let Some((next, next_loss, next_gradient)) = accepted else { break };
        let s = &next - &w;
        let y = &next_gradient - &gradient;
        let curvature = s.dot(&y);
        if curvature > 1e-12 * y.dot(&y) {
            if history.len() == MEMORY {
                history.pop_front();
            }
            history.push_back((s, y, 1.0 / curvature));
        }
        let decrease = (loss - next_loss) / loss.abs().max(next_loss.abs()).max(1.0);
        (w, loss, gradient) = (next, next_loss, next_gradient);
        if decrease <= LOSS_TOLERANCE {
            break;
        }
    }
    if w.iter().any(|v| !v.is_finite()) {
        return Err(FitError::NotFinite);
    }
    Ok(w)
}

/// The L-BFGS direction `−H·g` from the remembered steps `(s, y, 1 / sᵀy)`.
fn two_loop_direction(gradient: &Array1<f64>, history: &std::collections::VecDeque<(Array1<f64>, Array1<f64>, f64)>) -> Array1<f64> {
    let mut q = gradient.clone();
    let mut alphas = Vec::with_capacity(history.len());
    for (s, y, rho) in history.iter().rev() {
        let a = rho * s.dot(&q);
        q.scaled_add(-a, y);
        alphas.push(a);
    }
    if let Some((s, y, _)) = history.back() {
        q *= s.dot(y) / y.dot(y);
    }
    for ((s, y, rho), a) in history.iter().zip(alphas.into_iter().rev()) {
        let b = rho * y.dot(&q);
        q.scaled_add(a - b, s);
    }
    -q
}

fn log_sum_exp(scores: &[f64]) -> f64 {
    let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    max + scores.iter().map(|s| (s - max).exp()).sum::<f64>().ln()
}

fn softmax_in_place(scores: &mut [f64]) {
    let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    scores.iter_mut().for_each(|s| *s = (*s - max).exp());
    let total: f64 = scores.iter().sum();
    scores.iter_mut().for_each(|s| *s /= total);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three_classes(n: usize) -> (Array2<f64>, Vec<f64>) {
        let x = Array2::from_shape_fn((n, 3), |(i, j)| ((i * (j + 5) * 2_654_435_761) % 1000) as f64 / 250.0 - 2.0);
        let y = x
            .rows()
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                let noise = ((i * 7919) % 100) as f64 / 100.0 - 0.5;
                if r[0] + noise > 0.7 {
                    3.0
                } else if r[1] - r[2] + noise > 0.0 {
                    1.0
                } else {
                    0.0
                }
            })
            .collect();
        (x, y)
    }

    #[test]
    fn the_fit_reaches_the_optimum_and_absent_classes_get_no_probability() {
        let (x, y) = three_classes(30_000);
        let model = Multinomial::fit(&SparseRows::from_dense(x.view()), &y, 5, 1.0).unwrap();
        assert_eq!(model.classes, [0, 1, 3]);
        // At the optimum the gradient of the objective vanishes.
        let labels: Vec<usize> = y.iter().map(|&c| [0, 1, usize::MAX, 2][c as usize]).collect();
        let sparse = SparseRows::from_dense(x.view());
        let objective = Objective { x: &sparse, labels: &labels, k: 3, alpha: 1.0, blocks: crate::models::row_blocks(30_000) };
        let (_, gradient) = objective.evaluate(&Array1::from(model.weights.clone()));
        assert!(gradient.iter().all(|g| g.abs() <= GRADIENT_TOLERANCE), "{gradient}");

        let probabilities = model.predict_probabilities(&x);
        assert_eq!(probabilities.ncols(), 5);
        assert!(probabilities.column(2).iter().chain(probabilities.column(4)).all(|&p| p == 0.0));
        assert!(probabilities.rows().into_iter().all(|r| (r.sum() - 1.0).abs() < 1e-9));
        let correct = probabilities
            .rows()
            .into_iter()
            .zip(&y)
            .filter(|(r, c)| r.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0 == **c as usize)
            .count();
        assert!(correct > 25_000, "{correct} of 30000");
        assert_eq!(model, Multinomial::fit(&SparseRows::from_dense(x.view()), &y, 5, 1.0).unwrap());
    }

    #[test]
    fn targets_outside_the_classes_are_refused() {
        let (x, mut y) = three_classes(100);
        y[7] = 5.0;
        assert!(Multinomial::fit(&SparseRows::from_dense(x.view()), &y, 5, 1.0).unwrap_err().to_string().contains("target 5"));
    }
}
