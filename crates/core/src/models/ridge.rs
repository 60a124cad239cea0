//! Ridge regression solved directly: the normal equations `(XᵀX / n + αI) w = Xᵀy / n`, with an
//! unpenalised intercept column, by a Cholesky factorisation. One pass over the rows' non-zero
//! entries (in parallel blocks) and a `(p + 1) × (p + 1)` solve, instead of iterating a gradient
//! method over all rows.

use linfa_linalg::cholesky::SolveCInplace;
use ndarray::{Array1, Array2};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::FitError;
use crate::design::SparseRows;

/// A fitted ridge regression: `y = intercept + x · coefficients`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Ridge {
    intercept: f64,
    coefficients: Vec<f64>,
}

impl Ridge {
    /// Minimises `‖y − Xw − b‖² / 2n + α‖w‖² / 2` (the intercept `b` is not penalised), the
    /// objective of linfa's and scikit-learn's Normal GLM with an L2 penalty.
    pub fn fit(x: &SparseRows, y: &[f64], alpha: f64) -> Result<Ridge, FitError> {
        let (n, p) = (x.n_rows(), x.width());
        if n == 0 || y.len() != n {
            return Err(FitError::TargetCount { targets: y.len(), rows: n });
        }
        // The Gram matrix and Xᵀy, both with the intercept column, block by block in parallel
        // and summed in block order (the same bytes every run).
        let parts: Vec<(Array2<f64>, Array1<f64>)> = super::row_blocks(n)
            .par_iter()
            .map(|&(a, b)| {
                let mut moment = Array1::<f64>::zeros(p + 1);
                let cells = moment.as_slice_mut().expect("a fresh array is contiguous");
                for (r, &target) in (a..b).zip(&y[a..b]) {
                    x.add_scaled_row(r, target, cells);
                    cells[p] += target;
                }
                (x.gram_with_intercept(a..b, |_| 1.0), moment)
            })
            .collect();
        let (mut gram, mut moment) = (Array2::<f64>::zeros((p + 1, p + 1)), Array2::<f64>::zeros((p + 1, 1)));
        for (block_gram, block_moment) in parts {
            gram += &block_gram;
            moment.column_mut(0).scaled_add(1.0, &block_moment);
        }
        gram /= n as f64;
        moment /= n as f64;
        // A tiny ridge keeps the system positive definite when alpha is 0 and columns repeat.
        let ridge = alpha.max(1e-10);
        gram.diag_mut().iter_mut().take(p).for_each(|d| *d += ridge);
        // Factorises `gram` in place (Cholesky), then solves.
        gram.solvec_inplace(&mut moment).map_err(|e| FitError::NoSolution { system: "normal equations", reason: e.to_string() })?;
        let coefficients = moment.column(0).iter().take(p).copied().collect::<Vec<f64>>();
        let intercept = moment[[p, 0]];
        if !intercept.is_finite() || coefficients.iter().any(|w| !w.is_finite()) {
            return Err(FitError::NotFinite);
        }
        Ok(Ridge { intercept, coefficients })
    }

    /// Each feature's contribution to the prediction for `row` (coefficient times value), then
    /// the intercept: they sum to the prediction.
    pub fn contributions(&self, row: &[f64]) -> Vec<f64> {
        super::linear_contributions(&self.coefficients, self.intercept, row)
    }

    /// One prediction per row of `x`.
    pub fn predict(&self, x: &Array2<f64>) -> Array1<f64> {
        x.dot(&Array1::from(self.coefficients.clone())) + self.intercept
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_a_linear_function_and_shrinks_with_alpha() {
        let x = Array2::from_shape_fn((100_000, 3), |(i, j)| ((i * (j + 7) * 2_654_435_761) % 1000) as f64 / 100.0);
        let y: Vec<f64> = x.rows().into_iter().map(|r| 5.0 + 2.0 * r[0] - 3.0 * r[1] + 0.5 * r[2]).collect();
        let exact = Ridge::fit(&SparseRows::from_dense(x.view()), &y, 0.0).unwrap();
        assert!((exact.intercept - 5.0).abs() < 1e-6, "{exact:?}");
        for (w, expected) in exact.coefficients.iter().zip([2.0, -3.0, 0.5]) {
            assert!((w - expected).abs() < 1e-8, "{exact:?}");
        }
        let predicted = exact.predict(&x);
        assert!((predicted[17] - y[17]).abs() < 1e-6);
        let shrunk = Ridge::fit(&SparseRows::from_dense(x.view()), &y, 100.0).unwrap();
        assert!(shrunk.coefficients.iter().zip(&exact.coefficients).all(|(s, e)| s.abs() < e.abs()));
        assert_eq!(
            Ridge::fit(&SparseRows::from_dense(x.view()), &y, 0.5).unwrap(),
            Ridge::fit(&SparseRows::from_dense(x.view()), &y, 0.5).unwrap(),
            "deterministic"
        );
    }

    #[test]
    fn repeated_and_constant_columns_still_solve() {
        let x = Array2::from_shape_fn((50, 3), |(i, j)| if j == 2 { 1.0 } else { (i % 10) as f64 });
        let y: Vec<f64> = (0..50).map(|i| f64::from(i % 10) * 2.0).collect();
        let model = Ridge::fit(&SparseRows::from_dense(x.view()), &y, 0.0).unwrap();
        let predicted = model.predict(&x);
        assert!(predicted.iter().zip(&y).all(|(p, t)| (p - t).abs() < 1e-6), "{predicted:?}");
    }
}
