//! Encoded features as models read them: a dense matrix for trees, sparse rows for linear models.

use std::ops::Range;

use ndarray::{Array2, ArrayView2};

/// Encoded training rows, in the layout their model family reads.
#[derive(Debug, Clone, PartialEq)]
pub enum Design {
    /// Every value, row-major: the ordinal encoding trees split on.
    Dense(Array2<f64>),
    /// The non-zero values of each row: the one-hot encoding linear models are fitted on.
    Sparse(SparseRows),
}

/// A matrix held as the non-zero entries of each row (compressed sparse rows). A one-hot
/// encoding has a few non-zeros in rows of a hundred columns or more: a linear model fitted on
/// a million rows holds, and sums over, a fraction of the dense matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct SparseRows {
    width: usize,
    /// Row `r`'s entries are `starts[r]..starts[r + 1]` of `columns` and `values`.
    starts: Vec<usize>,
    /// Column of each entry, increasing within a row.
    columns: Vec<u32>,
    values: Vec<f64>,
}

impl SparseRows {
    /// No rows yet, of `width` columns.
    pub fn new(width: usize) -> SparseRows {
        SparseRows { width, starts: vec![0], columns: Vec::new(), values: Vec::new() }
    }

    /// The non-zero entries of a dense matrix.
    pub fn from_dense(x: ArrayView2<f64>) -> SparseRows {
        let mut rows = SparseRows::new(x.ncols());
        rows.push_dense(x);
        rows
    }

    /// Appends the rows of a dense block of the same width, leaving out its zeros.
    pub fn push_dense(&mut self, block: ArrayView2<f64>) {
        debug_assert_eq!(block.ncols(), self.width);
        for row in block.rows() {
            for (column, &value) in row.iter().enumerate() {
                if value != 0.0 {
                    self.columns.push(column as u32);
                    self.values.push(value);
                }
            }
            self.starts.push(self.values.len());
        }
    }

    /// Reserves room for `n_rows` rows in all, at the mean count of non-zeros of the rows so far
    /// (and a little more): the entries are then not copied as their buffers double.
    pub fn reserve_like_first_rows(&mut self, n_rows: usize) {
        let (held, more) = (self.n_rows().max(1), n_rows.saturating_sub(self.n_rows()));
        let entries = self.values.len().div_ceil(held) * more + more / 32;
        self.starts.reserve(more);
        self.columns.reserve(entries);
        self.values.reserve(entries);
    }

    /// Frees the capacity left over from appending.
    pub fn shrink_to_fit(&mut self) {
        self.starts.shrink_to_fit();
        self.columns.shrink_to_fit();
        self.values.shrink_to_fit();
    }

    pub fn n_rows(&self) -> usize {
        self.starts.len() - 1
    }

    pub fn width(&self) -> usize {
        self.width
    }

    /// Columns and values of row `r`'s non-zero entries.
    pub fn row(&self, r: usize) -> (&[u32], &[f64]) {
        let entries = self.starts[r]..self.starts[r + 1];
        (&self.columns[entries.clone()], &self.values[entries])
    }

    /// `x_r · w`, for `w` of at least `width` values.
    pub fn dot_row(&self, r: usize, w: &[f64]) -> f64 {
        let (columns, values) = self.row(r);
        columns.iter().zip(values).map(|(&c, v)| v * w[c as usize]).sum()
    }

    /// `out += factor · x_r`, for `out` of at least `width` values.
    pub fn add_scaled_row(&self, r: usize, factor: f64, out: &mut [f64]) {
        let (columns, values) = self.row(r);
        columns.iter().zip(values).for_each(|(&c, v)| out[c as usize] += v * factor);
    }

    /// `Σ weight(r) · [x_r, 1]ᵀ [x_r, 1]` over `rows`: the Gram matrix with a column of ones
    /// appended for the intercept, `(width + 1)²`, each row scaled by its weight.
    pub fn gram_with_intercept(&self, rows: Range<usize>, weight: impl Fn(usize) -> f64) -> Array2<f64> {
        let p = self.width;
        let mut gram = Array2::<f64>::zeros((p + 1, p + 1));
        let cells = gram.as_slice_mut().expect("a fresh array is contiguous");
        for r in rows {
            let w = weight(r);
            let (columns, values) = self.row(r);
            // The upper triangle only; mirrored below.
            for (i, (&ci, &vi)) in columns.iter().zip(values).enumerate() {
                let (ci, wvi) = (ci as usize, w * vi);
                let line = &mut cells[ci * (p + 1)..(ci + 1) * (p + 1)];
                for (&cj, &vj) in columns[i..].iter().zip(&values[i..]) {
                    line[cj as usize] += wvi * vj;
                }
                line[p] += wvi;
            }
            cells[p * (p + 1) + p] += w;
        }
        for i in 0..=p {
            for j in 0..i {
                gram[[i, j]] = gram[[j, i]];
            }
        }
        gram
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Axis, array, concatenate};

    #[test]
    fn sparse_rows_hold_the_non_zeros_and_give_the_dense_products() {
        let x = array![[0.0, 2.0, 0.0], [1.0, 0.0, -3.0], [0.0, 0.0, 0.0], [0.5, 4.0, 1.0]];
        let sparse = SparseRows::from_dense(x.view());
        assert_eq!((sparse.n_rows(), sparse.width()), (4, 3));
        assert_eq!(sparse.row(1), (&[0u32, 2][..], &[1.0, -3.0][..]));
        assert_eq!(sparse.row(2), (&[][..], &[][..]));
        let w = [0.5, -1.0, 2.0];
        let mut sum = [0.0; 3];
        for r in 0..4 {
            assert_eq!(sparse.dot_row(r, &w), x.row(r).dot(&ndarray::aview1(&w)));
            sparse.add_scaled_row(r, w[r % 3], &mut sum);
        }
        let expected_sum = x.t().dot(&ndarray::aview1(&[0.5, -1.0, 2.0, 0.5]));
        assert_eq!(sum.to_vec(), expected_sum.to_vec());
        let weights = [1.0, 2.0, 3.0, 0.5];
        let augmented = concatenate![Axis(1), x, Array2::ones((4, 1))];
        let scaled = &augmented * &ndarray::aview1(&weights).insert_axis(Axis(1));
        let expected = augmented.t().dot(&scaled);
        let gram = sparse.gram_with_intercept(0..4, |r| weights[r]);
        assert!(gram.iter().zip(&expected).all(|(a, b)| (a - b).abs() < 1e-12), "{gram} against {expected}");
    }
}
