//! Growing one tree on binned features from per-row gradients and hessians.
//!
//! Every split maximises the second-order gain `sum_c G_c^2 / (H + l2)` of its children over the
//! parent, which is variance reduction for squared error and Gini-like impurity reduction for
//! one-hot targets. Histograms of the larger child come from the parent minus the smaller child.
//! Nodes of fewer than `SMALL_ROWS` rows have no histograms: their split comes from their rows
//! sorted by bin, the same sums in the same order, without a pass over every bin of every feature.
//!
//! Histograms hold gradient and hessian sums only, no row counts: the rows of a split's child,
//! for `min_samples_leaf`, are its hessian times the node's rows per unit of hessian, as
//! LightGBM does. That is exact when the hessian is constant (squared error, forests) and an
//! estimate otherwise; hessians are positive, so a bin with rows has a positive hessian.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::ops::Range;

use rand::seq::index::sample;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::bins::{BIN_SLOTS, BinnedMatrix, FeatureBins, MISSING_BIN};
use crate::tree::{Node, Tree};

/// Histograms over this many (row, feature) cells or more are built in parallel.
const PARALLEL_CELLS: usize = 64 * 1024;
/// Rows per block of [`Grower::build_dense`].
const HISTOGRAM_BLOCK_ROWS: usize = 16 * 1024;
/// Nodes of this many rows or more are partitioned in parallel.
const PARALLEL_PARTITION_ROWS: usize = 64 * 1024;
/// Nodes of fewer rows find their split from their rows, sorted by bin for each feature, rather
/// than from histograms of all `BIN_SLOTS` bins of every feature: fully grown trees have many
/// tiny nodes, and a histogram costs the same however few rows fill it.
const SMALL_ROWS: usize = 128;

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

/// Per-row gradients and hessians.
pub(crate) enum Gradients<'a> {
    /// One output: `[gradient, hessian]` of each row, side by side so that gathering the rows
    /// of a node reads one place per row.
    Single(&'a [[f64; 2]]),
    /// `width` gradients per row (row-major); every hessian is 1.
    Multi { grad: &'a [f64], width: usize },
}

impl Gradients<'_> {
    fn width(&self) -> usize {
        match self {
            Gradients::Single(_) => 1,
            Gradients::Multi { width, .. } => *width,
        }
    }

    /// The gradients and hessian of one row.
    fn of(&self, row: usize) -> (&[f64], f64) {
        match self {
            Gradients::Single(pairs) => (&pairs[row][..1], pairs[row][1]),
            Gradients::Multi { grad, width } => (&grad[row * width..(row + 1) * width], 1.0),
        }
    }
}

/// A grown tree and where its training rows ended up.
pub(crate) struct Grown {
    pub tree: Tree,
    /// The rows, permuted so that each leaf owns a contiguous range.
    pub rows: Vec<u32>,
    /// `(start, end, leaf)` for every leaf.
    pub leaves: Vec<(usize, usize, usize)>,
    /// Split gains summed per feature.
    pub gains: Vec<f64>,
}

/// Sums of gradients and hessian: `[g_0 .. g_{w-1}, h]`.
type Stats = Vec<f64>;

#[derive(Debug, Clone)]
struct Split {
    feature: usize,
    bin: usize,
    missing_left: bool,
    /// Whether rows of the node miss the split feature.
    has_missing: bool,
    gain: f64,
    left: Stats,
}

/// The features a node may split on and, unless it is small, their histograms.
struct Histograms {
    features: Vec<usize>,
    /// `BIN_SLOTS` bins per feature, in feature order, `stride` sums (gradients, hessian) per bin;
    /// `None` for a node of fewer than `SMALL_ROWS` rows.
    sums: Option<Vec<f64>>,
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
        self.grads.width() + 1
    }

    pub fn grow(&self, mut rows: Vec<u32>, rng: &mut ChaCha8Rng) -> Grown {
        let width = self.grads.width();
        let mut nodes = vec![Node::leaf(0)];
        let mut covers = vec![rows.len() as u32];
        let mut leaf_values: Vec<f64> = Vec::new();
        let mut leaves = Vec::new();
        let mut gains = vec![0.0; self.edges.len()];

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

        match self.pending(&rows, 0, 0..rows.len(), 0, root_stats, root_hist) {
            Ok(pending) => frontier.push(pending),
            Err(stats) => finish_leaf(0, 0, rows.len(), &stats, &mut nodes),
        }
        let max_leaves = self.config.max_leaf_nodes.unwrap_or(usize::MAX);
        while n_leaves < max_leaves {
            let Some(parent) = frontier.pop() else { break };
            let split = &parent.split;
            let middle = self.partition(&mut rows[parent.start..parent.end], split) + parent.start;
            let (left_node, right_node) = (nodes.len(), nodes.len() + 1);
            let missing_left = if split.has_missing { split.missing_left } else { middle - parent.start >= parent.end - middle };
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
            covers.extend([(middle - parent.start) as u32, (parent.end - middle) as u32]);
            gains[split.feature] += split.gain;
            n_leaves += 1;

            let left_stats = split.left.clone();
            let right_stats: Stats = parent.stats.iter().zip(&left_stats).map(|(p, l)| p - l).collect();
            let (start, end, depth) = (parent.start, parent.end, parent.depth + 1);
            let (left_hist, right_hist) = self.child_histograms(&rows, parent, middle, rng);
            for (node, start, end, stats, hist) in
                [(left_node, start, middle, left_stats, left_hist), (right_node, middle, end, right_stats, right_hist)]
            {
                match self.pending(&rows, node, start..end, depth, stats, hist) {
                    Ok(pending) => frontier.push(pending),
                    Err(stats) => finish_leaf(node, start, end, &stats, &mut nodes),
                }
            }
        }
        for pending in frontier.drain() {
            finish_leaf(pending.node, pending.start, pending.end, &pending.stats, &mut nodes);
        }
        Grown { tree: Tree::new(nodes, covers, leaf_values, width), rows, leaves, gains }
    }

    /// A node (rows `span` of `rows`) with its best split, or its stats back when it must stay
    /// a leaf.
    fn pending(
        &self,
        rows: &[u32],
        node: usize,
        span: Range<usize>,
        depth: usize,
        stats: Stats,
        hist: Histograms,
    ) -> Result<Pending, Stats> {
        let Range { start, end } = span;
        let depth_left = self.config.max_depth.is_none_or(|max| depth < max);
        if !depth_left || end - start < 2 * self.config.min_samples_leaf.max(1) {
            return Err(stats);
        }
        let split = match &hist.sums {
            Some(sums) => self.best_split(&hist.features, sums, &stats, end - start),
            None => self.best_split_of_rows(&rows[start..end], &hist.features, &stats),
        };
        match split {
            Some(split) => Ok(Pending { node, start, end, depth, stats, hist, split }),
            None => Err(stats),
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

    /// Whether each node draws its own features (random forests with a feature fraction).
    fn draws_features(&self) -> bool {
        self.config.features_per_node.is_some_and(|k| k < self.edges.len())
    }

    fn child_histograms(&self, rows: &[u32], parent: Pending, middle: usize, rng: &mut ChaCha8Rng) -> (Histograms, Histograms) {
        let left_rows = &rows[parent.start..middle];
        let right_rows = &rows[middle..parent.end];
        let left_is_smaller = left_rows.len() <= right_rows.len();
        let (smaller_rows, larger_rows) = if left_is_smaller { (left_rows, right_rows) } else { (right_rows, left_rows) };
        let (smaller, larger) = match parent.hist {
            // The larger child's histograms are the parent's minus the smaller child's.
            Histograms { features, sums: Some(mut sums) } if !self.draws_features() && larger_rows.len() >= SMALL_ROWS => {
                let smaller = self.histogram_sums(smaller_rows, &features);
                sums.iter_mut().zip(&smaller).for_each(|(p, s)| *p -= s);
                let smaller = Histograms { sums: (smaller_rows.len() >= SMALL_ROWS).then_some(smaller), features: features.clone() };
                (smaller, Histograms { features, sums: Some(sums) })
            }
            parent => {
                let features = |rng: &mut ChaCha8Rng| if self.draws_features() { self.draw_features(rng) } else { parent.features.clone() };
                let smaller = self.build(smaller_rows, features(rng));
                (smaller, self.build(larger_rows, features(rng)))
            }
        };
        if left_is_smaller { (smaller, larger) } else { (larger, smaller) }
    }

    fn sum_rows(&self, rows: &[u32]) -> Stats {
        let width = self.grads.width();
        let mut stats = vec![0.0; width + 1];
        for &row in rows {
            let (grad, hess) = self.grads.of(row as usize);
            stats.iter_mut().zip(grad).for_each(|(sum, g)| *sum += g);
            stats[width] += hess;
        }
        stats
    }

    /// The histograms of a node of these rows, or only its features when it is small.
    fn build(&self, rows: &[u32], features: Vec<usize>) -> Histograms {
        let sums = (rows.len() >= SMALL_ROWS).then(|| self.histogram_sums(rows, &features));
        Histograms { features, sums }
    }

    /// Dense histograms, row by row as LightGBM's row-wise mode: each row's gradients and its
    /// bins (one row of the row-major matrix) are read once and added to every feature's
    /// histogram. The rows are cut in fixed blocks, each summed into its own histograms, and the
    /// blocks added in order: the same bytes on any number of threads.
    fn histogram_sums(&self, rows: &[u32], features: &[usize]) -> Vec<f64> {
        let stride = self.stride();
        let size = features.len() * BIN_SLOTS * stride;
        let every_feature = features.len() == self.edges.len();
        let block_sums = |&(a, b): &(usize, usize)| {
            let mut hist = vec![0.0; size];
            match self.grads {
                Gradients::Single(pairs) => {
                    let (feature_hists, _) = hist.as_chunks_mut::<{ BIN_SLOTS * 2 }>();
                    for &row in &rows[a..b] {
                        let [g, h] = pairs[row as usize];
                        let binned = self.bins.row(row as usize);
                        let add = |feature_hist: &mut [f64; BIN_SLOTS * 2], bin: u8| {
                            let at = usize::from(bin) * 2;
                            feature_hist[at] += g;
                            feature_hist[at + 1] += h;
                        };
                        if every_feature {
                            feature_hists.iter_mut().zip(binned).for_each(|(feature_hist, &bin)| add(feature_hist, bin));
                        } else {
                            feature_hists.iter_mut().zip(features).for_each(|(feature_hist, &f)| add(feature_hist, binned[f]));
                        }
                    }
                }
                Gradients::Multi { grad, width } => {
                    for &row in &rows[a..b] {
                        let row = row as usize;
                        let (gradients, binned) = (&grad[row * width..(row + 1) * width], self.bins.row(row));
                        for (feature_hist, &f) in hist.chunks_exact_mut(BIN_SLOTS * stride).zip(features) {
                            let cell = &mut feature_hist[usize::from(binned[f]) * stride..][..stride];
                            cell[..width].iter_mut().zip(gradients).for_each(|(sum, g)| *sum += g);
                            cell[width] += 1.0;
                        }
                    }
                }
            }
            hist
        };
        let blocks: Vec<(usize, usize)> =
            (0..rows.len()).step_by(HISTOGRAM_BLOCK_ROWS).map(|a| (a, (a + HISTOGRAM_BLOCK_ROWS).min(rows.len()))).collect();
        let parallel = blocks.len() > 1 && rows.len() * features.len() >= PARALLEL_CELLS;
        let parts: Vec<Vec<f64>> =
            if parallel { blocks.par_iter().map(block_sums).collect() } else { blocks.iter().map(block_sums).collect() };
        let mut parts = parts.into_iter();
        let mut sums = parts.next().unwrap_or_else(|| vec![0.0; size]);
        for part in parts {
            sums.iter_mut().zip(&part).for_each(|(sum, add)| *sum += add);
        }
        sums
    }

    fn score(&self, stats: &[f64]) -> f64 {
        let width = self.grads.width();
        let denominator = stats[width] + self.config.l2;
        if denominator <= 0.0 {
            return 0.0;
        }
        stats[..width].iter().map(|g| g * g).sum::<f64>() / denominator
    }

    /// Whether a child of these sums may be a node: enough rows (`rows_per_hessian` times its
    /// hessian) and hessian.
    fn admissible(&self, stats: &[f64], rows_per_hessian: f64) -> bool {
        let hessian = stats[self.grads.width()];
        (hessian * rows_per_hessian).round() >= self.config.min_samples_leaf as f64 && hessian >= self.config.min_hessian_leaf
    }

    /// The best split of a node of `n_rows` rows with sums `total` and these histograms of
    /// `features`, if any gains.
    fn best_split(&self, features: &[usize], sums: &[f64], total: &Stats, n_rows: usize) -> Option<Split> {
        let stride = self.stride();
        let mut search = SplitSearch::new(self, total, n_rows);
        for (feature_sums, &feature) in sums.chunks_exact(BIN_SLOTS * stride).zip(features) {
            let missing = &feature_sums[usize::from(MISSING_BIN) * stride..][..stride];
            search.feature(feature, feature_sums.chunks_exact(stride).enumerate(), (missing[stride - 1] > 0.0).then_some(missing));
        }
        search.best
    }

    /// The best split of a small node from its rows: for each feature, the rows sorted by bin
    /// (and by their place in `rows`, so that each bin sums them in the order a histogram would)
    /// and summed bin by bin.
    fn best_split_of_rows(&self, rows: &[u32], features: &[usize], total: &Stats) -> Option<Split> {
        let (width, stride) = (self.grads.width(), self.stride());
        let mut search = SplitSearch::new(self, total, rows.len());
        let mut keys: Vec<u64> = Vec::with_capacity(rows.len());
        let mut bins: Vec<u8> = Vec::with_capacity(rows.len());
        let mut sums: Vec<f64> = Vec::with_capacity(rows.len() * stride);
        for &feature in features {
            keys.clear();
            keys.extend(rows.iter().enumerate().map(|(at, &row)| (u64::from(self.bins.row(row as usize)[feature]) << 32) | at as u64));
            keys.sort_unstable();
            bins.clear();
            sums.clear();
            for key in &keys {
                let bin = (key >> 32) as u8;
                if bins.last() != Some(&bin) {
                    bins.push(bin);
                    sums.resize(sums.len() + stride, 0.0);
                }
                let (grad, hess) = self.grads.of(rows[(key & u64::from(u32::MAX)) as usize] as usize);
                let at = sums.len() - stride;
                sums[at..at + width].iter_mut().zip(grad).for_each(|(sum, g)| *sum += g);
                sums[at + width] += hess;
            }
            // The missing bin is the largest: last when occupied.
            let n_occupied = bins.len() - usize::from(bins.last() == Some(&MISSING_BIN));
            let missing = (n_occupied < bins.len()).then(|| &sums[n_occupied * stride..]);
            search.feature(feature, bins[..n_occupied].iter().map(|&bin| usize::from(bin)).zip(sums.chunks_exact(stride)), missing);
        }
        search.best
    }

    /// Stable partition of `rows` by `split`; returns the number of rows going left.
    fn partition(&self, rows: &mut [u32], split: &Split) -> usize {
        let column = &self.bins.columns[split.feature];
        let goes_left = |row: u32| {
            let bin = column[row as usize];
            if bin == MISSING_BIN { split.missing_left } else { bin as usize <= split.bin }
        };
        stable_partition(rows, goes_left)
    }
}

/// The search for a node's best split, one feature at a time.
struct SplitSearch<'s> {
    grower: &'s Grower<'s>,
    /// The node's sums.
    total: &'s [f64],
    rows_per_hessian: f64,
    parent_score: f64,
    min_gain: f64,
    /// The running left sums, the right sums, and the left sums plus the missing rows'.
    buffer: Vec<f64>,
    best: Option<Split>,
}

impl<'s> SplitSearch<'s> {
    fn new(grower: &'s Grower<'s>, total: &'s [f64], n_rows: usize) -> Self {
        let parent_score = grower.score(total);
        SplitSearch {
            grower,
            total,
            rows_per_hessian: n_rows as f64 / total[grower.grads.width()],
            parent_score,
            min_gain: 1e-12 + 1e-10 * parent_score.abs(),
            buffer: vec![0.0; 3 * total.len()],
            best: None,
        }
    }

    /// Tries every split of `feature` between the bins `(bin, sums)` in increasing order (an
    /// entry for the missing bin, or for any bin past the feature's last, is not read), with the
    /// rows missing the feature (`missing`, their sums when there are any) on either side.
    fn feature<'b>(&mut self, feature: usize, bins: impl Iterator<Item = (usize, &'b [f64])>, missing: Option<&[f64]>) {
        let stride = self.total.len();
        let n_bins = self.grower.edges[feature].n_bins();
        let mut buffer = std::mem::take(&mut self.buffer);
        let (left, rest) = buffer.split_at_mut(stride);
        let (right, with_missing) = rest.split_at_mut(stride);
        left.fill(0.0);
        for (bin, sums) in bins.take_while(|(bin, _)| *bin < n_bins) {
            if sums[stride - 1] == 0.0 {
                // An empty bin moves no row: the split before it has the same gain.
                continue;
            }
            left.iter_mut().zip(sums).for_each(|(l, s)| *l += s);
            let last = bin + 1 == n_bins;
            if last && missing.is_none() {
                break;
            }
            self.consider(feature, bin, false, missing.is_some(), left, right);
            if let Some(missing) = missing.filter(|_| !last) {
                with_missing.iter_mut().zip(left.iter()).zip(missing).for_each(|((w, l), m)| *w = l + m);
                self.consider(feature, bin, true, true, with_missing, right);
            }
        }
        self.buffer = buffer;
    }

    fn consider(&mut self, feature: usize, bin: usize, missing_left: bool, has_missing: bool, left: &[f64], right: &mut [f64]) {
        right.iter_mut().zip(self.total).zip(left).for_each(|((r, t), l)| *r = t - l);
        let grower = self.grower;
        if !grower.admissible(left, self.rows_per_hessian) || !grower.admissible(right, self.rows_per_hessian) {
            return;
        }
        let gain = grower.score(left) + grower.score(right) - self.parent_score;
        if gain > self.min_gain && self.best.as_ref().is_none_or(|b| gain > b.gain) {
            self.best = Some(Split { feature, bin, missing_left, has_missing, gain, left: left.to_vec() });
        }
    }
}

/// Stable partition of `rows`, the ones where `goes_left` holds first; returns how many those
/// are. Large slices are partitioned in parallel blocks whose parts are then concatenated.
fn stable_partition(rows: &mut [u32], goes_left: impl Fn(u32) -> bool + Sync) -> usize {
    if rows.len() < PARALLEL_PARTITION_ROWS {
        return partition_block(rows, goes_left);
    }
    let block = rows.len().div_ceil(rayon::current_num_threads() * 4);
    let parts: Vec<(usize, Vec<u32>)> = rows
        .par_chunks_mut(block)
        .map(|chunk| {
            let n_left = partition_block(chunk, &goes_left);
            (n_left, chunk.to_vec())
        })
        .collect();
    let n_left: usize = parts.iter().map(|(n_left, _)| n_left).sum();
    let (mut left_at, mut right_at) = (0, n_left);
    for (n_chunk_left, part) in &parts {
        let n_chunk_right = part.len() - n_chunk_left;
        rows[left_at..left_at + n_chunk_left].copy_from_slice(&part[..*n_chunk_left]);
        rows[right_at..right_at + n_chunk_right].copy_from_slice(&part[*n_chunk_left..]);
        left_at += n_chunk_left;
        right_at += n_chunk_right;
    }
    n_left
}

/// Stable, branch-free partition of `rows`: the ones where `goes_left` holds first.
fn partition_block(rows: &mut [u32], goes_left: impl Fn(u32) -> bool) -> usize {
    thread_local! {
        /// The rows going right, before they are copied back: one buffer per thread.
        static RIGHT: std::cell::RefCell<Vec<u32>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    RIGHT.with_borrow_mut(|right| {
        right.resize(rows.len(), 0);
        let (mut n_left, mut n_right) = (0, 0);
        for i in 0..rows.len() {
            let row = rows[i];
            let left = goes_left(row);
            rows[n_left] = row;
            right[n_right] = row;
            n_left += usize::from(left);
            n_right += usize::from(!left);
        }
        rows[n_left..].copy_from_slice(&right[..n_right]);
        n_left
    })
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
    fn partitions_are_stable_in_parallel_as_in_one_block() {
        for n in [10, PARALLEL_PARTITION_ROWS * 3 + 7] {
            let mut rows: Vec<u32> = (0..n as u32).map(|i| i * 3).collect();
            let goes_left = |row: u32| (row / 3) % 7 < 3 || row.is_multiple_of(11);
            let expected: Vec<u32> =
                rows.iter().copied().filter(|&r| goes_left(r)).chain(rows.iter().copied().filter(|&r| !goes_left(r))).collect();
            let n_left = stable_partition(&mut rows, goes_left);
            assert_eq!(n_left, expected.iter().filter(|&&r| goes_left(r)).count());
            assert_eq!(rows, expected);
        }
    }

    #[test]
    fn small_nodes_find_from_their_rows_the_split_their_histograms_give() {
        let n = 100usize;
        let columns: Vec<Vec<u8>> = (0..3u64)
            .map(|f| {
                (0..n as u64).map(|i| if (i * 7 + f) % 13 == 0 { MISSING_BIN } else { ((i * (f + 3) * 2654435761) % 40) as u8 }).collect()
            })
            .collect();
        let edges: Vec<FeatureBins> = (0..3).map(|_| FeatureBins { edges: (0..39).map(f64::from).collect() }).collect();
        let bins = BinnedMatrix::new(columns);
        for width in [1, 3] {
            let grad: Vec<f64> = (0..n * width).map(|i| ((i * 31) % 17) as f64 - 8.0).collect();
            let hess: Vec<f64> = (0..n).map(|i| 1.0 + (i % 4) as f64).collect();
            let config = GrowConfig {
                max_leaf_nodes: None,
                max_depth: None,
                min_samples_leaf: 2,
                min_hessian_leaf: 0.0,
                l2: 0.5,
                shrinkage: 1.0,
                features_per_node: None,
            };
            let pairs: Vec<[f64; 2]> = grad.iter().zip(&hess).map(|(&g, &h)| [g, h]).collect();
            let grads = if width == 1 { Gradients::Single(&pairs) } else { Gradients::Multi { grad: &grad, width } };
            let grower = Grower { bins: &bins, edges: &edges, grads, config: &config };
            let rows: Vec<u32> = (0..n as u32).filter(|r| r % 3 != 0).collect();
            let total = grower.sum_rows(&rows);
            let features = [0, 1, 2];
            let from_rows = grower.best_split_of_rows(&rows, &features, &total).unwrap();
            let from_histograms = grower.best_split(&features, &grower.histogram_sums(&rows, &features), &total, rows.len()).unwrap();
            let (a, b) = (from_rows, from_histograms);
            assert_eq!((a.feature, a.bin, a.missing_left, a.has_missing), (b.feature, b.bin, b.missing_left, b.has_missing));
            assert_eq!((a.gain, a.left), (b.gain, b.left), "the same sums in the same order");
            // Every feature alone as well: each has missing rows.
            for feature in features {
                let a = grower.best_split_of_rows(&rows, &[feature], &total).unwrap();
                let b = grower.best_split(&[feature], &grower.histogram_sums(&rows, &[feature]), &total, rows.len()).unwrap();
                assert_eq!((a.bin, a.missing_left, a.has_missing, a.gain), (b.bin, b.missing_left, b.has_missing, b.gain));
                assert!(a.has_missing);
            }
        }
    }

    #[test]
    fn row_wise_histograms_sum_every_row_once_on_any_number_of_threads() {
        let n = 2 * HISTOGRAM_BLOCK_ROWS + 777;
        let columns: Vec<Vec<u8>> = (0..4u64)
            .map(|f| (0..n as u64).map(|i| if (i + f) % 11 == 0 { MISSING_BIN } else { ((i * (f + 5) * 2654435761) % 60) as u8 }).collect())
            .collect();
        let edges: Vec<FeatureBins> = (0..4).map(|_| FeatureBins { edges: (0..59).map(f64::from).collect() }).collect();
        let bins = BinnedMatrix::new(columns.clone());
        let pairs: Vec<[f64; 2]> = (0..n).map(|i| [((i * 37) % 23) as f64 - 11.0, 1.0 + (i % 5) as f64]).collect();
        let config = GrowConfig {
            max_leaf_nodes: None,
            max_depth: None,
            min_samples_leaf: 1,
            min_hessian_leaf: 0.0,
            l2: 0.0,
            shrinkage: 1.0,
            features_per_node: None,
        };
        let grower = Grower { bins: &bins, edges: &edges, grads: Gradients::Single(&pairs), config: &config };
        let rows: Vec<u32> = (0..n as u32).filter(|r| r % 7 != 3).collect();
        for features in [vec![0, 1, 2, 3], vec![1, 3]] {
            let sums_in = |threads: usize| {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                pool.install(|| grower.histogram_sums(&rows, &features))
            };
            let sums = sums_in(1);
            assert!(sums == sums_in(3), "other bytes on three threads");
            for (slot, &feature) in features.iter().enumerate() {
                let mut expected = vec![0.0; BIN_SLOTS * 2];
                for &row in &rows {
                    let at = usize::from(columns[feature][row as usize]) * 2;
                    expected[at] += pairs[row as usize][0];
                    expected[at + 1] += pairs[row as usize][1];
                }
                let got = &sums[slot * BIN_SLOTS * 2..(slot + 1) * BIN_SLOTS * 2];
                assert!(got.iter().zip(&expected).all(|(a, b)| (a - b).abs() <= 1e-9 * b.abs().max(1.0)), "feature {feature}");
            }
        }
    }
}
