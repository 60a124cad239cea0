//! Target encoding of categoricals with many levels: each level becomes its smoothed mean target
//! (regression, binary) or its smoothed class frequencies (multiclass). Training rows get
//! out-of-fold values, so that no row sees its own target; every other row (the holdout,
//! `/predict`) gets the values fitted on all training rows, saved in the artifact.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::frame::MISSING_CODE;

/// Weight of the prior in a level's smoothed mean, in rows.
const SMOOTHING: f64 = 10.0;
/// Folds of the out-of-fold encoding of training rows.
const FOLDS: usize = 5;

/// What features are fitted against: numbers (regression targets, binary 0/1) or class indices.
#[derive(Debug, Clone, Copy)]
pub enum FitTarget<'a> {
    Values(&'a [f64]),
    Classes { y: &'a [f64], n_classes: usize },
}

impl FitTarget<'_> {
    /// Encoded values per level.
    pub(super) fn width(&self) -> usize {
        match self {
            FitTarget::Values(_) => 1,
            FitTarget::Classes { n_classes, .. } => *n_classes,
        }
    }

    /// Targets that order levels (none for classes, which have no order).
    pub(super) fn ordering(&self) -> Option<&[f64]> {
        match self {
            FitTarget::Values(y) => Some(y),
            FitTarget::Classes { .. } => None,
        }
    }

    /// The targets of rows `rows` alone.
    pub(super) fn rows(&self, rows: std::ops::Range<usize>) -> FitTarget<'_> {
        match *self {
            FitTarget::Values(y) => FitTarget::Values(&y[rows]),
            FitTarget::Classes { y, n_classes } => FitTarget::Classes { y: &y[rows], n_classes },
        }
    }

    fn add(&self, row: usize, sums: &mut [f64]) {
        match self {
            FitTarget::Values(y) => sums[0] += y[row],
            FitTarget::Classes { y, .. } => sums[y[row] as usize] += 1.0,
        }
    }
}

/// Smoothed encodings of the levels seen in training, and the prior for every other level.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(super) struct TargetEncoding {
    prior: Vec<f64>,
    levels: BTreeMap<String, Vec<f64>>,
}

/// Row count and target sums of one level (or of all rows).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Tally {
    pub count: f64,
    pub sums: Vec<f64>,
}

/// Tallies of the levels that occur, by level text.
pub(super) type Tallies = BTreeMap<String, Tally>;

impl Tally {
    pub fn new(width: usize) -> Tally {
        Tally { count: 0.0, sums: vec![0.0; width] }
    }

    /// Counts row `row` of `target`.
    pub fn add_row(&mut self, target: FitTarget, row: usize) {
        target.add(row, &mut self.sums);
        self.count += 1.0;
    }

    /// Adds the rows of `other`.
    pub fn merge(&mut self, other: &Tally) {
        self.count += other.count;
        self.sums.iter_mut().zip(&other.sums).for_each(|(a, b)| *a += b);
    }

    fn minus(&self, other: &Tally) -> Tally {
        Tally { count: self.count - other.count, sums: self.sums.iter().zip(&other.sums).map(|(a, b)| a - b).collect() }
    }

    fn mean(&self) -> Vec<f64> {
        self.sums.iter().map(|s| if self.count > 0.0 { s / self.count } else { 0.0 }).collect()
    }

    /// The level's mean pulled towards `prior` by [`SMOOTHING`] rows.
    fn smoothed(&self, prior: &[f64]) -> Vec<f64> {
        self.sums.iter().zip(prior).map(|(s, p)| (s + SMOOTHING * p) / (self.count + SMOOTHING)).collect()
    }
}

/// Tallies per level code (`levels` codes) and in total, per fold of the rows.
fn tallies(
    codes: &[u32],
    n_levels: usize,
    target: FitTarget,
    fold_of: impl Fn(usize) -> usize,
    folds: usize,
) -> (Vec<Vec<Tally>>, Vec<Tally>) {
    let width = target.width();
    let mut per_level = vec![vec![Tally::new(width); folds]; n_levels];
    let mut total = vec![Tally::new(width); folds];
    for (row, &code) in codes.iter().enumerate() {
        let fold = fold_of(row);
        target.add(row, &mut total[fold].sums);
        total[fold].count += 1.0;
        if code != MISSING_CODE {
            let tally = &mut per_level[code as usize][fold];
            target.add(row, &mut tally.sums);
            tally.count += 1.0;
        }
    }
    (per_level, total)
}

fn sum(tallies: &[Tally]) -> Tally {
    let mut out = Tally::new(tallies[0].sums.len());
    tallies.iter().for_each(|tally| out.merge(tally));
    out
}

/// Tallies of the rows of each level: `codes` index `texts`, one per row of `target`
/// (`None` when missing). Levels of equal text are one level.
pub(super) fn level_tallies(texts: &[String], codes: impl Iterator<Item = Option<u32>>, target: FitTarget) -> Tallies {
    let mut by_code: Vec<Option<Tally>> = vec![None; texts.len()];
    for (row, code) in codes.enumerate() {
        if let Some(code) = code {
            by_code[code as usize].get_or_insert_with(|| Tally::new(target.width())).add_row(target, row);
        }
    }
    let mut tallies = Tallies::new();
    for (text, tally) in texts.iter().zip(by_code) {
        if let Some(tally) = tally {
            merge_into(&mut tallies, text, &tally);
        }
    }
    tallies
}

/// Adds `tally` to the tally of `text` in `tallies`.
pub(super) fn merge_into(tallies: &mut Tallies, text: &str, tally: &Tally) {
    match tallies.get_mut(text) {
        Some(mine) => mine.merge(tally),
        None => {
            tallies.insert(text.to_string(), tally.clone());
        }
    }
}

/// The fold of a training row: a hash of its position and the seed.
fn fold_of(row: usize, seed: u64) -> usize {
    let mut z = (row as u64).wrapping_add(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((z ^ (z >> 31)) % FOLDS as u64) as usize
}

impl TargetEncoding {
    /// Fits on the tallies of a categorical's levels in the training rows and of all of them.
    pub fn fit(levels: &Tallies, all: &Tally) -> TargetEncoding {
        let prior = all.mean();
        let levels = levels.iter().map(|(level, tally)| (level.clone(), tally.smoothed(&prior))).collect();
        TargetEncoding { prior, levels }
    }

    pub fn width(&self) -> usize {
        self.prior.len()
    }

    /// The encoding of a level: its fitted values, the prior for a level training never saw,
    /// `None` when missing.
    pub fn encode(&self, level: Option<&str>) -> Option<&[f64]> {
        level.map(|level| self.levels.get(level).unwrap_or(&self.prior).as_slice())
    }

    /// The prior: the encoding of a level training never saw.
    pub fn prior(&self) -> &[f64] {
        &self.prior
    }

    /// Out-of-fold encodings of training rows (`width` values per row, NaN when missing): each
    /// row's level encoded from the other folds' rows only.
    pub fn out_of_fold(levels: &[String], codes: &[u32], target: FitTarget, seed: u64) -> Vec<Option<Vec<f64>>> {
        let (per_level, total) = tallies(codes, levels.len(), target, |row| fold_of(row, seed), FOLDS);
        let all = sum(&total);
        let priors: Vec<Vec<f64>> = total.iter().map(|fold| all.minus(fold).mean()).collect();
        let level_totals: Vec<Tally> = per_level.iter().map(|folds| sum(folds)).collect();
        codes
            .iter()
            .enumerate()
            .map(|(row, &code)| {
                (code != MISSING_CODE).then(|| {
                    let fold = fold_of(row, seed);
                    level_totals[code as usize].minus(&per_level[code as usize][fold]).smoothed(&priors[fold])
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fitted(levels: &[String], codes: &[u32], target: FitTarget) -> TargetEncoding {
        let tallies = level_tallies(levels, codes.iter().map(|&c| (c != MISSING_CODE).then_some(c)), target);
        let all = (0..codes.len()).fold(Tally::new(target.width()), |mut all, row| {
            all.add_row(target, row);
            all
        });
        TargetEncoding::fit(&tallies, &all)
    }

    #[test]
    fn levels_get_their_smoothed_mean_and_unseen_ones_the_prior() {
        let levels: Vec<String> = ["a", "b", "never"].map(String::from).to_vec();
        let codes = [0, 0, 0, 0, 1, MISSING_CODE];
        let y = [1.0, 1.0, 1.0, 1.0, 0.0, 0.0];
        let encoding = fitted(&levels, &codes, FitTarget::Values(&y));
        let prior = 4.0 / 6.0;
        assert_eq!(encoding.prior(), [prior]);
        assert_eq!(encoding.encode(Some("a")).unwrap(), [(4.0 + SMOOTHING * prior) / (4.0 + SMOOTHING)]);
        assert_eq!(encoding.encode(Some("b")).unwrap(), [(SMOOTHING * prior) / (1.0 + SMOOTHING)]);
        assert_eq!(encoding.encode(Some("never")).unwrap(), [prior], "a level with no training row is unseen");
        assert_eq!(encoding.encode(Some("brand new")).unwrap(), [prior]);
        assert_eq!(encoding.encode(None), None);
    }

    #[test]
    fn classes_get_one_smoothed_frequency_each() {
        let levels: Vec<String> = ["x", "y"].map(String::from).to_vec();
        // 40 rows of "x" (classes 0 and 2), 40 of "y" (class 1).
        let codes: Vec<u32> = (0..80).map(|i| u32::from(i >= 40)).collect();
        let y: Vec<f64> = (0..80).map(|i| if i >= 40 { 1.0 } else { f64::from(i % 2 * 2) }).collect();
        let encoding = fitted(&levels, &codes, FitTarget::Classes { y: &y, n_classes: 3 });
        assert_eq!(encoding.width(), 3);
        let x = encoding.encode(Some("x")).unwrap();
        assert!((x.iter().sum::<f64>() - 1.0).abs() < 1e-12 && x[0] > x[1] && x[2] > x[1], "{x:?}");
    }

    #[test]
    fn out_of_fold_values_never_see_their_own_row() {
        // Every level has one row: out of fold, a row's level has no other row, so it gets the
        // prior of the other folds, whatever its own target.
        let n = 200;
        let levels: Vec<String> = (0..n).map(|i| format!("l{i}")).collect();
        let codes: Vec<u32> = (0..n as u32).collect();
        let y: Vec<f64> = (0..n).map(|i| (i % 2) as f64).collect();
        let encoded = TargetEncoding::out_of_fold(&levels, &codes, FitTarget::Values(&y), 7);
        for (row, value) in encoded.iter().enumerate() {
            let value = value.as_ref().unwrap()[0];
            assert!((value - 0.5).abs() < 0.1, "row {row}: {value} leaks its own target {}", y[row]);
        }
        let folds: std::collections::BTreeSet<usize> = (0..n).map(|row| fold_of(row, 7)).collect();
        assert_eq!(folds.len(), FOLDS);
        assert_eq!(encoded, TargetEncoding::out_of_fold(&levels, &codes, FitTarget::Values(&y), 7), "seeded");
    }
}
