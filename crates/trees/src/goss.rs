//! Gradient-based one-side sampling (GOSS, the LightGBM paper's §3): each boosting round grows
//! its trees on the rows of the largest `|gradient × hessian|` and a random share of the others,
//! whose gradients and hessians are scaled up so that the sums stay unbiased. Rows with small
//! gradients are already fitted well; skipping most of them cuts the histogram work of a round to
//! a third.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// Share of the rows with the largest gradients that every round keeps.
pub(crate) const TOP_RATE: f64 = 0.2;
/// Share of all rows drawn at random from the others.
pub(crate) const OTHER_RATE: f64 = 0.1;

/// The rows a round grows on, and the ones it leaves out.
pub(crate) struct Sample {
    /// Sorted.
    pub kept: Vec<u32>,
    /// Sorted.
    pub left_out: Vec<u32>,
}

/// Draws the rows of one round from `rows` (sorted) and scales the gradients and hessians of the
/// randomly drawn ones in `pairs` (one block per output, indexed by row) by
/// `(1 − TOP_RATE) / OTHER_RATE`. The draw depends only on the gradients and `rng`, never on the
/// number of threads.
pub(crate) fn sample(rows: &[u32], pairs: &mut [Vec<[f64; 2]>], rng: &mut ChaCha8Rng) -> Sample {
    let n = rows.len();
    let n_top = (n as f64 * TOP_RATE) as usize;
    let n_other = (n as f64 * OTHER_RATE) as usize;
    if n_top == 0 || n_other == 0 || n_top + n_other >= n {
        return Sample { kept: rows.to_vec(), left_out: Vec::new() };
    }
    let scores: Vec<f64> =
        rows.par_iter().map(|&row| pairs.iter().map(|output| (output[row as usize][0] * output[row as usize][1]).abs()).sum()).collect();
    let mut sorted = scores.clone();
    let (_, &mut threshold, _) = sorted.select_nth_unstable_by(n - n_top, f64::total_cmp);
    // Rows tied at the threshold are top rows, in row order, until `n_top` are taken.
    let mut ties_left = n_top - scores.iter().filter(|&&score| score > threshold).count();
    let amplify = (1.0 - TOP_RATE) / OTHER_RATE;
    let (mut rest_left, mut others_left) = (n - n_top, n_other);
    let mut kept = Vec::with_capacity(n_top + n_other);
    let mut left_out = Vec::with_capacity(n - n_top - n_other);
    for (&row, &score) in rows.iter().zip(&scores) {
        if score > threshold || (score == threshold && ties_left > 0) {
            ties_left -= usize::from(score == threshold);
            kept.push(row);
            continue;
        }
        // Selection sampling: exactly `n_other` of the other rows, each equally likely.
        if rng.random_range(0..rest_left) < others_left {
            others_left -= 1;
            for output in pairs.iter_mut() {
                let pair = &mut output[row as usize];
                pair[0] *= amplify;
                pair[1] *= amplify;
            }
            kept.push(row);
        } else {
            left_out.push(row);
        }
        rest_left -= 1;
    }
    Sample { kept, left_out }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    fn draw(gradients: &[f64]) -> (Sample, Vec<[f64; 2]>) {
        let mut pairs = vec![gradients.iter().map(|&g| [g, 1.0]).collect::<Vec<_>>()];
        let rows: Vec<u32> = (0..gradients.len() as u32).collect();
        let sample = sample(&rows, &mut pairs, &mut ChaCha8Rng::seed_from_u64(1));
        (sample, pairs.remove(0))
    }

    #[test]
    fn the_largest_gradients_are_kept_and_the_drawn_others_weighted_up() {
        let gradients: Vec<f64> = (0..1000).map(|row| f64::from((row * 7919) % 1000) - 500.0).collect();
        let (Sample { kept, left_out }, pairs) = draw(&gradients);
        assert_eq!((kept.len(), kept.len() + left_out.len()), (300, 1000));
        assert!(kept.is_sorted() && left_out.is_sorted());
        let mut by_size: Vec<usize> = (0..1000).collect();
        by_size.sort_by(|&a, &b| gradients[b].abs().total_cmp(&gradients[a].abs()));
        let top = &by_size[..200];
        assert!(top.iter().all(|row| kept.contains(&(*row as u32)) && pairs[*row] == [gradients[*row], 1.0]));
        for row in kept.iter().map(|&row| row as usize).filter(|row| !top.contains(row)) {
            assert_eq!(pairs[row], [gradients[row] * 8.0, 8.0], "row {row} is drawn and weighted up");
        }
        assert!(left_out.iter().all(|&row| pairs[row as usize] == [gradients[row as usize], 1.0]));
    }

    #[test]
    fn ties_at_the_threshold_are_taken_in_row_order() {
        let (Sample { kept, .. }, pairs) = draw(&[5.0; 1000]);
        assert_eq!(kept.len(), 300);
        assert!((0..200).all(|row| kept[row] == row as u32 && pairs[row] == [5.0, 1.0]));
        assert!(kept[200..].iter().all(|&row| row >= 200 && pairs[row as usize] == [40.0, 8.0]));
    }
}
