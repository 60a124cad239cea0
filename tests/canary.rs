//! Canary and shadow challengers through `mlops canary` and `mlops serve`: routing, shadow
//! answers, the guard's withdrawal, and the evidence `mlops feedback` reads.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mlops_core::canary::routes_to_canary;
use serde_json::{Value, json};

use crate::harness::{Served, Workspace, call, client, toy_csv, toy_spec};

/// A workspace whose store has two versions of the toy model, v1 in production and served;
/// `canary` is appended to the spec before either is trained.
fn served_two_versions(canary: &str) -> (Workspace, PathBuf, Served, ureq::Agent) {
    let workspace = Workspace::new();
    let spec = two_versions(&workspace, canary);
    let server = Served::start(&workspace, &spec);
    (workspace, spec, server, client())
}

fn two_versions(workspace: &Workspace, canary: &str) -> PathBuf {
    let spec = toy_spec(workspace);
    let mut text = std::fs::read_to_string(&spec).unwrap();
    text.push_str(canary);
    std::fs::write(&spec, text).unwrap();
    let s = spec.to_str().unwrap();
    for (name, rows, start) in [("data.csv", 300, 0), ("more.csv", 200, 7000)] {
        let data = workspace.write(name, toy_csv(rows, start));
        workspace.json(&["ingest", "--spec", s, data.to_str().unwrap()]);
        workspace.json(&["run", "--spec", s]);
    }
    if workspace.json(&["models", "--spec", s])["production"]["version"] == "v2" {
        workspace.json(&["rollback", "--spec", s]);
    }
    spec
}

fn row(i: usize) -> Value {
    let group = ["red", "green", "blue"][i % 3];
    json!({ "x": (i % 89) as f64 / 7.0, "group": group, "when": format!("2024-03-{:02} {:02}:00:00", 1 + i % 28, i % 24) })
}

/// POST /predict with a request id: the status and the answer.
fn predict(agent: &ureq::Agent, server: &Served, request_id: &str, body: &Value) -> (u16, Value) {
    let mut response = agent.post(server.url("/predict")).header("x-request-id", request_id).send_json(body).expect("the server answers");
    (response.status().as_u16(), response.body_mut().read_json().unwrap())
}

/// `/health` once `wanted` holds, within ten seconds.
fn health_once(agent: &ureq::Agent, server: &Served, wanted: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, health) = call(agent, "GET", &server.url("/health"), None);
        if wanted(&health) {
            return health;
        }
        assert!(Instant::now() < deadline, "/health never changed: {health}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every inference log line of the store.
fn logged(root: &Path) -> Vec<Value> {
    let mut lines = Vec::new();
    for day in std::fs::read_dir(root.join("inference/toy")).unwrap() {
        for file in std::fs::read_dir(day.unwrap().path()).unwrap() {
            let text = std::fs::read_to_string(file.unwrap().path()).unwrap();
            lines.extend(text.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()));
        }
    }
    lines
}

#[test]
fn a_canary_answers_its_share_of_routing_keys_and_each_key_keeps_its_model() {
    let (workspace, spec, server, agent) = served_two_versions("");
    let s = spec.to_str().unwrap();
    let started = workspace.json(&["canary", "start", "--spec", s, "v2", "--weight", "30"]);
    assert_eq!((started["version"].as_str(), started["challenger"]["mode"].as_str()), (Some("v1"), Some("canary")), "{started}");
    let health = health_once(&agent, &server, |h| h["challenger"]["version"] == "v2");
    assert_eq!((health["model_version"].as_str(), health["challenger"]["weight"].as_u64()), (Some("v1"), Some(30)));
    let mut to_canary = 0;
    for i in 0..300 {
        let key = format!("caller-{i}");
        let first = predict(&agent, &server, &key, &row(i));
        let again = predict(&agent, &server, &key, &row(i + 1));
        assert_eq!((first.0, again.0), (200, 200), "{first:?} {again:?}");
        assert_eq!(first.1["model_version"], again.1["model_version"], "{key} keeps its model");
        let expected = if routes_to_canary(&key, 30) { "v2" } else { "v1" };
        assert_eq!(first.1["model_version"], expected, "{key}");
        to_canary += usize::from(expected == "v2");
    }
    assert!((60..=120).contains(&to_canary), "{to_canary} of 300 keys on a 30% canary");
    // A row's entity id (the spec's id column) is its routing key, whatever the request id.
    for i in 0..50 {
        let entity = (100_000 + i).to_string();
        let mut with_id = row(i);
        with_id["id"] = json!(100_000 + i);
        let expected = if routes_to_canary(&entity, 30) { "v2" } else { "v1" };
        for attempt in 0..2 {
            let (status, answer) = predict(&agent, &server, &format!("request-{i}-{attempt}"), &with_id);
            assert_eq!((status, answer["model_version"].as_str()), (200, Some(expected)), "{entity}: {answer}");
        }
        to_canary += usize::from(expected == "v2");
    }
    let stopped = workspace.json(&["canary", "stop", "--spec", s]);
    assert!(stopped.get("challenger").is_none(), "{stopped}");
    health_once(&agent, &server, |h| h.get("challenger").is_none());
    for i in 0..20 {
        assert_eq!(predict(&agent, &server, &format!("caller-{i}"), &row(i)).1["model_version"], "v1");
    }
    server.stop();
    let roles: Vec<(String, String)> = logged(&workspace.root())
        .iter()
        .map(|l| (l["model_version"].as_str().unwrap().into(), l["role"].as_str().unwrap_or("champion").into()))
        .collect();
    assert_eq!(roles.iter().filter(|(v, r)| v == "v2" && r == "canary").count(), 2 * to_canary, "the canary's lines say so");
    assert!(roles.iter().all(|(v, r)| (v == "v1") == (r == "champion")));
}

#[test]
fn a_shadow_is_scored_and_logged_beside_the_champion_whose_answers_it_never_changes() {
    let (workspace, spec, server, agent) = served_two_versions("");
    let s = spec.to_str().unwrap();
    let batch = |from: usize| json!({ "rows": (from..from + 10).map(row).collect::<Vec<_>>() });
    let before: Vec<Value> = (0..10).map(|i| predict(&agent, &server, &format!("before-{i}"), &batch(i * 10)).1).collect();
    workspace.json(&["canary", "start", "--spec", s, "v2", "--shadow"]);
    health_once(&agent, &server, |h| h["challenger"]["mode"] == "shadow");
    let mut ids = Vec::new();
    for (i, earlier) in before.iter().enumerate() {
        let (status, answer) = predict(&agent, &server, &format!("shadowed-{i}"), &batch(i * 10));
        assert_eq!((status, answer["model_version"].as_str()), (200, Some("v1")), "{answer}");
        assert_eq!(answer["predictions"], earlier["predictions"], "the shadow never changes an answer");
        ids.extend(answer["prediction_ids"].as_array().unwrap().iter().map(|id| id.as_str().unwrap().to_string()));
    }
    server.stop();
    let lines = logged(&workspace.root());
    let shadow: Vec<&Value> = lines.iter().filter(|l| l["role"] == "shadow").collect();
    assert_eq!(shadow.len(), 100);
    assert!(shadow.iter().all(|l| l["model_version"] == "v2" && ids.contains(&l["prediction_id"].as_str().unwrap().to_string())));
    // Labels for the shadowed rows: each version's evidence, paired; 100 labels decide nothing.
    // The toy spec's id column keys its labels; these rows had none, so their keys are the
    // prediction ids.
    let mut labels = String::from("id,y\n");
    for (i, id) in ids.iter().enumerate() {
        labels.push_str(&format!("{id},{}\n", (i % 89) as f64 / 7.0 * 3.0));
    }
    let file = workspace.write("labels.csv", labels);
    let fed = workspace.json(&["feedback", "--spec", s, file.to_str().unwrap()]);
    assert_eq!(fed["feedback"]["matched"], 100, "shadow lines are not counted as answers: {fed}");
    let canary = &fed["canary"];
    let labelled: Vec<(&str, u64)> =
        canary["versions"].as_array().unwrap().iter().map(|v| (v["role"].as_str().unwrap(), v["labelled"].as_u64().unwrap())).collect();
    assert_eq!(labelled, [("champion", 100), ("shadow", 100)], "{canary}");
    assert_eq!(canary["judgement"]["verdict"], "collecting", "{canary}");
    assert!(canary["judgement"]["reason"].as_str().unwrap().contains("each needs 200"), "{canary}");
    assert_eq!(workspace.json(&["models", "--spec", s])["production"]["challenger"]["version"], "v2", "nothing moved");
}

#[test]
fn a_canary_past_its_latency_bound_is_withdrawn_at_once_and_the_pointer_says_why() {
    let (workspace, spec, server, agent) = served_two_versions("\n[promotion.canary]\nmax_p99_ms = 0.000001\nguard_requests = 5\n");
    let s = spec.to_str().unwrap();
    workspace.json(&["canary", "start", "--spec", s, "v2", "--weight", "99"]);
    health_once(&agent, &server, |h| h["challenger"]["version"] == "v2");
    let keys: Vec<String> = (0..200).map(|i| format!("k{i}")).filter(|k| routes_to_canary(k, 99)).take(30).collect();
    let answered: Vec<Value> = keys.iter().map(|k| predict(&agent, &server, k, &row(1)).1["model_version"].clone()).collect();
    assert_eq!(answered.iter().filter(|v| *v == "v2").count(), 5, "the canary answers until the guard has judged it: {answered:?}");
    assert!(answered[5..].iter().all(|v| v == "v1"), "then the champion answers everything: {answered:?}");
    let production = &workspace.json(&["models", "--spec", s])["production"];
    assert!(production.get("challenger").is_none(), "{production}");
    let last = production["history"].as_array().unwrap().last().unwrap();
    assert_eq!((last["action"].as_str(), last["from"].as_str(), last["to"].as_str()), (Some("challenger_stop"), Some("v2"), Some("v1")));
    assert!(last["reason"].as_str().unwrap().contains("passes the bound of 0.000001 ms"), "{last}");
}

#[test]
fn a_challenger_that_cannot_be_loaded_is_left_out_and_the_champion_answers() {
    let (workspace, spec, server, agent) = served_two_versions("");
    let s = spec.to_str().unwrap();
    let model = workspace.root().join("models/toy/v2/model.bin");
    let bytes = std::fs::read(&model).unwrap();
    std::fs::remove_file(&model).unwrap();
    workspace.json(&["canary", "start", "--spec", s, "v2", "--weight", "99"]);
    // The server reads the moved pointer within its refresh interval (1 s), leaves v2 out
    // without calling the registry broken, and answers every key with v1.
    let until = Instant::now() + Duration::from_millis(2500);
    let mut i = 0;
    while Instant::now() < until {
        let (_, health) = call(&agent, "GET", &server.url("/health"), None);
        assert!(health.get("challenger").is_none() && health.get("registry_error").is_none(), "{health}");
        let (status, answer) = predict(&agent, &server, &format!("k{i}"), &row(i));
        assert_eq!((status, answer["model_version"].as_str()), (200, Some("v1")), "{answer}");
        i += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    // Once it can be loaded, a trial of it starts as usual.
    workspace.json(&["canary", "stop", "--spec", s]);
    std::fs::write(&model, bytes).unwrap();
    workspace.json(&["canary", "start", "--spec", s, "v2", "--weight", "99"]);
    health_once(&agent, &server, |h| h["challenger"]["version"] == "v2");
}
