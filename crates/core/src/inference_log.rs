//! The inference log: one JSON line per prediction, written by `/predict` in batches under
//! `inference/DATASET/DATE/` and read back one file at a time, newest first, by the drift check.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::canary::Role;
use crate::rows::{Cell, RawRow, RowSchema};

fn is_champion(role: &Role) -> bool {
    *role == Role::Champion
}

/// One logged prediction: a line of the inference log, written by the server and read by the
/// drift check (borrowed from the line where it can be).
#[derive(Debug, Serialize, Deserialize)]
pub struct LogLine<'a> {
    #[serde(borrow, default)]
    pub request_id: Cow<'a, str>,
    #[serde(borrow)]
    pub prediction_id: Cow<'a, str>,
    /// When the prediction was made (RFC 3339).
    #[serde(borrow, default)]
    pub time: Cow<'a, str>,
    #[serde(borrow)]
    pub model_version: Cow<'a, str>,
    /// What the version did: answered as champion or canary, or scored in the shadow.
    #[serde(default, skip_serializing_if = "is_champion")]
    pub role: Role,
    /// The row's input fields as the caller sent them ([`RowSchema::logged`]).
    #[serde(borrow)]
    pub features: &'a RawValue,
    #[serde(borrow)]
    pub prediction: Predicted<'a>,
    /// Class probabilities, in the order of the model's labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probabilities: Option<Cow<'a, [f64]>>,
}

/// A prediction: a number, or a class label.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Predicted<'a> {
    Number(f64),
    Label(#[serde(borrow)] Cow<'a, str>),
}

impl Predicted<'_> {
    /// The predicted number of a regression.
    pub fn number(&self) -> Option<f64> {
        match self {
            Predicted::Number(value) => Some(*value),
            Predicted::Label(_) => None,
        }
    }

    /// The predicted label of a classification.
    pub fn label(&self) -> Option<&str> {
        match self {
            Predicted::Label(label) => Some(label),
            Predicted::Number(_) => None,
        }
    }

    /// The same prediction, owning its label.
    pub fn into_owned(self) -> Predicted<'static> {
        match self {
            Predicted::Number(value) => Predicted::Number(value),
            Predicted::Label(label) => Predicted::Label(Cow::Owned(label.into_owned())),
        }
    }
}

/// What a logged prediction keeps once its features are checked.
#[derive(Debug)]
pub struct LoggedPrediction {
    pub prediction_id: String,
    /// When it was logged (`None` when the line's time is not RFC 3339).
    pub time: Option<jiff::Timestamp>,
    pub prediction: Predicted<'static>,
    pub probabilities: Option<Vec<f64>>,
}

/// A logged prediction with its features checked against the schema (`None`: they break it).
pub struct CheckedLine {
    pub line: LoggedPrediction,
    pub row: Option<Vec<Cell>>,
}

/// The newest `limit` predictions that `version` logged in one inference log file, newest
/// first, their features checked against `schema`. Lines that are not log lines are skipped.
pub fn read_log_file(bytes: &[u8], version: &str, schema: &RowSchema, limit: usize) -> Vec<CheckedLine> {
    // `from_utf8` validates valid text faster than the lossy decoder, which is the fallback.
    let text = std::str::from_utf8(bytes).map_or_else(|_| String::from_utf8_lossy(bytes), Cow::Borrowed);
    let mine: Vec<LogLine> =
        text.lines().filter_map(|line| serde_json::from_str::<LogLine>(line).ok()).filter(|l| l.model_version == version).collect();
    let oldest_kept = mine.len().saturating_sub(limit);
    mine.into_iter()
        .enumerate()
        .skip(oldest_kept)
        .rev()
        .map(|(index, line)| CheckedLine {
            row: schema.check_text(&RawRow::parse(line.features), index).ok(),
            line: LoggedPrediction {
                prediction_id: line.prediction_id.into_owned(),
                time: line.time.parse().ok(),
                prediction: line.prediction.into_owned(),
                probabilities: line.probabilities.map(Cow::into_owned),
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_read_back_as_written() {
        let features: &RawValue = serde_json::from_str(r#"{"a": 1}"#).unwrap();
        let line = LogLine {
            request_id: "r".into(),
            prediction_id: "r-0".into(),
            time: "2026-11-27T00:00:00Z".into(),
            model_version: "v3".into(),
            role: Role::Shadow,
            features,
            prediction: Predicted::Label("yes \"quoted\"".into()),
            probabilities: Some(Cow::Borrowed(&[0.25, 0.75])),
        };
        let text = serde_json::to_string(&line).unwrap();
        let read: LogLine = serde_json::from_str(&text).unwrap();
        assert_eq!((read.prediction_id.as_ref(), read.model_version.as_ref(), read.features.get()), ("r-0", "v3", r#"{"a": 1}"#));
        assert_eq!(read.role, Role::Shadow);
        assert_eq!((read.prediction.label(), read.prediction.number()), (Some("yes \"quoted\""), None));
        assert_eq!(read.probabilities.as_deref(), Some(&[0.25, 0.75][..]));
        let number: LogLine =
            serde_json::from_str(r#"{"prediction_id":"p","model_version":"v1","features":{},"prediction":12.5}"#).unwrap();
        assert_eq!((number.prediction.number(), number.prediction.label(), number.role), (Some(12.5), None, Role::Champion));
    }

    #[test]
    fn a_log_file_reads_back_newest_first_for_one_version() {
        let text = "name = \"t\"\n[target]\ncolumn = \"y\"\ntask = \"regression\"\n[[columns]]\nname = \"a\"\ntype = \"float\"\n\
                    [[columns]]\nname = \"y\"\ntype = \"float\"\n[models.lm]\nkind = \"linear\"\n";
        let spec = crate::spec::Spec::parse(text, "test").unwrap();
        let schema = RowSchema::new(&spec);
        let line = |id: &str, version: &str, a: &str| {
            format!(r#"{{"prediction_id":"{id}","model_version":"{version}","features":{{"a":{a}}},"prediction":1.5}}"#)
        };
        let file =
            [line("p0", "v1", "1"), line("p1", "v2", "2"), "not json".into(), line("p2", "v1", "\"x\""), line("p3", "v1", "4")].join("\n");
        let ids = |limit| {
            read_log_file(file.as_bytes(), "v1", &schema, limit)
                .into_iter()
                .map(|c| (c.line.prediction_id, c.row.is_some()))
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(10), [("p3".to_string(), true), ("p2".into(), false), ("p0".into(), true)]);
        assert_eq!(ids(2), [("p3".to_string(), true), ("p2".into(), false)]);
        assert!(ids(0).is_empty());
    }
}
