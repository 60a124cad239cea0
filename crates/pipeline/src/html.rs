//! The drift report as one self-contained HTML page with inline SVG charts: reference against
//! current distribution per feature, and the drift score over time.

use std::fmt::Write;

use mlops_core::drift::{FeatureDrift, Histogram, Verdict};

use mlops_core::contracts::DriftReport;

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
    let last = histogram.labels.last().map(|l| escape(l)).unwrap_or_default();
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
<style>body{{font-family:system-ui,sans-serif;margin:2rem;max-width:1100px;color:#222}}h2{{margin-top:2rem}}.feature{{display:inline-block;margin:0 1.5rem 1.5rem 0;vertical-align:top}}.stats{{font-size:12px;color:#555;max-width:520px}}.badge{{color:#fff;padding:1px 6px;border-radius:3px;font-size:12px}}.legend span{{display:inline-block;width:10px;height:10px;margin:0 4px 0 12px}}</style></head><body>
<h1>Drift report: {dataset}, model {version}</h1>
<p>Checked at {} on {} ({} rows{}). "#,
        escape(&report.checked_at),
        escape(&report.source),
        report.current_rows,
        if report.skipped_rows > 0 { format!(", {} skipped", report.skipped_rows) } else { String::new() }
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
    for feature in report.features.iter().chain(std::iter::once(&report.prediction)) {
        let (label, colour) = verdict_label(feature.verdict);
        let _ = write!(
            html,
            r#"<div class="feature"><h3>{} <span class="badge" style="background:{colour}">{label}</span></h3>{}<div class="stats">{} · {:?} decides: {:.4} · {} reference, {} current values</div></div>"#,
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
