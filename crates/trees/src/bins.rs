//! Quantile binning of features into at most 255 bins, with one extra bin for missing values.

use ndarray::{ArrayBase, Data, Ix2};
use rand::seq::index::sample;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Bin index reserved for missing (NaN) values.
pub(crate) const MISSING_BIN: u8 = u8::MAX;
/// Most value bins a feature can have.
pub(crate) const MAX_BINS: usize = MISSING_BIN as usize;
/// Number of histogram slots per feature: 255 value bins and the missing bin.
pub(crate) const BIN_SLOTS: usize = 256;
/// Rows sampled to place the quantile edges of a feature, as scikit-learn does.
const QUANTILE_SAMPLE: usize = 200_000;

/// The upper edges of one feature's bins: a value `x` falls into the first bin `b` with
/// `x <= edges[b]`, or into the last bin when it is above every edge.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct FeatureBins {
    pub edges: Vec<f64>,
}

impl FeatureBins {
    /// Number of value bins (the missing bin not counted).
    pub fn n_bins(&self) -> usize {
        self.edges.len() + 1
    }

    pub fn bin(&self, x: f64) -> u8 {
        if x.is_nan() { MISSING_BIN } else { self.edges.partition_point(|edge| *edge < x) as u8 }
    }
}

/// Bin edges for every feature, fitted on training rows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct BinMapper {
    pub features: Vec<FeatureBins>,
}

impl BinMapper {
    /// Fits edges on the given rows of `x`: midpoints between distinct values when there are few,
    /// else midpoints between quantiles.
    pub fn fit<S: Data<Elem = f64>>(x: &ArrayBase<S, Ix2>, rows: &[u32], max_bins: usize, rng: &mut ChaCha8Rng) -> Self {
        let sampled: Vec<u32> = if rows.len() > QUANTILE_SAMPLE {
            let mut picked: Vec<u32> = sample(rng, rows.len(), QUANTILE_SAMPLE).into_iter().map(|i| rows[i]).collect();
            picked.sort_unstable();
            picked
        } else {
            rows.to_vec()
        };
        let features = (0..x.ncols())
            .map(|feature| {
                let mut values: Vec<f64> = sampled.iter().map(|&row| x[[row as usize, feature]]).filter(|v| !v.is_nan()).collect();
                values.sort_unstable_by(f64::total_cmp);
                FeatureBins { edges: edges_of_sorted(&values, max_bins) }
            })
            .collect();
        BinMapper { features }
    }

    /// Bins every row of `x`, column by column.
    pub fn transform<S: Data<Elem = f64>>(&self, x: &ArrayBase<S, Ix2>) -> BinnedMatrix {
        let columns =
            self.features.iter().enumerate().map(|(feature, bins)| x.column(feature).iter().map(|&v| bins.bin(v)).collect()).collect();
        BinnedMatrix::new(columns)
    }
}

fn edges_of_sorted(values: &[f64], max_bins: usize) -> Vec<f64> {
    let mut distinct: Vec<f64> = values.to_vec();
    distinct.dedup();
    if distinct.len() <= max_bins {
        return distinct.windows(2).map(|w| w[0] + (w[1] - w[0]) / 2.0).collect();
    }
    let n = values.len();
    let mut edges: Vec<f64> = (1..max_bins)
        .map(|i| {
            let position = i as f64 / max_bins as f64 * (n - 1) as f64;
            let lower = values[position.floor() as usize];
            let upper = values[position.ceil() as usize];
            lower + (upper - lower) / 2.0
        })
        .collect();
    edges.dedup();
    edges
}

/// Bin indices of a matrix, feature-major (for histograms of many rows) and row-major (for the
/// few, scattered rows of small nodes: one cache line holds every feature of a row). Serialised
/// as its columns alone; the row-major copy is rebuilt on load.
#[derive(Debug, Clone)]
pub(crate) struct BinnedMatrix {
    pub columns: Vec<Vec<u8>>,
    /// `rows[row * n_features + feature]`.
    pub rows: Vec<u8>,
}

impl BinnedMatrix {
    /// The matrix of these feature columns (of equal length).
    pub fn new(columns: Vec<Vec<u8>>) -> BinnedMatrix {
        let n_features = columns.len();
        let mut rows = vec![0u8; columns.first().map_or(0, Vec::len) * n_features];
        for (feature, column) in columns.iter().enumerate() {
            for (row, &bin) in column.iter().enumerate() {
                rows[row * n_features + feature] = bin;
            }
        }
        BinnedMatrix { columns, rows }
    }

    /// The bins of every feature of one row.
    pub fn row(&self, row: usize) -> &[u8] {
        let n_features = self.columns.len();
        &self.rows[row * n_features..(row + 1) * n_features]
    }
}

impl Serialize for BinnedMatrix {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.columns.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for BinnedMatrix {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let columns = Vec::<Vec<u8>>::deserialize(deserializer)?;
        let rows = columns.first().map_or(0, Vec::len);
        if columns.iter().any(|c| c.len() != rows) {
            return Err(serde::de::Error::custom("the binned columns differ in length"));
        }
        Ok(BinnedMatrix::new(columns))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;
    use rand::SeedableRng;

    #[test]
    fn few_distinct_values_get_one_bin_each_and_nan_the_missing_bin() {
        let x = array![[1.0], [2.0], [2.0], [5.0], [f64::NAN]];
        let mapper = BinMapper::fit(&x, &[0, 1, 2, 3, 4], 255, &mut ChaCha8Rng::seed_from_u64(0));
        assert_eq!(mapper.features[0].edges, vec![1.5, 3.5]);
        let binned = mapper.transform(&x);
        assert_eq!(binned.columns[0], vec![0, 1, 1, 2, MISSING_BIN]);
    }

    #[test]
    fn many_distinct_values_are_capped_at_max_bins() {
        let x = ndarray::Array2::from_shape_fn((1000, 1), |(i, _)| i as f64);
        let rows: Vec<u32> = (0..1000).collect();
        let mapper = BinMapper::fit(&x, &rows, 16, &mut ChaCha8Rng::seed_from_u64(0));
        assert_eq!(mapper.features[0].n_bins(), 16);
        let binned = mapper.transform(&x);
        let counts = (0..16u8).map(|b| binned.columns[0].iter().filter(|&&v| v == b).count()).collect::<Vec<_>>();
        assert!(counts.iter().all(|&c| (55..=70).contains(&c)), "bins should be balanced: {counts:?}");
    }
}
