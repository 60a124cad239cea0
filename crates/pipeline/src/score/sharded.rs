//! A stored file scored in shards, in the three steps the scoring state machine runs around its
//! Distributed Map.
//!
//! [`plan`] pins the production version and the batch id, checks the file's header once and cuts
//! the file by size into shards (prep's cuts: each shard scores the records that start in its
//! byte range), grouped into map items. [`score_item`] scores one item's shards, each into parts
//! at fixed keys under staging/: its scored rows, its rejects (at lines counted from the shard's
//! first record) and its inference log files, then its meta, last. [`finish`] lists the shards'
//! outputs and fails on any meta that is missing (a failed map item can come back as a success
//! with a null result), joins the parts into `scored/DATASET/NAME/` with each reject at
//! its line in the file, moves the logs into the inference log and writes `_SUCCESS` last. When a
//! cut fell inside a quoted field that holds a line break (an odd count of quotes before it), the
//! shards' parts are wrong and unused: the file is scored whole instead, with the same batch.

use jiff::Timestamp;
use mlops_core::contracts::{ScoreItem, ScorePlanned, ScoreRequest, ScoredFile, ShardItemOutput};
use mlops_core::{JsonStore, Keys, Store};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::{Batch, Counts, Header, REJECT_COLUMNS, written};
use crate::PipelineError;
use crate::stages::shards::{ShardBytes, Sizing};
use crate::stages::{MapItem, check_first_plan, named_or_stamped};

/// The parts of a shard, and of the outputs.
const SCORES: &str = "scores.csv";
const REJECTS: &str = "rejects.csv";
const META: &str = "meta.json";
const SUMMARY: &str = "summary.json";
const SUCCESS: &str = "_SUCCESS";

/// A scoring plan, written by [`plan`] and read by each later step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Plan {
    id: String,
    key: String,
    /// The outputs go to `scored/DATASET/NAME/`.
    name: String,
    size: u64,
    shard_bytes: u64,
    version: String,
    batch: String,
    /// When the plan was made: the batch's predictions are logged under this time.
    at: Timestamp,
    header: Header,
    /// The file offset where the records begin, and the line ends before it.
    body_start: u64,
    header_lines: u64,
    /// Each map item's shards.
    items: Vec<Vec<usize>>,
}

impl Plan {
    fn shards(&self) -> Vec<mlops_prep::Shard> {
        mlops_prep::cut_bytes(&self.key, self.size, self.shard_bytes)
    }
}

/// What a shard scored, written last: its presence means the shard's parts are complete.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ShardMeta {
    counts: Counts,
    /// Inference log files staged.
    logs: usize,
    /// Line ends in the shard's records, for the rejects' lines in the file.
    lines: u64,
    /// Double quotes in the shard's records: an odd count before a cut puts it inside a field.
    quotes: u64,
}

/// The plan step: pins the production version, checks the header of `request.key` (which must
/// lie under `batch/DATASET/`) and cuts the file into shards.
pub fn plan(store: &dyn Store, request: &ScoreRequest, sizing: Sizing) -> Result<ScorePlanned, PipelineError> {
    let keys = Keys { dataset: &request.dataset };
    let key = request.key.as_str();
    let name = key
        .strip_prefix(&keys.batch_prefix())
        .map(|name| name.strip_suffix(".csv").unwrap_or(name))
        .filter(|name| !name.is_empty() && !name.split('/').any(|part| part.is_empty() || part == "." || part == ".."))
        .ok_or_else(|| PipelineError::bad_input(format!("{key}: not a file under {}", keys.batch_prefix())))?;
    let size = store.size(key)?.ok_or_else(|| PipelineError::bad_input(format!("{key}: no such file")))?;
    let batch = Batch::production(store, &request.dataset)?;
    let prefix = store
        .get_range(key, 0..size.min(mlops_prep::HEAD_BYTES))?
        .ok_or_else(|| PipelineError::bad_input(format!("{key}: the file disappeared while it was read")))?;
    let skipped = if prefix.starts_with(b"\xEF\xBB\xBF") { 3 } else { 0 };
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(&prefix[skipped..]);
    // Where the header ends first: a cut-off header would be checked as the wrong columns.
    let _ = reader.byte_headers();
    let body_start = skipped + usize::try_from(reader.position().byte()).unwrap_or(usize::MAX).min(prefix.len() - skipped);
    if (prefix.len() as u64) < size && !matches!(prefix[..body_start].last(), Some(b'\n' | b'\r')) {
        return Err(PipelineError::bad_input(format!("{key}: the header does not end within the first {} bytes", mlops_prep::HEAD_BYTES)));
    }
    let header = Header::read(&mut reader, key, &batch.schema)?;
    batch.output_columns(key, &header)?;
    let shards: Vec<usize> = (0..mlops_prep::cut_bytes(key, size, sizing.shard_bytes).len()).collect();
    let plan = Plan {
        id: named_or_stamped(request.id.as_deref())?,
        key: key.to_string(),
        name: name.to_string(),
        size,
        shard_bytes: sizing.shard_bytes,
        version: batch.version.clone(),
        batch: batch.id.clone(),
        at: Timestamp::now(),
        header_lines: mlops_prep::line_ends(&prefix[..body_start]),
        body_start: body_start as u64,
        header,
        items: shards.chunks(sizing.shards_per_item.max(1)).map(<[usize]>::to_vec).collect(),
    };
    let items: Vec<MapItem> = (0..plan.items.len()).map(|item| MapItem { item }).collect();
    check_first_plan(store, &keys.score_plan(&plan.id), request.id.as_deref())?;
    store.write_json(&keys.score_plan(&plan.id), &plan)?;
    store.write_json(&keys.score_items(&plan.id), &items)?;
    tracing::info!(plan = %plan.id, %key, version = %plan.version, shards = shards.len(), items = items.len(), "scoring planned");
    Ok(ScorePlanned {
        dataset: request.dataset.clone(),
        key: plan.key,
        version: plan.version,
        items: items.len(),
        shards: shards.len(),
        items_key: keys.score_items(&plan.id),
        plan: plan.id,
        max_concurrency: sizing.max_concurrency,
    })
}

fn read_plan(store: &dyn Store, keys: Keys, plan: &str) -> Result<Plan, PipelineError> {
    let key = keys.score_plan(plan);
    store.read_json(&key)?.ok_or_else(|| PipelineError::bad_input(format!("{key}: no such scoring plan")))
}

/// The shard step: scores the shards of map item `item.item`, each into its parts.
pub fn score_item(store: &dyn Store, item: &ScoreItem) -> Result<ShardItemOutput, PipelineError> {
    let started = std::time::Instant::now();
    let keys = Keys { dataset: &item.dataset };
    let plan = read_plan(store, keys, &item.plan)?;
    let indices =
        plan.items.get(item.item).ok_or_else(|| PipelineError::bad_input(format!("scoring plan {} has no item {}", plan.id, item.item)))?;
    let batch = Batch::pinned(store, &item.dataset, &plan.version, plan.batch.clone())?;
    let shards = plan.shards();
    let mut rows = 0;
    for &index in indices {
        let shard = shards.get(index).ok_or_else(|| PipelineError::bad_input(format!("scoring plan {} has no shard {index}", plan.id)))?;
        rows += score_shard(store, keys, &plan, &batch, shard)?;
    }
    Ok(ShardItemOutput { item: item.item, shards: indices.len(), rows, seconds: started.elapsed().as_secs_f64() })
}

/// Scores the records that start in `shard` into its parts, its meta last; returns its rows.
fn score_shard(store: &dyn Store, keys: Keys, plan: &Plan, batch: &Batch, shard: &mlops_prep::Shard) -> Result<usize, PipelineError> {
    let part = |name: &str| keys.score_shard(&plan.id, shard.index, name);
    let bytes = ShardBytes::read(store, shard, plan.body_start)?;
    let records = bytes.records();
    let reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(records);
    let mut output = csv::Writer::from_writer(Vec::new());
    let mut rejects = csv::WriterBuilder::new().flexible(true).from_writer(Vec::new());
    let mut logs = 0;
    let counts =
        batch.score_records(&plan.key, &plan.header, reader.into_byte_records(), bytes.first, &mut output, &mut rejects, &mut |lines| {
            store.put(&part(&log_part(logs)), &lines)?;
            logs += 1;
            Ok(())
        })?;
    let into_bytes = |writer: csv::Writer<Vec<u8>>| writer.into_inner().map_err(|e| written(&plan.key, e.into_error().into()));
    store.put(&part(SCORES), &into_bytes(output)?)?;
    store.put(&part(REJECTS), &into_bytes(rejects)?)?;
    let meta = ShardMeta { counts, logs, lines: mlops_prep::line_ends(records), quotes: mlops_prep::quotes(records) };
    store.write_json(&part(META), &meta)?;
    Ok(counts.rows)
}

fn log_part(part: usize) -> String {
    format!("log-{part}.jsonl")
}

/// The finish step: checks that every shard's parts exist, then writes the outputs (the file
/// scored whole instead when a cut fell inside a quoted field), the summary, and `_SUCCESS` last.
pub fn finish(store: &dyn Store, planned: &ScorePlanned) -> Result<ScoredFile, PipelineError> {
    let keys = Keys { dataset: &planned.dataset };
    let plan = read_plan(store, keys, &planned.plan)?;
    let batch = Batch::pinned(store, &planned.dataset, &plan.version, plan.batch.clone())?;
    // One listing finds every shard whose meta is missing, however many shards there are.
    let written: std::collections::BTreeSet<String> = store.list(&keys.score_shards_prefix(&plan.id))?.into_iter().collect();
    let shards = plan.shards();
    if let Some(missing) = shards.iter().find(|shard| !written.contains(&keys.score_shard(&plan.id, shard.index, META))) {
        let key = keys.score_shard(&plan.id, missing.index, META);
        let message = format!("shard {} of {} has no output: its map item failed or has not run", missing.index, plan.key);
        return Err(PipelineError::corrupt(&key, message));
    }
    let metas = shards
        .par_iter()
        .map(|shard| {
            let key = keys.score_shard(&plan.id, shard.index, META);
            store.read_json::<ShardMeta>(&key)?.ok_or_else(|| PipelineError::corrupt(&key, "listed, then gone"))
        })
        .collect::<Result<Vec<ShardMeta>, PipelineError>>()?;
    let (scores, rejects) = (keys.scored(&plan.name, SCORES), keys.scored(&plan.name, REJECTS));
    let quotes: Vec<u64> = metas.iter().map(|meta| meta.quotes).collect();
    let (summary, shards) = if mlops_prep::cuts_outside_quotes(&quotes) {
        (join(store, keys, &plan, &batch, &metas)?, metas.len())
    } else {
        tracing::info!(key = %plan.key, "a quoted field spans a shard boundary: scoring the file whole");
        let bytes = store
            .get(&plan.key)?
            .ok_or_else(|| PipelineError::bad_input(format!("{}: the file disappeared while it was read", plan.key)))?;
        let (mut scored, mut rejected) = (Vec::new(), Vec::new());
        let summary = batch.score_stream(store, &plan.key, bytes.as_slice(), &mut scored, &mut rejected, plan.at)?;
        store.put(&scores, &scored)?;
        store.put(&rejects, &rejected)?;
        (summary, 1)
    };
    let scored = ScoredFile { summary, key: plan.key.clone(), scores, rejects, shards };
    store.write_json(&keys.scored(&plan.name, SUMMARY), &scored)?;
    store.put(&keys.scored(&plan.name, SUCCESS), b"")?;
    tracing::info!(key = %plan.key, rows = scored.summary.rows, rejected = scored.summary.rejected, "scored");
    Ok(scored)
}

/// Joins the shards' parts into the outputs and moves their logs into the inference log, each
/// file under the plan's time, so that a retried finish writes the same keys.
fn join(
    store: &dyn Store,
    keys: Keys,
    plan: &Plan,
    batch: &Batch,
    metas: &[ShardMeta],
) -> Result<mlops_core::contracts::ScoreSummary, PipelineError> {
    let part = |shard: usize, name: &str| -> Result<Vec<u8>, PipelineError> {
        let key = keys.score_shard(&plan.id, shard, name);
        store.get(&key)?.ok_or_else(|| PipelineError::corrupt(&key, "missing although its shard's meta is written"))
    };
    let mut scores = csv::Writer::from_writer(Vec::new());
    scores.write_record(batch.output_columns(&plan.key, &plan.header)?).map_err(|e| written(&plan.key, e))?;
    let mut scores = scores.into_inner().map_err(|e| written(&plan.key, e.into_error().into()))?;
    let mut rejects = csv::WriterBuilder::new().flexible(true).from_writer(Vec::new());
    rejects
        .write_record(REJECT_COLUMNS.iter().copied().chain(plan.header.names.iter().map(String::as_str)))
        .map_err(|e| written(&plan.key, e))?;
    let (mut counts, mut lines_before) = (Counts::default(), plan.header_lines);
    for (shard, meta) in metas.iter().enumerate() {
        scores.extend(part(shard, SCORES)?);
        if meta.counts.rejected > 0 {
            let key = keys.score_shard(&plan.id, shard, REJECTS);
            let bytes = part(shard, REJECTS)?;
            for record in csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(bytes.as_slice()).byte_records() {
                let record = record.map_err(|e| PipelineError::corrupt(&key, e))?;
                let line = std::str::from_utf8(record.get(0).unwrap_or_default())
                    .ok()
                    .and_then(|line| line.parse::<u64>().ok())
                    .ok_or_else(|| PipelineError::corrupt(&key, "a reject without its line"))?;
                let line = (lines_before + line).to_string();
                rejects.write_record(std::iter::once(line.as_bytes()).chain(record.iter().skip(1))).map_err(|e| written(&plan.key, e))?;
            }
        }
        counts += meta.counts;
        lines_before += meta.lines;
    }
    store.put(&keys.scored(&plan.name, SCORES), &scores)?;
    store.put(&keys.scored(&plan.name, REJECTS), &rejects.into_inner().map_err(|e| written(&plan.key, e.into_error().into()))?)?;
    let logs: Vec<(usize, usize)> =
        metas.iter().enumerate().flat_map(|(shard, meta)| (0..meta.logs).map(move |log| (shard, log))).collect();
    let date = plan.at.strftime("%Y-%m-%d").to_string();
    logs.par_iter().try_for_each(|&(shard, log)| {
        let lines = part(shard, &log_part(log))?;
        Ok::<_, PipelineError>(store.put(&keys.inference(&date, &batch.log_name(plan.at, Some(shard), log)), &lines)?)
    })?;
    Ok(batch.summary(counts, logs.len()))
}

#[cfg(test)]
mod tests;
