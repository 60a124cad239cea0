//! Cutting a raw file into shards that are parsed apart and put back together as if the file
//! had been parsed whole.
//!
//! A plan cuts a file by size alone ([`cut_file`]), without reading it. Each shard reads its
//! file's [`Head`] and the records that start in its byte range ([`record_bounds`]): from the
//! first line start at or after its start to the first line start at or after its end, where the
//! next shard begins, so every line is read once. A line start inside a quoted field (a field may
//! hold a line break) would be wrong; it is found afterwards: each shard counts its double
//! quotes, and a cut after an odd number of quotes lay inside a field ([`cuts_outside_quotes`]).
//! The file is then parsed whole instead. [`combine`] numbers the rows of each shard after those
//! of the shards before it.

use mlops_core::{CONTENT_CHUNK_BYTES, Spec};
use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{Parsed, PrepError, ROW_COLUMN, Rejection, Unreadable, polars_error, quarantine_order, stack};

/// The first bytes of a file a shard reads for its header: a longer header is refused.
pub const HEAD_BYTES: u64 = 1 << 20;

/// A file's header, checked against the spec, and where its records begin.
#[derive(Debug, Clone)]
pub struct Head {
    /// The header's column names, trimmed.
    pub header: Vec<String>,
    /// The columns read: all but those with a reserved name.
    pub names: Vec<String>,
    /// Remarks that do not stop the file (unknown columns dropped, nullable columns absent).
    pub notes: Vec<String>,
    /// The header record's bytes (without a byte-order mark), put before each piece parsed.
    pub header_record: Vec<u8>,
    /// The byte offset in the file where the records begin.
    pub body_start: u64,
    /// Line ends before `body_start`.
    pub lines: u64,
}

impl Head {
    /// Reads the header from `prefix`, the first bytes of a file of `file_size` bytes (all of
    /// them, or at least [`HEAD_BYTES`]).
    pub fn read(file: &str, prefix: &[u8], file_size: u64, spec: &Spec) -> Result<Head, Rejection> {
        let reject = |reason: String| Rejection { file: file.to_string(), reason };
        let whole = prefix.len() as u64 == file_size;
        let skipped = if prefix.starts_with(b"\xEF\xBB\xBF") { 3 } else { 0 };
        let text = &prefix[skipped..];
        if whole && text.iter().all(u8::is_ascii_whitespace) {
            return Err(reject("the file is empty".into()));
        }
        let end = crate::header_end(text).map_err(|problem| reject(problem.to_string()))?;
        if !whole && !text[..end].ends_with(b"\n") && !text[..end].ends_with(b"\r") {
            return Err(reject(format!("the header does not end within the first {HEAD_BYTES} bytes")));
        }
        let record = &text[..end];
        if let Err(error) = std::str::from_utf8(record) {
            let (byte, line, column) = utf8_position(record, error.valid_up_to());
            return Err(reject(not_utf8(byte, line, column)));
        }
        let header = crate::read_header(record).map_err(|e| reject(Unreadable::Csv(e.to_string()).to_string()))?;
        let notes = crate::check_header(&header, spec).map_err(|problem| reject(problem.to_string()))?;
        Ok(Head {
            names: crate::readable(&header),
            header,
            notes,
            header_record: record.to_vec(),
            body_start: (skipped + end) as u64,
            lines: line_ends(record),
        })
    }
}

/// Why the records of a shard cannot be used: the whole file is rejected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ShardProblem {
    /// A byte that is not UTF-8, at a line and column counted from the shard's first record.
    NotUtf8 { byte: u8, line: u64, column: u64 },
    /// The CSV reader failed; the reason says how.
    Unreadable(String),
}

impl ShardProblem {
    /// The rejection of the file, whose shard starts after `lines_before` line ends.
    pub fn rejection(&self, file: &str, lines_before: u64) -> Rejection {
        let reason = match self {
            ShardProblem::NotUtf8 { byte, line, column } => not_utf8(*byte, lines_before + line, *column),
            ShardProblem::Unreadable(reason) => reason.clone(),
        };
        Rejection { file: file.to_string(), reason }
    }
}

fn not_utf8(byte: u8, line: u64, column: u64) -> String {
    format!("not UTF-8 text: invalid byte 0x{byte:02x} at line {line}, column {column}")
}

/// The invalid byte at `at` in `bytes`, with its 1-based line and column.
pub(crate) fn utf8_position(bytes: &[u8], at: usize) -> (u8, u64, u64) {
    let line = line_ends(&bytes[..at]) + 1;
    let column = (at - bytes[..at].iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1) + 1) as u64;
    (bytes[at], line, column)
}

/// Line ends (`\n`) in `bytes`.
pub fn line_ends(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| b == b'\n').count() as u64
}

/// Double quotes in `bytes`.
pub fn quotes(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| b == b'"').count() as u64
}

/// One byte range of a raw file, as a plan names it: the shard parses the records that start in
/// it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// The raw file's key.
    pub file: String,
    /// The shard's place in its file, from 0.
    pub index: usize,
    /// The file's number of shards.
    pub of: usize,
    pub start: u64,
    pub end: u64,
    pub file_size: u64,
}

/// Cuts a file of `file_size` bytes into shards of about `shard_bytes`, rounded up to whole
/// content-hash chunks so each shard hashes its own; an empty file is one empty shard.
pub fn cut_file(file: &str, file_size: u64, shard_bytes: u64) -> Vec<Shard> {
    cut_bytes(file, file_size, shard_bytes.max(1).div_ceil(CONTENT_CHUNK_BYTES).saturating_mul(CONTENT_CHUNK_BYTES))
}

/// Cuts a file of `file_size` bytes into shards of `shard_bytes` (the last one shorter), for
/// readers that hash nothing; an empty file is one empty shard.
pub fn cut_bytes(file: &str, file_size: u64, shard_bytes: u64) -> Vec<Shard> {
    let size = shard_bytes.max(1);
    let of = file_size.div_ceil(size).max(1) as usize;
    (0..of)
        .map(|index| {
            let start = index as u64 * size;
            Shard { file: file.to_string(), index, of, start, end: start.saturating_add(size).min(file_size), file_size }
        })
        .collect()
}

impl Shard {
    /// The bytes a shard reads first: from the byte before its start (which tells whether the
    /// start is a line start) to a little past its end, for the line that ends after it.
    pub fn window(&self) -> std::ops::Range<u64> {
        self.start.saturating_sub(1)..(self.end + WINDOW_SLACK).min(self.file_size)
    }
}

/// Bytes read past a shard's end at first, and more at a time while its last line goes on.
pub const WINDOW_SLACK: u64 = 64 << 10;

/// The file offsets where the shard's records begin and end, found in `window`, the file's bytes
/// from `window_start` (which is [`Shard::window`]'s start); `None` when the window ends before
/// the line that holds the shard's end does (the caller reads further). Records begin at
/// `body_start` at the earliest.
pub fn record_bounds(window: &[u8], window_start: u64, shard: &Shard, body_start: u64) -> Option<(u64, u64)> {
    let window_end = window_start + window.len() as u64;
    let line_start = |at: u64| -> Option<u64> {
        if at <= body_start {
            return Some(body_start);
        }
        if at >= shard.file_size {
            return Some(shard.file_size);
        }
        let from = (at - 1 - window_start) as usize;
        match window[from..].iter().position(|&b| b == b'\n') {
            Some(offset) => Some(window_start + (from + offset) as u64 + 1),
            None => (window_end == shard.file_size).then_some(shard.file_size),
        }
    };
    Some((line_start(shard.start)?, line_start(shard.end)?))
}

/// Whether every cut between shards of one file lies outside quoted fields: the quotes before
/// each cut (`quotes[i]` are those of shard `i`'s records) come in pairs.
pub fn cuts_outside_quotes(quotes: &[u64]) -> bool {
    let mut before = 0;
    quotes.iter().all(|q| {
        let even = before % 2 == 0;
        before += q;
        even
    })
}

/// Puts the parsed shards of one file back together, in order: the rows of a shard are numbered
/// after those of the shards before it. A file without a data row is refused.
pub fn combine(file: &str, parts: Vec<Parsed>) -> Result<Parsed, Rejection> {
    let reject = |error: PrepError| Rejection { file: file.to_string(), reason: error.to_string() };
    let notes = parts.first().map(|p| p.notes.clone()).unwrap_or_default();
    let (valid, quarantined): (Vec<DataFrame>, Vec<(usize, DataFrame)>) =
        parts.into_iter().map(|part| (part.valid, (part.rows, part.quarantined))).unzip();
    let (rows, quarantined) = number_quarantined(file, quarantined)?;
    let valid = stack(valid).map_err(reject)?;
    Ok(Parsed { file: file.to_string(), rows, valid, quarantined, notes })
}

/// The quarantined rows of one file's shards (each with the rows it read, in order), numbered
/// in the file: the rows of a shard after those of the shards before it. Returns the file's
/// rows too; a file without a data row is refused.
pub fn number_quarantined(file: &str, parts: Vec<(usize, DataFrame)>) -> Result<(usize, DataFrame), Rejection> {
    let reject = |error: PrepError| Rejection { file: file.to_string(), reason: error.to_string() };
    let (mut quarantined, mut rows) = (Vec::with_capacity(parts.len()), 0usize);
    for (part_rows, mut part) in parts {
        if rows > 0 && part.height() > 0 {
            let context = || format!("numbering the quarantined rows of {file}");
            let numbers =
                part.column(ROW_COLUMN).and_then(|c| c.cast(&DataType::UInt32)).map_err(polars_error(context())).map_err(reject)?;
            let shifted = numbers.u32().map_err(polars_error(context())).map_err(reject)? + rows as u32;
            let shifted = shifted.into_series().with_name(ROW_COLUMN.into());
            part.with_column(shifted.into()).map_err(polars_error(context())).map_err(reject)?;
        }
        rows += part_rows;
        quarantined.push(part);
    }
    if rows == 0 {
        return Err(Rejection { file: file.to_string(), reason: "the file has a header but no data rows".into() });
    }
    Ok((rows, stack(quarantined).and_then(quarantine_order).map_err(reject)?))
}
