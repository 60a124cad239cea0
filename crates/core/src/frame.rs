//! A small columnar table: what prep hands to training and what a /predict request becomes, so
//! both go through the same feature code.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::hash::hash_values;

/// Code of a missing categorical value.
pub const MISSING_CODE: u32 = u32::MAX;

/// One column of values.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum Column {
    /// Integers, floats, booleans (0/1) and datetimes (seconds since the epoch); NaN is missing.
    Numeric(Vec<f64>),
    /// Text values as codes into `levels`; [`MISSING_CODE`] is missing.
    Categorical { levels: Vec<String>, codes: Vec<u32> },
}

impl Column {
    pub fn len(&self) -> usize {
        match self {
            Column::Numeric(values) => values.len(),
            Column::Categorical { codes, .. } => codes.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Builds a categorical column from optional strings, levels in order of first appearance.
    pub fn categorical<'a>(values: impl IntoIterator<Item = Option<&'a str>>) -> Column {
        let mut levels: Vec<String> = Vec::new();
        let mut index: std::collections::HashMap<String, u32> = std::collections::HashMap::new();
        let codes = values
            .into_iter()
            .map(|value| match value {
                None => MISSING_CODE,
                Some(text) => match index.get(text) {
                    Some(&code) => code,
                    None => {
                        levels.push(text.to_string());
                        index.insert(text.to_string(), levels.len() as u32 - 1);
                        levels.len() as u32 - 1
                    }
                },
            })
            .collect();
        Column::Categorical { levels, codes }
    }

    /// The text of row `row` of a categorical column (`None` when missing or numeric).
    pub fn text(&self, row: usize) -> Option<&str> {
        match self {
            Column::Categorical { levels, codes } if codes[row] != MISSING_CODE => Some(&levels[codes[row] as usize]),
            _ => None,
        }
    }

    /// SHA-256 of the column's kind, levels and values.
    pub fn content_hash(&self) -> [u8; 32] {
        let mut hasher = Sha256::new();
        match self {
            Column::Numeric(values) => {
                hasher.update(b"numeric");
                hash_values(&mut hasher, values, |v| v.to_bits().to_le_bytes());
            }
            Column::Categorical { levels, codes } => {
                hasher.update(b"categorical");
                for level in levels {
                    hasher.update((level.len() as u64).to_le_bytes());
                    hasher.update(level.as_bytes());
                }
                hash_values(&mut hasher, codes, u32::to_le_bytes);
            }
        }
        hasher.finalize().into()
    }

    /// Keeps the given rows, in the given order.
    pub fn take(&self, rows: &[usize]) -> Column {
        match self {
            Column::Numeric(values) => Column::Numeric(rows.iter().map(|&r| values[r]).collect()),
            Column::Categorical { levels, codes } => {
                Column::Categorical { levels: levels.clone(), codes: rows.iter().map(|&r| codes[r]).collect() }
            }
        }
    }
}

/// Named columns of equal length.
/// A column whose length differs from the first column's.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("column '{column}' has {rows} rows, expected {expected}")]
pub struct RaggedColumn {
    pub column: String,
    pub rows: usize,
    pub expected: usize,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Frame {
    names: Vec<String>,
    columns: Vec<Column>,
}

impl Frame {
    /// Builds a frame; every column must have the same length.
    pub fn new(columns: Vec<(String, Column)>) -> Result<Frame, RaggedColumn> {
        let n_rows = columns.first().map_or(0, |(_, c)| c.len());
        if let Some((name, column)) = columns.iter().find(|(_, c)| c.len() != n_rows) {
            return Err(RaggedColumn { column: name.clone(), rows: column.len(), expected: n_rows });
        }
        let (names, columns) = columns.into_iter().unzip();
        Ok(Frame { names, columns })
    }

    pub fn n_rows(&self) -> usize {
        self.columns.first().map_or(0, Column::len)
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    pub fn column(&self, name: &str) -> Option<&Column> {
        self.names.iter().position(|n| n == name).map(|i| &self.columns[i])
    }

    /// Keeps the given rows, in the given order (columns in parallel).
    pub fn take(&self, rows: &[usize]) -> Frame {
        Frame { names: self.names.clone(), columns: self.columns.par_iter().map(|c| c.take(rows)).collect() }
    }

    /// The given rows, in that order, each column freed once cut.
    pub fn into_rows(self, rows: &[usize]) -> Frame {
        Frame { names: self.names, columns: self.columns.into_par_iter().map(|c| c.take(rows)).collect() }
    }

    /// Keeps the named columns that exist, in the order given.
    pub fn select(mut self, names: &[&str]) -> Frame {
        let mut kept = Frame::default();
        for name in names {
            if let Some(i) = self.names.iter().position(|n| n == name) {
                kept.names.push(self.names.swap_remove(i));
                kept.columns.push(self.columns.swap_remove(i));
            }
        }
        kept
    }

    /// SHA-256 of the frame's names and values, hashed column by column in parallel: the same
    /// rows in the same order give the same hash.
    pub fn content_hash(&self) -> [u8; 32] {
        let digests: Vec<[u8; 32]> = self.columns.par_iter().map(Column::content_hash).collect();
        let mut hasher = Sha256::new();
        for (name, digest) in self.names.iter().zip(&digests) {
            hasher.update((name.len() as u64).to_le_bytes());
            hasher.update(name.as_bytes());
            hasher.update(digest);
        }
        hasher.finalize().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categorical_columns_code_levels_in_order_of_appearance() {
        let column = Column::categorical([Some("b"), None, Some("a"), Some("b")]);
        assert_eq!(column, Column::Categorical { levels: vec!["b".into(), "a".into()], codes: vec![0, MISSING_CODE, 1, 0] });
        assert_eq!(column.text(2), Some("a"));
        assert_eq!(column.text(1), None);
    }

    #[test]
    fn frames_refuse_ragged_columns_and_take_rows() {
        let ragged = Frame::new(vec![("a".into(), Column::Numeric(vec![1.0])), ("b".into(), Column::Numeric(vec![]))]);
        assert!(ragged.unwrap_err().to_string().contains("'b'"));
        let frame = Frame::new(vec![("a".into(), Column::Numeric(vec![1.0, 2.0, 3.0]))]).unwrap();
        assert_eq!(frame.take(&[2, 0]).column("a"), Some(&Column::Numeric(vec![3.0, 1.0])));
    }
}
