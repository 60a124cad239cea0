//! Drift monitoring: the training reference saved with each model.

use rand::SeedableRng;
use rand::seq::index::sample;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::frame::{Column, Frame};
use crate::spec::{Metric, Spec};

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

/// One column's distribution.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum Distribution {
    /// A seeded sample of at most [`REFERENCE_SAMPLE`] values, sorted.
    Numeric { column: String, sample: Vec<f64>, count: usize, missing: usize },
    /// Counts per level.
    Categorical { column: String, counts: Vec<(String, u64)>, missing: u64 },
}

impl Distribution {
    pub fn column(&self) -> &str {
        match self {
            Distribution::Numeric { column, .. } | Distribution::Categorical { column, .. } => column,
        }
    }

    /// The distribution of a frame column.
    pub fn of(name: &str, column: &Column, seed: u64) -> Distribution {
        match column {
            Column::Numeric(values) => Distribution::numeric(name, values, seed),
            Column::Categorical { .. } => {
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
