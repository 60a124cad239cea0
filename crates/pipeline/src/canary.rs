//! A challenger's trial on delayed labels: each version's labelled predictions since the trial
//! started, the sequential test of `mlops_core::canary`, and the pointer's move when it decides.

use std::collections::HashMap;

use mlops_core::canary::{self, Evidence, Mode, Outcome, Role, Sample, TrialStatus, Verdict, VersionEvidence};
use mlops_core::drift::Labelled;
use mlops_core::{CoreError, Ending, Keys, LogLine, Metric, Registry, Spec, Store, TargetEncoder};

use crate::PipelineError;
use crate::feedback::{labelled_row, read_feedback};

/// One version's side of a trial while the log is read.
struct Side {
    role: Role,
    target: TargetEncoder,
    predictions: usize,
    losses: Sample,
    labelled: Labelled,
    /// Loss by prediction id, for pairing a shadow with the champion.
    by_id: HashMap<String, f64>,
}

impl Side {
    fn new(role: Role, target: TargetEncoder) -> Side {
        let labelled = Labelled::new(target.n_classes());
        Side { role, target, predictions: 0, losses: Sample::default(), labelled, by_id: HashMap::new() }
    }

    fn add(&mut self, line: &LogLine, label: Option<&String>, metric: Metric, paired: bool) {
        self.predictions += 1;
        let Some(label) = label else { return };
        let Some((y, row)) = labelled_row(&self.target, label, &line.prediction, line.probabilities.as_deref()) else { return };
        let outcome = match self.target.task() {
            mlops_core::Task::Regression => Outcome::Value { predicted: row[0], actual: y },
            _ => Outcome::Class { probabilities: &row, actual: y as usize },
        };
        let loss = canary::row_loss(metric, outcome);
        self.losses.push(loss);
        self.labelled.push(y, &row);
        if paired {
            self.by_id.insert(line.prediction_id.to_string(), loss);
        }
    }

    fn evidence(&self, version: &str, metric: Metric) -> VersionEvidence {
        VersionEvidence {
            version: version.to_string(),
            role: self.role,
            predictions: self.predictions,
            labelled: self.losses.n,
            metric: self.labelled.score(self.target.task(), metric).map(|(value, _)| value),
            mean_loss: self.losses.mean,
        }
    }
}

/// Where the trial of `spec`'s challenger stands on the delayed labels so far; `None` without a
/// challenger. With `act`, a decided test moves the pointer: the challenger is promoted, or
/// withdrawn.
pub fn evaluate(store: &dyn Store, spec: &Spec, act: bool) -> Result<Option<TrialStatus>, PipelineError> {
    let registry = Registry::new(store, &spec.name);
    let Some((production, etag)) = registry.production()? else { return Ok(None) };
    let Some(challenger) = production.challenger.clone() else { return Ok(None) };
    let started: jiff::Timestamp = challenger
        .started_at
        .parse()
        .map_err(|e| PipelineError::corrupt(&Keys { dataset: &spec.name }.production(), format!("challenger start time: {e}")))?;
    let metric = spec.metric();
    let paired = challenger.mode == Mode::Shadow;
    let challenger_role = if paired { Role::Shadow } else { Role::Canary };
    let mut champion = Side::new(Role::Champion, registry.artifact(&production.version)?.target);
    let mut trial = Side::new(challenger_role, registry.artifact(&challenger.version)?.target);
    let keys = Keys { dataset: &spec.name };
    let labels = read_feedback(store, &keys, spec)?;
    let first_day = started.strftime("%Y-%m-%d").to_string();
    let prefix = keys.inference_prefix();
    for key in store.list(&prefix)? {
        // Keys are inference/DATASET/DATE/BATCH.jsonl: days before the trial are skipped unread.
        if key[prefix.len()..].split('/').next().is_some_and(|day| day < first_day.as_str()) {
            continue;
        }
        let Some(bytes) = store.get(&key)? else { continue };
        for text in String::from_utf8_lossy(&bytes).lines() {
            let Ok(line) = serde_json::from_str::<LogLine>(text) else { continue };
            if !line.time.parse::<jiff::Timestamp>().is_ok_and(|at| at >= started) {
                continue;
            }
            let label = labels.get(line.prediction_id.as_ref());
            if line.model_version == production.version && line.role == Role::Champion {
                champion.add(&line, label, metric, paired);
            } else if line.model_version == challenger.version && line.role == challenger_role {
                trial.add(&line, label, metric, paired);
            }
        }
    }
    let mut evidence = Evidence { champion: champion.losses, challenger: trial.losses, paired: None };
    if paired {
        evidence.paired = Some(trial.by_id.iter().filter_map(|(id, challenger)| Some(champion.by_id.get(id)? - challenger)).collect());
    }
    let judgement = canary::judge(&evidence, &spec.promotion.canary);
    let versions = [champion.evidence(&production.version, metric), trial.evidence(&challenger.version, metric)];
    let ending = match judgement.verdict {
        Verdict::Collecting => None,
        Verdict::Promote => Some((Ending::Promote, "promoted")),
        Verdict::Rollback => Some((Ending::Withdraw, "withdrawn")),
    };
    let action = match ending.filter(|_| act) {
        None => None,
        Some((ending, done)) => match registry.end_challenger(ending, &judgement.reason, &etag) {
            Ok(_) => Some(done.to_string()),
            Err(CoreError::Conflict { .. }) => Some("the pointer moved meanwhile: the next evaluation decides again".into()),
            Err(error) => return Err(error.into()),
        },
    };
    Ok(Some(TrialStatus { challenger, metric, versions, judgement, action }))
}
