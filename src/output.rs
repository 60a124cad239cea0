//! What a person reads: progress on stderr, short tables on stdout.

use std::time::Duration;

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use mlops_core::Metric;
use mlops_core::ModelCard;
use mlops_core::Production;
use mlops_core::Spec;
use mlops_core::contracts::{FeaturesOutput, FileStatus, PrepOutput, RunRecord};

/// A spinner with the current step; drawn on stderr only when it is a terminal.
pub struct Spinner {
    bar: ProgressBar,
}

impl Spinner {
    pub fn new(visible: bool) -> Spinner {
        let target = if visible { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() };
        let bar = ProgressBar::with_draw_target(None, target);
        bar.set_style(ProgressStyle::with_template("{spinner} {elapsed:>3} {msg}").expect("a valid template"));
        bar.enable_steady_tick(Duration::from_millis(120));
        Spinner { bar }
    }

    pub fn message(&self, message: &str) {
        self.bar.set_message(message.to_string());
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

fn format_metric(value: Option<&f64>) -> String {
    value.map_or("-".into(), |v| if v.abs() >= 100.0 { format!("{v:.2}") } else { format!("{v:.4}") })
}

/// A table whose header is `first`, the metric names, then `last`.
fn table_with_metrics(first: &[&str], metrics: &[Metric], last: &[&str]) -> Table {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    let header: Vec<String> = first
        .iter()
        .map(ToString::to_string)
        .chain(metrics.iter().map(|m| m.name().to_string()))
        .chain(last.iter().map(ToString::to_string))
        .collect();
    table.set_header(header);
    table
}

/// One line per raw file prep looked at.
fn print_prep(prep: &PrepOutput) {
    for file in &prep.files {
        let reason = file.reason.as_deref().unwrap_or_default();
        match file.status {
            FileStatus::Processed => println!("prep: {}: {} rows, {} quarantined", file.key, file.rows, file.quarantined),
            FileStatus::Rejected => println!("prep: {} REJECTED: {reason}", file.key),
            FileStatus::Skipped => println!("prep: {} skipped: {reason}", file.key),
        }
    }
    if prep.batch.is_none() {
        println!("prep: no new rows; using the processed data");
    }
}

/// The outcome of `mlops prep`: the files, then the fitted features.
pub fn print_features(featured: &FeaturesOutput) {
    if let Some(prep) = &featured.prep {
        print_prep(prep);
    }
    println!(
        "features: {} rows from {} batches ({} duplicates across batches), {} training and {} holdout rows, {} features, data {}",
        featured.rows,
        featured.batches,
        featured.duplicates,
        featured.rows_train,
        featured.rows_holdout,
        featured.features.len(),
        &featured.data_hash[..12]
    );
}

pub fn print_run(record: &RunRecord, metric: Metric) {
    if let Some(prep) = &record.prep {
        print_prep(prep);
    }
    println!(
        "run {}: {} training rows, {} holdout rows, data {}",
        record.run_id,
        record.rows_train,
        record.rows_holdout,
        &record.data_hash[..12]
    );
    let metrics: Vec<Metric> = record.candidates.first().map(|c| c.metrics.keys().copied().collect()).unwrap_or_default();
    let mut table = table_with_metrics(&["candidate", "kind"], &metrics, &["seconds"]);
    for candidate in &record.candidates {
        let name = if candidate.name == record.best { format!("{} *", candidate.name) } else { candidate.name.clone() };
        let mut row = vec![name, candidate.kind.clone()];
        row.extend(metrics.iter().map(|m| format_metric(candidate.metrics.get(m))));
        row.push(format!("{:.2}", candidate.seconds));
        table.add_row(row);
    }
    println!("{table}");
    for candidate in &record.candidates {
        if let Some(note) = &candidate.note {
            println!("candidate {}: {note}", candidate.name);
        }
    }
    for failure in &record.failures {
        println!("candidate {} failed: {}", failure.name, failure.error);
    }
    let champion = record.champion.as_ref().map_or("no champion".to_string(), |c| {
        format!("champion {} {} {} on this holdout", c.version, metric.name(), format_metric(c.metrics.get(&metric)))
    });
    let verdict = if record.promoted {
        format!("promoted {}", record.version)
    } else {
        format!("kept the champion ({} is {})", record.best, record.version)
    };
    println!("{champion}; {verdict}: {}", record.reason);
    match &record.production {
        Some(production) => {
            println!("production: {} ({} {})", production.version, metric.name(), format_metric(production.metrics.get(&metric)));
        }
        None => println!("production: none (no version has been promoted)"),
    }
}

pub fn print_models(spec: &Spec, cards: &[ModelCard], production: Option<&Production>) {
    if cards.is_empty() {
        println!("no versions of '{}' yet: run `mlops run --spec ...`", spec.name);
        return;
    }
    let metrics: Vec<Metric> = cards[0].metrics.keys().copied().collect();
    let mut table = table_with_metrics(&["version", "candidate"], &metrics, &["data", "created", "run"]);
    for card in cards {
        let is_production = production.is_some_and(|p| p.version == card.version);
        let challenger = production.and_then(|p| p.challenger.as_ref()).filter(|c| c.version == card.version);
        let mut row = vec![
            match (is_production, challenger) {
                (true, _) => format!("{} (production)", card.version),
                (false, Some(challenger)) => format!("{} ({})", card.version, challenger.mode),
                (false, None) => card.version.clone(),
            },
            card.candidate.clone(),
        ];
        row.extend(metrics.iter().map(|m| format_metric(card.metrics.get(m))));
        row.extend([card.data_hash[..12].to_string(), card.created_at.chars().take(19).collect(), card.run_id.clone()]);
        table.add_row(row);
    }
    println!("{table}");
    if let Some(production) = production {
        println!("history:");
        for event in &production.history {
            println!(
                "  {} {:?} {} -> {}: {}",
                event.at.chars().take(19).collect::<String>(),
                event.action,
                event.from.as_deref().unwrap_or("none"),
                event.to,
                event.reason
            );
        }
    }
}

/// A challenger's trial: each version's evidence and the test's verdict.
pub fn print_trial(trial: &mlops_core::canary::TrialStatus) {
    let challenger = &trial.challenger;
    println!("challenger {} ({}) since {}", challenger.version, challenger.mode, challenger.started_at);
    println!("  {:<8} {:<9} {:>11} {:>9} {:>12} {:>12}", "version", "role", "predictions", "labelled", trial.metric.name(), "mean loss");
    for side in &trial.versions {
        let metric = side.metric.map_or_else(|| "-".to_string(), |m| format!("{m:.4}"));
        let role = serde_json::to_value(side.role).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
        println!("  {:<8} {:<9} {:>11} {:>9} {:>12} {:>12.4}", side.version, role, side.predictions, side.labelled, metric, side.mean_loss);
    }
    println!("  verdict: {:?}: {}", trial.judgement.verdict, trial.judgement.reason);
    if let Some(action) = &trial.action {
        println!("  pointer: {action}");
    }
}
