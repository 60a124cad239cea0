//! JSON rows checked against the schema and turned into a [`Frame`]: what a /predict request
//! carries, and what the inference log holds for drift monitoring.

use std::collections::{BTreeMap, HashSet};

use serde_json::Value;

use crate::features::number_key;
use crate::frame::{Column, Frame};
use crate::spec::{ColumnSpec, ColumnType, FALSE_WORDS, Spec, TRUE_WORDS};

/// One checked value.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Number(f64),
    Text(String),
    Missing,
}

/// The input columns of a spec and how to check them.
#[derive(Debug, Clone)]
pub struct RowSchema {
    inputs: Vec<Input>,
    /// Columns that may appear but are not read (the target, ignored columns).
    tolerated: HashSet<String>,
    id: Option<String>,
}

#[derive(Debug, Clone)]
struct Input {
    column: ColumnSpec,
    required: bool,
    categories: Option<HashSet<String>>,
}

fn describe(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 40 { format!("{}...", text.chars().take(40).collect::<String>()) } else { text }
}

impl RowSchema {
    pub fn new(spec: &Spec) -> RowSchema {
        let inputs = spec
            .input_columns()
            .map(|c| Input {
                column: c.clone(),
                required: spec.requires(c),
                categories: c.categories.as_ref().map(|c| c.iter().cloned().collect()),
            })
            .collect();
        let mut tolerated: HashSet<String> = spec.ignore.iter().cloned().collect();
        tolerated.insert(spec.target.column.clone());
        RowSchema { inputs, tolerated, id: spec.id.clone() }
    }

    /// The input columns, in schema order.
    pub fn columns(&self) -> impl Iterator<Item = (&ColumnSpec, bool)> {
        self.inputs.iter().map(|i| (&i.column, i.required))
    }

    /// Checks one row; the error names the row and the field.
    pub fn check(&self, row: &Value, index: usize) -> Result<Vec<Cell>, String> {
        let fail = |message: String| format!("row {index}: {message}");
        let object = row.as_object().ok_or_else(|| fail(format!("expected an object of fields, got {}", describe(row))))?;
        if let Some(unknown) = object.keys().find(|k| !self.tolerated.contains(*k) && !self.inputs.iter().any(|i| &i.column.name == *k)) {
            return Err(fail(format!("unknown field '{unknown}'")));
        }
        self.inputs
            .iter()
            .map(|input| {
                let name = &input.column.name;
                match object.get(name) {
                    None | Some(Value::Null) if input.required => Err(fail(format!("missing field '{name}'"))),
                    None | Some(Value::Null) => Ok(Cell::Missing),
                    Some(value) => input.check(value).map_err(|e| fail(format!("field '{name}': {e}"))),
                }
            })
            .collect()
    }

    /// The key of a row for delayed labels: its id field, if the spec has one and it is set.
    pub fn id_of(&self, row: &Value) -> Option<String> {
        let value = row.get(self.id.as_deref()?)?;
        match value {
            Value::String(text) => Some(text.trim().to_string()),
            Value::Number(number) => number.as_f64().map(number_key),
            _ => None,
        }
    }

    /// A frame of checked rows.
    pub fn frame(&self, rows: &[Vec<Cell>]) -> Frame {
        let columns = self
            .inputs
            .iter()
            .enumerate()
            .map(|(i, input)| {
                let column = match input.column.kind {
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
                (input.column.name.clone(), column)
            })
            .collect();
        Frame::new(columns).expect("every row has every column")
    }

    /// A JSON schema of one row (for the OpenAPI document).
    pub fn json_schema(&self) -> Value {
        let mut properties = BTreeMap::new();
        let mut required = Vec::new();
        for input in &self.inputs {
            let column = &input.column;
            let mut property = serde_json::Map::new();
            let kind = match column.kind {
                ColumnType::Integer => "integer",
                ColumnType::Float => "number",
                ColumnType::Boolean => "boolean",
                _ => "string",
            };
            property.insert("type".into(), kind.into());
            if let Some(min) = column.min {
                property.insert("minimum".into(), min.into());
            }
            if let Some(max) = column.max {
                property.insert("maximum".into(), max.into());
            }
            if let Some(categories) = &column.categories {
                property.insert("enum".into(), categories.clone().into());
            }
            if let Some(format) = &column.format {
                property.insert("description".into(), format!("a datetime formatted as {format}").into());
            }
            if !input.required {
                property.insert("nullable".into(), true.into());
            } else {
                required.push(column.name.clone());
            }
            properties.insert(column.name.clone(), Value::Object(property));
        }
        serde_json::json!({ "type": "object", "required": required, "properties": properties })
    }
}

impl Input {
    fn check(&self, value: &Value) -> Result<Cell, String> {
        let column = &self.column;
        let text = || match value {
            Value::String(text) => Some(text.trim().to_string()),
            Value::Number(number) => number.as_f64().map(number_key),
            _ => None,
        };
        let cell = match column.kind {
            ColumnType::Integer | ColumnType::Float => {
                let number = match value {
                    Value::Number(number) => number.as_f64(),
                    Value::String(text) => text.trim().parse::<f64>().ok(),
                    _ => None,
                }
                .filter(|v| v.is_finite());
                let wanted = if column.kind == ColumnType::Integer { "an integer" } else { "a number" };
                match number {
                    Some(v) if column.kind == ColumnType::Float || v.fract() == 0.0 => Cell::Number(v),
                    _ => return Err(format!("expected {wanted}, got {}", describe(value))),
                }
            }
            ColumnType::Boolean => match value {
                Value::Bool(b) => Cell::Number(f64::from(u8::from(*b))),
                _ => {
                    let word = text().map(|t| t.to_ascii_lowercase()).unwrap_or_default();
                    if TRUE_WORDS.contains(&word.as_str()) {
                        Cell::Number(1.0)
                    } else if FALSE_WORDS.contains(&word.as_str()) {
                        Cell::Number(0.0)
                    } else {
                        return Err(format!("expected a boolean, got {}", describe(value)));
                    }
                }
            },
            ColumnType::Categorical | ColumnType::String => {
                let text = text().ok_or_else(|| format!("expected a string, got {}", describe(value)))?;
                if let Some(categories) = &self.categories
                    && !categories.contains(&text)
                {
                    let known = column.categories.as_deref().unwrap_or_default();
                    return Err(format!("unknown category '{text}' (expected one of {})", known.join(", ")));
                }
                Cell::Text(text)
            }
            ColumnType::Datetime => {
                let text = text().ok_or_else(|| format!("expected a datetime string, got {}", describe(value)))?;
                Cell::Number(crate::time::parse_datetime(&text, column.format.as_deref().unwrap_or_default())?)
            }
        };
        if let Cell::Number(v) = cell {
            if let Some(min) = column.min.filter(|min| v < *min) {
                return Err(format!("{v} is below the minimum {min}"));
            }
            if let Some(max) = column.max.filter(|max| v > *max) {
                return Err(format!("{v} is above the maximum {max}"));
            }
        }
        Ok(cell)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
        let row = json!({"key": 7, "n": "3", "colour": " red ", "flag": "Yes", "y": 1.0, "leak": 2});
        assert_eq!(
            schema.check(&row, 0).unwrap(),
            [Cell::Text("7".into()), Cell::Number(3.0), Cell::Text("red".into()), Cell::Number(1.0), Cell::Missing]
        );
        assert_eq!(schema.id_of(&row).as_deref(), Some("7"));
        let frame = schema.frame(&[schema.check(&row, 0).unwrap()]);
        assert_eq!(frame.column("n"), Some(&Column::Numeric(vec![3.0])));
    }

    #[test]
    fn bad_rows_name_the_row_and_the_field() {
        let schema = schema();
        let cases = [
            (json!({"colour": "red", "flag": true}), "row 2: missing field 'n'"),
            (json!({"n": 1.5, "colour": "red", "flag": true}), "row 2: field 'n': expected an integer, got 1.5"),
            (json!({"n": 11, "colour": "red", "flag": true}), "row 2: field 'n': 11 is above the maximum 10"),
            (
                json!({"n": 1, "colour": "green", "flag": true}),
                "row 2: field 'colour': unknown category 'green' (expected one of red, blue)",
            ),
            (json!({"n": 1, "colour": "red", "flag": "maybe"}), "row 2: field 'flag': expected a boolean, got \"maybe\""),
            (json!({"n": 1, "colour": "red", "flag": true, "extra": 1}), "row 2: unknown field 'extra'"),
            (json!({"n": 1, "colour": ["red"], "flag": true}), "row 2: field 'colour': expected a string, got [\"red\"]"),
            (json!([1, 2]), "row 2: expected an object of fields, got [1,2]"),
        ];
        for (row, expected) in cases {
            assert_eq!(schema.check(&row, 2).unwrap_err(), expected);
        }
    }
}
