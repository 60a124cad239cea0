use linfa::prelude::*;
use ndarray::{Array1, Array2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::{ForestTask, GradientBoostingParams, Loss, RandomForestParams, Tree, TreeEnsemble};

/// `n` rows of `width` uniform features, a tenth of the last one missing.
fn features(n: usize, width: usize, seed: u64) -> Array2<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Array2::from_shape_fn((n, width), |(_, j)| if j + 1 == width && rng.random_bool(0.1) { f64::NAN } else { rng.random_range(-2.0..2.0) })
}

fn target(x: &Array2<f64>) -> Array1<f64> {
    x.rows().into_iter().map(|r| r[0].sin() * 3.0 + r[1] * r[2] + if r[3].is_nan() { 1.0 } else { r[3] }).collect()
}

/// The tree's expected value for `row` when only the features in `known` are known: the row's
/// way at their splits, the training rows' shares (covers) at the others. The definition that
/// path-dependent TreeSHAP computes in polynomial time.
fn conditional(tree: &Tree, row: &[f64], known: u32, node: u32) -> f64 {
    match tree.split_of(node, row) {
        None => tree.values_of(node)[0],
        Some((feature, hot, _)) if known & (1 << feature) != 0 => conditional(tree, row, known, hot),
        Some((_, hot, cold)) => {
            let cover = tree.cover(node);
            (tree.cover(hot) * conditional(tree, row, known, hot) + tree.cover(cold) * conditional(tree, row, known, cold)) / cover
        }
    }
}

/// Shapley values by their definition, over every coalition, and the expected value last.
fn brute_force(tree: &Tree, row: &[f64]) -> Vec<f64> {
    let m = row.len();
    let factorial = |n: usize| (1..=n).map(|k| k as f64).product::<f64>();
    let mut phi = vec![0.0; m + 1];
    for (i, value) in phi.iter_mut().enumerate().take(m) {
        for coalition in 0u32..1 << m {
            if coalition & (1 << i) != 0 {
                continue;
            }
            let size = coalition.count_ones() as usize;
            let weight = factorial(size) * factorial(m - size - 1) / factorial(m);
            *value += weight * (conditional(tree, row, coalition | 1 << i, 0) - conditional(tree, row, coalition, 0));
        }
    }
    phi[m] = conditional(tree, row, 0, 0);
    phi
}

#[test]
fn tree_shap_equals_the_shapley_values_of_their_definition_on_every_tree() {
    let x = features(600, 5, 1);
    let forest =
        RandomForestParams::new(ForestTask::Regression).n_trees(5).max_depth(Some(6)).fit(&Dataset::new(x.clone(), target(&x))).unwrap();
    let boosted = GradientBoostingParams::new(Loss::SquaredError).max_iter(5).fit(&Dataset::new(x.clone(), target(&x))).unwrap();
    let rows = features(20, 5, 2);
    let mut compared = 0;
    for tree in forest.trees().iter().chain(boosted.trees()) {
        for row in rows.rows() {
            let row = row.to_vec();
            let mut phi = vec![0.0; 6];
            tree.add_contributions(&row, &mut phi, 1.0);
            let expected = brute_force(tree, &row);
            for (feature, (got, want)) in phi.iter().zip(&expected).enumerate() {
                assert!((got - want).abs() <= 1e-9 * (1.0 + want.abs()), "feature {feature} of {row:?}: {got} against {want}");
            }
            compared += 1;
        }
    }
    assert_eq!(compared, 20 * (forest.n_trees() + boosted.n_trees()));
    assert!(forest.trees().iter().any(|tree| tree.depth() >= 5), "deep trees, where features repeat on a path");
}

/// Each output's contributions summed: the raw output.
fn sums(model: &TreeEnsemble, row: &[f64]) -> Vec<f64> {
    model.contributions(row).chunks(model.n_features() + 1).map(|block| block.iter().sum()).collect()
}

#[test]
fn contributions_add_up_to_the_raw_output_of_every_kind_of_ensemble() {
    let x = features(1500, 4, 3);
    let y = target(&x);
    let rows = features(50, 4, 4);
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * (1.0 + b.abs());

    let boosted = GradientBoostingParams::new(Loss::SquaredError).max_iter(40).fit(&Dataset::new(x.clone(), y.clone())).unwrap();
    let forest = RandomForestParams::new(ForestTask::Regression).n_trees(10).fit(&Dataset::new(x.clone(), y.clone())).unwrap();
    for model in [&boosted, &forest] {
        for (row, predicted) in rows.rows().into_iter().zip(model.predict(&rows).column(0)) {
            let total = sums(model, &row.to_vec())[0];
            assert!(close(total, *predicted), "{total} against {predicted}");
        }
    }

    let binary: Array1<f64> = y.mapv(|v| f64::from(u8::from(v > 0.5)));
    let logistic = GradientBoostingParams::new(Loss::LogLoss).max_iter(30).fit(&Dataset::new(x.clone(), binary.clone())).unwrap();
    for (row, p) in rows.rows().into_iter().zip(logistic.predict(&rows).rows()) {
        let log_odds = sums(&logistic, &row.to_vec())[0];
        assert!(close(log_odds, (p[1] / p[0]).ln()), "{log_odds} against {}", (p[1] / p[0]).ln());
    }

    let classes: Array1<f64> = y.mapv(|v| {
        if v < -1.0 {
            0.0
        } else if v < 1.0 {
            1.0
        } else {
            2.0
        }
    });
    let softmax =
        GradientBoostingParams::new(Loss::Softmax { n_classes: 3 }).max_iter(20).fit(&Dataset::new(x.clone(), classes.clone())).unwrap();
    let proportions =
        RandomForestParams::new(ForestTask::Classification { n_classes: 3 }).n_trees(10).fit(&Dataset::new(x, classes)).unwrap();
    for (row, (p, q)) in rows.rows().into_iter().zip(softmax.predict(&rows).rows().into_iter().zip(proportions.predict(&rows).rows())) {
        let scores = sums(&softmax, &row.to_vec());
        for class in 1..3 {
            assert!(close(scores[class] - scores[0], (p[class] / p[0]).ln()), "class {class}");
        }
        let shares = sums(&proportions, &row.to_vec());
        for class in 0..3 {
            assert!(close(shares[class], q[class]), "class {class}: {} against {}", shares[class], q[class]);
        }
    }
}
