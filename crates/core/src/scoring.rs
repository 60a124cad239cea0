//! Predictions for checked rows and the log lines that record them: what `/predict` answers and
//! what batch scoring writes come from this one piece of code.

use std::borrow::Cow;

use serde::Serialize;
use serde_json::value::RawValue;

use crate::artifact::ModelArtifact;
use crate::canary::Role;
use crate::drift::Attribution;
use crate::features::FeatureError;
use crate::frame::Frame;
use crate::inference_log::{LogLine, Predicted};
use crate::models::OutputSpace;
use crate::rows::{Cell, RowSchema};

/// One row's prediction.
#[derive(Debug, Clone, PartialEq)]
pub enum Scored {
    /// A regression's value.
    Number(f64),
    /// A classifier's most probable class (an index into the model's labels) and every class's
    /// probability.
    Class { best: usize, probabilities: Vec<f64> },
}

impl Scored {
    /// The prediction as it is logged: the value, or the label of the best class.
    pub fn predicted<'a>(&self, labels: &'a [String]) -> Predicted<'a> {
        match self {
            Scored::Number(value) => Predicted::Number(*value),
            Scored::Class { best, .. } => Predicted::Label(Cow::Borrowed(&labels[*best])),
        }
    }

    /// The class probabilities of a classifier, in the order of its labels.
    pub fn probabilities(&self) -> Option<&[f64]> {
        match self {
            Scored::Number(_) => None,
            Scored::Class { probabilities, .. } => Some(probabilities),
        }
    }
}

/// The model's prediction for each checked row, `None` where it produced no finite value (a
/// model fault the caller reports, never a number it passes on).
pub fn score(artifact: &ModelArtifact, schema: &RowSchema, rows: &[Vec<Cell>]) -> Result<Vec<Option<Scored>>, FeatureError> {
    let predictions = artifact.predict(&schema.frame(rows))?;
    let classifier = !artifact.target.labels().is_empty();
    Ok(predictions
        .rows()
        .into_iter()
        .map(|p| {
            if p.iter().any(|v| !v.is_finite()) {
                None
            } else if classifier {
                let best = (0..p.len()).fold(0, |best, c| if p[c] > p[best] { c } else { best });
                Some(Scored::Class { best, probabilities: p.to_vec() })
            } else {
                Some(Scored::Number(p[0]))
            }
        })
        .collect())
}

/// Why the model gave one row one of its outputs: each feature's contribution, which added to
/// the base give the output, in the model's output space.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explanation {
    pub space: OutputSpace,
    /// The class whose output is explained, for classifiers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// The expected output over the training rows for trees, the intercept for linear models.
    pub base: f64,
    /// Each input's (and each cross's) contribution, in the order of the features (a JSON object).
    #[serde(serialize_with = "as_object")]
    pub contributions: Vec<(String, f64)>,
}

fn as_object<S: serde::Serializer>(pairs: &[(String, f64)], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_map(pairs.iter().map(|(name, value)| (name, value)))
}

/// Each checked row's explanation, one per model output: exact TreeSHAP for tree models,
/// coefficient times value for linear ones, summed over the encoded columns of each input.
pub fn explain(artifact: &ModelArtifact, schema: &RowSchema, rows: &[Vec<Cell>]) -> Result<Vec<Vec<Explanation>>, FeatureError> {
    explain_frame(artifact, &schema.frame(rows))
}

/// [`explain`] for the rows of a frame.
fn explain_frame(artifact: &ModelArtifact, frame: &Frame) -> Result<Vec<Vec<Explanation>>, FeatureError> {
    let encoding = artifact.model.encoding();
    let x = artifact.features.transform(frame, encoding)?;
    let groups = artifact.features.groups(encoding);
    let (space, classes) = artifact.model.output_space();
    let labels = artifact.target.labels();
    Ok(x.rows()
        .into_iter()
        .map(|row| {
            let row = row.to_vec();
            let phi = artifact.model.contributions(&row);
            phi.chunks(row.len() + 1)
                .zip(&classes)
                .map(|(block, class)| {
                    let mut columns = block.iter();
                    let contributions =
                        groups.iter().map(|(name, names)| (name.clone(), columns.by_ref().take(names.len()).sum())).collect();
                    Explanation { space, class: class.and_then(|c| labels.get(c).cloned()), base: block[row.len()], contributions }
                })
                .collect()
        })
        .collect())
}

/// The attribution of the model's explanations of `frame`'s rows: per input, the sum of its
/// absolute contributions (over a classifier's outputs too).
pub fn attribution(artifact: &ModelArtifact, frame: &Frame) -> Result<Attribution, FeatureError> {
    let explained = explain_frame(artifact, frame)?;
    let mut sums: Vec<(String, f64)> =
        artifact.features.groups(artifact.model.encoding()).into_iter().map(|(name, _)| (name, 0.0)).collect();
    for explanation in explained.iter().flatten() {
        for (sum, (_, contribution)) in sums.iter_mut().zip(&explanation.contributions) {
            sum.1 += contribution.abs();
        }
    }
    Ok(Attribution { rows: explained.len(), sums })
}

/// Where and when a batch of predictions was made, for their log lines.
pub struct LogContext<'a> {
    pub request_id: &'a str,
    /// RFC 3339.
    pub time: &'a str,
    pub model_version: &'a str,
    pub role: Role,
    pub labels: &'a [String],
}

impl LogContext<'_> {
    /// The inference log line of one prediction; `features` is the row as
    /// [`RowSchema::logged`] keeps it.
    pub fn line(&self, prediction_id: &str, features: &RawValue, scored: &Scored) -> String {
        let line = LogLine {
            request_id: Cow::Borrowed(self.request_id),
            prediction_id: Cow::Borrowed(prediction_id),
            time: Cow::Borrowed(self.time),
            model_version: Cow::Borrowed(self.model_version),
            role: self.role,
            features,
            prediction: scored.predicted(self.labels),
            probabilities: scored.probabilities().map(Cow::Borrowed),
        };
        serde_json::to_string(&line).expect("log lines serialise")
    }
}
