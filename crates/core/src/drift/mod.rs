//! Drift monitoring: the training reference saved with each model, the statistics comparing
//! it with current data, and the verdicts.

mod kolmogorov;
mod observed;
mod sketch;
pub mod stats;

pub use observed::{Attribution, Estimated, Labelled, Observed, Window};
pub use sketch::{AtRank, QuantileSketch, Quantiles, RANK_ERROR, SKETCH_K};

use rand::SeedableRng;
use rand::seq::index::sample;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::frame::{Column, Frame};
use crate::spec::{DriftMethod, DriftSpec, Metric, Spec};
use stats::Sorted;

/// Values kept per numeric feature in the reference.
pub const REFERENCE_SAMPLE: usize = 5000;

/// The distributions a model was trained on, and its holdout quality.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Reference {
    pub features: Vec<Distribution>,
    /// Predictions on the holdout (the value, or the predicted class).
    pub predictions: Distribution,
    pub metric: Metric,
    /// The promotion metric on the holdout: the baseline of concept drift.
    pub baseline: f64,
}

/// How much one input moves the model's outputs now, against the training holdout.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AttributionShift {
    pub feature: String,
    /// Mean absolute contribution on the holdout (the model card's importance).
    pub reference: f64,
    /// Mean absolute contribution on the explained current rows.
    pub current: f64,
    /// `current / reference - 1`; absent when the reference is 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<f64>,
}

/// Attribution drift: each input's mean absolute contribution on current rows against its global
/// importance, largest absolute shift first; empty when either side has none.
pub fn attribution_shift(importance: &[(String, f64)], current: &Attribution) -> Vec<AttributionShift> {
    if current.rows == 0 || importance.is_empty() {
        return Vec::new();
    }
    let mut shifts: Vec<AttributionShift> = current
        .means()
        .into_iter()
        .filter_map(|(feature, current)| {
            let reference = importance.iter().find(|(name, _)| *name == feature)?.1;
            let change = (reference > 0.0).then(|| current / reference - 1.0);
            Some(AttributionShift { feature, reference, current, change })
        })
        .collect();
    shifts.sort_by(|a, b| (b.current - b.reference).abs().total_cmp(&(a.current - a.reference).abs()));
    shifts
}

/// One column's distribution.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum Distribution {
    /// A seeded sample of at most [`REFERENCE_SAMPLE`] values, sorted.
    Numeric { column: String, sample: Vec<f64>, count: usize, missing: usize },
    /// Counts per level.
    Categorical { column: String, counts: Vec<(String, u64)>, missing: u64 },
    /// Every value summarised by a mergeable sketch (current data: see [`Distribution::observed`]).
    Sketched { column: String, sketch: QuantileSketch, missing: usize },
}

impl Distribution {
    pub fn column(&self) -> &str {
        match self {
            Distribution::Numeric { column, .. } | Distribution::Categorical { column, .. } | Distribution::Sketched { column, .. } => {
                column
            }
        }
    }

    /// The reference distribution of a frame column: a seeded sample of its numbers, or its
    /// counts per level.
    pub fn of(name: &str, column: &Column, seed: u64) -> Distribution {
        match column {
            Column::Numeric(values) => Distribution::numeric(name, values, seed),
            Column::Categorical { .. } => Distribution::counts(name, column),
        }
    }

    /// The current distribution of a frame column: a sketch of all its numbers (mergeable
    /// across partitions of the data, and closer than a sample), or its counts per level.
    pub fn observed(name: &str, column: &Column) -> Distribution {
        match column {
            Column::Numeric(values) => {
                let mut sketch = QuantileSketch::default();
                values.iter().filter(|v| v.is_finite()).for_each(|&v| sketch.insert(v));
                Distribution::Sketched { column: name.to_string(), missing: values.len() - sketch.count() as usize, sketch }
            }
            Column::Categorical { .. } => Distribution::counts(name, column),
        }
    }

    fn counts(name: &str, column: &Column) -> Distribution {
        let mut counts: std::collections::BTreeMap<&str, u64> = std::collections::BTreeMap::new();
        let mut missing = 0;
        for row in 0..column.len() {
            match column.text(row) {
                Some(text) => *counts.entry(text).or_default() += 1,
                None => missing += 1,
            }
        }
        Distribution::Categorical {
            column: name.to_string(),
            counts: counts.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
            missing,
        }
    }

    /// The distribution of numbers (NaN is missing).
    pub fn numeric(name: &str, values: &[f64], seed: u64) -> Distribution {
        let present: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        let mut kept: Vec<f64> = if present.len() > REFERENCE_SAMPLE {
            sample(&mut ChaCha8Rng::seed_from_u64(seed), present.len(), REFERENCE_SAMPLE).into_iter().map(|i| present[i]).collect()
        } else {
            present.clone()
        };
        kept.sort_unstable_by(f64::total_cmp);
        Distribution::Numeric { column: name.to_string(), sample: kept, count: present.len(), missing: values.len() - present.len() }
    }
}

/// The reference distributions of a spec's feature columns in `frame`.
pub fn feature_distributions(spec: &Spec, frame: &Frame, seed: u64) -> Vec<Distribution> {
    spec.feature_columns().filter_map(|c| frame.column(&c.name).map(|column| Distribution::of(&c.name, column, seed))).collect()
}

/// A feature's (or the predictions') drift verdict.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Drift,
    NoDrift,
    /// Fewer current values than `drift.min_samples`: no verdict, no alarm.
    InsufficientData,
}

/// Reads a number that JSON may hold as `null`: serde_json writes NaN as `null`, and a report
/// with a NaN score must read back (as NaN) rather than drop out of the drift history.
fn nan_for_null<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(deserializer)?.unwrap_or(f64::NAN))
}

/// [`nan_for_null`] for each value of a map.
fn nan_for_null_values<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<std::collections::BTreeMap<String, f64>, D::Error> {
    let values = std::collections::BTreeMap::<String, Option<f64>>::deserialize(deserializer)?;
    Ok(values.into_iter().map(|(k, v)| (k, v.unwrap_or(f64::NAN))).collect())
}

/// Shares of the reference and the current values per bin, for charts.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Histogram {
    pub labels: Vec<String>,
    pub reference: Vec<f64>,
    pub current: Vec<f64>,
    /// The values outside the bins' range, when the range is clipped to what most values span.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tails: Option<Tails>,
}

/// The shares of values below and above a histogram's clipped range.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Tails {
    pub low: f64,
    pub high: f64,
    pub below_reference: f64,
    pub below_current: f64,
    pub above_reference: f64,
    pub above_current: f64,
}

/// How one column compares with its reference.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FeatureDrift {
    pub column: String,
    pub kind: String,
    pub reference_count: usize,
    pub current_count: usize,
    /// Every statistic computed: `ks`, `ks_p_value`, `wasserstein`, `wasserstein_normed`,
    /// `psi` for numbers; `chi_square`, `chi_square_p_value`, `chi_square_dof`,
    /// `jensen_shannon`, `psi` for categories.
    #[serde(deserialize_with = "nan_for_null_values")]
    pub statistics: std::collections::BTreeMap<String, f64>,
    /// The statistic that decides, and its value.
    pub method: DriftMethod,
    #[serde(deserialize_with = "nan_for_null")]
    pub score: f64,
    pub verdict: Verdict,
    pub histogram: Histogram,
}

/// Compares a current distribution with the reference under the drift policy.
pub fn compare(reference: &Distribution, current: &Distribution, policy: &DriftSpec) -> FeatureDrift {
    use std::collections::BTreeMap;
    match (reference, current) {
        (Distribution::Numeric { column, sample: reference, .. }, Distribution::Numeric { sample: current, .. }) => {
            compare_numeric(column, reference, Sorted::plain(current), policy)
        }
        (Distribution::Numeric { column, sample: reference, .. }, Distribution::Sketched { sketch, .. }) => {
            sketch.with_sorted(|current| compare_numeric(column, reference, current, policy))
        }
        (Distribution::Categorical { column, counts: reference, .. }, Distribution::Categorical { counts: current, .. }) => {
            let mut levels: Vec<&str> = reference.iter().map(|(l, _)| l.as_str()).collect();
            levels.extend(current.iter().map(|(l, _)| l.as_str()).filter(|l| !reference.iter().any(|(r, _)| r == l)));
            let count_of = |counts: &[(String, u64)], level: &str| counts.iter().find(|(l, _)| l == level).map_or(0.0, |(_, c)| *c as f64);
            let reference_counts: Vec<f64> = levels.iter().map(|l| count_of(reference, l)).collect();
            let current_counts: Vec<f64> = levels.iter().map(|l| count_of(current, l)).collect();
            let (n_reference, n_current) = (reference_counts.iter().sum::<f64>(), current_counts.iter().sum::<f64>());
            let enough = n_current as usize >= policy.min_samples && n_reference > 0.0;
            let mut statistics = BTreeMap::new();
            if enough {
                let test = stats::chi_square(&reference_counts, &current_counts);
                statistics.extend([
                    ("chi_square".to_string(), test.statistic),
                    ("chi_square_p_value".to_string(), test.p_value),
                    ("chi_square_dof".to_string(), test.dof as f64),
                    ("jensen_shannon".to_string(), stats::jensen_shannon(&reference_counts, &current_counts)),
                    ("psi".to_string(), stats::psi(&reference_counts, &current_counts)),
                ]);
            }
            let (score_name, drifted) = match policy.categorical {
                DriftMethod::ChiSquare => (
                    "chi_square",
                    statistics.get("chi_square_p_value").is_some_and(|p| *p < policy.p_value)
                        && statistics.get("jensen_shannon").is_some_and(|js| *js >= policy.jensen_shannon_threshold),
                ),
                DriftMethod::JensenShannon => {
                    ("jensen_shannon", statistics.get("jensen_shannon").is_some_and(|js| *js >= policy.jensen_shannon_threshold))
                }
                _ => ("psi", statistics.get("psi").is_some_and(|psi| *psi >= policy.psi_threshold)),
            };
            let share = |counts: &[f64], total: f64| counts.iter().map(|c| if total > 0.0 { c / total } else { 0.0 }).collect();
            FeatureDrift {
                column: column.clone(),
                kind: "categorical".into(),
                reference_count: n_reference as usize,
                current_count: n_current as usize,
                score: statistics.get(score_name).copied().unwrap_or(f64::NAN),
                statistics,
                method: policy.categorical,
                verdict: if !enough {
                    Verdict::InsufficientData
                } else if drifted {
                    Verdict::Drift
                } else {
                    Verdict::NoDrift
                },
                histogram: Histogram {
                    labels: levels.iter().map(ToString::to_string).collect(),
                    reference: share(&reference_counts, n_reference),
                    current: share(&current_counts, n_current),
                    tails: None,
                },
            }
        }
        (reference, _) => FeatureDrift {
            column: reference.column().to_string(),
            kind: "mismatch".into(),
            reference_count: 0,
            current_count: 0,
            statistics: BTreeMap::new(),
            method: policy.numeric,
            score: f64::NAN,
            verdict: Verdict::InsufficientData,
            histogram: Histogram::default(),
        },
    }
}

/// How a numeric column compares with its reference sample.
fn compare_numeric(column: &str, reference: &[f64], current: Sorted, policy: &DriftSpec) -> FeatureDrift {
    let mut statistics = std::collections::BTreeMap::new();
    let histogram = numeric_histogram(reference, current);
    let current_count = current.total() as usize;
    let enough = current_count >= policy.min_samples && !reference.is_empty();
    if enough {
        let ks = stats::ks_weighted(Sorted::plain(reference), current);
        let distance = stats::wasserstein_weighted(Sorted::plain(reference), current);
        let spread = stats::std_dev(reference);
        let normed = if spread > 0.0 {
            distance / spread
        } else if distance > 0.0 {
            f64::INFINITY
        } else {
            0.0
        };
        let edges = stats::quantile_edges(reference, 10);
        let psi = stats::psi(&stats::bin_counts(Sorted::plain(reference), &edges), &stats::bin_counts(current, &edges));
        statistics.extend([
            ("ks".to_string(), ks.statistic),
            ("ks_p_value".to_string(), ks.p_value),
            ("wasserstein".to_string(), distance),
            ("wasserstein_normed".to_string(), normed),
            ("psi".to_string(), psi),
        ]);
    }
    let statistic = |name: &str| statistics.get(name).copied();
    let (score_name, drifted) = match policy.numeric {
        DriftMethod::Ks => (
            "ks",
            statistic("ks_p_value").is_some_and(|p| p < policy.p_value)
                && statistic("wasserstein_normed").is_some_and(|w| w >= policy.wasserstein_threshold),
        ),
        DriftMethod::Wasserstein => {
            ("wasserstein_normed", statistic("wasserstein_normed").is_some_and(|w| w >= policy.wasserstein_threshold))
        }
        _ => ("psi", statistic("psi").is_some_and(|psi| psi >= policy.psi_threshold)),
    };
    let score = statistic(score_name);
    let verdict = if !enough {
        Verdict::InsufficientData
    } else if drifted {
        Verdict::Drift
    } else {
        Verdict::NoDrift
    };
    FeatureDrift {
        column: column.to_string(),
        kind: "numeric".into(),
        reference_count: reference.len(),
        current_count,
        statistics,
        method: policy.numeric,
        score: score.unwrap_or(f64::NAN),
        verdict,
        histogram,
    }
}

/// Share of values a chart leaves out of its range on each side, at most.
const CLIPPED_SHARE: f64 = 0.01;

/// The range a chart of some samples draws.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChartRange {
    pub low: f64,
    pub high: f64,
    /// Whether values lie beyond the range (they are counted as tails, not drawn).
    pub clipped: bool,
}

/// The range a chart of `samples` draws: from the lowest 1st to the highest 99th percentile of
/// the samples when their full range is more than twice as wide (the tails would take more than
/// half the axis), so that a heavy tail or an outlier does not squeeze every other value into
/// one bin; else the full range. `None` when every sample is empty.
pub fn chart_range(samples: &[Sorted]) -> Option<ChartRange> {
    let samples: Vec<Sorted> = samples.iter().copied().filter(|s| !s.values.is_empty()).collect();
    let low = samples.iter().filter_map(|s| stats::weighted_quantile(*s, CLIPPED_SHARE)).reduce(f64::min)?;
    let high = samples.iter().filter_map(|s| stats::weighted_quantile(*s, 1.0 - CLIPPED_SHARE)).reduce(f64::max)?;
    let (min, max) = samples.iter().flat_map(|s| s.values).fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
    let clipped = high > low && max - min > 2.0 * (high - low);
    Some(if clipped { ChartRange { low, high, clipped } } else { ChartRange { low: min, high: max, clipped } })
}

/// Twenty equal-width bins over [`chart_range`], the values beyond it counted as tails.
fn numeric_histogram(reference: &[f64], current: Sorted) -> Histogram {
    let reference = Sorted::plain(reference);
    let Some(ChartRange { low, high, clipped }) = chart_range(&[reference, current]) else {
        return Histogram::default();
    };
    let bins = 20;
    let width = if high > low { (high - low) / f64::from(bins) } else { 1.0 };
    // Edges below the first bin and past the last one (closed at `high`), so that the first and
    // last counts are the tails.
    let edges: Vec<f64> =
        std::iter::once(low).chain((1..bins).map(|i| low + width * f64::from(i))).chain(std::iter::once(high.next_up())).collect();
    let shares = |sample: Sorted| -> Vec<f64> {
        let total = sample.total().max(1.0);
        stats::bin_counts(sample, &edges).into_iter().map(|c| c / total).collect()
    };
    let (mut reference, mut current) = (shares(reference), shares(current));
    let (above_reference, above_current) = (reference.pop().unwrap_or(0.0), current.pop().unwrap_or(0.0));
    let (below_reference, below_current) = (reference.remove(0), current.remove(0));
    let tails = clipped.then_some(Tails { low, high, below_reference, below_current, above_reference, above_current });
    Histogram { labels: (0..bins).map(|i| format!("{:.3}", low + width * f64::from(i))).collect(), reference, current, tails }
}

/// Concept drift: the promotion metric on delayed labels against the holdout baseline.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ConceptDrift {
    pub labelled: usize,
    pub metric: Metric,
    #[serde(deserialize_with = "nan_for_null")]
    pub baseline: f64,
    #[serde(deserialize_with = "nan_for_null")]
    pub current: f64,
    /// Relative worsening of the metric (0.25 = 25 % worse than at training).
    #[serde(deserialize_with = "nan_for_null")]
    pub degradation: f64,
    pub verdict: Verdict,
}

impl ConceptDrift {
    /// One line: the metric `how` (realised on delayed labels, or estimated) against training.
    pub fn describe(&self, how: &str) -> String {
        format!(
            "{} {how}, {} predictions: {:.2} against {:.2} at training ({:+.0}%)",
            self.metric.name(),
            self.labelled,
            self.current,
            self.baseline,
            self.degradation * 100.0
        )
    }
}

/// Judges the metric measured on `labelled` delayed labels.
pub fn concept(metric: Metric, baseline: f64, current: f64, labelled: usize, policy: &DriftSpec) -> ConceptDrift {
    let worse = if metric.higher_is_better() { baseline - current } else { current - baseline };
    let degradation = if baseline.abs() > 0.0 { worse / baseline.abs() } else { worse };
    let verdict = if labelled < policy.min_samples {
        Verdict::InsufficientData
    } else if degradation > policy.concept_threshold {
        Verdict::Drift
    } else {
        Verdict::NoDrift
    };
    ConceptDrift { labelled, metric, baseline, current, degradation, verdict }
}

/// Dataset drift: the share of features (with a verdict) that drifted reaches the policy's.
pub fn dataset_drift(features: &[FeatureDrift], policy: &DriftSpec) -> (usize, usize, bool) {
    let judged = features.iter().filter(|f| f.verdict != Verdict::InsufficientData).count();
    let drifted = features.iter().filter(|f| f.verdict == Verdict::Drift).count();
    let share_reached = judged > 0 && drifted as f64 / judged as f64 >= policy.dataset_share;
    (drifted, judged, share_reached)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_heavy_tail_is_clipped_and_counted_instead_of_squeezing_the_chart() {
        // 0.97 to 1,181, nearly all under 5 (the case a browser showed as one bar).
        let mut values: Vec<f64> = (0..2_000).map(|i| 0.97 + f64::from(i % 400) / 100.0).collect();
        values.extend([300.0, 650.0, 1_181.0, 900.0, 45.0]);
        values.sort_by(f64::total_cmp);
        let histogram = numeric_histogram(&values, Sorted::plain(&values));
        let tails = histogram.tails.expect("clipped");
        assert!(tails.high < 5.0 && tails.low >= 0.97, "{tails:?}");
        assert!(tails.above_reference > 0.0 && tails.above_reference <= 0.011, "{tails:?}");
        let largest = histogram.reference.iter().copied().fold(0.0, f64::max);
        assert!(largest < 0.1, "values spread over the bins: {:?}", histogram.reference);
        let shown: f64 = histogram.reference.iter().sum::<f64>() + tails.below_reference + tails.above_reference;
        assert!((shown - 1.0).abs() < 1e-9, "every value is in a bin or a tail: {shown}");
        // Values that need no clipping keep the full range and no tails.
        let even: Vec<f64> = (0..100).map(f64::from).collect();
        assert_eq!(numeric_histogram(&even, Sorted::plain(&even)).tails, None);
    }

    #[test]
    fn a_nan_score_reads_back_from_json_as_nan() {
        let policy = DriftSpec::default();
        let reference = Distribution::numeric("x", &[1.0, 2.0, 3.0], 0);
        let mut drift = compare(&reference, &Distribution::numeric("x", &[], 0), &policy);
        drift.score = f64::NAN;
        drift.statistics.insert("ks".into(), f64::NAN);
        let text = serde_json::to_string(&drift).unwrap();
        assert!(text.contains("\"score\":null"), "{text}");
        let read: FeatureDrift = serde_json::from_str(&text).unwrap();
        assert!(read.score.is_nan() && read.statistics["ks"].is_nan());
        let concept = concept(Metric::Rmse, 0.0, f64::NAN, 10, &policy);
        let read: ConceptDrift = serde_json::from_str(&serde_json::to_string(&concept).unwrap()).unwrap();
        assert!(read.current.is_nan());
    }
}
