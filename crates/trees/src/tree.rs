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
///
/// Serialised as its nodes and leaf values; the branch-free [`Step`]s that prediction walks are
/// derived from the nodes whenever a tree is built or read.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(from = "StoredTree")]
pub struct Tree {
    pub(crate) nodes: Vec<Node>,
    pub(crate) leaf_values: Vec<f64>,
    pub(crate) width: usize,
    /// First output this tree adds to (boosting grows one tree per class).
    pub(crate) output: usize,
    #[serde(skip)]
    steps: Vec<Step>,
    #[serde(skip)]
    depth: usize,
}

/// The serialised form of a [`Tree`].
#[derive(Deserialize)]
struct StoredTree {
    nodes: Vec<Node>,
    leaf_values: Vec<f64>,
    width: usize,
    output: usize,
}

impl From<StoredTree> for Tree {
    fn from(stored: StoredTree) -> Self {
        let mut tree = Tree::new(stored.nodes, stored.leaf_values, stored.width);
        tree.output = stored.output;
        tree
    }
}

/// One node as prediction walks it: a leaf is a split that leads back to itself whatever the row
/// holds, so rows walked side by side wait at their leaves for the slowest, and no step branches
/// on a row's value.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Step {
    threshold: f64,
    feature: u32,
    missing_left: bool,
    /// Next step when the row goes left, and when it goes right.
    children: [u32; 2],
}

impl Step {
    fn next(&self, row: &[f64]) -> u32 {
        let x = row[self.feature as usize];
        // `|` and `&` rather than `||` and `&&`: a branch on the row's value would mispredict.
        let go_left = (x <= self.threshold) | (x.is_nan() & self.missing_left);
        let [left, right] = self.children;
        // All ones when the row goes right: a select in arithmetic, which no compiler turns into a jump.
        let go_right = u32::from(!go_left).wrapping_neg();
        left ^ ((left ^ right) & go_right)
    }
}

/// Rows walked down a tree side by side (eight measured fastest, against four and sixteen).
const LANES: usize = 8;

impl Tree {
    pub(crate) fn new(nodes: Vec<Node>, leaf_values: Vec<f64>, width: usize) -> Self {
        let steps = nodes
            .iter()
            .enumerate()
            .map(|(index, node)| match node.feature {
                Node::LEAF => Step { threshold: f64::INFINITY, feature: 0, missing_left: true, children: [index as u32; 2] },
                feature => Step { threshold: node.threshold, feature, missing_left: node.missing_left, children: [node.left, node.right] },
            })
            .collect();
        let mut tree = Tree { nodes, leaf_values, width, output: 0, steps, depth: 0 };
        tree.depth = tree.depth_of(0);
        tree
    }

    /// The leaf each of `N` rows reaches, the rows walked side by side: their walks are independent,
    /// so the processor overlaps them, and none of their steps can mispredict.
    fn leaves_of<const N: usize>(&self, rows: [&[f64]; N]) -> [u32; N] {
        let mut at = [0u32; N];
        for _ in 0..self.depth {
            let mut moved = false;
            for (node, row) in at.iter_mut().zip(rows) {
                let next = self.steps[*node as usize].next(row);
                moved |= next != *node;
                *node = next;
            }
            if !moved {
                break;
            }
        }
        at
    }

    /// The leaf one row reaches, walked with branches: alone, a row gains more from the processor
    /// predicting its path than from steps that never mispredict.
    fn leaf_by_branches(&self, row: &[f64]) -> u32 {
        let mut at = 0;
        loop {
            let node = &self.nodes[at as usize];
            if node.feature == Node::LEAF {
                return at;
            }
            let x = row[node.feature as usize];
            let go_left = if x.is_nan() { node.missing_left } else { x <= node.threshold };
            at = if go_left { node.left } else { node.right };
        }
    }

    /// Adds this tree's leaf values for each row of `rows` (`n_features` values each) into that
    /// row's `n_outputs` slots of `raw`.
    pub(crate) fn accumulate_rows(&self, rows: &[f64], n_features: usize, raw: &mut [f64], n_outputs: usize) {
        let n_rows = raw.len() / n_outputs;
        let mut add_values = |row: usize, leaf: u32| {
            let start = self.nodes[leaf as usize].left as usize * self.width;
            let slot = row * n_outputs + self.output;
            if self.width == 1 {
                raw[slot] += self.leaf_values[start];
            } else {
                for (slot, value) in raw[slot..slot + self.width].iter_mut().zip(&self.leaf_values[start..start + self.width]) {
                    *slot += value;
                }
            }
        };
        let row = |index: usize| &rows[index * n_features..(index + 1) * n_features];
        let full = n_rows - n_rows % LANES;
        for first in (0..full).step_by(LANES) {
            let leaves = self.leaves_of(std::array::from_fn::<_, LANES, _>(|lane| row(first + lane)));
            for (lane, leaf) in leaves.into_iter().enumerate() {
                add_values(first + lane, leaf);
            }
        }
        for index in full..n_rows {
            let leaf = self.leaf_by_branches(row(index));
            add_values(index, leaf);
        }
    }

    /// Number of leaves.
    pub fn n_leaves(&self) -> usize {
        self.leaf_values.len() / self.width
    }

    /// Depth of the deepest leaf (a single leaf has depth 0).
    pub fn depth(&self) -> usize {
        self.depth
    }

    fn depth_of(&self, index: usize) -> usize {
        let node = &self.nodes[index];
        if node.feature == Node::LEAF { 0 } else { 1 + self.depth_of(node.left as usize).max(self.depth_of(node.right as usize)) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `x0 <= 1` (missing right) → leaf 0, else `x1 <= 5` (missing left) → leaf 1 or leaf 2.
    fn small_tree() -> Tree {
        let split = |feature, threshold, missing_left, left, right| Node { feature, threshold, missing_left, left, right };
        let nodes = vec![split(0, 1.0, false, 1, 2), Node::leaf(0), split(1, 5.0, true, 3, 4), Node::leaf(1), Node::leaf(2)];
        Tree::new(nodes, vec![10.0, 20.0, 30.0], 1)
    }

    #[test]
    fn rows_walked_side_by_side_reach_the_leaves_rows_walked_alone_reach() {
        let tree = small_tree();
        let nan = f64::NAN;
        let rows = [
            [0.5, 9.0],
            [1.0, nan],
            [nan, 9.0],
            [nan, nan],
            [2.0, 5.0],
            [2.0, 6.0],
            [2.0, nan],
            [-3.0, 0.0],
            [7.0, -1.0],
            [nan, 4.0],
            [1.5, 5.5],
        ];
        let expected = [10.0, 10.0, 30.0, 20.0, 20.0, 30.0, 20.0, 10.0, 20.0, 20.0, 30.0];
        let flat: Vec<f64> = rows.iter().flatten().copied().collect();
        // Eleven rows: one group of eight walked side by side, three walked alone.
        let mut raw = vec![0.5; rows.len()];
        tree.accumulate_rows(&flat, 2, &mut raw, 1);
        let sums: Vec<f64> = expected.iter().map(|value| value + 0.5).collect();
        assert_eq!(raw, sums);
        for row in &rows {
            assert_eq!(tree.leaves_of([row.as_slice(); LANES])[0], tree.leaf_by_branches(row), "row {row:?}");
        }
    }

    #[test]
    fn a_tree_read_back_walks_like_the_one_written() {
        let tree = small_tree();
        let bytes = postcard::to_allocvec(&tree).unwrap();
        let restored: Tree = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(restored, tree);
        assert_eq!(restored.depth(), 2);
    }
}
