//! `mlops`: the pipeline on one machine, over a local store; and the registry and uploads of a
//! deployed pipeline, with `--root s3://BUCKET`.

mod commands;
mod demo;
mod monitoring;
mod output;
mod server;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mlops_core::Task;

// mimalloc hands freed memory back to the system: a whole run's peak is far lower than with glibc's
// per-thread arenas (1.1 GB against 1.6 GB at 1M rows, measured).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A serverless MLOps pipeline, run locally: any CSV in, a versioned, promoted model out.
#[derive(Debug, Parser)]
#[command(name = "mlops", version, about)]
struct Cli {
    /// The store: a local directory (default ./mlops-data; for `demo`, where its stores go,
    /// default ./mlops-demo), or `s3://BUCKET`, the data bucket of a deployed stack (standard
    /// AWS configuration: profile, region, AWS_ENDPOINT_URL for LocalStack).
    #[arg(long, global = true, env = "MLOPS_ROOT")]
    root: Option<String>,
    /// Print one machine-readable JSON summary on stdout instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum CanaryAction {
    /// Start VERSION as the challenger: a canary answering WEIGHT percent of the routing keys,
    /// or a shadow scored beside every request. The servers pick it up from the pointer.
    Start {
        /// A spec file (saved as the dataset's spec in the store), or the name of a dataset whose
        /// spec the store holds.
        #[arg(long)]
        spec: String,
        version: String,
        /// Percent of routing keys (the first row's id, else the request id) the canary answers.
        #[arg(long, value_parser = clap::value_parser!(u8).range(1..=99), required_unless_present = "shadow", conflicts_with = "shadow")]
        weight: Option<u8>,
        /// Score and log the challenger beside the champion, which alone answers.
        #[arg(long)]
        shadow: bool,
    },
    /// Each version's predictions, labels and metric since the trial started, and the
    /// sequential test's verdict (nothing moves: `mlops feedback` and the drift check act on it).
    Status {
        /// A spec file (saved as the dataset's spec in the store), or the name of a dataset whose
        /// spec the store holds.
        #[arg(long)]
        spec: String,
    },
    /// Withdraw the challenger; the champion answers everything again.
    Stop {
        /// A spec file (saved as the dataset's spec in the store), or the name of a dataset whose
        /// spec the store holds.
        #[arg(long)]
        spec: String,
    },
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Draft a spec from a CSV file: types, categories, ranges, nulls, time and id columns.
    Init {
        file: PathBuf,
        /// The column to predict.
        #[arg(long)]
        target: String,
        /// The time column (default: the first datetime column found).
        #[arg(long)]
        time: Option<String>,
        /// The task (default: inferred from the target).
        #[arg(long, value_parser = parse_task)]
        task: Option<Task>,
        /// Dataset name (default: the file name).
        #[arg(long)]
        name: Option<String>,
        /// Where to write the spec (default: stdout).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Put CSV files under raw/ of the store, as an upload to S3 would.
    Ingest {
        /// A spec file (saved as the dataset's spec in the store), or the name of a dataset whose
        /// spec the store holds.
        #[arg(long)]
        spec: String,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Prep and features only: validate new raw files and fit the features, without training.
    Prep {
        /// A spec file (saved as the dataset's spec in the store), or the name of a dataset whose
        /// spec the store holds.
        #[arg(long)]
        spec: String,
    },
    /// Prep, features, train, evaluate and register once.
    Run {
        /// A spec file (saved as the dataset's spec in the store), or the name of a dataset whose
        /// spec the store holds.
        #[arg(long)]
        spec: String,
    },
    /// List the registered versions.
    Models {
        /// A spec file (saved as the dataset's spec in the store), or the name of a dataset whose
        /// spec the store holds.
        #[arg(long)]
        spec: String,
    },
    /// Make a version production by hand.
    Promote {
        /// A spec file (saved as the dataset's spec in the store), or the name of a dataset whose
        /// spec the store holds.
        #[arg(long)]
        spec: String,
        version: String,
    },
    /// Move production back to the previous version.
    Rollback {
        /// A spec file (saved as the dataset's spec in the store), or the name of a dataset whose
        /// spec the store holds.
        #[arg(long)]
        spec: String,
    },
    /// Serve the production model over HTTP; picks up new versions without a restart.
    Serve {
        /// A spec file (saved as the dataset's spec in the store), or the name of a dataset whose
        /// spec the store holds.
        #[arg(long)]
        spec: String,
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: std::net::SocketAddr,
    },
    /// Compare recent inferences (or a batch) with the training reference; alert and retrain
    /// past the thresholds.
    Drift {
        /// A spec file (saved as the dataset's spec in the store), or the name of a dataset whose
        /// spec the store holds.
        #[arg(long)]
        spec: String,
        /// A CSV batch to check instead of the inference log.
        #[arg(long, conflicts_with = "latest")]
        batch: Option<PathBuf>,
        /// Show the latest report instead of checking (with an s3:// root: the deployed
        /// drift function's).
        #[arg(long)]
        latest: bool,
    },
    /// Store delayed labels: a CSV with the id (or prediction_id) and the target.
    Feedback {
        /// A spec file (saved as the dataset's spec in the store), or the name of a dataset whose
        /// spec the store holds.
        #[arg(long)]
        spec: String,
        file: PathBuf,
    },
    /// Score a CSV file with the production model: predictions go to OUTPUT, rows that break the
    /// schema to the rejects file with their line and reason; each prediction is logged, so drift
    /// monitoring sees it and `mlops feedback` can label it by its prediction_id.
    Score {
        /// A spec file (saved as the dataset's spec in the store), or the name of a dataset whose
        /// spec the store holds.
        #[arg(long)]
        spec: String,
        file: PathBuf,
        #[arg(short, long)]
        output: PathBuf,
        /// Where rejected rows go (default: OUTPUT with the extension `.rejects.csv`).
        #[arg(long)]
        rejects: Option<PathBuf>,
    },
    /// Try a version beside the production one on live traffic, see how it does on delayed
    /// labels, or end its trial.
    Canary {
        #[command(subcommand)]
        action: CanaryAction,
    },
    /// Run the pipeline on each new raw file and the drift check on an interval, until stopped.
    Watch {
        /// A spec file (saved as the dataset's spec in the store), or the name of a dataset whose
        /// spec the store holds.
        #[arg(long)]
        spec: String,
        /// Seconds between drift checks.
        #[arg(long, default_value_t = 300)]
        interval: u64,
    },
    /// The whole lifecycle on the shipped data, unattended (in a new store under --root).
    Demo,
}

fn parse_task(text: &str) -> Result<Task, String> {
    match text {
        "regression" => Ok(Task::Regression),
        "binary" => Ok(Task::Binary),
        "multiclass" => Ok(Task::Multiclass),
        other => Err(format!("'{other}' is not regression, binary or multiclass")),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The demo tells its own story; elsewhere warnings (rejected files, alerts) are worth seeing.
    let default_level = if matches!(cli.command, Command::Demo) { "error" } else { "warn" };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default_level.into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
    match commands::dispatch(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let message = format!("{error:#}").replace('\n', " ");
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
