//! Training and holdout rows.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// Row indices of the training and holdout sets.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Split {
    pub train: Vec<usize>,
    pub holdout: Vec<usize>,
}

fn holdout_size(n: usize, share: f64) -> usize {
    ((n as f64 * share).ceil() as usize).clamp(1, n.saturating_sub(1))
}

/// The latest `share` of rows by time are held out (ties keep row order).
pub fn by_time(times: &[f64], share: f64) -> Split {
    let mut order: Vec<usize> = (0..times.len()).collect();
    order.par_sort_unstable_by(|&a, &b| times[a].total_cmp(&times[b]).then(a.cmp(&b)));
    let holdout = order.split_off(times.len() - holdout_size(times.len(), share));
    Split { train: order, holdout }
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

    #[test]
    fn time_split_holds_out_the_latest_rows() {
        let split = by_time(&[5.0, 1.0, 3.0, 2.0, 4.0], 0.4);
        assert_eq!(split.train, [1, 3, 2]);
        assert_eq!(split.holdout, [4, 0]);
        // The shipped data: 8645 rows give 6916 / 1729 as in QUALITY.md.
        let times: Vec<f64> = (0..8645).map(f64::from).collect();
        assert_eq!(by_time(&times, 0.2).holdout.len(), 1729);
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
