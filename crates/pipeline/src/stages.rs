//! The stages of a run. Each reads its input contract and the store, writes its outputs to the
//! store, and returns its output contract; `mlops run` and the Lambda functions call these same
//! functions.

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use mlops_core::Metrics;
use mlops_core::canary::Mode;
use mlops_core::{Action, Event, Registry, decide, over_budget};
use mlops_core::{BoostingCheckpoint, Resumable, boost_candidate, finish_boosting, is_resumable, prepare_boosting};
use mlops_core::{CONDITIONAL_ATTEMPTS, JsonStore};
use mlops_core::{CoreError, Trained, TrainingSet, evaluate_on_holdout, train_candidate};
use mlops_core::{Encoding, FittedFeatures};
use mlops_core::{HashingWriter, sha256_hex};
use mlops_core::{Keys, ModelSpec, Spec, Store};
use mlops_core::{ModelArtifact, ModelCard};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::PipelineError;
use mlops_core::contracts::*;
use mlops_prep::Table;
use rayon::prelude::*;
use shards::{Holding, Plan, ShardAt, ShardOutput, Sizing};

/// Progress of a run, for a person watching.
#[derive(Debug, Clone)]
pub enum Progress<'a> {
    Stage(&'a str),
    CandidateStarted { name: &'a str, index: usize, total: usize },
    CandidateFinished(&'a CandidateSummary),
}

/// An observer that ignores progress.
pub fn quiet(_: Progress) {}

fn now() -> String {
    jiff::Timestamp::now().to_string()
}

/// A sortable, unique id: `20260127T101500Z-3fa2c1`.
pub(crate) fn stamped_id() -> String {
    let stamp = jiff::Timestamp::now().strftime("%Y%m%dT%H%M%SZ").to_string();
    format!("{stamp}-{}", &uuid::Uuid::new_v4().simple().to_string()[..6])
}

/// The id a request named, checked to be a stamp like [`stamped_id`]'s (a UTC time, `-`, then 1
/// to 16 lowercase letters or digits: it sorts with the others and is safe in a key), or else a
/// fresh stamp.
pub fn named_or_stamped(named: Option<&str>) -> Result<String, PipelineError> {
    let Some(id) = named else { return Ok(stamped_id()) };
    let stamp_ok = id.get(..16).is_some_and(|stamp| jiff::civil::DateTime::strptime("%Y%m%dT%H%M%SZ", stamp).is_ok());
    let suffix = id.get(16..).and_then(|rest| rest.strip_prefix('-')).unwrap_or_default();
    let suffix_ok = (1..=16).contains(&suffix.len()) && suffix.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if stamp_ok && suffix_ok {
        Ok(id.to_string())
    } else {
        Err(PipelineError::bad_input(format!(
            "id '{id}': a named run is a UTC stamp, '-' and 1 to 16 lowercase letters or digits, as 20261204T190703Z-sample"
        )))
    }
}

/// Refuses a named run whose plan (`plan_key`) is already in the store: a named run runs once
/// per store, so it never picks up the outputs of an earlier one.
pub(crate) fn check_first_plan(store: &dyn Store, plan_key: &str, named: Option<&str>) -> Result<(), PipelineError> {
    match named {
        Some(id) if store.etag(plan_key)?.is_some() => Err(PipelineError::bad_input(format!(
            "id '{id}': {plan_key} exists, so this named run has run in this store before; name another, or leave the id out"
        ))),
        _ => Ok(()),
    }
}

/// Which raw files prep has handled, by key.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Manifest {
    files: BTreeMap<String, ManifestEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ManifestEntry {
    /// The raw file's [`mlops_core::content_hash`] (entries written before it was chunked hold
    /// a plain SHA-256, under the old name).
    #[serde(alias = "sha256")]
    content_hash: String,
    status: FileStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    batch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    at: String,
}

fn read_manifest(store: &dyn Store, key: &str) -> Result<Manifest, PipelineError> {
    Ok(store.read_json(key)?.unwrap_or_default())
}

/// Adds entries to the manifest with a conditional write, merging with concurrent writers.
fn record_in_manifest(store: &dyn Store, key: &str, entries: &BTreeMap<String, ManifestEntry>) -> Result<(), PipelineError> {
    store.update_json(key, |manifest: &mut Manifest| manifest.files.extend(entries.clone()))?;
    Ok(())
}

/// Raw files prep has not handled yet (by key).
pub fn unprocessed(store: &dyn Store, dataset: &str) -> Result<Vec<String>, PipelineError> {
    let keys = Keys { dataset };
    let manifest = read_manifest(store, &keys.prep_manifest())?;
    Ok(store.list(&keys.raw_prefix())?.into_iter().filter(|key| !manifest.files.contains_key(key)).collect())
}

/// Prep in one process: plans the raw files not yet processed, reads their shards on a thread
/// pool, merges them ([`prep_merge`]'s rules), removes the duplicates of the rows
/// ([`prep_bucket`]'s, in one bucket: every row is in memory anyway) and closes the batch
/// ([`prep_finish`]'s): bad rows go to quarantine, and one processed batch is written, closed by
/// a `_SUCCESS` marker. Raw files are only read.
pub fn prep(store: &dyn Store, spec: &Spec, request: &RunRequest) -> Result<PrepOutput, PipelineError> {
    let started = Instant::now();
    let keys = Keys { dataset: &spec.name };
    let plan = plan_prep(store, spec, request, Sizing::in_one_process())?;
    let outputs = plan.shards().into_par_iter().map(|at| shards::read_shard(store, spec, &plan, at)).collect::<Result<Vec<_>, _>>()?;
    let (merged, held) = merge_shards(store, spec, &plan, outputs, Holding::Memory)?;
    let mut by_bucket: Vec<Vec<Table>> = (0..plan.buckets).map(|_| Vec::with_capacity(held.len())).collect();
    for buckets in held {
        for (bucket, rows) in buckets.into_iter().enumerate() {
            by_bucket[bucket].push(rows);
        }
    }
    let parts = if merged.admitted.is_empty() {
        Vec::new()
    } else {
        by_bucket
            .into_par_iter()
            .enumerate()
            .map(|(bucket, pieces)| write_bucket(store, keys, &merged.batch, bucket, pieces))
            .collect::<Result<Vec<_>, _>>()?
    };
    finish_batch(store, spec, &plan.request, merged, parts, started)
}

/// Prep's plan step: lists the raw files to read, cuts them into shards and writes the plan
/// with the JSON array of its map items, which a Distributed Map reads.
pub fn prep_plan(store: &dyn Store, spec: &Spec, request: &RunRequest, sizing: Sizing) -> Result<PrepPlanned, PipelineError> {
    let keys = Keys { dataset: &spec.name };
    let plan = plan_prep(store, spec, request, sizing)?;
    let items: Vec<MapItem> = (0..plan.items.len()).map(|item| MapItem { item }).collect();
    let shards = plan.items.iter().map(Vec::len).sum();
    check_first_plan(store, &keys.prep_plan(&plan.id), request.id.as_deref())?;
    store.write_json(&keys.prep_plan(&plan.id), &plan)?;
    store.write_json(&keys.prep_items(&plan.id), &items)?;
    tracing::info!(plan = %plan.id, files = plan.files.len(), shards, items = items.len(), buckets = plan.buckets, "planned");
    Ok(PrepPlanned {
        dataset: spec.name.clone(),
        trigger: request.trigger,
        items: items.len(),
        shards,
        items_key: keys.prep_items(&plan.id),
        plan: plan.id,
        max_concurrency: sizing.max_concurrency,
    })
}

/// One map item as a Distributed Map reads it (prep's shards, drift's log files); what it
/// names stays in the plan.
#[derive(Serialize)]
pub(crate) struct MapItem {
    pub(crate) item: usize,
}

/// One bucket as the bucket map reads it.
#[derive(Serialize)]
struct BucketEntry {
    bucket: usize,
}

/// Prep's shard step: reads the shards of one map item and writes them to fixed keys: each
/// bucket's rows of all of them as one file, and each shard's meta.
pub fn prep_shard(store: &dyn Store, spec: &Spec, item: &ShardItem) -> Result<ShardItemOutput, PipelineError> {
    let started = Instant::now();
    let keys = Keys { dataset: &spec.name };
    let plan = read_plan(store, keys, &item.plan)?;
    let shard_list = plan
        .items
        .get(item.item)
        .ok_or_else(|| PipelineError::bad_input(format!("plan {} has {} items, not item {}", plan.id, plan.items.len(), item.item)))?;
    let outputs = shard_list.par_iter().map(|&at| shards::read_shard(store, spec, &plan, at)).collect::<Result<Vec<_>, _>>()?;
    let rows = shards::save_item(store, keys, &plan, item.item, outputs)?;
    Ok(ShardItemOutput { item: item.item, shards: shard_list.len(), rows, seconds: started.elapsed().as_secs_f64() })
}

/// Prep's merge step: reads back every shard's meta and quarantined rows (failing on any
/// shard without output) and decides what the batch holds: each file is put back together
/// from its shards; a file already processed (by content hash) is skipped; bad rows are
/// staged for quarantine. Writes its decision and the JSON array of the plan's buckets.
pub fn prep_merge(store: &dyn Store, spec: &Spec, planned: &PrepPlanned) -> Result<PrepMerged, PipelineError> {
    let keys = Keys { dataset: &spec.name };
    let plan = read_plan(store, keys, &planned.plan)?;
    let outputs = plan.shards().into_par_iter().map(|at| shards::load(store, keys, &plan, at)).collect::<Result<Vec<_>, _>>()?;
    let (merged, _) = merge_shards(store, spec, &plan, outputs, Holding::Store(keys))?;
    let buckets = if merged.admitted.is_empty() { 0 } else { plan.buckets };
    let entries: Vec<BucketEntry> = (0..buckets).map(|bucket| BucketEntry { bucket }).collect();
    store.write_json(&keys.prep_merged(&plan.id), &merged)?;
    store.write_json(&keys.prep_buckets(&plan.id), &entries)?;
    Ok(PrepMerged {
        dataset: spec.name.clone(),
        trigger: planned.trigger,
        plan: plan.id.clone(),
        batch: merged.batch,
        buckets,
        items_key: keys.prep_buckets(&plan.id),
        max_concurrency: planned.max_concurrency,
    })
}

/// Prep's bucket step: reads one bucket's rows from every shard the merge admitted, removes
/// the rows that repeat an earlier one and writes the bucket as a part of the batch.
pub fn prep_bucket(store: &dyn Store, spec: &Spec, item: &BucketItem) -> Result<BatchPart, PipelineError> {
    let keys = Keys { dataset: &spec.name };
    let plan = read_plan(store, keys, &item.plan)?;
    if item.bucket >= plan.buckets {
        return Err(PipelineError::bad_input(format!("plan {} has {} buckets, not bucket {}", plan.id, plan.buckets, item.bucket)));
    }
    let merged = read_merged(store, keys, &plan.id)?;
    let pieces = shards::load_bucket(store, keys, &plan, &merged.admitted, item.bucket)?;
    let part = write_bucket(store, keys, &merged.batch, item.bucket, pieces)?;
    store.write_json(&keys.prep_bucket_part(&plan.id, item.bucket), &part)?;
    Ok(part)
}

/// Prep's finish step: checks that every bucket wrote its part (a failed map item can come
/// back as a success with a null result) and closes the batch with its `_SUCCESS` marker.
pub fn prep_finish(store: &dyn Store, spec: &Spec, merged: &PrepMerged) -> Result<PrepOutput, PipelineError> {
    let started = Instant::now();
    let keys = Keys { dataset: &spec.name };
    let plan = read_plan(store, keys, &merged.plan)?;
    let decided = read_merged(store, keys, &plan.id)?;
    let parts = (0..merged.buckets)
        .map(|bucket| {
            let key = keys.prep_bucket_part(&plan.id, bucket);
            store.read_json(&key)?.ok_or_else(|| {
                PipelineError::corrupt(&key, format!("bucket {bucket} of plan {} has no part: its map item failed or has not run", plan.id))
            })
        })
        .collect::<Result<Vec<BatchPart>, _>>()?;
    finish_batch(store, spec, &plan.request, decided, parts, started)
}

fn read_plan(store: &dyn Store, keys: Keys, plan: &str) -> Result<Plan, PipelineError> {
    let key = keys.prep_plan(plan);
    store.read_json(&key)?.ok_or_else(|| PipelineError::bad_input(format!("{key}: no such prep plan")))
}

fn read_merged(store: &dyn Store, keys: Keys, plan: &str) -> Result<Merged, PipelineError> {
    let key = keys.prep_merged(plan);
    store.read_json(&key)?.ok_or_else(|| PipelineError::bad_input(format!("{key}: plan {plan} has not been merged")))
}

/// The plan of a prep: the raw files the request names, or else every raw file the manifest
/// does not hold (processed or rejected), so a run's cost grows with what is new.
fn plan_prep(store: &dyn Store, spec: &Spec, request: &RunRequest, sizing: Sizing) -> Result<Plan, PipelineError> {
    let keys = Keys { dataset: &spec.name };
    let raw_prefix = keys.raw_prefix();
    let files = if request.keys.is_empty() { unprocessed(store, &spec.name)? } else { request.keys.clone() };
    Plan::new(store, &raw_prefix, named_or_stamped(request.id.as_deref())?, request.clone(), files, sizing)
}

/// What prep's merge decided: the batch, what became of each file, and the shards whose valid
/// rows make the batch.
#[derive(Serialize, Deserialize)]
struct Merged {
    plan: String,
    batch: String,
    files: Vec<FileOutcome>,
    entries: BTreeMap<String, ManifestEntry>,
    /// The shards whose valid rows make the batch, in plan order (a file read whole again is
    /// one shard, numbered past its planned ones).
    admitted: Vec<ShardAt>,
}

/// Puts each file of `plan` back together from its shards' `outputs` (in plan order), decides
/// what becomes of it and stages the quarantined rows. Returns the decision, and the bucketed
/// rows of each admitted shard when they are held in memory.
fn merge_shards(
    store: &dyn Store,
    spec: &Spec,
    plan: &Plan,
    outputs: Vec<ShardOutput>,
    holding: Holding,
) -> Result<(Merged, Vec<Vec<Table>>), PipelineError> {
    let keys = Keys { dataset: &spec.name };
    let manifest = read_manifest(store, &keys.prep_manifest())?;
    // Keys named by an upload are read, and skipped by their content hash if it is known.
    let known_hashes: BTreeMap<&str, &str> = manifest.files.iter().map(|(k, e)| (e.content_hash.as_str(), k.as_str())).collect();
    let mut outcomes = Vec::new();
    let mut entries = BTreeMap::new();
    let (mut admitted, mut held) = (Vec::new(), Vec::new());
    let mut quarantine_tables = Vec::new();
    let mut seen_now: BTreeMap<String, String> = BTreeMap::new();
    let mut by_file: Vec<Vec<ShardOutput>> = plan.files.iter().map(|_| Vec::new()).collect();
    for output in outputs {
        by_file[output.meta.file].push(output);
    }
    for (file, outputs) in by_file.into_iter().enumerate() {
        let key = plan.files[file].key.clone();
        let shards::FileRead { content_hash, shards: read_in, rows } = shards::assemble(store, spec, plan, file, outputs, holding)?;
        tracing::debug!(file = %key, bytes = plan.files[file].size, shards = read_in, "read");
        if let Some(first) =
            known_hashes.get(content_hash.as_str()).map(ToString::to_string).or_else(|| seen_now.get(&content_hash).cloned())
        {
            let reason = if first == key { "already processed".to_string() } else { format!("same content as {first}, already processed") };
            outcomes.push(FileOutcome { key, status: FileStatus::Skipped, rows: 0, quarantined: 0, reason: Some(reason) });
            continue;
        }
        seen_now.insert(content_hash.clone(), key.clone());
        let entry = |status: FileStatus, reason: Option<String>| ManifestEntry { content_hash, status, batch: None, reason, at: now() };
        match rows {
            Ok(file) if file.valid == 0 => {
                let first = file.quarantined.column(mlops_prep::REASON_COLUMN).ok().and_then(|c| c.str().ok()?.get(0).map(str::to_string));
                let reason = format!("no valid row: all {} rows quarantined (first: {})", file.rows, first.unwrap_or_default());
                tracing::warn!(file = %key, "rejected: {reason}");
                outcomes.push(FileOutcome {
                    key: key.clone(),
                    status: FileStatus::Rejected,
                    rows: file.rows,
                    quarantined: file.rows,
                    reason: Some(reason.clone()),
                });
                entries.insert(key, entry(FileStatus::Rejected, Some(reason)));
                quarantine_tables.push(file.quarantined);
            }
            Ok(file) => {
                for note in &file.notes {
                    tracing::warn!(file = %key, "{note}");
                }
                outcomes.push(FileOutcome {
                    key: key.clone(),
                    status: FileStatus::Processed,
                    rows: file.rows,
                    quarantined: file.quarantined.height(),
                    reason: (!file.notes.is_empty()).then(|| file.notes.join("; ")),
                });
                entries.insert(key, entry(FileStatus::Processed, None));
                if file.quarantined.height() > 0 {
                    quarantine_tables.push(file.quarantined);
                }
                for (at, buckets) in file.shards {
                    admitted.push(at);
                    held.push(buckets);
                }
            }
            Err(rejection) => {
                tracing::warn!(file = %key, "rejected: {}", rejection.reason);
                outcomes.push(FileOutcome {
                    key: key.clone(),
                    status: FileStatus::Rejected,
                    rows: 0,
                    quarantined: 0,
                    reason: Some(rejection.reason.clone()),
                });
                entries.insert(key, entry(FileStatus::Rejected, Some(rejection.reason)));
            }
        }
    }
    // Staged until the batch is closed, so that a failed prep leaves no quarantine behind.
    if !quarantine_tables.is_empty() {
        let mut rows = mlops_prep::stack(quarantine_tables)?;
        store.put(&keys.prep_quarantine(&plan.id), &mlops_prep::to_csv(&mut rows)?)?;
    }
    let batch = named_or_stamped(plan.request.id.as_deref())?;
    Ok((Merged { plan: plan.id.clone(), batch, files: outcomes, entries, admitted }, held))
}

/// Removes the rows of one bucket (`pieces`: its rows in each admitted shard, in order) that
/// repeat an earlier one and writes the bucket as part `bucket` of `batch`.
fn write_bucket(store: &dyn Store, keys: Keys, batch: &str, bucket: usize, pieces: Vec<Table>) -> Result<BatchPart, PipelineError> {
    let (mut rows, duplicates) = mlops_prep::merge(pieces)?;
    let key = keys.processed_part(batch, bucket);
    // Written as it is encoded (to a local file a row group at a time): the part's bytes are
    // not held beside its rows. An encoding failure keeps its own error.
    let (mut sha256, mut encoding) = (None, None);
    store
        .put_written(&key, &mut |out| {
            let mut out = HashingWriter::new(out);
            if let Err(error) = mlops_prep::write_parquet(&mut rows, &mut out) {
                return Err(std::io::Error::other(encoding.insert(error).to_string()));
            }
            sha256 = Some(out.sha256_hex());
            Ok(())
        })
        .map_err(|error| encoding.take().map_or_else(|| PipelineError::from(error), PipelineError::from))?;
    let sha256 = sha256.ok_or_else(|| PipelineError::corrupt(&key, "the store wrote the part without encoding it"))?;
    Ok(BatchPart { bucket, key, rows: rows.height(), duplicates, sha256 })
}

/// Closes the batch of a prep (`parts`: its buckets' parts) with its `_SUCCESS` marker, writes
/// its quarantined rows and the report of rejected files, and records every file in the
/// manifest.
fn finish_batch(
    store: &dyn Store,
    spec: &Spec,
    request: &RunRequest,
    merged: Merged,
    parts: Vec<BatchPart>,
    started: Instant,
) -> Result<PrepOutput, PipelineError> {
    let keys = Keys { dataset: &spec.name };
    let Merged { plan, batch, files, mut entries, .. } = merged;
    // Every row read is counted in its file's outcome, and so is every row quarantined.
    let rows_in: usize = files.iter().map(|f| f.rows).sum();
    let quarantined: usize = files.iter().map(|f| f.quarantined).sum();
    if quarantined > 0 {
        let staged = keys.prep_quarantine(&plan);
        let rows = store.get(&staged)?.ok_or_else(|| PipelineError::corrupt(&staged, "the plan's quarantined rows are missing"))?;
        store.put(&keys.quarantine_rows(&batch), &rows)?;
    }
    let mut output = PrepOutput {
        dataset: spec.name.clone(),
        trigger: request.trigger,
        id: request.id.clone(),
        batch: None,
        files,
        rows_in,
        rows_out: parts.iter().map(|p| p.rows).sum(),
        quarantined,
        duplicates: parts.iter().map(|p| p.duplicates).sum(),
        seconds: 0.0,
    };
    if !parts.is_empty() {
        let marker = SuccessMarker {
            batch: batch.clone(),
            files: output.files.clone(),
            rows_in,
            rows_out: output.rows_out,
            quarantined,
            duplicates: output.duplicates,
            parts,
            spec_hash: spec.hash(),
            created_at: now(),
        };
        store.write_json(&keys.processed_success(&batch), &marker)?;
        output.batch = Some(batch.clone());
    }
    let rejected: Vec<&FileOutcome> = output.files.iter().filter(|f| f.status == FileStatus::Rejected).collect();
    if !rejected.is_empty() {
        store.write_json(&keys.quarantine_report(&batch), &rejected)?;
    }
    for entry in entries.values_mut() {
        if entry.status == FileStatus::Processed {
            entry.batch.clone_from(&output.batch);
        }
    }
    if !entries.is_empty() {
        record_in_manifest(store, &keys.prep_manifest(), &entries)?;
    }
    if output.batch.is_none() && !rejected.is_empty() {
        let reasons: Vec<String> = rejected.iter().map(|f| format!("{}: {}", f.key, f.reason.as_deref().unwrap_or_default())).collect();
        return Err(PipelineError::bad_input(format!("every new file was rejected: {}", reasons.join("; "))));
    }
    output.seconds = started.elapsed().as_secs_f64();
    Ok(output)
}

/// The run's data by reference: the processed batches it merges and their hash, with the
/// features fitted on its training rows. Train and register rebuild the same training set from
/// the batches (immutable once written) rather than passing every row along.
#[derive(Serialize, Deserialize)]
struct FeatureState {
    batches: Vec<String>,
    data_hash: String,
    features: FittedFeatures,
}

fn read_feature_state(store: &dyn Store, key: &str) -> Result<FeatureState, PipelineError> {
    read_postcard(store, key)?.ok_or_else(|| PipelineError::bad_input(format!("{key}: the features of this run do not exist")))
}

/// A value stored as postcard bytes, if the key exists.
pub(crate) fn read_postcard<T: DeserializeOwned>(store: &dyn Store, key: &str) -> Result<Option<T>, PipelineError> {
    store.get(key)?.map(|bytes| postcard::from_bytes(&bytes).map_err(|e| PipelineError::corrupt(key, e))).transpose()
}

/// The processed batches merged (duplicates across batches removed) into a training set; with
/// the number of duplicates removed.
fn training_set(store: &dyn Store, spec: &Spec, batches: &[String]) -> Result<(TrainingSet, usize), PipelineError> {
    let keys = Keys { dataset: &spec.name };
    let tables = batches.iter().map(|batch| read_batch(store, keys, batch)).collect::<Result<Vec<_>, _>>()?;
    // Prep removed the duplicates within each batch; only several batches can share rows.
    let (merged, duplicates) = match <[_; 1]>::try_from(tables) {
        Ok([table]) => (table, 0),
        Err(tables) => mlops_prep::merge(tables)?,
    };
    let frame = mlops_prep::to_frame(merged, spec)?;
    Ok((TrainingSet::new(spec, frame)?, duplicates))
}

/// The rows of processed batch `batch`, in the batch's order: its parts as its `_SUCCESS`
/// marker lists them (a batch written before parts is one `data.parquet`).
fn read_batch(store: &dyn Store, keys: Keys, batch: &str) -> Result<Table, PipelineError> {
    let marker_key = keys.processed_success(batch);
    let marker: SuccessMarker =
        store.read_json(&marker_key)?.ok_or_else(|| PipelineError::corrupt(&marker_key, "the batch's _SUCCESS marker disappeared"))?;
    let parts: Vec<String> = if marker.parts.is_empty() {
        vec![format!("{}{batch}/data.parquet", keys.processed_prefix())]
    } else {
        marker.parts.into_iter().map(|part| part.key).collect()
    };
    let tables = parts
        .par_iter()
        .map(|key| {
            let bytes = store.get(key)?.ok_or_else(|| PipelineError::corrupt(key, "missing although its batch has _SUCCESS"))?;
            Ok(mlops_prep::read_parquet(bytes, key)?)
        })
        .collect::<Result<Vec<_>, PipelineError>>()?;
    Ok(mlops_prep::in_order(tables)?)
}

/// The run's training set: `held` when the caller holds it, else rebuilt once into `rebuilt`.
fn training_set_of<'s>(
    store: &dyn Store,
    spec: &Spec,
    state: &FeatureState,
    held: Option<&'s TrainingSet>,
    rebuilt: &'s mut Option<TrainingSet>,
) -> Result<&'s TrainingSet, PipelineError> {
    match (held, rebuilt) {
        (Some(set), _) => Ok(set),
        (None, Some(set)) => Ok(set),
        (None, rebuilt) => Ok(rebuilt.insert(rebuild_training_set(store, spec, state)?)),
    }
}

/// The training set of a run, rebuilt from its batches and checked against its hash.
fn rebuild_training_set(store: &dyn Store, spec: &Spec, state: &FeatureState) -> Result<TrainingSet, PipelineError> {
    let (set, _) = training_set(store, spec, &state.batches)?;
    if set.data_hash != state.data_hash {
        return Err(PipelineError::corrupt(
            &state.batches.join(", "),
            format!("the processed batches no longer hash to {} (now {})", state.data_hash, set.data_hash),
        ));
    }
    Ok(set)
}

/// Features: merges every processed batch (duplicates across batches removed), splits it and
/// fits the features on the training rows.
pub fn features(store: &dyn Store, spec: &Spec, prep: PrepOutput) -> Result<FeaturesOutput, PipelineError> {
    Ok(featurise(store, spec, prep, false)?.0)
}

/// [`features`], and with `keep` the run's state and training set too, for the stages after it
/// in one process.
fn featurise(
    store: &dyn Store,
    spec: &Spec,
    prep: PrepOutput,
    keep: bool,
) -> Result<(FeaturesOutput, Option<(FeatureState, TrainingSet)>), PipelineError> {
    let started = Instant::now();
    let started_at = now();
    let keys = Keys { dataset: &spec.name };
    let prefix = keys.processed_prefix();
    let batches: Vec<String> = store
        .list(&prefix)?
        .into_iter()
        .filter_map(|key| key.strip_prefix(&prefix)?.strip_suffix("/_SUCCESS").map(str::to_string))
        .collect();
    if batches.is_empty() {
        return Err(PipelineError::bad_input(format!(
            "no processed data for '{}': put CSV files under {} first",
            spec.name,
            keys.raw_prefix()
        )));
    }
    let (set, duplicates) = training_set(store, spec, &batches)?;
    let (data_hash, rows, rows_train, rows_holdout) = (set.data_hash.clone(), set.y.len(), set.split.train.len(), set.split.holdout.len());
    // A stage that hands the set on keeps it whole; alone, it frees the rows as it fits.
    let (features, kept) = if keep { (set.fit_features(spec)?, Some(set)) } else { (set.into_features(spec)?, None) };
    let run_id = named_or_stamped(prep.id.as_deref())?;
    let features_key = keys.features(&run_id);
    let output = FeaturesOutput {
        dataset: spec.name.clone(),
        trigger: prep.trigger,
        run_id,
        started_at,
        features_key: features_key.clone(),
        data_hash: data_hash.clone(),
        batches: batches.len(),
        rows,
        rows_train,
        rows_holdout,
        duplicates,
        features: features.names(Encoding::Ordinal),
        candidate_names: spec.models.keys().cloned().collect(),
        prep: Some(prep),
        seconds: started.elapsed().as_secs_f64(),
    };
    let state = FeatureState { batches, data_hash, features };
    store.put(&features_key, &postcard::to_stdvec(&state).expect("feature state serialises"))?;
    Ok((output, kept.map(|set| (state, set))))
}

/// Train: fits and evaluates every candidate on the run's split; a failing candidate is
/// reported and the others go on.
pub fn train(store: &dyn Store, spec: &Spec, input: FeaturesOutput, progress: &dyn Fn(Progress)) -> Result<TrainOutput, PipelineError> {
    let state = read_feature_state(store, &input.features_key)?;
    let set = rebuild_training_set(store, spec, &state)?;
    train_on(store, spec, input, &state, &set, progress)
}

/// [`train`] on the run's training set, rebuilt or held.
fn train_on(
    store: &dyn Store,
    spec: &Spec,
    input: FeaturesOutput,
    state: &FeatureState,
    set: &TrainingSet,
    progress: &dyn Fn(Progress),
) -> Result<TrainOutput, PipelineError> {
    let started = Instant::now();
    let mut outcomes = Vec::with_capacity(spec.models.len());
    let budget = Duration::from_secs_f64(spec.training.budget_seconds);
    let fitting = Instant::now();
    for (index, name) in spec.models.keys().enumerate() {
        progress(Progress::CandidateStarted { name, index, total: spec.models.len() });
        // Each candidate may use what is left of the budget over the candidates left.
        let share = budget.saturating_sub(fitting.elapsed()).as_secs_f64() / (spec.models.len() - index) as f64;
        let candidate = Candidate { name, budget_seconds: share, resume: None, rounds_per_call: None };
        let outcome = fit_candidate(store, spec, &input, state, Some(set), candidate)?;
        if let CandidateOutcome::Trained(summary) = &outcome {
            progress(Progress::CandidateFinished(summary));
        }
        outcomes.push(outcome);
    }
    best_of(spec, input, outcomes, started)
}

/// Train's candidate step: fits and evaluates one candidate with the whole time budget (the
/// candidates run side by side), and writes its outcome to the run's fixed key for it. With
/// `rounds_per_call`, a gradient-boosting candidate stops after that many rounds, saves a
/// checkpoint and answers [`CandidateOutcome::Paused`]; called again with that as `resume`, it
/// carries on, ending in the model one uninterrupted fit gives.
pub fn train_candidate_step(
    store: &dyn Store,
    spec: &Spec,
    input: &FeaturesOutput,
    name: &str,
    resume: Option<&CandidatePaused>,
    rounds_per_call: Option<NonZeroUsize>,
) -> Result<CandidateOutcome, PipelineError> {
    let state = read_feature_state(store, &input.features_key)?;
    let candidate = Candidate { name, budget_seconds: spec.training.budget_seconds, resume, rounds_per_call };
    fit_candidate(store, spec, input, &state, None, candidate)
}

/// Train's collect step: reads every candidate's outcome, failing on any without one (its Map
/// iteration failed or never ran), and picks the best.
pub fn train_collect(store: &dyn Store, spec: &Spec, input: FeaturesOutput) -> Result<TrainOutput, PipelineError> {
    let started = Instant::now();
    let keys = Keys { dataset: &spec.name };
    let outcomes = spec
        .models
        .keys()
        .map(|name| {
            let key = keys.candidate_outcome(&input.run_id, name);
            store.read_json(&key)?.ok_or_else(|| {
                PipelineError::bad_input(format!("{key}: candidate '{name}' has no outcome: its Map iteration failed or has not run"))
            })
        })
        .collect::<Result<Vec<CandidateOutcome>, _>>()?;
    best_of(spec, input, outcomes, started)
}

/// One candidate's fit: its name, time budget, and where a fit over several calls stands.
struct Candidate<'a> {
    name: &'a str,
    budget_seconds: f64,
    resume: Option<&'a CandidatePaused>,
    rounds_per_call: Option<NonZeroUsize>,
}

impl Candidate<'_> {
    /// The fit's time limit in seconds: its budget, however little is left of it.
    fn max_seconds(&self) -> f64 {
        self.budget_seconds.max(0.001)
    }
}

/// What one call did with a candidate's fit.
enum Fit {
    /// Trained, or failed: either way the candidate's outcome.
    Finished(Box<Result<Trained, CoreError>>),
    Paused(CandidatePaused),
}

/// Fits and evaluates a candidate within its budget on the run's training set (`held`, else
/// rebuilt when needed), stores its artifact and its outcome; a candidate that cannot be
/// trained is an outcome too, and the others go on. A paused fit stores no outcome.
fn fit_candidate(
    store: &dyn Store,
    spec: &Spec,
    input: &FeaturesOutput,
    state: &FeatureState,
    held: Option<&TrainingSet>,
    candidate: Candidate,
) -> Result<CandidateOutcome, PipelineError> {
    let keys = Keys { dataset: &spec.name };
    let name = candidate.name;
    let model = spec.models.get(name).ok_or_else(|| PipelineError::bad_input(format!("the spec has no candidate '{name}'")))?;
    let mut rebuilt = None;
    let in_pieces = candidate.resume.is_some() || (candidate.rounds_per_call.is_some() && is_resumable(model));
    let fit = if in_pieces {
        boost_in_pieces(store, spec, input, state, held, model, &candidate)?
    } else {
        let set = training_set_of(store, spec, state, held, &mut rebuilt)?;
        Fit::Finished(Box::new(train_candidate(spec, name, model, set, &state.features, Some(candidate.max_seconds()))))
    };
    let result = match fit {
        Fit::Paused(paused) => return Ok(CandidateOutcome::Paused(paused)),
        Fit::Finished(result) => *result,
    };
    let outcome = match result {
        Ok(trained) => {
            if let Some(note) = &trained.note {
                tracing::warn!(candidate = %name, "{note}");
            }
            let artifact_key = keys.candidate(&input.run_id, name);
            let artifact = trained.artifact.to_bytes();
            store.put(&artifact_key, &artifact)?;
            CandidateOutcome::Trained(CandidateSummary {
                name: name.to_string(),
                kind: model.kind().to_string(),
                metrics: trained.metrics,
                seconds: trained.seconds,
                fit_seconds: trained.fit_seconds,
                note: trained.note,
                artifact_key,
                predict_p99_ms: trained.predict_p99_ms,
                artifact_bytes: artifact.len() as u64,
            })
        }
        Err(error) => {
            tracing::warn!(candidate = %name, "{error}");
            CandidateOutcome::Failed(CandidateFailure { name: name.to_string(), error: error.to_string() })
        }
    };
    store.write_json(&keys.candidate_outcome(&input.run_id, name), &outcome)?;
    Ok(outcome)
}

/// One call of a gradient-boosting fit over several: the first bins the training rows and
/// stores them, later calls load them and the checkpoint their `resume` names. Each runs at most
/// `rounds_per_call` rounds; a fit that is not done saves its checkpoint under its round count.
fn boost_in_pieces(
    store: &dyn Store,
    spec: &Spec,
    input: &FeaturesOutput,
    state: &FeatureState,
    held: Option<&TrainingSet>,
    model: &ModelSpec,
    candidate: &Candidate,
) -> Result<Fit, PipelineError> {
    let keys = Keys { dataset: &spec.name };
    let (run, name) = (&input.run_id, candidate.name);
    let input_key = keys.boosting_input(run, name);
    let mut rebuilt = None;
    let (prepared, from) = match candidate.resume {
        None => match prepare_boosting(spec, name, model, training_set_of(store, spec, state, held, &mut rebuilt)?, &state.features) {
            Ok(prepared) => (prepared, None),
            Err(error) => return Ok(Fit::Finished(Box::new(Err(error)))),
        },
        Some(paused) => {
            let missing = |key: &str| {
                PipelineError::corrupt(key, format!("candidate '{name}' was paused at round {} but this is missing", paused.rounds))
            };
            let prepared = read_postcard(store, &input_key)?.ok_or_else(|| missing(&input_key))?;
            let checkpoint_key = keys.boosting_checkpoint(run, name, paused.rounds);
            let checkpoint: BoostingCheckpoint = read_postcard(store, &checkpoint_key)?.ok_or_else(|| missing(&checkpoint_key))?;
            (prepared, Some(checkpoint))
        }
    };
    let rounds = candidate.rounds_per_call.map_or(usize::MAX, NonZeroUsize::get);
    match boost_candidate(spec, name, model, &prepared, from, rounds, Some(candidate.max_seconds())) {
        Err(error) => Ok(Fit::Finished(Box::new(Err(error)))),
        Ok(Resumable::Paused(checkpoint)) => {
            if candidate.resume.is_none() {
                store.put(&input_key, &postcard::to_stdvec(&prepared).expect("a boosting input serialises"))?;
            }
            let rounds = checkpoint.rounds();
            store.put(&keys.boosting_checkpoint(run, name, rounds), &postcard::to_stdvec(&checkpoint).expect("a checkpoint serialises"))?;
            tracing::info!(candidate = %name, rounds, "paused after this invocation's rounds; saved a checkpoint");
            Ok(Fit::Paused(CandidatePaused { name: name.to_string(), rounds }))
        }
        Ok(Resumable::Done(boosted)) => {
            drop(prepared);
            let set = training_set_of(store, spec, state, held, &mut rebuilt)?;
            Ok(Fit::Finished(Box::new(finish_boosting(spec, name, set, &state.features, *boosted))))
        }
    }
}

/// The train output of a run's candidate outcomes: the best candidate by the promotion metric.
fn best_of(spec: &Spec, input: FeaturesOutput, outcomes: Vec<CandidateOutcome>, started: Instant) -> Result<TrainOutput, PipelineError> {
    let metric = spec.metric();
    let (mut candidates, mut failures) = (Vec::new(), Vec::new());
    for outcome in outcomes {
        match outcome {
            CandidateOutcome::Trained(summary) => candidates.push(summary),
            CandidateOutcome::Failed(failure) => failures.push(failure),
            CandidateOutcome::Paused(paused) => {
                return Err(PipelineError::bad_input(format!(
                    "candidate '{}' is paused at round {}: resume it first",
                    paused.name, paused.rounds
                )));
            }
        }
    }
    // The best within the serving budget; the best of all when none keeps it (not promoted then).
    let over = |c: &CandidateSummary| over_budget(&spec.promotion.budget, c.predict_p99_ms, c.artifact_bytes).is_some();
    let within = candidates.iter().any(|c| !over(c) && c.metrics[&metric].is_finite());
    let best = candidates
        .iter()
        .filter(|c| c.metrics[&metric].is_finite() && !(within && over(c)))
        .reduce(|best, c| {
            let better = if metric.higher_is_better() {
                c.metrics[&metric] > best.metrics[&metric]
            } else {
                c.metrics[&metric] < best.metrics[&metric]
            };
            if better { c } else { best }
        })
        .map(|c| c.name.clone())
        .ok_or_else(|| {
            let reasons: Vec<String> = failures.iter().map(|f| f.error.clone()).collect();
            PipelineError::bad_input(format!("no candidate could be trained: {}", reasons.join("; ")))
        })?;
    Ok(TrainOutput { features: input, candidates, failures, best, train_seconds: started.elapsed().as_secs_f64() })
}

/// Register: evaluates the champion on this run's holdout, registers the best candidate, and
/// promotes it if it beats the champion by the policy's margin. The pointer moves by a
/// conditional write; when another promotion wins the race the decision is taken again.
pub fn register(store: &dyn Store, spec: &Spec, input: TrainOutput) -> Result<(RegisterOutput, RunRecord), PipelineError> {
    register_with(store, spec, input, None)
}

/// [`register`], with the run's training set when the caller holds it (else it is rebuilt, only
/// if a champion must be scored).
fn register_with(
    store: &dyn Store,
    spec: &Spec,
    input: TrainOutput,
    held: Option<&TrainingSet>,
) -> Result<(RegisterOutput, RunRecord), PipelineError> {
    let started = Instant::now();
    let keys = Keys { dataset: &spec.name };
    let registry = Registry::new(store, &spec.name);
    let metric = spec.metric();
    let run = &input.features;
    let best = input.candidates.iter().find(|c| c.name == input.best).expect("the best candidate is a candidate");
    let artifact_bytes = store.get(&best.artifact_key)?.ok_or_else(|| {
        PipelineError::bad_input(format!("{}: the model of candidate '{}' in this run does not exist", best.artifact_key, best.name))
    })?;
    let artifact = ModelArtifact::from_bytes(&artifact_bytes, &best.artifact_key)?;
    let state = read_feature_state(store, &run.features_key)?;
    // Rebuilt only when there is a champion to evaluate on this run's holdout, or a new version's
    // global importance to compute on it.
    let mut rebuilt: Option<TrainingSet> = None;
    let version = register_version(&registry, spec, &input, best, &artifact, &artifact_bytes, || {
        training_set_of(store, spec, &state, held, &mut rebuilt)
    })?;
    let mut attempts = 0;
    let (promoted, reason, champion) = loop {
        attempts += 1;
        let production = registry.production()?;
        // A retry of a register that already promoted this run's candidate reports that promotion.
        let this_run =
            |e: &&Event| matches!(e.action, Action::Promote | Action::ChallengerStart) && e.run_id.as_deref() == Some(run.run_id.as_str());
        if let Some(event) = production.as_ref().and_then(|(p, _)| p.history.iter().rev().find(this_run)) {
            let champion = match &event.from {
                Some(from) => Some(VersionMetrics { version: from.clone(), metrics: registry.card(from)?.metrics }),
                None => None,
            };
            let promoted = event.action == Action::Promote;
            let reason = if promoted { event.reason.clone() } else { format!("started as a challenger, {}", event.reason) };
            break (promoted, reason, champion);
        }
        let champion = match &production {
            Some((p, _)) => {
                let set = training_set_of(store, spec, &state, held, &mut rebuilt)?;
                Some(VersionMetrics { version: p.version.clone(), metrics: champion_metrics(&registry, &p.version, &p.metrics, set) })
            }
            None => None,
        };
        if let Some(reason) = over_budget(&spec.promotion.budget, best.predict_p99_ms, best.artifact_bytes) {
            break (false, reason, champion);
        }
        if champion.as_ref().is_some_and(|c| c.version == version) {
            break (false, format!("the best candidate is identical to the production version {version}"), champion);
        }
        let decision = decide(
            metric,
            best.metrics[&metric],
            champion.as_ref().map(|c| (c.version.as_str(), c.metrics.get(&metric).copied().unwrap_or(f64::NAN))),
            &spec.promotion,
        );
        if !decision.promote {
            break (false, decision.reason, champion);
        }
        let etag = production.as_ref().map(|(_, etag)| etag.as_str());
        // With a rollout policy, a candidate that beats a champion is first tried on live traffic.
        if let (Some(rollout), Some(etag)) = (spec.promotion.canary.rollout, etag) {
            let mode = Mode::of_rollout(rollout, &spec.promotion.canary);
            match registry.start_challenger(&version, mode, &decision.reason, Some(&run.run_id), etag) {
                Ok(_) => break (false, format!("started as a challenger, {mode}: {}", decision.reason), champion),
                Err(mlops_core::CoreError::Conflict { .. }) if attempts < CONDITIONAL_ATTEMPTS => continue,
                Err(e) => return Err(e.into()),
            }
        }
        match registry.promote(&version, Action::Promote, &decision.reason, Some(&run.run_id), etag) {
            Ok(_) => break (true, decision.reason, champion),
            Err(mlops_core::CoreError::Conflict { .. }) if attempts < CONDITIONAL_ATTEMPTS => continue,
            Err(e) => return Err(e.into()),
        }
    };
    let output = RegisterOutput {
        dataset: spec.name.clone(),
        trigger: run.trigger,
        run_id: run.run_id.clone(),
        version,
        promoted,
        reason,
        champion,
        production: registry.production()?.map(|(p, _)| VersionMetrics { version: p.version, metrics: p.metrics }),
    };
    let mut durations = BTreeMap::from([("features".to_string(), run.seconds), ("train".to_string(), input.train_seconds)]);
    if let Some(prep) = &run.prep {
        durations.insert("prep".into(), prep.seconds);
    }
    durations.insert("register".into(), started.elapsed().as_secs_f64());
    let mut record = RunRecord {
        run_id: run.run_id.clone(),
        dataset: spec.name.clone(),
        trigger: run.trigger,
        started_at: run.started_at.clone(),
        finished_at: now(),
        spec_hash: spec.hash(),
        data_hash: run.data_hash.clone(),
        rows_train: run.rows_train,
        rows_holdout: run.rows_holdout,
        prep: run.prep.clone(),
        candidates: input.candidates.clone(),
        failures: input.failures.clone(),
        params: spec.models.iter().map(|(name, model)| (name.clone(), serde_json::to_value(model).expect("models serialise"))).collect(),
        best: input.best.clone(),
        metric: metric.name().to_string(),
        champion: output.champion.clone(),
        version: output.version.clone(),
        promoted,
        reason: output.reason.clone(),
        production: output.production.clone(),
        durations,
        report_key: None,
    };
    // The report is an aid: one that cannot be made is a warning, never a failed registration.
    let report = training_set_of(store, spec, &state, held, &mut rebuilt).and_then(|set| {
        let html = run_report(&record, &artifact, set, &registry.card(&record.version)?.importance)?;
        store.put(&keys.run_report(&run.run_id), html.as_bytes())?;
        Ok(keys.run_report(&run.run_id))
    });
    match report {
        Ok(key) => record.report_key = Some(key),
        Err(error) => tracing::warn!(run = %run.run_id, "the run report was not written: {error}"),
    }
    store.write_json(&keys.run_record(&run.run_id), &record)?;
    Ok((output, record))
}

/// The HTML report of a run whose best candidate is `artifact`, shown on `set`'s holdout.
fn run_report(
    record: &RunRecord,
    artifact: &ModelArtifact,
    set: &TrainingSet,
    importance: &[(String, f64)],
) -> Result<String, PipelineError> {
    let (_, predictions) = mlops_core::evaluate_on_holdout(artifact, set)?;
    let truth: Vec<f64> = set.split.holdout.iter().map(|&row| set.y[row]).collect();
    let holdout = match artifact.target.task() {
        mlops_core::Task::Regression => crate::html::Holdout::Regression { truth, predicted: predictions.column(0).to_vec() },
        _ => crate::html::Holdout::Classification {
            labels: artifact.target.labels().to_vec(),
            truth: truth.iter().map(|y| *y as usize).collect(),
            probabilities: predictions.rows().into_iter().map(|row| row.to_vec()).collect(),
        },
    };
    Ok(crate::html::render_run(record, &holdout, importance))
}

/// The champion's metrics on this holdout; its recorded metrics when it cannot be evaluated
/// here (for instance after a schema change).
fn champion_metrics(registry: &Registry, version: &str, recorded: &Metrics, set: &TrainingSet) -> Metrics {
    match registry.artifact(version).and_then(|artifact| evaluate_on_holdout(&artifact, set)) {
        Ok((metrics, _)) => metrics,
        Err(error) => {
            tracing::warn!(%version, "champion not evaluated on this holdout, using its recorded metrics: {error}");
            recorded.clone()
        }
    }
}

/// Holdout rows whose explanations give a new version's global importance.
const IMPORTANCE_ROWS: usize = 200;

/// Registers the best candidate, or finds the version with the very same artifact bytes; a new
/// version's card holds its global importance on the holdout of `holdout_of`.
fn register_version<'s>(
    registry: &Registry,
    spec: &Spec,
    input: &TrainOutput,
    best: &CandidateSummary,
    artifact: &ModelArtifact,
    bytes: &[u8],
    holdout_of: impl FnOnce() -> Result<&'s TrainingSet, PipelineError>,
) -> Result<String, PipelineError> {
    let sha256 = sha256_hex(bytes);
    for version in registry.versions()?.into_iter().rev() {
        if registry.card(&version)?.artifact_sha256 == sha256 {
            return Ok(version);
        }
    }
    let set = holdout_of()?;
    let holdout = &set.split.holdout;
    let step = holdout.len().div_ceil(IMPORTANCE_ROWS).max(1);
    let sample: Vec<usize> = holdout.iter().copied().step_by(step).collect();
    let importance = mlops_core::attribution(artifact, &set.frame.take(&sample))
        .map_err(|e| PipelineError::bad_input(format!("{}: holdout rows could not be explained: {e}", best.name)))?
        .means();
    let run = &input.features;
    let names = artifact.features.names(artifact.model.encoding());
    let mut top_features: Vec<(String, f64)> =
        artifact.model.importances().map(|i| names.iter().cloned().zip(i.iter().copied()).collect()).unwrap_or_default();
    top_features.sort_by(|a, b| b.1.total_cmp(&a.1));
    top_features.truncate(10);
    let card = ModelCard {
        version: String::new(),
        dataset: spec.name.clone(),
        candidate: best.name.clone(),
        kind: best.kind.clone(),
        params: serde_json::to_value(&spec.models[&best.name]).expect("models serialise"),
        task: spec.target.task,
        metric: spec.metric(),
        metrics: best.metrics.clone(),
        run_id: run.run_id.clone(),
        created_at: now(),
        spec_hash: spec.hash(),
        data_hash: run.data_hash.clone(),
        artifact_sha256: sha256,
        rows_train: run.rows_train,
        rows_holdout: run.rows_holdout,
        top_features,
        importance,
        schema: spec.columns.clone(),
        classes: artifact.target.labels().to_vec(),
    };
    Ok(registry.register(bytes, card)?)
}

/// A whole run: prep, features, train, register.
pub fn run(store: &dyn Store, spec: &Spec, request: &RunRequest, progress: &dyn Fn(Progress)) -> Result<RunRecord, PipelineError> {
    if request.dataset != spec.name {
        return Err(PipelineError::bad_input(format!("the request is for dataset '{}' but the spec is '{}'", request.dataset, spec.name)));
    }
    progress(Progress::Stage("prep"));
    let prepped = prep(store, spec, request)?;
    // One process: the training set built by features serves train and register too.
    progress(Progress::Stage("features"));
    let (featured, kept) = featurise(store, spec, prepped, true)?;
    let (state, set) = kept.expect("features keeps the state and set when asked");
    progress(Progress::Stage("train"));
    let trained = train_on(store, spec, featured, &state, &set, progress)?;
    progress(Progress::Stage("register"));
    let (_, record) = register_with(store, spec, trained, Some(&set))?;
    Ok(record)
}

pub mod shards;
#[cfg(test)]
mod tests;
