//! Two-sample drift statistics, matching SciPy's definitions.

use statrs::distribution::{ChiSquared, ContinuousCDF};

use super::kolmogorov;

/// Floor of a bin's share in the PSI, so empty bins do not give infinities.
const PSI_FLOOR: f64 = 1e-4;

/// The two-sample Kolmogorov-Smirnov test, as `scipy.stats.ks_2samp(a, b, method="asymp")`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KsTest {
    pub statistic: f64,
    pub p_value: f64,
}

/// A sorted sample whose values may each stand for several observations: a plain sample (one
/// each) or the items of a [`QuantileSketch`](super::QuantileSketch).
#[derive(Debug, Clone, Copy)]
pub struct Sorted<'a> {
    pub values: &'a [f64],
    /// The observations each value stands for; empty for a plain sample.
    pub weights: &'a [f64],
}

impl<'a> Sorted<'a> {
    /// A plain sorted sample.
    pub fn plain(values: &'a [f64]) -> Sorted<'a> {
        Sorted { values, weights: &[] }
    }

    fn weight(&self, i: usize) -> f64 {
        if self.weights.is_empty() { 1.0 } else { self.weights[i] }
    }

    /// The observations the sample stands for.
    pub fn total(&self) -> f64 {
        if self.weights.is_empty() { self.values.len() as f64 } else { self.weights.iter().sum() }
    }
}

/// KS test of two samples; both must be sorted and non-empty.
pub fn ks_two_sample(a: &[f64], b: &[f64]) -> KsTest {
    ks_weighted(Sorted::plain(a), Sorted::plain(b))
}

/// [`ks_two_sample`] of weighted samples, whose totals are the sample sizes of the p-value.
pub fn ks_weighted(a: Sorted, b: Sorted) -> KsTest {
    let (n1, n2) = (a.total(), b.total());
    let (mut i, mut j, mut below_a, mut below_b, mut statistic) = (0, 0, 0.0, 0.0, 0.0f64);
    while i < a.values.len() && j < b.values.len() {
        let x = a.values[i].min(b.values[j]);
        while i < a.values.len() && a.values[i] <= x {
            below_a += a.weight(i);
            i += 1;
        }
        while j < b.values.len() && b.values[j] <= x {
            below_b += b.weight(j);
            j += 1;
        }
        statistic = statistic.max((below_a / n1 - below_b / n2).abs());
    }
    let effective = (n1 * n2 / (n1 + n2)).round_ties_even() as u64;
    KsTest { statistic, p_value: kolmogorov::survival(effective.max(1), statistic) }
}

/// The Wasserstein-1 distance between two sorted samples: the area between their CDFs.
pub fn wasserstein(a: &[f64], b: &[f64]) -> f64 {
    wasserstein_weighted(Sorted::plain(a), Sorted::plain(b))
}

/// [`wasserstein`] of weighted samples.
pub fn wasserstein_weighted(a: Sorted, b: Sorted) -> f64 {
    let (n1, n2) = (a.total(), b.total());
    let (mut i, mut j, mut below_a, mut below_b, mut distance) = (0, 0, 0.0, 0.0, 0.0);
    let mut previous = a.values[0].min(b.values[0]);
    while i < a.values.len() || j < b.values.len() {
        let x = match (a.values.get(i), b.values.get(j)) {
            (Some(&x), Some(&y)) => x.min(y),
            (Some(&x), None) => x,
            (None, Some(&y)) => y,
            (None, None) => unreachable!("the loop condition"),
        };
        distance += (below_a / n1 - below_b / n2).abs() * (x - previous);
        while i < a.values.len() && a.values[i] <= x {
            below_a += a.weight(i);
            i += 1;
        }
        while j < b.values.len() && b.values[j] <= x {
            below_b += b.weight(j);
            j += 1;
        }
        previous = x;
    }
    distance
}

/// Population standard deviation.
pub fn std_dev(values: &[f64]) -> f64 {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt()
}

/// The chi-square test of homogeneity of two count vectors over the same categories, as
/// `scipy.stats.chi2_contingency` (Yates' correction with one degree of freedom). Categories
/// absent from both are left out.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChiSquareTest {
    pub statistic: f64,
    pub p_value: f64,
    pub dof: usize,
}

pub fn chi_square(reference: &[f64], current: &[f64]) -> ChiSquareTest {
    let pairs: Vec<(f64, f64)> = reference.iter().zip(current).map(|(r, c)| (*r, *c)).filter(|(r, c)| r + c > 0.0).collect();
    let dof = pairs.len().saturating_sub(1);
    if dof == 0 {
        return ChiSquareTest { statistic: 0.0, p_value: 1.0, dof };
    }
    let (total_reference, total_current): (f64, f64) = pairs.iter().fold((0.0, 0.0), |(r, c), p| (r + p.0, c + p.1));
    let total = total_reference + total_current;
    let mut statistic = 0.0;
    for &(r, c) in &pairs {
        for (observed, row_total) in [(r, total_reference), (c, total_current)] {
            let expected = (r + c) * row_total / total;
            let mut difference = (observed - expected).abs();
            if dof == 1 {
                difference = (difference - 0.5).max(0.0);
            }
            statistic += difference * difference / expected;
        }
    }
    let p_value = ChiSquared::new(dof as f64).map_or(f64::NAN, |d| d.sf(statistic));
    ChiSquareTest { statistic, p_value, dof }
}

/// The Jensen-Shannon distance (base 2) between two count vectors, as
/// `scipy.spatial.distance.jensenshannon(p, q, base=2)`.
pub fn jensen_shannon(reference: &[f64], current: &[f64]) -> f64 {
    let (sum_p, sum_q): (f64, f64) = (reference.iter().sum(), current.iter().sum());
    let divergence: f64 = reference
        .iter()
        .zip(current)
        .map(|(p, q)| {
            let (p, q) = (p / sum_p, q / sum_q);
            let m = f64::midpoint(p, q);
            let term = |x: f64| if x > 0.0 { x * (x / m).ln() } else { 0.0 };
            f64::midpoint(term(p), term(q))
        })
        .sum();
    (divergence.max(0.0) / std::f64::consts::LN_2).sqrt()
}

/// The population stability index of two count vectors over the same bins.
pub fn psi(reference: &[f64], current: &[f64]) -> f64 {
    let (sum_r, sum_c): (f64, f64) = (reference.iter().sum(), current.iter().sum());
    reference
        .iter()
        .zip(current)
        .map(|(r, c)| {
            let (r, c) = ((r / sum_r).max(PSI_FLOOR), (c / sum_c).max(PSI_FLOOR));
            (c - r) * (c / r).ln()
        })
        .sum()
}

/// Inner edges of up to `bins` quantile bins of a sorted sample (duplicates removed).
pub fn quantile_edges(sorted: &[f64], bins: usize) -> Vec<f64> {
    let mut edges: Vec<f64> = (1..bins).map(|i| sorted[(i * sorted.len() / bins).min(sorted.len() - 1)]).collect();
    edges.dedup();
    edges
}

/// The value below which a share `q` of a sorted (weighted) sample lies; `None` when empty.
pub fn weighted_quantile(sample: Sorted, q: f64) -> Option<f64> {
    let target = q.clamp(0.0, 1.0) * sample.total();
    let mut seen = 0.0;
    for (i, value) in sample.values.iter().enumerate() {
        seen += sample.weight(i);
        if seen >= target {
            return Some(*value);
        }
    }
    sample.values.last().copied()
}

/// Counts of a sample in the bins delimited by `edges` (a value equal to an edge goes right).
pub fn bin_counts(sample: Sorted, edges: &[f64]) -> Vec<f64> {
    let mut counts = vec![0.0; edges.len() + 1];
    for (i, value) in sample.values.iter().enumerate() {
        counts[edges.partition_point(|edge| edge <= value)] += sample.weight(i);
    }
    counts
}
