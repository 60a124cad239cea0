//! Training and holdout rows.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::drift::{AtRank, Quantiles};

/// Row indices of the training and holdout sets.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Split {
    pub train: Vec<usize>,
    pub holdout: Vec<usize>,
}

fn holdout_size(n: usize, share: f64) -> usize {
    ((n as f64 * share).ceil() as usize).clamp(1, n.saturating_sub(1))
}

/// Distinct times counted exactly for a time split: past this many, the cutoff is found in a
/// sketch, within [`RANK_ERROR`] of the share.
pub const EXACT_TIMES: usize = 1 << 20;

/// Why rows cannot be split by time.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SplitError {
    #[error("no row has a time, so none can be held out by time; set split.method = \"random\"")]
    NoTimes,
    #[error("every row has the same time ({0}), so a time split holds out all or nothing; set split.method = \"random\"")]
    OneTime(f64),
}

/// Where a time split cuts: rows after `at` are held out, those at `at` too when
/// `ties_held_out`, and so are rows without a time. Rows of one time stay on one side, so the
/// split does not depend on the order of the rows.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TimeCutoff {
    pub at: f64,
    pub ties_held_out: bool,
}

impl TimeCutoff {
    /// The cutoff that holds out the latest `share` of the rows: the boundary between two
    /// distinct times nearest that share, leaving both sides some rows. `times` summarises the
    /// rows' finite times (merged from parts of the rows, or not); `missing` more rows have none.
    pub fn fit(times: &Quantiles, missing: u64, share: f64) -> Result<TimeCutoff, SplitError> {
        let with_time = times.count();
        if with_time == 0 {
            return Err(SplitError::NoTimes);
        }
        let wanted = holdout_size((with_time + missing) as usize, share) as u64;
        let Some(rank) = with_time.checked_sub(wanted.saturating_sub(missing).max(1)) else {
            return Err(SplitError::NoTimes);
        };
        let AtRank { value: at, below, at_or_below } = times.at_rank(rank).expect("the rank is below the count");
        // Held out with the ties, and without them; each must leave rows on both sides.
        let options = [(true, with_time - below + missing), (false, with_time - at_or_below + missing)];
        options
            .into_iter()
            .filter(|&(_, held_out)| held_out > 0 && held_out < with_time + missing)
            .min_by_key(|&(_, held_out)| held_out.abs_diff(wanted))
            .map(|(ties_held_out, _)| TimeCutoff { at, ties_held_out })
            .ok_or(SplitError::OneTime(at))
    }

    /// Whether a row of this time is held out.
    pub fn holds_out(&self, time: f64) -> bool {
        !time.is_finite() || time > self.at || (self.ties_held_out && time == self.at)
    }
}

/// The latest `share` of rows by time are held out (see [`TimeCutoff`]).
pub fn by_time(times: &[f64], share: f64) -> Result<Split, SplitError> {
    let quantiles = Quantiles::of(times.iter().copied(), EXACT_TIMES);
    let cutoff = TimeCutoff::fit(&quantiles, times.len() as u64 - quantiles.count(), share)?;
    let (holdout, train): (Vec<usize>, Vec<usize>) = (0..times.len()).partition(|&row| cutoff.holds_out(times[row]));
    Ok(Split { train, holdout })
}

/// A seeded random `share` of rows is held out, stratified by class when `classes` is given.
pub fn random(n: usize, share: f64, seed: u64, classes: Option<&[f64]>) -> Split {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut groups: std::collections::BTreeMap<i64, Vec<usize>> = std::collections::BTreeMap::new();
    for row in 0..n {
        groups.entry(classes.map_or(0, |c| c[row] as i64)).or_default().push(row);
    }
    let (mut train, mut holdout) = (Vec::new(), Vec::new());
    for (_, mut rows) in groups {
        rows.shuffle(&mut rng);
        let k = if rows.len() < 2 { 0 } else { holdout_size(rows.len(), share) };
        holdout.extend_from_slice(&rows[..k]);
        train.extend_from_slice(&rows[k..]);
    }
    train.sort_unstable();
    holdout.sort_unstable();
    Split { train, holdout }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drift::RANK_ERROR;

    #[test]
    fn time_split_holds_out_the_latest_rows() {
        let split = by_time(&[5.0, 1.0, 3.0, 2.0, 4.0], 0.4).unwrap();
        assert_eq!(split.train, [1, 2, 3]);
        assert_eq!(split.holdout, [0, 4]);
        // The shipped data: 8645 rows give 6916 / 1729 as in QUALITY.md.
        let times: Vec<f64> = (0..8645).map(f64::from).collect();
        assert_eq!(by_time(&times, 0.2).unwrap().holdout.len(), 1729);
    }

    #[test]
    fn rows_of_one_time_stay_on_one_side_nearest_the_share() {
        // Days of 10 rows each: a 30 % holdout of 40 rows (12) ends inside day 3, so the split
        // takes the boundary nearest 12 rows, day 4 alone.
        let days: Vec<f64> = (0..40).map(|row| f64::from(row / 10 + 1)).collect();
        let split = by_time(&days, 0.3).unwrap();
        assert_eq!(split.holdout, (30..40).collect::<Vec<_>>());
        // Rows without a time are held out; a split needs two distinct times.
        let split = by_time(&[1.0, f64::NAN, 2.0, 1.0], 0.3).unwrap();
        assert_eq!(split.holdout, [1, 2]);
        assert_eq!(by_time(&[3.0; 5], 0.2), Err(SplitError::OneTime(3.0)));
        assert_eq!(by_time(&[f64::NAN; 5], 0.2), Err(SplitError::NoTimes));
    }

    #[test]
    fn a_cutoff_from_merged_parts_holds_out_the_share_within_the_bound() {
        // 3M distinct times in 6 parts, beyond the exact limit: merged as a sketch.
        let parts: Vec<Quantiles> = (0..6).map(|part| Quantiles::of((0..500_000).map(|i| f64::from(i * 6 + part)), EXACT_TIMES)).collect();
        let mut merged = parts[0].clone();
        parts[1..].iter().for_each(|part| merged.merge(part));
        assert!(!merged.is_exact());
        let cutoff = TimeCutoff::fit(&merged, 0, 0.2).unwrap();
        let held_out = 3_000_000.0 - cutoff.at - f64::from(u8::from(!cutoff.ties_held_out));
        assert!((held_out / 3e6 - 0.2).abs() <= RANK_ERROR, "{held_out} rows held out of 3M");
        // Below the limit, parts merge exactly: the same cutoff as all rows at once.
        let times: Vec<f64> = (0..10_000).map(|i| f64::from(i % 977)).collect();
        let mut merged = Quantiles::of(times[..3000].iter().copied(), EXACT_TIMES);
        merged.merge(&Quantiles::of(times[3000..].iter().copied(), EXACT_TIMES));
        let whole = Quantiles::of(times.iter().copied(), EXACT_TIMES);
        assert_eq!(TimeCutoff::fit(&merged, 0, 0.2), TimeCutoff::fit(&whole, 0, 0.2));
    }

    #[test]
    fn random_split_is_seeded_and_stratified() {
        let classes: Vec<f64> = (0..100).map(|i| f64::from(i % 4 == 0)).collect();
        let split = random(100, 0.2, 7, Some(&classes));
        assert_eq!(split, random(100, 0.2, 7, Some(&classes)));
        assert_ne!(split, random(100, 0.2, 8, Some(&classes)));
        assert_eq!(split.holdout.len(), 20);
        assert_eq!(split.holdout.iter().filter(|&&r| classes[r] == 1.0).count(), 5);
    }
}
