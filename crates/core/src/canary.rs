//! Canary and shadow rollouts: which version answers a routing key, how a challenger's health is
//! guarded while it serves, and the sequential test that promotes or withdraws it on delayed
//! labels.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64_with_seed;

use crate::spec::{CanaryPolicy, Metric, Rollout};

/// How a challenger takes part in serving.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum Mode {
    /// Answers the routing keys that hash below `weight` percent.
    Canary { weight: u8 },
    /// Scored and logged beside the champion on every request; never answers.
    Shadow,
}

impl Mode {
    /// The mode a policy's rollout starts a challenger in.
    pub fn of_rollout(rollout: Rollout, policy: &CanaryPolicy) -> Mode {
        match rollout {
            Rollout::Canary => Mode::Canary { weight: policy.weight },
            Rollout::Shadow => Mode::Shadow,
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mode::Canary { weight } => write!(f, "canary at {weight}%"),
            Mode::Shadow => write!(f, "shadow"),
        }
    }
}

/// The version tried beside the champion, held by the production pointer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Challenger {
    pub version: String,
    #[serde(flatten)]
    pub mode: Mode,
    /// RFC 3339; only predictions logged since count as its evidence.
    pub started_at: String,
}

/// The part a version played in a logged prediction.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The production version answered.
    #[default]
    Champion,
    /// A canary answered.
    Canary,
    /// A shadow scored the row; the champion answered.
    Shadow,
}

impl Role {
    /// Whether the line is the answer the caller got.
    pub fn answered(self) -> bool {
        self != Role::Shadow
    }
}

const ROUTING_SEED: u64 = 0x6d6c_6f70_735f_6361;

/// Whether a canary at `weight` percent answers `key`: the same key always gets the same
/// answer, and about `weight` percent of keys get the canary.
pub fn routes_to_canary(key: &str, weight: u8) -> bool {
    xxh3_64_with_seed(key.as_bytes(), ROUTING_SEED) % 100 < u64::from(weight)
}

/// A labelled prediction.
#[derive(Debug, Clone, Copy)]
pub enum Outcome<'a> {
    /// A regression's prediction and the true value.
    Value { predicted: f64, actual: f64 },
    /// A classifier's probabilities, in the order of its labels, and the true class's index.
    Class { probabilities: &'a [f64], actual: usize },
}

/// The loss of one labelled prediction, lower is better: the absolute error when the metric is
/// MAE, else the squared error, for a regression; the Brier score for a classifier.
pub fn row_loss(metric: Metric, outcome: Outcome) -> f64 {
    match outcome {
        Outcome::Value { predicted, actual } if metric == Metric::Mae => (predicted - actual).abs(),
        Outcome::Value { predicted, actual } => (predicted - actual).powi(2),
        Outcome::Class { probabilities, actual } => {
            probabilities.iter().enumerate().map(|(k, &p)| if k == actual { (1.0 - p).powi(2) } else { p * p }).sum()
        }
    }
}

/// Count, mean and variance of a sample, kept as running sums (Welford's update).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct Sample {
    pub n: usize,
    pub mean: f64,
    /// Sum of squared deviations from the mean.
    m2: f64,
}

impl Sample {
    pub fn push(&mut self, x: f64) {
        self.n += 1;
        let delta = x - self.mean;
        self.mean += delta / self.n as f64;
        self.m2 += delta * (x - self.mean);
    }

    /// The unbiased variance; 0 below two values.
    pub fn variance(&self) -> f64 {
        if self.n < 2 { 0.0 } else { self.m2 / (self.n - 1) as f64 }
    }
}

impl FromIterator<f64> for Sample {
    fn from_iter<I: IntoIterator<Item = f64>>(values: I) -> Sample {
        let mut sample = Sample::default();
        values.into_iter().for_each(|x| sample.push(x));
        sample
    }
}

/// The labelled evidence on a challenger: per-row losses of each version and, in shadow mode,
/// the paired differences (champion's loss minus challenger's, on the same rows).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Evidence {
    pub champion: Sample,
    pub challenger: Sample,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paired: Option<Sample>,
}

/// What the sequential test concludes.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Not enough evidence yet.
    Collecting,
    /// The challenger is better: it becomes production.
    Promote,
    /// The challenger is worse: it is withdrawn.
    Rollback,
}

/// The test's reading of the evidence.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Judgement {
    pub verdict: Verdict,
    /// Mean loss of the champion minus the challenger's (positive: the challenger is better).
    pub improvement: f64,
    /// The mixture likelihood ratio; the test decides when it reaches `1 / alpha`.
    pub likelihood_ratio: f64,
    /// The always-valid p-value, `min(1, 1 / likelihood_ratio)`.
    pub p_value: f64,
    pub reason: String,
}

/// The mixing scale as a share of the champion's mean loss: the test is most sensitive to
/// changes of about this size.
const MIXING_SHARE: f64 = 0.1;

/// The mixture sequential probability ratio test (mSPRT; Johari, Pekelis and Walsh, "Always
/// valid inference", 2017) on the mean loss difference, with a normal mixing distribution of
/// scale `tau` = 10% of the champion's mean loss and the variance estimated from the data:
/// `L = sqrt(v / (v + tau²)) * exp(tau² d² / (2 v (v + tau²)))`, where `d` is the difference
/// and `v` its variance (paired in shadow mode, two independent samples for a canary). Its
/// chance of ever deciding wrongly, however often it looks, is about `alpha`; nothing is decided
/// before each version has `min_labels` labelled predictions.
pub fn judge(evidence: &Evidence, policy: &CanaryPolicy) -> Judgement {
    let floor = policy.min_labels;
    let (n_champion, n_challenger) = match &evidence.paired {
        Some(paired) => (paired.n, paired.n),
        None => (evidence.champion.n, evidence.challenger.n),
    };
    let (difference, variance) = match &evidence.paired {
        Some(paired) => (paired.mean, paired.variance() / paired.n.max(1) as f64),
        None => (
            evidence.champion.mean - evidence.challenger.mean,
            evidence.champion.variance() / n_champion.max(1) as f64 + evidence.challenger.variance() / n_challenger.max(1) as f64,
        ),
    };
    let tau2 = (MIXING_SHARE * evidence.champion.mean.abs()).powi(2).max(f64::MIN_POSITIVE);
    let ratio = if variance > 0.0 {
        (variance / (variance + tau2)).sqrt() * (tau2 * difference * difference / (2.0 * variance * (variance + tau2))).exp()
    } else if difference == 0.0 {
        1.0
    } else {
        f64::INFINITY
    };
    let p_value = (1.0 / ratio).min(1.0);
    let p = if p_value < 1e-3 { format!("{p_value:.1e}") } else { format!("{p_value:.3}") };
    let counts = format!("{n_champion} champion and {n_challenger} challenger labels");
    let (verdict, reason) = if n_champion.min(n_challenger) < floor {
        (Verdict::Collecting, format!("{counts}; each needs {floor} before the test may decide"))
    } else if ratio < 1.0 / policy.alpha {
        (Verdict::Collecting, format!("{counts}: loss difference {difference:.4} is not yet significant (p {p}, alpha {})", policy.alpha))
    } else if difference > 0.0 {
        (Verdict::Promote, format!("{counts}: the challenger's mean loss is lower by {difference:.4} (p {p} < {})", policy.alpha))
    } else {
        (Verdict::Rollback, format!("{counts}: the challenger's mean loss is higher by {:.4} (p {p} < {})", -difference, policy.alpha))
    };
    Judgement { verdict, improvement: difference, likelihood_ratio: ratio, p_value, reason }
}

/// One version's labelled predictions in a trial.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VersionEvidence {
    pub version: String,
    pub role: Role,
    /// Its logged predictions since the trial started, and how many have a delayed label.
    pub predictions: usize,
    pub labelled: usize,
    /// The spec's metric on the labelled predictions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<f64>,
    /// The mean per-row loss the test compares ([`row_loss`]).
    pub mean_loss: f64,
}

/// Where a challenger's trial stands.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TrialStatus {
    pub challenger: Challenger,
    pub metric: Metric,
    pub versions: [VersionEvidence; 2],
    pub judgement: Judgement,
    /// What the pointer did on the verdict: `promoted` or `withdrawn`, or why it did not move.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
}

/// Latencies kept for a challenger's p99.
const LATENCY_WINDOW: usize = 200;

/// A challenger's health while it serves: errors and latency of its recent requests.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    requests: usize,
    errors: usize,
    latencies_ms: VecDeque<f64>,
}

impl Guard {
    /// Records one request the challenger scored.
    pub fn record(&mut self, failed: bool, latency_ms: f64) {
        self.requests += 1;
        self.errors += usize::from(failed);
        if self.latencies_ms.len() == LATENCY_WINDOW {
            self.latencies_ms.pop_front();
        }
        self.latencies_ms.push_back(latency_ms);
    }

    /// Why the challenger must be withdrawn, once it answered `guard_requests` requests.
    pub fn breach(&self, policy: &CanaryPolicy) -> Option<String> {
        if self.requests < policy.guard_requests {
            return None;
        }
        let error_rate = self.errors as f64 / self.requests as f64;
        if error_rate > policy.max_error_rate {
            return Some(format!(
                "withdrawn: {} of {} requests failed ({:.1}%, the bound is {:.1}%)",
                self.errors,
                self.requests,
                error_rate * 100.0,
                policy.max_error_rate * 100.0
            ));
        }
        let bound = policy.max_p99_ms?;
        let mut sorted: Vec<f64> = self.latencies_ms.iter().copied().collect();
        sorted.sort_by(f64::total_cmp);
        let p99 = sorted[(sorted.len() * 99).div_ceil(100).saturating_sub(1)];
        (p99 > bound).then(|| format!("withdrawn: p99 {p99:.3} ms over the last {} requests passes the bound of {bound} ms", sorted.len()))
    }
}

#[cfg(test)]
mod tests;
