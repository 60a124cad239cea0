//! The one rule that checks a single raw value against its column: type, range and category.
//! CSV prep and `/predict` both call [`CellRule::check`], so a value accepted by one is accepted
//! by the other, with the same reason when it is not (a request's JSON value must also have the
//! type its OpenAPI document states: see `RowSchema::check`).

use std::collections::HashSet;

use crate::shown::shown;
use crate::spec::{ColumnSpec, ColumnType, FALSE_WORDS, TRUE_WORDS};
use crate::time::TimeError;

/// The largest integer magnitude a cell may hold: every integer up to 2^53 is exact in the
/// `f64` the models compute with.
pub const MAX_EXACT_INTEGER: i64 = 1 << 53;

/// Why a value is refused by its column's rule: the reason a quarantined row or a refused
/// request carries, without the column's name. Values are shown cut at 40 characters.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BadValue {
    #[error("missing value")]
    Missing,
    #[error("{0} is not a single value")]
    NotSingleValue(String),
    #[error("'{0}' is not an integer")]
    NotInteger(String),
    #[error("'{0}' is out of the integer range (±2^53)")]
    IntegerOutOfRange(String),
    #[error("'{0}' is not a finite number")]
    NotFinite(String),
    #[error("'{0}' is not a boolean (true/false, 1/0, yes/no)")]
    NotBoolean(String),
    #[error("'{value}' is not one of the categories ({declared})")]
    NotACategory { value: String, declared: String },
    #[error("{value} is below the minimum {min}")]
    BelowMinimum { value: f64, min: f64 },
    #[error("{value} is above the maximum {max}")]
    AboveMaximum { value: f64, max: f64 },
    #[error(transparent)]
    Time(#[from] TimeError),
    /// A request's JSON value of the wrong type (a string for a number, a number for a category).
    #[error("{value} is not {expected}")]
    WrongType { value: String, expected: &'static str },
    /// A request's category or datetime with surrounding spaces, or empty.
    #[error("'{0}' is not written exactly (no surrounding spaces; null for a missing value)")]
    NotExact(String),
}

/// A value that passed its column's rule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Checked<'a> {
    /// Empty text or a null: allowed only in a nullable column.
    Missing,
    Integer(i64),
    Float(f64),
    Boolean(bool),
    /// Seconds since 1970-01-01T00:00:00 (civil time).
    Datetime(f64),
    /// Trimmed text of a categorical or string column.
    Text(&'a str),
}

impl Checked<'_> {
    /// The value as a model input number (`None` for text and missing values).
    pub fn number(&self) -> Option<f64> {
        match *self {
            Checked::Integer(v) => Some(v as f64),
            Checked::Float(v) | Checked::Datetime(v) => Some(v),
            Checked::Boolean(b) => Some(f64::from(u8::from(b))),
            Checked::Missing | Checked::Text(_) => None,
        }
    }
}

/// A column's rule, compiled once (categories as a set).
#[derive(Debug, Clone)]
pub struct CellRule {
    column: ColumnSpec,
    categories: Option<HashSet<String>>,
}

impl CellRule {
    pub fn new(column: &ColumnSpec) -> CellRule {
        CellRule { column: column.clone(), categories: column.categories.as_ref().map(|c| c.iter().cloned().collect()) }
    }

    pub fn column(&self) -> &ColumnSpec {
        &self.column
    }

    /// Checks one raw value (surrounding spaces do not count; empty text is a missing value).
    /// The error says what is wrong with the value, without the column's name.
    pub fn check<'t>(&self, text: &'t str) -> Result<Checked<'t>, BadValue> {
        let text = text.trim();
        if text.is_empty() {
            return if self.column.nullable { Ok(Checked::Missing) } else { Err(BadValue::Missing) };
        }
        let checked = match self.column.kind {
            ColumnType::Integer => Checked::Integer(parse_integer(text)?),
            ColumnType::Float => {
                Checked::Float(text.parse::<f64>().ok().filter(|v| v.is_finite()).ok_or_else(|| BadValue::NotFinite(shown(text)))?)
            }
            ColumnType::Boolean => Checked::Boolean(parse_boolean(text)?),
            ColumnType::Datetime => {
                let format = self.column.format.as_deref().unwrap_or_default();
                Checked::Datetime(crate::time::parse_datetime(text, format)?)
            }
            ColumnType::Categorical | ColumnType::String => {
                if let Some(categories) = &self.categories
                    && !categories.contains(text)
                {
                    let declared = self.column.categories.as_deref().unwrap_or_default();
                    return Err(BadValue::NotACategory { value: shown(text), declared: listed(declared) });
                }
                Checked::Text(text)
            }
        };
        if let Some(value) = checked.number() {
            if let Some(min) = self.column.min.filter(|min| value < *min) {
                return Err(BadValue::BelowMinimum { value, min });
            }
            if let Some(max) = self.column.max.filter(|max| value > *max) {
                return Err(BadValue::AboveMaximum { value, max });
            }
        }
        Ok(checked)
    }
}

/// An integer written exactly: an optional sign, digits, and optionally a point followed by
/// zeros only (`12`, `-3`, `7.0`). Exponents and fractions are refused, and so is any value
/// beyond ±2^53, rather than rounded or saturated.
fn parse_integer(text: &str) -> Result<i64, BadValue> {
    let refuse = || BadValue::NotInteger(shown(text));
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if !fraction.bytes().all(|b| b == b'0') {
        return Err(refuse());
    }
    let digits = whole.strip_prefix(['+', '-']).unwrap_or(whole);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(refuse());
    }
    let out_of_range = || BadValue::IntegerOutOfRange(shown(text));
    let value: i64 = whole.parse().map_err(|_| out_of_range())?;
    if value.unsigned_abs() > MAX_EXACT_INTEGER as u64 {
        return Err(out_of_range());
    }
    Ok(value)
}

fn parse_boolean(text: &str) -> Result<bool, BadValue> {
    let lower = text.to_ascii_lowercase();
    if TRUE_WORDS.contains(&lower.as_str()) {
        Ok(true)
    } else if FALSE_WORDS.contains(&lower.as_str()) {
        Ok(false)
    } else {
        Err(BadValue::NotBoolean(shown(text)))
    }
}

/// Declared categories for a message: the first twelve.
fn listed(values: &[String]) -> String {
    let shown: Vec<&str> = values.iter().take(12).map(String::as_str).collect();
    let more = if values.len() > shown.len() { ", ..." } else { "" };
    format!("{}{more}", shown.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reason a rule gives, as a quarantine file or a 422 shows it.
    trait Reason {
        fn reason<'t>(&self, text: &'t str) -> Result<Checked<'t>, String>;
    }

    impl Reason for CellRule {
        fn reason<'t>(&self, text: &'t str) -> Result<Checked<'t>, String> {
            self.check(text).map_err(|e| e.to_string())
        }
    }

    fn rule(kind: ColumnType) -> CellRule {
        CellRule::new(&ColumnSpec {
            name: "c".into(),
            kind,
            nullable: false,
            min: None,
            max: None,
            categories: None,
            format: (kind == ColumnType::Datetime).then(|| "%Y-%m-%d %H:%M:%S".into()),
        })
    }

    #[test]
    fn integers_are_parsed_exactly_or_refused() {
        let integer = rule(ColumnType::Integer);
        assert_eq!(integer.reason(" 12 "), Ok(Checked::Integer(12)));
        assert_eq!(integer.reason("-3"), Ok(Checked::Integer(-3)));
        assert_eq!(integer.reason("+7.00"), Ok(Checked::Integer(7)));
        assert_eq!(integer.reason("9007199254740992"), Ok(Checked::Integer(MAX_EXACT_INTEGER)));
        for bad in ["1e2", "1.5", "1e300", "x3", "-", ".", "1 2", "0x10", "١٢"] {
            assert_eq!(integer.reason(bad), Err(format!("'{bad}' is not an integer")), "{bad}");
        }
        for huge in ["99999999999999999999", "9007199254740993", "-9223372036854775808"] {
            assert_eq!(integer.reason(huge), Err(format!("'{huge}' is out of the integer range (±2^53)")), "{huge}");
        }
        assert_eq!(integer.reason("  "), Err("missing value".into()));
    }

    #[test]
    fn floats_booleans_and_datetimes() {
        assert_eq!(rule(ColumnType::Float).reason("1e300"), Ok(Checked::Float(1e300)));
        assert_eq!(rule(ColumnType::Float).reason("inf"), Err("'inf' is not a finite number".into()));
        assert_eq!(rule(ColumnType::Float).reason("NaN"), Err("'NaN' is not a finite number".into()));
        assert_eq!(rule(ColumnType::Boolean).reason("Yes"), Ok(Checked::Boolean(true)));
        assert!(rule(ColumnType::Boolean).reason("maybe").unwrap_err().starts_with("'maybe' is not a boolean"));
        assert_eq!(rule(ColumnType::Datetime).reason("1970-01-02 01:00:00"), Ok(Checked::Datetime(90_000.0)));
        for edge in ["9999-12-31 23:59:59", "-9999-01-01 00:00:00"] {
            assert!(rule(ColumnType::Datetime).check(edge).is_err(), "{edge}");
        }
    }

    #[test]
    fn ranges_and_categories_name_the_value() {
        let mut column = rule(ColumnType::Integer).column().clone();
        column.min = Some(0.0);
        column.max = Some(10.0);
        let bounded = CellRule::new(&column);
        assert_eq!(bounded.reason("11"), Err("11 is above the maximum 10".into()));
        assert_eq!(bounded.reason("-1"), Err("-1 is below the minimum 0".into()));
        let mut column = rule(ColumnType::Categorical).column().clone();
        column.categories = Some(vec!["a".into(), "b".into()]);
        column.nullable = true;
        let categories = CellRule::new(&column);
        assert_eq!(categories.reason(" a "), Ok(Checked::Text("a")));
        assert_eq!(categories.reason(""), Ok(Checked::Missing));
        assert_eq!(categories.reason("z"), Err("'z' is not one of the categories (a, b)".into()));
        let long = "y".repeat(1000);
        assert_eq!(categories.reason(&long).unwrap_err().len(), "'' is not one of the categories (a, b)".len() + 43);
    }
}
