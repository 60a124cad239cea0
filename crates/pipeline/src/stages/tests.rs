use super::*;
use mlops_core::{CoreError, FsStore};
use mlops_core::{Metric, ServingBudget};

use crate::testing::TOY_SPEC as SPEC;

fn spec() -> Spec {
    Spec::parse(SPEC, "toy").unwrap()
}

/// `n` rows of `y = 3x + group effect`, with `offset` shifting x.
fn csv(n: usize, offset: f64) -> String {
    let mut text = String::from("x,group,y\n");
    for i in 0..n {
        let x = offset + (i % 97) as f64 / 10.0;
        let group = ["a", "b", "c"][i % 3];
        let effect = [0.0, 5.0, -3.0][i % 3];
        text.push_str(&format!("{x},{group},{}\n", 3.0 * x + effect + ((i * 7919) % 13) as f64 / 13.0));
    }
    text
}

/// A fresh store holding `files` (name, text) under `raw/toy/`; the directory must outlive it.
fn store_with(files: &[(&str, &str)]) -> (tempfile::TempDir, FsStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::new(dir.path());
    for (name, text) in files {
        store.put(&format!("raw/toy/{name}"), text.as_bytes()).unwrap();
    }
    (dir, store)
}

fn request() -> RunRequest {
    RunRequest { dataset: "toy".into(), keys: Vec::new(), trigger: Trigger::Manual, id: None }
}

#[test]
fn prep_writes_a_closed_batch_and_quarantines_bad_rows() {
    let mut text = csv(100, 0.0);
    text.push_str("oops,a,1\n1,z,2\n");
    let (_dir, store) = store_with(&[("a.csv", &text)]);
    let output = prep(&store, &spec(), &request()).unwrap();
    assert_eq!((output.rows_in, output.rows_out, output.quarantined), (102, 100, 2));
    let batch = output.batch.clone().unwrap();
    let keys = Keys { dataset: "toy" };
    let marker: SuccessMarker = serde_json::from_slice(&store.get(&keys.processed_success(&batch)).unwrap().unwrap()).unwrap();
    assert_eq!((marker.rows_in, marker.rows_out, marker.quarantined), (102, 100, 2));
    assert_eq!(marker.parts.len(), 1);
    for part in &marker.parts {
        assert_eq!(part.sha256, sha256_hex(&store.get(&part.key).unwrap().unwrap()));
    }
    let quarantine = String::from_utf8(store.get(&keys.quarantine_rows(&batch)).unwrap().unwrap()).unwrap();
    assert!(
        quarantine.contains("x: 'oops' is not a finite number") && quarantine.contains("group: 'z' is not one of the categories"),
        "{quarantine}"
    );
    assert_eq!(store.get("raw/toy/a.csv").unwrap().unwrap(), text.as_bytes(), "raw files are never modified");
    // Nothing new: a second prep does not even read the file again.
    let again = prep(&store, &spec(), &request()).unwrap();
    assert_eq!(again.batch, None);
    assert!(again.files.is_empty(), "{:?}", again.files);
    // An upload naming the same bytes under another key is skipped by its content hash.
    store.put("raw/toy/copy.csv", text.as_bytes()).unwrap();
    let copy = prep(&store, &spec(), &RunRequest { keys: vec!["raw/toy/copy.csv".into()], ..request() }).unwrap();
    assert_eq!((copy.batch, copy.files[0].status), (None, FileStatus::Skipped));
}

#[test]
fn a_run_where_every_new_file_is_rejected_fails_and_names_them() {
    let (_dir, store) = store_with(&[("empty.csv", ""), ("other.csv", "a,b\n1,2\n")]);
    let error = prep(&store, &spec(), &request()).unwrap_err();
    assert_eq!(error.kind(), mlops_core::ErrorKind::BadInput);
    let message = error.to_string();
    assert!(
        message.contains("raw/toy/empty.csv: the file is empty") && message.contains("raw/toy/other.csv: no column of dataset 'toy'"),
        "{message}"
    );
    // Recorded, so the same bad bytes are not read again on every run.
    let again = prep(&store, &spec(), &request()).unwrap();
    assert!(again.files.is_empty() && again.batch.is_none(), "{:?}", again.files);
}

#[test]
fn train_refuses_processed_batches_that_changed_after_the_features_were_fitted() {
    let (_dir, store) = store_with(&[("first.csv", &csv(60, 0.0))]);
    let spec = spec();
    let prepped = prep(&store, &spec, &request()).unwrap();
    let batch = prepped.batch.clone().unwrap();
    let featured = features(&store, &spec, prepped).unwrap();
    let keys = Keys { dataset: "toy" };
    let mut other = mlops_prep::parse_csv("other.csv", csv(60, 1.0).as_bytes(), &spec).unwrap();
    store.put(&keys.processed_part(&batch, 0), &mlops_prep::to_parquet(&mut other.valid).unwrap()).unwrap();
    let error = train(&store, &spec, featured.clone(), &quiet).unwrap_err();
    assert!(matches!(error, PipelineError::Core(CoreError::Corrupt { .. })), "{error:?}");
    assert!(error.to_string().contains(&format!("no longer hash to {}", featured.data_hash)), "{error}");
}

#[test]
fn stages_chain_into_a_promotion_and_a_better_model_replaces_the_champion() {
    let (_dir, store) = store_with(&[("first.csv", &csv(60, 0.0))]);
    let spec = spec();
    let featured = features(&store, &spec, prep(&store, &spec, &request()).unwrap()).unwrap();
    assert_eq!((featured.rows, featured.rows_train, featured.rows_holdout), (60, 45, 15));
    assert_eq!(featured.features, ["x", "group"]);
    let trained = train(&store, &spec, featured, &quiet).unwrap();
    assert_eq!(trained.candidates.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["gbm", "lm"]);
    assert!(trained.candidates.iter().all(|c| c.metrics.contains_key(&Metric::Rmse) && c.metrics.contains_key(&Metric::R2)));
    let (first, record) = register(&store, &spec, trained.clone()).unwrap();
    assert!(first.promoted && first.champion.is_none());
    assert_eq!((first.version.as_str(), first.production.as_ref().unwrap().version.as_str()), ("v1", "v1"));
    assert!(store.get(&Keys { dataset: "toy" }.run_record(&record.run_id)).unwrap().is_some());
    // The state machine retries a register whose answer was lost: it reports the same promotion.
    let (retried, _) = register(&store, &spec, trained).unwrap();
    assert!(retried.promoted, "{}", retried.reason);
    assert_eq!((retried.version.as_str(), retried.reason.as_str()), ("v1", first.reason.as_str()));
    assert_eq!(Registry::new(&store, "toy").production().unwrap().unwrap().0.history.len(), 1);

    // More data: the champion is re-evaluated on the new holdout before the decision.
    store.put("raw/toy/second.csv", csv(600, 0.05).as_bytes()).unwrap();
    let second = run(&store, &spec, &request(), &quiet).unwrap();
    let champion = second.champion.as_ref().unwrap();
    assert_eq!(champion.version, "v1");
    assert_ne!(champion.metrics, first.production.as_ref().unwrap().metrics, "the champion is scored on this run's holdout");
    // Ten times the rows give a candidate past the policy's 1 % margin: it must be promoted.
    let candidate_rmse = second.candidates.iter().find(|c| c.name == second.best).unwrap().metrics[&Metric::Rmse];
    assert!(candidate_rmse < 0.99 * champion.metrics[&Metric::Rmse], "{candidate_rmse} against {:?}", champion.metrics);
    assert!(second.promoted, "{}", second.reason);
    assert_eq!(Registry::new(&store, "toy").production().unwrap().unwrap().0.version, second.version);
    assert_eq!(second.version, "v2");

    // The same data again gives the same bytes: nothing new is registered or promoted.
    let third = run(&store, &spec, &request(), &quiet).unwrap();
    assert!(!third.promoted);
    assert_eq!(third.version, second.version);
    assert_eq!(Registry::new(&store, "toy").versions().unwrap().len(), 2);

    // Each run writes its report: the decision against the champion, the candidates, the
    // holdout's residuals, the importance; self-contained (nothing fetched).
    let key = second.report_key.as_deref().expect("a report");
    let html = String::from_utf8(store.get(key).unwrap().unwrap()).unwrap();
    for part in ["promoted", "<td>champion</td><td>v1</td>", "<h2>Candidates</h2>", "gbm", "lm", "Residuals", "Feature importance", "<svg"]
    {
        assert!(html.contains(part), "the run report lacks {part}");
    }
    assert!(!html.contains("src=") && !html.contains("http"), "nothing is fetched");
}

#[test]
fn of_two_concurrent_promotions_exactly_one_wins_and_history_stays_complete() {
    let (_dir, store) = store_with(&[("a.csv", &csv(80, 0.0))]);
    let spec = spec();
    run(&store, &spec, &request(), &quiet).unwrap();
    store.put("raw/toy/b.csv", csv(90, 1.0).as_bytes()).unwrap();
    store.put("raw/toy/c.csv", csv(70, 2.0).as_bytes()).unwrap();
    let registry = Registry::new(&store, "toy");
    // Register two more versions without promoting them.
    for key in ["raw/toy/b.csv", "raw/toy/c.csv"] {
        let request = RunRequest { keys: vec![key.to_string()], ..request() };
        let trained = train(&store, &spec, features(&store, &spec, prep(&store, &spec, &request).unwrap()).unwrap(), &quiet).unwrap();
        let best = trained.candidates.iter().find(|c| c.name == trained.best).unwrap();
        let bytes = store.get(&best.artifact_key).unwrap().unwrap();
        let artifact = ModelArtifact::from_bytes(&bytes, &best.artifact_key).unwrap();
        let set = rebuild_training_set(&store, &spec, &read_feature_state(&store, &trained.features.features_key).unwrap()).unwrap();
        register_version(&registry, &spec, &trained, best, &artifact, &bytes, || Ok(&set)).unwrap();
    }
    assert_eq!(registry.versions().unwrap(), ["v1", "v2", "v3"]);
    let (_, etag) = registry.production().unwrap().unwrap();
    let barrier = std::sync::Barrier::new(2);
    let outcomes: Vec<bool> = std::thread::scope(|scope| {
        let handles: Vec<_> = ["v2", "v3"]
            .into_iter()
            .map(|version| {
                let (registry, etag, barrier) = (&registry, &etag, &barrier);
                scope.spawn(move || {
                    barrier.wait();
                    registry.promote(version, Action::Manual, "race", None, Some(etag)).is_ok()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(outcomes.iter().filter(|won| **won).count(), 1, "{outcomes:?}");
    let (production, _) = registry.production().unwrap().unwrap();
    assert_eq!(production.history.len(), 2);
    assert_eq!(production.stack, ["v1", production.version.as_str()]);
}

#[test]
fn hidden_files_are_refused_at_ingest_rather_than_stored_and_never_read() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::new(dir.path().join("store"));
    let hidden = dir.path().join(".hidden.csv");
    std::fs::write(&hidden, csv(10, 0.0)).unwrap();
    let error = crate::ingest::ingest(&store, "toy", &[hidden.as_path()]).unwrap_err().to_string();
    assert!(error.contains(".hidden.csv") && error.contains("hidden files"), "{error}");
    assert!(store.list("raw/").unwrap().is_empty());
}

#[test]
fn a_candidate_out_of_time_budget_stops_early_and_the_run_says_so() {
    let text = SPEC
        .replace("max_iter = 50", "max_iter = 1000000\nearly_stopping = \"off\"")
        .replace("\n[split]\n", "\n[training]\nbudget_seconds = 0.5\n[split]\n");
    let spec = Spec::parse(&text, "toy").unwrap();
    let (_dir, store) = store_with(&[("a.csv", &csv(3000, 0.0))]);
    let record = run(&store, &spec, &request(), &|_| {}).unwrap();
    let gbm = record.candidates.iter().find(|c| c.name == "gbm").unwrap();
    let note = gbm.note.as_deref().unwrap_or_default();
    assert!(note.contains("training.budget_seconds") && note.starts_with("stopped at "), "{note:?}");
    assert!(record.candidates.iter().find(|c| c.name == "lm").unwrap().note.is_none());
}

/// `rows` rows of the toy table with a bad group every 1,000 rows.
fn large_csv(rows: usize) -> String {
    let lines: Vec<String> = csv(rows, 0.0)
        .lines()
        .enumerate()
        .map(|(i, line)| if i > 0 && i % 1000 == 0 { line.replacen(',', ",z", 1) } else { line.to_string() })
        .collect();
    lines.join("\n") + "\n"
}

/// Reads the raw file `key` as a plan cut in shards of `shard_bytes` (and buckets of 1 MiB)
/// does: in memory, or (`staged`) through each shard's saved output, as the Distributed Map's
/// steps read it. Returns the file's rows, with its valid rows in order.
fn read_file(store: &FsStore, spec: &Spec, key: &str, shard_bytes: u64, staged: bool) -> (shards::FileRead, Option<Table>) {
    let sizing = Sizing { shard_bytes, shards_per_item: 3, bucket_bytes: 1 << 20, ..Sizing::default() };
    let plan = Plan::new(store, "raw/toy/", "plan".into(), request(), vec![key.to_string()], sizing).unwrap();
    let keys = Keys { dataset: &spec.name };
    let read_shard = |at| shards::read_shard(store, spec, &plan, at).unwrap();
    let outputs = if staged {
        for (item, ats) in plan.items.iter().enumerate() {
            shards::save_item(store, keys, &plan, item, ats.iter().map(|&at| read_shard(at)).collect()).unwrap();
        }
        plan.shards().into_iter().map(|at| shards::load(store, keys, &plan, at).unwrap()).collect()
    } else {
        plan.shards().into_iter().map(read_shard).collect()
    };
    let holding = if staged { Holding::Store(keys) } else { Holding::Memory };
    let mut read = shards::assemble(store, spec, &plan, 0, outputs, holding).unwrap();
    let valid = read.rows.as_mut().ok().map(|rows| {
        let (admitted, held): (Vec<ShardAt>, Vec<Vec<Table>>) = std::mem::take(&mut rows.shards).into_iter().unzip();
        let pieces: Vec<Table> = if staged {
            assert!(held.iter().all(Vec::is_empty), "a staged shard's rows are read by each bucket");
            (0..plan.buckets).flat_map(|bucket| shards::load_bucket(store, keys, &plan, &admitted, bucket).unwrap()).collect()
        } else {
            assert!(held.iter().all(|buckets| buckets.len() == plan.buckets));
            held.concat()
        };
        mlops_prep::in_order(pieces).unwrap()
    });
    (read, valid)
}

#[test]
fn a_file_read_in_shards_gives_the_rows_quarantine_and_hash_of_one_shard() {
    let spec = spec();
    let plain = large_csv(400_000);
    // The same, with a group of 1,500 quoted line breaks across the first shard's end: the cut
    // there falls inside the quotes, and the file is read as one shard.
    let at = plain[..1 << 20].rfind('\n').unwrap() + 1;
    let quoted = format!("{}1,\"{}\",2\n{}", &plain[..at], "a\n".repeat(1500), &plain[at..]);
    for (text, shards_used) in [(&plain, plain.len().div_ceil(1 << 20)), (&quoted, 1)] {
        let (_dir, store) = store_with(&[("a.csv", text)]);
        let direct = mlops_prep::parse_csv("raw/toy/a.csv", text.as_bytes(), &spec).unwrap();
        for staged in [false, true] {
            let (sharded, valid) = read_file(&store, &spec, "raw/toy/a.csv", 1, staged);
            assert_eq!(sharded.shards, shards_used);
            let (whole, _) = read_file(&store, &spec, "raw/toy/a.csv", u64::MAX, false);
            assert_eq!((whole.shards, sharded.content_hash), (1, whole.content_hash), "the content hash does not depend on the cut");
            let sharded = sharded.rows.unwrap();
            let quoted_rows = usize::from(shards_used == 1);
            assert_eq!((sharded.rows, direct.rows), (400_000 + quoted_rows, 400_000 + quoted_rows));
            assert_eq!(sharded.valid, direct.valid.height());
            assert!(valid.unwrap().equals_missing(&direct.valid), "staged: {staged}");
            assert!(sharded.quarantined.equals_missing(&direct.quarantined), "staged: {staged}");
            assert_eq!(direct.quarantined.height(), 400 + quoted_rows);
        }
    }
}

#[test]
fn shards_are_numbered_in_plan_order_and_one_the_plan_does_not_hold_is_an_error() {
    // A plan cuts by size alone: 3 MiB in shards of 1 MiB.
    let (_dir, store) = store_with(&[("a.csv", &"1,2\n".repeat(3 << 18)), ("b.csv", &csv(10, 0.0))]);
    let sizing = Sizing { shard_bytes: 1, shards_per_item: 2, ..Sizing::default() };
    let files = vec!["raw/toy/a.csv".to_string(), "raw/toy/b.csv".to_string()];
    let plan = Plan::new(&store, "raw/toy/", "plan".into(), request(), files, sizing).unwrap();
    let a_shards = plan.shards_of(0).len();
    assert_eq!(a_shards, 3);
    assert_eq!(plan.number((0, 1)).unwrap(), 1);
    assert_eq!(plan.number((1, 0)).unwrap(), a_shards as u32);
    let error = plan.number((1, 1)).unwrap_err().to_string();
    assert!(error.contains("no shard 1 of file 1"), "{error}");
}

#[test]
fn a_bad_byte_in_a_later_shard_is_named_at_its_line_in_the_file() {
    let mut text = large_csv(60_000).into_bytes();
    assert!(text.len() as u64 > mlops_core::CONTENT_CHUNK_BYTES, "two shards at least");
    let at = text.len() - 100;
    let line = text[..at].iter().filter(|&&b| b == b'\n').count() + 1;
    text[at] = 0xff;
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::new(dir.path());
    store.put("raw/toy/a.csv", &text).unwrap();
    for staged in [false, true] {
        let Err(rejection) = read_file(&store, &spec(), "raw/toy/a.csv", 1, staged).0.rows else { panic!("the file was read") };
        let reason = rejection.reason;
        assert!(reason.starts_with(&format!("not UTF-8 text: invalid byte 0xff at line {line}, column ")), "{reason}");
    }
}

/// Three files for a sharded prep: one of several shards with bad rows and rows repeated from
/// another file, one whose header is wrong, and a small one.
fn sharded_files() -> Vec<(&'static str, String)> {
    let big = large_csv(150_000);
    let repeats: String = big.lines().skip(1).take(500).map(|l| format!("{l}\n")).collect();
    vec![("a.csv", big), ("b.csv", format!("x,group,y\n{repeats}1.5,b,2\n")), ("c.csv", "nothing,here\n1,2\n".to_string())]
}

/// Which map item of a prep on the Distributed Map fails without output.
#[derive(Clone, Copy, PartialEq)]
enum Lost {
    None,
    Shards(usize),
    Bucket(usize),
}

/// Runs prep as the state machine does: the plan step, the shard step on each map item, the
/// merge step, the bucket step on each bucket and the finish step; the item `lost` is not run.
fn prep_on_map(store: &FsStore, sizing: Sizing, lost: Lost) -> Result<PrepOutput, PipelineError> {
    let spec = spec();
    let planned = prep_plan(store, &spec, &request(), sizing)?;
    let items: Vec<serde_json::Value> = store.read_json(&planned.items_key)?.unwrap();
    assert_eq!(items.len(), planned.items);
    for item in items {
        let item: usize = serde_json::from_value(item["item"].clone()).unwrap();
        if lost != Lost::Shards(item) {
            prep_shard(store, &spec, &ShardItem { dataset: "toy".into(), plan: planned.plan.clone(), item })?;
        }
    }
    let merged = prep_merge(store, &spec, &planned)?;
    let buckets: Vec<serde_json::Value> = store.read_json(&merged.items_key)?.unwrap();
    assert_eq!(buckets.len(), merged.buckets);
    for bucket in buckets {
        let bucket: usize = serde_json::from_value(bucket["bucket"].clone()).unwrap();
        if lost != Lost::Bucket(bucket) {
            prep_bucket(store, &spec, &BucketItem { dataset: "toy".into(), plan: merged.plan.clone(), bucket })?;
        }
    }
    prep_finish(store, &spec, &merged)
}

#[test]
fn prep_on_a_distributed_map_gives_the_rows_quarantine_and_hash_of_prep_in_one_process() {
    let files = sharded_files();
    let files: Vec<(&str, &str)> = files.iter().map(|(name, text)| (*name, text.as_str())).collect();
    let (_one_dir, one) = store_with(&files);
    let (_map_dir, map) = store_with(&files);
    let local = prep(&one, &spec(), &request()).unwrap();
    let sizing = Sizing { shard_bytes: 1, shards_per_item: 2, max_concurrency: 3, bucket_bytes: 1 << 20 };
    let planned = prep_plan(&map, &spec(), &request(), sizing).unwrap();
    assert!(planned.shards >= 4 && planned.items == planned.shards.div_ceil(2), "{planned:?}");
    let mapped = prep_on_map(&map, sizing, Lost::None).unwrap();
    assert_eq!(
        (mapped.rows_in, mapped.rows_out, mapped.quarantined, mapped.duplicates),
        (local.rows_in, local.rows_out, local.quarantined, local.duplicates)
    );
    assert!(local.duplicates >= 500, "the repeated rows of b.csv are removed");
    assert_eq!(mapped.files, local.files);
    let keys = Keys { dataset: "toy" };
    let (a, b) = (local.batch.unwrap(), mapped.batch.unwrap());
    let marker = |store: &FsStore, batch: &str| -> SuccessMarker { store.read_json(&keys.processed_success(batch)).unwrap().unwrap() };
    let (one_parts, map_parts) = (marker(&one, &a).parts, marker(&map, &b).parts);
    assert_eq!((one_parts.len(), map_parts.len()), (1, 4), "one bucket per MiB of raw files");
    assert!(map_parts.iter().all(|part| part.rows > 0 && part.rows < mapped.rows_out), "rows spread over the buckets: {map_parts:?}");
    assert_eq!(one.get(&keys.quarantine_rows(&a)).unwrap(), map.get(&keys.quarantine_rows(&b)).unwrap());
    assert_eq!(one.get(&keys.quarantine_report(&a)).unwrap(), map.get(&keys.quarantine_report(&b)).unwrap());
    // The same rows in the same order as parsing each file whole and merging them in one table.
    let parsed: Vec<_> = files[..2]
        .iter()
        .map(|(name, text)| mlops_prep::parse_csv(&format!("raw/toy/{name}"), text.as_bytes(), &spec()).unwrap().valid)
        .collect();
    let (reference, duplicates) = mlops_prep::merge(parsed).unwrap();
    assert_eq!(duplicates, local.duplicates);
    for (store, batch) in [(&one, &a), (&map, &b)] {
        assert!(read_batch(store, keys, batch).unwrap().equals_missing(&reference));
    }
    let (set_one, _) = training_set(&one, &spec(), &[a]).unwrap();
    let (set_map, _) = training_set(&map, &spec(), &[b]).unwrap();
    let set_reference = TrainingSet::new(&spec(), mlops_prep::to_frame(reference, &spec()).unwrap()).unwrap();
    assert_eq!((&set_one.data_hash, &set_map.data_hash), (&set_reference.data_hash, &set_reference.data_hash));
}

#[test]
fn a_file_read_whole_again_between_the_shards_of_one_map_item_keeps_the_first_of_equal_rows() {
    // A small file, then one whose quoted line breaks span its cut (it is read whole again, its
    // rows apart from the item file of its shards), then a small one repeating some of its rows:
    // one map item holds a shard of each, so the bucket step reads the item's file before the
    // re-read file, whose rows still come first in the batch.
    let plain = large_csv(60_000);
    let at = plain[..1 << 20].rfind('\n').unwrap() + 1;
    let quoted = format!("{}1,\"{}\",2\n{}", &plain[..at], "a\n".repeat(50), &plain[at..]);
    let repeats: String = plain.lines().skip(1).take(300).map(|l| format!("{l}\n")).collect();
    let files = [("a.csv", csv(200, 1000.25)), ("b.csv", quoted), ("c.csv", format!("x,group,y\n{repeats}"))];
    let files: Vec<(&str, &str)> = files.iter().map(|(name, text)| (*name, text.as_str())).collect();
    let (_dir, store) = store_with(&files);
    let sizing = Sizing { shard_bytes: 1, shards_per_item: 4, max_concurrency: 3, bucket_bytes: 1 << 20 };
    let planned = prep_plan(&store, &spec(), &request(), sizing).unwrap();
    assert_eq!((planned.shards, planned.items), (4, 1), "{planned:?}");
    let mapped = prep_on_map(&store, sizing, Lost::None).unwrap();
    let parsed: Vec<_> = files
        .iter()
        .map(|(name, text)| mlops_prep::parse_csv(&format!("raw/toy/{name}"), text.as_bytes(), &spec()).unwrap().valid)
        .collect();
    let (reference, duplicates) = mlops_prep::merge(parsed).unwrap();
    assert_eq!(mapped.duplicates, duplicates);
    let keys = Keys { dataset: "toy" };
    assert!(read_batch(&store, keys, &mapped.batch.unwrap()).unwrap().equals_missing(&reference));
}

#[test]
fn a_map_item_without_output_fails_the_step_after_it_and_writes_no_batch() {
    let files = sharded_files();
    let (_dir, store) = store_with(&[("a.csv", &files[0].1)]);
    let sizing = Sizing { shard_bytes: 1, shards_per_item: 1, max_concurrency: 3, bucket_bytes: 1 << 20 };
    // LocalStack's Distributed Map reports success when an item fails: the merge must notice.
    let error = prep_on_map(&store, sizing, Lost::Shards(1)).unwrap_err().to_string();
    assert!(error.contains("shard 1 of raw/toy/a.csv has no output"), "{error}");
    let keys = Keys { dataset: "toy" };
    assert!(store.list(&keys.processed_prefix()).unwrap().is_empty(), "no batch and no manifest");
    assert!(store.list("quarantine/").unwrap().is_empty());
    // And the finish step notices a bucket without its part.
    let error = prep_on_map(&store, sizing, Lost::Bucket(2)).unwrap_err().to_string();
    assert!(error.contains("bucket 2 of plan") && error.contains("has no part"), "{error}");
    assert!(store.list("quarantine/").unwrap().is_empty(), "quarantined rows wait for the batch to close");
    let closed = store.list(&keys.processed_prefix()).unwrap().into_iter().filter(|key| key.ends_with("_SUCCESS")).count();
    assert_eq!(closed, 0, "no batch is closed, and the manifest does not hold the file");
    assert_eq!(unprocessed(&store, "toy").unwrap(), ["raw/toy/a.csv"]);
}

#[test]
fn candidates_trained_apart_and_collected_give_what_train_gives_and_a_missing_one_fails_the_collect() {
    let (_dir, store) = store_with(&[("first.csv", &csv(300, 0.0))]);
    let spec = spec();
    let featured = features(&store, &spec, prep(&store, &spec, &request()).unwrap()).unwrap();
    assert_eq!(featured.candidate_names, ["gbm", "lm"]);
    let together = train(&store, &spec, featured.clone(), &quiet).unwrap();
    let artifacts =
        |output: &TrainOutput| output.candidates.iter().map(|c| store.get(&c.artifact_key).unwrap().unwrap()).collect::<Vec<_>>();
    let together_artifacts = artifacts(&together);
    // A Map iteration that failed leaves no outcome (here: removed): the collect step must notice.
    train_candidate_step(&store, &spec, &featured, "gbm", None, None).unwrap();
    let missing = Keys { dataset: "toy" }.candidate_outcome(&featured.run_id, "lm");
    std::fs::remove_file(store.path(&missing).unwrap()).unwrap();
    let error = train_collect(&store, &spec, featured.clone()).unwrap_err().to_string();
    assert!(error.contains("candidate 'lm' has no outcome"), "{error}");
    train_candidate_step(&store, &spec, &featured, "lm", None, None).unwrap();
    let apart = train_collect(&store, &spec, featured).unwrap();
    assert_eq!(apart.best, together.best);
    assert_eq!(artifacts(&apart), together_artifacts, "the same model bytes, apart or together");
    for (a, t) in apart.candidates.iter().zip(&together.candidates) {
        assert_eq!(a.name, t.name);
        // Metrics are sums in parallel, so their last bits may differ.
        assert!(a.metrics.iter().all(|(metric, value)| (value - t.metrics[metric]).abs() <= 1e-12 * value.abs().max(1.0)), "{a:?} {t:?}");
    }
}

#[test]
fn a_boosted_candidate_paused_and_resumed_gives_the_bytes_of_one_fit() {
    let (_dir, store) = store_with(&[("first.csv", &csv(300, 0.0))]);
    let spec = spec();
    let featured = features(&store, &spec, prep(&store, &spec, &request()).unwrap()).unwrap();
    let together = train(&store, &spec, featured.clone(), &quiet).unwrap();
    let whole = store.get(&together.candidates.iter().find(|c| c.name == "gbm").unwrap().artifact_key).unwrap().unwrap();
    let keys = Keys { dataset: "toy" };
    std::fs::remove_file(store.path(&keys.candidate_outcome(&featured.run_id, "gbm")).unwrap()).unwrap();
    // 50 rounds, 20 per invocation: two pauses, each with its checkpoint, and no outcome until done.
    let rounds = NonZeroUsize::new(20);
    let mut resume = None;
    let mut paused_at = Vec::new();
    let summary = loop {
        match train_candidate_step(&store, &spec, &featured, "gbm", resume.as_ref(), rounds).unwrap() {
            CandidateOutcome::Paused(paused) => {
                assert!(store.get(&keys.candidate_outcome(&featured.run_id, "gbm")).unwrap().is_none());
                assert!(store.get(&keys.boosting_checkpoint(&featured.run_id, "gbm", paused.rounds)).unwrap().is_some());
                paused_at.push(paused.rounds);
                resume = Some(paused);
            }
            CandidateOutcome::Trained(summary) => break summary,
            CandidateOutcome::Failed(failure) => panic!("{failure:?}"),
        }
    };
    assert_eq!(paused_at, [20, 40]);
    assert!(store.get(&summary.artifact_key).unwrap().unwrap() == whole, "a resumed fit gave other artifact bytes than one fit");
    // A retried invocation resumes from the checkpoint its input names, whatever came after.
    let retried = CandidatePaused { name: "gbm".into(), rounds: 20 };
    let again = train_candidate_step(&store, &spec, &featured, "gbm", Some(&retried), rounds).unwrap();
    assert!(matches!(again, CandidateOutcome::Paused(CandidatePaused { rounds: 40, .. })), "{again:?}");
    // A checkpoint that is gone fails the step and names it.
    let missing = CandidatePaused { name: "gbm".into(), rounds: 30 };
    let error = train_candidate_step(&store, &spec, &featured, "gbm", Some(&missing), rounds).unwrap_err().to_string();
    assert!(error.contains("checkpoint-30.bin") && error.contains("paused at round 30"), "{error}");
    // Other candidates fit in one call whatever the round budget.
    let linear = train_candidate_step(&store, &spec, &featured, "lm", None, rounds).unwrap();
    assert!(matches!(linear, CandidateOutcome::Trained(_)), "{linear:?}");
}

#[test]
fn a_candidate_over_the_serving_budget_is_not_promoted_and_the_best_within_it_is_chosen() {
    let (_dir, store) = store_with(&[("a.csv", &csv(600, 0.0))]);
    let mut spec = spec();
    let featured = features(&store, &spec, prep(&store, &spec, &request()).unwrap()).unwrap();
    let unbounded = train(&store, &spec, featured.clone(), &quiet).unwrap();
    let size = |name: &str| unbounded.candidates.iter().find(|c| c.name == name).unwrap().artifact_bytes;
    assert!(unbounded.candidates.iter().all(|c| c.predict_p99_ms > 0.0 && c.artifact_bytes > 0), "{:?}", unbounded.candidates);
    assert_eq!(unbounded.best, "gbm");
    assert!(size("lm") < size("gbm"), "lm {} bytes, gbm {}", size("lm"), size("gbm"));

    // Nothing predicts a row in a picosecond: no candidate keeps this budget, and none is promoted.
    spec.promotion.budget.predict_p99_ms = Some(1e-9);
    let (refused, record) = register(&store, &spec, train(&store, &spec, featured.clone(), &quiet).unwrap()).unwrap();
    assert!(!refused.promoted && refused.production.is_none(), "{}", refused.reason);
    assert!(
        record.reason.starts_with("not promoted: one-row predict p99") && record.reason.contains("over the budget's 0.000000001 ms"),
        "{}",
        record.reason
    );
    assert!(Registry::new(&store, "toy").production().unwrap().is_none());

    // An artifact budget between the two sizes: the linear model keeps it and is promoted, though
    // the GBM scores better.
    spec.promotion.budget = ServingBudget { predict_p99_ms: None, artifact_mb: Some((size("lm") + size("gbm")) as f64 / 2e6) };
    let bounded = train(&store, &spec, featured, &quiet).unwrap();
    assert_eq!(bounded.best, "lm");
    let (promoted, _) = register(&store, &spec, bounded).unwrap();
    assert!(promoted.promoted, "{}", promoted.reason);
    assert_eq!(Registry::new(&store, "toy").card(&promoted.version).unwrap().candidate, "lm");
}
