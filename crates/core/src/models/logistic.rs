//! Binary logistic regression solved by Newton's method (iteratively reweighted least squares):
//! each step solves the `(p + 1) × (p + 1)` system `(XᵀWX + αI) Δ = gradient` by a Cholesky
//! factorisation, one pass over the rows' non-zero entries (in parallel blocks) per step, until
//! the step is below a tolerance. A few passes, instead of hundreds of gradient steps.

use linfa_linalg::cholesky::SolveCInplace;
use ndarray::{Array1, Array2, Axis, s};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::FitError;
use crate::design::SparseRows;

/// Newton steps at most.
const MAX_STEPS: usize = 50;
/// Converged when no coefficient moves more than this.
const TOLERANCE: f64 = 1e-8;

/// A fitted binary logistic regression: `P(class 1) = σ(intercept + x · coefficients)`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Logistic {
    intercept: f64,
    coefficients: Vec<f64>,
}

impl Logistic {
    /// Minimises the summed log-loss plus `α‖w‖² / 2` (the intercept is not penalised), the
    /// objective of linfa's logistic regression; `y` holds 0 and 1.
    pub fn fit(x: &SparseRows, y: &[f64], alpha: f64) -> Result<Logistic, FitError> {
        let (n, p) = (x.n_rows(), x.width());
        if n == 0 || y.len() != n {
            return Err(FitError::TargetCount { targets: y.len(), rows: n });
        }
        let blocks = super::row_blocks(n);
        // Coefficients, the intercept last.
        let mut beta = Array1::<f64>::zeros(p + 1);
        let mean = (y.iter().sum::<f64>() / n as f64).clamp(1e-6, 1.0 - 1e-6);
        beta[p] = (mean / (1.0 - mean)).ln();
        for _ in 0..MAX_STEPS {
            let current = beta.as_slice().expect("a fresh array is contiguous");
            // Per block: XᵀWX and Xᵀ(y − p) with the intercept column, summed in block order.
            let parts: Vec<(Array2<f64>, Array1<f64>)> = blocks
                .par_iter()
                .map(|&(a, b)| {
                    let probabilities: Vec<f64> = (a..b).map(|r| sigmoid(x.dot_row(r, current) + current[p])).collect();
                    let mut gradient = Array1::<f64>::zeros(p + 1);
                    let cells = gradient.as_slice_mut().expect("a fresh array is contiguous");
                    for (r, (target, q)) in (a..b).zip(y[a..b].iter().zip(&probabilities)) {
                        x.add_scaled_row(r, target - q, cells);
                        cells[p] += target - q;
                    }
                    let hessian = x.gram_with_intercept(a..b, |r| {
                        let q = probabilities[r - a];
                        (q * (1.0 - q)).max(1e-12)
                    });
                    (hessian, gradient)
                })
                .collect();
            let (mut hessian, mut gradient) = (Array2::<f64>::zeros((p + 1, p + 1)), Array1::<f64>::zeros(p + 1));
            for (block_hessian, block_gradient) in parts {
                hessian += &block_hessian;
                gradient += &block_gradient;
            }
            for j in 0..p {
                hessian[[j, j]] += alpha;
                gradient[j] -= alpha * beta[j];
            }
            hessian.diag_mut().iter_mut().for_each(|d| *d += 1e-10);
            let mut step = gradient.insert_axis(Axis(1));
            hessian.solvec_inplace(&mut step).map_err(|e| FitError::NoSolution { system: "Newton system", reason: e.to_string() })?;
            let step = step.column(0).to_owned();
            beta += &step;
            if step.iter().any(|v| !v.is_finite()) {
                return Err(FitError::NotFinite);
            }
            if step.iter().all(|v| v.abs() < TOLERANCE * (1.0 + beta.iter().map(|b| b.abs()).fold(0.0, f64::max))) {
                break;
            }
        }
        Ok(Logistic { intercept: beta[p], coefficients: beta.slice(s![..p]).to_vec() })
    }

    /// Each feature's contribution to the log-odds of class 1 for `row` (coefficient times value),
    /// then the intercept: they sum to the log-odds.
    pub fn contributions(&self, row: &[f64]) -> Vec<f64> {
        super::linear_contributions(&self.coefficients, self.intercept, row)
    }

    /// The probability of class 1 for each row of `x`.
    pub fn predict_probabilities(&self, x: &Array2<f64>) -> Array1<f64> {
        (x.dot(&Array1::from(self.coefficients.clone())) + self.intercept).mapv(sigmoid)
    }
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rare_positives_get_the_higher_probabilities_and_the_fit_is_deterministic() {
        // Class 1 is the rare one (about 10 %): the model must still give it the higher probabilities.
        let x = Array2::from_shape_fn((20_000, 2), |(i, j)| ((i * (j + 3) * 2_654_435_761) % 1000) as f64 / 250.0 - 2.0);
        let y: Vec<f64> = x.rows().into_iter().map(|r| f64::from(u8::from(1.5 * r[0] - r[1] > 2.2))).collect();
        let share = y.iter().sum::<f64>() / y.len() as f64;
        assert!((0.03..0.2).contains(&share), "{share}");
        let model = Logistic::fit(&SparseRows::from_dense(x.view()), &y, 0.1).unwrap();
        let p = model.predict_probabilities(&x);
        let mean_of = |class: f64| {
            let (sum, count) = p.iter().zip(&y).filter(|(_, t)| **t == class).fold((0.0, 0.0), |(s, c), (p, _)| (s + p, c + 1.0));
            sum / count
        };
        assert!(mean_of(1.0) > 0.8 && mean_of(0.0) < 0.05, "{} {}", mean_of(1.0), mean_of(0.0));
        assert!(model.coefficients[0] > 0.0 && model.coefficients[1] < 0.0);
        assert_eq!(model, Logistic::fit(&SparseRows::from_dense(x.view()), &y, 0.1).unwrap());
    }
}
