//! Turning raw CSV files into validated, typed tables with polars.
//!
//! [`parse_csv`] reads one file, coerces every column to its spec type, and separates the rows
//! that break the schema (each with its reason) from the valid ones; a file that cannot be used
//! at all is a [`Rejection`] naming the problem. [`merge`] stacks files and removes duplicate
//! rows; [`to_parquet`] and [`read_parquet`] store the result; [`to_frame`] hands it to training.
//! [`infer`] drafts a spec from a CSV file for `mlops init`.

pub mod infer;
mod row_hash;
mod shard;

pub use shard::{
    HEAD_BYTES, Head, Shard, ShardProblem, WINDOW_SLACK, combine, cut_bytes, cut_file, cuts_outside_quotes, line_ends, number_quarantined,
    quotes, record_bounds,
};

use std::collections::{BTreeMap, BTreeSet};
use std::io::Cursor;
use std::sync::Arc;

use mlops_core::{CellRule, Checked};
use mlops_core::{Column as CoreColumn, Frame};
use mlops_core::{ColumnSpec, ColumnType, RESERVED_FIELDS, Spec};
use polars::prelude::*;
use rayon::prelude::*;

/// Column holding each row's 1-based record number in its file (the header not counted).
pub const ROW_COLUMN: &str = RESERVED_FIELDS[0];
/// Column naming the raw file of a quarantined row.
pub const FILE_COLUMN: &str = RESERVED_FIELDS[1];
/// Column holding the raw line of a row with the wrong number of fields.
pub const TEXT_COLUMN: &str = RESERVED_FIELDS[2];
/// Column holding why a row was quarantined.
pub const REASON_COLUMN: &str = RESERVED_FIELDS[3];
/// Column holding a processed row's place in its batch: the number of the shard it was read in
/// (high 32 bits) and its position among the shard's valid rows (low 32 bits).
pub const ORDER_COLUMN: &str = RESERVED_FIELDS[4];

/// A typed table of rows, as prep hands it on.
pub type Table = DataFrame;

/// The header's columns that are read: all but those with a reserved name.
fn readable(header: &[String]) -> Vec<String> {
    header.iter().filter(|h| !RESERVED_FIELDS.contains(&h.as_str())).cloned().collect()
}

/// What went wrong in prep, beyond single files and rows.
#[derive(Debug, thiserror::Error)]
pub enum PrepError {
    #[error("{context}: {source}")]
    Polars { context: String, source: PolarsError },
    #[error("{0}")]
    Data(String),
}

fn polars_error(context: impl Into<String>) -> impl FnOnce(PolarsError) -> PrepError {
    let context = context.into();
    move |source| PrepError::Polars { context, source }
}

/// Why a whole file cannot be read; its text is the reason of the file's [`Rejection`].
#[derive(Debug, thiserror::Error)]
enum Unreadable {
    #[error("not a readable CSV file: {0}")]
    Csv(String),
    #[error("the header repeats column '{0}'")]
    RepeatedColumn(String),
    #[error("no column of dataset '{dataset}' in the header (found: {found}); wrong file or no header row?")]
    NoKnownColumn { dataset: String, found: String },
    #[error("missing column(s): {0}")]
    MissingColumns(String),
    #[error(transparent)]
    Polars(#[from] PolarsError),
    #[error(transparent)]
    Prep(#[from] PrepError),
}

/// A raw file that cannot be used at all.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Rejection {
    pub file: String,
    pub reason: String,
}

/// One parsed file: valid typed rows, quarantined raw rows with reasons.
#[derive(Debug)]
pub struct Parsed {
    pub file: String,
    /// Data rows read.
    pub rows: usize,
    /// Typed rows in spec column order (ignored columns dropped).
    pub valid: DataFrame,
    /// Raw text of every column of the rows that break the schema, with `_file`, `_row` and
    /// `_reason`.
    pub quarantined: DataFrame,
    /// Remarks that do not stop the file (unknown columns dropped, nullable columns absent).
    pub notes: Vec<String>,
}

/// Reads one CSV file against the spec: its [`Head`], then every record as one shard.
pub fn parse_csv(file: &str, bytes: &[u8], spec: &Spec) -> Result<Parsed, Rejection> {
    let head = Head::read(file, bytes, bytes.len() as u64, spec)?;
    let parsed =
        parse_records(file, &head, &bytes[head.body_start as usize..], spec).map_err(|problem| problem.rejection(file, head.lines))?;
    combine(file, vec![parsed])
}

/// Parses whole records of a file (the bytes after its header, or a shard of them), numbered
/// from 1: valid typed rows, and quarantined rows with the file's name and their reasons.
pub fn parse_records(file: &str, head: &Head, records: &[u8], spec: &Spec) -> Result<Parsed, ShardProblem> {
    parse_in_pieces(file, head, records, spec, PIECE_BYTES)
}

/// [`parse_records`], cutting the records into pieces of about `piece_bytes`.
fn parse_in_pieces(file: &str, head: &Head, records: &[u8], spec: &Spec, piece_bytes: usize) -> Result<Parsed, ShardProblem> {
    if let Err(error) = std::str::from_utf8(records) {
        let (byte, line, column) = shard::utf8_position(records, error.valid_up_to());
        return Err(ShardProblem::NotUtf8 { byte, line, column });
    }
    let unreadable = |problem: Unreadable| ShardProblem::Unreadable(problem.to_string());
    // The records are read piece by piece: only one piece's text is held as strings at a time.
    let (mut valid_parts, mut quarantined_parts) = (Vec::new(), Vec::new());
    let (mut start, mut first_row) = (0, 0u32);
    for end in piece_ends(records, piece_bytes) {
        let piece = [&head.header_record[..], &records[start..end]].concat();
        let (valid, quarantined, count) = parse_piece(&piece, &head.header, &head.names, spec, first_row).map_err(unreadable)?;
        valid_parts.push(valid);
        quarantined_parts.push(quarantined);
        first_row += count;
        start = end;
    }
    let valid = stack(valid_parts).map_err(|e| ShardProblem::Unreadable(e.to_string()))?;
    let mut quarantined = stack(quarantined_parts).map_err(|e| ShardProblem::Unreadable(e.to_string()))?;
    let file_names = Series::new(FILE_COLUMN.into(), vec![file; quarantined.height()]);
    quarantined.insert_column(0, file_names.into()).map_err(|e| ShardProblem::Unreadable(e.to_string()))?;
    Ok(Parsed { file: file.to_string(), rows: first_row as usize, valid, quarantined, notes: head.notes.clone() })
}

/// Quarantined rows with the raw text of ragged rows (when any) just before the reason,
/// whichever piece or shard had them first.
fn quarantine_order(quarantined: DataFrame) -> Result<DataFrame, PrepError> {
    if quarantined.column(TEXT_COLUMN).is_err() {
        return Ok(quarantined);
    }
    let mut order: Vec<String> = quarantined.get_column_names().iter().map(ToString::to_string).filter(|n| n != TEXT_COLUMN).collect();
    let at = order.iter().position(|n| n == REASON_COLUMN).unwrap_or(order.len());
    order.insert(at, TEXT_COLUMN.to_string());
    align(&quarantined, &order).map_err(polars_error("ordering quarantined rows"))
}

/// Bytes of CSV text parsed at a time: a file is cut at record ends into pieces of about this
/// size. A piece's text table takes several times its bytes (a 16-byte view per cell), and the
/// shards' pieces are parsed side by side: 8 MiB pieces cut prep's peak at 10M rows by a tenth
/// against 32 MiB ones, at the same speed (docs/SCALING.md).
const PIECE_BYTES: usize = 8 << 20;

/// Where the records of `body` (the bytes after the header) are cut into pieces of about `size`
/// bytes: after a line end outside double quotes, so a quoted field that holds a line break
/// stays whole. The last end is `body.len()`.
fn piece_ends(body: &[u8], size: usize) -> Vec<usize> {
    let mut ends = Vec::new();
    // Whether `body[..scanned]` leaves a quoted field open: quotes, doubled ones included, come
    // in pairs in a well-formed file.
    let (mut scanned, mut in_quotes) = (0, false);
    while body.len() - scanned > size {
        let target = scanned.max(ends.last().copied().unwrap_or(0) + size);
        in_quotes ^= shard::quotes(&body[scanned..target]) % 2 == 1;
        scanned = target;
        let cut = loop {
            let Some(offset) = body[scanned..].iter().position(|&b| b == b'\n' || b == b'"') else { break None };
            let at = scanned + offset;
            scanned = at + 1;
            if body[at] == b'"' {
                in_quotes = !in_quotes;
            } else if !in_quotes {
                break Some(scanned);
            }
        };
        match cut {
            Some(end) if end < body.len() => ends.push(end),
            _ => break,
        }
    }
    ends.push(body.len());
    ends
}

/// Parses one piece of a file (the header, then whole records numbered from `first_row + 1`):
/// its valid typed rows, its quarantined rows and how many records it holds.
fn parse_piece(
    piece: &[u8],
    header: &[String],
    names: &[String],
    spec: &Spec,
    first_row: u32,
) -> Result<(DataFrame, DataFrame, u32), Unreadable> {
    let (mut table, row_numbers, ragged) = read_strings(piece, header, first_row)?;
    let records = (table.height() + ragged.height()) as u32;
    for column in &spec.columns {
        if !names.contains(&column.name) && !spec.ignore.contains(&column.name) {
            let nulls = Series::full_null(column.name.as_str().into(), table.height(), &DataType::String);
            table.with_column(nulls.into())?;
        }
    }
    let (valid, mut quarantined) = coerce(table, spec, names, row_numbers)?;
    if ragged.height() > 0 {
        // The raw text column joins at the end; parse_in_pieces puts it before the reason.
        quarantined = stack(vec![quarantined, ragged])?;
        quarantined.sort_in_place([ROW_COLUMN], SortMultipleOptions::default())?;
    }
    Ok((valid, quarantined, records))
}

/// The byte offset where the data records begin, after the header record.
fn header_end(bytes: &[u8]) -> Result<usize, Unreadable> {
    let mut reader = csv::ReaderBuilder::new().has_headers(true).flexible(true).from_reader(bytes);
    reader.byte_headers().map_err(|e| Unreadable::Csv(e.to_string()))?;
    Ok(reader.position().byte() as usize)
}

/// The columns `names` of `table`, in that order; absent ones are null text.
fn align(table: &DataFrame, names: &[String]) -> PolarsResult<DataFrame> {
    let columns = names
        .iter()
        .map(|name| match table.column(name) {
            Ok(column) => Ok(column.clone()),
            Err(_) => Ok(Series::full_null(name.as_str().into(), table.height(), &DataType::String).into()),
        })
        .collect::<PolarsResult<Vec<_>>>()?;
    DataFrame::new(table.height(), columns)
}

fn read_header(bytes: &[u8]) -> Result<Vec<String>, csv::Error> {
    let mut reader = csv::ReaderBuilder::new().has_headers(true).flexible(true).from_reader(bytes);
    Ok(reader.headers()?.iter().map(|h| h.trim().to_string()).collect())
}

/// Refuses a header that lacks required columns or repeats one; notes the rest.
fn check_header(header: &[String], spec: &Spec) -> Result<Vec<String>, Unreadable> {
    let mut seen = BTreeSet::new();
    if let Some(repeated) = header.iter().find(|h| !seen.insert(h.as_str())) {
        return Err(Unreadable::RepeatedColumn(repeated.clone()));
    }
    let expected: Vec<&ColumnSpec> = spec.columns.iter().filter(|c| !spec.ignore.contains(&c.name)).collect();
    if !expected.iter().any(|c| header.contains(&c.name)) {
        let found = header.iter().take(8).cloned().collect::<Vec<_>>().join(", ");
        return Err(Unreadable::NoKnownColumn { dataset: spec.name.clone(), found });
    }
    let missing: Vec<&str> = expected.iter().filter(|c| !c.nullable && !header.contains(&c.name)).map(|c| c.name.as_str()).collect();
    if !missing.is_empty() {
        return Err(Unreadable::MissingColumns(missing.join(", ")));
    }
    let mut notes = Vec::new();
    let absent: Vec<&str> = expected.iter().filter(|c| !header.contains(&c.name)).map(|c| c.name.as_str()).collect();
    if !absent.is_empty() {
        notes.push(format!("nullable column(s) absent, read as missing: {}", absent.join(", ")));
    }
    let reserved: Vec<&str> = header.iter().filter(|h| RESERVED_FIELDS.contains(&h.as_str())).map(String::as_str).collect();
    if !reserved.is_empty() {
        notes.push(format!("column(s) named like the fields prep adds to rows, not read: {}", reserved.join(", ")));
    }
    let unknown: Vec<&str> =
        header.iter().filter(|h| spec.column(h).is_none() && !RESERVED_FIELDS.contains(&h.as_str())).map(String::as_str).collect();
    if !unknown.is_empty() {
        notes.push(format!("column(s) not in the spec, dropped: {}", unknown.join(", ")));
    }
    Ok(notes)
}

/// Reads every field of the [`readable`] columns as text. Rows with more or fewer fields than
/// the header are split off (with their reason) so one bad line does not cost the whole file.
/// Records are numbered from `first_row + 1`.
fn read_strings(bytes: &[u8], header: &[String], first_row: u32) -> Result<(DataFrame, Option<Vec<u32>>, DataFrame), Unreadable> {
    let width = header.len();
    let kept: Vec<usize> = (0..width).filter(|&i| !RESERVED_FIELDS.contains(&header[i].as_str())).collect();
    let projected = kept.len() < width;
    // Polars names the row number column while it reads, before `named` renames every column:
    // a name no column of the file has, whatever the header holds.
    let index = (0..).map(|i| format!("_index{i}")).find(|name| !header.contains(name)).expect("a free name");
    // Polars reads a cursor over the bytes in place, without a copy of the file.
    let read = |bytes: &[u8]| {
        CsvReadOptions::default()
            .with_has_header(true)
            .with_infer_schema_length(Some(0))
            .with_projection(projected.then(|| Arc::new(kept.clone())))
            .with_row_index(Some(RowIndex { name: index.as_str().into(), offset: first_row + 1 }))
            .into_reader_with_file_handle(Cursor::new(bytes))
            .finish()
    };
    let names = readable(header);
    match read(bytes) {
        Ok(table) if !has_short_rows(bytes, &table, width, projected) => Ok((named(table, &names)?, None, DataFrame::empty())),
        _ => {
            let (good, row_numbers, ragged) = split_ragged(bytes, width, first_row)?;
            let table = read(&good).map_err(|e| Unreadable::Csv(e.to_string()))?;
            Ok((named(table, &names)?, Some(row_numbers), ragged))
        }
    }
}

/// Polars fills missing trailing fields with nulls; a row of all-null trailing fields whose
/// line has fewer separators than the header was short. Checked cheaply on the raw bytes only
/// when some row ends in nulls (always when not every column was read).
fn has_short_rows(bytes: &[u8], table: &DataFrame, width: usize, projected: bool) -> bool {
    let Some(last) = table.columns().last() else { return false };
    (projected || last.null_count() > 0) && {
        let mut reader = csv::ReaderBuilder::new().has_headers(true).flexible(true).from_reader(bytes);
        let mut record = csv::ByteRecord::new();
        let mut short = false;
        while !short && reader.read_byte_record(&mut record).unwrap_or(false) {
            short = record.len() != width;
        }
        short
    }
}

/// Names the columns read by polars as the CSV reader named them in the header (trimmed,
/// quotes unescaped), after the row number column.
fn named(mut table: DataFrame, header: &[String]) -> Result<DataFrame, Unreadable> {
    let names: Vec<PlSmallStr> = std::iter::once(ROW_COLUMN).chain(header.iter().map(String::as_str)).map(PlSmallStr::from).collect();
    if names.len() != table.width() {
        return Err(Unreadable::Csv(format!("the header has {} columns but {} were read", header.len(), table.width() - 1)));
    }
    table.set_column_names(&names)?;
    Ok(table)
}

/// Separates rows whose field count differs from the header's.
fn split_ragged(bytes: &[u8], width: usize, first_row: u32) -> Result<(Vec<u8>, Vec<u32>, DataFrame), Unreadable> {
    let mut reader = csv::ReaderBuilder::new().has_headers(true).flexible(true).from_reader(bytes);
    reader.headers().map_err(|e| Unreadable::Csv(e.to_string()))?;
    let header_end = reader.position().byte() as usize;
    let mut good = bytes[..header_end].to_vec();
    let (mut row_numbers, mut bad_rows, mut bad_text, mut reasons) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut record = csv::ByteRecord::new();
    let mut row = first_row;
    loop {
        let start = reader.position().byte() as usize;
        match reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(Unreadable::Csv(e.to_string())),
        }
        row += 1;
        let end = reader.position().byte() as usize;
        if record.len() == width {
            good.extend_from_slice(&bytes[start..end]);
            if !good.ends_with(b"\n") {
                good.push(b'\n');
            }
            row_numbers.push(row);
        } else {
            bad_rows.push(row);
            bad_text.push(String::from_utf8_lossy(bytes[start..end].trim_ascii_end()).to_string());
            reasons.push(format!("row has {} fields, the header has {width}", record.len()));
        }
    }
    let ragged = DataFrame::new_infer_height(vec![
        Series::new(ROW_COLUMN.into(), bad_rows).into(),
        Series::new(TEXT_COLUMN.into(), bad_text).into(),
        Series::new(REASON_COLUMN.into(), reasons).into(),
    ])?;
    Ok((good, row_numbers, ragged))
}

/// The typed values of one column, and the failures of its rows as `(row position, reason)`.
struct Coerced {
    values: Series,
    failures: Vec<(usize, String)>,
}

/// Types one column of raw text in a single pass with the column's [`CellRule`] (the rule
/// `/predict` applies too). Reasons are only built for the rows that fail.
fn coerce_column(column: &ColumnSpec, text: &StringChunked) -> Coerced {
    let name = column.name.as_str();
    let rule = CellRule::new(column);
    let mut failures = Vec::new();
    let checked = text.iter().enumerate().map(|(row, value)| match rule.check(value.unwrap_or_default()) {
        Ok(Checked::Missing) => None,
        Ok(checked) => Some(checked),
        Err(problem) => {
            failures.push((row, format!("{name}: {problem}")));
            None
        }
    });
    let values = match column.kind {
        ColumnType::Integer => checked.map(|c| c.and_then(|c| c.number()).map(|v| v as i64)).collect::<Int64Chunked>().into_series(),
        ColumnType::Float => checked.map(|c| c.and_then(|c| c.number())).collect::<Float64Chunked>().into_series(),
        ColumnType::Boolean => checked.map(|c| c.and_then(|c| c.number()).map(|v| v == 1.0)).collect::<BooleanChunked>().into_series(),
        ColumnType::Datetime => {
            let millis: Int64Chunked = checked.map(|c| c.and_then(|c| c.number()).map(|s| (s * 1000.0).round() as i64)).collect();
            millis.into_datetime(TimeUnit::Milliseconds, None).into_series()
        }
        ColumnType::Categorical | ColumnType::String => checked
            .map(|c| match c {
                Some(Checked::Text(text)) => Some(text),
                _ => None,
            })
            .collect::<StringChunked>()
            .into_series(),
    };
    Coerced { values: values.with_name(name.into()), failures }
}

/// Coerces the text columns of one file; returns valid typed rows and quarantined raw rows.
fn coerce(table: DataFrame, spec: &Spec, header: &[String], row_numbers: Option<Vec<u32>>) -> PolarsResult<(DataFrame, DataFrame)> {
    let mut table = table;
    if let Some(numbers) = row_numbers {
        table.with_column(Series::new(ROW_COLUMN.into(), numbers).into())?;
    }
    let kept: Vec<&ColumnSpec> = spec.columns.iter().filter(|c| !spec.ignore.contains(&c.name)).collect();
    let texts = kept.iter().map(|c| table.column(&c.name).and_then(|t| t.str().cloned())).collect::<PolarsResult<Vec<_>>>()?;
    let mut coerced: Vec<Coerced> = kept.par_iter().zip(&texts).map(|(column, text)| coerce_column(column, text)).collect();
    // Every reason of a row, in column order.
    let mut reasons: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for (row, reason) in coerced.iter_mut().flat_map(|c| c.failures.drain(..)) {
        reasons.entry(row).or_default().push(reason);
    }
    let bad: BooleanChunked = (0..table.height()).map(|row| reasons.contains_key(&row)).collect();
    let height = table.height();
    let valid = DataFrame::new(height, coerced.into_iter().map(|c| c.values.into()).collect())?.filter(&!&bad)?;
    let mut quarantine_columns: Vec<String> = vec![ROW_COLUMN.into()];
    quarantine_columns.extend(header.iter().cloned());
    let mut quarantined = table.filter(&bad)?.select(quarantine_columns)?;
    let reasons: Vec<String> = reasons.into_values().map(|r| r.join("; ")).collect();
    quarantined.with_column(Series::new(REASON_COLUMN.into(), reasons).into())?;
    Ok((valid, quarantined))
}

/// Stacks typed tables (files, or one bucket's rows from every shard) and removes duplicate
/// rows: the first of equal rows stays, first in the batch's order when the rows carry their
/// [`ORDER_COLUMN`] (the rows are put in that order), else in the tables' order. Returns the
/// table and the duplicates removed.
pub fn merge(tables: Vec<DataFrame>) -> Result<(DataFrame, usize), PrepError> {
    let context = "stacking tables";
    let mut table = stacked(tables, context)?;
    if let Ok(order) = table.column(ORDER_COLUMN) {
        let order = order.clone();
        table = by_order(table, &order, context)?;
    }
    drop_repeated(table)
}

/// Tables of the same columns, one after the other (an empty table when there are none);
/// `context` names them in an error. For tables whose columns may differ, see [`stack`].
pub fn stacked(tables: Vec<DataFrame>, context: &str) -> Result<DataFrame, PrepError> {
    let mut tables = tables.into_iter();
    let Some(mut all) = tables.next() else { return Ok(DataFrame::empty()) };
    for table in tables {
        all.vstack_mut_owned(table).map_err(polars_error(context))?;
    }
    Ok(all)
}

/// The rows of `table` that do not repeat an earlier row (its [`ORDER_COLUMN`], when it has
/// one, not compared), and how many did.
fn drop_repeated(table: DataFrame) -> Result<(DataFrame, usize), PrepError> {
    let repeated = repeated_rows(&table).map_err(polars_error("removing duplicate rows"))?;
    let duplicates = repeated.iter().filter(|&&r| r).count();
    if duplicates == 0 {
        return Ok((table, 0));
    }
    let keep: BooleanChunked = repeated.iter().map(|&r| !r).collect();
    let unique = table.filter(&keep).map_err(polars_error("removing duplicate rows"))?;
    Ok((unique, duplicates))
}

/// The columns of `table` that hold row values: all but [`ORDER_COLUMN`].
fn value_columns(table: &DataFrame) -> Vec<&polars::prelude::Column> {
    table.columns().iter().filter(|c| c.name().as_str() != ORDER_COLUMN).collect()
}

/// The stable hash of each row's values (every column but [`ORDER_COLUMN`]): equal rows hash
/// alike wherever, and by whichever build, they were read.
fn row_hashes(table: &DataFrame) -> PolarsResult<Vec<u64>> {
    row_hash::stable_row_hashes(&value_columns(table), table.height())
}

/// Whether each row repeats an earlier one: every value equal, a missing value equal to a
/// missing one. Rows whose hashes meet are compared.
fn repeated_rows(table: &DataFrame) -> PolarsResult<Vec<bool>> {
    let height = table.height();
    let hashes = row_hashes(table)?;
    // Rows by hash, then position: equal rows meet in one run, the first of them leading. (A
    // table's height fits in u32: polars indexes rows with u32.)
    let mut by_hash: Vec<(u64, u32)> = hashes.into_iter().zip(0u32..).collect();
    by_hash.par_sort_unstable();
    let columns = value_columns(table);
    let same = |a: usize, b: usize| columns.iter().all(|c| c.get(a).ok() == c.get(b).ok());
    let mut repeated = vec![false; height];
    for run in by_hash.chunk_by(|a, b| a.0 == b.0).filter(|run| run.len() > 1) {
        // Distinct rows of the run so far: more than one only when different rows share a hash.
        let mut distinct: Vec<usize> = Vec::new();
        for &(_, row) in run {
            let row = row as usize;
            if distinct.iter().any(|&earlier| same(earlier, row)) {
                repeated[row] = true;
            } else {
                distinct.push(row);
            }
        }
    }
    Ok(repeated)
}

/// Cuts the valid rows of shard number `shard` into `buckets` tables by ranges of the rows'
/// stable hash, so that equal rows of any shards meet in one bucket. Each row keeps its place in the batch in
/// [`ORDER_COLUMN`]; a bucket without rows is an empty table of the same columns.
pub fn into_buckets(mut table: DataFrame, shard: u32, buckets: usize) -> Result<Vec<DataFrame>, PrepError> {
    let context = || format!("cutting the rows of shard {shard} into buckets");
    let buckets = buckets.max(1);
    let base = u64::from(shard) << 32;
    let order: UInt64Chunked = (0..table.height() as u64).map(|row| base | row).collect_ca(ORDER_COLUMN.into());
    let hashes = if buckets > 1 { row_hashes(&table).map_err(polars_error(context()))? } else { Vec::new() };
    table.with_column(order.into_series().into()).map_err(polars_error(context()))?;
    if buckets == 1 {
        return Ok(vec![table]);
    }
    let mut rows: Vec<Vec<IdxSize>> = vec![Vec::new(); buckets];
    for (row, hash) in hashes.into_iter().enumerate() {
        rows[row_hash::bucket_of(hash, buckets)].push(row as IdxSize);
    }
    rows.into_par_iter().map(|rows| table.take(&IdxCa::from_vec("rows".into(), rows)).map_err(polars_error(context()))).collect()
}

/// The parts of a processed batch as one table in the batch's order (by [`ORDER_COLUMN`],
/// which is then dropped).
pub fn in_order(parts: Vec<DataFrame>) -> Result<DataFrame, PrepError> {
    let context = "putting a processed batch's parts in order";
    let mut table = stacked(parts, context)?;
    let Some(order) = table.drop_in_place(ORDER_COLUMN).ok() else { return Ok(table) };
    by_order(table, &order, context)
}

/// The rows of `table` sorted by `order` (one value per row), left as they are when already in
/// order. Columns are put in order one at a time, so the table is held about once.
fn by_order(table: DataFrame, order: &polars::prelude::Column, context: &str) -> Result<DataFrame, PrepError> {
    let values: Vec<u64> = order.u64().map_err(polars_error(context))?.into_no_null_iter().collect();
    if values.is_sorted() {
        return Ok(table);
    }
    let mut positions: Vec<IdxSize> = (0..values.len() as IdxSize).collect();
    positions.par_sort_unstable_by_key(|&row| values[row as usize]);
    let positions = IdxCa::from_vec("rows".into(), positions);
    let height = table.height();
    let mut columns = Vec::with_capacity(table.width());
    for column in table.into_columns() {
        columns.push(column.take(&positions).map_err(polars_error(context))?);
    }
    DataFrame::new(height, columns).map_err(polars_error(context))
}

/// The rows of `table` from the shards numbered `shards` (the high half of [`ORDER_COLUMN`]).
pub fn rows_of_shards(table: DataFrame, shards: &BTreeSet<u32>) -> Result<DataFrame, PrepError> {
    let context = "keeping the rows of the merged shards";
    let order = table.column(ORDER_COLUMN).map_err(polars_error(context))?.u64().map_err(polars_error(context))?;
    let keep: BooleanChunked = order.into_no_null_iter().map(|at| shards.contains(&((at >> 32) as u32))).collect();
    if keep.all() {
        return Ok(table);
    }
    table.filter(&keep).map_err(polars_error(context))
}

/// Stacks tables whose columns may differ (quarantined rows of several files): the union of
/// their columns, in order of first appearance, missing ones null.
pub fn stack(tables: Vec<DataFrame>) -> Result<DataFrame, PrepError> {
    let mut names: Vec<String> = Vec::new();
    for table in &tables {
        for name in table.get_column_names() {
            if !names.iter().any(|n| n == name.as_str()) {
                names.push(name.to_string());
            }
        }
    }
    let mut stacked: Option<DataFrame> = None;
    for table in &tables {
        let aligned = align(table, &names).map_err(polars_error("aligning quarantined rows"))?;
        match &mut stacked {
            None => stacked = Some(aligned),
            Some(all) => {
                all.vstack_mut_owned(aligned).map_err(polars_error("stacking quarantined rows"))?;
            }
        }
    }
    Ok(stacked.unwrap_or_else(DataFrame::empty))
}

/// Parquet bytes of a table, snappy-compressed (as pandas and Spark write by default): several
/// times faster to write than zstd, for files somewhat larger.
pub fn to_parquet(table: &mut DataFrame) -> Result<Vec<u8>, PrepError> {
    let mut bytes = Vec::new();
    write_parquet(table, &mut bytes)?;
    Ok(bytes)
}

/// Writes a table as parquet to `out`, a row group at a time.
pub fn write_parquet(table: &mut DataFrame, out: impl std::io::Write) -> Result<(), PrepError> {
    ParquetWriter::new(out).with_compression(ParquetCompression::Snappy).finish(table).map_err(polars_error("writing parquet"))?;
    Ok(())
}

/// Reads parquet bytes; `key` names them in errors.
pub fn read_parquet(bytes: Vec<u8>, key: &str) -> Result<DataFrame, PrepError> {
    ParquetReader::new(Cursor::new(bytes)).finish().map_err(polars_error(format!("reading {key}")))
}

/// CSV bytes of a table (quarantined rows).
pub fn to_csv(table: &mut DataFrame) -> Result<Vec<u8>, PrepError> {
    let mut bytes = Vec::new();
    CsvWriter::new(&mut bytes).include_header(true).finish(table).map_err(polars_error("writing CSV"))?;
    Ok(bytes)
}

/// The spec columns of a typed table as a core [`Frame`] (columns the table lacks are skipped).
/// Each column of the table is freed once converted, so the two are not held whole together.
pub fn to_frame(table: DataFrame, spec: &Spec) -> Result<Frame, PrepError> {
    let mut by_name: BTreeMap<String, polars::prelude::Column> =
        table.into_columns().into_iter().map(|column| (column.name().to_string(), column)).collect();
    let present: Vec<(&ColumnSpec, polars::prelude::Column)> =
        spec.columns.iter().filter_map(|column| Some((column, by_name.remove(&column.name)?))).collect();
    drop(by_name);
    let columns = present
        .into_par_iter()
        .map(|(column, series)| {
            let context = || format!("converting column '{}'", column.name);
            let converted = match column.kind {
                ColumnType::Integer | ColumnType::Float | ColumnType::Boolean => {
                    let numbers = series.cast(&DataType::Float64).map_err(polars_error(context()))?;
                    CoreColumn::Numeric(numbers.f64().map_err(polars_error(context()))?.iter().map(|v| v.unwrap_or(f64::NAN)).collect())
                }
                ColumnType::Datetime => {
                    let millis = series.cast(&DataType::Int64).map_err(polars_error(context()))?;
                    CoreColumn::Numeric(
                        millis
                            .i64()
                            .map_err(polars_error(context()))?
                            .iter()
                            .map(|v| v.map_or(f64::NAN, |ms| ms as f64 / 1000.0))
                            .collect(),
                    )
                }
                ColumnType::Categorical | ColumnType::String => {
                    let text = series.cast(&DataType::String).map_err(polars_error(context()))?;
                    CoreColumn::categorical(text.str().map_err(polars_error(context()))?.iter())
                }
            };
            Ok((column.name.clone(), converted))
        })
        .collect::<Result<Vec<_>, PrepError>>()?;
    Frame::new(columns).map_err(|e| PrepError::Data(e.to_string()))
}

#[cfg(test)]
mod tests;
