//! Batch scoring: every row of a CSV file scored by the production model, a chunk at a time so
//! that a file of any size streams through. Rows are checked by the column rules `/predict`
//! applies ([`RowSchema::check_text`]: CSV values are text, so their JSON types are not checked);
//! a row that breaks the schema goes to the rejects file with
//! its line and the reason, never silently dropped. Each prediction is logged like a served one,
//! so drift monitoring sees it and delayed labels (`mlops feedback`) join it by its id.
//!
//! [`score_csv`] scores a stream in one process; [`sharded`] scores a stored file in shards, as
//! the scoring state machine runs them on a Distributed Map. Both score each record the same way
//! ([`Batch`]), so a file's outputs are the same however it was cut.

pub mod sharded;

use std::io::{Read, Write};

use jiff::Timestamp;
use mlops_core::canary::Role;
use mlops_core::contracts::ScoreSummary;
use mlops_core::{Cell, Keys, LogContext, ModelArtifact, Predicted, RawRow, Registry, RowSchema, Scored, Store, score};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::PipelineError;

/// Rows scored, and logged as one inference log file, at a time.
pub const CHUNK_ROWS: usize = 16_384;

/// The columns batch scoring adds after the file's own.
const PREDICTION_ID: &str = "prediction_id";
const PREDICTION: &str = "prediction";
const MODEL_VERSION: &str = "model_version";
const PROBABILITY: &str = "probability_";
/// The columns of the rejects file before the rejected record's own fields.
const REJECT_COLUMNS: [&str; 2] = ["line", "reason"];

/// Scores the CSV `input` (named `file` in errors) with the production model of `dataset`:
/// scored rows, with their prediction id, prediction, class probabilities and model version after
/// the file's own columns, go to `output`; rows that break the schema go to `rejects` with their
/// line and the reason.
pub fn score_csv(
    store: &dyn Store,
    dataset: &str,
    file: &str,
    input: impl Read,
    output: impl Write,
    rejects: impl Write,
) -> Result<ScoreSummary, PipelineError> {
    let batch = Batch::production(store, dataset)?;
    batch.score_stream(store, file, input, output, rejects, Timestamp::now())
}

/// A batch: its id, and the model version that scores all of it.
pub struct Batch {
    dataset: String,
    version: String,
    id: String,
    artifact: ModelArtifact,
    schema: RowSchema,
}

/// Rows read, scored and rejected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
struct Counts {
    rows: usize,
    scored: usize,
    rejected: usize,
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, other: Counts) {
        self.rows += other.rows;
        self.scored += other.scored;
        self.rejected += other.rejected;
    }
}

impl Batch {
    /// A new batch of `dataset`, scored by its production version.
    pub fn production(store: &dyn Store, dataset: &str) -> Result<Batch, PipelineError> {
        let (production, _) = Registry::new(store, dataset)
            .production()?
            .ok_or_else(|| PipelineError::bad_input(format!("'{dataset}' has no production model to score with")))?;
        let id = format!("score-{}-{}", Timestamp::now().strftime("%Y%m%dT%H%M%S"), &uuid::Uuid::new_v4().simple().to_string()[..6]);
        Batch::pinned(store, dataset, &production.version, id)
    }

    /// Batch `id` of `dataset`, scored by `version`: a plan pins both, so that every shard of a
    /// file scores alike even if the pointer moves meanwhile.
    pub fn pinned(store: &dyn Store, dataset: &str, version: &str, id: String) -> Result<Batch, PipelineError> {
        let artifact = Registry::new(store, dataset).artifact(version)?;
        let schema = RowSchema::new(&artifact.spec()?);
        Ok(Batch { dataset: dataset.to_string(), version: version.to_string(), id, artifact, schema })
    }

    /// What scoring the batch did: `counts`, in `log_files` inference log files.
    fn summary(&self, counts: Counts, log_files: usize) -> ScoreSummary {
        ScoreSummary {
            dataset: self.dataset.clone(),
            version: self.version.clone(),
            batch: self.id.clone(),
            rows: counts.rows,
            scored: counts.scored,
            rejected: counts.rejected,
            log_files,
        }
    }

    /// The columns of the scored rows: the file's, then those scoring adds, which the file must
    /// not have.
    fn output_columns(&self, file: &str, header: &Header) -> Result<Vec<String>, PipelineError> {
        let added: Vec<String> = [PREDICTION_ID, PREDICTION]
            .into_iter()
            .map(str::to_string)
            .chain(self.artifact.target.labels().iter().map(|label| format!("{PROBABILITY}{label}")))
            .chain([MODEL_VERSION.to_string()])
            .collect();
        if let Some(taken) = added.iter().find(|name| header.names.contains(name)) {
            return Err(PipelineError::bad_input(format!("{file}: the column '{taken}' is one batch scoring adds; rename it")));
        }
        Ok(header.names.iter().cloned().chain(added).collect())
    }

    /// The name of log file `part` of the batch's shard `shard` (none when it is scored whole),
    /// logged at `at`: sortable by time, then by batch and part.
    fn log_name(&self, at: Timestamp, shard: Option<usize>, part: usize) -> String {
        let shard = shard.map(|shard| format!("-s{shard:05}")).unwrap_or_default();
        format!("{}-{}{shard}-p{part:05}", at.strftime("%H%M%S%.3f"), self.id)
    }

    /// Scores a whole CSV stream, header first; its chunks are logged under the time `at`.
    fn score_stream(
        &self,
        store: &dyn Store,
        file: &str,
        input: impl Read,
        output: impl Write,
        rejects: impl Write,
        at: Timestamp,
    ) -> Result<ScoreSummary, PipelineError> {
        let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(input);
        let header = Header::read(&mut reader, file, &self.schema)?;
        let (mut output, mut rejects) = (csv::Writer::from_writer(output), csv::WriterBuilder::new().flexible(true).from_writer(rejects));
        output.write_record(self.output_columns(file, &header)?).map_err(|e| written(file, e))?;
        rejects
            .write_record(REJECT_COLUMNS.iter().copied().chain(header.names.iter().map(String::as_str)))
            .map_err(|e| written(file, e))?;
        let mut log_files = 0;
        let counts = self.score_records(file, &header, reader.into_byte_records(), 0, &mut output, &mut rejects, &mut |log| {
            let key = Keys { dataset: &self.dataset }.inference(&at.strftime("%Y-%m-%d").to_string(), &self.log_name(at, None, log_files));
            store.put(&key, &log)?;
            log_files += 1;
            Ok(())
        })?;
        output.flush().map_err(|e| written(file, e.into()))?;
        rejects.flush().map_err(|e| written(file, e.into()))?;
        Ok(self.summary(counts, log_files))
    }

    /// Scores `records` a chunk at a time: scored rows to `output`, rejected ones to `rejects`
    /// (at their line as the reader counts it), each chunk's log lines to `log`. `offset` is the
    /// file offset of the reader's first byte: a row without an id is named by its offset in the
    /// file, wherever it was cut.
    #[allow(clippy::too_many_arguments)]
    fn score_records<R: Read>(
        &self,
        file: &str,
        header: &Header,
        mut records: csv::ByteRecordsIntoIter<R>,
        offset: u64,
        output: &mut csv::Writer<impl Write>,
        rejects: &mut csv::Writer<impl Write>,
        log: &mut dyn FnMut(Vec<u8>) -> Result<(), PipelineError>,
    ) -> Result<Counts, PipelineError> {
        let labels = self.artifact.target.labels();
        let mut counts = Counts::default();
        loop {
            let mut chunk = Vec::with_capacity(CHUNK_ROWS);
            for record in records.by_ref().take(CHUNK_ROWS) {
                chunk.push(record.map_err(|e| PipelineError::bad_input(format!("{file}: not a readable CSV file: {e}")))?);
            }
            if chunk.is_empty() {
                return Ok(counts);
            }
            counts.rows += chunk.len();
            let scored = self.chunk(file, header, &chunk, offset)?;
            let mut lines = Vec::new();
            for (record, outcome) in chunk.iter().zip(scored) {
                match outcome {
                    Ok(row) => {
                        let mut fields: Vec<String> = vec![row.id.clone(), prediction_text(&row.scored, labels)];
                        fields.extend(row.scored.probabilities().unwrap_or_default().iter().map(f64::to_string));
                        fields.push(self.version.clone());
                        output.write_record(record.iter().chain(fields.iter().map(String::as_bytes))).map_err(|e| written(file, e))?;
                        lines.extend_from_slice(row.line.as_bytes());
                        lines.push(b'\n');
                        counts.scored += 1;
                    }
                    Err(reason) => {
                        let line = record.position().map_or(0, csv::Position::line).to_string();
                        rejects
                            .write_record([line.as_bytes(), reason.as_bytes()].into_iter().chain(record.iter()))
                            .map_err(|e| written(file, e))?;
                        counts.rejected += 1;
                    }
                }
            }
            if !lines.is_empty() {
                log(lines)?;
            }
        }
    }

    /// Each record's scored row, or why it was rejected.
    fn chunk(
        &self,
        file: &str,
        header: &Header,
        records: &[csv::ByteRecord],
        offset: u64,
    ) -> Result<Vec<Result<ScoredRow, String>>, PipelineError> {
        let checked: Vec<Result<CheckedRecord, String>> = records.par_iter().map(|r| self.check(header, r)).collect();
        let mut rows = Vec::with_capacity(checked.len());
        let mut good = Vec::with_capacity(checked.len());
        for row in checked {
            rows.push(row.map(|CheckedRecord { id, logged, cells }| {
                good.push(cells);
                (id, logged)
            }));
        }
        let mut scored = score(&self.artifact, &self.schema, &good)
            .map_err(|e| PipelineError::bad_input(format!("{file}: rows could not be scored: {e}")))?
            .into_iter();
        let time = Timestamp::now().to_string();
        let context = LogContext {
            request_id: &self.id,
            time: &time,
            model_version: &self.version,
            role: Role::Champion,
            labels: self.artifact.target.labels(),
        };
        Ok(records
            .iter()
            .zip(rows)
            .map(|(record, row)| {
                let (id, logged) = row?;
                let Some(scored) = scored.next().flatten() else {
                    return Err(format!("model {} produced no finite prediction", self.version));
                };
                let id = id.unwrap_or_else(|| format!("{}-{}", self.id, offset + record.position().map_or(0, csv::Position::byte)));
                let line = context.line(&id, &logged, &scored);
                Ok(ScoredRow { id, scored, line })
            })
            .collect())
    }

    /// A record read as the JSON object `/predict` would receive (every value a string, as CSV
    /// has no types) and checked, or why it breaks the schema.
    fn check(&self, header: &Header, record: &csv::ByteRecord) -> Result<CheckedRecord, String> {
        let names = &header.names;
        if record.len() != names.len() {
            return Err(format!("{} fields where the header has {}", record.len(), names.len()));
        }
        let mut text = String::from("{");
        for (i, (json_name, value)) in header.json_names.iter().zip(record.iter()).enumerate() {
            let value = std::str::from_utf8(value).map_err(|_| format!("field '{}': not UTF-8 text", names[i]))?;
            if i > 0 {
                text.push(',');
            }
            text.push_str(json_name);
            text.push(':');
            text.push_str(&serde_json::to_string(value).expect("strings serialise"));
        }
        text.push('}');
        let raw = RawValue::from_string(text).expect("names and strings make a JSON object");
        let row = RawRow::parse(&raw);
        let cells = self.schema.check_text(&row, 0).map_err(|e| e.problem.to_string())?;
        Ok(CheckedRecord { id: self.schema.id_of(&row), logged: self.schema.logged(&row), cells })
    }
}

fn written(file: &str, error: csv::Error) -> PipelineError {
    PipelineError::bad_input(format!("{file}: writing the scores: {error}"))
}

/// The file's column names, and each one's name as a JSON string.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Header {
    names: Vec<String>,
    json_names: Vec<String>,
}

impl Header {
    /// Reads the header and checks it against the schema: every column must be one the model
    /// knows and every column it requires must be there, so that a wrong file fails once, not on
    /// each row.
    fn read<R: Read>(reader: &mut csv::Reader<R>, file: &str, schema: &RowSchema) -> Result<Header, PipelineError> {
        let record = reader.byte_headers().map_err(|e| PipelineError::bad_input(format!("{file}: not a readable CSV header: {e}")))?;
        let names = record
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let name = std::str::from_utf8(name)
                    .map_err(|_| PipelineError::bad_input(format!("{file}: header column {} is not UTF-8 text", i + 1)))?;
                Ok(name.trim_start_matches('\u{feff}').trim().to_string())
            })
            .collect::<Result<Vec<String>, PipelineError>>()?;
        if let Some(unknown) = names.iter().find(|name| !schema.accepts(name)) {
            let inputs: Vec<&str> = schema.columns().map(|(column, _)| column.name.as_str()).collect();
            return Err(PipelineError::bad_input(format!(
                "{file}: the column '{unknown}' is not in the model's schema (its inputs: {})",
                inputs.join(", ")
            )));
        }
        if let Some((missing, _)) = schema.columns().find(|(column, required)| *required && !names.contains(&column.name)) {
            return Err(PipelineError::bad_input(format!("{file}: no column '{}', which the model requires", missing.name)));
        }
        let json_names = names.iter().map(|name| serde_json::to_string(name).expect("strings serialise")).collect();
        Ok(Header { names, json_names })
    }
}

/// What scoring keeps of a record that keeps the schema, all taken from its one parse: its id
/// field (if the spec has one and it is set), its logged fields and its checked cells.
struct CheckedRecord {
    id: Option<String>,
    logged: Box<RawValue>,
    cells: Vec<Cell>,
}

/// A scored row: its prediction id, prediction and inference log line.
struct ScoredRow {
    id: String,
    scored: Scored,
    line: String,
}

/// A prediction as a CSV field: the value, or the class label.
fn prediction_text(scored: &Scored, labels: &[String]) -> String {
    match scored.predicted(labels) {
        Predicted::Number(value) => value.to_string(),
        Predicted::Label(label) => label.into_owned(),
    }
}

#[cfg(test)]
mod tests;
