//! Mergeable statistics of training rows, which features are fitted from: the rows' parts
//! (blocks of one frame, or shards of a batch that never meet in one process) are summarised
//! apart and merged, and [`FeatureParams::fit_stats`] fits on the merged statistics alone.
//!
//! Counts and target sums per level are exact, so are the moments of numbers (merged as Chan,
//! Golub and LeVeque do); medians are exact up to [`EXACT_VALUES`] distinct values of a number
//! and within [`RANK_ERROR`](crate::drift::RANK_ERROR) of the middle rank beyond.

use std::ops::Range;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::target_encoding::{Tallies, Tally, level_tallies, merge_into};
use super::{FeatureError, FeatureParams, FitTarget, LevelKeys, apply_transforms};
use crate::drift::Quantiles;
use crate::frame::{Column, Frame};
use crate::time;

/// Rows of one frame summarised apart, side by side, then merged.
const BLOCK_ROWS: usize = 1 << 20;

/// Distinct values of a number counted exactly for its median; past this many it comes from a
/// sketch.
pub(super) const EXACT_VALUES: usize = 1 << 16;

/// Statistics of some training rows for every input and cross of [`FeatureParams`], in their
/// order; statistics of other rows of the same data merge into them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureStats {
    /// Whether level tallies sum a numeric target, which orders levels.
    ordered: bool,
    /// Every row, with or without its inputs.
    all: Tally,
    inputs: Vec<InputStats>,
    crosses: Vec<Tallies>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) enum InputStats {
    /// A numeric column after its transforms, or a time part.
    Number(NumberStats),
    Categorical(Tallies),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct NumberStats {
    pub moments: Moments,
    /// Rows whose value is missing or not finite.
    pub missing: u64,
    pub quantiles: Quantiles,
}

/// Count, mean and sum of squared deviations of finite values.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(super) struct Moments {
    pub count: u64,
    pub mean: f64,
    pub m2: f64,
}

impl Moments {
    fn of(values: &[f64]) -> Moments {
        let finite = || values.iter().copied().filter(|v| v.is_finite());
        let count = finite().count() as u64;
        if count == 0 {
            return Moments { count, mean: 0.0, m2: 0.0 };
        }
        let mean = finite().sum::<f64>() / count as f64;
        Moments { count, mean, m2: finite().map(|v| (v - mean).powi(2)).sum() }
    }

    fn merge(&mut self, other: &Moments) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = *other;
            return;
        }
        let (a, b) = (self.count as f64, other.count as f64);
        let delta = other.mean - self.mean;
        self.mean += delta * b / (a + b);
        self.m2 += other.m2 + delta * delta * a * b / (a + b);
        self.count += other.count;
    }
}

impl NumberStats {
    fn of(values: &[f64]) -> NumberStats {
        let moments = Moments::of(values);
        let missing = values.len() as u64 - moments.count;
        NumberStats { moments, missing, quantiles: Quantiles::of(values.iter().copied(), EXACT_VALUES) }
    }

    fn merge(&mut self, other: &NumberStats) {
        self.moments.merge(&other.moments);
        self.missing += other.missing;
        self.quantiles.merge(&other.quantiles);
    }
}

fn merge_tallies(mine: &mut Tallies, theirs: &Tallies) {
    theirs.iter().for_each(|(text, tally)| merge_into(mine, text, tally));
}

impl FeatureStats {
    /// Adds the rows `other` summarises; parts merged in the same order give the same result.
    pub fn merge(&mut self, other: &FeatureStats) {
        self.all.merge(&other.all);
        for (mine, theirs) in self.inputs.iter_mut().zip(&other.inputs) {
            match (mine, theirs) {
                (InputStats::Number(mine), InputStats::Number(theirs)) => mine.merge(theirs),
                (InputStats::Categorical(mine), InputStats::Categorical(theirs)) => merge_tallies(mine, theirs),
                // One column is numeric in one part and categorical in another only when the
                // parts were read with different specs; the first part's kind stands.
                _ => {}
            }
        }
        self.crosses.iter_mut().zip(&other.crosses).for_each(|(mine, theirs)| merge_tallies(mine, theirs));
    }

    pub(super) fn ordered(&self) -> bool {
        self.ordered
    }

    pub(super) fn all(&self) -> &Tally {
        &self.all
    }

    pub(super) fn inputs(&self) -> &[InputStats] {
        &self.inputs
    }

    pub(super) fn crosses(&self) -> &[Tallies] {
        &self.crosses
    }
}

impl FeatureParams {
    /// Statistics of the training rows of `frame`, whose targets `target` holds: blocks of rows
    /// are summarised side by side and merged in order.
    pub fn stats(&self, frame: &Frame, target: FitTarget) -> Result<FeatureStats, FeatureError> {
        let columns = self
            .columns
            .iter()
            .map(|(name, ..)| frame.column(name).ok_or_else(|| FeatureError::MissingColumn { column: name.clone(), kind: "feature" }))
            .collect::<Result<Vec<_>, _>>()?;
        let times = match (&self.time, self.time_parts.is_empty()) {
            (Some(time), false) => Some(time.row_times(frame)?),
            _ => None,
        };
        let crosses = self.cross_positions()?;
        let n = frame.n_rows();
        // One block, empty, for no rows.
        let blocks: Vec<Range<usize>> = (0..n.max(1)).step_by(BLOCK_ROWS).map(|s| s..n.min(s + BLOCK_ROWS)).collect();
        let parts: Vec<FeatureStats> = blocks
            .into_par_iter()
            .map(|rows| self.block_stats(&columns, times.as_deref(), &crosses, target.rows(rows.clone()), rows))
            .collect();
        let mut parts = parts.into_iter();
        let mut merged = parts.next().expect("at least one block");
        parts.for_each(|part| merged.merge(&part));
        Ok(merged)
    }

    /// Statistics of rows `rows` of `columns` and `times`, whose targets are `target`.
    fn block_stats(
        &self,
        columns: &[&Column],
        times: Option<&[f64]>,
        crosses: &[[usize; 2]],
        target: FitTarget,
        rows: Range<usize>,
    ) -> FeatureStats {
        let crossed = |name: &str| self.crosses.iter().flatten().any(|c| c == name);
        let of_columns = columns.par_iter().zip(&self.columns).map(|(column, (name, ..))| match column {
            Column::Numeric(raw) => {
                let raw = &raw[rows.clone()];
                let transforms = self.transforms.get(name).map_or(&[][..], Vec::as_slice);
                let values: Vec<f64> = raw.iter().map(|&v| apply_transforms(v, transforms)).collect();
                let keys = if crossed(name) { LevelKeys::numbers(raw) } else { LevelKeys::default() };
                (InputStats::Number(NumberStats::of(&values)), keys)
            }
            Column::Categorical { levels, codes } => {
                let keys = LevelKeys::categories(levels, &codes[rows.clone()]);
                let tallies = level_tallies(&keys.texts, keys.codes.iter().copied(), target);
                (InputStats::Categorical(tallies), if crossed(name) { keys } else { LevelKeys::default() })
            }
        });
        let of_parts = self.time_parts.par_iter().map(|&part| {
            let times = &times.expect("time parts need a time (checked with the spec)")[rows.clone()];
            let values: Vec<f64> = times.iter().map(|&t| time::part(t, part)).collect();
            let keys = if crossed(part.name()) { LevelKeys::numbers(&values) } else { LevelKeys::default() };
            (InputStats::Number(NumberStats::of(&values)), keys)
        });
        let (inputs, keys): (Vec<InputStats>, Vec<LevelKeys>) = of_columns.chain(of_parts).collect::<Vec<_>>().into_iter().unzip();
        let crosses = crosses
            .iter()
            .map(|&[a, b]| {
                let keys = LevelKeys::crossed(&keys[a], &keys[b]);
                level_tallies(&keys.texts, keys.codes.into_iter(), target)
            })
            .collect();
        let mut all = Tally::new(target.width());
        (0..rows.len()).for_each(|row| all.add_row(target, row));
        FeatureStats { ordered: target.ordering().is_some(), all, inputs, crosses }
    }
}
