use super::*;
use crate::feedback::store_feedback;
use crate::stages::{quiet, run};
use crate::testing::TOY_SPEC;
use mlops_core::contracts::{RunRequest, Trigger};
use mlops_core::{FsStore, Request, Service, ServiceOptions, Spec};

/// A store whose production model was trained on the toy spec.
pub(super) fn trained() -> (tempfile::TempDir, FsStore, Spec) {
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::new(dir.path());
    let spec = Spec::parse(TOY_SPEC, "toy").unwrap();
    let mut text = String::from("x,group,y\n");
    for i in 0..800 {
        let x = ((i * 7919) % 1000) as f64 / 100.0;
        text.push_str(&format!("{x},{},{}\n", ["a", "b", "c"][i % 3], 2.0 * x + (i % 5) as f64));
    }
    store.put("raw/toy/a.csv", text.as_bytes()).unwrap();
    run(&store, &spec, &RunRequest { dataset: "toy".into(), keys: Vec::new(), trigger: Trigger::Manual, id: None }, &quiet).unwrap();
    (dir, store, spec)
}

fn scored(store: &FsStore, csv: &str) -> Result<(ScoreSummary, String, String), PipelineError> {
    let (mut output, mut rejects) = (Vec::new(), Vec::new());
    let summary = score_csv(store, "toy", "batch.csv", csv.as_bytes(), &mut output, &mut rejects)?;
    Ok((summary, String::from_utf8(output).unwrap(), String::from_utf8(rejects).unwrap()))
}

/// A /predict answer, its predictions as written.
#[derive(serde::Deserialize)]
struct Answer<'a> {
    #[serde(borrow)]
    predictions: Vec<&'a RawValue>,
}

#[test]
fn a_batch_is_scored_as_predict_answers_and_bad_rows_go_to_the_rejects_with_their_reasons() {
    let (_dir, store, spec) = trained();
    let csv = "x,group,y\n1.5,a,\n2.0,b,4\noops,a,1\n3.0,z,1\n4.0,c\n\"5.0\",\" c \",\"\"\n,a,1\n";
    let (summary, output, rejects) = scored(&store, csv).unwrap();
    assert_eq!((summary.rows, summary.scored, summary.rejected, summary.log_files), (7, 3, 4, 1), "{summary:?}");

    let rejects: Vec<&str> = rejects.lines().collect();
    assert_eq!(rejects[0], "line,reason,x,group,y");
    assert_eq!(rejects[1], "4,field 'x': 'oops' is not a finite number,oops,a,1");
    assert_eq!(rejects[2], "5,\"field 'group': 'z' is not one of the categories (a, b, c)\",3.0,z,1");
    assert_eq!(rejects[3], "6,2 fields where the header has 3,4.0,c");
    assert_eq!(rejects[4], "8,field 'x': missing value,,a,1");

    // The same rows through /predict give the same predictions, to the last bit.
    let service = Service::new(std::sync::Arc::new(store.clone()), "toy", ServiceOptions::default());
    let body = r#"{"rows": [{"x": 1.5, "group": "a"}, {"x": 2.0, "group": "b"}, {"x": 5.0, "group": "c"}]}"#;
    let answer = service.handle(&Request { method: "POST".into(), path: "/predict".into(), body: body.into(), request_id: None });
    assert_eq!(answer.status, 200);
    // Read as written: serde_json's own float parsing may be one ulp off.
    let answer: Answer = serde_json::from_slice(&answer.body).unwrap();
    let lines: Vec<Vec<&str>> = output.lines().map(|line| line.split(',').collect()).collect();
    assert_eq!(lines[0], ["x", "group", "y", "prediction_id", "prediction", "model_version"]);
    assert_eq!(lines.len(), 4);
    let version = summary.version.as_str();
    for (row, (line, expected)) in lines[1..].iter().zip(answer.predictions).enumerate() {
        assert_eq!(line[4].parse::<f64>().unwrap(), expected.get().parse::<f64>().unwrap(), "row {row}");
        assert_eq!(line[5], version);
    }
    assert_eq!(lines[3][..3], ["5.0", " c ", ""], "the file's own fields are kept as they were");
    let ids: Vec<&str> = lines[1..].iter().map(|line| line[3]).collect();
    // Named by each row's byte offset in the file: the same however the file is cut.
    let offset = |row: &str| csv.find(row).unwrap();
    let expected = ["1.5,a,\n", "2.0,b,4\n", "\"5.0\""].map(|row| format!("{}-{}", summary.batch, offset(row)));
    assert_eq!(ids, expected);

    // Each prediction is logged, so delayed labels keyed by the output's ids join them.
    let feedback = format!("prediction_id,y\n{},4\n{},5\n{},11\n", ids[0], ids[1], ids[2]);
    let stored = store_feedback(&store, &spec, "labels.csv", feedback.as_bytes()).unwrap();
    assert_eq!(stored.matched, 3);
}

#[test]
fn a_file_that_does_not_fit_the_schema_fails_once_naming_the_column() {
    let (_dir, store, _spec) = trained();
    let error = scored(&store, "x,group,colour\n1,a,red\n").unwrap_err().to_string();
    assert!(error.contains("batch.csv: the column 'colour' is not in the model's schema (its inputs: x, group)"), "{error}");
    let error = scored(&store, "group\na\n").unwrap_err().to_string();
    assert!(error.contains("batch.csv: no column 'x', which the model requires"), "{error}");
    let empty = FsStore::new(tempfile::tempdir().unwrap().path());
    let error = scored(&empty, "x,group\n1,a\n").unwrap_err().to_string();
    assert!(error.contains("'toy' has no production model"), "{error}");
}

#[test]
fn a_large_file_streams_in_chunks_each_logged_as_one_file() {
    let (_dir, store, _spec) = trained();
    let rows = CHUNK_ROWS * 2 + 5;
    let mut csv = String::from("group,x\n");
    for i in 0..rows {
        csv.push_str(&format!("{},{}\n", ["a", "b", "c"][i % 3], (i % 1000) as f64 / 100.0));
    }
    let (summary, output, rejects) = scored(&store, &csv).unwrap();
    assert_eq!((summary.rows, summary.scored, summary.rejected, summary.log_files), (rows, rows, 0, 3));
    assert_eq!(output.lines().count(), rows + 1);
    assert_eq!(rejects.lines().count(), 1);
    let logged: usize = store
        .list("inference/toy/")
        .unwrap()
        .iter()
        .map(|key| String::from_utf8(store.get(key).unwrap().unwrap()).unwrap().lines().count())
        .sum();
    assert_eq!(logged, rows);
}
