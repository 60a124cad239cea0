//! Prep's reading of raw files as a plan of shards, run the same way in one process and on a
//! Step Functions Distributed Map.
//!
//! [`Plan::new`] cuts each raw file by size into shards (see `mlops_prep`'s shard rules) and
//! groups them into map items of a few shards each: the plan batches, since LocalStack's
//! Distributed Map has no `ItemBatcher`. [`read_shard`] parses the records that start in one
//! shard and cuts its valid rows into the plan's buckets by row hash, so that equal rows of any
//! shards meet in one bucket. Locally the shards run on a thread pool and stay in memory; on AWS
//! each item writes its shards' rows as one file per bucket and each shard's meta to fixed keys
//! ([`save_item`]), and the merge step reads every meta back ([`load`]), failing on any that is
//! missing: a failed map item can come back as a success with a null result. [`assemble`] puts
//! a file's shards back together; each bucket step reads its bucket of every item
//! ([`load_bucket`]).

use std::collections::BTreeSet;

use mlops_core::contracts::RunRequest;
use mlops_core::{JsonStore, Keys, Spec, Store, chunk_hashes, content_hash};
use mlops_prep::{Head, Parsed, Rejection, Shard, ShardProblem, Table};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::PipelineError;

/// Bytes of a raw file parsed by one shard, unless the deployment says otherwise.
pub const SHARD_BYTES: u64 = 64 << 20;
/// Shards read by one map item, unless the deployment says otherwise.
pub const SHARDS_PER_ITEM: usize = 4;
/// Map items run at once, unless the deployment says otherwise.
pub const MAP_CONCURRENCY: u32 = 40;
/// Raw bytes per bucket of rows that duplicates are removed from, unless the deployment says
/// otherwise: a plan has one bucket per this many bytes of raw files. 256 MiB of CSV like the
/// benchmark's is about 4M rows, well within a 3 GB function.
pub const BUCKET_BYTES: u64 = 256 << 20;

/// How a plan cuts files, groups their shards and buckets their rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizing {
    pub shard_bytes: u64,
    pub shards_per_item: usize,
    pub max_concurrency: u32,
    pub bucket_bytes: u64,
}

impl Default for Sizing {
    fn default() -> Self {
        Sizing { shard_bytes: SHARD_BYTES, shards_per_item: SHARDS_PER_ITEM, max_concurrency: MAP_CONCURRENCY, bucket_bytes: BUCKET_BYTES }
    }
}

impl Sizing {
    /// Prep in one process: the default shards, and one bucket, since every row is in memory
    /// anyway (buckets bound what one invocation holds); the batch is then one part, in order.
    pub fn in_one_process() -> Sizing {
        Sizing { bucket_bytes: u64::MAX, ..Sizing::default() }
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
    /// Buckets the valid rows are cut into by row hash, each deduplicated apart.
    pub buckets: usize,
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
        let bytes: u64 = files.iter().map(|f| f.size).sum();
        let buckets = usize::try_from(bytes.div_ceil(sizing.bucket_bytes.max(1))).unwrap_or(usize::MAX).max(1);
        Ok(Plan { id, request, shard_bytes: sizing.shard_bytes, files, items, buckets })
    }

    /// Shard `at`'s number in the plan, counted over every file's shards in order: its rows'
    /// place in the batch comes first from it. A shard the plan does not hold is an error.
    pub fn number(&self, at: ShardAt) -> Result<u32, PipelineError> {
        let position = self.items.iter().flatten().position(|&shard| shard == at);
        position
            .and_then(|position| u32::try_from(position).ok())
            .ok_or_else(|| PipelineError::bad_input(format!("prep plan {} has no shard {} of file {}", self.id, at.1, at.0)))
    }

    /// The shards of file number `file`.
    pub fn shards_of(&self, file: usize) -> Vec<Shard> {
        let planned = &self.files[file];
        mlops_prep::cut_file(&planned.key, planned.size, self.shard_bytes)
    }

    /// The map item that reads shard `at`; none for a file read whole again.
    pub fn item_of(&self, at: ShardAt) -> Option<usize> {
        self.items.iter().position(|shards| shards.contains(&at))
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
    /// The records were parsed: `rows` read, `valid` of them valid (in the shard's buckets).
    Parsed { rows: usize, valid: usize, notes: Vec<String> },
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

/// One shard read: what it is, and its tables when it parsed.
pub struct ShardOutput {
    pub meta: ShardMeta,
    /// The shard's quarantined rows, when it parsed.
    pub quarantined: Option<Table>,
    /// The shard's valid rows by bucket when held in memory; empty when its meta is read back
    /// from the store (each bucket step reads its own).
    pub buckets: Vec<Table>,
}

impl ShardOutput {
    /// Shard `at` of `plan` as its `records` read (after a header of `header_lines` lines): its
    /// meta, and the tables of its parse, the valid rows cut into the plan's buckets.
    fn parsed(plan: &Plan, (file, index): ShardAt, header_lines: u64, records: Records) -> Result<ShardOutput, PipelineError> {
        let Records { lines, quotes, chunk_hashes, parsed } = records;
        let meta = |outcome| ShardMeta { file, index, chunk_hashes, header_lines, lines, quotes, outcome };
        let parsed = match parsed {
            Ok(parsed) => parsed,
            Err(problem) => return Ok(ShardOutput { meta: meta(Outcome::Unusable(problem)), quarantined: None, buckets: Vec::new() }),
        };
        // A file read whole again (its index past the planned shards) takes its first shard's place.
        let number = plan.number((file, if index < plan.shards_of(file).len() { index } else { 0 }))?;
        let valid = parsed.valid.height();
        let buckets = mlops_prep::into_buckets(parsed.valid, number, plan.buckets)?;
        let outcome = Outcome::Parsed { rows: parsed.rows, valid, notes: parsed.notes };
        Ok(ShardOutput { meta: meta(outcome), quarantined: Some(parsed.quarantined), buckets })
    }
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
            return Ok(ShardOutput { meta, quarantined: None, buckets: Vec::new() });
        }
    };
    let records = read_records(store, spec, &head, &shard)?;
    ShardOutput::parsed(plan, at, head.lines, records)
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

/// Bytes `range` of the file `key`, which must exist.
fn range(store: &dyn Store, key: &str, range: std::ops::Range<u64>) -> Result<Vec<u8>, PipelineError> {
    store.get_range(key, range)?.ok_or_else(|| PipelineError::bad_input(format!("{key}: the file disappeared while it was read")))
}

/// The bytes of a file around one shard: the records that start in it, and the window of the
/// file they were found in.
pub(crate) struct ShardBytes {
    window: Vec<u8>,
    window_start: u64,
    /// The file offset of the shard's first record.
    pub(crate) first: u64,
    /// The file offset where the next shard's records begin.
    pub(crate) last: u64,
}

impl ShardBytes {
    /// Reads the records that start in `shard` of a file whose records begin at `body_start`:
    /// a window around the shard, widened while its last line goes on.
    pub(crate) fn read(store: &dyn Store, shard: &Shard, body_start: u64) -> Result<ShardBytes, PipelineError> {
        let key = shard.file.as_str();
        let mut window_range = shard.window();
        let mut window = range(store, key, window_range.clone())?;
        loop {
            if let Some((first, last)) = mlops_prep::record_bounds(&window, window_range.start, shard, body_start) {
                return Ok(ShardBytes { window, window_start: window_range.start, first, last });
            }
            let more = window_range.end..(window_range.end + mlops_prep::WINDOW_SLACK.max(window.len() as u64)).min(shard.file_size);
            window.extend(range(store, key, more.clone())?);
            window_range.end = more.end;
        }
    }

    /// The records that start in the shard.
    pub(crate) fn records(&self) -> &[u8] {
        self.range(self.first..self.last)
    }

    /// The file's bytes `range`, which must lie in the window.
    pub(crate) fn range(&self, range: std::ops::Range<u64>) -> &[u8] {
        &self.window[(range.start - self.window_start) as usize..(range.end - self.window_start) as usize]
    }
}

/// Reads and parses the records that start in `shard`. A panic while parsing (a bug, never
/// expected) rejects the file with the panic's message instead of failing every later run on
/// the same file.
fn read_records(store: &dyn Store, spec: &Spec, head: &Head, shard: &Shard) -> Result<Records, PipelineError> {
    let key = shard.file.as_str();
    let bytes = ShardBytes::read(store, shard, head.body_start)?;
    let records = bytes.records();
    let nominal = bytes.range(shard.start..shard.end);
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
const QUARANTINED: &str = "quarantined.parquet";

/// The key part of a shard's rows in bucket `bucket`.
fn bucket_part(bucket: usize) -> String {
    format!("bucket-{bucket}.parquet")
}

/// Writes the shards of map item `item` of `plan`: each bucket's rows of all of them as one
/// file (a PUT per bucket and item, not per bucket and shard), then each shard's quarantined
/// rows and meta ([`save`]). Returns the rows read.
pub fn save_item(store: &dyn Store, keys: Keys, plan: &Plan, item: usize, outputs: Vec<ShardOutput>) -> Result<usize, PipelineError> {
    let mut by_bucket: Vec<Vec<Table>> = vec![Vec::new(); plan.buckets];
    let mut metas = Vec::with_capacity(outputs.len());
    for mut output in outputs {
        for (bucket, rows) in std::mem::take(&mut output.buckets).into_iter().enumerate() {
            by_bucket[bucket].push(rows);
        }
        metas.push(output);
    }
    // No file when no shard of the item parsed: no bucket step reads it.
    if by_bucket.iter().any(|tables| !tables.is_empty()) {
        by_bucket.into_par_iter().enumerate().try_for_each(|(bucket, tables)| {
            let mut rows = mlops_prep::stacked(tables, "stacking a prep item's rows of one bucket")?;
            store.put(&keys.prep_item_bucket(&plan.id, item, bucket), &mlops_prep::to_parquet(&mut rows)?)?;
            Ok::<_, PipelineError>(())
        })?;
    }
    let rows = metas.into_par_iter().map(|output| save(store, keys, &plan.id, output)).collect::<Result<Vec<usize>, _>>()?;
    Ok(rows.into_iter().sum())
}

/// Writes a shard's tables (its buckets' rows only when it is a file read whole again), then
/// its meta, to the shard's fixed keys; returns its rows.
pub fn save(store: &dyn Store, keys: Keys, plan: &str, output: ShardOutput) -> Result<usize, PipelineError> {
    let ShardOutput { meta, quarantined, buckets } = output;
    let key = |part: &str| keys.prep_shard(plan, meta.file, meta.index, part);
    if let Some(mut quarantined) = quarantined.filter(|q| q.height() > 0) {
        store.put(&key(QUARANTINED), &mlops_prep::to_parquet(&mut quarantined)?)?;
    }
    for (bucket, mut rows) in buckets.into_iter().enumerate() {
        store.put(&key(&bucket_part(bucket)), &mlops_prep::to_parquet(&mut rows)?)?;
    }
    store.write_json(&key(META), &meta)?;
    Ok(match meta.outcome {
        Outcome::Parsed { rows, .. } => rows,
        _ => 0,
    })
}

/// Reads back the meta and quarantined rows of shard `at` of `plan` as [`save`] wrote them. A
/// shard without output fails the merge: its map item failed, or never ran.
pub fn load(store: &dyn Store, keys: Keys, plan: &Plan, at: ShardAt) -> Result<ShardOutput, PipelineError> {
    let (file, index) = at;
    let key = |part: &str| keys.prep_shard(&plan.id, file, index, part);
    let meta: ShardMeta = store.read_json(&key(META))?.ok_or_else(|| {
        PipelineError::corrupt(
            &key(META),
            format!("shard {index} of {} has no output: its map item failed or has not run", plan.files[file].key),
        )
    })?;
    let quarantined = match &meta.outcome {
        Outcome::Parsed { .. } => Some(match store.get(&key(QUARANTINED))? {
            Some(bytes) => read_table(bytes, &key(QUARANTINED))?,
            None => Table::default(),
        }),
        _ => None,
    };
    Ok(ShardOutput { meta, quarantined, buckets: Vec::new() })
}

/// Bucket `bucket`'s rows of the shards `admitted` (in plan order), as [`save_item`] and
/// [`save`] wrote them: each file is read once, and only the admitted shards' rows are kept.
pub fn load_bucket(store: &dyn Store, keys: Keys, plan: &Plan, admitted: &[ShardAt], bucket: usize) -> Result<Vec<Table>, PipelineError> {
    // Each file, with the numbers of the admitted shards whose rows it holds.
    let mut sources: Vec<(String, BTreeSet<u32>)> = Vec::new();
    for &at in admitted {
        let (key, number) = match plan.item_of(at) {
            Some(item) => (keys.prep_item_bucket(&plan.id, item, bucket), plan.number(at)?),
            // A file read whole again has its own files, and its first shard's number.
            None => (keys.prep_shard(&plan.id, at.0, at.1, &bucket_part(bucket)), plan.number((at.0, 0))?),
        };
        match sources.iter_mut().find(|(source, _)| *source == key) {
            Some((_, numbers)) => {
                numbers.insert(number);
            }
            None => sources.push((key, BTreeSet::from([number]))),
        }
    }
    sources
        .into_par_iter()
        .map(|(key, numbers)| {
            let bytes = store.get(&key)?.ok_or_else(|| PipelineError::corrupt(&key, "missing although its shards' metas are written"))?;
            Ok(mlops_prep::rows_of_shards(read_table(bytes, &key)?, &numbers)?)
        })
        .collect()
}

fn read_table(bytes: Vec<u8>, key: &str) -> Result<Table, PipelineError> {
    mlops_prep::read_parquet(bytes, key).map_err(|e| PipelineError::corrupt(key, e))
}

/// A raw file read shard by shard: its content hash, and its rows or why it cannot be used.
pub struct FileRead {
    pub content_hash: String,
    /// The shards read: one when a quoted field spans a cut and the file was read whole.
    pub shards: usize,
    pub rows: Result<FileRows, Rejection>,
}

/// A file's rows, as its shards read them.
pub struct FileRows {
    /// Data rows read.
    pub rows: usize,
    /// Valid rows, in the shards' buckets.
    pub valid: usize,
    /// Quarantined rows, numbered in the file.
    pub quarantined: Table,
    /// Remarks that do not stop the file.
    pub notes: Vec<String>,
    /// The shards whose rows make the file, in order, each with its buckets when held.
    pub shards: Vec<(ShardAt, Vec<Table>)>,
}

/// Where the shards of a prep keep their bucketed rows: in memory, or at their fixed keys.
#[derive(Clone, Copy)]
pub enum Holding<'k> {
    Memory,
    Store(Keys<'k>),
}

/// Puts the shards of file number `file` back together (`outputs` in shard order). When a cut
/// fell inside a quoted field that holds a line break, the file is read again as one shard,
/// numbered past the planned ones, whose tables are kept as `holding` says.
pub fn assemble(
    store: &dyn Store,
    spec: &Spec,
    plan: &Plan,
    file: usize,
    outputs: Vec<ShardOutput>,
    holding: Holding,
) -> Result<FileRead, PipelineError> {
    let key = plan.files[file].key.as_str();
    let content_hash = content_hash(&outputs.iter().flat_map(|o| o.meta.chunk_hashes.iter().cloned()).collect::<Vec<_>>());
    let shards = outputs.len();
    if let Some(rejection) = outputs.iter().find_map(|o| match &o.meta.outcome {
        Outcome::HeadRejected(rejection) => Some(rejection.clone()),
        _ => None,
    }) {
        return Ok(FileRead { content_hash, shards, rows: Err(rejection) });
    }
    let quotes: Vec<u64> = outputs.iter().map(|o| o.meta.quotes).collect();
    if !mlops_prep::cuts_outside_quotes(&quotes) {
        tracing::info!(file = %key, "a quoted field spans a shard boundary: reading the file as one shard");
        drop(outputs);
        let size = plan.files[file].size;
        let head = read_head(store, spec, key, size)?.map_err(|r| PipelineError::bad_input(format!("{key}: {}", r.reason)))?;
        let index = plan.shards_of(file).len();
        let whole = Shard { file: key.to_string(), index, of: index + 1, start: 0, end: size, file_size: size };
        // The file's content hash is its planned shards'.
        let records = Records { chunk_hashes: Vec::new(), ..read_records(store, spec, &head, &whole)? };
        let mut output = ShardOutput::parsed(plan, (file, index), head.lines, records)?;
        if let Holding::Store(keys) = holding {
            let buckets = std::mem::take(&mut output.buckets);
            save(store, keys, &plan.id, ShardOutput { meta: output.meta.clone(), quarantined: None, buckets })?;
        }
        return Ok(FileRead { content_hash, shards: 1, rows: join(key, vec![output]) });
    }
    Ok(FileRead { content_hash, shards, rows: join(key, outputs) })
}

/// Puts a file's shards (in order) back together, or names the first shard's problem at its
/// line in the file.
fn join(key: &str, outputs: Vec<ShardOutput>) -> Result<FileRows, Rejection> {
    let mut lines = outputs.first().map_or(0, |o| o.meta.header_lines);
    let (mut valid, mut notes) = (0, Vec::new());
    let mut quarantined = Vec::with_capacity(outputs.len());
    let mut shards = Vec::with_capacity(outputs.len());
    for output in outputs {
        match output.meta.outcome {
            Outcome::Parsed { rows, valid: shard_valid, notes: shard_notes } => {
                valid += shard_valid;
                notes = shard_notes;
                quarantined.push((rows, output.quarantined.unwrap_or_default()));
                shards.push(((output.meta.file, output.meta.index), output.buckets));
            }
            Outcome::Unusable(problem) => return Err(problem.rejection(key, lines)),
            Outcome::HeadRejected(rejection) => return Err(rejection),
        }
        lines += output.meta.lines;
    }
    let (rows, quarantined) = mlops_prep::number_quarantined(key, quarantined)?;
    Ok(FileRows { rows, valid, quarantined, notes, shards })
}
