//! The model artifact (everything serving needs, deterministic bytes) and its card (metadata).

use ndarray::Array2;
use serde::{Deserialize, Serialize};

use crate::drift::Reference;
use crate::error::CoreError;
use crate::estimate::Estimator;
use crate::features::FittedFeatures;
use crate::frame::Frame;
use crate::metrics::Metrics;
use crate::models::Model;
use crate::spec::{ColumnSpec, Metric, Spec, Task};
use crate::target::TargetEncoder;

/// Version of the artifact layout; older layouts are refused with a clear message.
pub const ARTIFACT_FORMAT: u32 = 5;

/// A trained candidate with its fitted features, target classes, spec and drift reference.
/// The same data and spec give the same bytes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelArtifact {
    pub format: u32,
    /// The spec the model was trained with, as TOML (its schema validates requests).
    pub spec_toml: String,
    pub candidate: String,
    pub features: FittedFeatures,
    pub target: TargetEncoder,
    pub model: Model,
    pub reference: Reference,
    /// Estimates the metric on rows whose labels have not arrived (fitted on the holdout).
    pub estimator: Option<Estimator>,
}

impl ModelArtifact {
    pub fn to_bytes(&self) -> Vec<u8> {
        // Sized first: a buffer that doubles as it fills would hold up to three times a forest of
        // hundreds of megabytes at its last copy.
        let size = postcard::experimental::serialized_size(self).expect("an artifact always serialises");
        postcard::to_extend(self, Vec::with_capacity(size)).expect("an artifact always serialises")
    }

    /// Reads an artifact; `key` names it in errors.
    pub fn from_bytes(bytes: &[u8], key: &str) -> Result<ModelArtifact, CoreError> {
        let corrupt = |message: String| CoreError::Corrupt { key: key.to_string(), message };
        // The format comes first: an older layout is named as such, not as undecodable bytes.
        let (format, _) = postcard::take_from_bytes::<u32>(bytes).map_err(|e| corrupt(format!("not a model artifact: {e}")))?;
        if format != ARTIFACT_FORMAT {
            return Err(corrupt(format!("artifact format {format} is not the supported {ARTIFACT_FORMAT}")));
        }
        postcard::from_bytes(bytes).map_err(|e| corrupt(format!("not a model artifact: {e}")))
    }

    /// The spec the model was trained with.
    pub fn spec(&self) -> Result<Spec, CoreError> {
        Spec::parse(&self.spec_toml, "the artifact's spec")
    }

    /// Predictions for every row: the value, or one probability per class.
    pub fn predict(&self, frame: &Frame) -> Result<Array2<f64>, crate::features::FeatureError> {
        let x = self.features.transform(frame, self.model.encoding())?;
        Ok(self.model.predict(&x))
    }
}

/// Metadata of a registered version.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ModelCard {
    pub version: String,
    pub dataset: String,
    pub candidate: String,
    pub kind: String,
    /// The candidate's hyperparameters as the spec gave them.
    pub params: serde_json::Value,
    pub task: Task,
    pub metric: Metric,
    /// Holdout metrics at training time.
    pub metrics: Metrics,
    pub run_id: String,
    pub created_at: String,
    pub spec_hash: String,
    pub data_hash: String,
    pub artifact_sha256: String,
    pub rows_train: usize,
    pub rows_holdout: usize,
    /// Encoded features with their importance (tree models), most important first.
    pub top_features: Vec<(String, f64)>,
    /// Global importance: each input's mean absolute contribution to the outputs on holdout
    /// rows (TreeSHAP, or coefficient times value), largest first.
    #[serde(default)]
    pub importance: Vec<(String, f64)>,
    pub schema: Vec<ColumnSpec>,
    pub classes: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_artifact_of_another_format_is_refused_by_its_format() {
        let mut older = postcard::to_allocvec(&(ARTIFACT_FORMAT - 1)).unwrap();
        older.extend_from_slice(&[7, 200, 3]);
        let error = ModelArtifact::from_bytes(&older, "models/toy/v1/model.bin").unwrap_err().to_string();
        assert!(error.contains(&format!("artifact format {} is not the supported {ARTIFACT_FORMAT}", ARTIFACT_FORMAT - 1)), "{error}");
        assert!(error.contains("models/toy/v1/model.bin"), "{error}");
        let error = ModelArtifact::from_bytes(&[], "empty.bin").unwrap_err().to_string();
        assert!(error.contains("not a model artifact"), "{error}");
    }
}
