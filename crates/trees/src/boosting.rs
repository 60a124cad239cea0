//! Gradient boosting of histogram trees (second-order, leaf-wise growth), in the manner of
//! LightGBM and scikit-learn's `HistGradientBoosting*`.

use linfa::ParamGuard;
use linfa::dataset::DatasetBase;
use linfa::traits::Fit;
use ndarray::{ArrayBase, Data, Ix1, Ix2};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::bins::{BinMapper, BinnedMatrix, MISSING_BIN};
use crate::ensemble::{Link, TreeEnsemble, normalised_importances, softmax_into};
use crate::goss;
use crate::grow::{Gradients, GrowConfig, Grower};
use crate::tree::Tree;
use crate::{Common, TreesError, check_common, check_targets, out_of_time, parameter};

/// Early stopping is on for `Auto` from this many training rows, as in scikit-learn.
const AUTO_EARLY_STOPPING_ROWS: usize = 10_000;
const MIN_PROBABILITY: f64 = 1e-15;
/// One block of rows of every output's gradient and hessian pairs.
type OutputSlices<'a> = Vec<&'a mut [[f64; 2]]>;
/// Rows per parallel task when computing gradients.
const GRADIENT_BLOCK: usize = 16 * 1024;
/// Raw scores are clamped to this before `exp`, which overflows past 709.
const EXP_LIMIT: f64 = 700.0;

/// The loss that boosting minimises.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub enum Loss {
    /// Regression, identity link.
    SquaredError,
    /// Regression of non-negative counts or rates, log link.
    Poisson,
    /// Binary classification; targets are 0 or 1.
    LogLoss,
    /// Multiclass classification; targets are class indices `0..n_classes`.
    Softmax { n_classes: usize },
}

impl Loss {
    fn n_outputs(self) -> usize {
        match self {
            Loss::Softmax { n_classes } => n_classes,
            _ => 1,
        }
    }

    fn baseline(self, y: &[f64], rows: &[u32]) -> Vec<f64> {
        let n = rows.len() as f64;
        let mean = rows.iter().map(|&r| y[r as usize]).sum::<f64>() / n;
        match self {
            Loss::SquaredError => vec![mean],
            Loss::Poisson => vec![mean.max(MIN_PROBABILITY).ln()],
            Loss::LogLoss => {
                let p = mean.clamp(MIN_PROBABILITY, 1.0 - MIN_PROBABILITY);
                vec![(p / (1.0 - p)).ln()]
            }
            Loss::Softmax { n_classes } => {
                let mut counts = vec![0.0; n_classes];
                rows.iter().for_each(|&r| counts[y[r as usize] as usize] += 1.0);
                counts.iter().map(|c| (c / n).max(MIN_PROBABILITY).ln()).collect()
            }
        }
    }

    /// Whether the gradients read `exp(raw)`, which [`Scores`] then keeps up to date.
    fn needs_exp(self) -> bool {
        matches!(self, Loss::Poisson | Loss::LogLoss)
    }

    /// Fills `[gradient, hessian]` of every row (`n_outputs` blocks of one pair per row), in
    /// parallel over blocks of rows; the growers read only those of their training rows.
    fn gradients(self, y: &[f64], scores: &Scores, pairs: &mut [Vec<[f64; 2]>]) {
        let (raw, exp) = (&scores.raw[..], &scores.exp[..]);
        let k = self.n_outputs();
        let mut blocks: Vec<OutputSlices> = (0..y.len().div_ceil(GRADIENT_BLOCK)).map(|_| Vec::with_capacity(k)).collect();
        for class_pairs in pairs.iter_mut() {
            for (piece, block) in class_pairs.chunks_mut(GRADIENT_BLOCK).zip(&mut blocks) {
                block.push(piece);
            }
        }
        blocks.into_par_iter().enumerate().for_each(|(block, mut pairs)| {
            let mut probabilities = vec![0.0; k];
            let first = block * GRADIENT_BLOCK;
            for j in 0..pairs[0].len() {
                let r = first + j;
                let f = &raw[r * k..(r + 1) * k];
                match self {
                    Loss::SquaredError => pairs[0][j] = [f[0] - y[r], 1.0],
                    Loss::Poisson => {
                        let mu = exp[r];
                        // The hessian stays positive, as the growers need: a bin with rows has a hessian.
                        pairs[0][j] = [mu - y[r], mu.max(MIN_PROBABILITY)];
                    }
                    Loss::LogLoss => {
                        // The odds are exp(raw); at the clamp they are so large that p is 1.
                        let p = exp[r] / (1.0 + exp[r]);
                        pairs[0][j] = [p - y[r], (p * (1.0 - p)).max(MIN_PROBABILITY)];
                    }
                    Loss::Softmax { .. } => {
                        softmax_into(f, &mut probabilities);
                        for (class, p) in probabilities.iter().enumerate() {
                            let is_class = if y[r] as usize == class { 1.0 } else { 0.0 };
                            pairs[class][j] = [p - is_class, (p * (1.0 - p)).max(MIN_PROBABILITY)];
                        }
                    }
                }
            }
        });
    }

    /// Mean loss over `rows` (up to a constant), for early stopping.
    fn mean_loss(self, y: &[f64], raw: &[f64], rows: &[u32]) -> f64 {
        let k = self.n_outputs();
        let total: f64 = rows
            .iter()
            .map(|&row| {
                let r = row as usize;
                let f = &raw[r * k..(r + 1) * k];
                match self {
                    Loss::SquaredError => 0.5 * (f[0] - y[r]).powi(2),
                    Loss::Poisson => clamped_exp(f[0]) - y[r] * f[0],
                    Loss::LogLoss => f[0].max(0.0) + (-f[0].abs()).exp().ln_1p() - y[r] * f[0],
                    Loss::Softmax { .. } => {
                        let max = f.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                        let log_sum = max + f.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
                        log_sum - f[y[r] as usize]
                    }
                }
            })
            .sum();
        total / rows.len() as f64
    }

    fn link(self) -> Link {
        match self {
            Loss::SquaredError => Link::Identity,
            Loss::Poisson => Link::Exp,
            Loss::LogLoss => Link::Sigmoid,
            Loss::Softmax { .. } => Link::Softmax,
        }
    }

    fn check_target(self, y: f64) -> Result<(), &'static str> {
        match self {
            Loss::SquaredError => Ok(()),
            Loss::Poisson if y < 0.0 => Err("the Poisson loss needs non-negative targets"),
            Loss::LogLoss if y != 0.0 && y != 1.0 => Err("binary targets must be 0 or 1"),
            Loss::Softmax { n_classes } if y.fract() != 0.0 || y < 0.0 || y >= n_classes as f64 => {
                Err("multiclass targets must be class indices below n_classes")
            }
            _ => Ok(()),
        }
    }
}

/// Whether boosting holds out part of the training rows to stop when they stop improving.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum EarlyStopping {
    /// On from 10 000 training rows.
    Auto,
    On,
    Off,
}

/// Which training rows each boosting round grows its trees on.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum Sampling {
    /// Every training row, every round.
    All,
    /// Gradient-based one-side sampling, as LightGBM's `data_sample_strategy = "goss"`: from
    /// round `1 / learning_rate` on, the 20 % of rows with the largest gradients and 10 % of the
    /// others, drawn at random and weighted up. It pays on wide tables, where histograms cost
    /// the most; on a few features the sampling costs what the smaller histograms save.
    Goss,
}

/// Checked hyperparameters of gradient boosting.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GradientBoostingValidParams {
    loss: Loss,
    learning_rate: f64,
    max_iter: usize,
    max_leaf_nodes: Option<usize>,
    max_depth: Option<usize>,
    min_samples_leaf: usize,
    l2_regularization: f64,
    max_bins: usize,
    early_stopping: EarlyStopping,
    sampling: Sampling,
    validation_fraction: f64,
    n_iter_no_change: usize,
    tol: f64,
    seed: u64,
    max_seconds: Option<f64>,
}

/// Hyperparameters of gradient boosting; defaults follow scikit-learn's
/// `HistGradientBoostingRegressor`.
#[derive(Debug, Clone, PartialEq)]
pub struct GradientBoostingParams(GradientBoostingValidParams);

impl GradientBoostingParams {
    pub fn new(loss: Loss) -> Self {
        GradientBoostingParams(GradientBoostingValidParams {
            loss,
            learning_rate: 0.1,
            max_iter: 100,
            max_leaf_nodes: Some(31),
            max_depth: None,
            min_samples_leaf: 20,
            l2_regularization: 0.0,
            max_bins: 255,
            early_stopping: EarlyStopping::Auto,
            sampling: Sampling::All,
            validation_fraction: 0.1,
            n_iter_no_change: 10,
            tol: 1e-7,
            seed: 0,
            max_seconds: None,
        })
    }

    pub fn learning_rate(mut self, value: f64) -> Self {
        self.0.learning_rate = value;
        self
    }
    /// Maximum number of boosting iterations (one tree per iteration and output).
    pub fn max_iter(mut self, value: usize) -> Self {
        self.0.max_iter = value;
        self
    }
    pub fn max_leaf_nodes(mut self, value: Option<usize>) -> Self {
        self.0.max_leaf_nodes = value;
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
    pub fn l2_regularization(mut self, value: f64) -> Self {
        self.0.l2_regularization = value;
        self
    }
    pub fn max_bins(mut self, value: usize) -> Self {
        self.0.max_bins = value;
        self
    }
    pub fn early_stopping(mut self, value: EarlyStopping) -> Self {
        self.0.early_stopping = value;
        self
    }
    pub fn sampling(mut self, value: Sampling) -> Self {
        self.0.sampling = value;
        self
    }
    pub fn validation_fraction(mut self, value: f64) -> Self {
        self.0.validation_fraction = value;
        self
    }
    pub fn n_iter_no_change(mut self, value: usize) -> Self {
        self.0.n_iter_no_change = value;
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

impl ParamGuard for GradientBoostingParams {
    type Checked = GradientBoostingValidParams;
    type Error = TreesError;

    fn check_ref(&self) -> Result<&Self::Checked, Self::Error> {
        let p = &self.0;
        if !(p.learning_rate > 0.0 && p.learning_rate.is_finite()) {
            return Err(parameter("learning_rate", "must be a positive number"));
        }
        if p.max_iter == 0 {
            return Err(parameter("max_iter", "must be at least 1"));
        }
        if p.max_leaf_nodes.is_some_and(|n| n < 2) {
            return Err(parameter("max_leaf_nodes", "must be at least 2"));
        }
        if p.l2_regularization.is_nan() || p.l2_regularization < 0.0 {
            return Err(parameter("l2_regularization", "must be non-negative"));
        }
        if !(p.validation_fraction > 0.0 && p.validation_fraction < 1.0) {
            return Err(parameter("validation_fraction", "must be between 0 and 1"));
        }
        let n_classes = match p.loss {
            Loss::Softmax { n_classes } => Some(n_classes),
            _ => None,
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

impl<D: Data<Elem = f64>, T: Data<Elem = f64>> Fit<ArrayBase<D, Ix2>, ArrayBase<T, Ix1>, TreesError> for GradientBoostingValidParams {
    type Object = TreeEnsemble;

    fn fit(&self, dataset: &DatasetBase<ArrayBase<D, Ix2>, ArrayBase<T, Ix1>>) -> Result<TreeEnsemble, TreesError> {
        let input = self.prepare(dataset)?;
        let mut state = BoostingCheckpoint::start(&input, self.loss);
        self.run(&input, &mut state, usize::MAX);
        Ok(self.ensemble(&input, state))
    }
}

/// What every boosting round reads and none changes: the targets, the early-stopping split, the
/// bin edges and the binned training matrix (u8 codes, column-major). A fit that spans several
/// invocations prepares it once, stores it, and each invocation loads it instead of the features.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BoostingInput {
    y: Vec<f64>,
    train: Vec<u32>,
    validation: Vec<u32>,
    mapper: BinMapper,
    binned: BinnedMatrix,
    baseline: Vec<f64>,
    n_features: usize,
    /// Where the seeded random stream stands after the split and the bin edges.
    rng_word_pos: u128,
    /// Seconds the preparation took, counted against `max_seconds`.
    seconds: f64,
}

/// Where a boosting fit stands after some rounds: the trees so far, every row's raw score, the
/// early-stopping record, the random stream's position and the seconds spent. Carried on by
/// [`GradientBoostingValidParams::boost`], it ends in the same model, to the byte, as one
/// uninterrupted fit (unless the time budget cuts either short).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BoostingCheckpoint {
    rounds: usize,
    trees: Vec<Tree>,
    gains: Vec<Vec<f64>>,
    /// The best validation loss and the round count it was reached at.
    best: (f64, usize),
    raw: Vec<f64>,
    exp: Vec<f64>,
    rng_word_pos: u128,
    seconds: f64,
    /// Whether boosting has stopped: early stopping, `max_iter` or the time budget.
    finished: bool,
    time_limited: bool,
}

impl BoostingCheckpoint {
    fn start(input: &BoostingInput, loss: Loss) -> BoostingCheckpoint {
        let scores = Scores::new(loss, input.y.len(), &input.baseline);
        // The validation loss of the baseline alone: a first tree that does not beat it is dropped.
        let best_loss = if input.validation.is_empty() { 0.0 } else { loss.mean_loss(&input.y, &scores.raw, &input.validation) };
        BoostingCheckpoint {
            rounds: 0,
            trees: Vec::new(),
            gains: Vec::new(),
            best: (best_loss, 0),
            raw: scores.raw,
            exp: scores.exp,
            rng_word_pos: input.rng_word_pos,
            seconds: input.seconds,
            finished: false,
            time_limited: false,
        }
    }

    /// Boosting rounds done so far.
    pub fn rounds(&self) -> usize {
        self.rounds
    }

    /// Refuses a checkpoint that does not belong to this input and loss (a stored one could
    /// have been written by another fit): every index it holds must be in range.
    fn check(&self, input: &BoostingInput, loss: Loss) -> Result<(), TreesError> {
        let k = loss.n_outputs();
        let n = input.y.len();
        let fits = self.trees.len() == self.rounds * k
            && self.gains.len() == self.trees.len()
            && self.raw.len() == n * k
            && (self.exp.is_empty() || self.exp.len() == n * k)
            && self.exp.is_empty() != loss.needs_exp()
            && self.best.1 <= self.rounds
            && self.trees.iter().all(|t| t.output < k && t.max_feature().is_none_or(|f| f < input.n_features));
        if fits { Ok(()) } else { Err(TreesError::Resume { reason: "the checkpoint does not belong to this input and loss" }) }
    }
}

/// How far [`GradientBoostingValidParams::boost`] got.
#[derive(Debug, Clone)]
pub enum Boosting {
    /// Boosting stopped: the fitted model and the seconds its fit took over every call.
    Done { model: TreeEnsemble, seconds: f64 },
    /// The round budget ran out first: carry on from here.
    Paused(BoostingCheckpoint),
}

impl BoostingInput {
    /// Refuses an input whose parts disagree (a stored one could be damaged): every row index
    /// and column must be in range.
    fn check(&self, loss: Loss) -> Result<(), TreesError> {
        let n = self.y.len();
        let fits = n > 0
            && self.binned.columns.len() == self.n_features
            && self.mapper.features.len() == self.n_features
            && self.binned.columns.first().is_none_or(|c| c.len() == n)
            && self.baseline.len() == loss.n_outputs()
            && self.train.iter().chain(&self.validation).all(|&r| (r as usize) < n)
            && !self.train.is_empty();
        if fits { Ok(()) } else { Err(TreesError::Resume { reason: "the boosting input's parts disagree" }) }
    }
}

impl GradientBoostingValidParams {
    /// Checks the targets, splits off the early-stopping rows, fits the bin edges and bins the
    /// rows: everything boosting needs from the dataset.
    pub fn prepare<D: Data<Elem = f64>, T: Data<Elem = f64>>(
        &self,
        dataset: &DatasetBase<ArrayBase<D, Ix2>, ArrayBase<T, Ix1>>,
    ) -> Result<BoostingInput, TreesError> {
        let started = std::time::Instant::now();
        let x = dataset.records();
        let y: Vec<f64> = dataset.targets().iter().copied().collect();
        check_targets(x.nrows(), &y, |v| self.loss.check_target(v))?;
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let (train, validation) = self.split_for_early_stopping(y.len(), &mut rng);
        if self.loss == Loss::Poisson && train.iter().all(|&r| y[r as usize] == 0.0) {
            return Err(TreesError::InvalidTarget { row: 0, value: 0.0, reason: "the Poisson loss needs a positive target sum" });
        }
        let mapper = BinMapper::fit(x, &train, self.max_bins, &mut rng);
        let binned = mapper.transform(x);
        let baseline = self.loss.baseline(&y, &train);
        Ok(BoostingInput {
            y,
            train,
            validation,
            mapper,
            binned,
            baseline,
            n_features: x.ncols(),
            rng_word_pos: rng.get_word_pos(),
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    /// Runs at most `rounds` more boosting rounds on `input`, from `from` or from the start:
    /// the model once boosting stops, else where it stands.
    pub fn boost(&self, input: &BoostingInput, from: Option<BoostingCheckpoint>, rounds: usize) -> Result<Boosting, TreesError> {
        if rounds == 0 {
            return Err(parameter("rounds", "must be at least 1"));
        }
        input.check(self.loss)?;
        let mut state = match from {
            Some(state) => {
                state.check(input, self.loss)?;
                state
            }
            None => BoostingCheckpoint::start(input, self.loss),
        };
        self.run(input, &mut state, rounds);
        Ok(if state.finished {
            let seconds = state.seconds;
            Boosting::Done { model: self.ensemble(input, state), seconds }
        } else {
            Boosting::Paused(state)
        })
    }

    /// Boosting rounds from `state`, until boosting stops or `rounds` more are done.
    fn run(&self, input: &BoostingInput, state: &mut BoostingCheckpoint, rounds: usize) {
        let clock = std::time::Instant::now();
        let spent_before = state.seconds;
        let (y, train, validation, mapper, binned) = (&input.y, &input.train, &input.validation, &input.mapper, &input.binned);
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_word_pos(state.rng_word_pos);
        let k = self.loss.n_outputs();
        let mut scores = Scores { raw: std::mem::take(&mut state.raw), exp: std::mem::take(&mut state.exp), k };
        let mut pairs = vec![vec![[0.0, 1.0]; y.len()]; k];
        let config = GrowConfig {
            max_leaf_nodes: self.max_leaf_nodes,
            max_depth: self.max_depth,
            min_samples_leaf: self.min_samples_leaf,
            min_hessian_leaf: 1e-3,
            l2: self.l2_regularization,
            shrinkage: self.learning_rate,
            features_per_node: None,
        };
        let goss = self.sampling == Sampling::Goss;
        // As LightGBM: the first rounds, whose gradients are all large, see every row.
        let first_sampled_round = (1.0 / self.learning_rate).ceil() as usize;
        let stop_before = self.max_iter.min(state.rounds.saturating_add(rounds));
        while !state.finished && state.rounds < stop_before {
            let iteration = state.rounds;
            if out_of_time(spent_before + clock.elapsed().as_secs_f64(), self.max_seconds) {
                state.time_limited = true;
                self.stop(state, !validation.is_empty());
                break;
            }
            self.loss.gradients(y, &scores, &mut pairs);
            let sample = (goss && iteration >= first_sampled_round).then(|| goss::sample(train, &mut pairs, &mut rng));
            let (grow_rows, left_out) = sample.as_ref().map_or((train, &[][..]), |s| (&s.kept, &s.left_out[..]));
            for (output, grads) in pairs.iter().enumerate() {
                let grower = Grower { bins: binned, edges: &mapper.features, grads: Gradients::Single(grads), config: &config };
                let mut grown = grower.grow(grow_rows.clone(), &mut rng);
                grown.tree.output = output;
                for &(start, end, leaf) in &grown.leaves {
                    let value = grown.tree.leaf_values[leaf];
                    let factor = value.exp();
                    for &row in &grown.rows[start..end] {
                        scores.add(row as usize, output, value, factor);
                    }
                }
                // Rows the tree did not grow on reach their leaves through the binned features.
                for rows in [left_out, &validation[..]] {
                    let values: Vec<f64> =
                        rows.par_iter().map(|&row| binned_leaf_value(&grown.tree, mapper, binned, row as usize)).collect();
                    for (&row, value) in rows.iter().zip(values) {
                        scores.add(row as usize, output, value, value.exp());
                    }
                }
                state.gains.push(grown.gains);
                state.trees.push(grown.tree);
            }
            state.rounds += 1;
            if !validation.is_empty() {
                let loss = self.loss.mean_loss(y, &scores.raw, validation);
                if loss < state.best.0 - self.tol * state.best.0.abs().max(1.0) {
                    state.best = (loss, state.rounds);
                } else if state.rounds - state.best.1 >= self.n_iter_no_change {
                    self.stop(state, true);
                }
            }
        }
        if state.rounds >= self.max_iter {
            state.finished = true;
        }
        state.raw = scores.raw;
        state.exp = scores.exp;
        state.rng_word_pos = rng.get_word_pos();
        state.seconds = spent_before + clock.elapsed().as_secs_f64();
    }

    /// Ends boosting; with early-stopping rows, at the round that did best on them.
    fn stop(&self, state: &mut BoostingCheckpoint, keep_best: bool) {
        if keep_best {
            let kept = state.best.1 * self.loss.n_outputs();
            state.trees.truncate(kept);
            state.gains.truncate(kept);
        }
        state.finished = true;
    }

    fn ensemble(&self, input: &BoostingInput, state: BoostingCheckpoint) -> TreeEnsemble {
        TreeEnsemble {
            link: self.loss.link(),
            n_outputs: self.loss.n_outputs(),
            baseline: input.baseline.clone(),
            trees: state.trees,
            average: false,
            n_features: input.n_features,
            importances: normalised_importances(input.n_features, state.gains.iter().map(Vec::as_slice)),
            time_limited: state.time_limited,
        }
    }
}

impl GradientBoostingValidParams {
    fn split_for_early_stopping(&self, n: usize, rng: &mut ChaCha8Rng) -> (Vec<u32>, Vec<u32>) {
        let on = match self.early_stopping {
            EarlyStopping::Auto => n >= AUTO_EARLY_STOPPING_ROWS,
            EarlyStopping::On => true,
            EarlyStopping::Off => false,
        };
        let n_validation = (n as f64 * self.validation_fraction).round() as usize;
        let mut rows: Vec<u32> = (0..n as u32).collect();
        if !on || n_validation == 0 || n_validation >= n {
            return (rows, Vec::new());
        }
        rows.shuffle(rng);
        let mut validation = rows.split_off(n - n_validation);
        rows.sort_unstable();
        validation.sort_unstable();
        (rows, validation)
    }
}

/// Every row's raw score per output and, when the loss needs it, `exp(raw)` clamped at
/// [`EXP_LIMIT`]: a tree moves it by one factor per leaf, `exp(leaf value)`, instead of one `exp`
/// per row and round.
struct Scores {
    raw: Vec<f64>,
    /// Empty when the loss does not read it.
    exp: Vec<f64>,
    k: usize,
}

impl Scores {
    fn new(loss: Loss, n: usize, baseline: &[f64]) -> Scores {
        let raw: Vec<f64> = (0..n).flat_map(|_| baseline.iter().copied()).collect();
        let exp = if loss.needs_exp() { raw.iter().map(|&f| clamped_exp(f)).collect() } else { Vec::new() };
        Scores { raw, exp, k: baseline.len() }
    }

    /// Adds a leaf's `value` to a row's score; `factor` is `value.exp()`. The product stays
    /// within rounding of the exp while neither score nor value nears the clamp; past it the exp
    /// is taken anew.
    #[inline]
    fn add(&mut self, row: usize, output: usize, value: f64, factor: f64) {
        let at = row * self.k + output;
        let before = self.raw[at];
        let after = before + value;
        self.raw[at] = after;
        if let Some(exp) = self.exp.get_mut(at) {
            let in_range = before.abs() <= EXP_LIMIT && after.abs() <= EXP_LIMIT && value.abs() <= EXP_LIMIT;
            *exp = if in_range { *exp * factor } else { clamped_exp(after) };
        }
    }
}

fn clamped_exp(raw: f64) -> f64 {
    raw.min(EXP_LIMIT).exp()
}

/// The leaf value a binned training row reaches (rows outside the growth sample).
fn binned_leaf_value(tree: &crate::tree::Tree, mapper: &BinMapper, binned: &BinnedMatrix, row: usize) -> f64 {
    let values = tree.reach(|feature, threshold, missing_left| {
        let bin = binned.columns[feature][row];
        if bin == MISSING_BIN {
            missing_left
        } else {
            // A bin lies left of the split when its upper edge does (the last bin's edge is +inf).
            let upper_edge = mapper.features[feature].edges.get(bin as usize).copied().unwrap_or(f64::INFINITY);
            upper_edge <= threshold
        }
    });
    values[0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_keep_exp_of_raw_through_many_leaves_and_across_the_clamp() {
        let mut scores = Scores::new(Loss::Poisson, 3, &[0.5]);
        let steps = [0.3, -1.7, 2.9, -0.01, 650.0, 100.0, -900.0, -40.0, 1.5, 300.0, -299.0];
        for round in 0..300 {
            for (row, step) in steps.iter().enumerate().take(3) {
                let value = if round % 2 == 0 { step * 0.1 } else { steps[(row + round) % steps.len()] };
                scores.add(row, 0, value, value.exp());
            }
        }
        for (raw, exp) in scores.raw.iter().zip(&scores.exp) {
            let exact = clamped_exp(*raw);
            assert!((exp - exact).abs() <= 1e-12 * exact.max(f64::MIN_POSITIVE), "{raw}: {exp} against {exact}");
        }
        assert!(Scores::new(Loss::SquaredError, 3, &[0.5]).exp.is_empty());
    }
}
