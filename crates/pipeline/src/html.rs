//! The drift report as one self-contained HTML page with inline SVG charts (nothing fetched):
//! what was checked (model version, training run, time window), a summary table of the features
//! ordered by drift, the model's quality, and per feature the reference against the current
//! distribution, on a range clipped to where most values lie with the tails counted.

use std::fmt::Write;

use mlops_core::drift::{self, FeatureDrift, Histogram, Tails, Verdict};

use mlops_core::contracts::{DriftReport, RunRecord};

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn verdict_label(verdict: Verdict) -> (&'static str, &'static str) {
    match verdict {
        Verdict::Drift => ("drift", "#c0392b"),
        Verdict::NoDrift => ("no drift", "#27ae60"),
        Verdict::InsufficientData => ("insufficient data", "#7f8c8d"),
    }
}

/// Paired bars: reference (grey) and current (blue) share per bin.
fn histogram_svg(histogram: &Histogram) -> String {
    let (width, height, pad) = (520.0, 170.0, 24.0);
    let n = histogram.labels.len().max(1) as f64;
    let top = histogram.reference.iter().chain(&histogram.current).fold(0.0f64, |a, b| a.max(*b)).max(1e-9);
    let slot = (width - 2.0 * pad) / n;
    let mut svg = format!(r#"<svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img">"#);
    for (i, (r, c)) in histogram.reference.iter().zip(&histogram.current).enumerate() {
        let x = pad + slot * i as f64;
        for (offset, share, colour) in [(0.0, r, "#b0b7bf"), (slot / 2.0, c, "#2e86de")] {
            let h = share / top * (height - 2.0 * pad);
            let _ = write!(
                svg,
                r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="{colour}"><title>{}: {:.1}%</title></rect>"#,
                x + offset,
                height - pad - h,
                (slot / 2.0 - 1.0).max(0.5),
                escape(&histogram.labels[i]),
                share * 100.0
            );
        }
    }
    let first = histogram.labels.first().map(|l| escape(l)).unwrap_or_default();
    let last = histogram.tails.map_or_else(|| histogram.labels.last().map(|l| escape(l)).unwrap_or_default(), |t| format!("{:.3}", t.high));
    let _ = write!(
        svg,
        r##"<text x="{pad}" y="{:.0}" font-size="10">{first}</text><text x="{:.0}" y="{:.0}" font-size="10" text-anchor="end">{last}</text></svg>"##,
        height - 6.0,
        width - pad,
        height - 6.0
    );
    svg
}

/// The share of drifted features at each check, with the alert threshold.
fn history_svg(points: &[(String, f64, bool)]) -> String {
    let (width, height, pad) = (640.0, 200.0, 30.0);
    let mut svg = format!(r#"<svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img">"#);
    let _ = write!(
        svg,
        r##"<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{:.0}" stroke="#999"/><line x1="{pad}" y1="{:.0}" x2="{:.0}" y2="{:.0}" stroke="#999"/>"##,
        height - pad,
        height - pad,
        width - pad,
        height - pad
    );
    let step = if points.len() > 1 { (width - 2.0 * pad) / (points.len() - 1) as f64 } else { 0.0 };
    let y = |share: f64| height - pad - share * (height - 2.0 * pad);
    let path: Vec<String> =
        points.iter().enumerate().map(|(i, (_, share, _))| format!("{:.1},{:.1}", pad + step * i as f64, y(*share))).collect();
    let _ = write!(svg, r##"<polyline points="{}" fill="none" stroke="#2e86de" stroke-width="2"/>"##, path.join(" "));
    for (i, (at, share, alert)) in points.iter().enumerate() {
        let colour = if *alert { "#c0392b" } else { "#2e86de" };
        let _ = write!(
            svg,
            r#"<circle cx="{:.1}" cy="{:.1}" r="4" fill="{colour}"><title>{}: {:.0}% drifted</title></circle>"#,
            pad + step * i as f64,
            y(*share),
            escape(at),
            share * 100.0
        );
    }
    let _ = write!(
        svg,
        r#"<text x="4" y="{pad}" font-size="10">100%</text><text x="4" y="{:.0}" font-size="10">0%</text></svg>"#,
        height - pad
    );
    svg
}

/// The values outside a clipped histogram's range, as a line under it.
fn tails_line(tails: &Tails) -> String {
    format!(
        "Range clipped to {:.4} – {:.4} (the 1st to 99th percentiles); below: {:.1}% of the reference, {:.1}% of current; above: {:.1}% and {:.1}%.",
        tails.low,
        tails.high,
        tails.below_reference * 100.0,
        tails.below_current * 100.0,
        tails.above_reference * 100.0,
        tails.above_current * 100.0
    )
}

/// The features, drifted first, then by their deciding statistic, largest first.
fn by_drift(features: &[FeatureDrift]) -> Vec<&FeatureDrift> {
    let rank = |verdict: Verdict| match verdict {
        Verdict::Drift => 0,
        Verdict::NoDrift => 1,
        Verdict::InsufficientData => 2,
    };
    let mut ordered: Vec<&FeatureDrift> = features.iter().collect();
    ordered.sort_by(|a, b| {
        let score = |f: &FeatureDrift| if f.score.is_nan() { f64::NEG_INFINITY } else { f.score };
        rank(a.verdict).cmp(&rank(b.verdict)).then(score(b).total_cmp(&score(a)))
    });
    ordered
}

/// An HTML id for a feature's section.
fn anchor(column: &str) -> String {
    let id: String = column.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    format!("feature-{id}")
}

fn statistics_line(feature: &FeatureDrift) -> String {
    feature.statistics.iter().map(|(name, value)| format!("{name} {value:.4}")).collect::<Vec<_>>().join(" · ")
}

/// Renders a report; `history` holds earlier reports, oldest first.
pub fn render(report: &DriftReport, history: &[DriftReport]) -> String {
    let mut html = String::new();
    let (dataset, version) = (escape(&report.dataset), escape(&report.model_version));
    let _ = write!(
        html,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Drift: {dataset} {version}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2rem;max-width:1100px;color:#222}}h2{{margin-top:2rem}}.feature{{display:inline-block;margin:0 1.5rem 1.5rem 0;vertical-align:top}}.stats{{font-size:12px;color:#555;max-width:520px}}.badge{{color:#fff;padding:1px 6px;border-radius:3px;font-size:12px}}.legend span{{display:inline-block;width:10px;height:10px;margin:0 4px 0 12px}}table{{border-collapse:collapse;font-size:13px}}td,th{{padding:2px 10px;text-align:left;border-bottom:1px solid #eee}}</style></head><body>
<h1>Drift report: {dataset}, model {version}</h1>
<p>Model {version}{} · checked at {} · {} ({} rows{}{}). "#,
        report.run_id.as_deref().map_or_else(String::new, |run| format!(", trained by run {}", escape(run))),
        escape(&report.checked_at),
        escape(&report.source),
        report.current_rows,
        if report.skipped_rows > 0 { format!(", {} skipped", report.skipped_rows) } else { String::new() },
        report.window.map_or_else(String::new, |w| format!(", logged from {} to {}", w.first, w.last))
    );
    let _ = write!(
        html,
        r#"<strong>{} of {} features drifted: {}.</strong> Alert: <strong>{}</strong>. Retrain: {} ({}).</p>"#,
        report.drifted_features,
        report.judged_features,
        if report.dataset_drift { "dataset drift" } else { "no dataset drift" },
        if report.alert { "yes" } else { "no" },
        if report.retrain.requested { "requested" } else { "not requested" },
        escape(&report.retrain.reason)
    );
    let ordered = by_drift(&report.features);
    html.push_str(r#"<h2>Summary</h2><table><tr><th>feature</th><th>kind</th><th>verdict</th><th>decided by</th><th>score</th><th>reference</th><th>current</th></tr>"#);
    for feature in ordered.iter().copied().chain(std::iter::once(&report.prediction)) {
        let (label, colour) = verdict_label(feature.verdict);
        let _ = write!(
            html,
            r##"<tr><td><a href="#{}">{}</a></td><td>{}</td><td><span class="badge" style="background:{colour}">{label}</span></td><td>{:?}</td><td>{:.4}</td><td>{}</td><td>{}</td></tr>"##,
            anchor(&feature.column),
            escape(&feature.column),
            escape(&feature.kind),
            feature.method,
            feature.score,
            feature.reference_count,
            feature.current_count
        );
    }
    html.push_str("</table>");
    if report.concept.is_some() || report.estimated.is_some() {
        html.push_str("<h2>Model quality</h2>");
    }
    for (quality, what) in [(&report.concept, "realised on delayed labels"), (&report.estimated, "estimated before labels")] {
        let Some(quality) = quality else { continue };
        let (label, colour) = verdict_label(quality.verdict);
        let _ = write!(
            html,
            r#"<p>{} {what}, over {} predictions: {:.4} against {:.4} at training ({:+.1}%) <span class="badge" style="background:{colour}">{label}</span></p>"#,
            quality.metric.name(),
            quality.labelled,
            quality.current,
            quality.baseline,
            quality.degradation * 100.0
        );
    }
    if !report.attribution.is_empty() {
        let _ = write!(
            html,
            r#"<h2>Attribution drift</h2><p class="stats">Each input's mean absolute contribution to the model's outputs: on the training holdout (the model card's importance) and on explained current rows; largest shift first.</p><table><tr><th>feature</th><th>holdout</th><th>current</th><th>change</th></tr>"#
        );
        for shift in &report.attribution {
            let change = shift.change.map_or_else(|| "-".to_string(), |c| format!("{:+.1}%", c * 100.0));
            let _ = write!(
                html,
                "<tr><td>{}</td><td>{:.4}</td><td>{:.4}</td><td>{change}</td></tr>",
                escape(&shift.feature),
                shift.reference,
                shift.current
            );
        }
        html.push_str("</table>");
    }
    if let Some(trial) = &report.canary {
        let challenger = &trial.challenger;
        let _ = write!(
            html,
            r#"<h2>Challenger {} ({}) since {}</h2><table><tr><th>version</th><th>role</th><th>predictions</th><th>labelled</th><th>{}</th><th>mean loss</th></tr>"#,
            escape(&challenger.version),
            escape(&challenger.mode.to_string()),
            escape(&challenger.started_at),
            trial.metric.name()
        );
        for side in &trial.versions {
            let _ = write!(
                html,
                "<tr><td>{}</td><td>{:?}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.4}</td></tr>",
                escape(&side.version),
                side.role,
                side.predictions,
                side.labelled,
                side.metric.map_or_else(|| "-".to_string(), |m| format!("{m:.4}")),
                side.mean_loss
            );
        }
        let _ = write!(
            html,
            "</table><p>Sequential test: <strong>{:?}</strong>: {}{}</p>",
            trial.judgement.verdict,
            escape(&trial.judgement.reason),
            trial.action.as_ref().map_or_else(String::new, |action| format!(" The pointer: {}.", escape(action)))
        );
    }
    let mut points: Vec<(String, f64, bool)> =
        history.iter().map(|r| (r.checked_at.clone(), r.drifted_features as f64 / r.judged_features.max(1) as f64, r.alert)).collect();
    points.push((report.checked_at.clone(), report.drifted_features as f64 / report.judged_features.max(1) as f64, report.alert));
    let _ = write!(
        html,
        "<h2>Drift score over time</h2><p class=\"stats\">Share of drifted features at each check; red points raised an alert.</p>{}",
        history_svg(&points)
    );
    let _ = write!(
        html,
        r#"<h2>Features</h2><p class="legend"><span style="background:#b0b7bf"></span>reference (training)<span style="background:#2e86de"></span>current</p>"#
    );
    for feature in ordered.into_iter().chain(std::iter::once(&report.prediction)) {
        let (label, colour) = verdict_label(feature.verdict);
        let tails =
            feature.histogram.tails.as_ref().map_or_else(String::new, |t| format!("<div class=\"stats\">{}</div>", escape(&tails_line(t))));
        let _ = write!(
            html,
            r#"<div class="feature" id="{}"><h3>{} <span class="badge" style="background:{colour}">{label}</span></h3>{}{tails}<div class="stats">{} · {:?} decides: {:.4} · {} reference, {} current values</div></div>"#,
            anchor(&feature.column),
            escape(&feature.column),
            histogram_svg(&feature.histogram),
            escape(&statistics_line(feature)),
            feature.method,
            feature.score,
            feature.reference_count,
            feature.current_count
        );
    }
    html.push_str("</body></html>\n");
    html
}

/// What the run report shows of the best candidate on the holdout.
pub enum Holdout {
    /// Each holdout row's truth and prediction.
    Regression { truth: Vec<f64>, predicted: Vec<f64> },
    /// Each holdout row's class (an index into `labels`) and its class probabilities.
    Classification { labels: Vec<String>, truth: Vec<usize>, probabilities: Vec<Vec<f64>> },
}

/// Points drawn at most in a scatter plot: an evenly spaced sample of the rows.
const SCATTER_POINTS: usize = 1_000;

/// The report of a training run as one self-contained HTML page: the candidates side by side,
/// the champion comparison and the promotion decision, the best candidate on the holdout
/// (residuals and predicted against actual, or the confusion matrix and one-vs-rest ROC
/// curves), and the registered version's feature importance.
pub fn render_run(record: &RunRecord, holdout: &Holdout, importance: &[(String, f64)]) -> String {
    let mut html = String::new();
    let (dataset, run) = (escape(&record.dataset), escape(&record.run_id));
    let _ = write!(
        html,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Run {run}: {dataset}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2rem;max-width:1100px;color:#222}}h2{{margin-top:2rem}}table{{border-collapse:collapse;font-size:13px}}td,th{{padding:2px 10px;text-align:left;border-bottom:1px solid #eee}}.best{{font-weight:bold;background:#eef6fd}}.stats{{font-size:12px;color:#555}}</style></head><body>
<h1>Training run {run}: {dataset}</h1>
<p>Started {} · finished {} · trigger {:?} · {} training rows, {} holdout rows · data {} · spec {}</p>"#,
        escape(&record.started_at),
        escape(&record.finished_at),
        record.trigger,
        record.rows_train,
        record.rows_holdout,
        escape(&record.data_hash[..record.data_hash.len().min(12)]),
        escape(&record.spec_hash[..record.spec_hash.len().min(12)]),
    );
    let (verdict, colour) = if record.promoted { ("promoted", "#27ae60") } else { ("not promoted", "#7f8c8d") };
    let _ = write!(
        html,
        r#"<h2>Decision</h2><p><span style="color:#fff;background:{colour};padding:1px 6px;border-radius:3px">{verdict}</span> Best candidate <strong>{}</strong> registered as <strong>{}</strong>: {}</p>"#,
        escape(&record.best),
        escape(&record.version),
        escape(&record.reason)
    );
    let metric_of = |metrics: &mlops_core::Metrics| {
        metrics.iter().find(|(m, _)| m.name() == record.metric).map_or_else(|| "-".to_string(), |(_, v)| format!("{v:.4}"))
    };
    html.push_str("<table><tr><th></th><th>version</th><th>");
    html.push_str(&escape(&record.metric));
    html.push_str(" on this holdout</th></tr>");
    if let Some(best) = record.candidates.iter().find(|c| c.name == record.best) {
        let _ = write!(html, "<tr><td>candidate</td><td>{}</td><td>{}</td></tr>", escape(&record.version), metric_of(&best.metrics));
    }
    match &record.champion {
        Some(champion) => {
            let _ =
                write!(html, "<tr><td>champion</td><td>{}</td><td>{}</td></tr>", escape(&champion.version), metric_of(&champion.metrics));
        }
        None => html.push_str("<tr><td>champion</td><td>none</td><td>-</td></tr>"),
    }
    html.push_str("</table>");
    if let Some(production) = &record.production {
        let _ = write!(html, "<p class=\"stats\">Serving after this run: {}.</p>", escape(&production.version));
    }

    let names: Vec<String> = record
        .candidates
        .iter()
        .flat_map(|c| c.metrics.keys().map(|m| m.name().to_string()))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    html.push_str("<h2>Candidates</h2><table><tr><th>candidate</th><th>kind</th>");
    for name in &names {
        let _ = write!(html, "<th>{}</th>", escape(name));
    }
    html.push_str("<th>fit s</th><th>1-row p99 ms</th><th>artifact KB</th><th>note</th></tr>");
    for candidate in &record.candidates {
        let class = if candidate.name == record.best { " class=\"best\"" } else { "" };
        let _ = write!(html, "<tr{class}><td>{}</td><td>{}</td>", escape(&candidate.name), escape(&candidate.kind));
        for name in &names {
            let value = candidate
                .metrics
                .iter()
                .find(|(m, _)| m.name() == name.as_str())
                .map_or_else(|| "-".to_string(), |(_, v)| format!("{v:.4}"));
            let _ = write!(html, "<td>{value}</td>");
        }
        let _ = write!(
            html,
            "<td>{:.2}</td><td>{:.3}</td><td>{:.0}</td><td>{}</td></tr>",
            candidate.fit_seconds,
            candidate.predict_p99_ms,
            candidate.artifact_bytes as f64 / 1024.0,
            escape(candidate.note.as_deref().unwrap_or_default())
        );
    }
    for failure in &record.failures {
        let _ = write!(
            html,
            "<tr><td>{}</td><td colspan=\"{}\">failed: {}</td></tr>",
            escape(&failure.name),
            names.len() + 5,
            escape(&failure.error)
        );
    }
    html.push_str("</table>");

    let _ = write!(html, "<h2>{} on the holdout</h2>", escape(&record.best));
    match holdout {
        Holdout::Regression { truth, predicted } => {
            let residuals: Vec<f64> = truth.iter().zip(predicted).map(|(t, p)| p - t).collect();
            html.push_str(
                "<p class=\"stats\">Residuals (prediction minus truth), and predictions against the truth (the diagonal is perfect).</p>",
            );
            html.push_str(&residual_svg(&residuals));
            html.push_str(&scatter_svg(truth, predicted));
        }
        Holdout::Classification { labels, truth, probabilities } => {
            html.push_str(&confusion_table(labels, truth, probabilities));
            html.push_str(&roc_svg(labels, truth, probabilities));
        }
    }
    if !importance.is_empty() {
        html.push_str("<h2>Feature importance</h2><p class=\"stats\">Mean absolute contribution to the model's output over holdout rows (TreeSHAP for trees, coefficient times value for linear models).</p>");
        html.push_str(&importance_svg(importance));
    }
    html.push_str("</body></html>\n");
    html
}

/// A histogram of residuals, on their [`drift::chart_range`].
fn residual_svg(residuals: &[f64]) -> String {
    let mut sorted: Vec<f64> = residuals.iter().copied().filter(|r| r.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    let Some(drift::ChartRange { low, high, clipped }) = drift::chart_range(&[drift::stats::Sorted::plain(&sorted)]) else {
        return String::new();
    };
    let high = if high > low { high } else { low + 1.0 };
    let bins = 30;
    let width = (high - low) / f64::from(bins);
    let mut counts = vec![0usize; bins as usize];
    let (below, above) = (sorted.partition_point(|r| *r < low), sorted.len() - sorted.partition_point(|r| *r <= high));
    for r in sorted.iter().filter(|r| (low..=high).contains(*r)) {
        let bin = (((r - low) / width).floor() as usize).min(bins as usize - 1);
        counts[bin] += 1;
    }
    let top = counts.iter().copied().max().unwrap_or(1).max(1) as f64;
    let (w, h, pad) = (520.0, 180.0, 24.0);
    let slot = (w - 2.0 * pad) / f64::from(bins);
    let mut svg = format!(r#"<svg viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img">"#);
    for (i, count) in counts.iter().enumerate() {
        let bar = *count as f64 / top * (h - 2.0 * pad);
        let from = low + width * i as f64;
        let _ = write!(
            svg,
            r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{bar:.1}" fill="#2e86de"><title>{from:.3} to {:.3}: {count}</title></rect>"##,
            pad + slot * i as f64,
            h - pad - bar,
            (slot - 1.0).max(0.5),
            from + width
        );
    }
    let range = if clipped { format!(" (1st to 99th percentile; {below} rows below, {above} above, not drawn)") } else { String::new() };
    let _ = write!(
        svg,
        r#"<text x="{pad}" y="{:.0}" font-size="10">{low:.2}</text><text x="{:.0}" y="{:.0}" font-size="10" text-anchor="end">{high:.2}{range}</text></svg>"#,
        h - 6.0,
        w - pad,
        h - 6.0
    );
    svg
}

/// Predictions against the truth for an evenly spaced sample of the rows, with the diagonal.
fn scatter_svg(truth: &[f64], predicted: &[f64]) -> String {
    let step = truth.len().div_ceil(SCATTER_POINTS).max(1);
    let points: Vec<(f64, f64)> =
        truth.iter().zip(predicted).step_by(step).map(|(t, p)| (*t, *p)).filter(|(t, p)| t.is_finite() && p.is_finite()).collect();
    let (low, high) = points.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), (t, p)| (lo.min(t.min(*p)), hi.max(t.max(*p))));
    if !low.is_finite() {
        return String::new();
    }
    let span = (high - low).max(1e-9);
    let (size, pad) = (360.0, 30.0);
    let at = |v: f64| pad + (v - low) / span * (size - 2.0 * pad);
    let mut svg = format!(
        r##"<svg viewBox="0 0 {size} {size}" width="{size}" height="{size}" role="img"><line x1="{pad}" y1="{:.1}" x2="{:.1}" y2="{pad}" stroke="#999" stroke-dasharray="4"/>"##,
        size - pad,
        size - pad
    );
    for (t, p) in &points {
        let _ = write!(svg, r##"<circle cx="{:.1}" cy="{:.1}" r="2" fill="#2e86de" fill-opacity="0.5"/>"##, at(*t), size - at(*p));
    }
    let _ = write!(
        svg,
        r#"<text x="{pad}" y="{:.0}" font-size="10">truth {low:.1} to {high:.1} →</text><text x="4" y="{pad}" font-size="10">prediction ↑</text></svg>"#,
        size - 8.0
    );
    svg
}

/// Rows of the truth against columns of the predicted class (the most probable).
fn confusion_table(labels: &[String], truth: &[usize], probabilities: &[Vec<f64>]) -> String {
    let k = labels.len();
    let mut counts = vec![vec![0usize; k]; k];
    for (t, p) in truth.iter().zip(probabilities) {
        let predicted = (0..p.len()).fold(0, |best, c| if p[c] > p[best] { c } else { best });
        if *t < k && predicted < k {
            counts[*t][predicted] += 1;
        }
    }
    let mut html = String::from("<h3>Confusion matrix</h3><table><tr><th>truth \\ predicted</th>");
    for label in labels {
        let _ = write!(html, "<th>{}</th>", escape(label));
    }
    html.push_str("</tr>");
    let top = counts.iter().flatten().copied().max().unwrap_or(1).max(1) as f64;
    for (label, row) in labels.iter().zip(&counts) {
        let _ = write!(html, "<tr><th>{}</th>", escape(label));
        for count in row {
            let shade = 1.0 - 0.6 * (*count as f64 / top);
            let _ = write!(html, "<td style=\"background:hsl(210,70%,{:.0}%)\">{count}</td>", shade * 100.0);
        }
        html.push_str("</tr>");
    }
    html.push_str("</table>");
    html
}

/// One-vs-rest ROC curves (the positive class alone for two classes), with each curve's AUC.
fn roc_svg(labels: &[String], truth: &[usize], probabilities: &[Vec<f64>]) -> String {
    const COLOURS: [&str; 6] = ["#2e86de", "#c0392b", "#27ae60", "#8e44ad", "#d35400", "#16a085"];
    let classes: Vec<usize> = if labels.len() == 2 { vec![1] } else { (0..labels.len()).take(COLOURS.len()).collect() };
    let (size, pad) = (360.0, 30.0);
    let at = |v: f64| pad + v * (size - 2.0 * pad);
    let mut svg = format!(
        r##"<h3>ROC</h3><svg viewBox="0 0 {size} {size}" width="{size}" height="{size}" role="img"><line x1="{pad}" y1="{:.1}" x2="{:.1}" y2="{pad}" stroke="#999" stroke-dasharray="4"/>"##,
        size - pad,
        size - pad
    );
    let mut legend = String::new();
    for (i, &class) in classes.iter().enumerate() {
        let mut scored: Vec<(f64, bool)> =
            truth.iter().zip(probabilities).filter_map(|(t, p)| Some((*p.get(class)?, *t == class))).collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        let positives = scored.iter().filter(|(_, positive)| *positive).count().max(1) as f64;
        let negatives = scored.iter().filter(|(_, positive)| !*positive).count().max(1) as f64;
        let (mut tp, mut fp, mut auc, mut last_fpr) = (0.0, 0.0, 0.0, 0.0);
        let mut path = vec![format!("{:.1},{:.1}", at(0.0), size - at(0.0))];
        for (_, positive) in &scored {
            if *positive {
                tp += 1.0;
            } else {
                fp += 1.0;
                auc += tp / positives * (fp / negatives - last_fpr);
                last_fpr = fp / negatives;
            }
            path.push(format!("{:.1},{:.1}", at(fp / negatives), size - at(tp / positives)));
        }
        let colour = COLOURS[i % COLOURS.len()];
        let _ = write!(svg, r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"/>"#, path.join(" "));
        let _ = write!(legend, r#"<span style="color:{colour}">■</span> {} (AUC {auc:.3}) "#, escape(&labels[class]));
    }
    let _ = write!(
        svg,
        r#"<text x="{pad}" y="{:.0}" font-size="10">false positive rate →</text><text x="4" y="{pad}" font-size="10">true positive rate ↑</text></svg><p class="stats">{legend}</p>"#,
        size - 8.0
    );
    svg
}

/// Horizontal bars of each input's importance, largest first (the first 20).
fn importance_svg(importance: &[(String, f64)]) -> String {
    let mut ordered: Vec<&(String, f64)> = importance.iter().collect();
    ordered.sort_by(|a, b| b.1.total_cmp(&a.1));
    ordered.truncate(20);
    let top = ordered.first().map_or(1.0, |(_, v)| v.max(1e-12));
    let (w, row, left) = (640.0, 18.0, 160.0);
    let h = row * ordered.len() as f64 + 10.0;
    let mut svg = format!(r#"<svg viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img">"#);
    for (i, (name, value)) in ordered.iter().enumerate() {
        let y = row * i as f64;
        let bar = value / top * (w - left - 70.0);
        let _ = write!(
            svg,
            r##"<text x="{:.0}" y="{:.1}" font-size="11" text-anchor="end">{}</text><rect x="{left}" y="{:.1}" width="{bar:.1}" height="{:.1}" fill="#2e86de"/><text x="{:.1}" y="{:.1}" font-size="10">{value:.4}</text>"##,
            left - 6.0,
            y + 12.0,
            escape(name),
            y + 3.0,
            row - 5.0,
            left + bar + 4.0,
            y + 12.0
        );
    }
    svg.push_str("</svg>");
    svg
}
