//! Prep's reading of raw files as a plan of shards, run the same way in one process and on a
//! Step Functions Distributed Map.
//!
//! [`Plan::new`] cuts each raw file by size into shards (see `mlops_prep`'s shard rules) and
//! groups them into map items of a few shards each: the plan batches, since LocalStack's
//! Distributed Map has no `ItemBatcher`. [`read_shard`] parses the records that start in one
//! shard. Locally the shards run on a thread pool and stay in memory; on AWS each item's shards
//! are written to fixed keys ([`save`]) and the merge step reads every one back ([`load`]),
//! failing on any that is missing: a failed map item can come back as a success with a null
//! result. [`assemble`] puts a file's shards back together.

use mlops_core::contracts::RunRequest;
use mlops_core::{JsonStore, Keys, Spec, Store, chunk_hashes, content_hash};
use mlops_prep::{Head, Parsed, Rejection, Shard, ShardProblem};
use serde::{Deserialize, Serialize};

use crate::PipelineError;

/// Bytes of a raw file parsed by one shard, unless the deployment says otherwise.
pub const SHARD_BYTES: u64 = 64 << 20;
/// Shards read by one map item, unless the deployment says otherwise.
pub const SHARDS_PER_ITEM: usize = 4;
/// Map items run at once, unless the deployment says otherwise.
pub const MAP_CONCURRENCY: u32 = 40;

/// How a plan cuts files and groups their shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizing {
    pub shard_bytes: u64,
    pub shards_per_item: usize,
    pub max_concurrency: u32,
}

impl Default for Sizing {
    fn default() -> Self {
        Sizing { shard_bytes: SHARD_BYTES, shards_per_item: SHARDS_PER_ITEM, max_concurrency: MAP_CONCURRENCY }
    }
}

/// A raw file in a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedFile {
    pub key: String,
    pub size: u64,
}

/// Which shard of a plan: the file's number in the plan and the shard's index in the file.
pub type ShardAt = (usize, usize);

/// The raw files a prep reads, cut into shards, grouped into map items.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub id: String,
    pub request: RunRequest,
    pub shard_bytes: u64,
    pub files: Vec<PlannedFile>,
    /// Each map item's shards, in file order.
    pub items: Vec<Vec<ShardAt>>,
}

impl Plan {
    /// A plan named `id` to read the raw files `keys`, which must lie under `raw_prefix`.
    pub fn new(
        store: &dyn Store,
        raw_prefix: &str,
        id: String,
        request: RunRequest,
        keys: Vec<String>,
        sizing: Sizing,
    ) -> Result<Plan, PipelineError> {
        let mut files = Vec::with_capacity(keys.len());
        for key in keys {
            if !key.starts_with(raw_prefix) {
                return Err(PipelineError::bad_input(format!("{key} is not under {raw_prefix}")));
            }
            let size = store.size(&key)?.ok_or_else(|| PipelineError::bad_input(format!("{key}: no such raw file")))?;
            files.push(PlannedFile { key, size });
        }
        let shards: Vec<ShardAt> = files
            .iter()
            .enumerate()
            .flat_map(|(at, file)| (0..mlops_prep::cut_file(&file.key, file.size, sizing.shard_bytes).len()).map(move |index| (at, index)))
            .collect();
        let items = shards.chunks(sizing.shards_per_item.max(1)).map(<[ShardAt]>::to_vec).collect();
        Ok(Plan { id, request, shard_bytes: sizing.shard_bytes, files, items })
    }

    /// The shards of file number `file`.
    pub fn shards_of(&self, file: usize) -> Vec<Shard> {
        let planned = &self.files[file];
        mlops_prep::cut_file(&planned.key, planned.size, self.shard_bytes)
    }

    /// Every shard of the plan, in file order.
    pub fn shards(&self) -> Vec<ShardAt> {
        self.items.concat()
    }
}

/// What one shard's records are, as the merge needs them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The file's header cannot be used: the file is rejected.
    HeadRejected(Rejection),
    /// The records cannot be used: the file is rejected, at the problem's line.
    Unusable(ShardProblem),
    /// The records were parsed (their rows are in the shard's tables).
    Parsed { rows: usize, notes: Vec<String> },
}

/// What a shard read, beside its rows: written to the shard's `meta.json` last, so its presence
/// means the shard's tables are complete.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardMeta {
    pub file: usize,
    pub index: usize,
    /// Hashes of the 1 MiB chunks of the shard's byte range, for the file's content hash.
    pub chunk_hashes: Vec<String>,
    /// Line ends in the header (before the file's records).
    pub header_lines: u64,
    /// Line ends in the shard's records, for line numbers in messages.
    pub lines: u64,
    /// Double quotes in the shard's records: an odd count before a cut puts it inside a field.
    pub quotes: u64,
    pub outcome: Outcome,
}

/// One shard read: what it is, and its parsed rows when it parsed.
pub struct ShardOutput {
    pub meta: ShardMeta,
    pub parsed: Option<Parsed>,
}

/// Reads and parses shard `at` of `plan`.
pub fn read_shard(store: &dyn Store, spec: &Spec, plan: &Plan, at: ShardAt) -> Result<ShardOutput, PipelineError> {
    let (file, index) = at;
    let shard = plan.shards_of(file).swap_remove(index);
    let key = shard.file.as_str();
    let head = match read_head(store, spec, key, shard.file_size)? {
        Ok(head) => head,
        Err(rejection) => {
            // The content hash still names the file, so the same bytes are known next time.
            let chunk_hashes = chunk_hashes(&range(store, key, shard.start..shard.end)?);
            let meta =
                ShardMeta { file, index, chunk_hashes, header_lines: 0, lines: 0, quotes: 0, outcome: Outcome::HeadRejected(rejection) };
            return Ok(ShardOutput { meta, parsed: None });
        }
    };
    let records = read_records(store, spec, &head, &shard)?;
    let (outcome, parsed) = match records.parsed {
        Ok(parsed) => (Outcome::Parsed { rows: parsed.rows, notes: parsed.notes.clone() }, Some(parsed)),
        Err(problem) => (Outcome::Unusable(problem), None),
    };
    let meta = ShardMeta {
        file,
        index,
        chunk_hashes: records.chunk_hashes,
        header_lines: head.lines,
        lines: records.lines,
        quotes: records.quotes,
        outcome,
    };
    Ok(ShardOutput { meta, parsed })
}

/// The header of the raw file `key` of `size` bytes, or why the file cannot be used.
fn read_head(store: &dyn Store, spec: &Spec, key: &str, size: u64) -> Result<Result<Head, Rejection>, PipelineError> {
    let prefix = range(store, key, 0..size.min(mlops_prep::HEAD_BYTES))?;
    Ok(Head::read(key, &prefix, size, spec))
}

/// The records of one shard: their parse, and what putting the file back together checks.
struct Records {
    lines: u64,
    quotes: u64,
    chunk_hashes: Vec<String>,
    parsed: Result<Parsed, ShardProblem>,
}

/// Bytes `range` of the raw file `key`, which must exist.
fn range(store: &dyn Store, key: &str, range: std::ops::Range<u64>) -> Result<Vec<u8>, PipelineError> {
    store.get_range(key, range)?.ok_or_else(|| PipelineError::bad_input(format!("{key}: the raw file disappeared while it was read")))
}

/// Reads and parses the records that start in `shard`. A panic while parsing (a bug, never
/// expected) rejects the file with the panic's message instead of failing every later run on
/// the same file.
fn read_records(store: &dyn Store, spec: &Spec, head: &Head, shard: &Shard) -> Result<Records, PipelineError> {
    let key = shard.file.as_str();
    let mut window_range = shard.window();
    let mut window = range(store, key, window_range.clone())?;
    let (first, last) = loop {
        if let Some(bounds) = mlops_prep::record_bounds(&window, window_range.start, shard, head.body_start) {
            break bounds;
        }
        // The shard's last line goes on past the window: read on.
        let more = window_range.end..(window_range.end + mlops_prep::WINDOW_SLACK.max(window.len() as u64)).min(shard.file_size);
        window.extend(range(store, key, more.clone())?);
        window_range.end = more.end;
    };
    let at = |offset: u64| (offset - window_range.start) as usize;
    let records = &window[at(first)..at(last)];
    let nominal = &window[at(shard.start)..at(shard.end)];
    let (hashes, parsed) = rayon::join(
        || chunk_hashes(nominal),
        || {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| mlops_prep::parse_records(key, head, records, spec))).unwrap_or_else(
                |panic| {
                    let message = panic.downcast_ref::<&str>().map(ToString::to_string).or_else(|| panic.downcast_ref::<String>().cloned());
                    tracing::error!(file = %key, "parsing panicked: {message:?}");
                    Err(ShardProblem::Unreadable(format!(
                        "internal error while parsing (please report it): {}",
                        message.unwrap_or_default()
                    )))
                },
            )
        },
    );
    Ok(Records { lines: mlops_prep::line_ends(records), quotes: mlops_prep::quotes(records), chunk_hashes: hashes, parsed })
}

const META: &str = "meta.json";
const VALID: &str = "valid.parquet";
const QUARANTINED: &str = "quarantined.parquet";

/// Writes a shard's tables, then its meta, to the shard's fixed keys; returns its rows.
pub fn save(store: &dyn Store, keys: Keys, plan: &str, output: ShardOutput) -> Result<usize, PipelineError> {
    let ShardOutput { meta, parsed } = output;
    let key = |part: &str| keys.prep_shard(plan, meta.file, meta.index, part);
    let mut rows = 0;
    if let Some(mut parsed) = parsed {
        rows = parsed.rows;
        store.put(&key(VALID), &mlops_prep::to_parquet(&mut parsed.valid)?)?;
        if parsed.quarantined.height() > 0 {
            store.put(&key(QUARANTINED), &mlops_prep::to_parquet(&mut parsed.quarantined)?)?;
        }
    }
    store.write_json(&key(META), &meta)?;
    Ok(rows)
}

/// Reads back shard `at` of `plan` as [`save`] wrote it. A shard without output fails the merge:
/// its map item failed, or never ran.
pub fn load(store: &dyn Store, keys: Keys, plan: &Plan, at: ShardAt) -> Result<ShardOutput, PipelineError> {
    let (file, index) = at;
    let key = |part: &str| keys.prep_shard(&plan.id, file, index, part);
    let meta: ShardMeta = store.read_json(&key(META))?.ok_or_else(|| {
        PipelineError::corrupt(
            &key(META),
            format!("shard {index} of {} has no output: its map item failed or has not run", plan.files[file].key),
        )
    })?;
    let parsed = match &meta.outcome {
        Outcome::Parsed { rows, notes } => {
            let table = |part: &str| -> Result<Option<_>, PipelineError> {
                let key = key(part);
                store.get(&key)?.map(|bytes| mlops_prep::read_parquet(bytes, &key).map_err(|e| PipelineError::corrupt(&key, e))).transpose()
            };
            let valid = table(VALID)?.ok_or_else(|| PipelineError::corrupt(&key(VALID), "missing although the shard's meta is written"))?;
            let quarantined = table(QUARANTINED)?.unwrap_or_default();
            Some(Parsed { file: plan.files[file].key.clone(), rows: *rows, valid, quarantined, notes: notes.clone() })
        }
        _ => None,
    };
    Ok(ShardOutput { meta, parsed })
}

/// A raw file read shard by shard: its content hash, and its parse or why it cannot be used.
pub struct FileRead {
    pub content_hash: String,
    /// The shards read: one when a quoted field spans a cut and the file was read whole.
    pub shards: usize,
    pub parsed: Result<Parsed, Rejection>,
}

/// Puts the shards of file number `file` back together (`outputs` in shard order). When a cut
/// fell inside a quoted field that holds a line break, the file is read again as one shard.
pub fn assemble(store: &dyn Store, spec: &Spec, plan: &Plan, file: usize, outputs: Vec<ShardOutput>) -> Result<FileRead, PipelineError> {
    let key = plan.files[file].key.as_str();
    let content_hash = content_hash(&outputs.iter().flat_map(|o| o.meta.chunk_hashes.iter().cloned()).collect::<Vec<_>>());
    let shards = outputs.len();
    if let Some(rejection) = outputs.iter().find_map(|o| match &o.meta.outcome {
        Outcome::HeadRejected(rejection) => Some(rejection.clone()),
        _ => None,
    }) {
        return Ok(FileRead { content_hash, shards, parsed: Err(rejection) });
    }
    let quotes: Vec<u64> = outputs.iter().map(|o| o.meta.quotes).collect();
    let header_lines = outputs.first().map_or(0, |o| o.meta.header_lines);
    if !mlops_prep::cuts_outside_quotes(&quotes) {
        tracing::info!(file = %key, "a quoted field spans a shard boundary: reading the file as one shard");
        drop(outputs);
        let size = plan.files[file].size;
        let head = read_head(store, spec, key, size)?.map_err(|r| PipelineError::bad_input(format!("{key}: {}", r.reason)))?;
        let whole = Shard { file: key.to_string(), index: 0, of: 1, start: 0, end: size, file_size: size };
        let records = read_records(store, spec, &head, &whole)?;
        return Ok(FileRead { content_hash, shards: 1, parsed: finish(key, head.lines, vec![(records.lines, records.parsed)]) });
    }
    let parts = outputs
        .into_iter()
        .map(|output| {
            let parsed = match (output.parsed, output.meta.outcome) {
                (Some(parsed), _) => Ok(parsed),
                (None, Outcome::Unusable(problem)) => Err(problem),
                (None, _) => Err(ShardProblem::Unreadable("the shard's rows are missing".into())),
            };
            (output.meta.lines, parsed)
        })
        .collect();
    Ok(FileRead { content_hash, shards, parsed: finish(key, header_lines, parts) })
}

/// Puts a file's shards (each with its line ends) back together, or names the first shard's
/// problem at its line in the file, after the header's `header_lines` line ends.
fn finish(key: &str, header_lines: u64, shards: Vec<(u64, Result<Parsed, ShardProblem>)>) -> Result<Parsed, Rejection> {
    let mut parts = Vec::with_capacity(shards.len());
    let mut lines = header_lines;
    for (shard_lines, parsed) in shards {
        parts.push(parsed.map_err(|problem| problem.rejection(key, lines))?);
        lines += shard_lines;
    }
    mlops_prep::combine(key, parts)
}
