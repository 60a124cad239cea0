//! `mlops`: the pipeline on one machine, over a local store.

mod commands;
mod output;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mlops_core::spec::Task;

/// A serverless MLOps pipeline, run locally: any CSV in, a versioned, promoted model out.
#[derive(Debug, Parser)]
#[command(name = "mlops", version, about)]
struct Cli {
    /// Root directory of the local store.
    #[arg(long, global = true, default_value = "./mlops-data", env = "MLOPS_ROOT")]
    root: PathBuf,
    /// Print one machine-readable JSON summary on stdout instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
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
        #[arg(long)]
        spec: PathBuf,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Prep, features, train, evaluate and register once.
    Run {
        #[arg(long)]
        spec: PathBuf,
    },
    /// List the registered versions.
    Models {
        #[arg(long)]
        spec: PathBuf,
    },
    /// Make a version production by hand.
    Promote {
        #[arg(long)]
        spec: PathBuf,
        version: String,
    },
    /// Move production back to the previous version.
    Rollback {
        #[arg(long)]
        spec: PathBuf,
    },
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
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
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
