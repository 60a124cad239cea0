//! The AWS stack on LocalStack in host mode (no Docker), with this project's Lambda executor
//! plugin (`tests/localstack`): started on a loopback port, `infra/template.yaml` deployed with
//! the functions' zips. One home for the end-to-end test (`tests/aws_localstack.rs`) and for
//! `dev-stack`, the setup that `cargo lambda watch` runs against.

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use aws_config::SdkConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_sfn::types::ExecutionStatus;
use serde_json::Value;

/// The functions of the template, each a binary of the workspace zipped as `bootstrap`.
pub const FUNCTIONS: [&str; 8] = ["prep", "features", "train", "register", "drift", "trigger", "predict", "score"];
/// The bucket the template takes its code, template and state machines from.
pub const CODE_BUCKET: &str = "mlops-code";
/// The stack's name.
pub const STACK: &str = "mlops";
/// The region LocalStack's resources are in.
pub const REGION: &str = "us-east-1";

/// The project directory.
pub fn project() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The venv that runs LocalStack, set up (idempotently) by `tests/localstack/install.sh`.
pub fn localstack_venv() -> Result<PathBuf> {
    let script = project().join("tests/localstack/install.sh");
    let output = Command::new("bash").arg(&script).stderr(Stdio::inherit()).output().with_context(|| script.display().to_string())?;
    if !output.status.success() {
        bail!("{}: setting up LocalStack's venv failed", script.display());
    }
    Ok(PathBuf::from(String::from_utf8(output.stdout)?.trim()))
}

/// Builds every binary of the workspace in release (as `bench/run.sh` does: one release build
/// serves both) and zips each function's as `bootstrap` into `work`; returns the zips by name.
pub fn package(work: &Path, python: &Path) -> Result<BTreeMap<&'static str, PathBuf>> {
    let mut build = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    // Under cargo (a test, `cargo run`) the CARGO_* variables of this package are set; build
    // scripts (ring's) rerun when those change, so pass on none of them and share the cache.
    for (key, _) in std::env::vars_os() {
        if key.to_str().is_some_and(|k| k.starts_with("CARGO_") && k != "CARGO_TARGET_DIR" && k != "CARGO_HOME") {
            build.env_remove(key);
        }
    }
    build.current_dir(project()).args(["build", "--release", "--locked", "--bins"]);
    if !build.status().context("running cargo")?.success() {
        bail!("building the functions failed");
    }
    let script = "import sys, zipfile\nwith zipfile.ZipFile(sys.argv[2], 'w', zipfile.ZIP_DEFLATED, compresslevel=9) as z:\n    info = zipfile.ZipInfo('bootstrap')\n    info.external_attr = 0o755 << 16\n    info.compress_type = zipfile.ZIP_DEFLATED\n    z.writestr(info, open(sys.argv[1], 'rb').read())\n";
    FUNCTIONS
        .into_iter()
        .map(|name| {
            let zip = work.join(format!("{name}.zip"));
            let binary = release_binary(name);
            if !Command::new(python).args(["-c", script]).arg(&binary).arg(&zip).status()?.success() {
                bail!("zipping {}", binary.display());
            }
            Ok((name, zip))
        })
        .collect()
}

/// A binary of the workspace's release build.
pub fn release_binary(name: &str) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| project().join("target"), PathBuf::from).join("release").join(name)
}

/// The zips `cargo lambda build --output-format zip` wrote under `lambda_dir`
/// (`NAME/bootstrap.zip`), by function name.
pub fn cargo_lambda_zips(lambda_dir: &Path) -> Result<BTreeMap<&'static str, PathBuf>> {
    FUNCTIONS
        .into_iter()
        .map(|name| {
            let zip = lambda_dir.join(name).join("bootstrap.zip");
            if !zip.is_file() {
                bail!("{}: no such zip; run cargo lambda build --release --output-format zip", zip.display());
            }
            Ok((name, zip))
        })
        .collect()
}

/// LocalStack in host mode on a loopback port. Stopped (its process group, by PID, killed if it
/// must) on drop, unless [`LocalStack::detach`]ed.
pub struct LocalStack {
    child: Option<Child>,
    port: u16,
    log: PathBuf,
}

impl LocalStack {
    /// Starts LocalStack from `venv` on `port` (a free one when `None`), its state and log in
    /// `work`, and waits until it answers.
    pub fn start(venv: &Path, work: &Path, port: Option<u16>) -> Result<LocalStack> {
        let port = match port {
            Some(port) => {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    bail!("127.0.0.1:{port} is in use (a LocalStack already running? stop it, or pick another port)");
                }
                port
            }
            None => std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port(),
        };
        let log = work.join("localstack.log");
        let child = Command::new(venv.join("bin/python"))
            .args(["-m", "localstack.runtime.main"])
            .env("GATEWAY_SERVER", "hypercorn")
            .env("GATEWAY_LISTEN", format!("127.0.0.1:{port}"))
            .env("OVERRIDE_IN_DOCKER", "0")
            .env("LAMBDA_RUNTIME_EXECUTOR", "local-process")
            .env("SERVICES", "s3,sqs,sns,lambda,stepfunctions,cloudformation,events,iam,sts,logs,cloudwatch")
            .env("SKIP_SSL_CERT_DOWNLOAD", "1")
            .env("DISABLE_EVENTS", "1")
            .env("LOCALSTACK_VOLUME_DIR", work.join("volume"))
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log)?)
            .stderr(Stdio::from(std::fs::File::options().append(true).open(&log)?))
            .process_group(0)
            .spawn()
            .context("starting LocalStack")?;
        let mut localstack = LocalStack { child: Some(child), port, log };
        let agent: ureq::Agent = ureq::Agent::config_builder().timeout_global(Some(Duration::from_secs(2))).build().into();
        let deadline = Instant::now() + Duration::from_secs(120);
        while agent.get(format!("{}/_localstack/health", localstack.endpoint())).call().is_err() {
            let exited = localstack.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() > deadline {
                bail!("LocalStack did not start ({}):\n{}", localstack.log.display(), localstack.log_text());
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        Ok(localstack)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The environment that points an AWS SDK or CLI at this LocalStack, with its test
    /// credentials.
    pub fn aws_environment(&self) -> [(&'static str, String); 4] {
        [
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_REGION", REGION.to_string()),
            ("AWS_ACCESS_KEY_ID", "test".to_string()),
            ("AWS_SECRET_ACCESS_KEY", "test".to_string()),
        ]
    }

    /// A command for `program` that talks to this LocalStack.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new(program);
        command.envs(self.aws_environment()).env_remove("AWS_PROFILE");
        command
    }

    /// The SDK configuration for this LocalStack.
    pub async fn config(&self) -> SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(self.endpoint())
            .region(aws_config::Region::new(REGION))
            .credentials_provider(aws_sdk_s3::config::Credentials::new("test", "test", None, None, "localstack"))
            .load()
            .await
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Leaves LocalStack running past this process; returns its PID (its process group's).
    pub fn detach(mut self) -> u32 {
        self.child.take().map_or(0, |child| child.id())
    }
}

impl Drop for LocalStack {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        stop_group(child.id(), || matches!(child.try_wait(), Ok(Some(_))));
        let _ = child.wait();
    }
}

/// Stops the process group `pid` leads: TERM, then KILL after 10 s if `exited` still says no.
pub fn stop_group(pid: u32, mut exited: impl FnMut() -> bool) {
    let group = format!("-{pid}");
    let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if exited() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
}

/// An S3 client with path-style addressing, as LocalStack needs.
pub fn s3_client(config: &SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(config).force_path_style(true).build())
}

/// Deploys the template as `aws cloudformation deploy --s3-bucket` does: the zips, the state
/// machines and the template itself into the code bucket (the template is past the 51,200
/// bytes a template body may have), then the stack with `parameters`. Returns its outputs.
pub async fn deploy(
    config: &SdkConfig,
    endpoint: &str,
    zips: &BTreeMap<&str, PathBuf>,
    parameters: &[(&str, &str)],
) -> Result<BTreeMap<String, String>> {
    let s3 = s3_client(config);
    let cloudformation = aws_sdk_cloudformation::Client::new(config);
    s3.create_bucket().bucket(CODE_BUCKET).send().await.context("creating the code bucket")?;
    let mut uploads: Vec<(String, PathBuf)> = zips.iter().map(|(name, zip)| (format!("mlops/{name}.zip"), zip.clone())).collect();
    uploads.push(("mlops/template.yaml".into(), project().join("infra/template.yaml")));
    for machine in ["pipeline", "drift", "score"] {
        uploads.push((format!("mlops/{machine}.asl.json"), project().join(format!("statemachine/{machine}.asl.json"))));
    }
    for (key, path) in uploads {
        let body = ByteStream::from(std::fs::read(&path).with_context(|| path.display().to_string())?);
        s3.put_object().bucket(CODE_BUCKET).key(&key).body(body).send().await.with_context(|| format!("uploading {key}"))?;
    }
    let mut create = cloudformation
        .create_stack()
        .stack_name(STACK)
        .template_url(format!("{endpoint}/{CODE_BUCKET}/mlops/template.yaml"))
        .parameters(parameter("CodeBucket", CODE_BUCKET))
        .capabilities(aws_sdk_cloudformation::types::Capability::CapabilityIam);
    for (key, value) in parameters {
        create = create.parameters(parameter(key, value));
    }
    create.send().await.context("creating the stack")?;
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let stacks = cloudformation.describe_stacks().stack_name(STACK).send().await?;
        let stack = stacks.stacks().first().context("the stack is not there")?;
        let status = stack.stack_status().map(|s| s.as_str().to_string()).unwrap_or_default();
        if status == "CREATE_COMPLETE" {
            return Ok(stack.outputs().iter().filter_map(|o| Some((o.output_key()?.to_string(), o.output_value()?.to_string()))).collect());
        }
        if status.contains("FAILED") || status.contains("ROLLBACK") || Instant::now() > deadline {
            let events = cloudformation.describe_stack_events().stack_name(STACK).send().await?;
            let reasons: Vec<String> = events
                .stack_events()
                .iter()
                .filter_map(|e| Some(format!("{}: {}", e.logical_resource_id()?, e.resource_status_reason()?)))
                .collect();
            bail!("the stack is {status}: {reasons:#?}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn parameter(key: &str, value: &str) -> aws_sdk_cloudformation::types::Parameter {
    aws_sdk_cloudformation::types::Parameter::builder().parameter_key(key).parameter_value(value).build()
}

/// A finished execution: its ARN, status and output.
pub struct Finished {
    pub arn: String,
    pub status: ExecutionStatus,
    pub output: Option<Value>,
}

/// Waits (up to 10 minutes) for an execution of `state_machine` whose name starts with
/// `prefix`, and that is not in `seen`, to finish.
pub async fn finished(sfn: &aws_sdk_sfn::Client, state_machine: &str, prefix: &str, seen: &[String]) -> Result<Finished> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let listed = sfn.list_executions().state_machine_arn(state_machine).send().await?;
        for execution in listed.executions() {
            if execution.name().starts_with(prefix)
                && !seen.iter().any(|s| s == execution.execution_arn())
                && execution.status() != &ExecutionStatus::Running
            {
                let described = sfn.describe_execution().execution_arn(execution.execution_arn()).send().await?;
                let output = described.output().and_then(|o| serde_json::from_str(o).ok());
                return Ok(Finished { arn: execution.execution_arn().to_string(), status: execution.status().clone(), output });
            }
        }
        if Instant::now() > deadline {
            bail!("no execution {prefix}* of {state_machine} finished in 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
