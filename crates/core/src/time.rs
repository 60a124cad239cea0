//! Row times: parsing datetimes, building a time from an origin and offsets, calendar parts.
//!
//! Times are civil (no time zone) and held as seconds since 1970-01-01T00:00:00 in an `f64`.

use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::TimeZone;

use serde::{Deserialize, Serialize};

use crate::frame::{Column, Frame};
use crate::shown::shown;
use crate::spec::{TimePart, TimeSpec};

/// A value that is not a time, or a row time that cannot be built. Values are shown cut at 40
/// characters.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TimeError {
    #[error("'{0}' is not a date or datetime")]
    NotADate(String),
    #[error("'{0}' is not an RFC 3339 datetime with Z or an offset, e.g. 2013-01-01T10:00:00Z")]
    NotRfc3339(String),
    #[error("'{text}' is not a Unix time in {unit}")]
    NotAnEpoch { text: String, unit: &'static str },
    #[error("'{text}' does not match the datetime format '{format}'")]
    FormatMismatch { text: String, format: String },
    #[error("'{0}' is outside the supported datetime range")]
    OutOfRange(String),
    #[error("time column '{0}' is missing or not a datetime")]
    MissingColumn(String),
    #[error("time offset column '{0}' is missing or not numeric")]
    MissingOffset(String),
}

/// Parses a time origin, `YYYY-MM-DDTHH:MM:SS` or `YYYY-MM-DD`.
pub fn parse_origin(text: &str) -> Result<f64, TimeError> {
    let datetime: DateTime = text
        .parse()
        .or_else(|_| text.parse::<jiff::civil::Date>().map(|d| d.to_datetime(jiff::civil::Time::midnight())))
        .map_err(|_| TimeError::NotADate(shown(text)))?;
    seconds_of(datetime, text)
}

/// The datetime format of RFC 3339 / ISO 8601 instants: `2013-01-01T10:00:00Z`,
/// `2013-01-01 10:00:00.250+01:00`; the instant is kept (in UTC).
pub const RFC3339: &str = "rfc3339";
/// The datetime format of Unix epochs in seconds (`1357034400`, `1357034400.5`).
pub const UNIX_SECONDS: &str = "unix";
/// The datetime format of Unix epochs in milliseconds (`1357034400000`).
pub const UNIX_MILLISECONDS: &str = "unix_ms";

/// Parses a datetime value into seconds since the epoch. `format` is [`RFC3339`],
/// [`UNIX_SECONDS`], [`UNIX_MILLISECONDS`] or a strftime format; a strftime format with an
/// offset (`%z`, `%:z`) gives the instant, one without gives the civil time read as UTC.
pub fn parse_datetime(text: &str, format: &str) -> Result<f64, TimeError> {
    match format {
        RFC3339 => {
            let timestamp: Timestamp = text.parse().map_err(|_| TimeError::NotRfc3339(shown(text)))?;
            Ok(timestamp.as_millisecond() as f64 / 1000.0)
        }
        UNIX_SECONDS => epoch(text, 1.0, "seconds"),
        UNIX_MILLISECONDS => epoch(text, 0.001, "milliseconds"),
        _ => {
            let mismatch = || TimeError::FormatMismatch { text: shown(text), format: format.to_string() };
            let parts = jiff::fmt::strtime::parse(format, text).map_err(|_| mismatch())?;
            if parts.offset().is_some() {
                let timestamp = parts.to_timestamp().map_err(|_| mismatch())?;
                return Ok(timestamp.as_millisecond() as f64 / 1000.0);
            }
            let datetime = parts.to_datetime().or_else(|_| parts.to_date().map(|d| d.to_datetime(jiff::civil::Time::midnight())));
            seconds_of(datetime.map_err(|_| mismatch())?, text)
        }
    }
}

/// A regular expression (anchored) of text in `format` that [`parse_datetime`] accepts, for the
/// OpenAPI document: years 1000 to 9899, and dates that exist in every year (a day of the month
/// right after `%m` is checked against it, else days 1 to 28; 29 February and other days a
/// pattern cannot tell are accepted but not stated). `None` for a strftime directive it does
/// not cover.
pub fn datetime_pattern(format: &str) -> Option<String> {
    const YEAR: &str = "(1[0-9]{3}|[2-8][0-9]{3}|9[0-8][0-9]{2})";
    const MONTH_DAY: &str = "((0[13578]|1[02])SEP(0[1-9]|[12][0-9]|3[01])|(0[469]|11)SEP(0[1-9]|[12][0-9]|30)|02SEP(0[1-9]|1[0-9]|2[0-8]))";
    const HOUR: &str = "([01][0-9]|2[0-3])";
    const MINUTE: &str = "[0-5][0-9]";
    match format {
        RFC3339 => return None,
        UNIX_SECONDS => return Some("^-?[0-9]{1,11}([.][0-9]{1,6})?$".into()),
        UNIX_MILLISECONDS => return Some("^-?[0-9]{1,14}([.][0-9]{1,3})?$".into()),
        _ => {}
    }
    let format = format.replace("%F", "%Y-%m-%d").replace("%T", "%H:%M:%S");
    let mut pattern = String::from("^");
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            pattern.push_str(&regex_literal(c));
            continue;
        }
        match chars.next()? {
            'Y' => pattern.push_str(YEAR),
            'm' => {
                let rest: String = chars.clone().take(3).collect();
                let mut rest = rest.chars();
                match (rest.next(), rest.next(), rest.next()) {
                    (Some(sep), Some('%'), Some('d')) if sep != '%' => {
                        pattern.push_str(&MONTH_DAY.replace("SEP", &regex_literal(sep)));
                        chars.nth(2);
                    }
                    _ => pattern.push_str("(0[1-9]|1[0-2])"),
                }
            }
            'd' => pattern.push_str("(0[1-9]|1[0-9]|2[0-8])"),
            'H' => pattern.push_str(HOUR),
            'M' | 'S' => pattern.push_str(MINUTE),
            '%' => pattern.push('%'),
            _ => return None,
        }
    }
    pattern.push('$');
    Some(pattern)
}

/// A character as a regular expression matching only itself.
fn regex_literal(c: char) -> String {
    if c.is_ascii_alphanumeric() || c == ' ' || c == '-' || c == ':' || c == '/' || c == '_' || c == ',' {
        c.to_string()
    } else {
        format!("[{}]", if c == '\\' || c == ']' || c == '^' { format!("\\{c}") } else { c.to_string() })
    }
}

/// Whether `format` names a datetime format [`parse_datetime`] knows: a named one or a strftime
/// format with at least one directive.
pub fn is_datetime_format(format: &str) -> bool {
    [RFC3339, UNIX_SECONDS, UNIX_MILLISECONDS].contains(&format) || format.contains('%')
}

/// A Unix epoch of `unit` seconds, within the supported datetime range.
fn epoch(text: &str, unit: f64, unit_name: &'static str) -> Result<f64, TimeError> {
    let seconds = text
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .map(|v| v * unit)
        .ok_or_else(|| TimeError::NotAnEpoch { text: shown(text), unit: unit_name })?;
    Timestamp::from_millisecond((seconds * 1000.0).round() as i64).map(|_| seconds).map_err(|_| TimeError::OutOfRange(shown(text)))
}

/// Seconds since the epoch of a civil datetime, read as UTC. Datetimes at the very ends of
/// the calendar (years near ±9999) have no timestamp and are refused, naming `text`.
fn seconds_of(datetime: DateTime, text: &str) -> Result<f64, TimeError> {
    let timestamp = TimeZone::UTC.to_timestamp(datetime).map_err(|_| TimeError::OutOfRange(shown(text)))?;
    Ok(timestamp.as_millisecond() as f64 / 1000.0)
}

/// The calendar part of a time (NaN stays NaN).
pub fn part(seconds: f64, part: TimePart) -> f64 {
    if !seconds.is_finite() {
        return f64::NAN;
    }
    let Ok(timestamp) = Timestamp::from_millisecond((seconds * 1000.0).round() as i64) else {
        return f64::NAN;
    };
    let datetime = TimeZone::UTC.to_datetime(timestamp);
    f64::from(match part {
        TimePart::Minute => i16::from(datetime.minute()),
        TimePart::Hour => i16::from(datetime.hour()),
        TimePart::Weekday => i16::from(datetime.weekday().to_monday_zero_offset()),
        TimePart::DayOfMonth => i16::from(datetime.day()),
        TimePart::DayOfYear => datetime.day_of_year(),
        TimePart::Month => i16::from(datetime.month()),
    })
}

/// The period of a part, for its sine and cosine encoding.
pub fn period(part: TimePart) -> f64 {
    match part {
        TimePart::Minute => 60.0,
        TimePart::Hour => 24.0,
        TimePart::Weekday => 7.0,
        TimePart::DayOfMonth => 31.0,
        TimePart::DayOfYear => 366.0,
        TimePart::Month => 12.0,
    }
}

/// Where row times come from, compiled from a [`TimeSpec`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum TimeSource {
    /// A datetime column (seconds since the epoch in the frame).
    Column(String),
    /// `origin + sum((value + shift) * unit)` over the offset columns.
    Offsets { origin: f64, offsets: Vec<(String, f64, f64)> },
}

impl TimeSource {
    pub fn new(time: &TimeSpec) -> Result<TimeSource, TimeError> {
        match &time.column {
            Some(column) => Ok(TimeSource::Column(column.clone())),
            None => Ok(TimeSource::Offsets {
                origin: parse_origin(time.origin.as_deref().unwrap_or_default())?,
                offsets: time.offsets.iter().map(|o| (o.column.clone(), o.unit.seconds(), o.shift)).collect(),
            }),
        }
    }

    /// The columns a time is built from.
    pub fn columns(&self) -> Vec<String> {
        match self {
            TimeSource::Column(column) => vec![column.clone()],
            TimeSource::Offsets { offsets, .. } => offsets.iter().map(|(column, _, _)| column.clone()).collect(),
        }
    }

    /// Each row's time; a missing input gives NaN.
    pub fn row_times(&self, frame: &Frame) -> Result<Vec<f64>, TimeError> {
        match self {
            TimeSource::Column(name) => match frame.column(name) {
                Some(Column::Numeric(values)) => Ok(values.clone()),
                _ => Err(TimeError::MissingColumn(name.clone())),
            },
            TimeSource::Offsets { origin, offsets } => {
                let mut times = vec![*origin; frame.n_rows()];
                for (name, unit, shift) in offsets {
                    let Some(Column::Numeric(values)) = frame.column(name) else {
                        return Err(TimeError::MissingOffset(name.clone()));
                    };
                    for (time, value) in times.iter_mut().zip(values) {
                        *time += (value + shift) * unit;
                    }
                }
                Ok(times)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetime_patterns_state_what_the_format_parses() {
        let ymd = datetime_pattern("%Y-%m-%d %H:%M:%S").unwrap();
        assert!(ymd.starts_with("^(1[0-9]{3}|") && ymd.ends_with(" ([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]$"), "{ymd}");
        assert!(ymd.contains("02-(0[1-9]|1[0-9]|2[0-8])") && ymd.contains("(0[469]|11)-(0[1-9]|[12][0-9]|30)"), "{ymd}");
        assert_eq!(datetime_pattern("%F").unwrap(), datetime_pattern("%Y-%m-%d").unwrap());
        // A day not right after its month is stated as 1 to 28; a literal dot is escaped.
        assert_eq!(
            datetime_pattern("%d.%m.%Y").unwrap(),
            "^(0[1-9]|1[0-9]|2[0-8])[.](0[1-9]|1[0-2])[.](1[0-9]{3}|[2-8][0-9]{3}|9[0-8][0-9]{2})$"
        );
        assert_eq!(datetime_pattern(UNIX_SECONDS).unwrap(), "^-?[0-9]{1,11}([.][0-9]{1,6})?$");
        assert_eq!(datetime_pattern("%a %d %b"), None, "a directive it does not cover");
        assert_eq!(datetime_pattern(RFC3339), None);
        // What the patterns allow parses: the last day of each month in 9899, the first in 1000.
        for (month, day) in [(1, 31), (2, 28), (4, 30), (12, 31)] {
            for year in [1000, 9899] {
                let text = format!("{year}-{month:02}-{day:02} 23:59:59");
                assert!(parse_datetime(&text, "%Y-%m-%d %H:%M:%S").is_ok(), "{text}");
            }
        }
    }
    use crate::spec::{TimeOffset, TimeUnit};

    #[test]
    fn datetimes_parse_with_their_format_and_name_the_value_when_not() {
        assert_eq!(parse_datetime("1970-01-02 01:00:00", "%Y-%m-%d %H:%M:%S"), Ok(90_000.0));
        assert_eq!(parse_datetime("02/01/1970", "%d/%m/%Y"), Ok(86_400.0));
        let error = parse_datetime("yesterday", "%Y-%m-%d").unwrap_err().to_string();
        assert!(error.contains("'yesterday'") && error.contains("%Y-%m-%d"));
    }

    #[test]
    fn rfc3339_instants_with_z_offsets_and_fractions_are_read_in_utc() {
        let ten = parse_datetime("2013-01-01T10:00:00", "%Y-%m-%dT%H:%M:%S").unwrap();
        assert_eq!(parse_datetime("2013-01-01T10:00:00Z", RFC3339), Ok(ten));
        assert_eq!(parse_datetime("2013-01-01T11:30:00+01:30", RFC3339), Ok(ten));
        assert_eq!(parse_datetime("2013-01-01T05:00:00-05:00", RFC3339), Ok(ten));
        assert_eq!(parse_datetime("2013-01-01 10:00:00.250Z", RFC3339), Ok(ten + 0.25));
        assert_eq!(parse_datetime("2013-01-01T10:00:00.5+00:00", RFC3339), Ok(ten + 0.5));
        let error = parse_datetime("2013-01-01T10:00:00", RFC3339).unwrap_err().to_string();
        assert!(error.contains("'2013-01-01T10:00:00'") && error.contains("offset"), "{error}");
        assert!(parse_datetime("2013-13-01T10:00:00Z", RFC3339).is_err());
        assert_eq!(parse_datetime("2013-01-01 11:00:00 +0100", "%Y-%m-%d %H:%M:%S %z"), Ok(ten));
    }

    #[test]
    fn unix_epochs_in_seconds_and_milliseconds() {
        let ten = parse_datetime("2013-01-01T10:00:00Z", RFC3339).unwrap();
        assert_eq!(ten, 1_357_034_400.0);
        assert_eq!(parse_datetime("1357034400", UNIX_SECONDS), Ok(ten));
        assert_eq!(parse_datetime("1357034400.5", UNIX_SECONDS), Ok(ten + 0.5));
        assert_eq!(parse_datetime("1357034400250", UNIX_MILLISECONDS), Ok(ten + 0.25));
        assert_eq!(parse_datetime("-86400", UNIX_SECONDS), Ok(-86_400.0));
        assert!(parse_datetime("soon", UNIX_SECONDS).unwrap_err().to_string().contains("'soon'"));
        assert!(parse_datetime("1e300", UNIX_SECONDS).unwrap_err().to_string().contains("outside the supported datetime range"));
        assert!(parse_datetime("NaN", UNIX_MILLISECONDS).is_err());
        assert!(is_datetime_format(RFC3339) && is_datetime_format("%d/%m/%Y") && !is_datetime_format("dd/mm/yyyy"));
    }

    #[test]
    fn the_ends_of_the_calendar_are_refused_not_panicked_on() {
        for (text, format) in [("9999-12-31 23:59:59", "%Y-%m-%d %H:%M:%S"), ("9999-12-31", "%Y-%m-%d"), ("-9999-01-01", "%Y-%m-%d")] {
            let error = parse_datetime(text, format).unwrap_err().to_string();
            assert!(error.contains(text), "{error}");
        }
        assert!(parse_origin("9999-12-31T23:59:59").unwrap_err().to_string().contains("outside the supported datetime range"));
        assert!(parse_origin("-009999-01-01").is_err());
        assert!(parse_datetime("9999-12-30 21:00:00", "%Y-%m-%d %H:%M:%S").is_ok());
    }

    #[test]
    fn bikeshare_times_come_from_day_and_hour() {
        let time = TimeSpec {
            column: None,
            origin: Some("2011-01-01T00:00:00".into()),
            offsets: vec![
                TimeOffset { column: "day".into(), unit: TimeUnit::Days, shift: -1.0 },
                TimeOffset { column: "hr".into(), unit: TimeUnit::Hours, shift: 0.0 },
            ],
        };
        let frame = Frame::new(vec![
            ("day".into(), Column::Numeric(vec![1.0, 32.0, 365.0])),
            ("hr".into(), Column::Numeric(vec![0.0, 17.0, 23.0])),
        ])
        .unwrap();
        let times = TimeSource::new(&time).unwrap().row_times(&frame).unwrap();
        assert_eq!(times[0], parse_origin("2011-01-01").unwrap());
        // 2011-02-01 was a Tuesday; 2011-12-31 a Saturday.
        assert_eq!([part(times[1], TimePart::Month), part(times[1], TimePart::Hour), part(times[1], TimePart::Weekday)], [2.0, 17.0, 1.0]);
        assert_eq!([part(times[2], TimePart::DayOfYear), part(times[2], TimePart::Weekday)], [365.0, 5.0]);
        assert!(part(f64::NAN, TimePart::Hour).is_nan());
    }
}
