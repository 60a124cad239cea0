//! Histogram-based tree learners on [linfa]'s traits: a decision tree, a random forest and
//! gradient-boosted trees (squared error, Poisson, binary and multiclass log-loss).
//!
//! Features are `f64` with `NaN` for a missing value; every learner bins them into at most 255
//! quantile bins and learns for each split where missing values go. Fitting is seeded and
//! deterministic, and the fitted [`TreeEnsemble`] is serde-serialisable.
//!
//! ```
//! use linfa::prelude::*;
//! use mlops_trees::{GradientBoostingParams, Loss};
//! use ndarray::{Array1, Array2};
//!
//! let x = Array2::from_shape_fn((200, 1), |(i, _)| i as f64);
//! let y: Array1<f64> = x.column(0).mapv(|v| if v < 100.0 { 1.0 } else { 5.0 });
//! let model = GradientBoostingParams::new(Loss::SquaredError).fit(&Dataset::new(x.clone(), y))?;
//! let predicted = model.predict(&x);
//! assert!((predicted[[0, 0]] - 1.0).abs() < 0.1 && (predicted[[199, 0]] - 5.0).abs() < 0.1);
//! # Ok::<(), mlops_trees::TreesError>(())
//! ```

mod bins;
mod boosting;
mod ensemble;
mod forest;
mod goss;
mod grow;
mod shap;
mod tree;

pub use boosting::{
    Boosting, BoostingCheckpoint, BoostingInput, EarlyStopping, GradientBoostingParams, GradientBoostingValidParams, Loss, Sampling,
};
pub use ensemble::{Link, TreeEnsemble};
pub use forest::{ForestTask, MaxFeatures, RandomForestParams, RandomForestValidParams};
pub use tree::{Node, Tree};

/// Why fitting failed.
#[derive(Debug, thiserror::Error)]
pub enum TreesError {
    #[error("invalid hyperparameter {name}: {reason}")]
    InvalidParameter { name: &'static str, reason: &'static str },
    #[error("no training rows")]
    NoRows,
    #[error("{targets} targets for {rows} rows")]
    Shape { rows: usize, targets: usize },
    #[error("target of row {row} is {value}: {reason}")]
    InvalidTarget { row: usize, value: f64, reason: &'static str },
    #[error("cannot resume boosting: {reason}")]
    Resume { reason: &'static str },
    #[error(transparent)]
    Linfa(#[from] linfa::Error),
}

pub(crate) fn parameter(name: &'static str, reason: &'static str) -> TreesError {
    TreesError::InvalidParameter { name, reason }
}

/// The hyperparameters every learner shares, checked in one place.
pub(crate) struct Common {
    pub max_bins: usize,
    pub max_depth: Option<usize>,
    pub min_samples_leaf: usize,
    pub n_classes: Option<usize>,
    pub max_seconds: Option<f64>,
}

/// Checks the hyperparameters every learner shares.
pub(crate) fn check_common(common: Common) -> Result<(), TreesError> {
    let Common { max_bins, max_depth, min_samples_leaf, n_classes, max_seconds } = common;
    if max_depth == Some(0) {
        return Err(parameter("max_depth", "must be at least 1"));
    }
    if min_samples_leaf == 0 {
        return Err(parameter("min_samples_leaf", "must be at least 1"));
    }
    if !(2..=bins::MAX_BINS).contains(&max_bins) {
        return Err(parameter("max_bins", "must be between 2 and 255"));
    }
    if n_classes.is_some_and(|n| n < 2) {
        return Err(parameter("n_classes", "must be at least 2"));
    }
    if max_seconds.is_some_and(|s| s.is_nan() || s <= 0.0) {
        return Err(parameter("max_seconds", "must be positive"));
    }
    Ok(())
}

/// Whether a fit that has taken `seconds` has used up its `max_seconds` (never, without one).
pub(crate) fn out_of_time(seconds: f64, max_seconds: Option<f64>) -> bool {
    max_seconds.is_some_and(|limit| seconds >= limit)
}

/// Checks the row count and that every target is finite and accepted by `valid`.
pub(crate) fn check_targets(rows: usize, y: &[f64], valid: impl Fn(f64) -> Result<(), &'static str>) -> Result<(), TreesError> {
    if rows == 0 {
        return Err(TreesError::NoRows);
    }
    if rows != y.len() {
        return Err(TreesError::Shape { rows, targets: y.len() });
    }
    if rows > u32::MAX as usize {
        return Err(parameter("rows", "at most 2^32 - 1 rows are supported"));
    }
    for (row, &value) in y.iter().enumerate() {
        if !value.is_finite() {
            return Err(TreesError::InvalidTarget { row, value, reason: "targets must be finite" });
        }
        valid(value).map_err(|reason| TreesError::InvalidTarget { row, value, reason })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use linfa::prelude::*;
    use ndarray::{Array1, Array2};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// `n` rows of three uniform features; the third is missing for a tenth of the rows.
    fn features(n: usize, seed: u64) -> Array2<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        Array2::from_shape_fn((n, 3), |(_, j)| if j == 2 && rng.random_bool(0.1) { f64::NAN } else { rng.random_range(-2.0..2.0) })
    }

    fn smooth(row: ndarray::ArrayView1<f64>) -> f64 {
        row[0].sin() * 3.0 + row[1] * row[1] + if row[2].is_nan() { 2.0 } else { row[2] }
    }

    fn rmse(a: &[f64], b: &[f64]) -> f64 {
        (a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f64>() / a.len() as f64).sqrt()
    }

    fn std_dev(v: &[f64]) -> f64 {
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64).sqrt()
    }

    #[test]
    fn boosting_learns_a_smooth_function_with_missing_values() {
        let (x, x_test) = (features(4000, 1), features(1000, 2));
        let y: Array1<f64> = x.rows().into_iter().map(smooth).collect();
        let truth: Vec<f64> = x_test.rows().into_iter().map(smooth).collect();
        let model = GradientBoostingParams::new(Loss::SquaredError).max_iter(300).fit(&Dataset::new(x, y)).unwrap();
        let predicted = model.predict(&x_test).column(0).to_vec();
        let error = rmse(&predicted, &truth);
        assert!(error < 0.15 * std_dev(&truth), "rmse {error} against std {}", std_dev(&truth));
        assert!(model.importances().iter().all(|&i| i > 0.1), "every feature matters: {:?}", model.importances());
    }

    #[test]
    fn poisson_boosting_predicts_positive_rates() {
        let x = features(3000, 3);
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let rate = |row: ndarray::ArrayView1<f64>| (row[0] + 1.0).exp();
        let y: Array1<f64> = x.rows().into_iter().map(|r| (rate(r) + rng.random_range(-0.5..0.5)).max(0.0).round()).collect();
        let model = GradientBoostingParams::new(Loss::Poisson).fit(&Dataset::new(x.clone(), y)).unwrap();
        let predicted = model.predict(&x);
        assert!(predicted.iter().all(|&p| p > 0.0));
        let truth: Vec<f64> = x.rows().into_iter().map(rate).collect();
        assert!(rmse(&predicted.column(0).to_vec(), &truth) < 0.2 * std_dev(&truth));
    }

    #[test]
    fn binary_and_multiclass_boosting_separate_classes() {
        let x = features(3000, 5);
        let binary: Array1<f64> = x.column(0).mapv(|v| if v > 0.3 { 1.0 } else { 0.0 });
        let model = GradientBoostingParams::new(Loss::LogLoss).fit(&Dataset::new(x.clone(), binary.clone())).unwrap();
        let probabilities = model.predict(&x);
        let correct = probabilities.rows().into_iter().zip(&binary).filter(|(p, y)| (p[1] > 0.5) == (**y == 1.0)).count();
        assert!(correct as f64 / 3000.0 > 0.98);
        assert!(probabilities.rows().into_iter().all(|p| (p[0] + p[1] - 1.0).abs() < 1e-12));

        let three: Array1<f64> = x.column(1).mapv(|v| {
            if v < -0.5 {
                0.0
            } else if v < 0.5 {
                1.0
            } else {
                2.0
            }
        });
        let model = GradientBoostingParams::new(Loss::Softmax { n_classes: 3 }).fit(&Dataset::new(x.clone(), three.clone())).unwrap();
        let probabilities = model.predict(&x);
        assert_eq!(probabilities.ncols(), 3);
        let argmax = |p: ndarray::ArrayView1<f64>| (0..3).max_by(|&a, &b| p[a].total_cmp(&p[b])).unwrap() as f64;
        let correct = probabilities.rows().into_iter().zip(&three).filter(|(p, y)| argmax(p.view()) == **y).count();
        assert!(correct as f64 / 3000.0 > 0.97);
    }

    #[test]
    fn early_stopping_stops_before_max_iter_on_noise() {
        let x = features(12_000, 6);
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let y: Array1<f64> = (0..12_000).map(|_| rng.random_range(0.0..1.0)).collect();
        let model = GradientBoostingParams::new(Loss::SquaredError).max_iter(500).fit(&Dataset::new(x, y)).unwrap();
        assert!(model.n_trees() < 100, "{} trees grown on pure noise", model.n_trees());
    }

    #[test]
    fn early_stopping_keeps_the_trees_that_learn_the_signal() {
        let (x, x_test) = (features(12_000, 4), features(1000, 5));
        let truth: Vec<f64> = x_test.rows().into_iter().map(|r| (smooth(r) / 3.0).exp()).collect();
        for loss in [Loss::SquaredError, Loss::Poisson] {
            let y: Array1<f64> = x.rows().into_iter().map(|r| (smooth(r) / 3.0).exp()).collect();
            let stopped = GradientBoostingParams::new(loss).max_iter(300).fit(&Dataset::new(x.clone(), y.clone())).unwrap();
            let full = GradientBoostingParams::new(loss)
                .max_iter(300)
                .early_stopping(EarlyStopping::Off)
                .fit(&Dataset::new(x.clone(), y))
                .unwrap();
            let (stopped_error, full_error) =
                (rmse(&stopped.predict(&x_test).column(0).to_vec(), &truth), rmse(&full.predict(&x_test).column(0).to_vec(), &truth));
            assert!(stopped.n_trees() > 50, "{loss:?}: early stopping kept {} trees", stopped.n_trees());
            assert!(
                stopped_error < 1.2 * full_error && stopped_error < 0.2 * std_dev(&truth),
                "{loss:?}: {stopped_error} with early stopping, {full_error} without"
            );
        }
    }

    #[test]
    fn forests_regress_and_classify() {
        let (x, x_test) = (features(2000, 8), features(500, 9));
        let y: Array1<f64> = x.rows().into_iter().map(smooth).collect();
        let truth: Vec<f64> = x_test.rows().into_iter().map(smooth).collect();
        let forest = RandomForestParams::new(ForestTask::Regression).n_trees(50).fit(&Dataset::new(x.clone(), y.clone())).unwrap();
        let forest_error = rmse(&forest.predict(&x_test).column(0).to_vec(), &truth);
        let tree = RandomForestParams::single_tree(ForestTask::Regression).fit(&Dataset::new(x.clone(), y)).unwrap();
        let tree_error = rmse(&tree.predict(&x_test).column(0).to_vec(), &truth);
        assert!(forest_error < tree_error, "forest {forest_error} vs single tree {tree_error}");
        assert!(forest_error < 0.3 * std_dev(&truth));

        let classes: Array1<f64> = x.column(0).mapv(|v| if v > 0.0 { 1.0 } else { 0.0 });
        let classifier = RandomForestParams::new(ForestTask::Classification { n_classes: 2 })
            .n_trees(30)
            .fit(&Dataset::new(x.clone(), classes.clone()))
            .unwrap();
        let probabilities = classifier.predict(&x_test);
        let correct = probabilities.rows().into_iter().zip(x_test.column(0)).filter(|(p, v)| (p[1] > 0.5) == (**v > 0.0)).count();
        assert!(correct as f64 / 500.0 > 0.95);
    }

    #[test]
    fn fitting_is_deterministic_and_models_round_trip() {
        let x = features(3000, 10);
        let y: Array1<f64> = x.rows().into_iter().map(smooth).collect();
        let data = Dataset::new(x.clone(), y);
        let params = GradientBoostingParams::new(Loss::SquaredError).early_stopping(EarlyStopping::On).seed(3);
        let (a, b) = (params.fit(&data).unwrap(), params.fit(&data).unwrap());
        let bytes = postcard::to_stdvec(&a).unwrap();
        assert_eq!(bytes, postcard::to_stdvec(&b).unwrap());
        let forest = RandomForestParams::new(ForestTask::Regression).n_trees(8).seed(1);
        assert_eq!(postcard::to_stdvec(&forest.fit(&data).unwrap()).unwrap(), postcard::to_stdvec(&forest.fit(&data).unwrap()).unwrap());
        let restored: TreeEnsemble = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(restored.predict(&x), a.predict(&x));
    }

    #[test]
    fn model_bytes_do_not_depend_on_the_number_of_threads() {
        // Large enough for every parallel path: histograms, partitions, gradients, small nodes split from their rows.
        let x = features(70_000, 10);
        let y: Array1<f64> = x.rows().into_iter().map(|r| smooth(r).exp().round()).collect();
        let data = Dataset::new(x, y);
        let fit_in = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| {
                let boosted = GradientBoostingParams::new(Loss::Poisson).max_iter(15).seed(5).fit(&data).unwrap();
                let sampled = GradientBoostingParams::new(Loss::Poisson)
                    .max_iter(15)
                    .learning_rate(0.2)
                    .sampling(Sampling::Goss)
                    .seed(5)
                    .fit(&data)
                    .unwrap();
                let forest = RandomForestParams::new(ForestTask::Regression).n_trees(3).seed(5).fit(&data).unwrap();
                [&boosted, &sampled, &forest].map(|model| postcard::to_stdvec(model).unwrap())
            })
        };
        let one = fit_in(1);
        for threads in [2, 3] {
            assert!(fit_in(threads) == one, "{threads} threads gave other model bytes than one");
        }
    }

    #[test]
    fn goss_fits_about_as_well_as_every_row() {
        let x = features(40_000, 6);
        let y: Array1<f64> = x.rows().into_iter().map(|r| smooth(r).exp().round()).collect();
        let (train, test) = Dataset::new(x, y).split_with_ratio(0.75);
        let holdout_rmse = |sampling: Sampling| {
            let model = GradientBoostingParams::new(Loss::Poisson).max_iter(100).sampling(sampling).seed(3).fit(&train).unwrap();
            rmse(&model.predict(test.records()).column(0).to_vec(), &test.targets().to_vec())
        };
        let (every_row, sampled) = (holdout_rmse(Sampling::All), holdout_rmse(Sampling::Goss));
        assert!(sampled != every_row && sampled < every_row * 1.03, "GOSS {sampled} against every row {every_row}");
    }

    #[test]
    fn a_time_limit_stops_adding_trees_and_says_so() {
        let x = features(20_000, 8);
        let y: Array1<f64> = x.rows().into_iter().map(smooth).collect();
        let data = Dataset::new(x, y);
        let limited = GradientBoostingParams::new(Loss::SquaredError)
            .max_iter(100_000)
            .early_stopping(EarlyStopping::Off)
            .max_seconds(Some(0.2))
            .fit(&data)
            .unwrap();
        assert!(limited.time_limited() && limited.n_trees() > 0 && limited.n_trees() < 100_000, "{} trees", limited.n_trees());
        let forest = RandomForestParams::new(ForestTask::Regression).n_trees(100_000).max_seconds(Some(0.2)).fit(&data).unwrap();
        assert!(forest.time_limited() && forest.n_trees() > 0 && forest.n_trees() < 100_000);
        let unlimited = GradientBoostingParams::new(Loss::SquaredError).max_iter(5).fit(&data).unwrap();
        assert!(!unlimited.time_limited());
        assert!(GradientBoostingParams::new(Loss::SquaredError).max_seconds(Some(0.0)).check().is_err());
    }

    /// Fits through `boost` a few rounds at a time, the input and every checkpoint passed through
    /// their stored bytes as invocations of a state machine would; answers the model and the
    /// number of pauses.
    fn fit_in_pieces(
        params: &GradientBoostingValidParams,
        data: &DatasetBase<Array2<f64>, Array1<f64>>,
        rounds: usize,
    ) -> (TreeEnsemble, usize) {
        let input: BoostingInput = postcard::from_bytes(&postcard::to_stdvec(&params.prepare(data).unwrap()).unwrap()).unwrap();
        let (mut checkpoint, mut pauses) = (None, 0);
        loop {
            match params.boost(&input, checkpoint.take(), rounds).unwrap() {
                Boosting::Done { model, .. } => return (model, pauses),
                Boosting::Paused(paused) => {
                    assert_eq!(paused.rounds(), (pauses + 1) * rounds);
                    pauses += 1;
                    checkpoint = Some(postcard::from_bytes(&postcard::to_stdvec(&paused).unwrap()).unwrap());
                }
            }
        }
    }

    #[test]
    fn boosting_resumed_from_checkpoints_gives_the_bytes_of_one_fit() {
        let x = features(12_000, 9);
        let counts: Array1<f64> = x.rows().into_iter().map(|r| smooth(r).exp().round()).collect();
        let classes: Array1<f64> = x.column(1).mapv(|v| (v + 2.0).floor().min(2.0));
        let cases = [
            // Early stopping and GOSS: the validation record and the random stream carry over.
            (GradientBoostingParams::new(Loss::Poisson).max_iter(60).sampling(Sampling::Goss), counts),
            (GradientBoostingParams::new(Loss::Softmax { n_classes: 3 }).max_iter(25), classes),
        ];
        for (params, y) in cases {
            let params = params.check().unwrap();
            let data = Dataset::new(x.clone(), y);
            let whole = postcard::to_stdvec(&params.fit(&data).unwrap()).unwrap();
            let (resumed, pauses) = fit_in_pieces(&params, &data, 7);
            assert!(pauses >= 3, "{pauses} pauses");
            assert!(postcard::to_stdvec(&resumed).unwrap() == whole, "a resumed fit gave other bytes than one fit");
        }
    }

    #[test]
    fn a_checkpoint_of_another_fit_is_refused() {
        let x = features(500, 10);
        let y: Array1<f64> = x.rows().into_iter().map(smooth).collect();
        let data = Dataset::new(x, y);
        let params = GradientBoostingParams::new(Loss::SquaredError).max_iter(10).check().unwrap();
        let input = params.prepare(&data).unwrap();
        let Boosting::Paused(checkpoint) = params.boost(&input, None, 2).unwrap() else { panic!("10 rounds take more than 2") };
        let other = GradientBoostingParams::new(Loss::Softmax { n_classes: 2 }).max_iter(10).check().unwrap();
        let classes = Dataset::new(data.records().clone(), data.targets().mapv(|v| f64::from(v > 0.0)));
        let error = other.boost(&other.prepare(&classes).unwrap(), Some(checkpoint), 2).unwrap_err();
        assert!(error.to_string().contains("cannot resume"), "{error}");
        assert!(params.boost(&input, None, 0).is_err());
    }

    #[test]
    fn invalid_parameters_and_targets_are_refused_with_their_name() {
        let error = GradientBoostingParams::new(Loss::SquaredError).learning_rate(0.0).check().unwrap_err();
        assert!(error.to_string().contains("learning_rate"), "{error}");
        let x = features(10, 1);
        let negative = Array1::from_elem(10, -1.0);
        let error = GradientBoostingParams::new(Loss::Poisson).fit(&Dataset::new(x.clone(), negative)).unwrap_err();
        assert!(error.to_string().contains("row 0") && error.to_string().contains("non-negative"), "{error}");
        let mut nan = Array1::zeros(10);
        nan[4] = f64::NAN;
        let error = RandomForestParams::new(ForestTask::Regression).fit(&Dataset::new(x, nan)).unwrap_err();
        assert!(error.to_string().contains("row 4"), "{error}");
    }
}
