//! Prep's reading of raw files, shard by shard: a file is cut by size, each shard reads its byte
//! range from the store and parses the records that start in it, and the shards are put back
//! together as one parsed file (see `mlops_prep`'s shard rules). Shards run in parallel; only
//! the shards being parsed are held as raw text.

use mlops_core::{Spec, Store, chunk_hashes, content_hash};
use mlops_prep::{Head, Parsed, Rejection, Shard, ShardProblem};
use rayon::prelude::*;

use crate::PipelineError;

/// Bytes of a raw file parsed by one shard.
pub const SHARD_BYTES: u64 = 64 << 20;

/// What one shard read: its records' parse, and what putting the file back together checks.
struct ShardRead {
    /// Line ends in the shard's records, for line numbers in messages.
    lines: u64,
    quotes: u64,
    chunk_hashes: Vec<String>,
    parsed: Result<Parsed, ShardProblem>,
}

/// A raw file read shard by shard: its content hash, and its parse or why it cannot be used.
pub struct FileRead {
    pub content_hash: String,
    /// The shards read: one when a quoted field spans a cut and the file was read whole.
    pub shards: usize,
    pub parsed: Result<Parsed, Rejection>,
}

/// Reads the raw file `key` of `size` bytes in shards of `shard_bytes`.
pub fn read_file(store: &dyn Store, spec: &Spec, key: &str, size: u64, shard_bytes: u64) -> Result<FileRead, PipelineError> {
    let missing = || PipelineError::bad_input(format!("{key}: no such raw file"));
    let prefix = store.get_range(key, 0..size.min(mlops_prep::HEAD_BYTES))?.ok_or_else(missing)?;
    let shards = mlops_prep::cut_file(key, size, shard_bytes);
    let head = match Head::read(key, &prefix, size, spec) {
        Ok(head) => head,
        Err(rejection) => {
            // The content hash still names the file, so the same bytes are known next time.
            let hashes = shards
                .par_iter()
                .map(|shard| Ok(chunk_hashes(&range(store, key, shard.start..shard.end)?)))
                .collect::<Result<Vec<_>, PipelineError>>()?;
            return Ok(FileRead { content_hash: content_hash(&hashes.concat()), shards: shards.len(), parsed: Err(rejection) });
        }
    };
    let reads = shards.par_iter().map(|shard| read_shard(store, spec, &head, shard)).collect::<Result<Vec<_>, PipelineError>>()?;
    let content = content_hash(&reads.iter().flat_map(|r| r.chunk_hashes.iter().cloned()).collect::<Vec<_>>());
    let quotes: Vec<u64> = reads.iter().map(|r| r.quotes).collect();
    if !mlops_prep::cuts_outside_quotes(&quotes) {
        // A cut fell inside a quoted field that holds a line break: the file is read whole.
        tracing::info!(file = %key, "a quoted field spans a shard boundary: reading the file as one shard");
        let whole = Shard { file: key.to_string(), index: 0, of: 1, start: 0, end: size, file_size: size };
        let read = read_shard(store, spec, &head, &whole)?;
        return Ok(FileRead { content_hash: content, shards: 1, parsed: finish(key, head.lines, vec![read]) });
    }
    Ok(FileRead { content_hash: content, shards: reads.len(), parsed: finish(key, head.lines, reads) })
}

/// Bytes `range` of the raw file `key`, which must exist.
fn range(store: &dyn Store, key: &str, range: std::ops::Range<u64>) -> Result<Vec<u8>, PipelineError> {
    store.get_range(key, range)?.ok_or_else(|| PipelineError::bad_input(format!("{key}: the raw file disappeared while it was read")))
}

/// Reads and parses one shard. A panic while parsing (a bug, never expected) rejects the file
/// with the panic's message instead of failing every later run on the same file.
fn read_shard(store: &dyn Store, spec: &Spec, head: &Head, shard: &Shard) -> Result<ShardRead, PipelineError> {
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
    Ok(ShardRead { lines: mlops_prep::line_ends(records), quotes: mlops_prep::quotes(records), chunk_hashes: hashes, parsed })
}

/// Puts a file's shards back together, or names the first shard's problem at its line in the
/// file, after the header's `header_lines` line ends.
fn finish(key: &str, header_lines: u64, reads: Vec<ShardRead>) -> Result<Parsed, Rejection> {
    let mut parts = Vec::with_capacity(reads.len());
    let mut lines = header_lines;
    for read in reads {
        parts.push(read.parsed.map_err(|problem| problem.rejection(key, lines))?);
        lines += read.lines;
    }
    mlops_prep::combine(key, parts)
}
