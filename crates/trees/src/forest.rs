//! Random forests (bagged trees with random feature subsets) and single decision trees.

use linfa::ParamGuard;
use linfa::dataset::DatasetBase;
use linfa::traits::Fit;
use ndarray::{ArrayBase, Data, Ix1, Ix2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::bins::BinMapper;
use crate::ensemble::{Link, TreeEnsemble, normalised_importances};
use crate::grow::{Gradients, GrowConfig, Grower};
use crate::{Common, TreesError, check_common, check_targets, out_of_time, parameter};

/// What a forest predicts.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum ForestTask {
    /// The mean of the targets in a leaf.
    Regression,
    /// Class proportions in a leaf; targets are class indices `0..n_classes`.
    Classification { n_classes: usize },
}

/// How many features each node may split on.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub enum MaxFeatures {
    All,
    Sqrt,
    Fraction(f64),
}

impl MaxFeatures {
    fn count(self, n_features: usize) -> usize {
        let k = match self {
            MaxFeatures::All => n_features,
            MaxFeatures::Sqrt => (n_features as f64).sqrt().round() as usize,
            MaxFeatures::Fraction(f) => (n_features as f64 * f).round() as usize,
        };
        k.clamp(1, n_features.max(1))
    }
}

/// Checked hyperparameters of a random forest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RandomForestValidParams {
    task: ForestTask,
    n_trees: usize,
    max_depth: Option<usize>,
    min_samples_leaf: usize,
    max_features: MaxFeatures,
    bootstrap: bool,
    max_samples: Option<usize>,
    max_bins: usize,
    seed: u64,
    max_seconds: Option<f64>,
}

/// Hyperparameters of a random forest; defaults follow scikit-learn (100 fully grown trees,
/// all features for regression and the square root of their number for classification).
#[derive(Debug, Clone, PartialEq)]
pub struct RandomForestParams(RandomForestValidParams);

impl RandomForestParams {
    pub fn new(task: ForestTask) -> Self {
        let max_features = match task {
            ForestTask::Regression => MaxFeatures::All,
            ForestTask::Classification { .. } => MaxFeatures::Sqrt,
        };
        RandomForestParams(RandomForestValidParams {
            task,
            n_trees: 100,
            max_depth: None,
            min_samples_leaf: 1,
            max_features,
            bootstrap: true,
            max_samples: None,
            max_bins: 255,
            seed: 0,
            max_seconds: None,
        })
    }

    /// A single tree on every row and feature.
    pub fn single_tree(task: ForestTask) -> Self {
        RandomForestParams::new(task).n_trees(1).bootstrap(false).max_features(MaxFeatures::All)
    }

    pub fn n_trees(mut self, value: usize) -> Self {
        self.0.n_trees = value;
        self
    }
    pub fn max_depth(mut self, value: Option<usize>) -> Self {
        self.0.max_depth = value;
        self
    }
    pub fn min_samples_leaf(mut self, value: usize) -> Self {
        self.0.min_samples_leaf = value;
        self
    }
    pub fn max_features(mut self, value: MaxFeatures) -> Self {
        self.0.max_features = value;
        self
    }
    pub fn bootstrap(mut self, value: bool) -> Self {
        self.0.bootstrap = value;
        self
    }
    /// Rows drawn for each tree (all rows when `None`).
    pub fn max_samples(mut self, value: Option<usize>) -> Self {
        self.0.max_samples = value;
        self
    }
    pub fn max_bins(mut self, value: usize) -> Self {
        self.0.max_bins = value;
        self
    }
    pub fn seed(mut self, value: u64) -> Self {
        self.0.seed = value;
        self
    }
    /// Stop adding trees once fitting has taken this many seconds (the model says so).
    pub fn max_seconds(mut self, value: Option<f64>) -> Self {
        self.0.max_seconds = value;
        self
    }
}

impl ParamGuard for RandomForestParams {
    type Checked = RandomForestValidParams;
    type Error = TreesError;

    fn check_ref(&self) -> Result<&Self::Checked, Self::Error> {
        let p = &self.0;
        if p.n_trees == 0 {
            return Err(parameter("n_trees", "must be at least 1"));
        }
        if let MaxFeatures::Fraction(f) = p.max_features
            && !(f > 0.0 && f <= 1.0)
        {
            return Err(parameter("max_features", "a fraction must be in (0, 1]"));
        }
        if p.max_samples == Some(0) {
            return Err(parameter("max_samples", "must be at least 1"));
        }
        let n_classes = match p.task {
            ForestTask::Classification { n_classes } => Some(n_classes),
            ForestTask::Regression => None,
        };
        check_common(Common {
            max_bins: p.max_bins,
            max_depth: p.max_depth,
            min_samples_leaf: p.min_samples_leaf,
            n_classes,
            max_seconds: p.max_seconds,
        })?;
        Ok(p)
    }

    fn check(self) -> Result<Self::Checked, Self::Error> {
        self.check_ref()?;
        Ok(self.0)
    }
}

impl<D: Data<Elem = f64>, T: Data<Elem = f64>> Fit<ArrayBase<D, Ix2>, ArrayBase<T, Ix1>, TreesError> for RandomForestValidParams {
    type Object = TreeEnsemble;

    fn fit(&self, dataset: &DatasetBase<ArrayBase<D, Ix2>, ArrayBase<T, Ix1>>) -> Result<TreeEnsemble, TreesError> {
        let started = std::time::Instant::now();
        let x = dataset.records();
        let y: Vec<f64> = dataset.targets().iter().copied().collect();
        check_targets(x.nrows(), &y, |v| match self.task {
            ForestTask::Classification { n_classes } if v.fract() != 0.0 || v < 0.0 || v >= n_classes as f64 => {
                Err("class targets must be class indices below n_classes")
            }
            _ => Ok(()),
        })?;
        let n = y.len();
        let all_rows: Vec<u32> = (0..n as u32).collect();
        let mapper = BinMapper::fit(x, &all_rows, self.max_bins, &mut ChaCha8Rng::seed_from_u64(self.seed));
        let binned = mapper.transform(x);
        // Forests grow on the targets as negative gradients with unit hessians: a leaf's value
        // is then the mean target (or class proportions) of its rows.
        let (pairs, classes): (Vec<[f64; 2]>, Vec<f64>) = match self.task {
            ForestTask::Regression => (y.iter().map(|v| [-v, 1.0]).collect(), Vec::new()),
            ForestTask::Classification { n_classes } => {
                let mut grad = vec![0.0; n * n_classes];
                for (row, class) in y.iter().enumerate() {
                    grad[row * n_classes + *class as usize] = -1.0;
                }
                (Vec::new(), grad)
            }
        };
        let grads = match self.task {
            ForestTask::Regression => Gradients::Single(&pairs),
            ForestTask::Classification { n_classes } => Gradients::Multi { grad: &classes, width: n_classes },
        };
        let config = GrowConfig {
            max_leaf_nodes: None,
            max_depth: self.max_depth,
            min_samples_leaf: self.min_samples_leaf,
            min_hessian_leaf: 0.0,
            l2: 0.0,
            shrinkage: 1.0,
            features_per_node: Some(self.max_features.count(x.ncols())),
        };
        let grower = Grower { bins: &binned, edges: &mapper.features, grads, config: &config };
        let n_draws = self.max_samples.unwrap_or(n).min(n);
        let grow_tree = |index: usize| {
            let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
            rng.set_stream(index as u64 + 1);
            let rows: Vec<u32> = if self.bootstrap {
                let mut rows: Vec<u32> = (0..n_draws).map(|_| rng.random_range(0..n as u32)).collect();
                rows.sort_unstable();
                rows
            } else {
                all_rows.clone()
            };
            let grown = grower.grow(rows, &mut rng);
            (grown.tree, grown.gains)
        };
        // Trees are grown a round of one per thread at a time, so that a time limit stops
        // between rounds; tree `i` is the same tree however many rounds there are.
        let mut grown = Vec::with_capacity(self.n_trees);
        let mut time_limited = false;
        while grown.len() < self.n_trees {
            if !grown.is_empty() && out_of_time(started.elapsed().as_secs_f64(), self.max_seconds) {
                time_limited = true;
                break;
            }
            let round_size = if self.max_seconds.is_some() { rayon::current_num_threads() } else { self.n_trees };
            let round = grown.len()..(grown.len() + round_size).min(self.n_trees);
            grown.extend(round.into_par_iter().map(grow_tree).collect::<Vec<_>>());
        }
        let n_features = x.ncols();
        let importances = normalised_importances(n_features, grown.iter().map(|(_, gains)| &gains[..]));
        let (link, n_outputs) = match self.task {
            ForestTask::Regression => (Link::Identity, 1),
            ForestTask::Classification { n_classes } => (Link::Proportions, n_classes),
        };
        Ok(TreeEnsemble {
            link,
            n_outputs,
            baseline: vec![0.0; n_outputs],
            trees: grown.into_iter().map(|(tree, _)| tree).collect(),
            average: true,
            n_features,
            importances,
            time_limited,
        })
    }
}
