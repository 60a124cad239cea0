//! Batch scoring: every row of a CSV file scored by the production model, a chunk at a time so
//! that a file of any size streams through. Rows are checked as `/predict` checks a request's
//! (the same [`RowSchema::check`]); a row that breaks the schema goes to the rejects file with
//! its line and the reason, never silently dropped. Each prediction is logged like a served one,
//! so drift monitoring sees it and delayed labels (`mlops feedback`) join it by its id.

use std::io::{Read, Write};

use mlops_core::canary::Role;
use mlops_core::{Cell, Keys, LogContext, ModelArtifact, Predicted, RawRow, Registry, RowSchema, Scored, Store, score};
use rayon::prelude::*;
use serde::Serialize;
use serde_json::value::RawValue;

use crate::PipelineError;

/// Rows scored, and logged as one inference log file, at a time.
pub const CHUNK_ROWS: usize = 16_384;

/// The columns batch scoring adds after the file's own.
const PREDICTION_ID: &str = "prediction_id";
const PREDICTION: &str = "prediction";
const MODEL_VERSION: &str = "model_version";
const PROBABILITY: &str = "probability_";

/// What a batch scoring did.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ScoreSummary {
    pub dataset: String,
    /// The model version that scored every row.
    pub version: String,
    /// The batch's id: the request id of its log lines and the prefix of its prediction ids.
    pub batch: String,
    /// Data rows read.
    pub rows: usize,
    pub scored: usize,
    pub rejected: usize,
    /// Inference log files written.
    pub log_files: usize,
}

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
    let registry = Registry::new(store, dataset);
    let (production, _) =
        registry.production()?.ok_or_else(|| PipelineError::bad_input(format!("'{dataset}' has no production model to score with")))?;
    let artifact = registry.artifact(&production.version)?;
    let schema = RowSchema::new(&artifact.spec()?);
    let now = jiff::Timestamp::now();
    let batch = format!("score-{}-{}", now.strftime("%Y%m%dT%H%M%S"), &uuid::Uuid::new_v4().simple().to_string()[..6]);

    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(input);
    let header = read_header(&mut reader, file, &schema)?;
    let labels = artifact.target.labels();
    let written = |e: csv::Error| PipelineError::bad_input(format!("{file}: writing the scores: {e}"));
    let mut output = csv::Writer::from_writer(output);
    let added: Vec<String> = [PREDICTION_ID, PREDICTION]
        .into_iter()
        .map(str::to_string)
        .chain(labels.iter().map(|label| format!("{PROBABILITY}{label}")))
        .chain([MODEL_VERSION.to_string()])
        .collect();
    if let Some(taken) = added.iter().find(|name| header.names.contains(name)) {
        return Err(PipelineError::bad_input(format!("{file}: the column '{taken}' is one batch scoring adds; rename it")));
    }
    output.write_record(header.names.iter().chain(&added)).map_err(written)?;
    let mut rejects = csv::WriterBuilder::new().flexible(true).from_writer(rejects);
    rejects.write_record(["line", "reason"].into_iter().chain(header.names.iter().map(String::as_str))).map_err(written)?;

    let scoring = Scoring { file, artifact: &artifact, schema: &schema, version: &production.version, batch: &batch, header: &header };
    let mut summary = ScoreSummary {
        dataset: dataset.to_string(),
        version: production.version.clone(),
        batch: batch.clone(),
        rows: 0,
        scored: 0,
        rejected: 0,
        log_files: 0,
    };
    let mut records = reader.into_byte_records();
    loop {
        let mut chunk = Vec::with_capacity(CHUNK_ROWS);
        for record in records.by_ref().take(CHUNK_ROWS) {
            let record = record.map_err(|e| PipelineError::bad_input(format!("{file}: not a readable CSV file: {e}")))?;
            chunk.push(record);
        }
        if chunk.is_empty() {
            break;
        }
        summary.rows += chunk.len();
        let scored = scoring.chunk(&chunk)?;
        let mut log = Vec::new();
        for (record, outcome) in chunk.iter().zip(scored) {
            match outcome {
                Ok(row) => {
                    let mut fields: Vec<String> = vec![row.id.clone(), prediction_text(&row.scored, labels)];
                    fields.extend(row.scored.probabilities().unwrap_or_default().iter().map(f64::to_string));
                    fields.push(production.version.clone());
                    output.write_record(record.iter().chain(fields.iter().map(String::as_bytes))).map_err(written)?;
                    log.extend_from_slice(row.line.as_bytes());
                    log.push(b'\n');
                    summary.scored += 1;
                }
                Err(reason) => {
                    let line = record.position().map_or(0, csv::Position::line).to_string();
                    rejects.write_record([line.as_bytes(), reason.as_bytes()].into_iter().chain(record.iter())).map_err(written)?;
                    summary.rejected += 1;
                }
            }
        }
        if !log.is_empty() {
            let name = format!("{}-{}-p{:05}", now.strftime("%H%M%S%.3f"), batch, summary.log_files);
            store.put(&Keys { dataset }.inference(&now.strftime("%Y-%m-%d").to_string(), &name), &log)?;
            summary.log_files += 1;
        }
    }
    output.flush().map_err(|e| written(e.into()))?;
    rejects.flush().map_err(|e| written(e.into()))?;
    Ok(summary)
}

/// The file's column names, and each one's name as a JSON string.
struct Header {
    names: Vec<String>,
    json_names: Vec<String>,
}

/// Reads the header and checks it against the schema: every column must be one the model knows
/// and every column it requires must be there, so that a wrong file fails once, not on each row.
fn read_header<R: Read>(reader: &mut csv::Reader<R>, file: &str, schema: &RowSchema) -> Result<Header, PipelineError> {
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

/// What scoring one batch needs.
struct Scoring<'a> {
    file: &'a str,
    artifact: &'a ModelArtifact,
    schema: &'a RowSchema,
    version: &'a str,
    batch: &'a str,
    header: &'a Header,
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

impl Scoring<'_> {
    /// Each record's scored row, or why it was rejected.
    fn chunk(&self, records: &[csv::ByteRecord]) -> Result<Vec<Result<ScoredRow, String>>, PipelineError> {
        let checked: Vec<Result<CheckedRecord, String>> = records.par_iter().map(|r| self.check(r)).collect();
        let mut rows = Vec::with_capacity(checked.len());
        let mut good = Vec::with_capacity(checked.len());
        for row in checked {
            rows.push(row.map(|CheckedRecord { id, logged, cells }| {
                good.push(cells);
                (id, logged)
            }));
        }
        let mut scored = score(self.artifact, self.schema, &good)
            .map_err(|e| PipelineError::bad_input(format!("{}: rows could not be scored: {e}", self.file)))?
            .into_iter();
        let time = jiff::Timestamp::now().to_string();
        let context = LogContext {
            request_id: self.batch,
            time: &time,
            model_version: self.version,
            role: Role::Champion,
            labels: self.artifact.target.labels(),
        };
        Ok(records
            .iter()
            .zip(rows)
            .map(|(record, row)| {
                let (id, logged) = row?;
                let line = record.position().map_or(0, csv::Position::line);
                let Some(scored) = scored.next().flatten() else {
                    return Err(format!("model {} produced no finite prediction", self.version));
                };
                let id = id.unwrap_or_else(|| format!("{}-{line}", self.batch));
                let line = context.line(&id, &logged, &scored);
                Ok(ScoredRow { id, scored, line })
            })
            .collect())
    }

    /// A record read as the JSON object `/predict` would receive (every value a string, as CSV
    /// has no types) and checked, or why it breaks the schema.
    fn check(&self, record: &csv::ByteRecord) -> Result<CheckedRecord, String> {
        let names = &self.header.names;
        if record.len() != names.len() {
            return Err(format!("{} fields where the header has {}", record.len(), names.len()));
        }
        let mut text = String::from("{");
        for (i, (json_name, value)) in self.header.json_names.iter().zip(record.iter()).enumerate() {
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
        let cells = self.schema.check(&row, 0).map_err(|e| e.problem.to_string())?;
        Ok(CheckedRecord { id: self.schema.id_of(&row), logged: self.schema.logged(&row), cells })
    }
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
