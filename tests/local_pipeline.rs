//! The local pipeline through the `mlops` CLI: init, ingest, run, models, promote, rollback.

use crate::harness::{Workspace, bikeshare_csv, bikeshare_spec, sha256_file, toy_csv, toy_spec};

/// RMSE of scikit-learn's HistGradientBoostingRegressor on the same split (../shared/QUALITY.md).
const SKLEARN_BEST_RMSE: f64 = 59.55;

fn s(path: &std::path::Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

#[test]
fn bikeshare_beats_scikit_learn_and_the_same_data_gives_the_same_model_bytes() {
    let (spec, csv) = (bikeshare_spec(), bikeshare_csv());
    let (first, second) = (Workspace::new(), Workspace::new());
    let mut runs = Vec::new();
    for workspace in [&first, &second] {
        let ingested = workspace.json(&["ingest", "--spec", s(&spec), s(&csv)]);
        assert_eq!(ingested["files"][0]["key"], "raw/bikeshare/Bikeshare.csv");
        runs.push(workspace.json(&["run", "--spec", s(&spec)]));
    }
    let run = &runs[0];
    assert_eq!(run["promoted"], true);
    assert_eq!(run["production"]["version"], "v1");
    assert_eq!((run["rows_train"].as_u64(), run["rows_holdout"].as_u64()), (Some(6916), Some(1729)));
    let candidates = run["candidates"].as_array().unwrap();
    assert_eq!(candidates.len(), 4);
    for candidate in candidates {
        for metric in ["rmse", "mae", "r2"] {
            assert!(candidate["metrics"][metric].is_f64(), "{} lacks {metric}: {candidate}", candidate["name"]);
        }
    }
    let rmse = run["production"]["metrics"]["rmse"].as_f64().unwrap();
    assert!(rmse <= SKLEARN_BEST_RMSE, "the promoted model's holdout RMSE {rmse} is above scikit-learn's {SKLEARN_BEST_RMSE}");
    let best = candidates.iter().map(|c| c["metrics"]["rmse"].as_f64().unwrap()).fold(f64::INFINITY, f64::min);
    assert_eq!(rmse, best, "the best candidate is promoted");

    // The README's quality table is this run's figures, as printed there.
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let table = readme.split("## Quality on the shipped data").nth(1).expect("the README has a quality section");
    for candidate in candidates {
        let name = candidate["name"].as_str().unwrap();
        let metric = |m: &str| candidate["metrics"][m].as_f64().unwrap();
        let row = format!("| {name} ");
        let line =
            table.lines().find(|l| l.starts_with(&row)).unwrap_or_else(|| panic!("the README's quality table has no row for {name}"));
        let cells: Vec<&str> = line.split('|').map(str::trim).filter(|c| !c.is_empty()).skip(1).collect();
        let expected = [format!("{:.2}", metric("rmse")), format!("{:.2}", metric("mae")), format!("{:.3}", metric("r2"))];
        assert_eq!(cells, expected, "the README's quality row for {name} is stale: this run gives {expected:?}");
    }

    let model = |w: &Workspace| sha256_file(&w.root().join("models/bikeshare/v1/model.bin"));
    assert_eq!(model(&first), model(&second), "same data and spec, same model bytes");
    assert_eq!(runs[0]["data_hash"], runs[1]["data_hash"]);
    assert_eq!(
        runs[0]["candidates"].as_array().unwrap().iter().map(|c| &c["metrics"]).collect::<Vec<_>>(),
        runs[1]["candidates"].as_array().unwrap().iter().map(|c| &c["metrics"]).collect::<Vec<_>>()
    );

    // A second run over the same data retrains, finds the very same model, and moves nothing.
    let again = first.json(&["run", "--spec", s(&spec)]);
    assert_eq!(again["promoted"], false);
    assert_eq!(again["version"], "v1");
    assert!(again["reason"].as_str().unwrap().contains("identical"), "{}", again["reason"]);
    let models = first.json(&["models", "--spec", s(&spec)]);
    assert_eq!(models["versions"].as_array().unwrap().len(), 1);
    assert_eq!(models["production"]["history"].as_array().unwrap().len(), 1);
}

#[test]
fn unusable_files_fail_the_run_with_file_and_problem_and_nothing_is_lost_or_changed() {
    let workspace = Workspace::new();
    let spec = toy_spec(&workspace);
    let good = workspace.write("good.csv", toy_csv(300, 0));
    workspace.json(&["ingest", "--spec", s(&spec), s(&good)]);
    assert_eq!(workspace.json(&["run", "--spec", s(&spec)])["production"]["version"], "v1");

    let cases: [(&str, &[u8], &str); 6] = [
        ("empty.csv", b"", "the file is empty"),
        ("latin1.csv", b"id,x,group,when,y\n1,2.0,r\xe9d,2024-02-01 00:00:00,3\n", "not UTF-8 text: invalid byte 0xe9 at line 2, column 8"),
        ("no_target.csv", b"id,x,group,when\n1,2.0,red,2024-02-01 00:00:00\n", "missing column(s): y"),
        ("malformed.csv", b"id,x,group,when,y\n\"1,2.0,red\n2,3.0\n", "no valid row"),
        (
            "wrong_types.csv",
            b"id,x,group,when,y\n1,abc,red,2024-02-01 00:00:00,3\n2,1.0,red,yesterday,x\n",
            "x: 'abc' is not a finite number",
        ),
        ("elsewhere.csv", b"name,price\nlamp,3\n", "no column of dataset 'toy'"),
    ];
    for (name, bytes, problem) in cases {
        let registry = workspace.snapshot("registry");
        let models = workspace.snapshot("models");
        let file = workspace.write(name, bytes);
        workspace.json(&["ingest", "--spec", s(&spec), s(&file)]);
        let error = workspace.fails(&["run", "--spec", s(&spec)]);
        assert!(
            error.contains(&format!("raw/toy/{name}")) && error.contains(problem),
            "{name}: {error:?} should name the file and {problem:?}"
        );
        assert_eq!(
            std::fs::read(workspace.root().join(format!("raw/toy/{name}"))).unwrap(),
            bytes,
            "{name}: the raw file is kept as uploaded"
        );
        assert_eq!(workspace.snapshot("registry"), registry, "{name}: the production pointer did not move");
        assert_eq!(workspace.snapshot("models"), models, "{name}: no version was added");
    }
    // Quarantined rows keep their raw values and say why.
    let quarantine: String = workspace
        .snapshot("quarantine/toy")
        .keys()
        .filter(|k| k.ends_with("rows.csv"))
        .map(|k| std::fs::read_to_string(workspace.root().join("quarantine/toy").join(k)).unwrap())
        .collect();
    assert!(
        quarantine.contains("yesterday") && quarantine.contains("when: 'yesterday' does not match the datetime format"),
        "{quarantine}"
    );
    // The next run has nothing new: it retrains on the processed data and succeeds.
    assert_eq!(workspace.json(&["run", "--spec", s(&spec)])["production"]["version"], "v1");
}

#[test]
fn bad_rows_are_quarantined_with_a_reason_and_the_rest_is_used() {
    let workspace = Workspace::new();
    let spec = toy_spec(&workspace);
    let mut text = toy_csv(200, 0);
    text.push_str("9001,1.5,purple,2024-02-03 00:00:00,3.0\n9002,-,red,2024-02-03 01:00:00,2.0\n9003,2.5,red,2024-02-03 02:00:00,\n");
    let file = workspace.write("mixed.csv", &text);
    workspace.json(&["ingest", "--spec", s(&spec), s(&file)]);
    let run = workspace.json(&["run", "--spec", s(&spec)]);
    let prep = &run["prep"];
    assert_eq!((prep["rows_in"].as_u64(), prep["rows_out"].as_u64(), prep["quarantined"].as_u64()), (Some(203), Some(200), Some(3)));
    let batch = prep["batch"].as_str().unwrap();
    let marker: serde_json::Value =
        serde_json::from_slice(&std::fs::read(workspace.root().join(format!("processed/toy/{batch}/_SUCCESS"))).unwrap()).unwrap();
    assert_eq!(marker["quarantined"], 3);
    let rows = std::fs::read_to_string(workspace.root().join(format!("quarantine/toy/{batch}/rows.csv"))).unwrap();
    for reason in ["group: 'purple' is not one of the categories", "x: '-' is not a finite number", "y: missing value"] {
        assert!(rows.contains(reason), "{reason:?} not in {rows}");
    }
}

#[test]
fn the_same_file_twice_is_stored_once_and_processed_once() {
    let workspace = Workspace::new();
    let spec = toy_spec(&workspace);
    let file = workspace.write("data.csv", toy_csv(150, 0));
    assert_eq!(workspace.json(&["ingest", "--spec", s(&spec), s(&file)])["files"][0]["stored"], true);
    assert_eq!(workspace.json(&["ingest", "--spec", s(&spec), s(&file)])["files"][0]["stored"], false);
    let copy = workspace.write("copy.csv", toy_csv(150, 0));
    workspace.json(&["ingest", "--spec", s(&spec), s(&copy)]);
    let run = workspace.json(&["run", "--spec", s(&spec)]);
    let files = run["prep"]["files"].as_array().unwrap();
    let status = |key: &str| files.iter().find(|f| f["key"] == key).map(|f| f["status"].as_str().unwrap().to_string());
    assert_eq!(status("raw/toy/copy.csv").as_deref(), Some("processed"));
    assert_eq!(status("raw/toy/data.csv").as_deref(), Some("skipped"));
    let batches = workspace.snapshot("processed/toy").keys().filter(|k| k.ends_with("_SUCCESS")).count();
    assert_eq!(batches, 1);
    assert_eq!(run["rows_train"].as_u64().unwrap() + run["rows_holdout"].as_u64().unwrap(), 150);
    // A second run processes nothing again.
    let again = workspace.json(&["run", "--spec", s(&spec)]);
    assert!(again["prep"]["files"].as_array().unwrap().iter().all(|f| f["status"] == "skipped"));
    assert_eq!(workspace.snapshot("processed/toy").keys().filter(|k| k.ends_with("_SUCCESS")).count(), 1);
}

#[test]
fn versions_are_promoted_and_rolled_back_by_hand_with_full_history() {
    let workspace = Workspace::new();
    let spec = toy_spec(&workspace);
    for (name, start) in [("a.csv", 0), ("b.csv", 5000)] {
        let file = workspace.write(name, toy_csv(120, start));
        workspace.json(&["ingest", "--spec", s(&spec), s(&file)]);
        workspace.json(&["run", "--spec", s(&spec)]);
    }
    let models = workspace.json(&["models", "--spec", s(&spec)]);
    let versions: Vec<&str> = models["versions"].as_array().unwrap().iter().map(|c| c["version"].as_str().unwrap()).collect();
    assert_eq!(versions, ["v1", "v2"]);
    let production = models["production"]["version"].as_str().unwrap().to_string();
    let other = if production == "v1" { "v2" } else { "v1" };

    let promoted = workspace.json(&["promote", "--spec", s(&spec), other]);
    assert_eq!(promoted["version"], other);
    let error = workspace.fails(&["promote", "--spec", s(&spec), other]);
    assert!(error.contains("already the production version"), "{error}");
    let error = workspace.fails(&["promote", "--spec", s(&spec), "v7"]);
    assert!(error.contains("v7") && error.contains("does not exist"), "{error}");

    let rolled = workspace.json(&["rollback", "--spec", s(&spec)]);
    assert_eq!(rolled["version"], production.as_str());
    let history = rolled["history"].as_array().unwrap();
    let actions: Vec<&str> = history.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions.last(), Some(&"rollback"));
    assert_eq!(actions[actions.len() - 2], "manual");
    assert!(history.iter().zip(1..).all(|(event, seq)| event["seq"] == seq), "history numbered without gaps");
}

#[test]
fn init_drafts_a_spec_for_a_new_classification_dataset_that_runs_end_to_end() {
    let workspace = Workspace::new();
    let mut text = String::from("customer_id,plan,monthly_fee,tenure_months,support_calls,churned\n");
    for i in 0..400 {
        let plan = ["basic", "plus", "pro"][i % 3];
        let fee = 10.0 + (i % 7) as f64 * 5.0;
        let tenure = (i * 13) % 60;
        let calls = (i * 7) % 9;
        let churned = if calls > 5 || (tenure < 6 && plan == "basic") { "yes" } else { "no" };
        text.push_str(&format!("C{i:05},{plan},{fee},{tenure},{calls},{churned}\n"));
    }
    let data = workspace.write("churn.csv", &text);
    let spec = workspace.path("churn.toml");
    let drafted = workspace.json(&["init", s(&data), "--target", "churned", "-o", s(&spec)]);
    assert!(drafted["notes"].as_array().unwrap().iter().any(|n| n.as_str().unwrap().contains("customer_id")), "{drafted}");
    workspace.json(&["ingest", "--spec", s(&spec), s(&data)]);
    let run = workspace.json(&["run", "--spec", s(&spec)]);
    assert_eq!(run["promoted"], true);
    for candidate in run["candidates"].as_array().unwrap() {
        for metric in ["auc", "accuracy", "f1", "log_loss"] {
            assert!(candidate["metrics"][metric].is_f64(), "{candidate}");
        }
    }
    assert!(run["production"]["metrics"]["auc"].as_f64().unwrap() > 0.95, "{}", run["production"]);
}

#[test]
fn running_without_data_or_with_a_broken_spec_fails_with_a_clear_line() {
    let workspace = Workspace::new();
    let spec = toy_spec(&workspace);
    let error = workspace.fails(&["run", "--spec", s(&spec)]);
    assert!(error.contains("no processed data for 'toy'") && error.contains("raw/toy/"), "{error}");
    let broken = workspace.write("broken.toml", std::fs::read_to_string(&spec).unwrap().replace("column = \"y\"", "column = \"why\""));
    let error = workspace.fails(&["run", "--spec", s(&broken)]);
    assert!(error.contains("broken.toml") && error.contains("'why'"), "{error}");
}

#[test]
fn prep_alone_validates_and_fits_the_features_without_registering_a_model() {
    let workspace = Workspace::new();
    let spec = toy_spec(&workspace);
    let file = workspace.write("data.csv", toy_csv(200, 0));
    workspace.json(&["ingest", "--spec", s(&spec), s(&file)]);
    let featured = workspace.json(&["prep", "--spec", s(&spec)]);
    assert_eq!((featured["prep"]["rows_in"].as_u64(), featured["rows"].as_u64()), (Some(200), Some(200)), "{featured}");
    assert_eq!(featured["rows_train"].as_u64().unwrap() + featured["rows_holdout"].as_u64().unwrap(), 200);
    assert!(workspace.snapshot("models").is_empty(), "prep registered a model");
    // The next run trains on the data prep processed, without processing it again.
    let run = workspace.json(&["run", "--spec", s(&spec)]);
    assert_eq!((run["prep"]["batch"].as_str(), run["data_hash"].as_str()), (None, featured["data_hash"].as_str()), "{run}");
    assert_eq!(run["production"]["version"], "v1");
}

#[test]
fn the_spec_has_one_home_in_the_store_and_s3_roots_refuse_local_work() {
    let workspace = Workspace::new();
    let spec = toy_spec(&workspace);
    let data = workspace.write("data.csv", toy_csv(200, 0));
    workspace.json(&["ingest", "--spec", spec.to_str().unwrap(), data.to_str().unwrap()]);
    assert_eq!(std::fs::read(workspace.root().join("specs/toy.toml")).unwrap(), std::fs::read(&spec).unwrap(), "ingest stores the spec");
    // Every later command can name the dataset: the store holds its spec.
    let record = workspace.json(&["run", "--spec", "toy"]);
    assert_eq!(record["promoted"], true, "{record}");
    let models = workspace.json(&["models", "--spec", "toy"]);
    assert_eq!(models["production"]["version"], "v1");
    let missing = workspace.fails(&["models", "--spec", "other"]);
    assert!(missing.contains("no spec for dataset 'other'"), "{missing}");
    // Refused before any AWS configuration is read.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_mlops"))
        .args(["--root", "s3://some-bucket", "run", "--spec", "toy"])
        .output()
        .unwrap();
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && error.contains("`mlops run` runs on a local store"), "{error}");
}
