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
/// Held as the branch-free [`Step`]s that prediction walks; serialised as its [`Node`]s and leaf
/// values.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(from = "StoredTree")]
pub struct Tree {
    steps: Vec<Step>,
    /// Training rows that reached each node (its cover), by node index: what TreeSHAP averages
    /// over where a feature is left out.
    covers: Vec<u32>,
    pub(crate) leaf_values: Vec<f64>,
    pub(crate) width: usize,
    /// First output this tree adds to (boosting grows one tree per class).
    pub(crate) output: usize,
    depth: usize,
}

/// The serialised form of a [`Tree`].
#[derive(Deserialize)]
struct StoredTree {
    nodes: Vec<Node>,
    covers: Vec<u32>,
    leaf_values: Vec<f64>,
    width: usize,
    output: usize,
}

/// A [`StoredTree`] as it is written, its nodes derived from the steps.
#[derive(Serialize)]
struct StoredTreeRef<'a> {
    nodes: Vec<Node>,
    covers: &'a [u32],
    leaf_values: &'a [f64],
    width: usize,
    output: usize,
}

impl Serialize for Tree {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        StoredTreeRef { nodes: self.nodes(), covers: &self.covers, leaf_values: &self.leaf_values, width: self.width, output: self.output }
            .serialize(serializer)
    }
}

impl From<StoredTree> for Tree {
    fn from(stored: StoredTree) -> Self {
        let mut tree = Tree::new(stored.nodes, stored.covers, stored.leaf_values, stored.width);
        tree.output = stored.output;
        tree
    }
}

/// One node as prediction walks it: a leaf is a split that leads back to itself whatever the row
/// holds, so rows walked side by side wait at their leaves for the slowest, and no step branches
/// on a row's value. A leaf's threshold is the index of its first value in `leaf_values` (any
/// threshold leads back to itself).
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
    /// A tree of `nodes` (the root first), with each node's cover and `width` values per leaf.
    pub(crate) fn new(nodes: Vec<Node>, covers: Vec<u32>, mut leaf_values: Vec<f64>, width: usize) -> Self {
        // A forest holds many trees: no spare capacity left over from growing.
        leaf_values.shrink_to_fit();
        let steps = nodes
            .iter()
            .enumerate()
            .map(|(index, node)| match node.feature {
                Node::LEAF => Step { threshold: f64::from(node.left), feature: 0, missing_left: true, children: [index as u32; 2] },
                feature => Step { threshold: node.threshold, feature, missing_left: node.missing_left, children: [node.left, node.right] },
            })
            .collect();
        let mut tree = Tree { steps, covers, leaf_values, width, output: 0, depth: 0 };
        tree.depth = tree.depth_of(0);
        tree
    }

    /// The nodes this tree was built from.
    fn nodes(&self) -> Vec<Node> {
        let node = |(index, step): (usize, &Step)| {
            if self.is_leaf(index as u32) {
                Node::leaf(step.threshold as u32)
            } else {
                let [left, right] = step.children;
                Node { feature: step.feature, threshold: step.threshold, missing_left: step.missing_left, left, right }
            }
        };
        self.steps.iter().enumerate().map(node).collect()
    }

    fn is_leaf(&self, index: u32) -> bool {
        self.steps[index as usize].children[0] == index
    }

    /// The highest feature index a split reads; none for a single leaf.
    pub(crate) fn max_feature(&self) -> Option<usize> {
        (0..self.steps.len() as u32).filter(|&at| !self.is_leaf(at)).map(|at| self.steps[at as usize].feature as usize).max()
    }

    /// Training rows that reached `node`.
    pub(crate) fn cover(&self, node: u32) -> f64 {
        self.covers.get(node as usize).map_or(0.0, |&cover| f64::from(cover))
    }

    /// Every leaf's node index and values.
    pub(crate) fn leaves(&self) -> impl Iterator<Item = (u32, &[f64])> {
        (0..self.steps.len() as u32).filter(|&node| self.is_leaf(node)).map(|leaf| (leaf, self.values_of(leaf)))
    }

    /// The feature `node` splits on, the child `row` goes to and the other; `None` at a leaf.
    pub(crate) fn split_of(&self, node: u32, row: &[f64]) -> Option<(usize, u32, u32)> {
        if self.is_leaf(node) {
            return None;
        }
        let step = &self.steps[node as usize];
        let hot = step.next(row);
        let [left, right] = step.children;
        Some((step.feature as usize, hot, if hot == left { right } else { left }))
    }

    /// The values of leaf `leaf` (a node index).
    pub(crate) fn values_of(&self, leaf: u32) -> &[f64] {
        let start = self.steps[leaf as usize].threshold as usize * self.width;
        &self.leaf_values[start..start + self.width]
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

    /// The values of the leaf a row reaches, where `goes_left(feature, threshold, missing_left)`
    /// says which way it goes at each split: walked with branches, as a row alone gains more from
    /// the processor predicting its path than from steps that never mispredict.
    pub(crate) fn reach(&self, goes_left: impl Fn(usize, f64, bool) -> bool) -> &[f64] {
        let mut at = 0;
        while !self.is_leaf(at) {
            let step = &self.steps[at as usize];
            at = step.children[usize::from(!goes_left(step.feature as usize, step.threshold, step.missing_left))];
        }
        self.values_of(at)
    }

    /// The values of the leaf a row of raw features reaches, walked with branches.
    fn values_by_branches(&self, row: &[f64]) -> &[f64] {
        self.reach(|feature, threshold, missing_left| {
            let x = row[feature];
            if x.is_nan() { missing_left } else { x <= threshold }
        })
    }

    /// Adds this tree's leaf values for each row of `rows` (`n_features` values each) into that
    /// row's `n_outputs` slots of `raw`.
    pub(crate) fn accumulate_rows(&self, rows: &[f64], n_features: usize, raw: &mut [f64], n_outputs: usize) {
        let n_rows = raw.len() / n_outputs;
        let mut add_values = |row: usize, values: &[f64]| {
            let slot = row * n_outputs + self.output;
            for (slot, value) in raw[slot..slot + self.width].iter_mut().zip(values) {
                *slot += value;
            }
        };
        let row = |index: usize| &rows[index * n_features..(index + 1) * n_features];
        let full = n_rows - n_rows % LANES;
        for first in (0..full).step_by(LANES) {
            let leaves = self.leaves_of(std::array::from_fn::<_, LANES, _>(|lane| row(first + lane)));
            for (lane, leaf) in leaves.into_iter().enumerate() {
                add_values(first + lane, self.values_of(leaf));
            }
        }
        for index in full..n_rows {
            add_values(index, self.values_by_branches(row(index)));
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

    fn depth_of(&self, index: u32) -> usize {
        if self.is_leaf(index) {
            return 0;
        }
        let [left, right] = self.steps[index as usize].children;
        1 + self.depth_of(left).max(self.depth_of(right))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `x0 <= 1` (missing right) → leaf 0, else `x1 <= 5` (missing left) → leaf 1 or leaf 2.
    fn small_tree_nodes() -> Vec<Node> {
        let split = |feature, threshold, missing_left, left, right| Node { feature, threshold, missing_left, left, right };
        vec![split(0, 1.0, false, 1, 2), Node::leaf(0), split(1, 5.0, true, 3, 4), Node::leaf(1), Node::leaf(2)]
    }

    fn small_tree() -> Tree {
        Tree::new(small_tree_nodes(), vec![10, 4, 6, 2, 4], vec![10.0, 20.0, 30.0], 1)
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
            assert_eq!(tree.values_of(tree.leaves_of([row.as_slice(); LANES])[0]), tree.values_by_branches(row), "row {row:?}");
        }
    }

    #[test]
    fn a_tree_read_back_walks_like_the_one_written() {
        let tree = small_tree();
        let bytes = postcard::to_allocvec(&tree).unwrap();
        let restored: Tree = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(restored, tree);
        assert_eq!(restored.depth(), 2);
        assert_eq!(restored.nodes(), small_tree_nodes());
    }
}
