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
use mlops_pipeline::feedback::{FeedbackSummary, PREDICTION_ID};
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
/// September and October: the traffic the retrained model is tried on as a canary.
const CANARY_MONTHS: std::ops::RangeInclusive<u32> = 244..=304;
const ROWS_PER_REQUEST: usize = 100;
/// Canary traffic comes in smaller requests, so that it spreads over many routing keys.
const CANARY_ROWS_PER_REQUEST: usize = 10;
/// The demo tries a retrained model as a canary on half the traffic before promoting it.
const CANARY_POLICY: &str = "\n[promotion.canary]\nrollout = \"canary\"\nweight = 50\n";

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

/// Sends `rows` in requests of `per_request` rows, each with a request id from `request_id`;
/// returns the prediction ids in the order of the rows, and how many rows each version answered.
fn replay(
    agent: &ureq::Agent,
    address: SocketAddr,
    rows: &[Value],
    per_request: usize,
    request_id: impl Fn(usize) -> String,
) -> Result<(Vec<String>, std::collections::BTreeMap<String, usize>)> {
    let mut prediction_ids = Vec::with_capacity(rows.len());
    let mut answered = std::collections::BTreeMap::new();
    for (i, chunk) in rows.chunks(per_request).enumerate() {
        let mut response = agent
            .post(format!("http://{address}/predict"))
            .header("x-request-id", request_id(i))
            .send_json(json!({ "rows": chunk }))
            .context("POST /predict")?;
        let answer: Value = response.body_mut().read_json()?;
        *answered.entry(answer["model_version"].as_str().unwrap_or_default().to_string()).or_insert(0) += chunk.len();
        prediction_ids.extend(answer["prediction_ids"].as_array().into_iter().flatten().filter_map(|v| v.as_str().map(str::to_string)));
    }
    Ok((prediction_ids, answered))
}

/// Writes a feedback file of `labels` keyed by `prediction_ids` and stores it.
fn give_labels(store: &FsStore, spec: &Spec, path: &Path, prediction_ids: &[String], labels: &[String]) -> Result<FeedbackSummary> {
    let mut feedback = format!("{PREDICTION_ID},{}\n", spec.target.column);
    for (id, label) in prediction_ids.iter().zip(labels) {
        feedback.push_str(&format!("{id},{label}\n"));
    }
    std::fs::write(path, feedback)?;
    monitoring::feedback(store, spec, path)
}

fn describe(record: &RunRecord) -> String {
    let metric = &record.metric;
    let best = record.candidates.iter().find(|c| c.name == record.best).expect("the best is a candidate");
    let value = best.metrics.iter().find(|(m, _)| m.name() == metric).map_or(f64::NAN, |(_, v)| *v);
    let verdict = if record.promoted {
        format!("promoted {}", record.version)
    } else if let Some(start) = record.reason.strip_prefix("started as a challenger, ") {
        format!("{} started as a challenger, {}", record.version, start.split(':').next().unwrap_or_default())
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
    let (spec, _) = save_spec(store.as_ref(), &format!("{SPEC}{CANARY_POLICY}"), "specs/bikeshare.toml")?;
    say!(json_output, "mlops demo: the lifecycle of a model on the shipped Bikeshare data (hourly rentals, 2011)");
    say!(json_output, "store: {}", root.display());

    say!(json_output, "\n1. Train on January to April");
    let first = root.join("jan-apr.csv");
    std::fs::write(&first, months(&FIRST_MONTHS)?)?;
    mlops_pipeline::ingest::ingest(store.as_ref(), &spec.name, &[first.as_path()])?;
    let request = RunRequest { dataset: spec.name.clone(), keys: Vec::new(), trigger: Trigger::Upload, id: None };
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
    let (prediction_ids, answered) = replay(&agent, address, &rows, ROWS_PER_REQUEST, |i| format!("may-aug-{i}"))?;
    service.flush_logs()?;
    say!(
        json_output,
        "   {} rows in {} requests answered by {:?}, each prediction logged under inference/",
        rows.len(),
        rows.len().div_ceil(ROWS_PER_REQUEST),
        answered.keys().collect::<Vec<_>>()
    );

    say!(json_output, "\n4. The labels arrive: the true counts of those hours, and the months' export");
    let stored = give_labels(&store, &spec, &root.join("may-aug-labels.csv"), &prediction_ids, &labels)?;
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
    for (quality, how) in [(&report.estimated, "estimated without labels"), (&report.concept, "realised on delayed labels")] {
        if let Some(quality) = quality {
            say!(json_output, "   {}", quality.describe(how));
        }
    }
    say!(json_output, "   alert raised: {}; retrain requested: {}", report.alert, report.retrain.requested);
    let retrained: Option<RunRecord> = report.retrain.started.clone().and_then(|v| serde_json::from_value(v).ok());
    let Some(retrained) = retrained else { bail!("the drift check did not retrain: {}", report.retrain.reason) };
    say!(json_output, "   retrain: {}", describe(&retrained));

    let Some(challenger) = mlops_core::Registry::new(store.as_ref(), &spec.name).production()?.and_then(|(p, _)| p.challenger) else {
        bail!("the retrained run did not start a canary: {}", retrained.reason)
    };

    say!(json_output, "\n6. The server picks up the canary from the pointer, no restart; September and October are replayed");
    let deadline = Instant::now() + Duration::from_secs(10);
    while service.challenger().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let (canary_rows, canary_labels) = request_rows(&months(&CANARY_MONTHS)?, &spec)?;
    let (canary_ids, answered) = replay(&agent, address, &canary_rows, CANARY_ROWS_PER_REQUEST, |i| format!("sep-oct-{i}"))?;
    service.flush_logs()?;
    let shares: Vec<String> = answered.iter().map(|(version, rows)| format!("{rows} rows by {version}")).collect();
    say!(
        json_output,
        "   {} rows in {} requests, routed by request id: {}",
        canary_rows.len(),
        canary_rows.len().div_ceil(CANARY_ROWS_PER_REQUEST),
        shares.join(", ")
    );

    say!(json_output, "\n7. Their labels arrive; the drift check judges the canary on them");
    let canary_stored = give_labels(&store, &spec, &root.join("sep-oct-labels.csv"), &canary_ids, &canary_labels)?;
    say!(json_output, "   {} delayed labels stored, {} matched to logged predictions", canary_stored.rows, canary_stored.matched);
    let judged = monitoring::check(&store, &spec, Current::Logs)?;
    let Some(trial) = &judged.canary else { bail!("the drift check did not judge the canary {}", challenger.version) };
    for side in &trial.versions {
        say!(
            json_output,
            "   {:<3} {:<8} {:>5} labelled predictions: {} {:.2}",
            side.version,
            format!("{:?}", side.role).to_lowercase(),
            side.labelled,
            trial.metric.name(),
            side.metric.unwrap_or(f64::NAN)
        );
    }
    say!(json_output, "   sequential test: {:?} ({})", trial.judgement.verdict, trial.judgement.reason);
    if trial.action.as_deref() != Some("promoted") {
        bail!("the canary {} was not promoted: {}", challenger.version, trial.action.as_deref().unwrap_or("no decision"));
    }
    say!(json_output, "   {} promoted; the report shows both versions", challenger.version);

    say!(json_output, "\n8. The server picks up the new version, no restart");
    let wanted = challenger.version.clone();
    let deadline = Instant::now() + Duration::from_secs(10);
    let answer = loop {
        let answer = post(&agent, address, &rows[rows.len() - 1])?;
        if (answer["model_version"] == wanted.as_str() && service.challenger().is_none()) || Instant::now() > deadline {
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

    say!(json_output, "\n9. Check the new version: a retrain cannot follow another within the cooldown");
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

    let html = store.root().join(&judged.html_key);
    say!(json_output, "\nReports: {}", html.display());
    say!(json_output, "Models:  cargo run -q -- --root {} models --spec {}", root.display(), spec.name);
    say!(json_output, "Done in {:.1}s.", started.elapsed().as_secs_f64());
    let summary = json!({
        "root": root,
        "first_model": { "version": v1.version, "metrics": v1.production.as_ref().map(|p| &p.metrics) },
        "traffic": { "rows": rows.len(), "labelled": stored.matched },
        "drift": { "drifted_features": report.drifted_features, "judged_features": report.judged_features, "dataset_drift": report.dataset_drift, "concept": report.concept, "estimated": report.estimated, "alert": report.alert, "retrain": report.retrain.requested },
        "retrained": { "version": retrained.version, "started": retrained.reason },
        "canary": trial,
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
