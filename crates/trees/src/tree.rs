//! A fitted regression tree over raw feature values.

use serde::{Deserialize, Serialize};

/// One node of a [`Tree`]: a split on `feature`, or a leaf when `feature` is `LEAF`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Node {
    /// Feature index, or [`Node::LEAF`].
    pub feature: u32,
    /// Rows with `x[feature] <= threshold` go left.
    pub threshold: f64,
    /// Where rows with a missing (NaN) value go.
    pub missing_left: bool,
    /// Left child for a split; index of the first leaf value for a leaf.
    pub left: u32,
    /// Right child for a split; unused for a leaf.
    pub right: u32,
}

impl Node {
    /// Marks a leaf node.
    pub const LEAF: u32 = u32::MAX;

    pub(crate) fn leaf(value_index: u32) -> Self {
        Node { feature: Self::LEAF, threshold: 0.0, missing_left: false, left: value_index, right: 0 }
    }
}

/// A binary tree whose leaves hold `width` values each (one per output).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Tree {
    pub(crate) nodes: Vec<Node>,
    pub(crate) leaf_values: Vec<f64>,
    pub(crate) width: usize,
    /// First output this tree adds to (boosting grows one tree per class).
    pub(crate) output: usize,
}

impl Tree {
    /// The leaf values reached by one row of raw features.
    pub fn leaf_of(&self, row: &[f64]) -> &[f64] {
        let mut node = &self.nodes[0];
        while node.feature != Node::LEAF {
            let x = row[node.feature as usize];
            let go_left = if x.is_nan() { node.missing_left } else { x <= node.threshold };
            node = &self.nodes[if go_left { node.left } else { node.right } as usize];
        }
        let start = node.left as usize * self.width;
        &self.leaf_values[start..start + self.width]
    }

    /// Adds this tree's leaf values for `row` into `out` (one slot per model output).
    pub fn accumulate(&self, row: &[f64], out: &mut [f64]) {
        for (slot, value) in out[self.output..self.output + self.width].iter_mut().zip(self.leaf_of(row)) {
            *slot += value;
        }
    }

    /// Number of leaves.
    pub fn n_leaves(&self) -> usize {
        self.leaf_values.len() / self.width
    }

    /// Depth of the deepest leaf (a single leaf has depth 0).
    pub fn depth(&self) -> usize {
        fn depth_of(nodes: &[Node], index: usize) -> usize {
            let node = &nodes[index];
            if node.feature == Node::LEAF { 0 } else { 1 + depth_of(nodes, node.left as usize).max(depth_of(nodes, node.right as usize)) }
        }
        depth_of(&self.nodes, 0)
    }
}
