//! `mlops drift`, `mlops feedback` and `mlops watch`.

use std::path::Path;
use std::sync::mpsc::{RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use mlops_core::Registry;
use mlops_core::contracts::DriftReport;
use mlops_core::contracts::{RunRequest, Trigger};
use mlops_core::drift::Verdict;
use mlops_core::{FsStore, Keys, Spec, Store};
use mlops_pipeline::monitor::{self, Current, LocalRetrainer, LogNotifier};
use mlops_pipeline::stages;
use notify::Watcher;

/// How long raw/ must stay quiet after a change before the watcher runs the pipeline.
const SETTLE: Duration = Duration::from_millis(500);

/// The rows of a CSV batch, validated against the spec like prep validates raw files. The
/// target may be absent or empty: rows that carry it give concept drift too.
pub fn batch(spec: &Spec, file: &Path) -> Result<Current> {
    let bytes = std::fs::read(file).with_context(|| file.display().to_string())?;
    let name = file.display().to_string();
    let mut batch_spec = spec.clone();
    if let Some(target) = batch_spec.columns.iter_mut().find(|c| c.name == spec.target.column) {
        target.nullable = true;
    }
    let parsed = mlops_prep::parse_csv(&name, &bytes, &batch_spec).map_err(|r| anyhow!("{}: {}", r.file, r.reason))?;
    if parsed.valid.height() == 0 {
        let first = parsed.quarantined.column(mlops_prep::REASON_COLUMN).ok().and_then(|c| c.str().ok()?.get(0).map(str::to_string));
        bail!("{name}: no row passes the schema, so there is nothing to check (first reason: {})", first.unwrap_or_default());
    }
    if parsed.quarantined.height() > 0 {
        eprintln!("{name}: {} rows break the schema and are left out", parsed.quarantined.height());
    }
    Ok(Current::Batch { name, frame: mlops_prep::to_frame(parsed.valid, &batch_spec)? })
}

/// One drift check with local alerting and retraining.
pub fn check(store: &FsStore, spec: &Spec, current: Current) -> Result<DriftReport> {
    Ok(monitor::check(store, spec, current, &LogNotifier, &LocalRetrainer { store, spec })?)
}

/// Prints a drift report; `location` is where the store is (a directory or `s3://BUCKET`).
pub fn print_report(location: &str, report: &DriftReport) {
    println!("drift of {} {} on {} ({} rows):", report.dataset, report.model_version, report.source, report.current_rows);
    for feature in report.features.iter().chain(std::iter::once(&report.prediction)) {
        let verdict = match feature.verdict {
            Verdict::Drift => "DRIFT",
            Verdict::NoDrift => "ok",
            Verdict::InsufficientData => "too few rows",
        };
        println!("  {:<14} {:<12} {:?} {:.4}", feature.column, verdict, feature.method, feature.score);
    }
    println!(
        "  {} of {} features drifted: {}",
        report.drifted_features,
        report.judged_features,
        if report.dataset_drift { "DATASET DRIFT" } else { "no dataset drift" }
    );
    if let Some(concept) = &report.concept {
        println!(
            "  {} on {} delayed labels: {:.4} against {:.4} at training ({:+.0}%): {:?}",
            concept.metric.name(),
            concept.labelled,
            concept.current,
            concept.baseline,
            concept.degradation * 100.0,
            concept.verdict
        );
    }
    println!(
        "  alert: {}; retrain: {} ({})",
        if report.alert { "yes" } else { "no" },
        if report.retrain.requested { "requested" } else { "no" },
        report.retrain.reason
    );
    if let Some(version) = report.retrain.started.as_ref().and_then(|run| run.get("production")).and_then(|p| p.get("version")) {
        println!("  after the retrain, production is {version}");
    }
    println!("  report: {location}/{}", report.html_key);
}

/// Stores a file of delayed labels.
pub fn feedback(store: &dyn Store, spec: &Spec, file: &Path) -> Result<mlops_pipeline::feedback::FeedbackSummary> {
    let bytes = std::fs::read(file).with_context(|| file.display().to_string())?;
    let name = file.file_name().map_or_else(|| "feedback.csv".into(), |n| n.to_string_lossy().to_string());
    Ok(mlops_pipeline::feedback::store_feedback(store, spec, &name, &bytes)?)
}

/// Runs the pipeline on each new raw file and the drift check every `interval`, until killed.
pub fn watch(store: &FsStore, spec: &Spec, interval: Duration, json: bool) -> Result<()> {
    let raw = store.root().join(Keys { dataset: &spec.name }.raw_prefix());
    std::fs::create_dir_all(&raw).with_context(|| raw.display().to_string())?;
    let (events, changes) = channel();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event {
            let visible = event.paths.iter().any(|p| !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')));
            if visible && !event.kind.is_access() {
                let _ = events.send(());
            }
        }
    })?;
    watcher.watch(&raw, notify::RecursiveMode::Recursive)?;
    eprintln!("watching {} (drift check every {}s); Ctrl-C stops", raw.display(), interval.as_secs());
    let mut pending = !stages::unprocessed(store, &spec.name)?.is_empty();
    let mut next_check = Instant::now() + interval;
    loop {
        let wait = if pending { SETTLE } else { next_check.saturating_duration_since(Instant::now()) };
        match changes.recv_timeout(wait) {
            Ok(()) => pending = true,
            Err(RecvTimeoutError::Timeout) if pending => {
                pending = false;
                run_once(store, spec, json);
            }
            Err(RecvTimeoutError::Timeout) => {
                next_check = Instant::now() + interval;
                drift_once(store, spec, json);
            }
            Err(RecvTimeoutError::Disconnected) => return Err(anyhow!("the file watcher stopped")),
        }
    }
}

fn run_once(store: &FsStore, spec: &Spec, json: bool) {
    let keys = match stages::unprocessed(store, &spec.name) {
        Ok(keys) if keys.is_empty() => return,
        Ok(keys) => keys,
        Err(error) => return eprintln!("cannot read the raw files: {error}"),
    };
    let request = RunRequest { dataset: spec.name.clone(), keys, trigger: Trigger::Upload, id: None };
    match stages::run(store, spec, &request, &stages::quiet) {
        Ok(record) if json => println!("{}", serde_json::json!({ "event": "run", "record": record })),
        Ok(record) => println!(
            "run {}: best {} ({}), {}; production {}",
            record.run_id,
            record.best,
            record.metric,
            if record.promoted { format!("promoted {}", record.version) } else { "not promoted".into() },
            record.production.as_ref().map_or("none", |p| p.version.as_str())
        ),
        Err(error) if json => println!("{}", serde_json::json!({ "event": "run_failed", "error": error.to_string() })),
        Err(error) => eprintln!("run failed: {error}"),
    }
}

fn drift_once(store: &FsStore, spec: &Spec, json: bool) {
    if !matches!(Registry::new(store, &spec.name).production(), Ok(Some(_))) {
        return;
    }
    match check(store, spec, Current::Logs) {
        Ok(report) if json => println!("{}", serde_json::json!({ "event": "drift", "report": report })),
        Ok(report) => print_report(&store.location(), &report),
        Err(error) => eprintln!("drift check failed: {error}"),
    }
}
