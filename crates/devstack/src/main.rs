//! `dev-stack`: the AWS stack for local development. `up` starts LocalStack in host mode on
//! loopback, deploys `infra/template.yaml` with the functions' zips (as the end-to-end test
//! does), uploads the shipped spec and data (the upload runs the pipeline on the stack, so a
//! production model exists), and writes the environment `cargo lambda watch --env-file` reads;
//! `down` stops LocalStack.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use aws_sdk_sfn::types::ExecutionStatus;
use clap::{Parser, Subcommand};
use mlops_devstack::{LocalStack, finished};

#[derive(Parser)]
#[command(name = "dev-stack", about = "The AWS stack on LocalStack for cargo lambda watch")]
struct Cli {
    /// Where LocalStack's state, log and PID and the environment file go.
    #[arg(long, default_value = ".dev", global = true)]
    dir: PathBuf,
    #[command(subcommand)]
    command: Action,
}

#[derive(Subcommand)]
enum Action {
    /// Starts LocalStack, deploys the stack, uploads the spec and data, writes DIR/env.
    Up {
        /// LocalStack's port on 127.0.0.1.
        #[arg(long, default_value_t = 4566)]
        port: u16,
        /// The zips `cargo lambda build --release --output-format zip` wrote (its lambda
        /// directory, `$CARGO_TARGET_DIR/lambda`); without it the release binaries are built
        /// and zipped here.
        #[arg(long)]
        zips: Option<PathBuf>,
    },
    /// Stops the LocalStack that `up` started.
    Down,
}

/// The dataset the shipped spec and data describe.
const DATASET: &str = "bikeshare";

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Action::Up { port, zips } => up(&cli.dir, port, zips.as_deref()),
        Action::Down => down(&cli.dir),
    }
}

fn up(dir: &Path, port: u16, zips: Option<&Path>) -> Result<()> {
    if let Some(pid) = running(dir)? {
        bail!("the dev stack of {} is up (LocalStack's PID {pid}): run dev-stack down first", dir.display());
    }
    std::fs::create_dir_all(dir).with_context(|| dir.display().to_string())?;
    let dir = dir.canonicalize()?;
    let venv = mlops_devstack::localstack_venv()?;
    let zips = match zips {
        Some(lambda_dir) => mlops_devstack::cargo_lambda_zips(lambda_dir)?,
        None => mlops_devstack::package(&dir, &venv.join("bin/python"))?,
    };
    eprintln!("starting LocalStack on 127.0.0.1:{port} (log: {})", dir.join("localstack.log").display());
    let localstack = LocalStack::start(&venv, &dir, Some(port))?;
    let runtime = tokio::runtime::Runtime::new()?;
    let outputs = runtime.block_on(async {
        let config = localstack.config().await;
        eprintln!("deploying infra/template.yaml");
        let outputs = mlops_devstack::deploy(&config, &localstack.endpoint(), &zips, &[]).await?;
        let bucket = outputs.get("DataBucket").context("the stack has no DataBucket output")?.clone();
        let sfn = aws_sdk_sfn::Client::new(&config);
        eprintln!("uploading specs/{DATASET}.toml and data/{DATASET}/Bikeshare.csv to s3://{bucket}/raw/: the pipeline runs");
        upload(&config, &bucket, "raw").await?;
        let pipeline = finished(&sfn, &outputs["StateMachineArn"], &format!("upload-{DATASET}-"), &[]).await?;
        if pipeline.status != ExecutionStatus::Succeeded {
            bail!("the pipeline's execution {} is {}: {:?}\n{}", pipeline.arn, pipeline.status, pipeline.output, localstack.log_text());
        }
        eprintln!("the pipeline promoted {}", pipeline.output.as_ref().and_then(|o| o["version"].as_str()).unwrap_or("nothing"));
        eprintln!("uploading the data to s3://{bucket}/batch/ for scoring: the scoring state machine runs");
        upload(&config, &bucket, "batch").await?;
        let scoring = finished(&sfn, &outputs["ScoreStateMachineArn"], "score-", &[]).await?;
        if scoring.status != ExecutionStatus::Succeeded {
            bail!("the scoring execution {} is {}: {:?}", scoring.arn, scoring.status, scoring.output);
        }
        anyhow::Ok(outputs)
    })?;
    let mut lines: Vec<String> = localstack.aws_environment().iter().map(|(key, value)| format!("{key}={value}")).collect();
    lines.extend([
        format!("MLOPS_BUCKET={}", outputs["DataBucket"]),
        format!("MLOPS_DATASET={DATASET}"),
        format!("MLOPS_ALERT_TOPIC_ARN={}", outputs["AlertTopicArn"]),
        format!("MLOPS_STATE_MACHINE_ARN={}", outputs["StateMachineArn"]),
        format!("MLOPS_SCORE_STATE_MACHINE_ARN={}", outputs["ScoreStateMachineArn"]),
    ]);
    let env = dir.join("env");
    std::fs::write(&env, lines.join("\n") + "\n")?;
    std::fs::write(dir.join("localstack.pid"), localstack.detach().to_string())?;
    eprintln!("the dev stack is up; its environment, for cargo lambda watch --env-file {}:", env.display());
    println!("{}", lines.join("\n"));
    Ok(())
}

/// Uploads the shipped spec, and the shipped data under `prefix/DATASET/` (raw for training,
/// batch for scoring), as `mlops --root s3://BUCKET ingest` does.
async fn upload(config: &aws_config::SdkConfig, bucket: &str, prefix: &str) -> Result<()> {
    let store = Arc::new(mlops_aws::s3::S3Store::new(config, bucket));
    let project = mlops_devstack::project();
    let prefix = prefix.to_string();
    tokio::task::spawn_blocking(move || {
        let spec_path = project.join(format!("specs/{DATASET}.toml"));
        let text = std::fs::read_to_string(&spec_path).with_context(|| spec_path.display().to_string())?;
        mlops_core::save_spec(store.as_ref(), &text, &spec_path.display().to_string())?;
        let data = project.join(format!("data/{DATASET}/Bikeshare.csv"));
        if prefix == "raw" {
            mlops_pipeline::ingest::ingest(store.as_ref(), DATASET, &[&data])?;
        } else {
            let bytes = std::fs::read(&data).with_context(|| data.display().to_string())?;
            mlops_core::Store::put(store.as_ref(), &format!("{prefix}/{DATASET}/Bikeshare.csv"), &bytes)?;
        }
        anyhow::Ok(())
    })
    .await?
}

/// The PID of the LocalStack that `up` left running in `dir`, if it still runs.
fn running(dir: &Path) -> Result<Option<u32>> {
    let Ok(text) = std::fs::read_to_string(dir.join("localstack.pid")) else { return Ok(None) };
    let pid: u32 = text.trim().parse().with_context(|| format!("{}: not a PID", dir.join("localstack.pid").display()))?;
    Ok(alive(pid).then_some(pid))
}

fn alive(pid: u32) -> bool {
    std::process::Command::new("kill")
        .args(["-0", &pid.to_string()])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn down(dir: &Path) -> Result<()> {
    match running(dir)? {
        Some(pid) => {
            mlops_devstack::stop_group(pid, || !alive(pid));
            eprintln!("stopped LocalStack (PID {pid})");
        }
        None => eprintln!("no dev stack runs from {}", dir.display()),
    }
    let _ = std::fs::remove_file(dir.join("localstack.pid"));
    Ok(())
}
