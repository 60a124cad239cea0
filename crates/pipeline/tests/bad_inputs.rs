//! Generated bad inputs, as a hostile or careless user would send them: CSV files for prep,
//! `/predict` bodies, spec files and feedback files, each a valid input mutated by proptest
//! (bytes flipped, cut, or spliced with values known to break parsers). None may panic, and
//! after each the raw files and the registry are byte-identical to what they were.
//!
//! The number of cases per input kind is `MLOPS_BAD_INPUT_CASES` (default 256, so 1,280 in all);
//! the seed is fixed, so a failure reproduces.

use std::collections::BTreeMap;
use std::sync::Arc;

use mlops_core::LogLine;
use mlops_core::contracts::{RunRequest, Trigger};
use mlops_core::{FsStore, Spec, Store};
use mlops_core::{Request, Service, ServiceOptions};
use mlops_pipeline::feedback::store_feedback;
use mlops_pipeline::stages;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestRunner};
use serde_json::{Value, json};

const SPEC: &str = r#"
name = "toy"
id = "key"
ignore = ["leak"]
[target]
column = "y"
task = "regression"
[time]
column = "when"
[[columns]]
name = "key"
type = "string"
[[columns]]
name = "n"
type = "integer"
min = 0
max = 1000
[[columns]]
name = "x"
type = "float"
nullable = true
[[columns]]
name = "group"
type = "categorical"
categories = ["a", "b", "c"]
[[columns]]
name = "flag"
type = "boolean"
[[columns]]
name = "when"
type = "datetime"
format = "%Y-%m-%d %H:%M:%S"
[[columns]]
name = "leak"
type = "float"
[[columns]]
name = "y"
type = "float"
[features]
time_parts = ["hour", "weekday"]
[models.gbm]
kind = "gradient_boosting"
max_iter = 20
[models.lm]
kind = "linear"
[drift]
min_samples = 10
window = 100
"#;

/// Values that have broken CSV, JSON, number and datetime parsers before.
const TOKENS: &[&str] = &[
    "\"",
    "\"\"",
    "\n",
    "\r\n",
    "\n\n",
    ",",
    ",,,,",
    "99999999999999999999",
    "-9223372036854775809",
    "1e300",
    "1e400",
    "1e2",
    "NaN",
    "-inf",
    "9999-12-31 23:59:59",
    "-9999-01-01 00:00:00",
    "0000-00-00 00:00:00",
    "\u{0}",
    "\u{feff}",
    "é",
    "_row",
    "_reason",
    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
    "{\"y\": {\"a\": {\"b\": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}}}",
    "null",
    "true",
    "-",
    " ",
    "\t",
    "nan",
    "inf",
    "1e15",
    "../",
    "\\",
    "=",
    "[",
    "]",
];

/// One change to an input.
#[derive(Debug, Clone)]
enum Mutation {
    Insert {
        at: f64,
        token: usize,
    },
    Replace {
        at: f64,
        byte: u8,
    },
    Delete {
        at: f64,
        len: usize,
    },
    Truncate {
        at: f64,
    },
    Repeat {
        at: f64,
        len: usize,
        times: usize,
    },
    /// A whole CSV field (by line and column) replaced with a token.
    Cell {
        line: f64,
        column: f64,
        token: usize,
    },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (0.0..1.0, 0..TOKENS.len()).prop_map(|(at, token)| Mutation::Insert { at, token }),
        2 => (0.0..1.0, any::<u8>()).prop_map(|(at, byte)| Mutation::Replace { at, byte }),
        1 => (0.0..1.0, 1..40usize).prop_map(|(at, len)| Mutation::Delete { at, len }),
        1 => (0.0..1.0).prop_map(|at| Mutation::Truncate { at }),
        1 => (0.0..1.0, 1..30usize, 2..200usize).prop_map(|(at, len, times)| Mutation::Repeat { at, len, times }),
        4 => (0.0..1.0, 0.0..1.0, 0..TOKENS.len()).prop_map(|(line, column, token)| Mutation::Cell { line, column, token }),
    ]
}

fn mutated(seed: &[u8], mutations: &[Mutation]) -> Vec<u8> {
    let mut bytes = seed.to_vec();
    for mutation in mutations {
        let at = |fraction: f64, len: usize| ((fraction * len as f64) as usize).min(len);
        match *mutation {
            Mutation::Insert { at: f, token } => {
                let i = at(f, bytes.len());
                bytes.splice(i..i, TOKENS[token].bytes());
            }
            Mutation::Replace { at: f, byte } if !bytes.is_empty() => {
                let i = at(f, bytes.len() - 1);
                bytes[i] = byte;
            }
            Mutation::Delete { at: f, len } => {
                let i = at(f, bytes.len());
                let end = (i + len).min(bytes.len());
                bytes.drain(i..end);
            }
            Mutation::Truncate { at: f } => bytes.truncate(at(f, bytes.len())),
            Mutation::Repeat { at: f, len, times } => {
                let i = at(f, bytes.len());
                let end = (i + len).min(bytes.len());
                let piece = bytes[i..end].repeat(times);
                bytes.splice(end..end, piece);
            }
            Mutation::Cell { line, column, token } => {
                let text = String::from_utf8_lossy(&bytes).to_string();
                let mut lines: Vec<String> = text.split('\n').map(str::to_string).collect();
                let l = at(line, lines.len().saturating_sub(1));
                let mut cells: Vec<String> = lines[l].split(',').map(str::to_string).collect();
                let c = at(column, cells.len().saturating_sub(1));
                cells[c] = TOKENS[token].to_string();
                lines[l] = cells.join(",");
                bytes = lines.join("\n").into_bytes();
            }
            Mutation::Replace { .. } => {}
        }
    }
    bytes
}

fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    proptest::collection::vec(mutation(), 1..6)
}

fn csv(n: usize) -> String {
    let mut text = String::from("key,n,x,group,flag,when,leak,y\n");
    for i in 0..n {
        let group = ["a", "b", "c"][i % 3];
        let x = (i % 17) as f64 / 4.0;
        text.push_str(&format!(
            "k{i},{},{x},{group},{},2024-03-{:02} {:02}:00:00,{},{}\n",
            i % 50,
            i % 2,
            1 + i / 24 % 28,
            i % 24,
            i % 5,
            2.0 * x + [0.0, 3.0, -1.0][i % 3] + (i % 7) as f64 / 7.0
        ));
    }
    text
}

/// Every file under `prefixes`, by key, with its bytes.
fn snapshot(store: &FsStore, prefixes: &[&str]) -> BTreeMap<String, Vec<u8>> {
    prefixes
        .iter()
        .flat_map(|prefix| store.list(prefix).unwrap())
        .map(|key| {
            let bytes = store.get(&key).unwrap().unwrap();
            (key, bytes)
        })
        .collect()
}

/// A store holding a promoted model of the toy spec.
fn trained_store() -> (tempfile::TempDir, Arc<FsStore>, Spec) {
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::new(dir.path());
    let spec = Spec::parse(SPEC, "toy.toml").unwrap();
    store.put("raw/toy/seed.csv", csv(300).as_bytes()).unwrap();
    let request = RunRequest { dataset: "toy".into(), keys: Vec::new(), trigger: Trigger::Manual, id: None };
    let record = stages::run(&store, &spec, &request, &stages::quiet).unwrap();
    assert!(record.promoted);
    (dir, Arc::new(store), spec)
}

fn cases() -> u32 {
    std::env::var("MLOPS_BAD_INPUT_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(256)
}

fn runner(salt: u64) -> TestRunner {
    TestRunner::new(Config { cases: cases(), failure_persistence: None, rng_seed: RngSeed::Fixed(0x6d6c_6f70 ^ salt), ..Config::default() })
}

const KEPT: [&str; 3] = ["raw/", "registry/", "models/"];

#[test]
fn bad_csv_files_are_quarantined_or_rejected_never_a_panic() {
    let (_dir, store, spec) = trained_store();
    let seed = csv(40);
    let tried = std::sync::atomic::AtomicUsize::new(0);
    runner(1)
        .run(&mutations(), |mutations| {
            let bytes = mutated(seed.as_bytes(), &mutations);
            let key = format!("raw/toy/fuzz-{}.csv", tried.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
            // The parser alone (prep guards it against panics; this must not need the guard).
            let _ = mlops_prep::parse_csv(&key, &bytes, &spec);
            store.put(&key, &bytes).unwrap();
            let before = snapshot(&store, &KEPT);
            let request = RunRequest { dataset: "toy".into(), keys: vec![key.clone()], trigger: Trigger::Upload, id: None };
            if let Ok(output) = stages::prep(store.as_ref(), &spec, &request) {
                prop_assert_eq!(output.files.len(), 1);
            }
            prop_assert_eq!(&snapshot(&store, &KEPT), &before, "prep changed raw data or the registry");
            let manifest = String::from_utf8(store.get("processed/toy/manifest.json").unwrap().unwrap()).unwrap();
            prop_assert!(manifest.contains(&key), "{} is not in the manifest: a file must never block later runs", key);
            Ok(())
        })
        .unwrap();
}

/// JSON values that have broken row checks and the log writer: huge and exotic numbers, dates
/// at the ends of the calendar, deep nesting (deeper than serde_json's recursion limit).
fn json_values() -> Vec<Value> {
    let mut deep = json!(1);
    for _ in 0..200 {
        deep = json!([deep]);
    }
    let mut values: Vec<Value> = TOKENS.iter().map(|t| json!(t)).collect();
    values.extend([
        json!(null),
        json!(true),
        json!(1e300),
        json!(-0.0),
        serde_json::from_str("99999999999999999999").unwrap(),
        serde_json::from_str("1e2").unwrap(),
        json!(u64::MAX),
        json!(i64::MIN),
        json!("9999-12-31 23:59:59"),
        json!("-9999-01-01 00:00:00"),
        json!({ "a": [1, { "b": "c\nd" }] }),
        json!("x".repeat(100_000)),
        deep,
    ]);
    values
}

/// Names a row may carry: its inputs, the target, an ignored column, and unknown ones.
const FIELDS: [&str; 10] = ["key", "n", "x", "group", "flag", "when", "y", "leak", "extra", ""];

/// A request body from a valid one: fields of its rows set to tricky values, written compact
/// or pretty (line breaks inside rows).
fn body() -> impl Strategy<Value = (Vec<(usize, usize, usize)>, bool)> {
    (proptest::collection::vec((0..2usize, 0..FIELDS.len(), 0..json_values().len()), 1..4), any::<bool>())
}

#[test]
fn bad_predict_fields_get_a_4xx_never_a_panic_and_only_inputs_are_logged() {
    let (_dir, store, _spec) = trained_store();
    let service = Service::new(store.clone(), "toy", ServiceOptions::default());
    let row = json!({"key": "k1", "n": 3, "x": 1.5, "group": "b", "flag": true, "when": "2024-03-02 10:00:00", "y": 4.5, "leak": 1});
    let values = json_values();
    let before = snapshot(&store, &KEPT);
    runner(5)
        .run(&body(), |(changes, pretty)| {
            let mut body = json!({ "rows": [row.clone(), row.clone()] });
            for (index, field, value) in changes {
                body["rows"][index][FIELDS[field]] = values[value].clone();
            }
            let text = if pretty { serde_json::to_string_pretty(&body).unwrap() } else { body.to_string() };
            answered_with_a_4xx_at_worst(&service, text.into_bytes())?;
            let earlier = store.list("inference/toy/").unwrap();
            service.flush_logs().unwrap();
            assert_logged_inputs_only(store.as_ref(), &earlier)
        })
        .unwrap();
    assert_eq!(snapshot(&store, &KEPT), before);
}

/// POSTs `body` to /predict: the answer is a prediction or a client error, never a 5xx.
fn answered_with_a_4xx_at_worst(service: &Service, body: Vec<u8>) -> Result<(), TestCaseError> {
    let response = service.handle(&Request { method: "POST".into(), path: "/predict".into(), body, request_id: None });
    prop_assert!(
        [200, 400, 413, 422].contains(&response.status),
        "status {}: {}",
        response.status,
        String::from_utf8_lossy(&response.body)
    );
    Ok(())
}

/// Every inference log line (but those of the `earlier` files) reads back, and holds no field
/// the service does not read.
fn assert_logged_inputs_only(store: &FsStore, earlier: &[String]) -> Result<(), TestCaseError> {
    for key in store.list("inference/toy/").unwrap().into_iter().filter(|k| !earlier.contains(k)) {
        let text = String::from_utf8(store.get(&key).unwrap().unwrap()).unwrap();
        for line in text.lines() {
            let logged: LogLine = serde_json::from_str(line).unwrap_or_else(|e| panic!("{key}: {e}: {line}"));
            let fields: serde_json::Map<String, Value> = serde_json::from_str(logged.features.get()).unwrap();
            prop_assert!(fields.keys().all(|k| ["key", "n", "x", "group", "flag", "when"].contains(&k.as_str())), "{}", line);
        }
    }
    Ok(())
}

#[test]
fn bad_predict_bodies_get_a_4xx_never_a_panic_and_logs_stay_one_line_each() {
    let (_dir, store, _spec) = trained_store();
    let service = Service::new(store.clone(), "toy", ServiceOptions::default());
    let row = r#"{"key": "k1", "n": 3, "x": 1.5, "group": "b", "flag": true, "when": "2024-03-02 10:00:00", "y": 4.5, "leak": 1}"#;
    let seed = format!(r#"{{"rows": [{row}, {row}]}}"#);
    let before = snapshot(&store, &KEPT);
    runner(2).run(&mutations(), |mutations| answered_with_a_4xx_at_worst(&service, mutated(seed.as_bytes(), &mutations))).unwrap();
    service.flush_logs().unwrap();
    assert_eq!(snapshot(&store, &KEPT), before);
    assert_logged_inputs_only(store.as_ref(), &[]).unwrap();
}

#[test]
fn bad_spec_files_are_refused_at_load_or_usable_never_a_panic() {
    let spec_text = SPEC.to_string();
    let data = csv(30);
    runner(3)
        .run(&mutations(), |mutations| {
            let bytes = mutated(spec_text.as_bytes(), &mutations);
            let Ok(text) = String::from_utf8(bytes) else { return Ok(()) };
            if let Ok(spec) = Spec::parse(&text, "fuzz.toml") {
                // A spec that loads can be used: its rules apply without panicking.
                let _ = mlops_prep::parse_csv("raw/x/a.csv", data.as_bytes(), &spec);
                let _ = mlops_core::RowSchema::new(&spec).json_schema();
                if let Some(time) = &spec.time {
                    prop_assert!(mlops_core::time::TimeSource::new(time).is_ok(), "a loaded spec's time source must build");
                }
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn bad_feedback_files_are_refused_or_stored_never_a_panic() {
    let (_dir, store, spec) = trained_store();
    let seed = "key,y\nk1,3.5\nk2,4\nk3,1e1\n";
    let tried = std::sync::atomic::AtomicUsize::new(0);
    runner(4)
        .run(&mutations(), |mutations| {
            let bytes = mutated(seed.as_bytes(), &mutations);
            let before = snapshot(&store, &KEPT);
            let name = format!("labels-{}.csv", tried.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
            let _ = store_feedback(store.as_ref(), &spec, &name, &bytes);
            prop_assert_eq!(&snapshot(&store, &KEPT), &before);
            Ok(())
        })
        .unwrap();
}
