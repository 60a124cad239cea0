//! Growing one tree on binned features from per-row gradients and hessians.
//!
//! Every split maximises the second-order gain `sum_c G_c^2 / (H + l2)` of its children over the
//! parent, which is variance reduction for squared error and Gini-like impurity reduction for
//! one-hot targets. Histograms of the larger child come from the parent minus the smaller child.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use rand::seq::index::sample;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::bins::{BIN_SLOTS, BinnedMatrix, FeatureBins, MISSING_BIN};
use crate::tree::{Node, Tree};

/// Histograms over this many (row, feature) cells or more are built in parallel.
const PARALLEL_CELLS: usize = 64 * 1024;

/// How a tree grows.
#[derive(Debug, Clone)]
pub(crate) struct GrowConfig {
    /// Best-first growth up to this many leaves; depth-first without a limit when `None`.
    pub max_leaf_nodes: Option<usize>,
    pub max_depth: Option<usize>,
    pub min_samples_leaf: usize,
    pub min_hessian_leaf: f64,
    pub l2: f64,
    /// Multiplies every leaf value (the learning rate of boosting).
    pub shrinkage: f64,
    /// Features drawn at random for each node (random forests); all when `None`.
    pub features_per_node: Option<usize>,
}

/// Per-row gradients (`width` per row) and hessians (one per row; all ones when `None`).
pub(crate) struct Gradients<'a> {
    pub grad: &'a [f64],
    pub hess: Option<&'a [f64]>,
    pub width: usize,
}

/// A grown tree and where its training rows ended up.
pub(crate) struct Grown {
    pub tree: Tree,
    /// The rows, permuted so that each leaf owns a contiguous range.
    pub rows: Vec<u32>,
    /// `(start, end, leaf)` for every leaf.
    pub leaves: Vec<(usize, usize, usize)>,
    /// `(feature, gain)` of every split.
    pub gains: Vec<(usize, f64)>,
}

/// Sums of gradients, hessian and row count: `[g_0 .. g_{w-1}, h, n]`.
type Stats = Vec<f64>;

#[derive(Debug, Clone)]
struct Split {
    feature: usize,
    bin: usize,
    missing_left: bool,
    gain: f64,
    left: Stats,
}

/// Histograms of a node: `BIN_SLOTS` slots of `stride` sums for each feature in `features`.
struct Histograms {
    features: Vec<usize>,
    sums: Vec<f64>,
}

struct Pending {
    node: usize,
    start: usize,
    end: usize,
    depth: usize,
    stats: Stats,
    hist: Histograms,
    split: Split,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending {
    /// Larger gain first; among equal gains the node created first.
    fn cmp(&self, other: &Self) -> Ordering {
        self.split.gain.total_cmp(&other.split.gain).then(other.node.cmp(&self.node))
    }
}

/// Grows one tree.
pub(crate) struct Grower<'a> {
    pub bins: &'a BinnedMatrix,
    pub edges: &'a [FeatureBins],
    pub grads: Gradients<'a>,
    pub config: &'a GrowConfig,
}

impl Grower<'_> {
    fn stride(&self) -> usize {
        self.grads.width + 2
    }

    pub fn grow(&self, mut rows: Vec<u32>, rng: &mut ChaCha8Rng) -> Grown {
        let width = self.grads.width;
        let mut nodes = vec![Node::leaf(0)];
        let mut leaf_values: Vec<f64> = Vec::new();
        let mut leaves = Vec::new();
        let mut gains = Vec::new();
        let mut scratch = Vec::with_capacity(rows.len());

        let root_stats = self.sum_rows(&rows);
        let root_features = self.draw_features(rng);
        let root_hist = self.build(&rows, root_features);
        let mut frontier = Frontier::new(self.config.max_leaf_nodes.is_some());
        let mut n_leaves = 1;
        let mut finish_leaf = |node: usize, start: usize, end: usize, stats: &Stats, nodes: &mut Vec<Node>| {
            let leaf = leaf_values.len() / width;
            let denominator = stats[width] + self.config.l2;
            for gradient in &stats[..width] {
                let value = if denominator > 0.0 { -gradient / denominator } else { 0.0 };
                leaf_values.push(value * self.config.shrinkage);
            }
            nodes[node] = Node::leaf(leaf as u32);
            leaves.push((start, end, leaf));
        };

        match self.pending(0, 0, rows.len(), 0, root_stats, root_hist) {
            Ok(pending) => frontier.push(pending),
            Err((stats, _)) => finish_leaf(0, 0, rows.len(), &stats, &mut nodes),
        }
        let max_leaves = self.config.max_leaf_nodes.unwrap_or(usize::MAX);
        while n_leaves < max_leaves {
            let Some(parent) = frontier.pop() else { break };
            let split = &parent.split;
            let middle = self.partition(&mut rows[parent.start..parent.end], split, &mut scratch) + parent.start;
            let (left_node, right_node) = (nodes.len(), nodes.len() + 1);
            let no_missing = parent.hist_missing_count(split.feature, self.stride()) == 0.0;
            let missing_left = if no_missing { middle - parent.start >= parent.end - middle } else { split.missing_left };
            let n_bins = self.edges[split.feature].n_bins();
            nodes[parent.node] = Node {
                feature: split.feature as u32,
                threshold: if split.bin + 1 < n_bins { self.edges[split.feature].edges[split.bin] } else { f64::INFINITY },
                missing_left,
                left: left_node as u32,
                right: right_node as u32,
            };
            nodes.push(Node::leaf(0));
            nodes.push(Node::leaf(0));
            gains.push((split.feature, split.gain));
            n_leaves += 1;

            let left_stats = split.left.clone();
            let right_stats: Stats = parent.stats.iter().zip(&left_stats).map(|(p, l)| p - l).collect();
            let (left_hist, right_hist) = self.child_histograms(&rows, &parent, middle, rng);
            let depth = parent.depth + 1;
            for (node, start, end, stats, hist) in
                [(left_node, parent.start, middle, left_stats, left_hist), (right_node, middle, parent.end, right_stats, right_hist)]
            {
                match self.pending(node, start, end, depth, stats, hist) {
                    Ok(pending) => frontier.push(pending),
                    Err((stats, _)) => finish_leaf(node, start, end, &stats, &mut nodes),
                }
            }
        }
        for pending in frontier.drain() {
            finish_leaf(pending.node, pending.start, pending.end, &pending.stats, &mut nodes);
        }
        Grown { tree: Tree { nodes, leaf_values, width, output: 0 }, rows, leaves, gains }
    }

    /// A node with its best split, or its stats back when it must stay a leaf.
    fn pending(
        &self,
        node: usize,
        start: usize,
        end: usize,
        depth: usize,
        stats: Stats,
        hist: Histograms,
    ) -> Result<Pending, (Stats, Histograms)> {
        let depth_left = self.config.max_depth.is_none_or(|max| depth < max);
        if !depth_left || end - start < 2 * self.config.min_samples_leaf.max(1) {
            return Err((stats, hist));
        }
        match self.best_split(&hist, &stats) {
            Some(split) => Ok(Pending { node, start, end, depth, stats, hist, split }),
            None => Err((stats, hist)),
        }
    }

    fn draw_features(&self, rng: &mut ChaCha8Rng) -> Vec<usize> {
        let n_features = self.edges.len();
        match self.config.features_per_node {
            Some(k) if k < n_features => {
                let mut drawn = sample(rng, n_features, k).into_vec();
                drawn.sort_unstable();
                drawn
            }
            _ => (0..n_features).collect(),
        }
    }

    fn child_histograms(&self, rows: &[u32], parent: &Pending, middle: usize, rng: &mut ChaCha8Rng) -> (Histograms, Histograms) {
        let left_rows = &rows[parent.start..middle];
        let right_rows = &rows[middle..parent.end];
        if self.config.features_per_node.is_some() {
            let left = self.build(left_rows, self.draw_features(rng));
            let right = self.build(right_rows, self.draw_features(rng));
            return (left, right);
        }
        let left_is_smaller = left_rows.len() <= right_rows.len();
        let smaller = self.build(if left_is_smaller { left_rows } else { right_rows }, parent.hist.features.clone());
        let larger_sums = parent.hist.sums.iter().zip(&smaller.sums).map(|(p, s)| p - s).collect();
        let larger = Histograms { features: parent.hist.features.clone(), sums: larger_sums };
        if left_is_smaller { (smaller, larger) } else { (larger, smaller) }
    }

    fn sum_rows(&self, rows: &[u32]) -> Stats {
        let width = self.grads.width;
        let mut stats = vec![0.0; width + 2];
        for &row in rows {
            let row = row as usize;
            for (sum, gradient) in stats.iter_mut().zip(&self.grads.grad[row * width..(row + 1) * width]) {
                *sum += gradient;
            }
            stats[width] += self.grads.hess.map_or(1.0, |h| h[row]);
        }
        stats[width + 1] = rows.len() as f64;
        stats
    }

    fn build(&self, rows: &[u32], features: Vec<usize>) -> Histograms {
        let width = self.grads.width;
        let stride = self.stride();
        let ordered_grad: Vec<f64> =
            rows.iter().flat_map(|&row| &self.grads.grad[row as usize * width..(row as usize + 1) * width]).copied().collect();
        let ordered_hess: Option<Vec<f64>> = self.grads.hess.map(|h| rows.iter().map(|&row| h[row as usize]).collect());
        let mut sums = vec![0.0; features.len() * BIN_SLOTS * stride];
        let fill = |(slot, hist): (usize, &mut [f64])| {
            let column = &self.bins.columns[features[slot]];
            match (&ordered_hess, width) {
                (None, 1) => single_output(hist, column, rows, &ordered_grad, None),
                (Some(hess), 1) => single_output(hist, column, rows, &ordered_grad, Some(hess.as_slice())),
                _ => {
                    for (j, &row) in rows.iter().enumerate() {
                        let at = column[row as usize] as usize * stride;
                        for c in 0..width {
                            hist[at + c] += ordered_grad[j * width + c];
                        }
                        hist[at + width] += ordered_hess.as_ref().map_or(1.0, |h| h[j]);
                        hist[at + width + 1] += 1.0;
                    }
                }
            }
        };
        let chunk = BIN_SLOTS * stride;
        if rows.len() * features.len() >= PARALLEL_CELLS {
            sums.par_chunks_mut(chunk).enumerate().for_each(fill);
        } else {
            sums.chunks_mut(chunk).enumerate().for_each(fill);
        }
        Histograms { features, sums }
    }

    fn score(&self, stats: &[f64]) -> f64 {
        let width = self.grads.width;
        let denominator = stats[width] + self.config.l2;
        if denominator <= 0.0 {
            return 0.0;
        }
        stats[..width].iter().map(|g| g * g).sum::<f64>() / denominator
    }

    fn admissible(&self, stats: &[f64]) -> bool {
        let width = self.grads.width;
        stats[width + 1] >= self.config.min_samples_leaf as f64 && stats[width] >= self.config.min_hessian_leaf
    }

    fn best_split(&self, hist: &Histograms, total: &Stats) -> Option<Split> {
        let stride = self.stride();
        let parent_score = self.score(total);
        let min_gain = 1e-12 + 1e-10 * parent_score.abs();
        let mut best: Option<Split> = None;
        let mut left = vec![0.0; stride];
        let mut right = vec![0.0; stride];
        let mut with_missing = vec![0.0; stride];
        let consider = |feature: usize, bin: usize, missing_left: bool, left: &[f64], right: &mut Vec<f64>, best: &mut Option<Split>| {
            for ((r, t), l) in right.iter_mut().zip(total).zip(left) {
                *r = t - l;
            }
            if !self.admissible(left) || !self.admissible(right) {
                return;
            }
            let gain = self.score(left) + self.score(right) - parent_score;
            if gain > min_gain && best.as_ref().is_none_or(|b| gain > b.gain) {
                *best = Some(Split { feature, bin, missing_left, gain, left: left.to_vec() });
            }
        };
        for (slot, &feature) in hist.features.iter().enumerate() {
            let sums = &hist.sums[slot * BIN_SLOTS * stride..(slot + 1) * BIN_SLOTS * stride];
            let missing = &sums[MISSING_BIN as usize * stride..(MISSING_BIN as usize + 1) * stride];
            let has_missing = missing[stride - 1] > 0.0;
            let n_bins = self.edges[feature].n_bins();
            left.iter_mut().for_each(|v| *v = 0.0);
            for bin in 0..n_bins {
                for (l, s) in left.iter_mut().zip(&sums[bin * stride..(bin + 1) * stride]) {
                    *l += s;
                }
                let last = bin + 1 == n_bins;
                if last && !has_missing {
                    break;
                }
                consider(feature, bin, false, &left, &mut right, &mut best);
                if has_missing && !last {
                    for ((w, l), m) in with_missing.iter_mut().zip(&left).zip(missing) {
                        *w = l + m;
                    }
                    consider(feature, bin, true, &with_missing, &mut right, &mut best);
                }
            }
        }
        best
    }

    /// Stable partition of `rows` by `split`; returns the number of rows going left.
    fn partition(&self, rows: &mut [u32], split: &Split, scratch: &mut Vec<u32>) -> usize {
        let column = &self.bins.columns[split.feature];
        scratch.clear();
        let mut n_left = 0;
        for i in 0..rows.len() {
            let row = rows[i];
            let bin = column[row as usize];
            let go_left = if bin == MISSING_BIN { split.missing_left } else { bin as usize <= split.bin };
            if go_left {
                rows[n_left] = row;
                n_left += 1;
            } else {
                scratch.push(row);
            }
        }
        rows[n_left..].copy_from_slice(scratch);
        n_left
    }
}

/// Partial histograms per feature in [`single_output`].
const LANES: usize = 2;

/// Fills one feature's histogram of a single-output model: `[gradient, hessian, count]` per
/// bin (the hessian is the count when `hess` is `None`). Consecutive rows often share a bin, so
/// neighbouring rows go to separate partial histograms: their additions do not wait on each
/// other.
fn single_output(hist: &mut [f64], column: &[u8], rows: &[u32], grad: &[f64], hess: Option<&[f64]>) {
    let mut partial = [[[0.0f64; 3]; BIN_SLOTS]; LANES];
    let hess_of = |j: usize| hess.map_or(1.0, |h| h[j]);
    for (j, &row) in rows.iter().enumerate() {
        let bin = &mut partial[j % LANES][column[row as usize] as usize];
        bin[0] += grad[j];
        bin[1] += hess_of(j);
        bin[2] += 1.0;
    }
    for (bin, sums) in hist.chunks_exact_mut(3).enumerate() {
        for (c, sum) in sums.iter_mut().enumerate() {
            *sum = partial.iter().map(|lane| lane[bin][c]).sum();
        }
    }
}

impl Pending {
    fn hist_missing_count(&self, feature: usize, stride: usize) -> f64 {
        let slot = self.hist.features.iter().position(|&f| f == feature).expect("split feature has a histogram");
        self.hist.sums[(slot * BIN_SLOTS + MISSING_BIN as usize) * stride + stride - 1]
    }
}

/// Nodes waiting to be split: best gain first, or depth-first.
enum Frontier {
    BestFirst(BinaryHeap<Pending>),
    DepthFirst(Vec<Pending>),
}

impl Frontier {
    fn new(best_first: bool) -> Self {
        if best_first { Frontier::BestFirst(BinaryHeap::new()) } else { Frontier::DepthFirst(Vec::new()) }
    }

    fn push(&mut self, pending: Pending) {
        match self {
            Frontier::BestFirst(heap) => heap.push(pending),
            Frontier::DepthFirst(stack) => stack.push(pending),
        }
    }

    fn pop(&mut self) -> Option<Pending> {
        match self {
            Frontier::BestFirst(heap) => heap.pop(),
            Frontier::DepthFirst(stack) => stack.pop(),
        }
    }

    fn drain(self) -> Vec<Pending> {
        match self {
            Frontier::BestFirst(heap) => heap.into_sorted_vec(),
            Frontier::DepthFirst(stack) => stack,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_output_histograms_sum_every_row_once() {
        let column: Vec<u8> = (0..101u32).map(|i| [3, 3, 3, 7, MISSING_BIN][i as usize % 5]).collect();
        let rows: Vec<u32> = (0..101).filter(|i| i % 4 != 1).collect();
        let grad: Vec<f64> = rows.iter().map(|&r| f64::from(r) * 0.5).collect();
        let hess: Vec<f64> = rows.iter().map(|&r| 1.0 + f64::from(r % 3)).collect();
        for hess in [Some(hess.as_slice()), None] {
            let mut hist = vec![0.0; BIN_SLOTS * 3];
            single_output(&mut hist, &column, &rows, &grad, hess);
            let mut expected = vec![0.0; BIN_SLOTS * 3];
            for (j, &row) in rows.iter().enumerate() {
                let at = column[row as usize] as usize * 3;
                expected[at] += grad[j];
                expected[at + 1] += hess.map_or(1.0, |h| h[j]);
                expected[at + 2] += 1.0;
            }
            assert_eq!(hist, expected);
        }
    }
}
