//! Candidate models: ridge and binary logistic regression (solved directly), multinomial
//! logistic regression (L-BFGS), and this project's tree learners.

mod logistic;
mod multinomial;
mod ridge;

use linfa::ParamGuard;
use linfa::prelude::*;
use mlops_trees::{
    Boosting, BoostingCheckpoint, BoostingInput, EarlyStopping, ForestTask, GradientBoostingParams, Link, Loss, MaxFeatures,
    RandomForestParams, Sampling, TreeEnsemble,
};
use ndarray::Array2;
use serde::{Deserialize, Serialize};

pub use logistic::Logistic;
pub use multinomial::Multinomial;
pub use ridge::Ridge;

use crate::design::{Design, SparseRows};
use crate::features::Encoding;
use crate::spec::{EarlyStoppingSpec, ModelSpec, RegressionLoss, SamplingSpec, Task};

/// A random forest's default minimum leaf size is one row per this many training rows (and at
/// least one): fully grown trees on millions of rows would hold hundreds of thousands of leaves
/// each, gigabytes for a forest, for no better holdout metric.
const FOREST_ROWS_PER_LEAF_ROW: usize = 50_000;

/// Rows per block when a linear model sums over the rows in parallel.
const BLOCK_ROWS: usize = 32 * 1024;

/// The `(start, end)` row ranges of `n` rows in blocks of [`BLOCK_ROWS`]: fixed whatever the
/// number of threads, so that sums in block order give the same bytes every run.
fn row_blocks(n: usize) -> Vec<(usize, usize)> {
    (0..n).step_by(BLOCK_ROWS).map(|start| (start, (start + BLOCK_ROWS).min(n))).collect()
}

/// Why a candidate's hyperparameters are refused or its fit failed.
#[derive(Debug, thiserror::Error)]
pub enum FitError {
    #[error("alpha must be non-negative")]
    NegativeAlpha,
    #[error("loss only applies to regression; classification uses log-loss")]
    LossForClassification,
    #[error("{targets} targets for {rows} rows")]
    TargetCount { targets: usize, rows: usize },
    #[error("target {target} is not a class index below {classes}")]
    NotAClass { target: f64, classes: usize },
    #[error("the {system} has no solution: {reason}")]
    NoSolution { system: &'static str, reason: String },
    #[error("the fitted coefficients are not finite")]
    NotFinite,
    #[error("trees are fitted on the dense ordinal encoding, not on sparse rows")]
    SparseForTrees,
    #[error("only gradient boosting fits over several calls")]
    NotResumable,
    #[error(transparent)]
    Trees(#[from] mlops_trees::TreesError),
}

/// A fitted model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Model {
    Ridge(Ridge),
    Logistic(Logistic),
    Multinomial(Multinomial),
    Trees(TreeEnsemble),
}

/// The space a model's raw outputs live in, where contributions add up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutputSpace {
    /// The prediction itself.
    Value,
    /// The log of the prediction (Poisson).
    Log,
    /// The log-odds of the class.
    LogOdds,
    /// The class's score: the log of its probability, up to a constant shared by the classes.
    Score,
    /// The class's probability (a forest's averaged class proportions).
    Probability,
}

/// What a model is fitted for.
#[derive(Debug, Clone, Copy)]
pub struct Problem {
    pub task: Task,
    /// Number of classes (1 for regression).
    pub n_classes: usize,
    pub seed: u64,
    /// Seconds the fit may take: boosting and forests stop adding trees past them.
    pub max_seconds: Option<f64>,
}

/// Checks a candidate's hyperparameters for a task without fitting.
pub fn check_model_spec(spec: &ModelSpec, task: Task) -> Result<(), FitError> {
    let problem = Problem { task, n_classes: if task == Task::Multiclass { 3 } else { 2 }, seed: 0, max_seconds: None };
    match spec {
        ModelSpec::Linear { alpha } if !(*alpha >= 0.0 && alpha.is_finite()) => Err(FitError::NegativeAlpha),
        ModelSpec::Linear { .. } => Ok(()),
        // No training rows yet (0): an unset forest leaf size is then its smallest, 1, which is valid.
        ModelSpec::DecisionTree { .. } | ModelSpec::RandomForest { .. } => Ok(forest_params(spec, problem, 0).check().map(drop)?),
        ModelSpec::GradientBoosting { loss: Some(_), .. } if task.is_classification() => Err(FitError::LossForClassification),
        ModelSpec::GradientBoosting { .. } => Ok(boosting_params(spec, problem).check().map(drop)?),
    }
}

/// The feature encoding a candidate is fitted on.
pub fn encoding_of(spec: &ModelSpec) -> Encoding {
    match spec {
        ModelSpec::Linear { .. } => Encoding::OneHot,
        _ => Encoding::Ordinal,
    }
}

fn forest_task(problem: Problem) -> ForestTask {
    match problem.task {
        Task::Regression => ForestTask::Regression,
        _ => ForestTask::Classification { n_classes: problem.n_classes },
    }
}

/// The minimum leaf size of a random forest on `n_rows` training rows when its spec gives none.
fn default_forest_min_samples_leaf(n_rows: usize) -> usize {
    (n_rows / FOREST_ROWS_PER_LEAF_ROW).max(1)
}

fn forest_params(spec: &ModelSpec, problem: Problem, n_rows: usize) -> RandomForestParams {
    match *spec {
        ModelSpec::DecisionTree { max_depth, min_samples_leaf } => {
            RandomForestParams::single_tree(forest_task(problem)).max_depth(max_depth).min_samples_leaf(min_samples_leaf).seed(problem.seed)
        }
        ModelSpec::RandomForest { trees, max_depth, min_samples_leaf, max_features, max_samples } => {
            let params = RandomForestParams::new(forest_task(problem))
                .n_trees(trees)
                .max_depth(max_depth)
                .min_samples_leaf(min_samples_leaf.unwrap_or_else(|| default_forest_min_samples_leaf(n_rows)))
                .max_samples(max_samples)
                .seed(problem.seed)
                .max_seconds(problem.max_seconds);
            match max_features {
                Some(fraction) => params.max_features(MaxFeatures::Fraction(fraction)),
                None => params,
            }
        }
        _ => unreachable!("only tree specs have forest parameters"),
    }
}

fn boosting_params(spec: &ModelSpec, problem: Problem) -> GradientBoostingParams {
    let ModelSpec::GradientBoosting {
        loss,
        learning_rate,
        max_iter,
        max_leaf_nodes,
        max_depth,
        min_samples_leaf,
        l2_regularization,
        early_stopping,
        sampling,
    } = *spec
    else {
        unreachable!("only boosting specs have boosting parameters")
    };
    let loss = match (problem.task, loss) {
        (Task::Regression, Some(RegressionLoss::Poisson)) => Loss::Poisson,
        (Task::Regression, _) => Loss::SquaredError,
        (Task::Binary, _) => Loss::LogLoss,
        (Task::Multiclass, _) => Loss::Softmax { n_classes: problem.n_classes },
    };
    GradientBoostingParams::new(loss)
        .learning_rate(learning_rate)
        .max_iter(max_iter)
        .max_leaf_nodes(Some(max_leaf_nodes))
        .max_depth(max_depth)
        .min_samples_leaf(min_samples_leaf)
        .l2_regularization(l2_regularization)
        .early_stopping(match early_stopping {
            EarlyStoppingSpec::Auto => EarlyStopping::Auto,
            EarlyStoppingSpec::On => EarlyStopping::On,
            EarlyStoppingSpec::Off => EarlyStopping::Off,
        })
        .sampling(match sampling {
            SamplingSpec::All => Sampling::All,
            SamplingSpec::Goss => Sampling::Goss,
        })
        .seed(problem.seed)
        .max_seconds(problem.max_seconds)
}

/// Whether a candidate's fit can run over several calls ([`prepare_boosting`], [`boost`]).
pub fn is_resumable(spec: &ModelSpec) -> bool {
    matches!(spec, ModelSpec::GradientBoosting { .. })
}

/// The first part of a gradient-boosting fit over several calls: the early-stopping split and
/// the binned training matrix of dense features `x`, which every later call loads.
pub fn prepare_boosting(spec: &ModelSpec, problem: Problem, x: &Design, y: &[f64]) -> Result<BoostingInput, FitError> {
    if !is_resumable(spec) {
        return Err(FitError::NotResumable);
    }
    let Design::Dense(x) = x else { return Err(FitError::SparseForTrees) };
    let dataset = DatasetBase::new(x.view(), ndarray::ArrayView1::from(y));
    Ok(boosting_params(spec, problem).check()?.prepare(&dataset)?)
}

/// At most `rounds` more boosting rounds of a fit over several calls, from `from` or from the
/// start: the same model, to the byte, as [`fit`] when boosting is done.
pub fn boost(
    spec: &ModelSpec,
    problem: Problem,
    input: &BoostingInput,
    from: Option<BoostingCheckpoint>,
    rounds: usize,
) -> Result<Boosting, FitError> {
    if !is_resumable(spec) {
        return Err(FitError::NotResumable);
    }
    Ok(boosting_params(spec, problem).check()?.boost(input, from, rounds)?)
}

/// Fits a candidate on encoded features `x` and targets `y` (class indices for classification).
/// Linear models read either layout; trees read the dense one.
pub fn fit(spec: &ModelSpec, problem: Problem, x: &Design, y: &[f64]) -> Result<Model, FitError> {
    match spec {
        ModelSpec::Linear { alpha } => {
            let converted;
            let rows = match x {
                Design::Sparse(rows) => rows,
                Design::Dense(dense) => {
                    converted = SparseRows::from_dense(dense.view());
                    &converted
                }
            };
            match problem.task {
                Task::Regression => Ok(Model::Ridge(Ridge::fit(rows, y, *alpha)?)),
                Task::Binary => Ok(Model::Logistic(Logistic::fit(rows, y, *alpha)?)),
                Task::Multiclass => Ok(Model::Multinomial(Multinomial::fit(rows, y, problem.n_classes, *alpha)?)),
            }
        }
        ModelSpec::DecisionTree { .. } | ModelSpec::RandomForest { .. } | ModelSpec::GradientBoosting { .. } => {
            let Design::Dense(x) = x else { return Err(FitError::SparseForTrees) };
            let targets = ndarray::ArrayView1::from(y);
            let dataset = DatasetBase::new(x.view(), targets);
            let model = match spec {
                ModelSpec::GradientBoosting { .. } => boosting_params(spec, problem).fit(&dataset)?,
                _ => forest_params(spec, problem, x.nrows()).fit(&dataset)?,
            };
            Ok(Model::Trees(model))
        }
    }
}

impl Model {
    /// The feature encoding this model reads.
    pub fn encoding(&self) -> Encoding {
        match self {
            Model::Trees(_) => Encoding::Ordinal,
            _ => Encoding::OneHot,
        }
    }

    /// Predictions, one row per input row: the value for regression, else one probability per
    /// class.
    pub fn predict(&self, x: &Array2<f64>) -> Array2<f64> {
        match self {
            Model::Ridge(model) => model.predict(x).insert_axis(ndarray::Axis(1)),
            Model::Logistic(model) => {
                let positive = model.predict_probabilities(x);
                let mut out = Array2::zeros((x.nrows(), 2));
                out.column_mut(1).assign(&positive);
                out.column_mut(0).assign(&positive.mapv(|p| 1.0 - p));
                out
            }
            Model::Multinomial(model) => model.predict_probabilities(x),
            Model::Trees(model) => model.predict(x),
        }
    }

    /// Each feature's contribution to `row`'s raw outputs, in the model's output space (the value
    /// for regression, log-odds or class scores for classifiers, the log for Poisson trees): one
    /// block of `row.len() + 1` values per output, the last the expected output (the intercept
    /// of a linear model), each block summing to the output. Exact TreeSHAP for trees,
    /// coefficient times value for linear models.
    pub fn contributions(&self, row: &[f64]) -> Vec<f64> {
        match self {
            Model::Ridge(model) => model.contributions(row),
            Model::Logistic(model) => model.contributions(row),
            Model::Multinomial(model) => model.contributions(row),
            Model::Trees(model) => model.contributions(row),
        }
    }

    /// What [`Self::contributions`] explains: the space of the raw outputs, and the class of each
    /// output (none for regression).
    pub fn output_space(&self) -> (OutputSpace, Vec<Option<usize>>) {
        let classes = |n: usize| (0..n).map(Some).collect();
        match self {
            Model::Ridge(_) => (OutputSpace::Value, vec![None]),
            Model::Logistic(_) => (OutputSpace::LogOdds, vec![Some(1)]),
            Model::Multinomial(model) => (OutputSpace::Score, classes(model.n_classes())),
            Model::Trees(model) => match model.link() {
                Link::Identity => (OutputSpace::Value, vec![None]),
                Link::Exp => (OutputSpace::Log, vec![None]),
                Link::Sigmoid => (OutputSpace::LogOdds, vec![Some(1)]),
                Link::Softmax => (OutputSpace::Score, classes(model.n_outputs())),
                Link::Proportions => (OutputSpace::Probability, classes(model.n_outputs())),
            },
        }
    }

    /// What stopped the fit early, when its time limit did.
    pub fn time_note(&self) -> Option<String> {
        match self {
            Model::Trees(model) if model.time_limited() => {
                Some(format!("stopped at {} trees: the candidate's share of training.budget_seconds ran out", model.n_trees()))
            }
            _ => None,
        }
    }

    /// Normalised importance per encoded feature, for tree models.
    pub fn importances(&self) -> Option<&[f64]> {
        match self {
            Model::Trees(model) => Some(model.importances()),
            _ => None,
        }
    }
}

/// Coefficient times value for each feature, then the intercept.
fn linear_contributions(coefficients: &[f64], intercept: f64, row: &[f64]) -> Vec<f64> {
    coefficients.iter().zip(row).map(|(w, x)| w * x).chain([intercept]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> (Array2<f64>, Vec<f64>) {
        let x = Array2::from_shape_fn((300, 2), |(i, j)| ((i * (j + 3)) % 17) as f64 / 17.0);
        let y = x.rows().into_iter().map(|r| 3.0 * r[0] - 2.0 * r[1] + 1.0).collect();
        (x, y)
    }

    #[test]
    fn every_kind_fits_a_regression() {
        let (x, y) = data();
        let problem = Problem { task: Task::Regression, n_classes: 1, seed: 1, max_seconds: None };
        let specs: Vec<ModelSpec> = toml::from_str::<std::collections::BTreeMap<String, ModelSpec>>(
            r#"
lm = { kind = "linear", alpha = 0.0001 }
tree = { kind = "decision_tree" }
forest = { kind = "random_forest", trees = 20 }
gbm = { kind = "gradient_boosting" }
"#,
        )
        .unwrap()
        .into_values()
        .collect();
        for spec in specs {
            let model = fit(&spec, problem, &Design::Dense(x.clone()), &y).unwrap();
            let predicted = model.predict(&x);
            let rmse = (predicted.column(0).iter().zip(&y).map(|(p, t)| (p - t).powi(2)).sum::<f64>() / 300.0).sqrt();
            assert!(rmse < 0.3, "{}: rmse {rmse}", spec.kind());
        }
    }

    #[test]
    fn classifiers_give_one_probability_per_class() {
        let (x, y) = data();
        let classes: Vec<f64> = y
            .iter()
            .map(|v| {
                if *v < 0.5 {
                    0.0
                } else if *v < 2.0 {
                    1.0
                } else {
                    2.0
                }
            })
            .collect();
        let problem = Problem { task: Task::Multiclass, n_classes: 4, seed: 1, max_seconds: None };
        for spec in [ModelSpec::Linear { alpha: 0.01 }, toml::from_str("kind = \"gradient_boosting\"\nmax_iter = 20").unwrap()] {
            let model = fit(&spec, problem, &Design::Dense(x.clone()), &classes).unwrap();
            let p = model.predict(&x);
            assert_eq!(p.ncols(), 4);
            assert!(p.rows().into_iter().all(|r| (r.sum() - 1.0).abs() < 1e-9));
        }
        let binary: Vec<f64> = classes.iter().map(|c| f64::from(*c > 0.0)).collect();
        let model = fit(
            &ModelSpec::Linear { alpha: 0.01 },
            Problem { task: Task::Binary, n_classes: 2, seed: 0, max_seconds: None },
            &Design::Dense(x.clone()),
            &binary,
        )
        .unwrap();
        let p = model.predict(&x);
        let correct = p.rows().into_iter().zip(&binary).filter(|(r, c)| (r[1] > 0.5) == (**c == 1.0)).count();
        assert!(correct > 270, "{correct} of 300");
    }

    #[test]
    fn every_kinds_contributions_sum_to_its_output_in_its_output_space() {
        let (x, y) = data();
        let classes: Vec<f64> = y.iter().map(|v| f64::from(u8::from(*v > 0.5) + u8::from(*v > 2.0))).collect();
        let binary: Vec<f64> = classes.iter().map(|c| f64::from(*c > 0.0)).collect();
        let kinds = [
            ("kind = \"linear\"", Task::Regression, 1, &y),
            ("kind = \"gradient_boosting\"\nmax_iter = 20", Task::Regression, 1, &y),
            ("kind = \"random_forest\"\ntrees = 10", Task::Regression, 1, &y),
            ("kind = \"linear\"", Task::Binary, 2, &binary),
            ("kind = \"gradient_boosting\"\nmax_iter = 20", Task::Binary, 2, &binary),
            ("kind = \"linear\"", Task::Multiclass, 4, &classes),
            ("kind = \"gradient_boosting\"\nmax_iter = 20", Task::Multiclass, 4, &classes),
            ("kind = \"random_forest\"\ntrees = 10", Task::Multiclass, 4, &classes),
        ];
        for (spec, task, n_classes, target) in kinds {
            let spec: ModelSpec = toml::from_str(spec).unwrap();
            let model = fit(&spec, Problem { task, n_classes, seed: 3, max_seconds: None }, &Design::Dense(x.clone()), target).unwrap();
            let predicted = model.predict(&x);
            for (row, p) in x.rows().into_iter().zip(predicted.rows()).step_by(7) {
                let phi = model.contributions(&row.to_vec());
                let outputs: Vec<f64> = phi.chunks(row.len() + 1).map(|block| block.iter().sum()).collect();
                let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * (1.0 + b.abs());
                let what = format!("{} {task:?}", spec.kind());
                if task == Task::Regression {
                    assert!(close(outputs[0], p[0]), "{what}");
                } else if spec.kind() == "random_forest" {
                    // A forest averages class proportions: its outputs are the probabilities.
                    (0..n_classes).for_each(|c| assert!(close(outputs[c], p[c]), "{what} class {c}"));
                } else if task == Task::Binary {
                    assert!(close(outputs[0], (p[1] / p[0]).ln()), "{what}");
                } else {
                    // Class scores: their differences are the log ratios of the probabilities.
                    for c in (1..n_classes).filter(|&c| p[c] > 0.0) {
                        assert!(close(outputs[c] - outputs[0], (p[c] / p[0]).ln()), "{what} class {c}");
                    }
                }
            }
        }
    }

    #[test]
    fn a_forest_on_many_rows_gets_larger_leaves_unless_its_spec_says() {
        assert_eq!([0, 99_999, 100_000, 800_000].map(default_forest_min_samples_leaf), [1, 1, 2, 16]);
        let n = 200_000;
        // Three features of 997 scrambled values each: almost every row is a cell of its own.
        let scrambled = |i: usize, salt: u32| (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(7 + 13 * salt);
        let x = Array2::from_shape_fn((n, 3), |(i, j)| (scrambled(i, j as u32) % 997) as f64);
        let y: Vec<f64> = (0..n).map(|i| (scrambled(i, 3) % 101) as f64).collect();
        let problem = Problem { task: Task::Regression, n_classes: 1, seed: 1, max_seconds: None };
        let design = Design::Dense(x);
        let leaves = |spec: &str| {
            let spec: ModelSpec = toml::from_str(spec).unwrap();
            match fit(&spec, problem, &design, &y).unwrap() {
                Model::Trees(forest) => forest.trees()[0].n_leaves(),
                _ => unreachable!("a forest is trees"),
            }
        };
        let default = leaves("kind = \"random_forest\"\ntrees = 1");
        let explicit = leaves("kind = \"random_forest\"\ntrees = 1\nmin_samples_leaf = 1");
        assert!(default <= n / 2, "{default} leaves of at least 2 rows each");
        assert!(explicit > default, "min_samples_leaf = 1 gives {explicit} leaves, the default {default}");
    }

    #[test]
    fn bad_hyperparameters_are_caught_before_fitting() {
        let spec: ModelSpec = toml::from_str("kind = \"gradient_boosting\"\nlearning_rate = -1.0").unwrap();
        assert!(check_model_spec(&spec, Task::Regression).unwrap_err().to_string().contains("learning_rate"));
        let spec: ModelSpec = toml::from_str("kind = \"gradient_boosting\"\nloss = \"poisson\"").unwrap();
        assert!(check_model_spec(&spec, Task::Binary).is_err());
        let spec: ModelSpec = toml::from_str("kind = \"random_forest\"\nmax_features = 1.5").unwrap();
        assert!(check_model_spec(&spec, Task::Regression).unwrap_err().to_string().contains("max_features"));
    }
}
