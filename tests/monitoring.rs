//! `mlops drift`, `mlops feedback`, `mlops watch` and `mlops demo`.

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{Workspace, toy_csv, toy_spec};

#[test]
fn the_demo_tells_the_whole_story_unattended() {
    let workspace = Workspace::new();
    let output = Command::new(env!("CARGO_BIN_EXE_mlops")).arg("--root").arg(workspace.root()).args(["demo", "--json"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    for step in [
        "1. Train on January to April",
        "3. Replay May to August",
        "5. Check drift",
        "6. The server picks up the canary",
        "7. Their labels arrive",
        "8. The server picks up the new version",
    ] {
        assert!(stderr.contains(step), "the demo narrates {step:?}: {stderr}");
    }
    let summary: serde_json::Value = serde_json::from_str(String::from_utf8_lossy(&output.stdout).trim()).unwrap();
    assert_eq!(summary["first_model"]["version"], "v1");
    assert_eq!(summary["drift"]["dataset_drift"], true);
    assert_eq!(summary["drift"]["concept"]["verdict"], "drift");
    // Before the labels, the estimate already sees the drop (direct loss estimation).
    let (estimated, realised) =
        (summary["drift"]["estimated"]["current"].as_f64().unwrap(), summary["drift"]["concept"]["current"].as_f64().unwrap());
    assert_eq!(summary["drift"]["estimated"]["verdict"], "drift", "{summary}");
    assert!((estimated / realised - 1.0).abs() < 0.25, "estimated rmse {estimated:.2} against realised {realised:.2}");
    assert_eq!((summary["drift"]["alert"].as_bool(), summary["drift"]["retrain"].as_bool()), (Some(true), Some(true)));
    // The retrained model starts as a canary and earns its promotion on delayed labels.
    assert_eq!(summary["retrained"]["version"], "v2");
    assert!(summary["retrained"]["started"].as_str().unwrap().starts_with("started as a challenger, canary at 50%"), "{summary}");
    let canary = &summary["canary"];
    assert_eq!((canary["judgement"]["verdict"].as_str(), canary["action"].as_str()), (Some("promote"), Some("promoted")), "{canary}");
    let versions: Vec<(&str, &str)> =
        canary["versions"].as_array().unwrap().iter().map(|v| (v["version"].as_str().unwrap(), v["role"].as_str().unwrap())).collect();
    assert_eq!(versions, [("v1", "champion"), ("v2", "canary")]);
    assert!(canary["versions"].as_array().unwrap().iter().all(|v| v["labelled"].as_u64().unwrap() >= 200), "{canary}");
    assert_eq!(summary["answered_by"], "v2");
    assert_eq!(summary["second_check"]["retrain"], false, "the cooldown holds the next retrain");
    let report = std::fs::read_to_string(summary["report"].as_str().unwrap()).unwrap();
    assert!(report.contains("<svg") && report.contains("temp"));
    assert!(
        report.contains("Challenger v2 (canary at 50%)") && report.contains("<td>v1</td><td>Champion</td>"),
        "the report shows both versions"
    );
}

#[test]
fn drift_on_a_batch_alerts_and_retrains_while_the_empty_log_raises_nothing() {
    let workspace = Workspace::new();
    let spec = toy_spec(&workspace);
    let spec = spec.to_str().unwrap();
    let data = workspace.write("data.csv", toy_csv(600, 0));
    workspace.json(&["ingest", "--spec", spec, data.to_str().unwrap()]);
    workspace.json(&["run", "--spec", spec]);

    let quiet = workspace.json(&["drift", "--spec", spec]);
    assert_eq!(quiet["current_rows"], 0);
    assert_eq!(quiet["alert"], false);
    assert!(quiet["features"].as_array().unwrap().iter().all(|f| f["verdict"] == "insufficient_data"));

    let shifted: String = toy_csv(600, 100_000)
        .lines()
        .enumerate()
        .map(
            |(i, line)| {
                if i == 0 { format!("{line}\n") } else { format!("{}\n", line.replace(",red,", ",blue,").replace(",green,", ",blue,")) }
            },
        )
        .collect();
    let batch = workspace.write("shifted.csv", shifted);
    let report = workspace.json(&["drift", "--spec", spec, "--batch", batch.to_str().unwrap()]);
    let group = report["features"].as_array().unwrap().iter().find(|f| f["column"] == "group").unwrap();
    assert_eq!(group["verdict"], "drift");
    for statistic in ["chi_square", "chi_square_p_value", "jensen_shannon", "psi"] {
        assert!(group["statistics"][statistic].is_f64(), "{group}");
    }
    assert_eq!(report["alert"], true);
    assert_eq!(report["retrain"]["requested"], true, "{}", report["retrain"]);
    assert!(workspace.root().join(report["html_key"].as_str().unwrap()).exists());
    // Same version, still drifting: the loop guard stops a second retrain.
    let again = workspace.json(&["drift", "--spec", spec, "--batch", batch.to_str().unwrap()]);
    assert_eq!((again["alert"].as_bool(), again["retrain"]["requested"].as_bool()), (Some(true), Some(false)));

    let error = workspace.fails(&["drift", "--spec", spec, "--batch", workspace.write("empty.csv", "").to_str().unwrap()]);
    assert!(error.contains("empty.csv") && error.contains("empty"), "{error}");

    // Without the target the batch gives data drift, and no concept drift.
    let header = toy_csv(1, 0).lines().next().unwrap().to_string();
    let target = header.split(',').position(|c| c == "y").expect("the toy data has a target y");
    let unlabelled: String = toy_csv(400, 0)
        .lines()
        .map(|line| {
            format!("{}\n", line.split(',').enumerate().filter(|(i, _)| *i != target).map(|(_, v)| v).collect::<Vec<_>>().join(","))
        })
        .collect();
    let report = workspace.json(&["drift", "--spec", spec, "--batch", workspace.write("unlabelled.csv", unlabelled).to_str().unwrap()]);
    assert_eq!((report["current_rows"].as_u64(), report["concept"].is_null()), (Some(400), true), "{report}");
    // A batch none of whose rows passes the schema is an error, not a quiet "no alert".
    let broken: String = toy_csv(50, 0)
        .lines()
        .enumerate()
        .map(|(i, l)| if i == 0 { format!("{l}\n") } else { format!("{}\n", l.replace(',', ",x")) })
        .collect();
    let error = workspace.fails(&["drift", "--spec", spec, "--batch", workspace.write("broken.csv", broken).to_str().unwrap()]);
    assert!(error.contains("broken.csv") && error.contains("no row passes the schema"), "{error}");
}

/// Lines the watcher prints, as JSON events, until `wanted` matches or the time is up.
/// The lines a child prints, read on their own thread so that waiting for one can time out.
fn output_lines(output: impl std::io::Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    let (send, receive) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(output).lines().map_while(Result::ok) {
            if send.send(line).is_err() {
                break;
            }
        }
    });
    receive
}

/// The first event the watcher prints that `wanted` accepts; fails (never hangs) when none comes
/// within two minutes or the watcher stops.
fn wait_for(lines: &std::sync::mpsc::Receiver<String>, wanted: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    wait_for_within(lines, wanted, Duration::from_secs(120))
}

/// [`wait_for`] with its own deadline: fails, rather than hangs, when nothing wanted arrives.
fn wait_for_within(
    lines: &std::sync::mpsc::Receiver<String>,
    wanted: impl Fn(&serde_json::Value) -> bool,
    within: Duration,
) -> serde_json::Value {
    let deadline = Instant::now() + within;
    loop {
        let line = match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => line,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => panic!("the watcher did not report in time"),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => panic!("the watcher stopped before reporting"),
        };
        if let Ok(event) = serde_json::from_str::<serde_json::Value>(&line)
            && wanted(&event)
        {
            return event;
        }
    }
}

#[test]
#[should_panic(expected = "the watcher did not report in time")]
fn waiting_on_a_silent_watcher_fails_instead_of_hanging() {
    // The sender stays alive and says nothing the test wants: only the deadline can end the wait.
    let (sender, lines) = std::sync::mpsc::channel();
    sender.send(r#"{"event":"run"}"#.to_string()).unwrap();
    wait_for_within(&lines, |e| e["event"] == "drift", Duration::from_millis(200));
    drop(sender);
}

#[test]
fn watch_runs_on_each_new_file_survives_a_failed_run_and_checks_drift() {
    let workspace = Workspace::new();
    let spec = toy_spec(&workspace);
    let spec = spec.to_str().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mlops"))
        .arg("--root")
        .arg(workspace.root())
        .args(["watch", "--spec", spec, "--interval", "2", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = output_lines(child.stdout.take().unwrap());
    std::thread::sleep(Duration::from_millis(500));
    let bad = workspace.write("bad.csv", "id,x,group,when,y\n1,2.0,red,not a date,3\n");
    workspace.json(&["ingest", "--spec", spec, bad.to_str().unwrap()]);
    let failed = wait_for(&lines, |e| e["event"] == "run_failed");
    assert!(failed["error"].as_str().unwrap().contains("raw/toy/bad.csv"), "{failed}");
    let good = workspace.write("good.csv", toy_csv(300, 0));
    workspace.json(&["ingest", "--spec", spec, good.to_str().unwrap()]);
    let run = wait_for(&lines, |e| e["event"] == "run");
    assert_eq!(run["record"]["trigger"], "upload");
    assert_eq!(run["record"]["production"]["version"], "v1");
    let drift = wait_for(&lines, |e| e["event"] == "drift");
    assert_eq!(drift["report"]["model_version"], "v1");
    let _ = child.kill();
    let _ = child.wait();
}
