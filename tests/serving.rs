//! `mlops serve`: every endpoint, bad requests, hot swap under load, the inference log.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::{Served, Workspace, call, client, sha256_file, toy_csv, toy_spec};

pub fn trained(workspace: &Workspace) -> std::path::PathBuf {
    let spec = toy_spec(workspace);
    let data = workspace.write("data.csv", toy_csv(300, 0));
    workspace.json(&["ingest", "--spec", spec.to_str().unwrap(), data.to_str().unwrap()]);
    workspace.json(&["run", "--spec", spec.to_str().unwrap()]);
    spec
}

fn row(i: usize) -> serde_json::Value {
    let group = ["red", "green", "blue"][i % 3];
    json!({ "x": (i % 89) as f64 / 7.0, "group": group, "when": format!("2024-03-{:02} {:02}:00:00", 1 + i % 28, i % 24) })
}

#[test]
fn every_endpoint_answers_and_bad_requests_get_a_4xx_naming_the_field_or_limit() {
    let workspace = Workspace::new();
    let spec = trained(&workspace);
    let server = Served::start(&workspace, &spec);
    let agent = client();

    let (status, health) = call(&agent, "GET", &server.url("/health"), None);
    assert_eq!((status, health["model_version"].as_str()), (200, Some("v1")));
    let (status, model) = call(&agent, "GET", &server.url("/model"), None);
    assert_eq!(status, 200);
    assert_eq!(model["version"], "v1");
    assert!(model["metrics"]["rmse"].is_f64());
    let schema: Vec<&str> = model["schema"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert!(schema.contains(&"x") && schema.contains(&"when"));
    let (status, openapi) = call(&agent, "GET", &server.url("/openapi.json"), None);
    assert_eq!(status, 200);
    assert_eq!(openapi["openapi"], "3.0.3");
    assert_eq!(openapi["components"]["schemas"]["Row"]["properties"]["group"]["enum"], json!(["blue", "green", "red"]));

    let (status, one) = call(&agent, "POST", &server.url("/predict"), Some(&row(1).to_string()));
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["model_version"], "v1");
    assert_eq!(one["predictions"].as_array().unwrap().len(), 1);
    let batch = json!({ "rows": (0..100).map(row).collect::<Vec<_>>() });
    let (status, many) = call(&agent, "POST", &server.url("/predict"), Some(&batch.to_string()));
    assert_eq!(status, 200);
    assert_eq!(many["predictions"].as_array().unwrap().len(), 100);
    assert_eq!(many["prediction_ids"].as_array().unwrap().len(), 100);

    let huge = format!("{{\"rows\": [{}]}}", vec![row(0).to_string(); 20_000].join(","));
    let too_many = json!({ "rows": (0..1001).map(row).collect::<Vec<_>>() }).to_string();
    let cases: Vec<(&str, &str, Option<String>, u16, &str)> = vec![
        ("POST", "/predict", Some("{not json".into()), 400, "not JSON"),
        ("POST", "/predict", Some(json!({ "group": "red", "when": "2024-03-01 00:00:00" }).to_string()), 422, "row 0: missing field 'x'"),
        (
            "POST",
            "/predict",
            Some(json!({ "x": "abc", "group": "red", "when": "2024-03-01 00:00:00" }).to_string()),
            422,
            "field 'x': \"abc\" is not a JSON number",
        ),
        (
            "POST",
            "/predict",
            Some(json!({ "x": 1e300, "group": "red", "when": "2024-03-01 00:00:00 " }).to_string()),
            422,
            "field 'when': '2024-03-01 00:00:00 ' is not written exactly",
        ),
        (
            "POST",
            "/predict",
            Some(json!({ "rows": [{ "x": 1, "group": "red", "when": "2024-03-01 00:00:00" }], "explain": true }).to_string()),
            422,
            "a batch is {\"rows\": [...]} with no other field",
        ),
        ("PUT", "/predict", None, 405, "PUT is not allowed on /predict; it allows POST"),
        (
            "POST",
            "/predict",
            Some(json!({ "x": 1, "group": "purple", "when": "2024-03-01 00:00:00" }).to_string()),
            422,
            "'purple' is not one of the categories",
        ),
        ("POST", "/predict", Some(json!({ "x": 1, "group": "red", "when": "yesterday" }).to_string()), 422, "field 'when'"),
        (
            "POST",
            "/predict",
            Some(json!({ "x": 1, "group": "red", "when": "2024-03-01 00:00:00", "colour": 1 }).to_string()),
            422,
            "unknown field 'colour'",
        ),
        ("POST", "/predict", Some(json!({ "rows": [] }).to_string()), 422, "'rows' is empty"),
        ("POST", "/predict", Some(json!([1, 2]).to_string()), 422, "expected one row"),
        ("POST", "/predict", Some(huge), 413, "the limit is 1048576"),
        ("POST", "/predict", Some(too_many), 413, "the limit is 1000 per request"),
        ("GET", "/predict", None, 405, "GET is not allowed"),
        ("GET", "/nowhere", None, 404, "no route /nowhere"),
    ];
    for (method, path, body, expected_status, expected_error) in cases {
        let (status, answer) = call(&agent, method, &server.url(path), body.as_deref());
        assert_eq!(status, expected_status, "{method} {path}: {answer}");
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(error.contains(expected_error), "{method} {path}: {error:?} should contain {expected_error:?}");
    }

    // Every prediction is logged with its features, version and id.
    server.stop();
    let logged: String = workspace
        .snapshot("inference/toy")
        .keys()
        .map(|k| std::fs::read_to_string(workspace.root().join("inference/toy").join(k)).unwrap())
        .collect();
    let lines: Vec<serde_json::Value> = logged.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 101);
    assert!(lines.iter().all(|l| l["model_version"] == "v1" && l["features"]["group"].is_string() && l["prediction"].is_f64()));
    assert!(lines.iter().any(|l| l["prediction_id"] == many["prediction_ids"][7]));
}

#[test]
fn a_promoted_version_is_picked_up_under_load_without_a_failed_request() {
    let workspace = Workspace::new();
    let spec = trained(&workspace);
    let more = workspace.write("more.csv", toy_csv(200, 7000));
    workspace.json(&["ingest", "--spec", spec.to_str().unwrap(), more.to_str().unwrap()]);
    let second = workspace.json(&["run", "--spec", spec.to_str().unwrap()]);
    if second["promoted"] == true {
        workspace.json(&["rollback", "--spec", spec.to_str().unwrap()]);
    }
    let server = Served::start(&workspace, &spec);
    let stop = AtomicBool::new(false);
    let (versions, failures) = std::thread::scope(|scope| {
        let clients: Vec<_> = (0..4)
            .map(|c| {
                let (server, stop) = (&server, &stop);
                scope.spawn(move || {
                    let agent = client();
                    let (mut versions, mut failures) = (Vec::new(), Vec::new());
                    let mut i = c;
                    while !stop.load(Ordering::Relaxed) {
                        let (status, answer) = call(&agent, "POST", &server.url("/predict"), Some(&row(i).to_string()));
                        if status == 200 {
                            versions.push(answer["model_version"].as_str().unwrap().to_string());
                        } else {
                            failures.push(format!("{status}: {answer}"));
                        }
                        i += 4;
                    }
                    (versions, failures)
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(700));
        workspace.json(&["promote", "--spec", spec.to_str().unwrap(), "v2"]);
        let promoted_at = Instant::now();
        while promoted_at.elapsed() < Duration::from_secs(3) {
            std::thread::sleep(Duration::from_millis(100));
        }
        stop.store(true, Ordering::Relaxed);
        clients.into_iter().map(|h| h.join().unwrap()).fold((Vec::new(), Vec::new()), |(mut v, mut f), (cv, cf)| {
            v.push(cv);
            f.extend(cf);
            (v, f)
        })
    });
    assert!(failures.is_empty(), "failed requests during the swap: {failures:?}");
    for per_client in &versions {
        assert!(per_client.len() > 5, "each client got answers");
        assert_eq!(per_client.first().map(String::as_str), Some("v1"));
        assert_eq!(per_client.last().map(String::as_str), Some("v2"), "the new version serves within seconds");
        let switch = per_client.iter().position(|v| v == "v2").unwrap();
        assert!(per_client[switch..].iter().all(|v| v == "v2"), "never back to the old version");
    }
}

#[test]
fn when_the_registry_cannot_be_read_the_last_good_model_keeps_serving() {
    let workspace = Workspace::new();
    let spec = trained(&workspace);
    let server = Served::start(&workspace, &spec);
    let agent = client();
    let pointer = workspace.root().join("registry/toy/production.json");
    let good = std::fs::read(&pointer).unwrap();
    std::fs::write(&pointer, b"{ this is not a pointer").unwrap();
    // The refresh ran and failed: /health says so, and v1 keeps answering.
    let health = wait_for_health(&agent, &server, |h| h["registry_error"].is_string());
    assert_eq!(health["model_version"], "v1", "{health}");
    for i in 0..5 {
        let (status, answer) = call(&agent, "POST", &server.url("/predict"), Some(&row(i).to_string()));
        assert_eq!((status, answer["model_version"].as_str()), (200, Some("v1")), "{answer}");
    }
    // Once the pointer is readable again, the next refresh clears the error.
    std::fs::write(&pointer, good).unwrap();
    let health = wait_for_health(&agent, &server, |h| h.get("registry_error").is_none());
    assert_eq!(health["model_version"], "v1", "{health}");
}

/// `/health` once `wanted` holds; fails after ten seconds of refreshes.
fn wait_for_health(agent: &ureq::Agent, server: &Served, wanted: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, health) = call(agent, "GET", &server.url("/health"), None);
        assert_eq!(status, 200, "{health}");
        if wanted(&health) {
            return health;
        }
        assert!(Instant::now() < deadline, "/health never changed: {health}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn slow_clients_are_disconnected_and_do_not_hold_the_server() {
    use std::io::{Read, Write};
    let workspace = Workspace::new();
    let spec = trained(&workspace);
    let server = Served::start(&workspace, &spec);
    let address = server.url("").trim_start_matches("http://").to_string();
    // Clients that never finish their headers, and one that never finishes its body.
    let mut slow: Vec<std::net::TcpStream> = (0..50)
        .map(|_| {
            let mut socket = std::net::TcpStream::connect(&address).unwrap();
            socket.write_all(b"POST /predict HTTP/1.1\r\nHost: x\r\n").unwrap();
            socket
        })
        .collect();
    let mut partial = std::net::TcpStream::connect(&address).unwrap();
    partial.write_all(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"x\": ").unwrap();
    slow.push(partial);
    // Meanwhile the server answers others.
    let (status, _) = call(&client(), "POST", &server.url("/predict"), Some(&row(1).to_string()));
    assert_eq!(status, 200);
    let started = Instant::now();
    for mut socket in slow {
        socket.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let mut answer = Vec::new();
        // The server closes the connection (408 for the unfinished body, nothing for headers).
        let _ = socket.read_to_end(&mut answer);
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 408"), "{answer}");
    }
    assert!(started.elapsed() < Duration::from_secs(45), "slow clients were held {:?}", started.elapsed());
}

#[test]
fn many_level_categoricals_and_rfc3339_times_go_from_init_to_predict_and_unseen_levels_get_the_prior() {
    let workspace = Workspace::new();
    // 300 shops of about 7 rows each, a strong shop effect, an RFC 3339 time with Z.
    let mut text = String::from("order,stamp,shop,x,y\n");
    for i in 0..2100 {
        let shop = (i * 7919) % 300;
        let effect = f64::from(shop % 10) * 10.0;
        let stamp = format!("2024-{:02}-{:02}T{:02}:30:00Z", 1 + i / 200, 1 + i % 28, i % 24);
        text.push_str(&format!("o{i},{stamp},shop-{shop:03},{},{}\n", i % 13, effect + f64::from(i % 13) * 0.5));
    }
    let data = workspace.write("orders.csv", &text);
    let spec = workspace.path("orders.toml");
    let drafted = workspace.json(&["init", data.to_str().unwrap(), "--target", "y", "--time", "stamp", "-o", spec.to_str().unwrap()]);
    let notes = drafted["notes"].to_string();
    assert!(notes.contains("'shop' is categorical with 300 levels"), "{notes}");
    let spec_text = std::fs::read_to_string(&spec).unwrap();
    assert!(spec_text.contains("format = \"rfc3339\""), "{spec_text}");
    workspace.json(&["ingest", "--spec", spec.to_str().unwrap(), data.to_str().unwrap()]);
    let run = workspace.json(&["run", "--spec", spec.to_str().unwrap()]);
    assert!(run["production"]["metrics"]["r2"].as_f64().unwrap() > 0.9, "the shop must be a feature: {}", run["production"]);

    let server = Served::start(&workspace, &spec);
    let agent = client();
    let (status, openapi) = call(&agent, "GET", &server.url("/openapi.json"), None);
    assert_eq!(status, 200);
    assert!(openapi["components"]["schemas"]["Row"]["properties"]["shop"]["enum"].is_null(), "an open set has no enum");
    let predict = |shop: &str, stamp: &str| {
        let row = json!({ "order": "new", "stamp": stamp, "shop": shop, "x": 4 });
        let (status, body) = call(&agent, "POST", &server.url("/predict"), Some(&row.to_string()));
        assert_eq!(status, 200, "{body}");
        body["predictions"][0].as_f64().unwrap()
    };
    let stamp = "2024-06-03T12:30:00Z";
    let (low, high) = (predict("shop-000", stamp), predict("shop-009", stamp));
    assert!(high - low > 50.0, "shop effects are learnt: shop-000 {low}, shop-009 {high}");
    // Levels training never saw are accepted and encoded as the prior: the same prediction,
    // between the shops' extremes.
    let (unseen, other_unseen) = (predict("shop-new", stamp), predict("not a shop", stamp));
    assert_eq!(unseen, other_unseen);
    assert!(low < unseen && unseen < high, "{low} < {unseen} < {high}");
    // The same instant with an offset is the same input.
    assert_eq!(predict("shop-009", "2024-06-03T14:30:00+02:00"), high);
    let row = json!({ "order": "new", "stamp": "2024-06-03 12:30", "shop": "shop-001", "x": 4 });
    let (status, body) = call(&agent, "POST", &server.url("/predict"), Some(&row.to_string()));
    assert_eq!(status, 422, "{body}");
    assert!(body.to_string().contains("stamp") && body.to_string().contains("RFC 3339"), "{body}");
}

#[test]
fn score_writes_predictions_and_rejects_whole_and_never_touches_its_input() {
    let workspace = Workspace::new();
    let spec = trained(&workspace);
    let mut text = toy_csv(20, 1000);
    text.push_str("9999,1.5,purple,2024-02-01 00:00:00,\n9998,2.5,red,not a time,\n");
    let input = workspace.write("batch.csv", &text);
    let before = sha256_file(&input);
    let output = workspace.path("scores.csv");
    let summary = workspace.json(&["score", "--spec", spec.to_str().unwrap(), input.to_str().unwrap(), "-o", output.to_str().unwrap()]);
    assert_eq!((summary["rows"].as_u64(), summary["scored"].as_u64(), summary["rejected"].as_u64()), (Some(22), Some(20), Some(2)));
    assert_eq!(sha256_file(&input), before);
    let scores = std::fs::read_to_string(&output).unwrap();
    assert!(scores.starts_with("id,x,group,when,y,prediction_id,prediction,model_version\n1000,"), "{scores}");
    // The spec's id column keys each prediction, as it does for /predict.
    let first: Vec<&str> = scores.lines().nth(1).unwrap().split(',').collect();
    assert_eq!((first[0], first[5], first[7]), ("1000", "1000", "v1"));
    let rejects = std::fs::read_to_string(workspace.path("scores.rejects.csv")).unwrap();
    let rejects: Vec<&str> = rejects.lines().collect();
    assert_eq!(rejects.len(), 3, "{rejects:?}");
    assert!(rejects[1].starts_with("22,\"field 'group': 'purple' is not one of the categories"), "{}", rejects[1]);
    assert!(rejects[2].starts_with("23,field 'when': "), "{}", rejects[2]);
    assert!(!workspace.path("scores.csv.partial").exists());

    let error = workspace.fails(&["score", "--spec", "toy", input.to_str().unwrap(), "-o", input.to_str().unwrap()]);
    assert!(error.contains("the output would overwrite the input"), "{error}");
    let bad = workspace.write("bad.csv", "x,colour\n1,red\n");
    let error =
        workspace.fails(&["score", "--spec", "toy", bad.to_str().unwrap(), "-o", workspace.path("bad-scores.csv").to_str().unwrap()]);
    assert!(error.contains("bad.csv: the column 'colour' is not in the model's schema"), "{error}");
    assert!(!workspace.path("bad-scores.csv").exists() && !workspace.path("bad-scores.csv.partial").exists());
    assert_eq!(sha256_file(&input), before);
}

#[test]
fn explanations_sum_to_each_prediction_and_a_bad_explain_value_is_refused() {
    let workspace = Workspace::new();
    let spec = trained(&workspace);
    let server = Served::start(&workspace, &spec);
    let agent = client();
    let batch = json!({ "rows": (0..20).map(row).collect::<Vec<_>>() }).to_string();
    let (status, plain) = call(&agent, "POST", &server.url("/predict"), Some(&batch));
    assert_eq!(status, 200);
    assert!(plain.get("explanations").is_none());
    let (status, explained) = call(&agent, "POST", &server.url("/predict?explain=true"), Some(&batch));
    assert_eq!(status, 200, "{explained}");
    assert_eq!(explained["predictions"], plain["predictions"], "explaining changes no prediction");
    let explanations = explained["explanations"].as_array().unwrap();
    assert_eq!(explanations.len(), 20);
    for (prediction, explanation) in explained["predictions"].as_array().unwrap().iter().zip(explanations) {
        let [explanation] = explanation.as_array().unwrap().as_slice() else { panic!("one output: {explanation}") };
        assert_eq!(explanation["space"], "value");
        let contributions = explanation["contributions"].as_object().unwrap();
        assert!(contributions.contains_key("x") && contributions.contains_key("group"), "{contributions:?}");
        let total = explanation["base"].as_f64().unwrap() + contributions.values().map(|v| v.as_f64().unwrap()).sum::<f64>();
        let predicted = prediction.as_f64().unwrap();
        assert!((total - predicted).abs() < 1e-6 * (1.0 + predicted.abs()), "{total} against {predicted}");
    }
    let (status, refused) = call(&agent, "POST", &server.url("/predict?explain=maybe"), Some(&batch));
    assert_eq!(status, 422);
    assert!(refused["error"].as_str().unwrap().contains("explain=maybe"), "{refused}");
    let many = json!({ "rows": (0..101).map(row).collect::<Vec<_>>() }).to_string();
    let (status, refused) = call(&agent, "POST", &server.url("/predict?explain=true"), Some(&many));
    assert_eq!(status, 413, "{refused}");
    assert!(refused["error"].as_str().unwrap().contains("101 rows to explain; the limit is 100"), "{refused}");
    assert_eq!(call(&agent, "POST", &server.url("/predict"), Some(&many)).0, 200, "without explanations the rows are within the limit");
}
