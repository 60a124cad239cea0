//! Exact path-dependent TreeSHAP (Lundberg, Erion and Lee, "Consistent individualized feature
//! attribution for tree ensembles", 2018, Algorithm 2): each feature's Shapley value for one row,
//! where a feature left out of a coalition is averaged over by the share of training rows (the
//! covers) that went down each side of its splits. Polynomial in the depth, exact, and the
//! contributions of a tree add up to its value for the row minus its expected value.

use crate::tree::Tree;

/// One feature on the path from the root: the share of its split's training rows that took the
/// path (`zero`: the feature left out), whether the row itself takes it (`one`: 1 or 0), and the
/// weight of the coalitions of each size so far.
#[derive(Debug, Clone, Copy)]
struct PathElement {
    /// The feature split on, `None` for the root's placeholder.
    feature: Option<usize>,
    zero: f64,
    one: f64,
    weight: f64,
}

/// Adds a feature to the path, updating the weight of every coalition size.
fn extend(path: &mut Vec<PathElement>, zero: f64, one: f64, feature: Option<usize>) {
    let depth = path.len();
    path.push(PathElement { feature, zero, one, weight: if depth == 0 { 1.0 } else { 0.0 } });
    let denominator = (depth + 1) as f64;
    for i in (0..depth).rev() {
        path[i + 1].weight += one * path[i].weight * (i + 1) as f64 / denominator;
        path[i].weight = zero * path[i].weight * (depth - i) as f64 / denominator;
    }
}

/// Removes element `index` from the path, undoing its [`extend`].
fn unwind(path: &mut Vec<PathElement>, index: usize) {
    let depth = path.len() - 1;
    let PathElement { zero, one, .. } = path[index];
    let mut next = path[depth].weight;
    for i in (0..depth).rev() {
        if one == 0.0 {
            path[i].weight = path[i].weight * (depth + 1) as f64 / (zero * (depth - i) as f64);
        } else {
            let kept = path[i].weight;
            path[i].weight = next * (depth + 1) as f64 / ((i + 1) as f64 * one);
            next = kept - path[i].weight * zero * (depth - i) as f64 / (depth + 1) as f64;
        }
    }
    // The weights stay where they are; the features shift down over the removed one.
    for i in index..depth {
        path[i].feature = path[i + 1].feature;
        path[i].zero = path[i + 1].zero;
        path[i].one = path[i + 1].one;
    }
    path.pop();
}

/// The total weight of the path with element `index` unwound, without changing the path.
fn unwound_sum(path: &[PathElement], index: usize) -> f64 {
    let depth = path.len() - 1;
    let PathElement { zero, one, .. } = path[index];
    let mut total = 0.0;
    if one == 0.0 {
        for i in (0..depth).rev() {
            total += path[i].weight / (zero * (depth - i) as f64);
        }
    } else {
        let mut next = path[depth].weight;
        for i in (0..depth).rev() {
            let share = next / ((i + 1) as f64 * one);
            total += share;
            next = path[i].weight - share * zero * (depth - i) as f64;
        }
    }
    total * (depth + 1) as f64
}

impl Tree {
    /// Adds this tree's SHAP values for `row`, times `scale`, into `phi`: `n_features + 1` values
    /// for each of the ensemble's outputs, the last of them the tree's expected value, so that an
    /// output's values sum to the tree's value for the row.
    pub(crate) fn add_contributions(&self, row: &[f64], phi: &mut [f64], scale: f64) {
        let stride = row.len() + 1;
        let mut add = |output: usize, feature: usize, value: f64| phi[(self.output + output) * stride + feature] += value * scale;
        let root_cover = self.cover(0);
        for (leaf, values) in self.leaves() {
            let share = if root_cover > 0.0 { self.cover(leaf) / root_cover } else { 0.0 };
            for (output, value) in values.iter().enumerate() {
                add(output, row.len(), share * value);
            }
        }
        self.recurse(row, 0, &[], (1.0, 1.0, None), &mut add);
    }

    /// Algorithm 2's RECURSE at `node`, entered with the path above it and the fractions of the
    /// split that led here.
    fn recurse(
        &self,
        row: &[f64],
        node: u32,
        parent: &[PathElement],
        (zero, one, feature): (f64, f64, Option<usize>),
        add: &mut impl FnMut(usize, usize, f64),
    ) {
        let mut path = Vec::with_capacity(parent.len() + 1);
        path.extend_from_slice(parent);
        extend(&mut path, zero, one, feature);
        let Some((split_feature, hot, cold)) = self.split_of(node, row) else {
            for index in 1..path.len() {
                let element = path[index];
                let weight = unwound_sum(&path, index) * (element.one - element.zero);
                let feature = element.feature.expect("only the root has no feature");
                for (output, value) in self.values_of(node).iter().enumerate() {
                    add(output, feature, weight * value);
                }
            }
            return;
        };
        let (mut incoming_zero, mut incoming_one) = (1.0, 1.0);
        if let Some(index) = path.iter().position(|element| element.feature == Some(split_feature)) {
            incoming_zero = path[index].zero;
            incoming_one = path[index].one;
            unwind(&mut path, index);
        }
        // A node no training row reached (none does in a grown tree) splits its weight evenly.
        let cover = self.cover(node);
        let share = |child: u32| if cover > 0.0 { self.cover(child) / cover } else { 0.5 };
        let (hot_zero, cold_zero) = (share(hot) * incoming_zero, share(cold) * incoming_zero);
        self.recurse(row, hot, &path, (hot_zero, incoming_one, Some(split_feature)), add);
        self.recurse(row, cold, &path, (cold_zero, 0.0, Some(split_feature)), add);
    }
}

#[cfg(test)]
mod tests;
