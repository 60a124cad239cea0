//! The drift check over the inference log as a plan, map items and a reducer, run the same way
//! in one process and on a Step Functions Distributed Map.
//!
//! [`LogPlan::new`] lists the log files newest first and groups them into map items of a few
//! files, and the items into rounds. Each item summarises its files apart ([`Summarizer::item`]:
//! mergeable sketches and counts, [`Observed`]). The reducer adds the summaries up newest first
//! until they hold the window of predictions; the file at the boundary is read again for just
//! the predictions the window still has room for, so the check sees exactly the newest `window`
//! predictions whatever the partitioning. A round whose files hold fewer is followed by the next
//! round. Locally the items of a round run on the thread pool; on AWS each item writes its
//! summaries to a fixed key and the reducer fails on any that is missing (a failed map item can
//! come back as a success with a null result).

use std::collections::HashMap;
use std::ops::Range;
use std::sync::OnceLock;

use mlops_core::contracts::{DriftItem, DriftPartOutput, DriftPlanned};
use mlops_core::drift::{Estimated, Labelled, Observed, Reference};
use mlops_core::{Column, Frame, JsonStore, Keys, ModelArtifact, Registry, RowSchema, Spec, Store, TargetEncoder, Task, read_log_file};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::PipelineError;
use crate::feedback::{labelled_row, read_feedback};
use crate::stages::{MapItem, read_postcard};

/// Log files summarised by one map item, unless the deployment says otherwise.
pub const LOG_FILES_PER_ITEM: usize = 16;
/// Map items in one round on AWS, unless the deployment says otherwise.
pub const LOG_ITEMS_PER_ROUND: usize = 40;

/// How a drift plan groups log files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogSizing {
    pub files_per_item: usize,
    pub items_per_round: usize,
}

impl LogSizing {
    /// In one process: a round keeps every core busy on one item each.
    pub fn local() -> LogSizing {
        LogSizing { files_per_item: LOG_FILES_PER_ITEM, items_per_round: rayon::current_num_threads() }
    }
}

impl Default for LogSizing {
    fn default() -> Self {
        LogSizing { files_per_item: LOG_FILES_PER_ITEM, items_per_round: LOG_ITEMS_PER_ROUND }
    }
}

/// A drift check of the inference log: the files to read, newest first, grouped into map items
/// and rounds, and what summarising them needs of the checked model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogPlan {
    pub dataset: String,
    pub check: String,
    pub version: String,
    /// The newest predictions of `version` the check compares.
    pub window: usize,
    /// Log files, newest first.
    pub files: Vec<String>,
    pub files_per_item: usize,
    pub items_per_round: usize,
    /// The model's spec (its schema checks the logged rows), drift reference and classes.
    pub spec_toml: String,
    pub reference: Reference,
    pub target: TargetEncoder,
}

impl LogPlan {
    /// The plan of check `check` of `version`'s predictions, listing the log files now.
    pub fn new(
        store: &dyn Store,
        spec: &Spec,
        check: String,
        version: &str,
        artifact: &ModelArtifact,
        sizing: LogSizing,
    ) -> Result<LogPlan, PipelineError> {
        let mut files = store.list(&Keys { dataset: &spec.name }.inference_prefix())?;
        files.reverse();
        Ok(LogPlan {
            dataset: spec.name.clone(),
            check,
            version: version.to_string(),
            window: spec.drift.window,
            files,
            files_per_item: sizing.files_per_item.max(1),
            items_per_round: sizing.items_per_round.max(1),
            spec_toml: artifact.spec_toml.clone(),
            reference: artifact.reference.clone(),
            target: artifact.target.clone(),
        })
    }

    /// Map items in the plan.
    pub fn items(&self) -> usize {
        self.files.len().div_ceil(self.files_per_item)
    }

    /// Rounds in the plan: none when there is no log.
    pub fn rounds(&self) -> usize {
        self.items().div_ceil(self.items_per_round)
    }

    /// The items of round `round`.
    pub fn round_items(&self, round: usize) -> Range<usize> {
        (round * self.items_per_round).min(self.items())..((round + 1) * self.items_per_round).min(self.items())
    }

    /// A summary of no rows, to which the items' summaries are added.
    pub fn nothing_observed(&self) -> Observed {
        Observed::empty(&self.reference, self.target.n_classes())
    }

    /// The log files of item `item`, newest first.
    fn files_of(&self, item: usize) -> &[String] {
        let start = (item * self.files_per_item).min(self.files.len());
        &self.files[start..(start + self.files_per_item).min(self.files.len())]
    }
}

/// The estimator's estimates of rows whose model outputs are `outputs` (none when a row's
/// output is missing, or the model has no estimator).
pub(crate) fn estimated(model: &ModelArtifact, frame: &Frame, outputs: Option<Vec<Vec<f64>>>) -> Result<Estimated, String> {
    let (Some(estimator), Some(outputs)) = (&model.estimator, outputs) else { return Ok(Estimated::default()) };
    let estimates = estimator.per_row(&model.features, frame, &outputs).map_err(|e| format!("rows could not be estimated: {e}"))?;
    Ok(Estimated { outputs, estimates })
}

/// Summarises log files for a plan: the model's schema, and the delayed labels, read once when
/// a file is first summarised (a reduce that summarises no file never reads them).
pub struct Summarizer<'a> {
    plan: &'a LogPlan,
    spec: Spec,
    schema: RowSchema,
    labels: OnceLock<HashMap<String, String>>,
    /// The checked model, read when a file's rows are first explained.
    model: OnceLock<ModelArtifact>,
}

/// Newest rows of each log file whose explanations give the current attribution: a fixed share
/// of each file, so the summaries merge whatever the partitioning.
pub const EXPLAINED_ROWS_PER_FILE: usize = 8;

impl<'a> Summarizer<'a> {
    pub fn new(plan: &'a LogPlan) -> Result<Summarizer<'a>, PipelineError> {
        let spec = Spec::parse(&plan.spec_toml, "the checked model's spec")?;
        Ok(Summarizer { plan, schema: RowSchema::new(&spec), spec, labels: OnceLock::new(), model: OnceLock::new() })
    }

    fn model(&self, store: &dyn Store) -> Result<&ModelArtifact, PipelineError> {
        if let Some(model) = self.model.get() {
            return Ok(model);
        }
        let model = Registry::new(store, &self.plan.dataset).artifact(&self.plan.version)?;
        Ok(self.model.get_or_init(|| model))
    }

    /// The delayed labels by prediction id.
    fn labels(&self, store: &dyn Store) -> Result<&HashMap<String, String>, PipelineError> {
        if let Some(labels) = self.labels.get() {
            return Ok(labels);
        }
        let labels = read_feedback(store, &Keys { dataset: &self.spec.name }, &self.spec)?;
        Ok(self.labels.get_or_init(|| labels))
    }

    /// The summary of the newest `limit` predictions of the plan's version in log file `key`.
    pub fn file(&self, store: &dyn Store, key: &str, limit: usize) -> Result<Observed, PipelineError> {
        let plan = self.plan;
        let labels = self.labels(store)?;
        let bytes = store.get(key)?.unwrap_or_default();
        let lines = read_log_file(&bytes, &plan.version, &self.schema, limit);
        drop(bytes);
        let skipped = lines.iter().filter(|line| line.row.is_none()).count();
        let (rows, kept): (Vec<_>, Vec<_>) = lines.into_iter().filter_map(|line| Some((line.row?, line.line))).unzip();
        let frame = self.schema.frame(&rows);
        drop(rows);
        let task = plan.target.task();
        let predictions = match task {
            Task::Regression => Column::Numeric(kept.iter().filter_map(|l| l.prediction.number()).collect()),
            _ => Column::categorical(kept.iter().map(|l| l.prediction.label())),
        };
        let mut labelled = Labelled::new(plan.target.n_classes());
        for line in &kept {
            let Some(label) = labels.get(&line.prediction_id) else { continue };
            if let Some((encoded, predicted)) = labelled_row(&plan.target, label, &line.prediction, line.probabilities.as_deref()) {
                labelled.push(encoded, &predicted);
            }
        }
        let mut observed = Observed::of_frame(&plan.reference, &frame, skipped, &predictions, labelled);
        observed.window = mlops_core::drift::Window::of(kept.iter().filter_map(|line| line.time));
        if frame.n_rows() > 0 {
            let model = self.model(store)?;
            let explained: Vec<usize> = (0..frame.n_rows().min(EXPLAINED_ROWS_PER_FILE)).collect();
            observed.attribution = mlops_core::attribution(model, &frame.take(&explained))
                .map_err(|e| PipelineError::corrupt(key, format!("logged rows could not be explained: {e}")))?;
            let outputs: Option<Vec<Vec<f64>>> = kept
                .iter()
                .map(|line| match task {
                    Task::Regression => line.prediction.number().map(|v| vec![v]),
                    _ => line.probabilities.clone(),
                })
                .collect();
            observed.estimated = estimated(model, &frame, outputs).map_err(|e| PipelineError::corrupt(key, e))?;
        }
        Ok(observed)
    }

    /// The summaries of item `item`'s log files, newest first (each file whole).
    pub fn item(&self, store: &dyn Store, item: usize) -> Result<Vec<Observed>, PipelineError> {
        self.plan.files_of(item).iter().map(|key| self.file(store, key, usize::MAX)).collect()
    }

    /// Adds item `item`'s summaries to `running`, newest first, until it holds the window;
    /// answers whether it does. The file at the boundary is summarised again, for only the
    /// predictions the window still has room for.
    pub fn fold(&self, store: &dyn Store, running: &mut Observed, item: usize, parts: Vec<Observed>) -> Result<bool, PipelineError> {
        let window = self.plan.window;
        let files = self.plan.files_of(item);
        if parts.len() != files.len() {
            return Err(PipelineError::corrupt(
                &Keys { dataset: &self.plan.dataset }.drift_part(&self.plan.check, item),
                format!("{} summaries for {} log files", parts.len(), files.len()),
            ));
        }
        for (key, part) in files.iter().zip(parts) {
            let room = window.saturating_sub(running.lines());
            if room == 0 {
                return Ok(true);
            }
            let part = if part.lines() > room { self.file(store, key, room)? } else { part };
            running.merge(part)?;
        }
        Ok(running.lines() >= window)
    }
}

/// The summary of the newest `window` predictions in the plan, its rounds' items run on the
/// thread pool.
pub fn observe(store: &dyn Store, plan: &LogPlan) -> Result<Observed, PipelineError> {
    let summarizer = Summarizer::new(plan)?;
    // Read before the items run side by side, so that they do not each read them.
    summarizer.labels(store)?;
    let mut running = plan.nothing_observed();
    for round in 0..plan.rounds() {
        let items = plan.round_items(round);
        let parts = items.clone().into_par_iter().map(|item| summarizer.item(store, item)).collect::<Result<Vec<_>, _>>()?;
        for (item, parts) in items.zip(parts) {
            if summarizer.fold(store, &mut running, item, parts)? {
                return Ok(running);
            }
        }
    }
    Ok(running)
}

/// Writes the plan and its first round's items; answers the round by reference.
pub fn save_plan(store: &dyn Store, plan: &LogPlan, max_concurrency: u32) -> Result<DriftPlanned, PipelineError> {
    let keys = Keys { dataset: &plan.dataset };
    store.put(&keys.drift_plan(&plan.check), &postcard::to_stdvec(plan).expect("a drift plan serialises"))?;
    planned_round(store, plan, 0, max_concurrency)
}

/// Writes the items of round `round` as the JSON array the Distributed Map reads.
pub fn planned_round(store: &dyn Store, plan: &LogPlan, round: usize, max_concurrency: u32) -> Result<DriftPlanned, PipelineError> {
    let keys = Keys { dataset: &plan.dataset };
    let items: Vec<MapItem> = plan.round_items(round).map(|item| MapItem { item }).collect();
    let items_key = keys.drift_items(&plan.check, round);
    store.write_json(&items_key, &items)?;
    Ok(DriftPlanned { dataset: plan.dataset.clone(), check: plan.check.clone(), round, items: items.len(), items_key, max_concurrency })
}

/// The plan of check `check`, as its plan step wrote it.
pub fn load_plan(store: &dyn Store, dataset: &str, check: &str) -> Result<LogPlan, PipelineError> {
    let key = Keys { dataset }.drift_plan(check);
    read_postcard(store, &key)?.ok_or_else(|| PipelineError::bad_input(format!("{key}: no such drift check")))
}

/// Summarises one map item and writes its summaries to the item's fixed key.
pub fn summarize_item(store: &dyn Store, item: &DriftItem) -> Result<DriftPartOutput, PipelineError> {
    let plan = load_plan(store, &item.dataset, &item.check)?;
    if item.item >= plan.items() {
        return Err(PipelineError::bad_input(format!("drift check {} has {} items, not item {}", item.check, plan.items(), item.item)));
    }
    let parts = Summarizer::new(&plan)?.item(store, item.item)?;
    let output = DriftPartOutput { item: item.item, files: parts.len(), lines: parts.iter().map(Observed::lines).sum() };
    let key = Keys { dataset: &item.dataset }.drift_part(&item.check, item.item);
    store.put(&key, &postcard::to_stdvec(&parts).expect("summaries serialise"))?;
    Ok(output)
}

/// Adds up the summaries of rounds `0..=planned.round`, newest first, failing on any item whose
/// summary is missing; answers the summary, or `None` when the window is not yet full and
/// another round remains.
pub fn reduce(store: &dyn Store, plan: &LogPlan, planned: &DriftPlanned) -> Result<Option<Observed>, PipelineError> {
    let keys = Keys { dataset: &planned.dataset };
    let summarizer = Summarizer::new(plan)?;
    let mut running = plan.nothing_observed();
    for round in 0..=planned.round {
        for item in plan.round_items(round) {
            let key = keys.drift_part(&plan.check, item);
            let parts: Vec<Observed> = read_postcard(store, &key)?.ok_or_else(|| {
                PipelineError::corrupt(
                    &key,
                    format!("map item {item} of drift check {} wrote no summary: it failed or never ran", plan.check),
                )
            })?;
            if summarizer.fold(store, &mut running, item, parts)? {
                return Ok(Some(running));
            }
        }
    }
    Ok((planned.round + 1 >= plan.rounds()).then_some(running))
}
