//! Metrics in CloudWatch's Embedded Metric Format: one JSON line on stdout, which CloudWatch Logs
//! turns into metrics of the `mlops` namespace, so a function reports them without an API call
//! on the request path. The lines come from the contracts the functions answer anyway.

use mlops_core::contracts::{DriftReport, RunRecord};
use serde_json::{Map, Value, json};

/// The namespace of every metric the functions report.
pub const NAMESPACE: &str = "mlops";

/// The time to stamp a line with.
pub fn now() -> jiff::Timestamp {
    jiff::Timestamp::now()
}

/// Writes lines to stdout, where the Lambda runtime sends them to CloudWatch Logs.
pub fn emit(lines: &[String]) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    for line in lines {
        let _ = writeln!(out, "{line}");
    }
}

/// A metric's unit, as CloudWatch names it.
#[derive(Debug, Clone, Copy)]
pub enum Unit {
    Milliseconds,
    Seconds,
    Count,
    None,
}

impl Unit {
    fn name(self) -> &'static str {
        match self {
            Unit::Milliseconds => "Milliseconds",
            Unit::Seconds => "Seconds",
            Unit::Count => "Count",
            Unit::None => "None",
        }
    }
}

/// One EMF line: `metrics` (name, unit, value; non-finite values are left out) under each set of
/// dimension names in `sets`, the dimensions' values in `dimensions`, at `at`.
pub fn line(dimensions: &[(&str, &str)], sets: &[&[&str]], metrics: &[(&str, Unit, f64)], at: jiff::Timestamp) -> String {
    let metrics: Vec<&(&str, Unit, f64)> = metrics.iter().filter(|(_, _, value)| value.is_finite()).collect();
    let mut root = Map::new();
    root.insert(
        "_aws".into(),
        json!({
            "Timestamp": at.as_millisecond(),
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": sets,
                "Metrics": metrics.iter().map(|(name, unit, _)| json!({ "Name": name, "Unit": unit.name() })).collect::<Vec<_>>(),
            }],
        }),
    );
    for (name, value) in dimensions {
        root.insert((*name).to_string(), Value::from(*value));
    }
    for (name, _, value) in metrics {
        root.insert((*name).to_string(), Value::from(*value));
    }
    Value::Object(root).to_string()
}

/// A served request: its latency, and whether it failed, by dataset and by model version.
pub fn request_line(dataset: &str, version: Option<&str>, status: u16, latency_ms: f64, at: jiff::Timestamp) -> String {
    let version = version.unwrap_or("none");
    line(
        &[("Dataset", dataset), ("ModelVersion", version)],
        &[&["Dataset"], &["Dataset", "ModelVersion"]],
        &[
            ("PredictLatency", Unit::Milliseconds, latency_ms),
            ("Requests", Unit::Count, 1.0),
            ("ServerErrors", Unit::Count, f64::from(u8::from(status >= 500))),
            ("ClientErrors", Unit::Count, f64::from(u8::from((400..500).contains(&status)))),
        ],
        at,
    )
}

/// A drift check: each feature's drift score (the prediction's too), and the check's outcome.
pub fn drift_lines(report: &DriftReport, at: jiff::Timestamp) -> Vec<String> {
    let dataset = report.dataset.as_str();
    let mut lines: Vec<String> = report
        .features
        .iter()
        .chain(std::iter::once(&report.prediction))
        .map(|feature| {
            line(
                &[("Dataset", dataset), ("Feature", &feature.column)],
                &[&["Dataset", "Feature"]],
                &[("DriftScore", Unit::None, feature.score)],
                at,
            )
        })
        .collect();
    let degradation = report.concept.as_ref().map_or(f64::NAN, |c| c.degradation);
    let estimated = report.estimated.as_ref().map_or(f64::NAN, |c| c.degradation);
    lines.push(line(
        &[("Dataset", dataset), ("ModelVersion", &report.model_version)],
        &[&["Dataset"], &["Dataset", "ModelVersion"]],
        &[
            ("DriftAlert", Unit::Count, f64::from(u8::from(report.alert))),
            ("DriftedFeatures", Unit::Count, report.drifted_features as f64),
            ("CheckedRows", Unit::Count, report.current_rows as f64),
            ("ConceptDegradation", Unit::None, degradation),
            ("EstimatedDegradation", Unit::None, estimated),
        ],
        at,
    ));
    lines
}

/// A training run's outcome: promoted or not, and its duration over its stages.
pub fn run_line(record: &RunRecord, at: jiff::Timestamp) -> String {
    line(
        &[("Dataset", &record.dataset)],
        &[&["Dataset"]],
        &[
            ("RunPromoted", Unit::Count, f64::from(u8::from(record.promoted))),
            ("RunSeconds", Unit::Seconds, record.durations.values().sum()),
            ("RunCandidates", Unit::Count, record.candidates.len() as f64),
            ("RunFailedCandidates", Unit::Count, record.failures.len() as f64),
        ],
        at,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_the_embedded_metric_format() {
        let at: jiff::Timestamp = "2026-12-04T10:00:00Z".parse().unwrap();
        let text = request_line("bikeshare", Some("v2"), 503, 1.5, at);
        let value: Value = serde_json::from_str(&text).unwrap();
        assert!(!text.contains('\n'), "one line");
        let directive = &value["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(value["_aws"]["Timestamp"], 1_796_378_400_000_i64);
        assert_eq!(directive["Namespace"], "mlops");
        assert_eq!(directive["Dimensions"], json!([["Dataset"], ["Dataset", "ModelVersion"]]));
        // Every metric and dimension named in the directive is a member of the line.
        for metric in directive["Metrics"].as_array().unwrap() {
            assert!(value[metric["Name"].as_str().unwrap()].is_number(), "{metric}");
        }
        assert_eq!((value["Dataset"].as_str(), value["ModelVersion"].as_str()), (Some("bikeshare"), Some("v2")));
        assert_eq!(
            (value["PredictLatency"].as_f64(), value["ServerErrors"].as_f64(), value["ClientErrors"].as_f64()),
            (Some(1.5), Some(1.0), Some(0.0))
        );
        // A value that is not a number is left out, with its declaration.
        let partial: Value =
            serde_json::from_str(&line(&[("Dataset", "d")], &[&["Dataset"]], &[("A", Unit::Count, f64::NAN), ("B", Unit::Count, 2.0)], at))
                .unwrap();
        assert_eq!(partial["_aws"]["CloudWatchMetrics"][0]["Metrics"], json!([{ "Name": "B", "Unit": "Count" }]));
        assert!(partial.get("A").is_none());
    }
}
