use super::*;
use crate::score::tests::trained;
use mlops_core::FsStore;

const KEY: &str = "batch/toy/day one.csv";

/// Small shards, two per map item.
fn sizing() -> Sizing {
    Sizing { shard_bytes: 2_000, shards_per_item: 2, ..Sizing::default() }
}

/// A batch of `rows` rows, every 97th of them bad, each with `pad` after its group.
fn batch_csv(rows: usize) -> String {
    let mut csv = String::from("\u{feff}x,group,y\n");
    for i in 0..rows {
        match i % 97 {
            13 => csv.push_str("oops,a,1\n"),
            50 => csv.push_str(&format!("{},z,1\n", i % 10)),
            _ => csv.push_str(&format!("{},{},{}\n", (i * 7919 % 1000) as f64 / 100.0, ["a", "b", "c"][i % 3], i % 7)),
        }
    }
    csv
}

/// Runs the plan, the map items (all but `skipped`) and the finish, as the state machine does.
fn scored_in_shards(store: &FsStore, skipped: Option<usize>) -> (ScorePlanned, Result<ScoredFile, PipelineError>) {
    let request = ScoreRequest { dataset: "toy".into(), key: KEY.into(), id: None };
    let planned = plan(store, &request, sizing()).unwrap();
    for item in (0..planned.items).filter(|item| Some(*item) != skipped) {
        score_item(store, &ScoreItem { dataset: "toy".into(), plan: planned.plan.clone(), item }).unwrap();
    }
    let finished = finish(store, &planned);
    (planned, finished)
}

/// The file scored whole in one stream by the plan's batch: its scores and rejects.
fn scored_whole(store: &FsStore, planned: &ScorePlanned) -> (Vec<u8>, Vec<u8>) {
    let plan = read_plan(store, Keys { dataset: "toy" }, &planned.plan).unwrap();
    let batch = Batch::pinned(store, "toy", &plan.version, plan.batch.clone()).unwrap();
    let (mut scores, mut rejects) = (Vec::new(), Vec::new());
    let bytes = store.get(KEY).unwrap().unwrap();
    batch.score_stream(store, KEY, bytes.as_slice(), &mut scores, &mut rejects, plan.at).unwrap();
    (scores, rejects)
}

fn output(store: &FsStore, part: &str) -> Vec<u8> {
    store.get(&Keys { dataset: "toy" }.scored("day one", part)).unwrap().unwrap_or_default()
}

#[test]
fn a_file_scored_in_shards_gives_the_outputs_of_the_file_scored_whole() {
    let (_dir, store, _spec) = trained();
    let csv = batch_csv(3_000);
    store.put(KEY, csv.as_bytes()).unwrap();
    let (planned, scored) = scored_in_shards(&store, None);
    let scored = scored.unwrap();
    assert!(planned.shards >= 10 && planned.items == planned.shards.div_ceil(2), "{planned:?}");
    assert_eq!(scored.shards, planned.shards);
    let bad = 2 * (3_000 / 97) + usize::from(3_000 % 97 > 50) + usize::from(3_000 % 97 > 13);
    assert_eq!((scored.summary.rows, scored.summary.scored, scored.summary.rejected), (3_000, 3_000 - bad, bad), "{scored:?}");
    assert_eq!((scored.scores.as_str(), scored.rejects.as_str()), ("scored/toy/day one/scores.csv", "scored/toy/day one/rejects.csv"));

    // Byte for byte what one stream gives: the same rows in order, the same prediction ids
    // (byte offsets in the file), the rejects at their lines in the file.
    let (scores, rejects) = scored_whole(&store, &planned);
    assert!(output(&store, "scores.csv") == scores, "the sharded scores differ from the whole file's");
    assert_eq!(String::from_utf8(output(&store, "rejects.csv")).unwrap(), String::from_utf8(rejects).unwrap());
    let rejects = String::from_utf8(output(&store, "rejects.csv")).unwrap();
    assert!(rejects.lines().nth(1).unwrap().starts_with("15,field 'x': 'oops' is not a finite number,oops"), "{rejects}");
    // Every prediction is logged once, in the inference log, under the plan's batch.
    let logged: Vec<String> = store
        .list("inference/toy/")
        .unwrap()
        .iter()
        .filter(|key| key.contains("-s0"))
        .flat_map(|key| String::from_utf8(store.get(key).unwrap().unwrap()).unwrap().lines().map(str::to_string).collect::<Vec<_>>())
        .collect();
    assert_eq!(logged.len(), scored.summary.scored);
    assert_eq!(scored.summary.log_files, planned.shards);
    // The summary, then the marker that closes the outputs.
    let summary: ScoredFile = serde_json::from_slice(&output(&store, "summary.json")).unwrap();
    assert_eq!(summary, scored);
    assert!(store.get(&Keys { dataset: "toy" }.scored("day one", "_SUCCESS")).unwrap().is_some());
    // A retried finish writes the same outputs and log files again, not more of them.
    let logs = store.list("inference/toy/").unwrap().len();
    assert_eq!(finish(&store, &planned).unwrap(), scored);
    assert_eq!(store.list("inference/toy/").unwrap().len(), logs);
    assert_eq!(store.get(KEY).unwrap().unwrap(), csv.as_bytes(), "the uploaded file is never written");
}

#[test]
fn a_shard_without_output_fails_the_finish_and_nothing_is_closed() {
    let (_dir, store, _spec) = trained();
    store.put(KEY, batch_csv(3_000).as_bytes()).unwrap();
    // Item 1 failed, yet the map reported success (LocalStack's null result).
    let (_, finished) = scored_in_shards(&store, Some(1));
    let error = finished.unwrap_err();
    assert_eq!(error.kind(), mlops_core::ErrorKind::Internal, "{error}");
    assert!(error.to_string().contains("shard 2 of batch/toy/day one.csv has no output: its map item failed or has not run"), "{error}");
    for part in [SCORES, REJECTS, SUMMARY, SUCCESS] {
        assert!(store.get(&Keys { dataset: "toy" }.scored("day one", part)).unwrap().is_none(), "{part} written");
    }
}

#[test]
fn a_quoted_line_break_across_a_cut_has_the_file_scored_whole() {
    let (_dir, store, _spec) = trained();
    // A quoted field of many lines over the first cut (2,000 bytes): the shard after it starts
    // inside the field.
    let mut csv = batch_csv(100);
    csv.push_str(&format!("1.0,\"{}\",2\n", "a\n".repeat(600)));
    csv.push_str(&batch_csv(200)["\u{feff}x,group,y\n".len()..]);
    assert!(csv.find("\"a\n").unwrap() < 2_000 && csv.rfind("a\n\"").unwrap() > 2_000);
    store.put(KEY, csv.as_bytes()).unwrap();
    let (planned, scored) = scored_in_shards(&store, None);
    let scored = scored.unwrap();
    assert!(planned.shards >= 2);
    assert_eq!((scored.shards, scored.summary.rows), (1, 301), "{scored:?}");
    let (scores, rejects) = scored_whole(&store, &planned);
    assert!(output(&store, "scores.csv") == scores);
    assert!(output(&store, "rejects.csv") == rejects);
    let rejects = String::from_utf8(rejects).unwrap();
    assert!(rejects.contains("\n102,\"field 'group'"), "the quoted row is rejected at its line: {rejects}");
}

#[test]
fn a_file_that_cannot_be_scored_fails_at_the_plan_naming_it() {
    let (_dir, store, _spec) = trained();
    let plan_of =
        |key: &str| plan(&store, &ScoreRequest { dataset: "toy".into(), key: key.into(), id: None }, sizing()).unwrap_err().to_string();
    store.put("batch/toy/colour.csv", b"x,group,colour\n1,a,red\n").unwrap();
    let error = plan_of("batch/toy/colour.csv");
    assert!(error.contains("batch/toy/colour.csv: the column 'colour' is not in the model's schema"), "{error}");
    assert!(plan_of("batch/toy/absent.csv").contains("batch/toy/absent.csv: no such file"));
    store.put("raw/toy/elsewhere.csv", b"x,group\n1,a\n").unwrap();
    assert!(plan_of("raw/toy/elsewhere.csv").contains("raw/toy/elsewhere.csv: not a file under batch/toy/"));
    let mut long = String::from("x,group");
    long.push_str(&",".repeat(mlops_prep::HEAD_BYTES as usize));
    store.put("batch/toy/long.csv", long.as_bytes()).unwrap();
    assert!(plan_of("batch/toy/long.csv").contains("the header does not end within the first"), "{}", plan_of("batch/toy/long.csv"));
}
