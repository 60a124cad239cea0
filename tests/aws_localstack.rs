//! The AWS deployment end to end on LocalStack, with nothing mocked: the release functions are
//! built and zipped, LocalStack runs in host mode with this project's Lambda executor plugin
//! (`tests/localstack`), `infra/template.yaml` is deployed, and the lifecycle runs through S3
//! events, Step Functions, the function URL, batch scoring, the drift function, SNS and SQS.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::process::Command;
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_sfn::types::ExecutionStatus;
use mlops_devstack::{LocalStack, STACK};
use serde_json::{Value, json};

use crate::harness::{project, venv};

/// The stack's parameters for this test.
const PARAMETERS: [(&str, &str); 9] = [
    ("DriftSchedule", "rate(1 day)"),
    ("PipelineMemory", "3008"),
    // Small shards, so the first upload is cut into several and runs on the Distributed Map.
    ("ShardBytes", "1048576"),
    ("ShardsPerItem", "2"),
    // And small buckets, so its rows are deduplicated on a Distributed Map of several.
    ("BucketBytes", "4194304"),
    ("MapConcurrency", "2"),
    // One log file per drift map item, two items a round: the check runs several rounds.
    ("DriftFilesPerItem", "1"),
    ("DriftItemsPerRound", "2"),
    // Boosting's 300 rounds take three invocations: it pauses twice and resumes from a checkpoint.
    ("BoostingRoundsPerInvocation", "100"),
];

struct Clients {
    s3: aws_sdk_s3::Client,
    sfn: aws_sdk_sfn::Client,
    sns: aws_sdk_sns::Client,
    sqs: aws_sdk_sqs::Client,
    lambda: aws_sdk_lambda::Client,
    logs: aws_sdk_cloudwatchlogs::Client,
}

impl Clients {
    fn new(config: &aws_config::SdkConfig) -> Clients {
        Clients {
            s3: mlops_devstack::s3_client(config),
            sfn: aws_sdk_sfn::Client::new(config),
            sns: aws_sdk_sns::Client::new(config),
            sqs: aws_sdk_sqs::Client::new(config),
            lambda: aws_sdk_lambda::Client::new(config),
            logs: aws_sdk_cloudwatchlogs::Client::new(config),
        }
    }

    async fn put(&self, bucket: &str, key: &str, bytes: Vec<u8>) {
        self.s3
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .unwrap_or_else(|e| panic!("put {key}: {e:?}"));
    }

    async fn get(&self, bucket: &str, key: &str) -> Vec<u8> {
        let object = self.s3.get_object().bucket(bucket).key(key).send().await.unwrap_or_else(|e| panic!("get {key}: {e:?}"));
        object.body.collect().await.unwrap().into_bytes().to_vec()
    }

    /// A queue subscribed to `topic`; returns its URL.
    async fn subscribe_queue(&self, name: &str, topic: &str) -> String {
        let url = self.sqs.create_queue().queue_name(name).send().await.unwrap().queue_url().unwrap().to_string();
        let attributes = self
            .sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .unwrap();
        let arn = attributes.attributes().unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn].clone();
        self.sns.subscribe().topic_arn(topic).protocol("sqs").endpoint(arn).send().await.unwrap();
        url
    }

    /// The next messages of a queue (SNS envelopes' `Message` and `Subject`), waiting up to `wait`.
    async fn messages(&self, queue: &str, wait: Duration) -> Vec<Value> {
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            let received =
                self.sqs.receive_message().queue_url(queue).wait_time_seconds(2).max_number_of_messages(10).send().await.unwrap();
            let messages: Vec<Value> = received.messages().iter().filter_map(|m| serde_json::from_str(m.body()?).ok()).collect();
            if !messages.is_empty() {
                return messages;
            }
        }
        Vec::new()
    }

    /// Every key under `prefix`.
    async fn list(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let mut keys = Vec::new();
        let mut pages = self.s3.list_objects_v2().bucket(bucket).prefix(prefix).into_paginator().send();
        while let Some(page) = pages.next().await {
            keys.extend(page.unwrap().contents().iter().filter_map(|o| o.key().map(str::to_string)));
        }
        keys
    }

    /// The Embedded Metric Format lines naming `metric` in a log group, as CloudWatch Logs holds
    /// them, once `enough` says so (or after 60 s: invocations' logs arrive as they end).
    async fn metric_lines(&self, group: &str, metric: &str, enough: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let events = self.logs.filter_log_events().log_group_name(group).send().await;
            let lines: Vec<Value> = events
                .as_ref()
                .map(aws_sdk_cloudwatchlogs::operation::filter_log_events::FilterLogEventsOutput::events)
                .unwrap_or_default()
                .iter()
                .filter_map(|event| serde_json::from_str::<Value>(event.message()?.trim()).ok())
                .filter(|line| {
                    line["_aws"]["CloudWatchMetrics"][0]["Metrics"].as_array().is_some_and(|m| m.iter().any(|m| m["Name"] == metric))
                })
                .collect();
            if enough(&lines) || Instant::now() > deadline {
                return lines;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn executions(&self, state_machine: &str) -> Vec<aws_sdk_sfn::types::ExecutionListItem> {
        self.sfn.list_executions().state_machine_arn(state_machine).send().await.unwrap().executions().to_vec()
    }

    /// Waits for an execution whose name starts with `prefix` (and is not in `seen`) to finish.
    async fn finished(&self, state_machine: &str, prefix: &str, seen: &[String]) -> (String, ExecutionStatus, Option<Value>) {
        let done = mlops_devstack::finished(&self.sfn, state_machine, prefix, seen).await.unwrap();
        (done.arn, done.status, done.output)
    }

    async fn invoke(&self, function: &str, payload: &Value) -> (Option<String>, Value) {
        let output = self
            .lambda
            .invoke()
            .function_name(function)
            .payload(aws_sdk_lambda::primitives::Blob::new(payload.to_string()))
            .send()
            .await
            .unwrap();
        let body = output.payload().map_or(Value::Null, |p| serde_json::from_slice(p.as_ref()).unwrap_or(Value::Null));
        (output.function_error().map(str::to_string), body)
    }
}

/// Runs `mlops --root s3://BUCKET ARGS... --json` against LocalStack; returns its JSON.
fn mlops_on(localstack: &LocalStack, bucket: &str, args: &[&str]) -> Value {
    mlops_json(localstack.command(env!("CARGO_BIN_EXE_mlops")), &format!("s3://{bucket}"), args)
}

/// Runs `mlops --root ROOT ARGS... --json` on a local store; returns its JSON.
fn mlops_local(root: &str, args: &[&str]) -> Value {
    mlops_json(Command::new(env!("CARGO_BIN_EXE_mlops")), root, args)
}

/// Runs `mlops`, prepared as `command`, on the store at `root`; returns the JSON it printed.
fn mlops_json(mut command: Command, root: &str, args: &[&str]) -> Value {
    let output = command.arg("--root").arg(root).args(args).arg("--json").output().expect("running mlops");
    assert!(output.status.success(), "mlops {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("mlops {args:?} printed no JSON ({e})"))
}

/// Calls the function URL through LocalStack's gateway, which routes it by the Host header.
fn call_url(port: u16, url: &str, path: &str, body: &Value) -> (u16, Value) {
    let host = url.trim_start_matches("http://").trim_start_matches("https://").trim_end_matches('/').to_string();
    let body = body.to_string();
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let payload = response.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
    let payload = if response.to_ascii_lowercase().contains("transfer-encoding: chunked") { unchunk(payload) } else { payload.to_string() };
    (status, serde_json::from_str(&payload).unwrap_or(Value::String(payload)))
}

fn unchunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else { break };
        if size == 0 {
            break;
        }
        out.push_str(&tail[..size]);
        rest = &tail[size + 2..];
    }
    out
}

/// Rows of the shipped data with `day` in `days`, as CSV.
fn months(days: std::ops::RangeInclusive<u32>) -> String {
    let text = std::fs::read_to_string(project().join("data/bikeshare/Bikeshare.csv")).unwrap();
    let mut lines = text.lines();
    let mut out = format!("{}\n", lines.next().unwrap());
    for line in lines {
        let day: u32 = line.split(',').nth(2).unwrap().parse().unwrap();
        if days.contains(&day) {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// `csv` with a last column `padding` of `bytes` characters on every row.
fn padded(csv: &str, bytes: usize) -> String {
    let pad = "x".repeat(bytes);
    csv.lines().enumerate().map(|(i, line)| if i == 0 { format!("{line},padding\n") } else { format!("{line},{pad}\n") }).collect()
}

/// The /predict rows of a CSV of the shipped data.
fn rows(csv: &str) -> Vec<Value> {
    let mut lines = csv.lines();
    let header: Vec<String> = lines.next().unwrap().split(',').map(|h| h.trim_matches('"').to_string()).collect();
    lines
        .map(|line| {
            let mut row = serde_json::Map::new();
            for (name, value) in header.iter().zip(line.split(',')) {
                if !["casual", "registered", "bikers"].contains(&name.as_str()) {
                    let value = value.trim_matches('"');
                    row.insert(name.clone(), value.parse::<f64>().map_or_else(|_| json!(value), |n| json!(n)));
                }
            }
            Value::Object(row)
        })
        .collect()
}

#[test]
fn the_lifecycle_runs_on_aws_services_emulated_by_localstack() {
    let work = tempfile::tempdir().unwrap();
    let venv = venv("tests/localstack/install.sh");
    let localstack = LocalStack::start(&venv, work.path(), None).unwrap();
    let zips = mlops_devstack::package(work.path(), &venv.join("bin/python")).unwrap();
    let sizes: BTreeMap<&str, u64> = zips.iter().map(|(name, zip)| (*name, std::fs::metadata(zip).unwrap().len())).collect();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let config = localstack.config().await;
        let clients = Clients::new(&config);
        let outputs = mlops_devstack::deploy(&config, &localstack.endpoint(), &zips, &PARAMETERS).await.unwrap();
        let (bucket, state_machine, url) = (&outputs["DataBucket"], &outputs["StateMachineArn"], &outputs["PredictUrl"]);
        let alerts = clients.subscribe_queue("alerts", &outputs["AlertTopicArn"]).await;
        let failures = clients.subscribe_queue("failures", &outputs["FailureTopicArn"]).await;
        // `mlops --root s3://BUCKET ingest` stores the spec and uploads the file: the upload
        // starts one execution, which promotes the first model.
        // Padded with a column the spec does not know (dropped with a note) to 9 MB: 9 shards.
        let jan_apr = work.path().join("jan-apr.csv");
        let jan_apr_text = padded(&months(1..=120), 3_000);
        assert!(jan_apr_text.len() > 8 << 20);
        std::fs::write(&jan_apr, &jan_apr_text).unwrap();
        let spec = project().join("specs/bikeshare.toml");
        let uploaded_at = Instant::now();
        let ingested = mlops_on(&localstack, bucket, &["ingest", "--spec", spec.to_str().unwrap(), jan_apr.to_str().unwrap()]);
        assert_eq!((ingested["files"][0]["key"].as_str(), ingested["files"][0]["stored"].as_bool()), (Some("raw/bikeshare/jan-apr.csv"), Some(true)), "{ingested}");
        assert_eq!(clients.get(bucket, "specs/bikeshare.toml").await, std::fs::read(&spec).unwrap(), "the spec's one home is the bucket");
        let (first_arn, status, output) = clients.finished(state_machine, "upload-bikeshare-", &[]).await;
        assert_eq!(status, ExecutionStatus::Succeeded, "{output:?}\n{}", localstack.log_text());
        let output = output.unwrap();
        assert_eq!((output["promoted"].as_bool(), output["version"].as_str()), (Some(true), Some("v1")), "{output}");
        let promoted_after = uploaded_at.elapsed();
        // Prep ran as a plan of at least 8 shards on the Distributed Map, each with its output.
        let staged = clients.list(bucket, "staging/bikeshare/").await;
        let plan_key = staged.iter().find(|k| k.ends_with("/plan.json")).expect("a prep plan");
        let plan: Value = serde_json::from_slice(&clients.get(bucket, plan_key).await).unwrap();
        let shards: usize = plan["items"].as_array().unwrap().iter().map(|item| item.as_array().unwrap().len()).sum();
        assert!(shards >= 8, "{plan}");
        assert_eq!(staged.iter().filter(|k| k.ends_with("/meta.json")).count(), shards, "{staged:#?}");
        // Its rows were deduplicated in buckets, one map item each, each a part of the batch.
        let buckets = plan["buckets"].as_u64().unwrap() as usize;
        assert!(buckets >= 2, "{plan}");
        assert_eq!(staged.iter().filter(|k| k.contains("/buckets/") && k.ends_with(".json")).count(), buckets, "{staged:#?}");
        // Each prep item wrote one file per bucket for all its shards.
        let items = plan["items"].as_array().unwrap().len();
        assert_eq!(staged.iter().filter(|k| k.contains("/items/") && k.ends_with(".parquet")).count(), items * buckets, "{staged:#?}");
        let parts = clients.list(bucket, "processed/bikeshare/").await;
        assert_eq!(parts.iter().filter(|k| k.ends_with(".parquet")).count(), buckets, "{parts:#?}");
        let history = clients.sfn.get_execution_history().execution_arn(&first_arn).max_results(1000).send().await.unwrap();
        let kinds: Vec<String> = history.events().iter().map(|e| e.r#type().as_str().to_string()).collect();
        let count = |kind: &str| kinds.iter().filter(|k| *k == kind).count();
        assert_eq!((count("MapRunStarted"), count("MapRunSucceeded")), (2, 2), "the shard map and the bucket map: {kinds:?}");
        // Train ran one Map iteration per candidate, each writing its outcome.
        let candidates = ["decision_tree", "gradient_boosting", "random_forest", "ridge"];
        assert_eq!(kinds.iter().filter(|k| *k == "MapIterationSucceeded").count(), candidates.len(), "{kinds:?}");
        let outcomes = clients.list(bucket, "runs/bikeshare/").await;
        for name in candidates {
            assert!(outcomes.iter().any(|k| k.ends_with(&format!("/candidates/{name}.json"))), "{name}: {outcomes:#?}");
        }
        let pointer: Value = serde_json::from_slice(&clients.get(bucket, "registry/bikeshare/production.json").await).unwrap();
        assert_eq!(pointer["version"], "v1");
        // The boosting candidate paused at 100 and 200 rounds and resumed from each checkpoint;
        // its artifact, and the promoted model, are the bytes of one uninterrupted local fit.
        let checkpoints: Vec<&String> = staged.iter().filter(|k| k.contains("/train/") && k.contains("/gradient_boosting/checkpoint-")).collect();
        assert_eq!(checkpoints.len(), 2, "{staged:#?}");
        assert!(checkpoints.iter().any(|k| k.ends_with("checkpoint-100.bin")) && checkpoints.iter().any(|k| k.ends_with("checkpoint-200.bin")));
        let local = work.path().join("uninterrupted");
        let local_root = local.to_str().unwrap();
        mlops_local(local_root, &["ingest", "--spec", spec.to_str().unwrap(), jan_apr.to_str().unwrap()]);
        let local_run = mlops_local(local_root, &["run", "--spec", "bikeshare"]);
        assert_eq!(local_run["version"], "v1", "{local_run}");
        let deployed_boosting = outcomes.iter().find(|k| k.ends_with("/candidates/gradient_boosting.bin")).expect("the boosting artifact");
        let local_boosting = std::fs::read_dir(local.join("runs/bikeshare"))
            .unwrap()
            .map(|run| run.unwrap().path().join("candidates/gradient_boosting.bin"))
            .find(|path| path.exists())
            .expect("the local boosting artifact");
        assert!(clients.get(bucket, deployed_boosting).await == std::fs::read(&local_boosting).unwrap(), "resumed boosting differs from one fit");
        assert!(
            clients.get(bucket, "models/bikeshare/v1/model.bin").await == std::fs::read(local.join("models/bikeshare/v1/model.bin")).unwrap(),
            "the promoted model differs from the uninterrupted run's"
        );
        // Fargate training runs the same train binary outside Lambda on an input the state machine
        // wrote to the bucket: run here as the task would, it trains the candidate in one go and
        // writes the same artifact.
        let features = history
            .events()
            .iter()
            .filter_map(|e| e.state_entered_event_details())
            .find(|d| d.name() == "TrainCollect")
            .and_then(|d| d.input())
            .map(|input| serde_json::from_str::<Value>(input).unwrap())
            .expect("TrainCollect's input");
        let step_key = format!("staging/bikeshare/train/{}/gradient_boosting/step.json", features["run_id"].as_str().unwrap());
        let step = json!({ "step": "candidate", "candidate": "gradient_boosting", "features": features, "runner": "fargate" });
        clients.put(bucket, &step_key, step.to_string().into_bytes()).await;
        let task = |key: &str| {
            localstack
                .command(mlops_devstack::release_binary("train"))
                .env("MLOPS_BUCKET", bucket)
                .env("MLOPS_STEP_INPUT_KEY", key)
                .env_remove("AWS_LAMBDA_RUNTIME_API")
                .output()
                .expect("running the train binary")
        };
        let ran = task(&step_key);
        assert!(ran.status.success(), "{}", String::from_utf8_lossy(&ran.stderr));
        let answer: Value = serde_json::from_slice(&ran.stdout).expect("the task prints its outcome");
        assert!(answer["trained"]["name"] == "gradient_boosting", "{answer}");
        assert!(clients.get(bucket, deployed_boosting).await == std::fs::read(&local_boosting).unwrap(), "the task's artifact differs");
        let missing = task("staging/bikeshare/train/none/step.json");
        let stderr = String::from_utf8_lossy(&missing.stderr);
        assert!(!missing.status.success() && stderr.contains("BadInput") && stderr.contains("staging/bikeshare/train/none/step.json"), "{stderr}");

        // The function URL answers with v1.
        let later = months(121..=243);
        let traffic = rows(&later);
        let (status, answer) = call_url(localstack.port(), url, "/predict", &json!({ "rows": &traffic[..2] }));
        assert_eq!(status, 200, "{answer}\n{}", localstack.log_text());
        assert_eq!(answer["model_version"], "v1");
        assert_eq!(answer["predictions"].as_array().unwrap().len(), 2);
        let first_prediction_after = uploaded_at.elapsed();
        let (status, refused) = call_url(localstack.port(), url, "/predict", &json!({ "rows": [{ "hr": 3 }] }));
        assert_eq!(status, 422, "{refused}");
        // The requests' metrics, read back from the function's log group in CloudWatch Logs,
        // where AWS extracts Embedded Metric Format lines (LocalStack community stores the
        // lines; it does not extract metrics).
        let count = |line: &Value, name: &str| line[name].as_f64().unwrap_or(-1.0);
        let both = |lines: &[Value]| lines.iter().filter(|m| count(m, "Requests") == 1.0).count() >= 2;
        let metrics = clients.metric_lines(&format!("/aws/lambda/{STACK}-predict"), "PredictLatency", both).await;
        let served = metrics.iter().find(|m| count(m, "Requests") == 1.0 && m["ModelVersion"] == "v1" && count(m, "ClientErrors") == 0.0);
        let served = served.unwrap_or_else(|| panic!("no metric line of the first request: {metrics:#?}"));
        assert!(served["PredictLatency"].as_f64().is_some_and(|ms| ms > 0.0), "{served}");
        assert_eq!(served["Dataset"], "bikeshare", "{served}");
        assert!(metrics.iter().any(|m| count(m, "ClientErrors") == 1.0), "the 422 is counted: {metrics:#?}");

        // May to August as traffic; the drift state machine alerts on SNS and starts a retrain.
        // In bursts a little over a second apart: the log is written in several files.
        for (burst, chunks) in traffic.chunks(100).collect::<Vec<_>>().chunks(8).enumerate() {
            if burst > 0 {
                tokio::time::sleep(Duration::from_millis(1500)).await;
            }
            for chunk in chunks {
                let (status, _) = call_url(localstack.port(), url, "/predict", &json!({ "rows": chunk }));
                assert_eq!(status, 200);
            }
        }
        // The predict function writes its buffered log lines every second, off the request path.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let drift_machine = &outputs["DriftStateMachineArn"];
        let check = json!({ "dataset": "bikeshare" }).to_string();
        clients.sfn.start_execution().state_machine_arn(drift_machine).name("check-1").input(check).send().await.unwrap();
        let (_, status, report) = clients.finished(drift_machine, "check-1", &[]).await;
        assert_eq!(status, ExecutionStatus::Succeeded, "{report:?}\n{}", localstack.log_text());
        let report = report.expect("the drift check answers its report");
        assert_eq!((report["alert"].as_bool(), report["dataset_drift"].as_bool()), (Some(true), Some(true)), "{report}");
        assert_eq!(report["current_rows"], traffic.len() + 2, "every logged prediction is in the window");
        // The check ran on the Distributed Map: one summary per log file, over several rounds.
        let listed = clients.s3.list_objects_v2().bucket(bucket).prefix("staging/bikeshare/drift/").send().await.unwrap();
        let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
        let (parts, rounds) = (keys.iter().filter(|k| k.contains("/parts/")).count(), keys.iter().filter(|k| k.contains("/round-")).count());
        assert!(parts >= 2 && rounds >= 2, "{parts} summaries in {rounds} rounds: {keys:?}");
        assert_eq!(report["retrain"]["requested"], true, "{}", report["retrain"]);
        let alert = clients.messages(&alerts, Duration::from_secs(30)).await;
        assert!(alert.iter().any(|m| m["Subject"].as_str().is_some_and(|s| s.contains("drift alert"))), "no alert in the queue: {alert:?}");
        let (_, status, retrain) = clients.finished(state_machine, "drift-bikeshare-", &[]).await;
        assert_eq!(status, ExecutionStatus::Succeeded, "{retrain:?}");
        // A second check of the same version, whole in one invocation: the same window and
        // statistics as the mapped check, an alert again, but the loop guard holds the retrain.
        let (_, again) = clients.invoke(&outputs["DriftFunction"], &json!({ "dataset": "bikeshare" })).await;
        assert_eq!((again["alert"].as_bool(), again["retrain"]["requested"].as_bool()), (Some(true), Some(false)), "{}", again["retrain"]);
        assert_eq!((&again["current_rows"], &again["features"]), (&report["current_rows"], &report["features"]));

        // The labelled months arrive: a new version is promoted and served without a redeploy.
        let mut seen: Vec<String> = clients.executions(state_machine).await.iter().map(|e| e.execution_arn().to_string()).collect();
        clients.put(bucket, "raw/bikeshare/may-aug.csv", later.into_bytes()).await;
        let (arn, status, output) = clients.finished(state_machine, "upload-bikeshare-", &seen).await;
        seen.push(arn);
        assert_eq!(status, ExecutionStatus::Succeeded, "{output:?}");
        assert_eq!(output.as_ref().unwrap()["promoted"], true, "{output:?}");
        let swapped = Instant::now() + Duration::from_secs(30);
        let version = loop {
            let (_, answer) = call_url(localstack.port(), url, "/predict", &traffic[0]);
            if answer["model_version"] == "v2" || Instant::now() > swapped {
                break answer["model_version"].clone();
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        assert_eq!(version, "v2");

        // A file uploaded under batch/ is scored by the scoring state machine, in shards on its
        // Distributed Map: September to December seven times over (1.3 MB: two shards), and a
        // row that breaks the schema.
        let autumn = months(244..=365);
        let mut batch = autumn.clone();
        for _ in 0..6 {
            batch.extend(autumn.lines().skip(1).map(|line| format!("{line}\n")));
        }
        batch.push_str("4,\"Dec\",365,\"12\",0,6,0,\"clear\",warm,0.3,0.5,0.1,1,2,3\n");
        let batch_rows = batch.lines().count() - 1;
        assert!(batch.len() > 1 << 20);
        clients.put(bucket, "batch/bikeshare/autumn.csv", batch.into_bytes()).await;
        let (_, status, scored) = clients.finished(&outputs["ScoreStateMachineArn"], "score-bikeshare-", &[]).await;
        assert_eq!(status, ExecutionStatus::Succeeded, "{scored:?}\n{}", localstack.log_text());
        let scored = scored.unwrap();
        assert_eq!((scored["rows"].as_u64(), scored["rejected"].as_u64()), (Some(batch_rows as u64), Some(1)), "{scored}");
        assert_eq!((scored["version"].as_str(), scored["shards"].as_u64()), (Some("v2"), Some(2)), "{scored}");
        let scores = String::from_utf8(clients.get(bucket, "scored/bikeshare/autumn/scores.csv").await).unwrap();
        assert_eq!(scores.lines().count(), batch_rows, "the header and every row but the rejected one");
        assert!(scores.lines().next().unwrap().ends_with(",prediction_id,prediction,model_version"), "{}", &scores[..300]);
        let rejects = String::from_utf8(clients.get(bucket, "scored/bikeshare/autumn/rejects.csv").await).unwrap();
        let reject = rejects.lines().nth(1).unwrap_or_default();
        assert!(reject.starts_with(&format!("{},field 'temp': 'warm' is not a finite number", batch_rows + 1)), "{rejects}");
        let closed = clients.list(bucket, "scored/bikeshare/autumn/").await;
        assert!(closed.iter().any(|k| k.ends_with("/_SUCCESS")) && closed.iter().any(|k| k.ends_with("/summary.json")), "{closed:?}");

        // The operator's commands work on the deployed registry as they do locally.
        let models = mlops_on(&localstack, bucket, &["models", "--spec", "bikeshare"]);
        assert_eq!((models["versions"].as_array().map(Vec::len), models["production"]["version"].as_str()), (Some(2), Some("v2")), "{models}");
        let promoted = mlops_on(&localstack, bucket, &["promote", "--spec", "bikeshare", "v1"]);
        assert_eq!(promoted["version"], "v1", "{promoted}");
        let rolled_back = mlops_on(&localstack, bucket, &["rollback", "--spec", "bikeshare"]);
        assert_eq!(rolled_back["version"], "v2", "{rolled_back}");
        // A canary goes on through the pointer: the deployed function routes by it, no redeploy.
        let started = mlops_on(&localstack, bucket, &["canary", "start", "--spec", "bikeshare", "v1", "--weight", "50"]);
        assert_eq!((started["version"].as_str(), started["challenger"]["version"].as_str()), (Some("v2"), Some("v1")), "{started}");
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut answered = std::collections::BTreeSet::new();
        while answered.len() < 2 && Instant::now() < deadline {
            let (_, answer) = call_url(localstack.port(), url, "/predict", &traffic[0]);
            answered.insert(answer["model_version"].as_str().unwrap_or_default().to_string());
        }
        assert_eq!(answered, ["v1", "v2"].map(String::from).into(), "requests (each its own routing key) reach both versions");
        let status = mlops_on(&localstack, bucket, &["canary", "status", "--spec", "bikeshare"]);
        assert_eq!(status["canary"]["challenger"]["version"], "v1", "{status}");
        let stopped = mlops_on(&localstack, bucket, &["canary", "stop", "--spec", "bikeshare"]);
        assert!(stopped.get("challenger").is_none() && stopped["version"] == "v2", "{stopped}");
        let latest = mlops_on(&localstack, bucket, &["drift", "--spec", "bikeshare", "--latest"]);
        assert_eq!((latest["model_version"].as_str(), latest["alert"].as_bool()), (Some("v1"), Some(true)), "{latest}");

        // A duplicated S3 event starts nothing new.
        let head = clients.s3.head_object().bucket(bucket).key("raw/bikeshare/jan-apr.csv").send().await.unwrap();
        let event: Value = serde_json::from_str(&std::fs::read_to_string(project().join("events/trigger.json")).unwrap()).unwrap();
        let mut event = event;
        event["Records"][0]["s3"]["bucket"]["name"] = json!(bucket);
        event["Records"][0]["s3"]["object"]["key"] = json!("raw/bikeshare/jan-apr.csv");
        event["Records"][0]["s3"]["object"]["eTag"] = json!(head.e_tag().unwrap().trim_matches('"'));
        let before = clients.executions(state_machine).await.len();
        let (error, started) = clients.invoke(&format!("{STACK}-trigger"), &event).await;
        assert_eq!(error, None, "{started}");
        assert_eq!(started[0]["new"], false, "{started}");
        assert!(first_arn.contains("upload-bikeshare-"));
        assert_eq!(clients.executions(state_machine).await.len(), before);

        // A malformed upload ends in the failure notification; the champion is unchanged.
        let pointer_before = clients.get(bucket, "registry/bikeshare/production.json").await;
        clients.put(bucket, "raw/bikeshare/broken.csv", b"this is not,the bikeshare data\n1,2\n".to_vec()).await;
        let (_, status, _) = clients.finished(state_machine, "upload-bikeshare-", &seen).await;
        assert_eq!(status, ExecutionStatus::Failed);
        let failure = clients.messages(&failures, Duration::from_secs(30)).await;
        let message = failure.first().map(|m| m["Message"].as_str().unwrap_or_default().to_string()).unwrap_or_default();
        assert!(message.contains("BadInput") && message.contains("raw/bikeshare/broken.csv"), "{failure:?}");
        assert_eq!(clients.get(bucket, "registry/bikeshare/production.json").await, pointer_before, "the champion is untouched");

        let log = localstack.log_text();
        let init = |function: &str| {
            log.lines().filter(|l| l.contains(&format!("[lambda {STACK}-{function}] REPORT")) && l.contains("Init Duration")).map(str::to_string).collect::<Vec<_>>()
        };
        eprintln!(
            "{}",
            json!({
                "zip_bytes": sizes,
                "timeline_seconds": { "upload_to_promoted": promoted_after.as_secs_f64(), "upload_to_first_prediction": first_prediction_after.as_secs_f64() },
                "predict_reports": init("predict"),
                "train_reports": init("train"),
            })
        );
    });
}
