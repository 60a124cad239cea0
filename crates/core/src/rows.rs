//! JSON rows checked against the schema and turned into a [`Frame`]: what a /predict request
//! carries, and what the inference log holds for drift monitoring.
//!
//! Rows are read as [`RawRow`]s: field names and raw JSON values borrowed from the request body
//! or the log line, so checking a row allocates only its checked cells.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use rayon::prelude::*;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::cells::{BadValue, CellRule, Checked};
use crate::features::number_key;
use crate::frame::{Column, Frame};
use crate::spec::{ColumnSpec, ColumnType, Spec};

/// One checked value.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Number(f64),
    Text(String),
    Missing,
}

/// One JSON row as sent: the raw text, and its fields when it is an object.
#[derive(Debug)]
pub struct RawRow<'a> {
    raw: &'a RawValue,
    fields: Option<Vec<(Cow<'a, str>, &'a RawValue)>>,
}

impl<'a> RawRow<'a> {
    /// Splits a JSON value into its fields (none when it is not an object).
    pub fn parse(raw: &'a RawValue) -> RawRow<'a> {
        let fields = raw.get().starts_with('{').then(|| serde_json::from_str::<Fields>(raw.get()).ok().map(|f| f.0)).flatten();
        RawRow { raw, fields }
    }

    /// The row's JSON text, as sent.
    pub fn raw(&self) -> &'a RawValue {
        self.raw
    }

    /// The raw value of field `name` (the last one when a name repeats, as JSON parsers do).
    fn get(&self, name: &str) -> Option<&'a RawValue> {
        self.fields.as_ref()?.iter().rev().find(|(key, _)| key == name).map(|(_, value)| *value)
    }
}

/// The fields of a JSON object, names borrowed unless they hold escapes.
struct Fields<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> serde::Deserialize<'de> for Fields<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldsVisitor;
        impl<'de> Visitor<'de> for FieldsVisitor {
            type Value = Fields<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of fields")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Fields<'de>, M::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(16));
                while let Some(Name(name)) = map.next_key()? {
                    fields.push((name, map.next_value::<&RawValue>()?));
                }
                Ok(Fields(fields))
            }
        }
        deserializer.deserialize_map(FieldsVisitor)
    }
}

/// A field name, borrowed from the input when it has no escapes.
#[derive(serde::Deserialize)]
struct Name<'a>(#[serde(borrow)] Cow<'a, str>);

/// A raw JSON value by kind; strings are unescaped only when they hold escapes.
enum Scalar<'a> {
    Null,
    Bool(bool),
    /// A number, as written (checked by the column's rule like a CSV field).
    Number(&'a str),
    Text(Cow<'a, str>),
    /// An object or an array.
    Composite,
}

fn scalar(raw: &RawValue) -> Scalar<'_> {
    let text = raw.get().trim();
    match text.as_bytes().first() {
        Some(b'n') => Scalar::Null,
        Some(b't') => Scalar::Bool(true),
        Some(b'f') => Scalar::Bool(false),
        Some(b'"') if !text.contains('\\') => Scalar::Text(Cow::Borrowed(&text[1..text.len() - 1])),
        Some(b'"') => serde_json::from_str::<String>(text).map_or(Scalar::Composite, |t| Scalar::Text(Cow::Owned(t))),
        Some(b'{' | b'[') | None => Scalar::Composite,
        Some(_) => Scalar::Number(text),
    }
}

/// The category (or id, or boolean word) a JSON number names: its value's key, so 1 and 1.0
/// are both "1".
fn category_of_number(number: &str) -> String {
    number.parse::<f64>().map_or_else(|_| number.to_string(), number_key)
}

/// A value for an error message: its JSON text, cut at 40 characters.
fn describe(raw: &RawValue) -> String {
    crate::shown::shown(raw.get().trim())
}

/// Rows from which [`RowSchema::frame`] builds columns in parallel.
const PARALLEL_FRAME_ROWS: usize = 10_000;

/// A request row that cannot be used, naming the row and what is wrong with it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("row {row}: {problem}")]
pub struct RowError {
    pub row: usize,
    pub problem: RowProblem,
}

/// What is wrong with a request row.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RowProblem {
    #[error("expected an object of fields, got {0}")]
    NotAnObject(String),
    #[error("unknown field '{0}'")]
    UnknownField(String),
    #[error("missing field '{0}'")]
    MissingField(String),
    #[error("field '{field}': {bad_value}")]
    Field { field: String, bad_value: BadValue },
}

/// The input columns of a spec and how to check them.
#[derive(Debug, Clone)]
pub struct RowSchema {
    inputs: Vec<Input>,
    /// Every field name a row may have: an input (by index) or a tolerated column that is not
    /// read (the target, ignored columns).
    names: HashMap<String, Option<usize>>,
    id: Option<String>,
}

#[derive(Debug, Clone)]
struct Input {
    rule: CellRule,
    required: bool,
}

impl RowSchema {
    pub fn new(spec: &Spec) -> RowSchema {
        let inputs: Vec<Input> = spec.input_columns().map(|c| Input { rule: CellRule::new(c), required: spec.requires(c) }).collect();
        let mut names: HashMap<String, Option<usize>> = spec.ignore.iter().map(|name| (name.clone(), None)).collect();
        names.insert(spec.target.column.clone(), None);
        names.extend(inputs.iter().enumerate().map(|(i, input)| (input.rule.column().name.clone(), Some(i))));
        RowSchema { inputs, names, id: spec.id.clone() }
    }

    /// The input columns, in schema order.
    pub fn columns(&self) -> impl Iterator<Item = (&ColumnSpec, bool)> {
        self.inputs.iter().map(|i| (i.rule.column(), i.required))
    }

    /// Whether a row may carry the field `name`: an input, the target or an ignored column.
    pub fn accepts(&self, name: &str) -> bool {
        self.names.contains_key(name)
    }

    /// Checks one request row as the OpenAPI document states it ([`Self::json_schema`]): each
    /// value has the JSON type of its column (a number for numbers, `true`/`false` for booleans,
    /// a string written exactly for categories and datetimes, `null` for a missing value) and
    /// keeps its column's rule. The error names the row and the field.
    pub fn check(&self, row: &RawRow, index: usize) -> Result<Vec<Cell>, RowError> {
        self.check_as(row, index, Reading::Typed)
    }

    /// Checks one row whose values may all be text: a CSV record, or a logged line (which
    /// holds the values as their caller sent them). Each value keeps its column's rule.
    pub fn check_text(&self, row: &RawRow, index: usize) -> Result<Vec<Cell>, RowError> {
        self.check_as(row, index, Reading::Text)
    }

    fn check_as(&self, row: &RawRow, index: usize, reading: Reading) -> Result<Vec<Cell>, RowError> {
        let fail = |problem: RowProblem| RowError { row: index, problem };
        let fields = row.fields.as_ref().ok_or_else(|| fail(RowProblem::NotAnObject(describe(row.raw))))?;
        let mut values: Vec<Option<&RawValue>> = vec![None; self.inputs.len()];
        // Rows usually list the inputs in schema order: try the next input before the map.
        let mut next = 0;
        for (name, value) in fields {
            let slot = match self.inputs.get(next) {
                Some(input) if input.rule.column().name == name.as_ref() => Some(Some(next)),
                _ => self.names.get(name.as_ref()).copied(),
            };
            match slot {
                Some(Some(i)) => {
                    values[i] = Some(value);
                    next = i + 1;
                }
                Some(None) => {}
                None => return Err(fail(RowProblem::UnknownField(name.to_string()))),
            }
        }
        self.inputs
            .iter()
            .zip(values)
            .map(|(input, value)| {
                let name = &input.rule.column().name;
                match value.map(|raw| (raw, scalar(raw))) {
                    None | Some((_, Scalar::Null)) if input.required => Err(fail(RowProblem::MissingField(name.clone()))),
                    None | Some((_, Scalar::Null)) => Ok(Cell::Missing),
                    Some((raw, value)) => {
                        input.check(raw, value, reading).map_err(|bad_value| fail(RowProblem::Field { field: name.clone(), bad_value }))
                    }
                }
            })
            .collect()
    }

    /// The row as it is logged: only its input fields, as sent, on one line. Fields the service
    /// does not read (the target, ignored columns) are left out, so a caller cannot grow the log
    /// with them; the values kept passed [`Self::check`], so each is one JSON scalar.
    pub fn logged(&self, row: &RawRow) -> Box<RawValue> {
        let mut text = String::from("{");
        for input in &self.inputs {
            let name = &input.rule.column().name;
            if let Some(value) = row.get(name) {
                if text.len() > 1 {
                    text.push(',');
                }
                text.push_str(&serde_json::to_string(name).expect("strings serialise"));
                text.push(':');
                text.push_str(value.get().trim());
            }
        }
        text.push('}');
        RawValue::from_string(text).expect("names and checked scalars make a JSON object")
    }

    /// The key of a row for delayed labels: its id field, if the spec has one and it is set.
    pub fn id_of(&self, row: &RawRow) -> Option<String> {
        match scalar(row.get(self.id.as_deref()?)?) {
            Scalar::Text(text) => Some(text.trim().to_string()),
            Scalar::Number(number) => Some(category_of_number(number)),
            _ => None,
        }
    }

    /// A frame of checked rows; columns are built in parallel for many rows (the inference log),
    /// in the calling thread for a request's few.
    pub fn frame(&self, rows: &[Vec<Cell>]) -> Frame {
        let column = |(i, input): (usize, &Input)| {
            let column = match input.rule.column().kind {
                ColumnType::Categorical | ColumnType::String => Column::categorical(rows.iter().map(|row| match &row[i] {
                    Cell::Text(text) => Some(text.as_str()),
                    _ => None,
                })),
                _ => Column::Numeric(
                    rows.iter()
                        .map(|row| match row[i] {
                            Cell::Number(value) => value,
                            _ => f64::NAN,
                        })
                        .collect(),
                ),
            };
            (input.rule.column().name.clone(), column)
        };
        let columns = if rows.len() >= PARALLEL_FRAME_ROWS {
            self.inputs.par_iter().enumerate().map(column).collect()
        } else {
            self.inputs.iter().enumerate().map(column).collect()
        };
        Frame::new(columns).expect("every row has every column")
    }

    /// A JSON schema of one row (for the OpenAPI document): exactly what [`Self::check`]
    /// accepts, as far as JSON Schema can say it.
    pub fn json_schema(&self) -> Value {
        let mut properties = serde_json::Map::new();
        let mut required = Vec::new();
        for input in &self.inputs {
            let column = input.rule.column();
            let mut property = serde_json::Map::new();
            let limit = |bound: Option<f64>, default: f64| Value::from(bound.unwrap_or(default));
            match column.kind {
                ColumnType::Integer => {
                    let most = crate::cells::MAX_EXACT_INTEGER as f64;
                    property.insert("type".into(), "integer".into());
                    property.insert("minimum".into(), limit(column.min, -most));
                    property.insert("maximum".into(), limit(column.max, most));
                }
                ColumnType::Float => {
                    property.insert("type".into(), "number".into());
                    if let Some(min) = column.min {
                        property.insert("minimum".into(), min.into());
                    }
                    if let Some(max) = column.max {
                        property.insert("maximum".into(), max.into());
                    }
                }
                ColumnType::Boolean => {
                    let either = serde_json::json!([{ "type": "boolean" }, { "type": "integer", "enum": [0, 1] }]);
                    property.insert("anyOf".into(), either);
                }
                ColumnType::Datetime => {
                    let format = column.format.as_deref().unwrap_or_default();
                    property.insert("type".into(), "string".into());
                    match crate::time::datetime_pattern(format) {
                        Some(pattern) => property.insert("pattern".into(), pattern.into()),
                        None if format == crate::time::RFC3339 => property.insert("format".into(), "date-time".into()),
                        None => None,
                    };
                    let mut description = format!("a datetime formatted as {format}");
                    if column.min.is_some() || column.max.is_some() {
                        description.push_str(&format!(", from {:?} to {:?} seconds since 1970 (UTC)", column.min, column.max));
                    }
                    property.insert("description".into(), description.into());
                }
                ColumnType::Categorical | ColumnType::String => {
                    property.insert("type".into(), "string".into());
                    match &column.categories {
                        Some(categories) => {
                            let mut listed: Vec<Value> = categories.iter().map(|c| Value::from(c.as_str())).collect();
                            if !input.required {
                                listed.push(Value::Null);
                            }
                            property.insert("enum".into(), listed.into());
                        }
                        // Blank text is a missing value, which a required column refuses.
                        None if input.required => {
                            property.insert("pattern".into(), "\\S".into());
                        }
                        None => {}
                    }
                }
            }
            if input.required {
                required.push(column.name.clone());
            } else {
                property.insert("nullable".into(), true.into());
            }
            properties.insert(column.name.clone(), Value::Object(property));
        }
        // The target and ignored columns are tolerated, whatever they hold, and not read.
        for (name, slot) in &self.names {
            if slot.is_none() {
                properties.insert(name.clone(), serde_json::json!({ "description": "not read" }));
            }
        }
        serde_json::json!({ "type": "object", "required": required, "properties": properties, "additionalProperties": false })
    }
}

/// How a row's values are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reading {
    /// A request's JSON: each value of its column's JSON type.
    Typed,
    /// Values that may be text, as CSV has no types.
    Text,
}

impl Input {
    /// Whether a request's JSON value has the type the OpenAPI document states for the column.
    fn typed(&self, raw: &RawValue, value: &Scalar) -> Result<(), BadValue> {
        let column = self.rule.column();
        let expected = match (column.kind, value) {
            // The rule then refuses a fraction or an exponent (7 and 7.0 are the integer 7).
            (ColumnType::Integer, Scalar::Number(_)) => return Ok(()),
            (ColumnType::Integer, _) => "an integer (a JSON number)",
            (ColumnType::Float, Scalar::Number(_)) | (ColumnType::Boolean, Scalar::Bool(_)) => return Ok(()),
            (ColumnType::Boolean, Scalar::Number(text)) if text.parse::<f64>().is_ok_and(|v| v == 0.0 || v == 1.0) => return Ok(()),
            (ColumnType::Float, _) => "a JSON number",
            (ColumnType::Boolean, _) => "true, false, 1 or 0",
            (ColumnType::Categorical | ColumnType::String | ColumnType::Datetime, Scalar::Text(text)) => {
                let exact = column.categories.is_some() || column.kind == ColumnType::Datetime;
                if exact && (text.is_empty() || text.trim() != text.as_ref()) {
                    return Err(BadValue::NotExact(crate::shown::shown(text)));
                }
                return Ok(());
            }
            (ColumnType::Categorical | ColumnType::String | ColumnType::Datetime, _) => "a JSON string",
        };
        Err(BadValue::WrongType { value: describe(raw), expected })
    }

    /// Checks a present value with the column's rule, as CSV prep does, after its JSON type
    /// when it is read [`Reading::Typed`].
    fn check(&self, raw: &RawValue, value: Scalar, reading: Reading) -> Result<Cell, BadValue> {
        if reading == Reading::Typed && !matches!(value, Scalar::Composite) {
            self.typed(raw, &value)?;
        }
        let text = match &value {
            // A JSON number names a category or a boolean by its value (1 and 1.0 are "1").
            Scalar::Number(text)
                if matches!(self.rule.column().kind, ColumnType::Categorical | ColumnType::String | ColumnType::Boolean) =>
            {
                Cow::Owned(category_of_number(text))
            }
            Scalar::Number(text) => Cow::Borrowed(*text),
            Scalar::Text(text) => Cow::Borrowed(text.as_ref()),
            Scalar::Bool(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
            Scalar::Null | Scalar::Composite => return Err(BadValue::NotSingleValue(describe(raw))),
        };
        let checked = self.rule.check(&text)?;
        Ok(match checked {
            Checked::Missing => Cell::Missing,
            Checked::Text(text) => Cell::Text(text.to_string()),
            number => Cell::Number(number.number().unwrap_or(f64::NAN)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn raw(row: &Value) -> Box<RawValue> {
        serde_json::value::to_raw_value(row).unwrap()
    }

    fn schema() -> RowSchema {
        let spec = Spec::parse(
            r#"
name = "toy"
id = "key"
ignore = ["leak"]
[target]
column = "y"
task = "regression"
[[columns]]
name = "key"
type = "string"
[[columns]]
name = "n"
type = "integer"
min = 0
max = 10
[[columns]]
name = "colour"
type = "categorical"
categories = ["red", "blue"]
[[columns]]
name = "flag"
type = "boolean"
[[columns]]
name = "size"
type = "float"
nullable = true
[[columns]]
name = "leak"
type = "float"
[[columns]]
name = "y"
type = "float"
[models.lm]
kind = "linear"
"#,
            "toy",
        )
        .unwrap();
        RowSchema::new(&spec)
    }

    #[test]
    fn good_rows_are_coerced_like_prep_does() {
        let schema = schema();
        // As text (a CSV record, a logged line), values are read as prep reads CSV fields.
        let row = raw(&json!({"key": 7, "n": "3", "colour": " red ", "flag": "Yes", "y": 1.0, "leak": 2}));
        let row = RawRow::parse(&row);
        let expected = [Cell::Text("7".into()), Cell::Number(3.0), Cell::Text("red".into()), Cell::Number(1.0), Cell::Missing];
        assert_eq!(schema.check_text(&row, 0).unwrap(), expected);
        assert_eq!(schema.id_of(&row).as_deref(), Some("7"));
        let frame = schema.frame(&[schema.check_text(&row, 0).unwrap()]);
        assert_eq!(frame.column("n"), Some(&Column::Numeric(vec![3.0])));
        // A request gives the same cells with each value of its JSON type.
        let typed = raw(&json!({"key": "7", "n": 3.0, "colour": "red", "flag": 1, "y": "any", "leak": 2}));
        assert_eq!(schema.check(&RawRow::parse(&typed), 0).unwrap(), expected);
    }

    #[test]
    fn a_request_value_of_another_json_type_than_the_document_states_is_refused() {
        let schema = schema();
        let cases = [
            (json!({"n": "3", "colour": "red", "flag": true}), "field 'n': \"3\" is not an integer (a JSON number)"),
            (
                json!({"n": 3, "colour": " red", "flag": true}),
                "field 'colour': ' red' is not written exactly (no surrounding spaces; null for a missing value)",
            ),
            (json!({"n": 3, "colour": "", "flag": true}), "field 'colour': '' is not written exactly"),
            (json!({"n": 3, "colour": 1, "flag": true}), "field 'colour': 1 is not a JSON string"),
            (json!({"n": 3, "colour": "red", "flag": "yes"}), "field 'flag': \"yes\" is not true, false, 1 or 0"),
            (json!({"n": 3, "colour": "red", "flag": 2}), "field 'flag': 2 is not true, false, 1 or 0"),
            (json!({"n": 3, "colour": "red", "flag": true, "size": "1.5"}), "field 'size': \"1.5\" is not a JSON number"),
        ];
        for (row, expected) in cases {
            let error = schema.check(&RawRow::parse(&raw(&row)), 0).unwrap_err().to_string();
            assert!(error.contains(expected), "{error} should contain {expected}");
            if let Err(text_error) = schema.check_text(&RawRow::parse(&raw(&row)), 0) {
                assert!(!text_error.to_string().contains("JSON"), "read as text, only the column rule applies: {text_error}");
            }
        }
    }

    #[test]
    fn bad_rows_name_the_row_and_the_field() {
        let schema = schema();
        let cases = [
            (json!({"colour": "red", "flag": true}), "row 2: missing field 'n'"),
            (json!({"n": 1.5, "colour": "red", "flag": true}), "row 2: field 'n': '1.5' is not an integer"),
            (json!({"n": null, "colour": "red", "flag": true}), "row 2: missing field 'n'"),
            (json!({"n": 11, "colour": "red", "flag": true}), "row 2: field 'n': 11 is above the maximum 10"),
            (json!({"n": 1, "colour": "green", "flag": true}), "row 2: field 'colour': 'green' is not one of the categories (red, blue)"),
            (json!({"n": 1, "colour": "red", "flag": 0.5}), "row 2: field 'flag': 0.5 is not true, false, 1 or 0"),
            (json!({"n": 1, "colour": "red", "flag": true, "extra": 1}), "row 2: unknown field 'extra'"),
            (json!({"n": 1, "colour": ["red"], "flag": true}), "row 2: field 'colour': [\"red\"] is not a single value"),
            (json!([1, 2]), "row 2: expected an object of fields, got [1,2]"),
        ];
        for (row, expected) in cases {
            assert_eq!(schema.check(&RawRow::parse(&raw(&row)), 2).unwrap_err().to_string(), expected);
        }
    }

    #[test]
    fn numbers_are_checked_as_written_like_csv_fields() {
        let schema = schema();
        let cases = [
            (r#"{"n": 1e2, "colour": "red", "flag": true}"#, "row 0: field 'n': '1e2' is not an integer"),
            (
                r#"{"n": 99999999999999999999, "colour": "red", "flag": true}"#,
                "row 0: field 'n': '99999999999999999999' is out of the integer range (±2^53)",
            ),
            (r#"{"n": 1, "colour": "red", "flag": true, "size": 1e999}"#, "row 0: field 'size': '1e999' is not a finite number"),
            (r#"{"n": 1, "colour": "red", "flag": {"a": [[[]]]}}"#, "row 0: field 'flag': {\"a\": [[[]]]} is not a single value"),
        ];
        for (body, expected) in cases {
            let row: &RawValue = serde_json::from_str(body).unwrap();
            assert_eq!(schema.check(&RawRow::parse(row), 0).unwrap_err().to_string(), expected);
        }
    }

    #[test]
    fn rows_are_read_as_sent_escapes_spacing_and_repeated_names_included() {
        let schema = schema();
        let body = "{ \"\\u006e\" : 4 ,\n \"colour\": \"bl\\u0075e\", \"flag\": false, \"flag\": \"yes\", \"size\": null }";
        let row: &RawValue = serde_json::from_str(body).unwrap();
        let row = RawRow::parse(row);
        assert_eq!(row.raw().get(), body);
        assert_eq!(
            schema.check_text(&row, 0).unwrap(),
            [Cell::Missing, Cell::Number(4.0), Cell::Text("blue".into()), Cell::Number(1.0), Cell::Missing]
        );
        assert_eq!(schema.id_of(&row), None);
        assert_eq!(schema.logged(&row).get(), r#"{"n":4,"colour":"bl\u0075e","flag":"yes","size":null}"#);
    }

    #[test]
    fn logged_rows_keep_only_their_inputs() {
        let schema = schema();
        let body = r#"{"key": "k1", "n": 3, "colour": "red", "flag": true, "y": {"deep": [[[[1]]]]}, "leak": "x"}"#;
        let row: &RawValue = serde_json::from_str(body).unwrap();
        let row = RawRow::parse(row);
        schema.check(&row, 0).unwrap();
        assert_eq!(schema.logged(&row).get(), r#"{"key":"k1","n":3,"colour":"red","flag":true}"#);
    }
}
