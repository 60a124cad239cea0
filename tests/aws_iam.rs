//! Least privilege, proven by a policy evaluator rather than by reading: moto's server with its
//! IAM checks on (`tests/checks/iam_setup.py`). Each stage runs in this process, as its function
//! would, under the credentials of a user that carries exactly its role's policies from
//! `infra/template.yaml`, through one lifecycle: upload, trigger, prep, features, train,
//! register (promotion), predict, batch scoring (its plan, map item and finish steps), drift (its
//! plan, map item and reduce steps; alert and retrain), a second run on new data, and challengers'
//! trials.
//!
//! The removal check drops each statement our code relies on, one at a time, and requires the
//! lifecycle to fail. Statements that AWS services use on a function's behalf (CloudWatch Logs
//! for the Lambda runtime, the trigger's on-failure destination, the state machine's role) are
//! exercised by LocalStack's wiring, not by this code, and are listed as such.

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mlops_aws::executions::Executions;
use mlops_aws::s3::S3Store;
use mlops_aws::sns::SnsNotifier;
use mlops_core::canary::Mode;
use mlops_core::contracts::{BucketItem, CandidateOutcome, DriftItem, DriftRound, RunRequest, ScoreItem, ScoreRequest, ShardItem, Trigger};
use mlops_core::{Registry, load_spec};
use mlops_core::{Request, Service, ServiceOptions};
use mlops_core::{Spec, Store};
use mlops_pipeline::monitor;
use mlops_pipeline::monitor::logs::LogSizing;
use mlops_pipeline::score::sharded;
use mlops_pipeline::stages;
use mlops_pipeline::stages::shards::Sizing;
use serde_json::{Value, json};

use crate::deployment_checks::checks_python;
use crate::harness::{Workspace, project, toy_csv, toy_spec};

/// moto's server (`tests/checks/moto_server.py`) on a free loopback port, killed with its
/// process group on drop.
struct Moto {
    child: Child,
    endpoint: String,
}

impl Moto {
    fn start(python: &Path) -> Moto {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(python)
            .arg(project().join("tests/checks/moto_server.py"))
            .arg(port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("starting moto's server");
        let moto = Moto { child, endpoint: format!("http://127.0.0.1:{port}") };
        let agent: ureq::Agent = ureq::Agent::config_builder().timeout_global(Some(Duration::from_secs(2))).build().into();
        let deadline = Instant::now() + Duration::from_secs(60);
        while agent.get(format!("{}/moto-api/", moto.endpoint)).call().is_err() {
            assert!(Instant::now() < deadline, "moto's server did not start");
            std::thread::sleep(Duration::from_millis(200));
        }
        moto
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", self.child.id())]).status();
        let _ = self.child.wait();
    }
}

/// Users made for the roles, and what each statement of each role grants.
struct Setup {
    credentials: BTreeMap<String, (String, String)>,
    statements: BTreeMap<String, Vec<Value>>,
    bucket: String,
    alert_topic: String,
    state_machine: String,
    score_state_machine: String,
}

/// Resets moto, creates the resources and one user per role (less `without`, a role and the
/// index of a statement), and turns IAM checks on.
fn set_up(python: &Path, moto: &Moto, without: Option<(&str, usize)>) -> Setup {
    let mut command = Command::new(python);
    command.arg(project().join("tests/checks/iam_setup.py")).arg(&moto.endpoint).arg(project().join("infra/template.yaml"));
    if let Some((role, index)) = without {
        command.args(["--without", &format!("{role}:{index}")]);
    }
    let output = command.output().expect("running iam_setup.py");
    assert!(output.status.success(), "iam_setup.py: {}", String::from_utf8_lossy(&output.stderr));
    let answer: Value = serde_json::from_slice(&output.stdout).expect("iam_setup.py prints JSON");
    let credentials = answer["credentials"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(role, c)| (role.clone(), (c["key"].as_str().unwrap().to_string(), c["secret"].as_str().unwrap().to_string())))
        .collect();
    let statements =
        answer["statements"].as_object().unwrap().iter().map(|(role, s)| (role.clone(), s.as_array().unwrap().clone())).collect();
    let resource = |name: &str| answer["resources"][name].as_str().unwrap().to_string();
    Setup {
        credentials,
        statements,
        bucket: resource("bucket"),
        alert_topic: resource("alert_topic"),
        state_machine: resource("state_machine"),
        score_state_machine: resource("score_state_machine"),
    }
}

/// Clients for the users of one setup. Their requests run on `runtime`; the stores block on
/// it, so they are called from this (non-async) thread.
struct Identities<'a> {
    setup: &'a Setup,
    endpoint: &'a str,
    runtime: &'a tokio::runtime::Runtime,
}

impl Identities<'_> {
    fn config(&self, role: &str) -> aws_config::SdkConfig {
        let (key, secret) = &self.setup.credentials[role];
        self.runtime.block_on(
            aws_config::defaults(aws_config::BehaviorVersion::latest())
                .endpoint_url(self.endpoint)
                .region(aws_config::Region::new("us-east-1"))
                .credentials_provider(aws_sdk_s3::config::Credentials::new(key, secret, None, None, "moto"))
                .load(),
        )
    }

    fn store(&self, role: &str) -> S3Store {
        let _inside = self.runtime.enter();
        S3Store::new(&self.config(role), &self.setup.bucket)
    }

    /// The dataset's spec, read as `role` reads it.
    fn spec(&self, role: &str) -> Result<Spec, String> {
        load_spec(&self.store(role), "toy").map_err(|e| format!("{role}: {e}"))
    }
}

/// One run of the state machine's stages, each under its own role.
fn run_stages(ids: &Identities, request: &RunRequest) -> Result<bool, String> {
    // Prep's five steps, as the state machine runs them around its two Distributed Maps.
    let (prep_store, prep_spec) = (ids.store("PrepRole"), ids.spec("PrepRole")?);
    let planned = stages::prep_plan(&prep_store, &prep_spec, request, Sizing::default())
        .map_err(|e| format!("prep plan: [{}] {e}", e.kind().name()))?;
    for item in 0..planned.items {
        let item = ShardItem { dataset: planned.dataset.clone(), plan: planned.plan.clone(), item };
        stages::prep_shard(&prep_store, &prep_spec, &item).map_err(|e| format!("prep shard: [{}] {e}", e.kind().name()))?;
    }
    let merged = stages::prep_merge(&prep_store, &prep_spec, &planned).map_err(|e| format!("prep merge: [{}] {e}", e.kind().name()))?;
    for bucket in 0..merged.buckets {
        let item = BucketItem { dataset: merged.dataset.clone(), plan: merged.plan.clone(), bucket };
        stages::prep_bucket(&prep_store, &prep_spec, &item).map_err(|e| format!("prep bucket: [{}] {e}", e.kind().name()))?;
    }
    let prepped = stages::prep_finish(&prep_store, &prep_spec, &merged).map_err(|e| format!("prep finish: [{}] {e}", e.kind().name()))?;
    let featured = stages::features(&ids.store("FeaturesRole"), &ids.spec("FeaturesRole")?, prepped)
        .map_err(|e| format!("features: [{}] {e}", e.kind().name()))?;
    // Train's two steps: one per candidate (a Map iteration each), then collect. Boosting runs
    // 100 rounds per invocation, so its checkpoints are written and read under the role too.
    let (train_store, train_spec) = (ids.store("TrainRole"), ids.spec("TrainRole")?);
    for name in &featured.candidate_names {
        let mut resume = None;
        while let CandidateOutcome::Paused(paused) =
            stages::train_candidate_step(&train_store, &train_spec, &featured, name, resume.as_ref(), NonZeroUsize::new(100))
                .map_err(|e| format!("train {name}: {e}"))?
        {
            resume = Some(paused);
        }
    }
    let trained =
        stages::train_collect(&train_store, &train_spec, featured).map_err(|e| format!("train collect: [{}] {e}", e.kind().name()))?;
    let (registered, _) = stages::register(&ids.store("RegisterRole"), &ids.spec("RegisterRole")?, trained)
        .map_err(|e| format!("register: [{}] {e}", e.kind().name()))?;
    Ok(registered.promoted)
}

/// The lifecycle; the error names the stage that was refused.
fn lifecycle(ids: &Identities, spec_text: &str) -> Result<(), String> {
    let operator = ids.store("Operator");
    operator.put("specs/toy.toml", spec_text.as_bytes()).map_err(|e| format!("operator: [{}] {e}", e.kind().name()))?;
    operator.put("raw/toy/first.csv", toy_csv(300, 0).as_bytes()).map_err(|e| format!("operator: [{}] {e}", e.kind().name()))?;

    // The trigger starts an execution for the upload.
    let _inside = ids.runtime.enter();
    let executions = Executions::new(&ids.config("TriggerRole"), &ids.setup.state_machine);
    let request = RunRequest { dataset: "toy".into(), keys: vec!["raw/toy/first.csv".into()], trigger: Trigger::Upload, id: None };
    executions.start("upload-first", &request).map_err(|e| format!("trigger: [{}] {e}", e.kind().name()))?;
    if !run_stages(ids, &request)? {
        return Err("the first model was not promoted".into());
    }

    // /predict answers and logs drifted traffic.
    let service = Service::new(Arc::new(ids.store("PredictRole")), "toy", ServiceOptions::default());
    if service.version().as_deref() != Some("v1") {
        return Err(format!("predict: serves {:?}, not v1 (the registry could not be read)", service.version()));
    }
    for chunk in (0..400).collect::<Vec<usize>>().chunks(100) {
        let rows: Vec<Value> = chunk
            .iter()
            .map(|i| json!({ "x": 40.0 + (i % 89) as f64 / 7.0, "group": "blue", "when": format!("2024-03-{:02} {:02}:00:00", 1 + i % 28, i % 24) }))
            .collect();
        let answer = service.handle(&Request {
            method: "POST".into(),
            path: "/predict".into(),
            body: json!({ "rows": rows }).to_string().into_bytes(),
            request_id: None,
        });
        if answer.status != 200 {
            return Err(format!("predict: {} {}", answer.status, String::from_utf8_lossy(&answer.body)));
        }
    }
    service.flush_logs().map_err(|e| format!("predict: writing the inference log: [{}] {e}", e.kind().name()))?;
    batch_scoring(ids, &operator)?;

    // The drift check, in the steps the drift state machine runs (plan, each map item of each
    // round, reduce), alerts on SNS and starts a retrain.
    let report = drift_check(ids)?;
    if !(report.alert && report.retrain.requested) {
        return Err(format!("drift: no alert and retrain ({})", report.retrain.reason));
    }
    // New data arrives; the retrain's stages run again and register a second version.
    operator.put("raw/toy/second.csv", toy_csv(600, 300).as_bytes()).map_err(|e| format!("operator: [{}] {e}", e.kind().name()))?;
    let request = RunRequest { dataset: "toy".into(), keys: Vec::new(), trigger: Trigger::Drift, id: None };
    run_stages(ids, &request)?;
    challenger_trials(ids, &operator)
}

/// A file uploaded under batch/ is scored: the trigger starts the scoring state machine, whose
/// steps (plan, each map item, finish) run under the score function's role.
fn batch_scoring(ids: &Identities, operator: &S3Store) -> Result<(), String> {
    let key = "batch/toy/march.csv";
    // Rows like the drifted traffic /predict answered, and one bad row.
    let mut csv = String::from("id,x,group,when\n");
    for i in 0..3_000u32 {
        csv.push_str(&format!("{},{},blue,2024-03-{:02} {:02}:00:00\n", 10_000 + i, 40.0 + f64::from(i % 89) / 7.0, 1 + i % 28, i % 24));
    }
    csv.push_str("13000,not a number,blue,2024-03-01 00:00:00\n");
    operator.put(key, csv.as_bytes()).map_err(|e| format!("operator: [{}] {e}", e.kind().name()))?;
    let request = ScoreRequest { dataset: "toy".into(), key: key.into(), id: None };
    Executions::new(&ids.config("TriggerRole"), &ids.setup.score_state_machine)
        .start("score-march", &request)
        .map_err(|e| format!("trigger: [{}] {e}", e.kind().name()))?;
    // The function reads the dataset's spec first, as every stage does.
    let (store, _spec) = (ids.store("ScoreRole"), ids.spec("ScoreRole")?);
    let failed = |step: &'static str| move |e: mlops_pipeline::PipelineError| format!("score {step}: [{}] {e}", e.kind().name());
    let sizing = Sizing { shard_bytes: 20_000, shards_per_item: 2, ..Sizing::default() };
    let planned = sharded::plan(&store, &request, sizing).map_err(failed("plan"))?;
    for item in 0..planned.items {
        sharded::score_item(&store, &ScoreItem { dataset: "toy".into(), plan: planned.plan.clone(), item }).map_err(failed("shard"))?;
    }
    // A shard that is missing must read as missing, not as denied.
    let partial = sharded::plan(&store, &request, sizing).map_err(failed("plan"))?;
    match sharded::finish(&store, &partial) {
        Err(error) if error.to_string().contains("has no output") => {}
        other => return Err(format!("score finish: a plan whose shards never ran gave {other:?}")),
    }
    let scored = sharded::finish(&store, &planned).map_err(failed("finish"))?;
    if (scored.shards < 2, scored.summary.scored, scored.summary.rejected) != (false, 3_000, 1) {
        return Err(format!("score: {scored:?}"));
    }
    Ok(())
}

/// The drift check, in the steps the drift state machine runs (plan, each map item of each
/// round, reduce).
fn drift_check(ids: &Identities) -> Result<Box<mlops_core::contracts::DriftReport>, String> {
    let drift = ids.config("DriftRole");
    let (store, spec) = (ids.store("DriftRole"), ids.spec("DriftRole")?);
    let (notifier, retrainer) = (SnsNotifier::new(&drift, &ids.setup.alert_topic), Executions::new(&drift, &ids.setup.state_machine));
    let failed = |e: mlops_pipeline::PipelineError| format!("drift: [{}] {e}", e.kind().name());
    let mut planned = monitor::plan_check(&store, &spec, LogSizing::default(), 2).map_err(failed)?;
    loop {
        // The items the Distributed Map reads (the state machine's role reads them on AWS).
        let items: Vec<Value> = mlops_core::JsonStore::read_json(&store, &planned.items_key)
            .map_err(|e| format!("drift: [{}] {e}", e.kind().name()))?
            .unwrap_or_default();
        for item in items {
            let item = DriftItem { dataset: "toy".into(), check: planned.check.clone(), item: item["item"].as_u64().unwrap_or(0) as usize };
            monitor::logs::summarize_item(&store, &item).map_err(failed)?;
        }
        match monitor::reduce_check(&store, &spec, &planned, &notifier, &retrainer).map_err(failed)? {
            DriftRound::Next(next) => planned = next,
            DriftRound::Done(report) => return Ok(report),
        }
    }
}

/// One-row requests with the request ids `name-0` to `name-{n-1}`: their answers.
fn predict_rows(service: &Service, name: &str, n: usize) -> Result<Vec<Value>, String> {
    (0..n)
        .map(|i| {
            let row =
                json!({ "x": (i % 89) as f64 / 7.0, "group": "red", "when": format!("2024-03-{:02} {:02}:00:00", 1 + i % 28, i % 24) });
            let answer = service.handle(&Request {
                method: "POST".into(),
                path: "/predict".into(),
                body: row.to_string().into_bytes(),
                request_id: Some(format!("{name}-{i}")),
            });
            match answer.status {
                200 => serde_json::from_slice(&answer.body).map_err(|e| format!("predict: {e}")),
                status => Err(format!("predict: {status} {}", String::from_utf8_lossy(&answer.body))),
            }
        })
        .collect()
}

/// Challengers' trials, each ending in a move of the pointer under the role that decides it:
/// the drift check promotes a canary its delayed labels favour, and /predict withdraws one past
/// the spec's latency bound.
fn challenger_trials(ids: &Identities, operator: &S3Store) -> Result<(), String> {
    let registry = Registry::new(operator, "toy");
    let operator_error = |e: mlops_core::CoreError| format!("operator: [{}] {e}", e.kind().name());
    let production = || registry.production().map_err(operator_error)?.ok_or_else(|| "no production model".to_string());
    let (champion, etag) = production()?;
    let other = if champion.version == "v1" { "v2" } else { "v1" };
    registry.start_challenger(other, Mode::Canary { weight: 50 }, "the lifecycle", None, &etag).map_err(operator_error)?;
    let service = Service::new(Arc::new(ids.store("PredictRole")), "toy", ServiceOptions::default());
    let answers = predict_rows(&service, "trial", 200)?;
    service.flush_logs().map_err(|e| format!("predict: writing the inference log: [{}] {e}", e.kind().name()))?;
    // Labels the canary predicted exactly and the champion missed by 5.
    let mut labels = String::from("id,y\n");
    for answer in &answers {
        let predicted = answer["predictions"][0].as_f64().unwrap_or_default();
        let miss = if answer["model_version"] == other { 0.0 } else { 5.0 };
        labels.push_str(&format!("{},{}\n", answer["prediction_ids"][0].as_str().unwrap_or_default(), predicted + miss));
    }
    operator.put("feedback/toy/trial.csv", labels.as_bytes()).map_err(|e| format!("operator: [{}] {e}", e.kind().name()))?;
    let report = drift_check(ids)?;
    let action = report.canary.as_ref().and_then(|trial| trial.action.clone());
    if action.as_deref() != Some("promoted") {
        return Err(format!("drift: the canary {other} was not promoted ({action:?})"));
    }

    // The demoted version is tried again, on nearly every key, and passes the latency bound.
    let (promoted, etag) = production()?;
    let demoted = if promoted.version == "v1" { "v2" } else { "v1" };
    registry.start_challenger(demoted, Mode::Canary { weight: 99 }, "the lifecycle", None, &etag).map_err(operator_error)?;
    let service = Service::new(Arc::new(ids.store("PredictRole")), "toy", ServiceOptions::default());
    predict_rows(&service, "guarded", 200)?;
    match production()?.0.challenger {
        None => Ok(()),
        Some(challenger) => Err(format!("predict: the withdrawal of {} past its latency bound is not in the pointer", challenger.version)),
    }
}

struct Fixture {
    python: std::path::PathBuf,
    moto: Moto,
    runtime: tokio::runtime::Runtime,
    spec_text: String,
    _workspace: Workspace,
}

impl Fixture {
    fn new() -> Fixture {
        let python = checks_python();
        let moto = Moto::start(&python);
        let workspace = Workspace::new();
        // Challengers are judged on 50 labels each, and withdrawn past a latency no model keeps
        // once they have answered 150 requests.
        let spec_text = std::fs::read_to_string(toy_spec(&workspace)).unwrap()
            + "\n[promotion.canary]\nmin_labels = 50\nmax_p99_ms = 0.000001\nguard_requests = 150\n";
        Fixture { python, moto, runtime: tokio::runtime::Runtime::new().unwrap(), spec_text, _workspace: workspace }
    }

    fn lifecycle(&self, without: Option<(&str, usize)>) -> (Setup, Result<(), String>) {
        let setup = set_up(&self.python, &self.moto, without);
        let result = lifecycle(&Identities { setup: &setup, endpoint: &self.moto.endpoint, runtime: &self.runtime }, &self.spec_text);
        (setup, result)
    }
}

/// Statements that AWS services use for a function, not the function's code.
fn used_by_a_service(role: &str, statement: &Value) -> Option<&'static str> {
    let actions: Vec<&str> = statement["actions"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    if statement["by_lambda"].as_bool() == Some(true) {
        Some("CloudWatch Logs, written by the Lambda runtime")
    } else if role == "TriggerRole" && actions == ["sns:Publish"] {
        Some("the on-failure destination, published by Lambda")
    } else if ["StateMachineRole", "DriftStateMachineRole", "ScoreStateMachineRole"].contains(&role) {
        Some("Step Functions (the state machine's own role)")
    } else if role == "DriftScheduleRole" {
        Some("EventBridge, starting the drift state machine on the schedule")
    } else {
        None
    }
}

#[test]
fn each_stage_runs_under_exactly_its_roles_policies_and_no_statement_is_spare() {
    let fixture = Fixture::new();
    let (setup, result) = fixture.lifecycle(None);
    result.expect("the lifecycle under the template's roles");

    // Every statement the code relies on is needed: without it the lifecycle fails.
    let mut table = Vec::new();
    let mut spare = Vec::new();
    for (role, statements) in &setup.statements {
        for statement in statements {
            let index = statement["index"].as_u64().unwrap() as usize;
            if let Some(user) = used_by_a_service(role, statement) {
                table.push(format!("{role}[{index}] {}: used by {user}", statement["actions"]));
                continue;
            }
            let (_, result) = fixture.lifecycle(Some((role, index)));
            match result {
                Err(error) => table.push(format!("{role}[{index}] {} removed: {error}", statement["actions"])),
                Ok(()) => spare.push(format!("{role}[{index}] {}", statement["actions"])),
            }
        }
    }
    eprintln!("{}", table.join("\n"));
    // A permission taken away is the deployment's fault: never retried as if it might pass.
    let retried: Vec<&String> = table.iter().filter(|line| line.contains("[Transient]")).collect();
    assert!(retried.is_empty(), "a refused permission read as transient: {retried:#?}");
    assert!(spare.is_empty(), "the lifecycle passes without these statements, so they grant more than the code needs: {spare:#?}");
}
