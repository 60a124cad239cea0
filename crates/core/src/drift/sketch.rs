//! A mergeable quantile sketch (KLL: Karnin, Lang and Liberty, "Optimal Quantile Approximation in
//! Streams", 2016), for drift over more inference logs than one process sorts: each partition
//! of the logs is sketched apart, the sketches are merged, and the KS statistic and Wasserstein
//! distance are computed on the merged sketch's weighted items ([`super::stats::Sorted`]).
//!
//! A sketch keeps levels of items; an item of level `h` stands for `2^h` observations. When the
//! levels hold more than their capacities (`k` at the top, two thirds of the level above below
//! it), the lowest full level is sorted and every other item moves up a level. A value's rank is
//! then off by at most about `1.7 / k` of the count with high probability; [`RANK_ERROR`] is the
//! bound the tests hold the sketch to. Which half moves up alternates by a counter, so the same
//! values inserted and merged in the same order give the same sketch.

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use super::stats::Sorted;

/// Items at a sketch's top level: about 3 × this many are kept in all (24 KB).
pub const SKETCH_K: usize = 1024;

/// The largest error of a sketch's CDF at any value, as a fraction of its count, for
/// [`SKETCH_K`]: the KS statistic of two sketches is within twice this of the exact one.
pub const RANK_ERROR: f64 = 0.005;

/// A mergeable summary of a stream of finite numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuantileSketch {
    k: usize,
    /// `levels[h]`: items that each stand for `2^h` observations, unsorted.
    levels: Vec<Vec<f64>>,
    /// Compactions so far: which half of the next one moves up.
    compactions: u64,
    count: u64,
}

impl Default for QuantileSketch {
    fn default() -> Self {
        QuantileSketch::new(SKETCH_K)
    }
}

impl QuantileSketch {
    /// An empty sketch keeping `k` items at its top level (at least 8).
    pub fn new(k: usize) -> QuantileSketch {
        QuantileSketch { k: k.max(8), levels: vec![Vec::new()], compactions: 0, count: 0 }
    }

    /// The observations inserted, in this sketch and those merged into it.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Adds one observation; values that are not finite are the caller's to count as missing.
    pub fn insert(&mut self, value: f64) {
        debug_assert!(value.is_finite());
        self.levels[0].push(value);
        self.count += 1;
        if self.levels[0].len() >= self.capacity(0) {
            self.compress();
        }
    }

    /// Adds `count` observations of one value: an item at each level whose weight is a bit of
    /// `count`.
    pub fn insert_many(&mut self, value: f64, count: u64) {
        debug_assert!(value.is_finite());
        for h in (0..64).filter(|h| count >> h & 1 == 1) {
            while self.levels.len() <= h {
                self.levels.push(Vec::new());
            }
            self.levels[h].push(value);
        }
        self.count += count;
        self.compress();
    }

    /// Adds every observation of `other`.
    pub fn merge(&mut self, other: &QuantileSketch) {
        while self.levels.len() < other.levels.len() {
            self.levels.push(Vec::new());
        }
        for (mine, theirs) in self.levels.iter_mut().zip(&other.levels) {
            mine.extend_from_slice(theirs);
        }
        self.count += other.count;
        self.compactions += other.compactions;
        self.compress();
    }

    /// The kept items, sorted, and the observations each stands for.
    pub fn items(&self) -> (Vec<f64>, Vec<f64>) {
        let mut items: Vec<(f64, f64)> =
            self.levels.iter().enumerate().flat_map(|(h, level)| level.iter().map(move |&v| (v, (1u64 << h) as f64))).collect();
        items.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
        items.into_iter().unzip()
    }

    /// Runs `with` on the sketch as a weighted sorted sample.
    pub fn with_sorted<T>(&self, with: impl FnOnce(Sorted) -> T) -> T {
        let (values, weights) = self.items();
        with(Sorted { values: &values, weights: &weights })
    }

    /// Items level `h` may hold before it is compacted.
    fn capacity(&self, h: usize) -> usize {
        let depth = (self.levels.len() - 1 - h) as i32;
        ((self.k as f64 * (2.0f64 / 3.0).powi(depth)).ceil() as usize).max(2)
    }

    /// Compacts the lowest full level until every level is within its capacity. In place: a
    /// level keeps its allocation, which matters at one compaction every few inserts.
    fn compress(&mut self) {
        while let Some(h) = (0..self.levels.len()).find(|&h| self.levels[h].len() >= self.capacity(h)) {
            if h + 1 == self.levels.len() {
                self.levels.push(Vec::new());
            }
            let offset = (self.compactions % 2) as usize;
            self.compactions += 1;
            let (lower, upper) = self.levels.split_at_mut(h + 1);
            let items = &mut lower[h];
            items.sort_unstable_by(f64::total_cmp);
            // An odd item out (the largest) stays where it is.
            let odd = if items.len() % 2 == 1 { items.pop() } else { None };
            upper[0].extend(items.iter().skip(offset).step_by(2));
            items.clear();
            items.extend(odd);
        }
    }
}

/// Quantiles of a stream of finite numbers, exact while it holds at most `exact_limit`
/// distinct values (each is kept with its count), then within [`RANK_ERROR`] (they go into a
/// [`QuantileSketch`]). Parts of a stream summarised apart merge; the same values merged in the
/// same order give the same answers, so a feature fitted from merged parts does not depend on
/// the machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quantiles {
    exact_limit: usize,
    /// Each distinct value and its count, by value, while there are at most `exact_limit`.
    counts: Vec<(f64, u64)>,
    sketch: Option<QuantileSketch>,
}

impl Quantiles {
    /// The quantiles of the finite `values` (the others are the caller's to count as missing).
    pub fn of(values: impl IntoIterator<Item = f64>, exact_limit: usize) -> Quantiles {
        let mut counts: FxHashMap<u64, u64> = FxHashMap::default();
        let mut values = values.into_iter().filter(|v| v.is_finite());
        for value in values.by_ref() {
            // 0 and -0 are one value.
            *counts.entry((value + 0.0).to_bits()).or_default() += 1;
            if counts.len() > exact_limit {
                break;
            }
        }
        let mut counts: Vec<(f64, u64)> = counts.into_iter().map(|(bits, count)| (f64::from_bits(bits), count)).collect();
        counts.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
        let mut quantiles = Quantiles { exact_limit, counts, sketch: None };
        if quantiles.counts.len() > exact_limit {
            quantiles.spill();
            let sketch = quantiles.sketch.as_mut().expect("spilled into a sketch");
            values.for_each(|value| sketch.insert(value));
        }
        quantiles
    }

    /// The values summarised.
    pub fn count(&self) -> u64 {
        self.sketch.as_ref().map_or_else(|| self.counts.iter().map(|&(_, count)| count).sum(), QuantileSketch::count)
    }

    /// Whether the answers are exact.
    pub fn is_exact(&self) -> bool {
        self.sketch.is_none()
    }

    /// Moves the counted values into a sketch, in order of value, past the exact limit.
    fn spill(&mut self) {
        let mut sketch = QuantileSketch::default();
        std::mem::take(&mut self.counts).into_iter().for_each(|(value, count)| sketch.insert_many(value, count));
        self.sketch = Some(sketch);
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &Quantiles) {
        if self.sketch.is_none() && other.sketch.is_none() {
            let mine = std::mem::take(&mut self.counts);
            self.counts = merge_counts(mine, &other.counts);
            if self.counts.len() > self.exact_limit {
                self.spill();
            }
            return;
        }
        if self.sketch.is_none() {
            self.spill();
        }
        let sketch = self.sketch.as_mut().expect("made a sketch above");
        match &other.sketch {
            Some(theirs) => sketch.merge(theirs),
            None => other.counts.iter().for_each(|&(value, count)| sketch.insert_many(value, count)),
        }
    }

    /// The value with `rank` values below it in sorted order (0 is the least), with how many
    /// values lie below it and how many at or below it; `None` when there are no more than
    /// `rank` values. One pass over the kept values.
    pub fn at_rank(&self, rank: u64) -> Option<AtRank> {
        match &self.sketch {
            None => at_rank_of(self.counts.iter().copied(), rank),
            Some(sketch) => {
                let (items, weights) = sketch.items();
                at_rank_of(items.into_iter().zip(weights.into_iter().map(|weight| weight as u64)), rank)
            }
        }
    }
}

/// A value found by rank in [`Quantiles`], with the values below it and at or below it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AtRank {
    pub value: f64,
    pub below: u64,
    pub at_or_below: u64,
}

/// [`Quantiles::at_rank`] over values sorted by value, each with its count (a value may come
/// more than once, as a sketch's levels hold it).
fn at_rank_of(sorted: impl Iterator<Item = (f64, u64)>, rank: u64) -> Option<AtRank> {
    let mut found: Option<AtRank> = None;
    let (mut seen, mut before_value, mut last) = (0u64, 0u64, f64::NAN);
    for (value, count) in sorted {
        if let Some(at) = found.as_mut() {
            if value != at.value {
                break;
            }
            at.at_or_below += count;
            continue;
        }
        if value != last {
            (before_value, last) = (seen, value);
        }
        seen += count;
        if seen > rank {
            found = Some(AtRank { value, below: before_value, at_or_below: seen });
        }
    }
    found
}

/// Two lists of counts by value, as one.
fn merge_counts(a: Vec<(f64, u64)>, b: &[(f64, u64)]) -> Vec<(f64, u64)> {
    let mut merged = Vec::with_capacity(a.len() + b.len());
    let (mut a, mut b) = (a.into_iter().peekable(), b.iter().copied().peekable());
    loop {
        let next = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) => match x.0.total_cmp(&y.0) {
                std::cmp::Ordering::Less => a.next(),
                std::cmp::Ordering::Greater => b.next(),
                std::cmp::Ordering::Equal => {
                    let (x, y) = (a.next().expect("peeked"), b.next().expect("peeked"));
                    Some((x.0, x.1 + y.1))
                }
            },
            (Some(_), None) => a.next(),
            (None, Some(_)) => b.next(),
            (None, None) => break,
        };
        merged.extend(next);
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::super::stats::{ks_two_sample, ks_weighted, wasserstein, wasserstein_weighted};
    use super::*;

    /// A seeded stream of `n` values from a skewed mixture, shifted by `shift`.
    fn stream(n: usize, seed: u64, shift: f64) -> Vec<f64> {
        let mut state = seed;
        (0..n)
            .map(|_| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let u = (state >> 11) as f64 / (1u64 << 53) as f64;
                let tail = if state.is_multiple_of(7) { 50.0 * u * u } else { 0.0 };
                shift + 10.0 * u + tail
            })
            .collect()
    }

    fn sketch_in_parts(values: &[f64], parts: usize) -> QuantileSketch {
        let mut merged = QuantileSketch::default();
        for part in values.chunks(values.len().div_ceil(parts)) {
            let mut sketch = QuantileSketch::default();
            part.iter().for_each(|&v| sketch.insert(v));
            merged.merge(&sketch);
        }
        merged
    }

    #[test]
    fn a_merged_sketch_ranks_every_value_within_the_bound() {
        let values = stream(300_000, 7, 0.0);
        let sorted = sorted(&values);
        // In any order: arrival order, and sorted (as time-ordered values arrive).
        for (values, parts) in [(&values, 1), (&values, 16), (&sorted, 1), (&sorted, 16)] {
            let sketch = sketch_in_parts(values, parts);
            assert_eq!(sketch.count(), 300_000);
            let (items, weights) = sketch.items();
            assert!(items.len() < 4 * SKETCH_K, "{} items kept", items.len());
            assert_eq!(weights.iter().sum::<f64>(), 300_000.0);
            let mut below = 0.0;
            let mut worst = 0.0f64;
            for (value, weight) in items.iter().zip(&weights) {
                below += weight;
                let exact = sorted.partition_point(|v| v <= value) as f64;
                worst = worst.max((below - exact).abs() / 300_000.0);
            }
            assert!(worst <= RANK_ERROR, "{parts} parts: rank error {worst}");
        }
    }

    #[test]
    fn drift_statistics_of_sketches_are_within_the_bound_of_the_exact_ones() {
        let reference = stream(200_000, 1, 0.0);
        for shift in [0.0, 0.3, 2.0] {
            let current = stream(400_000, 2, shift);
            let exact_ks = ks_two_sample(&sorted(&reference), &sorted(&current)).statistic;
            let exact_w = wasserstein(&sorted(&reference), &sorted(&current));
            let (a, b) = (sketch_in_parts(&reference, 8), sketch_in_parts(&current, 32));
            let ks = a.with_sorted(|a| b.with_sorted(|b| ks_weighted(a, b))).statistic;
            let w = a.with_sorted(|a| b.with_sorted(|b| wasserstein_weighted(a, b)));
            assert!((ks - exact_ks).abs() <= 2.0 * RANK_ERROR, "shift {shift}: KS {ks} against {exact_ks}");
            // The area between CDFs moves by at most the rank error times the range.
            let range = 60.0 + shift;
            assert!((w - exact_w).abs() <= 2.0 * RANK_ERROR * range, "shift {shift}: Wasserstein {w} against {exact_w}");
        }
    }

    #[test]
    fn the_same_values_in_the_same_order_give_the_same_sketch() {
        let values = stream(50_000, 3, 0.0);
        assert_eq!(sketch_in_parts(&values, 4), sketch_in_parts(&values, 4));
    }

    #[test]
    fn quantiles_count_each_value_up_to_the_limit_then_sketch_them() {
        let values: Vec<f64> = (0..10_000).map(|i| f64::from(i % 100)).collect();
        let counted = Quantiles::of(values.iter().copied(), 100);
        assert!(counted.is_exact() && counted.count() == 10_000);
        let value = |rank| counted.at_rank(rank).map(|at| at.value);
        assert_eq!((value(0), value(9_999), value(10_000)), (Some(0.0), Some(99.0), None));
        assert_eq!(counted.at_rank(5_050), Some(AtRank { value: 50.0, below: 5_000, at_or_below: 5_100 }));
        // A part with one more distinct value (0 and -0 are one) spills the merge into a sketch.
        let mut merged = counted.clone();
        merged.merge(&Quantiles::of([100.5, -0.0, 0.0, f64::NAN], 100));
        assert!(!merged.is_exact());
        assert_eq!(merged.count(), 10_003);
        let median = merged.at_rank(5_001).unwrap().value;
        assert!((median - 50.0).abs() <= 1.0, "{median}");
    }

    fn sorted(values: &[f64]) -> Vec<f64> {
        let mut sorted = values.to_vec();
        sorted.sort_unstable_by(f64::total_cmp);
        sorted
    }
}
