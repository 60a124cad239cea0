//! `mlops demo`: the whole lifecycle on the shipped Bikeshare data, unattended.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use mlops_core::contracts::{RunRecord, RunRequest, Trigger};
use mlops_core::save_spec;
use mlops_core::{FsStore, Spec};
use mlops_core::{Service, ServiceOptions};
use mlops_pipeline::feedback::PREDICTION_ID;
use mlops_pipeline::monitor::Current;
use mlops_pipeline::stages;
use serde_json::{Value, json};

use crate::monitoring;
use crate::server::Server;

const SPEC: &str = include_str!("../specs/bikeshare.toml");
const DATA: &[u8] = include_bytes!("../data/bikeshare/Bikeshare.csv");
/// January to April (days 1 to 120) train the first model; May to August is replayed as traffic.
const FIRST_MONTHS: std::ops::RangeInclusive<u32> = 1..=120;
const LATER_MONTHS: std::ops::RangeInclusive<u32> = 121..=243;
const ROWS_PER_REQUEST: usize = 100;

/// Narration: on stdout, or on stderr when stdout carries the JSON summary.
macro_rules! say {
    ($json:expr, $($arg:tt)*) => {
        if $json { eprintln!($($arg)*) } else { println!($($arg)*) }
    };
}

/// Rows of the shipped CSV whose `day` is in `days`, as CSV text.
fn months(days: &std::ops::RangeInclusive<u32>) -> Result<String> {
    let mut reader = csv::Reader::from_reader(DATA);
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(reader.headers()?)?;
    for record in reader.records() {
        let record = record?;
        if record.get(2).and_then(|d| d.parse().ok()).is_some_and(|d| days.contains(&d)) {
            writer.write_record(&record)?;
        }
    }
    Ok(String::from_utf8(writer.into_inner()?)?)
}

/// The feature fields of each row (target and ignored columns left out), as /predict takes them.
fn request_rows(csv_text: &str, spec: &Spec) -> Result<(Vec<Value>, Vec<String>)> {
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let header = reader.headers()?.clone();
    let mut rows = Vec::new();
    let mut labels = Vec::new();
    for record in reader.records() {
        let record = record?;
        let mut row = serde_json::Map::new();
        for (name, value) in header.iter().zip(record.iter()) {
            if name == spec.target.column {
                labels.push(value.to_string());
            } else if !spec.ignore.iter().any(|i| i == name) {
                let json = value.parse::<f64>().map_or_else(|_| json!(value), |n| json!(n));
                row.insert(name.to_string(), json);
            }
        }
        rows.push(Value::Object(row));
    }
    Ok((rows, labels))
}

fn post(agent: &ureq::Agent, address: SocketAddr, body: &Value) -> Result<Value> {
    let mut response = agent.post(format!("http://{address}/predict")).send_json(body).context("POST /predict")?;
    Ok(response.body_mut().read_json()?)
}

fn describe(record: &RunRecord) -> String {
    let metric = &record.metric;
    let best = record.candidates.iter().find(|c| c.name == record.best).expect("the best is a candidate");
    let value = best.metrics.iter().find(|(m, _)| m.name() == metric).map_or(f64::NAN, |(_, v)| *v);
    let verdict = if record.promoted {
        format!("promoted {}", record.version)
    } else {
        format!("kept {}", record.production.as_ref().map_or("no model", |p| p.version.as_str()))
    };
    format!(
        "{} rows, best {} ({metric} {value:.2} on the last 20% of the hours): {verdict}",
        record.rows_train + record.rows_holdout,
        record.best
    )
}

/// Runs the demo in a new store under `base`; returns a JSON summary.
pub fn run(base: &Path, json_output: bool) -> Result<Value> {
    let started = Instant::now();
    let stamp = jiff::Timestamp::now().strftime("%Y%m%dT%H%M%SZ").to_string();
    let root: PathBuf = base.join(format!("run-{stamp}"));
    std::fs::create_dir_all(&root).with_context(|| root.display().to_string())?;
    let store = Arc::new(FsStore::new(&root));
    let (spec, _) = save_spec(store.as_ref(), SPEC, "specs/bikeshare.toml")?;
    say!(json_output, "mlops demo: the lifecycle of a model on the shipped Bikeshare data (hourly rentals, 2011)");
    say!(json_output, "store: {}", root.display());

    say!(json_output, "\n1. Train on January to April");
    let first = root.join("jan-apr.csv");
    std::fs::write(&first, months(&FIRST_MONTHS)?)?;
    mlops_pipeline::ingest::ingest(store.as_ref(), &spec.name, &[first.as_path()])?;
    let request = RunRequest { dataset: spec.name.clone(), keys: Vec::new(), trigger: Trigger::Upload };
    let v1 = stages::run(store.as_ref(), &spec, &request, &stages::quiet)?;
    say!(json_output, "   {}", describe(&v1));

    say!(json_output, "\n2. Serve it");
    let options = ServiceOptions { refresh_every: Duration::from_millis(200), ..ServiceOptions::default() };
    let service = Arc::new(Service::new(store.clone(), &spec.name, options));
    let server = Server::start(service.clone(), "127.0.0.1:0".parse()?)?;
    let address = server.address();
    say!(json_output, "   http://{address} serves {}", service.version().unwrap_or_default());

    say!(json_output, "\n3. Replay May to August as traffic through POST /predict");
    let later = months(&LATER_MONTHS)?;
    let (rows, labels) = request_rows(&later, &spec)?;
    let agent: ureq::Agent = ureq::Agent::config_builder().timeout_global(Some(Duration::from_secs(30))).build().into();
    let mut prediction_ids = Vec::with_capacity(rows.len());
    let mut versions = std::collections::BTreeSet::new();
    for chunk in rows.chunks(ROWS_PER_REQUEST) {
        let answer = post(&agent, address, &json!({ "rows": chunk }))?;
        versions.insert(answer["model_version"].as_str().unwrap_or_default().to_string());
        prediction_ids.extend(answer["prediction_ids"].as_array().into_iter().flatten().filter_map(|v| v.as_str().map(str::to_string)));
    }
    service.flush_logs()?;
    say!(
        json_output,
        "   {} rows in {} requests answered by {versions:?}, each prediction logged under inference/",
        rows.len(),
        rows.len().div_ceil(ROWS_PER_REQUEST)
    );

    say!(json_output, "\n4. The labels arrive: the true counts of those hours, and the months' export");
    let mut feedback = format!("{PREDICTION_ID},{}\n", spec.target.column);
    for (id, label) in prediction_ids.iter().zip(&labels) {
        feedback.push_str(&format!("{id},{label}\n"));
    }
    let feedback_path = root.join("may-aug-labels.csv");
    std::fs::write(&feedback_path, feedback)?;
    let stored = monitoring::feedback(store.as_ref(), &spec, &feedback_path)?;
    say!(json_output, "   {} delayed labels stored, {} matched to logged predictions", stored.rows, stored.matched);
    let export = root.join("may-aug.csv");
    std::fs::write(&export, &later)?;
    mlops_pipeline::ingest::ingest(store.as_ref(), &spec.name, &[export.as_path()])?;
    say!(json_output, "   may-aug.csv put under raw/ (no run yet: the watcher or the drift check decides)");

    say!(json_output, "\n5. Check drift on the logged traffic");
    let report = monitoring::check(&store, &spec, Current::Logs)?;
    for feature in report.features.iter().filter(|f| f.verdict == mlops_core::drift::Verdict::Drift) {
        say!(json_output, "   {:<11} drifted: {:?} {:.3}", feature.column, feature.method, feature.score);
    }
    say!(
        json_output,
        "   {} of {} features drifted; dataset drift: {}",
        report.drifted_features,
        report.judged_features,
        report.dataset_drift
    );
    if let Some(concept) = &report.concept {
        say!(
            json_output,
            "   {} on {} delayed labels: {:.2} against {:.2} at training ({:+.0}%)",
            concept.metric.name(),
            concept.labelled,
            concept.current,
            concept.baseline,
            concept.degradation * 100.0
        );
    }
    say!(json_output, "   alert raised: {}; retrain requested: {}", report.alert, report.retrain.requested);
    let retrained: Option<RunRecord> = report.retrain.started.clone().and_then(|v| serde_json::from_value(v).ok());
    let Some(retrained) = retrained else { bail!("the drift check did not retrain: {}", report.retrain.reason) };
    say!(json_output, "   retrain: {}", describe(&retrained));

    say!(json_output, "\n6. The server picks up the new version, no restart");
    let Some(production) = &retrained.production else { bail!("the retrained run left no production version: {}", retrained.reason) };
    let wanted = production.version.clone();
    let deadline = Instant::now() + Duration::from_secs(10);
    let answer = loop {
        let answer = post(&agent, address, &rows[rows.len() - 1])?;
        if answer["model_version"] == wanted.as_str() || Instant::now() > deadline {
            break answer;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    say!(
        json_output,
        "   POST /predict (the last hour of August, {} bikers) -> {} from {}",
        labels[labels.len() - 1],
        answer["predictions"][0],
        answer["model_version"]
    );
    if answer["model_version"] != wanted.as_str() {
        bail!("the server still answers with {} instead of {wanted}", answer["model_version"]);
    }

    say!(json_output, "\n7. Check again: the new version has no traffic yet, and a retrain cannot trigger itself");
    let again = monitoring::check(&store, &spec, Current::Logs)?;
    say!(
        json_output,
        "   {} rows logged by {}: alert {}, retrain: {}",
        again.current_rows,
        again.model_version,
        again.alert,
        again.retrain.reason
    );
    server.stop()?;

    let html = store.root().join(&report.html_key);
    say!(json_output, "\nReports: {}", html.display());
    say!(json_output, "Models:  cargo run -q -- --root {} models --spec {}", root.display(), spec.name);
    say!(json_output, "Done in {:.1}s.", started.elapsed().as_secs_f64());
    let summary = json!({
        "root": root,
        "first_model": { "version": v1.version, "metrics": v1.production.as_ref().map(|p| &p.metrics) },
        "traffic": { "rows": rows.len(), "labelled": stored.matched },
        "drift": { "drifted_features": report.drifted_features, "judged_features": report.judged_features, "dataset_drift": report.dataset_drift, "concept": report.concept, "alert": report.alert, "retrain": report.retrain.requested },
        "retrained": { "version": retrained.version, "promoted": retrained.promoted, "metrics": retrained.production.as_ref().map(|p| &p.metrics) },
        "answered_by": answer["model_version"],
        "second_check": { "alert": again.alert, "retrain": again.retrain.requested },
        "report": html,
        "seconds": started.elapsed().as_secs_f64(),
    });
    if json_output {
        println!("{summary}");
    }
    Ok(summary)
}
