//! Feature engineering, fitted once on training rows and saved inside the model artifact, so
//! that serving applies exactly the transform training used, through this same code.
//!
//! Two encodings of the same fitted features: [`Encoding::Ordinal`] for trees (categories as
//! integer codes in the spec's declared order, or by mean target when the spec declares none;
//! raw numbers, cyclical time parts with their sine and cosine, missing values kept as NaN) and
//! [`Encoding::OneHot`] for linear models (one-hot categories and calendar parts, standardised
//! and imputed numbers, sine/cosine of cyclical parts). A categorical with more levels in
//! training than `features.max_levels` is target-encoded instead (see [`FitTarget`]), in both.

mod stats;
mod target_encoding;

use std::collections::{BTreeMap, HashMap};

use ndarray::{Array2, ArrayViewMut2};
use serde::{Deserialize, Serialize};

use crate::design::{Design, SparseRows};
use crate::frame::{Column, Frame, MISSING_CODE};
use crate::spec::{ColumnType, NumericTransform, Spec, TimePart};
use crate::time::{self, TimeSource};

pub use stats::FeatureStats;
use stats::{InputStats, NumberStats};
pub use target_encoding::FitTarget;
use target_encoding::{Tallies, TargetEncoding};

/// Why features cannot be fitted on, or computed for, a frame.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FeatureError {
    #[error("{kind} column '{column}' is missing")]
    MissingColumn { column: String, kind: &'static str },
    #[error("cross input '{0}' is not a feature")]
    CrossInput(String),
    #[error(transparent)]
    Time(#[from] crate::time::TimeError),
}

/// How fitted features are laid out for a model family.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum Encoding {
    /// One column per feature; for trees.
    Ordinal,
    /// One-hot categories, standardised numbers; for linear models.
    OneHot,
}

/// Unfitted feature parameters, taken from a spec.
#[derive(Debug, Clone)]
pub struct FeatureParams {
    time: Option<TimeSource>,
    /// Name, type and declared categories of each feature column.
    columns: Vec<(String, ColumnType, Option<Vec<String>>)>,
    transforms: BTreeMap<String, Vec<NumericTransform>>,
    time_parts: Vec<TimePart>,
    cyclical: Vec<TimePart>,
    crosses: Vec<[String; 2]>,
    max_levels: usize,
}

/// Features fitted on training rows.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FittedFeatures {
    time: Option<TimeSource>,
    inputs: Vec<Input>,
    crosses: Vec<Cross>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
enum Input {
    Numeric {
        column: String,
        transforms: Vec<NumericTransform>,
        scale: Scale,
        missing_indicator: bool,
        discrete: bool,
    },
    Categorical {
        column: String,
        levels: Levels,
    },
    /// A categorical with many levels, as its smoothed mean target (one value per class).
    TargetEncoded {
        column: String,
        encoding: TargetEncoding,
    },
    Time {
        part: TimePart,
        cyclical: bool,
        scale: Scale,
    },
}

/// Training statistics of a number: median for imputation, mean and deviation for scaling.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Scale {
    median: f64,
    mean: f64,
    std: f64,
}

/// Known levels in code order; values outside them share the `other` code when training saw
/// too many levels.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Levels {
    levels: Vec<String>,
    other: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Cross {
    inputs: [usize; 2],
    levels: Levels,
}

impl Levels {
    /// Levels ordered by mean target (then name) when `ordered`, else by name; the rarest
    /// folded into "other" beyond `max`.
    fn fit(tallies: &Tallies, ordered: bool, max: usize) -> Levels {
        let mean = |tally: &target_encoding::Tally| if ordered { tally.sums[0] / tally.count } else { 0.0 };
        let mut by_count: Vec<(&str, f64, f64)> = tallies.iter().map(|(k, tally)| (k.as_str(), tally.count, mean(tally))).collect();
        by_count.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
        let other = by_count.len() > max;
        by_count.truncate(if other { max - 1 } else { max });
        by_count.sort_by(|a, b| a.2.total_cmp(&b.2).then(a.0.cmp(b.0)));
        Levels { levels: by_count.into_iter().map(|(k, _, _)| k.to_string()).collect(), other }
    }

    /// The spec's categories in the spec's order: every declared level has a code, including
    /// those the training rows lack (a time-ordered split often holds later months only), and
    /// trees see the order the spec gives (months in calendar order, severities by degree).
    fn declared(categories: &[String]) -> Levels {
        Levels { levels: categories.to_vec(), other: false }
    }

    /// Code of a key: its level, the "other" level, or `None` when missing or unknown.
    fn code(&self, index: &HashMap<&str, usize>, key: Option<&str>) -> Option<usize> {
        let key = key?;
        index.get(key).copied().or(self.other.then_some(self.levels.len()))
    }

    fn index(&self) -> HashMap<&str, usize> {
        self.levels.iter().enumerate().map(|(i, l)| (l.as_str(), i)).collect()
    }

    fn n_codes(&self) -> usize {
        self.levels.len() + usize::from(self.other)
    }

    fn name(&self, code: usize) -> &str {
        self.levels.get(code).map_or("other", String::as_str)
    }
}

impl Scale {
    /// The median of the finite values, their mean and their deviation (1 when they do not vary).
    fn fit(stats: &NumberStats) -> Scale {
        let moments = &stats.moments;
        let Some(median) = stats.quantiles.at_rank(moments.count / 2).map(|at| at.value) else {
            return Scale { median: 0.0, mean: 0.0, std: 1.0 };
        };
        let std = (moments.m2 / moments.count as f64).sqrt();
        Scale { median, mean: moments.mean, std: if std > 1e-12 { std } else { 1.0 } }
    }

    fn standardise(&self, value: f64) -> f64 {
        let value = if value.is_finite() { value } else { self.median };
        (value - self.mean) / self.std
    }
}

fn apply_transforms(value: f64, transforms: &[NumericTransform]) -> f64 {
    transforms.iter().fold(value, |v, t| match t {
        NumericTransform::Log1p => v.ln_1p(),
        NumericTransform::Sqrt => v.sqrt(),
    })
}

/// Text of a discrete number as used in level names: `3`, not `3.0`.
pub fn number_key(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 { format!("{}", value as i64) } else { format!("{value}") }
}

fn one_hot_domain(part: TimePart) -> Option<std::ops::RangeInclusive<i64>> {
    match part {
        TimePart::Hour => Some(0..=23),
        TimePart::Weekday => Some(0..=6),
        TimePart::Month => Some(1..=12),
        _ => None,
    }
}

/// The level key of every row of one input, interned: a code per row (`None` when missing) into
/// the distinct key texts, so that crossing inputs does not build a string per row.
#[derive(Default)]
struct LevelKeys {
    codes: Vec<Option<u32>>,
    texts: Vec<String>,
}

impl LevelKeys {
    fn numbers(values: &[f64]) -> LevelKeys {
        let mut index: HashMap<u64, u32> = HashMap::new();
        let mut texts = Vec::new();
        let codes = values
            .iter()
            .map(|&v| {
                v.is_finite().then(|| {
                    *index.entry(v.to_bits()).or_insert_with(|| {
                        texts.push(number_key(v));
                        texts.len() as u32 - 1
                    })
                })
            })
            .collect();
        LevelKeys { codes, texts }
    }

    fn categories(levels: &[String], codes: &[u32]) -> LevelKeys {
        LevelKeys { codes: codes.iter().map(|&c| (c != MISSING_CODE).then_some(c)).collect(), texts: levels.to_vec() }
    }

    /// The keys `a|b` of two inputs, row by row; missing when either is.
    fn crossed(a: &LevelKeys, b: &LevelKeys) -> LevelKeys {
        let mut index: HashMap<(u32, u32), u32> = HashMap::new();
        let mut texts = Vec::new();
        let codes = a
            .codes
            .iter()
            .zip(&b.codes)
            .map(|(&x, &y)| {
                let (x, y) = (x?, y?);
                Some(*index.entry((x, y)).or_insert_with(|| {
                    texts.push(format!("{}|{}", a.texts[x as usize], b.texts[y as usize]));
                    texts.len() as u32 - 1
                }))
            })
            .collect();
        LevelKeys { codes, texts }
    }
}

impl FeatureParams {
    pub fn new(spec: &Spec) -> FeatureParams {
        FeatureParams {
            time: spec.time.as_ref().map(|t| TimeSource::new(t).expect("a checked spec has a valid time")),
            columns: spec.feature_columns().map(|c| (c.name.clone(), c.kind, c.categories.clone())).collect(),
            transforms: spec.features.transforms.clone(),
            time_parts: spec.features.time_parts.clone(),
            cyclical: spec.features.cyclical.clone(),
            crosses: spec.features.crosses.clone(),
            max_levels: spec.features.max_levels,
        }
    }

    /// Fits on training rows and their targets: numeric targets order categorical levels, and
    /// categoricals of many levels are encoded by their target.
    pub fn fit(&self, frame: &Frame, target: FitTarget) -> Result<FittedFeatures, FeatureError> {
        self.fit_stats(&self.stats(frame, target)?)
    }

    /// Fits on the statistics of the training rows (see [`FeatureParams::stats`]).
    pub fn fit_stats(&self, stats: &FeatureStats) -> Result<FittedFeatures, FeatureError> {
        let (columns, parts) = stats.inputs().split_at(self.columns.len());
        let of_columns = self.columns.iter().zip(columns).map(|((name, kind, declared), input)| match input {
            InputStats::Number(number) => {
                let transforms = self.transforms.get(name).cloned().unwrap_or_default();
                let discrete = matches!(kind, ColumnType::Integer | ColumnType::Boolean);
                Input::Numeric {
                    column: name.clone(),
                    scale: Scale::fit(number),
                    missing_indicator: number.missing > 0,
                    transforms,
                    discrete,
                }
            }
            InputStats::Categorical(tallies) => match declared {
                Some(categories) if categories.len() <= self.max_levels => {
                    Input::Categorical { column: name.clone(), levels: Levels::declared(categories) }
                }
                _ if tallies.len() > self.max_levels => {
                    Input::TargetEncoded { column: name.clone(), encoding: TargetEncoding::fit(tallies, stats.all()) }
                }
                _ => Input::Categorical { column: name.clone(), levels: Levels::fit(tallies, stats.ordered(), self.max_levels) },
            },
        });
        let of_parts = self.time_parts.iter().zip(parts).map(|(&part, input)| {
            let InputStats::Number(number) = input else { unreachable!("time parts are numbers") };
            Input::Time { part, cyclical: self.cyclical.contains(&part), scale: Scale::fit(number) }
        });
        let inputs = of_columns.chain(of_parts).collect();
        let crosses = self
            .cross_positions()?
            .into_iter()
            .zip(stats.crosses())
            .map(|(inputs, tallies)| Cross { inputs, levels: Levels::fit(tallies, stats.ordered(), self.max_levels) })
            .collect();
        Ok(FittedFeatures { time: self.time.clone(), inputs, crosses })
    }

    /// The inputs of each cross, as positions among the feature columns then the time parts.
    fn cross_positions(&self) -> Result<Vec<[usize; 2]>, FeatureError> {
        let names: Vec<&str> =
            self.columns.iter().map(|(name, ..)| name.as_str()).chain(self.time_parts.iter().map(|p| p.name())).collect();
        let position = |name: &String| names.iter().position(|n| n == name).ok_or_else(|| FeatureError::CrossInput(name.clone()));
        self.crosses.iter().map(|[a, b]| Ok([position(a)?, position(b)?])).collect()
    }
}

impl Input {
    fn name(&self) -> String {
        match self {
            Input::Numeric { column, .. } | Input::Categorical { column, .. } | Input::TargetEncoded { column, .. } => column.clone(),
            Input::Time { part, .. } => part.name().to_string(),
        }
    }
}

/// Writes the sine and cosine of a cyclical time part into columns `at` and `at + 1` (`missing`
/// where the time is unknown); returns the columns written.
fn fill_cyclical(x: &mut ArrayViewMut2<f64>, at: usize, part: TimePart, values: &[f64], missing: f64) -> usize {
    let angle = |v: f64| 2.0 * std::f64::consts::PI * v / time::period(part);
    x.column_mut(at).iter_mut().zip(values).for_each(|(slot, v)| *slot = if v.is_finite() { angle(*v).sin() } else { missing });
    x.column_mut(at + 1).iter_mut().zip(values).for_each(|(slot, v)| *slot = if v.is_finite() { angle(*v).cos() } else { missing });
    2
}

/// Values of one input over the rows of a frame, before encoding.
enum Values<'a> {
    Numeric(Vec<f64>),
    Categorical(&'a Column),
}

impl FittedFeatures {
    /// Output column names for an encoding.
    pub fn names(&self, encoding: Encoding) -> Vec<String> {
        self.groups(encoding).into_iter().flat_map(|(_, names)| names).collect()
    }

    /// The output columns of each input (a time part's cyclical pair with it) and each cross, in
    /// output order, named by the input or cross: what an explanation sums a contribution over.
    /// A time part named like a column (a `weekday` column beside the time's weekday) is
    /// grouped as `time.PART`.
    pub fn groups(&self, encoding: Encoding) -> Vec<(String, Vec<String>)> {
        let columns: std::collections::HashSet<String> =
            self.inputs.iter().filter(|input| !matches!(input, Input::Time { .. })).map(Input::name).collect();
        let mut groups = Vec::new();
        for input in &self.inputs {
            let name = input.name();
            let mut names = Vec::new();
            match (input, encoding) {
                (Input::Categorical { levels, .. }, Encoding::OneHot) => {
                    names.extend((0..levels.n_codes()).map(|c| format!("{name}={}", levels.name(c))));
                }
                (Input::TargetEncoded { encoding, .. }, _) if encoding.width() > 1 => {
                    names.extend((0..encoding.width()).map(|c| format!("{name}[class {c}]")));
                }
                (Input::Time { part, cyclical, .. }, Encoding::OneHot) => {
                    match one_hot_domain(*part) {
                        Some(domain) => names.extend(domain.map(|v| format!("{name}={v}"))),
                        None => names.push(name.clone()),
                    }
                    if *cyclical {
                        names.extend([format!("{name}.sin"), format!("{name}.cos")]);
                    }
                }
                (Input::Time { cyclical: true, .. }, Encoding::Ordinal) => {
                    names.extend([name.clone(), format!("{name}.sin"), format!("{name}.cos")]);
                }
                (Input::Numeric { missing_indicator: true, .. }, Encoding::OneHot) => {
                    names.extend([name.clone(), format!("{name}.missing")]);
                }
                _ => names.push(name.clone()),
            }
            let group = if matches!(input, Input::Time { .. }) && columns.contains(&name) { format!("time.{name}") } else { name };
            groups.push((group, names));
        }
        for cross in &self.crosses {
            let name = format!("{}×{}", self.inputs[cross.inputs[0]].name(), self.inputs[cross.inputs[1]].name());
            let names = match encoding {
                Encoding::Ordinal => vec![name.clone()],
                Encoding::OneHot => (0..cross.levels.n_codes()).map(|c| format!("{name}={}", cross.levels.name(c))).collect(),
            };
            groups.push((name, names));
        }
        groups
    }

    /// The raw input columns the features read (the time's sources included).
    pub fn input_columns(&self) -> Vec<String> {
        let mut columns: Vec<String> = self
            .inputs
            .iter()
            .filter_map(|i| match i {
                Input::Numeric { column, .. } | Input::Categorical { column, .. } | Input::TargetEncoded { column, .. } => {
                    Some(column.clone())
                }
                Input::Time { .. } => None,
            })
            .collect();
        if let Some(time) = &self.time {
            columns.extend(time.columns());
        }
        columns.sort();
        columns.dedup();
        columns
    }

    /// Encodes every row of `frame`.
    pub fn transform(&self, frame: &Frame, encoding: Encoding) -> Result<Array2<f64>, FeatureError> {
        self.encode(frame, encoding, None)
    }

    /// Encodes the training rows the features were fitted on, with their targets: target-encoded
    /// categoricals get out-of-fold values (folds drawn with `seed`), so no row sees its own
    /// target. Every other input is encoded as [`FittedFeatures::transform`] does.
    ///
    /// Laid out as the encoding's models read them: dense for trees, sparse rows for linear models.
    pub fn transform_training(&self, frame: &Frame, encoding: Encoding, target: FitTarget, seed: u64) -> Result<Design, FeatureError> {
        let training = Some((target, seed));
        Ok(match encoding {
            Encoding::Ordinal => Design::Dense(self.encode(frame, encoding, training)?),
            Encoding::OneHot => Design::Sparse(self.encode_sparse(frame, training)?),
        })
    }

    fn encode(&self, frame: &Frame, encoding: Encoding, training: Option<(FitTarget, u64)>) -> Result<Array2<f64>, FeatureError> {
        let prepared = self.prepare(frame, training)?;
        let mut x = Array2::zeros((frame.n_rows(), self.names(encoding).len()));
        self.write_rows(&prepared, encoding, 0, x.view_mut());
        Ok(x)
    }

    /// The one-hot encoding of every row as sparse rows, written a block of rows at a time so
    /// that the dense matrix is never held whole.
    fn encode_sparse(&self, frame: &Frame, training: Option<(FitTarget, u64)>) -> Result<SparseRows, FeatureError> {
        let prepared = self.prepare(frame, training)?;
        let (n, width) = (frame.n_rows(), self.names(Encoding::OneHot).len());
        let mut rows = SparseRows::new(width);
        let mut block = Array2::zeros((SPARSE_BLOCK_ROWS.min(n), width));
        for first in (0..n).step_by(SPARSE_BLOCK_ROWS) {
            let count = SPARSE_BLOCK_ROWS.min(n - first);
            let mut view = block.slice_mut(ndarray::s![..count, ..]);
            view.fill(0.0);
            self.write_rows(&prepared, Encoding::OneHot, first, view.view_mut());
            rows.push_dense(view.view());
            if first == 0 {
                rows.reserve_like_first_rows(n);
            }
        }
        rows.shrink_to_fit();
        Ok(rows)
    }

    /// Each input's values over every row of `frame`, before they are laid out.
    fn prepare<'a>(&self, frame: &'a Frame, training: Option<(FitTarget, u64)>) -> Result<Prepared<'a>, FeatureError> {
        let n = frame.n_rows();
        let times = self.time.as_ref().map(|t| t.row_times(frame)).transpose()?;
        let values: Vec<Values> = self
            .inputs
            .iter()
            .map(|input| match input {
                Input::Numeric { column, transforms, .. } => match frame.column(column) {
                    Some(Column::Numeric(raw)) => Ok(Values::Numeric(raw.iter().map(|&v| apply_transforms(v, transforms)).collect())),
                    _ => Err(FeatureError::MissingColumn { column: column.clone(), kind: "numeric feature" }),
                },
                Input::Categorical { column, .. } | Input::TargetEncoded { column, .. } => match frame.column(column) {
                    Some(c @ Column::Categorical { .. }) => Ok(Values::Categorical(c)),
                    _ => Err(FeatureError::MissingColumn { column: column.clone(), kind: "categorical feature" }),
                },
                Input::Time { part, .. } => {
                    let times = times.as_ref().expect("a fitted time part has a time");
                    Ok(Values::Numeric(times.iter().map(|&t| time::part(t, *part)).collect()))
                }
            })
            .collect::<Result<_, FeatureError>>()?;
        let laid_out = self
            .inputs
            .iter()
            .zip(&values)
            .map(|(input, values)| match (input, values) {
                (Input::Categorical { levels, .. }, Values::Categorical(column)) => {
                    let index = levels.index();
                    Some(Coded::Levels((0..n).map(|r| levels.code(&index, column.text(r))).collect()))
                }
                (Input::TargetEncoded { encoding, .. }, Values::Categorical(column)) => {
                    Some(Coded::TargetEncoded(target_encoded(encoding, column, training)))
                }
                _ => None,
            })
            .collect();
        let crosses = self
            .crosses
            .iter()
            .map(|cross| {
                let index = cross.levels.index();
                let key = |input: usize, row: usize| -> Option<String> {
                    match &values[input] {
                        Values::Numeric(v) => v[row].is_finite().then(|| number_key(v[row])),
                        Values::Categorical(column) => column.text(row).map(str::to_string),
                    }
                };
                (0..n)
                    .map(|row| {
                        let joined = key(cross.inputs[0], row).zip(key(cross.inputs[1], row)).map(|(a, b)| format!("{a}|{b}"));
                        cross.levels.code(&index, joined.as_deref())
                    })
                    .collect()
            })
            .collect();
        Ok(Prepared { values, laid_out, crosses })
    }

    /// Writes rows `first..first + x.nrows()` of the prepared inputs into `x`, zeroed.
    fn write_rows(&self, prepared: &Prepared, encoding: Encoding, first: usize, mut x: ArrayViewMut2<f64>) {
        let rows = first..first + x.nrows();
        let mut at = 0;
        for ((input, values), laid_out) in self.inputs.iter().zip(&prepared.values).zip(&prepared.laid_out) {
            match (input, values, encoding, laid_out) {
                (Input::Categorical { .. }, _, Encoding::Ordinal, Some(Coded::Levels(codes))) => {
                    x.column_mut(at).iter_mut().zip(&codes[rows.clone()]).for_each(|(slot, c)| *slot = c.map_or(f64::NAN, |c| c as f64));
                    at += 1;
                }
                (Input::Categorical { levels, .. }, _, Encoding::OneHot, Some(Coded::Levels(codes))) => {
                    for (row, code) in codes[rows.clone()].iter().enumerate() {
                        if let Some(code) = code {
                            x[[row, at + code]] = 1.0;
                        }
                    }
                    at += levels.n_codes();
                }
                (_, Values::Numeric(v), Encoding::Ordinal, _) => {
                    let v = &v[rows.clone()];
                    x.column_mut(at).iter_mut().zip(v).for_each(|(slot, v)| *slot = if v.is_finite() { *v } else { f64::NAN });
                    at += 1;
                    if let Input::Time { part, cyclical: true, .. } = input {
                        at += fill_cyclical(&mut x, at, *part, v, f64::NAN);
                    }
                }
                (Input::Numeric { scale, missing_indicator, .. }, Values::Numeric(v), Encoding::OneHot, _) => {
                    let v = &v[rows.clone()];
                    x.column_mut(at).iter_mut().zip(v).for_each(|(slot, v)| *slot = scale.standardise(*v));
                    at += 1;
                    if *missing_indicator {
                        x.column_mut(at).iter_mut().zip(v).for_each(|(slot, v)| *slot = if v.is_finite() { 0.0 } else { 1.0 });
                        at += 1;
                    }
                }
                (Input::Time { part, cyclical, scale }, Values::Numeric(v), Encoding::OneHot, _) => {
                    let v = &v[rows.clone()];
                    match one_hot_domain(*part) {
                        Some(domain) => {
                            let (first, size) = (*domain.start(), domain.count());
                            for (row, value) in v.iter().enumerate() {
                                let offset = *value as i64 - first;
                                if value.is_finite() && (0..size as i64).contains(&offset) {
                                    x[[row, at + offset as usize]] = 1.0;
                                }
                            }
                            at += size;
                        }
                        None => {
                            x.column_mut(at).iter_mut().zip(v).for_each(|(slot, v)| *slot = scale.standardise(*v));
                            at += 1;
                        }
                    }
                    if *cyclical {
                        at += fill_cyclical(&mut x, at, *part, v, 0.0);
                    }
                }
                (Input::TargetEncoded { encoding: target_encoding, .. }, _, _, Some(Coded::TargetEncoded(encoded))) => {
                    // Trees keep a missing level missing; linear models read it as an unseen one.
                    let missing = if encoding == Encoding::Ordinal { None } else { Some(target_encoding.prior()) };
                    let width = target_encoding.width();
                    for (row, values) in encoded[rows.clone()].iter().enumerate() {
                        match values.as_deref().or(missing) {
                            Some(values) => x.row_mut(row).slice_mut(ndarray::s![at..at + width]).assign(&ndarray::aview1(values)),
                            None => x.row_mut(row).slice_mut(ndarray::s![at..at + width]).fill(f64::NAN),
                        }
                    }
                    at += width;
                }
                _ => unreachable!("categorical inputs, and only they, have categorical values and codes"),
            }
        }
        for (cross, codes) in self.crosses.iter().zip(&prepared.crosses) {
            for (row, code) in codes[rows.clone()].iter().enumerate() {
                match encoding {
                    Encoding::Ordinal => x[[row, at]] = code.map_or(f64::NAN, |c| c as f64),
                    Encoding::OneHot => {
                        if let Some(code) = code {
                            x[[row, at + code]] = 1.0;
                        }
                    }
                }
            }
            at += match encoding {
                Encoding::Ordinal => 1,
                Encoding::OneHot => cross.levels.n_codes(),
            };
        }
        debug_assert_eq!(at, x.ncols());
    }
}

/// Rows encoded at a time when the one-hot encoding is built as sparse rows.
const SPARSE_BLOCK_ROWS: usize = 16 * 1024;

/// Every input's values over the rows of a frame, ready to be laid out in either encoding.
struct Prepared<'a> {
    values: Vec<Values<'a>>,
    /// For categorical inputs, their codes or target encodings.
    laid_out: Vec<Option<Coded>>,
    /// Each cross's level code per row.
    crosses: Vec<Vec<Option<usize>>>,
}

/// A categorical input's rows: codes of its levels, or the values of its target encoding.
enum Coded {
    Levels(Vec<Option<usize>>),
    TargetEncoded(Vec<Option<Vec<f64>>>),
}

/// The target encoding of every row of `column`: out of fold for training rows.
fn target_encoded(encoding: &TargetEncoding, column: &Column, training: Option<(FitTarget, u64)>) -> Vec<Option<Vec<f64>>> {
    let Column::Categorical { levels, codes } = column else { unreachable!("target-encoded inputs are categorical columns") };
    match training {
        Some((target, seed)) => TargetEncoding::out_of_fold(levels, codes, target, seed),
        None => {
            let by_code: Vec<Option<&[f64]>> = levels.iter().map(|level| encoding.encode(Some(level))).collect();
            codes.iter().map(|&c| (c != MISSING_CODE).then(|| by_code[c as usize].expect("present levels encode").to_vec())).collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::stats::EXACT_VALUES;
    use super::*;

    fn spec() -> Spec {
        Spec::parse(&spec_text(), "toy").unwrap()
    }

    fn spec_text() -> String {
        r#"
name = "toy"
[target]
column = "y"
task = "regression"
[time]
origin = "2024-01-01"
offsets = [{ column = "hours", unit = "hours" }]
[features]
exclude = ["hours"]
time_parts = ["hour", "weekday"]
cyclical = ["hour"]
transforms = { size = ["log1p"] }
crosses = [["hour", "colour"]]
max_levels = 3
[[columns]]
name = "hours"
type = "integer"
[[columns]]
name = "size"
type = "float"
nullable = true
[[columns]]
name = "colour"
type = "categorical"
[[columns]]
name = "y"
type = "float"
[models.lm]
kind = "linear"
"#
        .to_string()
    }

    fn frame(hours: &[f64], size: &[f64], colour: &[Option<&str>]) -> Frame {
        Frame::new(vec![
            ("hours".into(), Column::Numeric(hours.to_vec())),
            ("size".into(), Column::Numeric(size.to_vec())),
            ("colour".into(), Column::categorical(colour.iter().copied())),
        ])
        .unwrap()
    }

    #[test]
    fn ordinal_encoding_orders_levels_by_target() {
        let train = frame(
            &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0],
            &[0.0, 1.0, f64::NAN, 3.0, 4.0, 5.0],
            &[Some("red"), Some("red"), Some("blue"), Some("blue"), Some("green"), None],
        );
        let target = [10.0, 10.0, 1.0, 1.0, 5.0, 7.0];
        let fitted = FeatureParams::new(&spec()).fit(&train, FitTarget::Values(&target)).unwrap();
        assert_eq!(fitted.names(Encoding::Ordinal), ["size", "colour", "hour", "hour.sin", "hour.cos", "weekday", "hour×colour"]);
        let x = fitted.transform(&train, Encoding::Ordinal).unwrap();
        // By mean target: blue 1, green 5, red 10.
        assert_eq!(x.column(1).to_vec()[..5], [2.0, 2.0, 0.0, 0.0, 1.0]);
        assert!(x[[5, 1]].is_nan() && x[[2, 0]].is_nan(), "missing values stay missing for trees");
        assert_eq!(x[[1, 0]], 2f64.ln());
        assert_eq!(x.column(2).to_vec(), [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
        // Trees get the sine and cosine of cyclical parts too: hour 3 is an eighth of the day.
        assert!((x[[3, 3]] - std::f64::consts::FRAC_PI_4.sin()).abs() < 1e-12 && (x[[0, 4]] - 1.0).abs() < 1e-12);
        // 2024-01-01 was a Monday.
        assert_eq!(x[[0, 5]], 0.0);
        // The cross has six keys, more than max_levels (3): the two most frequent kept, the rest "other".
        assert_eq!(x.column(6).iter().filter(|&&code| code == 2.0).count(), 3);
    }

    #[test]
    fn many_levels_are_target_encoded_out_of_fold_for_training_rows() {
        let colours = ["red", "blue", "green", "pink"];
        let n = 400;
        let colour: Vec<Option<&str>> = (0..n).map(|i| if i % 50 == 0 { None } else { Some(colours[i % 4]) }).collect();
        let train = frame(&vec![1.0; n], &vec![1.0; n], &colour);
        let target: Vec<f64> = (0..n).map(|i| (i % 4) as f64 * 10.0 + (i % 3) as f64).collect();
        let fitted = FeatureParams::new(&spec()).fit(&train, FitTarget::Values(&target)).unwrap();
        let served = fitted.transform(&train, Encoding::Ordinal).unwrap();
        let Design::Dense(trained) = fitted.transform_training(&train, Encoding::Ordinal, FitTarget::Values(&target), 3).unwrap() else {
            panic!("trees read a dense design")
        };
        let means: Vec<f64> = (0..4).map(|c| f64::from(c * 10) + 1.0).collect();
        for row in 1..8 {
            let mean = means[row % 4];
            assert!((served[[row, 1]] - mean).abs() < 2.0, "row {row}: {} for mean {mean}", served[[row, 1]]);
            assert!((trained[[row, 1]] - mean).abs() < 3.0 && trained[[row, 1]] != served[[row, 1]], "out of fold");
        }
        assert!(served[[0, 1]].is_nan() && trained[[0, 1]].is_nan(), "a missing level stays missing for trees");
        let unseen = frame(&[1.0, 1.0], &[1.0, 1.0], &[Some("mauve"), None]);
        let prior = target.iter().sum::<f64>() / n as f64;
        assert!((fitted.transform(&unseen, Encoding::Ordinal).unwrap()[[0, 1]] - prior).abs() < 1e-9, "an unseen level is the prior");
        let one_hot = fitted.transform(&unseen, Encoding::OneHot).unwrap();
        let names = fitted.names(Encoding::OneHot);
        let column = names.iter().position(|n| n == "colour").unwrap();
        assert!((one_hot[[0, column]] - prior).abs() < 1e-9 && (one_hot[[1, column]] - prior).abs() < 1e-9);
    }

    #[test]
    fn linear_models_train_on_the_one_hot_rows_as_sparse_rows_block_by_block() {
        // More rows than one block, a target-encoded input, missing values and a cross.
        let colours = ["red", "blue", "green", "pink"];
        let n = 2 * SPARSE_BLOCK_ROWS + 123;
        let size: Vec<f64> = (0..n).map(|i| if i % 97 == 0 { f64::NAN } else { (i % 13) as f64 }).collect();
        let hours: Vec<f64> = (0..n).map(|i| (i % 50) as f64).collect();
        let colour: Vec<Option<&str>> = (0..n).map(|i| if i % 50 == 0 { None } else { Some(colours[i % 4]) }).collect();
        let train = frame(&size, &hours, &colour);
        let target: Vec<f64> = (0..n).map(|i| (i % 4) as f64 * 10.0 + (i % 3) as f64).collect();
        let fitted = FeatureParams::new(&spec()).fit(&train, FitTarget::Values(&target)).unwrap();
        let Design::Sparse(sparse) = fitted.transform_training(&train, Encoding::OneHot, FitTarget::Values(&target), 3).unwrap() else {
            panic!("linear models read sparse rows")
        };
        let dense = fitted.encode(&train, Encoding::OneHot, Some((FitTarget::Values(&target), 3))).unwrap();
        assert_eq!(sparse, SparseRows::from_dense(dense.view()));
    }

    /// Rows with missing sizes, a cross, and a colour of many levels (target-encoded) beside
    /// one of few.
    fn mixed_rows(n: usize) -> (Frame, Vec<f64>) {
        let colours = ["red", "blue", "green", "pink"];
        let size: Vec<f64> = (0..n).map(|i| if i % 97 == 0 { f64::NAN } else { ((i * 7919) % 100_003) as f64 }).collect();
        let hours: Vec<f64> = (0..n).map(|i| ((i * 31) % 5000) as f64).collect();
        let colour: Vec<Option<&str>> = (0..n).map(|i| if i % 50 == 0 { None } else { Some(colours[(i / 3) % 4]) }).collect();
        let target: Vec<f64> = (0..n).map(|i| ((i / 3) % 4) as f64 * 10.0 + (i % 7) as f64).collect();
        (frame(&hours, &size, &colour), target)
    }

    /// Statistics of `frame` summarised in parts cut at `cuts`, merged in order.
    fn merged_stats(params: &FeatureParams, frame: &Frame, target: &[f64], cuts: &[usize]) -> FeatureStats {
        let bounds: Vec<usize> = std::iter::once(0).chain(cuts.iter().copied()).chain([frame.n_rows()]).collect();
        let mut parts = bounds.windows(2).map(|w| {
            let rows: Vec<usize> = (w[0]..w[1]).collect();
            params.stats(&frame.take(&rows), FitTarget::Values(&target[w[0]..w[1]])).unwrap()
        });
        let mut merged = parts.next().unwrap();
        parts.for_each(|part| merged.merge(&part));
        merged
    }

    #[test]
    fn features_fitted_from_merged_parts_encode_as_those_fitted_on_all_rows() {
        let (rows, target) = mixed_rows(5000);
        let params = FeatureParams::new(&spec());
        let whole = params.fit(&rows, FitTarget::Values(&target)).unwrap();
        let merged = params.fit_stats(&merged_stats(&params, &rows, &target, &[1, 1700, 4100])).unwrap();
        // The same levels, order and target encodings: only sums added in another order differ.
        for encoding in [Encoding::Ordinal, Encoding::OneHot] {
            assert_eq!(merged.names(encoding), whole.names(encoding));
            let (a, b) = (merged.transform(&rows, encoding).unwrap(), whole.transform(&rows, encoding).unwrap());
            for (x, y) in a.iter().zip(&b) {
                assert!(x.to_bits() == y.to_bits() || (x - y).abs() <= 1e-9 * y.abs().max(1.0), "{encoding:?}: {x} against {y}");
            }
        }
        // Medians are exact below EXACT_VALUES distinct values.
        let median = |fitted: &FittedFeatures| match &fitted.inputs[0] {
            Input::Numeric { scale, .. } => scale.median,
            _ => unreachable!("size is the first input"),
        };
        assert_eq!(median(&merged), median(&whole));
    }

    #[test]
    fn past_the_exact_limit_a_merged_median_is_within_the_rank_error() {
        let n = 3 * EXACT_VALUES;
        let (rows, target) = mixed_rows(n);
        let params = FeatureParams::new(&spec());
        let stats = merged_stats(&params, &rows, &target, &[EXACT_VALUES / 2, 2 * EXACT_VALUES]);
        let InputStats::Number(size) = &stats.inputs()[0] else { unreachable!("size is a number") };
        assert!(!size.quantiles.is_exact());
        let median = params.fit_stats(&stats).unwrap();
        let Input::Numeric { scale, .. } = &median.inputs[0] else { unreachable!("size is the first input") };
        let sizes: Vec<f64> = match rows.column("size") {
            Some(Column::Numeric(values)) => values.iter().map(|v| v.ln_1p()).filter(|v| v.is_finite()).collect(),
            _ => unreachable!("size is numeric"),
        };
        let below = sizes.iter().filter(|&&v| v < scale.median).count() as f64 / sizes.len() as f64;
        let at_or_below = sizes.iter().filter(|&&v| v <= scale.median).count() as f64 / sizes.len() as f64;
        assert!(below - crate::drift::RANK_ERROR <= 0.5 && 0.5 <= at_or_below + crate::drift::RANK_ERROR, "{below}..{at_or_below}");
    }

    #[test]
    fn declared_categories_keep_the_spec_order_and_levels_training_lacks() {
        let text = spec_text().replace(
            "name = \"colour\"\ntype = \"categorical\"",
            "name = \"colour\"\ntype = \"categorical\"\ncategories = [\"low\", \"mid\", \"high\"]",
        );
        let spec = Spec::parse(&text, "toy").unwrap();
        let train = frame(&[0.0, 1.0, 2.0], &[1.0, 1.0, 1.0], &[Some("mid"), Some("low"), Some("mid")]);
        let fitted = FeatureParams::new(&spec).fit(&train, FitTarget::Values(&[9.0, 1.0, 9.0])).unwrap();
        // "high" is not in the training rows (a later month, say): it still has its code, after "mid".
        let later = frame(&[3.0, 4.0], &[1.0, 1.0], &[Some("high"), Some("low")]);
        let x = fitted.transform(&later, Encoding::Ordinal).unwrap();
        assert_eq!(x.column(1).to_vec(), [2.0, 0.0]);
        let names = fitted.names(Encoding::OneHot);
        assert!(names.contains(&"colour=high".to_string()), "{names:?}");
    }

    #[test]
    fn one_hot_encoding_standardises_imputes_and_expands() {
        let train = frame(&[0.0, 25.0, 49.0], &[1.0, f64::NAN, 3.0], &[Some("a"), Some("b"), None]);
        let fitted = FeatureParams::new(&spec()).fit(&train, FitTarget::Values(&[1.0, 2.0, 3.0])).unwrap();
        let names = fitted.names(Encoding::OneHot);
        assert!(
            names.contains(&"size.missing".to_string())
                && names.contains(&"hour=23".to_string())
                && names.contains(&"hour.sin".to_string())
        );
        let x = fitted.transform(&train, Encoding::OneHot).unwrap();
        assert_eq!(x.ncols(), names.len());
        let column = |name: &str| x.column(names.iter().position(|n| n == name).unwrap()).to_vec();
        assert_eq!(column("size.missing"), [0.0, 1.0, 0.0]);
        assert_eq!(column("hour=1"), [0.0, 1.0, 1.0]);
        assert_eq!(column("colour=a"), [1.0, 0.0, 0.0]);
        // Unseen level at serving time: no level set, no error.
        let serving = frame(&[3.0], &[2.0], &[Some("mauve")]);
        let row = fitted.transform(&serving, Encoding::OneHot).unwrap();
        assert_eq!(row.row(0).iter().zip(&names).filter(|(v, n)| n.starts_with("colour=") && **v != 0.0).count(), 0);
    }

    #[test]
    fn serving_one_row_gives_the_same_encoding_as_the_batch() {
        let train = frame(&[0.0, 5.0, 30.0, 31.0], &[1.0, 2.0, 3.0, 4.0], &[Some("a"), Some("b"), Some("a"), Some("c")]);
        let fitted = FeatureParams::new(&spec()).fit(&train, FitTarget::Values(&[1.0, 2.0, 3.0, 4.0])).unwrap();
        for encoding in [Encoding::Ordinal, Encoding::OneHot] {
            let batch = fitted.transform(&train, encoding).unwrap();
            let single = fitted.transform(&train.take(&[2]), encoding).unwrap();
            assert_eq!(single.row(0), batch.row(2));
        }
        let missing = Frame::new(vec![("hours".into(), Column::Numeric(vec![1.0]))]).unwrap();
        assert!(fitted.transform(&missing, Encoding::Ordinal).unwrap_err().to_string().contains("'size'"));
    }
}
