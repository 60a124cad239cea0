//! The commands.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use mlops_core::canary::Mode;
use mlops_core::contracts::ScoreSummary;
use mlops_core::contracts::{RunRequest, Trigger};
use mlops_core::{Action, Ending, Registry};
use mlops_core::{FsStore, Spec, Store};
use mlops_core::{Service, ServiceOptions};
use mlops_core::{load_spec, save_spec};
use mlops_pipeline::monitor::Current;
use mlops_pipeline::score::score_csv;
use mlops_pipeline::stages::{self, Progress};
use mlops_prep::infer::{InitOptions, infer_spec};
use serde_json::json;

use crate::monitoring;
use crate::output::{self, Spinner};
use crate::{CanaryAction, Cli, Command};

/// The store root when `--root` is not given.
const DEFAULT_ROOT: &str = "./mlops-data";
const DEFAULT_DEMO_ROOT: &str = "./mlops-demo";

/// Where the commands work: a local store, or the data bucket of a deployed stack.
enum Root {
    Local(FsStore),
    /// The runtime runs the S3 client's requests; the store blocks on it.
    S3 {
        store: mlops_aws::s3::S3Store,
        _runtime: tokio::runtime::Runtime,
    },
}

impl Root {
    fn open(root: Option<String>) -> Result<Root> {
        let root = root.unwrap_or_else(|| DEFAULT_ROOT.into());
        let Some(bucket) = root.strip_prefix("s3://") else { return Ok(Root::Local(FsStore::new(root))) };
        let bucket = bucket.trim_end_matches('/');
        if bucket.is_empty() || bucket.contains('/') {
            bail!("--root {root}: expected s3://BUCKET (the stack's DataBucket output)");
        }
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")?;
        let _inside = runtime.enter();
        let config = runtime.block_on(mlops_aws::config()).with_context(|| format!("--root {root}"))?;
        Ok(Root::S3 { store: mlops_aws::s3::S3Store::new(&config, bucket), _runtime: runtime })
    }

    fn store(&self) -> &dyn Store {
        match self {
            Root::Local(store) => store,
            Root::S3 { store, .. } => store,
        }
    }

    /// The local store, for the commands that compute here rather than on AWS.
    fn local(&self, command: &str) -> Result<&FsStore> {
        match self {
            Root::Local(store) => Ok(store),
            Root::S3 { .. } => bail!("{}", on_aws(command)),
        }
    }
}

/// The commands that compute on this machine, which an s3:// root does not take.
fn local_only(command: &Command) -> Option<&'static str> {
    match command {
        Command::Prep { .. } => Some("prep"),
        Command::Run { .. } => Some("run"),
        Command::Serve { .. } => Some("serve"),
        Command::Watch { .. } => Some("watch"),
        Command::Drift { latest: false, .. } => Some("drift"),
        _ => None,
    }
}

fn on_aws(command: &str) -> String {
    format!(
        "`mlops {command}` runs on a local store; on AWS the state machine and the functions do this work. With an s3:// root: ingest (an upload starts a run), models, promote, rollback, canary, feedback, drift --latest"
    )
}

/// The spec named on the command line: a file, saved as its dataset's spec in the store (the
/// one place every command and function reads it from), or the name of a stored one.
fn spec_of(store: &dyn Store, spec: &str) -> Result<Spec> {
    let path = Path::new(spec);
    if path.is_file() {
        let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
        return Ok(save_spec(store, &text, &path.display().to_string())?.0);
    }
    if spec.ends_with(".toml") || spec.contains(['/', '\\']) {
        bail!("{spec}: no such spec file");
    }
    Ok(load_spec(store, spec)?)
}

pub fn dispatch(cli: Cli) -> Result<()> {
    if let Command::Demo = cli.command {
        let base = cli.root.unwrap_or_else(|| DEFAULT_DEMO_ROOT.into());
        if base.starts_with("s3://") {
            bail!("`mlops demo` runs locally: give it a directory");
        }
        crate::demo::run(Path::new(&base), cli.json)?;
        return Ok(());
    }
    if cli.root.as_deref().is_some_and(|r| r.starts_with("s3://"))
        && let Some(command) = local_only(&cli.command)
    {
        bail!("{}", on_aws(command));
    }
    let root = Root::open(cli.root)?;
    let store = root.store();
    match cli.command {
        Command::Init { file, target, time, task, name, output } => {
            let bytes = std::fs::read(&file).with_context(|| format!("{}", file.display()))?;
            let name = name.unwrap_or_else(|| dataset_name(&file));
            let (spec, notes) = infer_spec(&file.display().to_string(), &bytes, &InitOptions { name, target, time, task })
                .map_err(|r| anyhow::anyhow!("{}: {}", r.file, r.reason))?;
            let text = format!(
                "# Drafted by `mlops init` from {}: review it, then `mlops ingest` and `mlops run`.\n\n{}",
                file.display(),
                spec.to_toml()
            );
            match &output {
                Some(path) => std::fs::write(path, &text).with_context(|| format!("writing {}", path.display()))?,
                None if !cli.json => print!("{text}"),
                None => {}
            }
            if cli.json {
                println!(
                    "{}",
                    json!({ "dataset": spec.name, "spec": output.as_ref().map(|p| p.display().to_string()), "notes": notes, "toml": output.is_none().then_some(&text) })
                );
            } else {
                for note in &notes {
                    eprintln!("  {note}");
                }
                if let Some(path) = &output {
                    eprintln!("wrote {} (dataset '{}')", path.display(), spec.name);
                }
            }
        }
        Command::Ingest { spec, files } => {
            let spec = spec_of(store, &spec)?;
            let paths: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
            let ingested = mlops_pipeline::ingest::ingest(store, &spec.name, &paths)?;
            if cli.json {
                println!("{}", json!({ "dataset": spec.name, "root": store.location(), "files": ingested }));
            } else {
                for file in &ingested {
                    let what = if file.stored { "stored as" } else { "already ingested as" };
                    println!("{} {what} {}", file.file, file.key);
                }
            }
        }
        Command::Prep { spec } => {
            let store = root.local("prep")?;
            let spec = spec_of(store, &spec)?;
            let request = RunRequest { dataset: spec.name.clone(), keys: Vec::new(), trigger: Trigger::Manual, id: None };
            let prepped = stages::prep(store, &spec, &request)?;
            let featured = stages::features(store, &spec, prepped)?;
            if cli.json {
                println!("{}", serde_json::to_string(&featured)?);
            } else {
                output::print_features(&featured);
            }
        }
        Command::Run { spec } => {
            let store = root.local("run")?;
            let spec = spec_of(store, &spec)?;
            let request = RunRequest { dataset: spec.name.clone(), keys: Vec::new(), trigger: Trigger::Manual, id: None };
            let spinner = Spinner::new(!cli.json);
            let record = stages::run(store, &spec, &request, &|progress| match progress {
                Progress::Stage(stage) => spinner.message(stage),
                Progress::CandidateStarted { name, index, total } => spinner.message(&format!("train: {name} ({}/{total})", index + 1)),
                Progress::CandidateFinished(_) => {}
            });
            spinner.finish();
            let record = record?;
            if cli.json {
                println!("{}", serde_json::to_string(&record)?);
            } else {
                output::print_run(&record, spec.metric());
            }
        }
        Command::Models { spec } => {
            let spec = spec_of(store, &spec)?;
            let registry = Registry::new(store, &spec.name);
            let cards = registry.versions()?.iter().map(|v| registry.card(v)).collect::<Result<Vec<_>, _>>()?;
            let production = registry.production()?.map(|(p, _)| p);
            if cli.json {
                println!("{}", json!({ "dataset": spec.name, "production": production, "versions": cards }));
            } else {
                output::print_models(&spec, &cards, production.as_ref());
            }
        }
        Command::Promote { spec, version } => {
            let spec = spec_of(store, &spec)?;
            let registry = Registry::new(store, &spec.name);
            let current = registry.production()?;
            if current.as_ref().is_some_and(|(p, _)| p.version == version) {
                bail!("{version} is already the production version of '{}'", spec.name);
            }
            let etag = current.as_ref().map(|(_, etag)| etag.as_str());
            let production = registry.promote(&version, Action::Manual, "promoted by hand", None, etag)?;
            report_pointer(cli.json, &production);
        }
        Command::Rollback { spec } => {
            let spec = spec_of(store, &spec)?;
            let production = Registry::new(store, &spec.name).rollback()?;
            report_pointer(cli.json, &production);
        }
        Command::Serve { spec, addr } => {
            let store = root.local("serve")?;
            let spec = spec_of(store, &spec)?;
            let service = Service::new(Arc::new(store.clone()), &spec.name, ServiceOptions::default());
            crate::server::serve_until_interrupted(Arc::new(service), addr)?;
        }
        Command::Drift { spec, batch, latest } => {
            let report = if latest {
                let spec = spec_of(store, &spec)?;
                mlops_pipeline::monitor::latest_report(store, &spec.name)?
                    .with_context(|| format!("no drift report of '{}' in {} yet", spec.name, store.location()))?
            } else {
                let store = root.local("drift")?;
                let spec = spec_of(store, &spec)?;
                let current = match &batch {
                    Some(file) => monitoring::batch(&spec, file)?,
                    None => Current::Logs,
                };
                monitoring::check(store, &spec, current)?
            };
            if cli.json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                monitoring::print_report(&store.location(), &report);
            }
        }
        Command::Feedback { spec, file } => {
            let spec = spec_of(store, &spec)?;
            let summary = monitoring::feedback(store, &spec, &file)?;
            let trial = mlops_pipeline::canary::evaluate(store, &spec, true)?;
            if cli.json {
                println!("{}", json!({ "feedback": summary, "canary": trial }));
            } else {
                println!("stored {} labels as {} ({} match logged predictions)", summary.rows, summary.key, summary.matched);
                if let Some(trial) = &trial {
                    output::print_trial(trial);
                }
            }
        }
        Command::Canary { action } => canary(store, action, cli.json)?,
        Command::Score { spec, file, output, rejects } => {
            let spec = spec_of(store, &spec)?;
            let rejects = rejects.unwrap_or_else(|| output.with_extension("rejects.csv"));
            let summary = score_file(store, &spec.name, &file, &output, &rejects)?;
            if cli.json {
                println!("{}", serde_json::to_string(&summary)?);
            } else {
                println!(
                    "scored {} of {} rows with {} of '{}' into {} ({} rejected into {}); batch {}",
                    summary.scored,
                    summary.rows,
                    summary.version,
                    summary.dataset,
                    output.display(),
                    summary.rejected,
                    rejects.display(),
                    summary.batch
                );
            }
        }
        Command::Watch { spec, interval } => {
            let store = root.local("watch")?;
            let spec = spec_of(store, &spec)?;
            monitoring::watch(store, &spec, Duration::from_secs(interval.max(1)), cli.json)?;
        }
        Command::Demo => unreachable!("handled above"),
    }
    Ok(())
}

/// Scores `file` into `output` and `rejects`, each written whole or not at all: they are filled
/// under a `.partial` name and renamed once every row is scored. The input is never written.
fn score_file(store: &dyn Store, dataset: &str, file: &Path, output: &Path, rejects: &Path) -> Result<ScoreSummary> {
    let input = std::fs::File::open(file).with_context(|| format!("{}: cannot read", file.display()))?;
    let same = |a: &Path, b: &Path| a.canonicalize().ok().is_some_and(|a| b.canonicalize().ok() == Some(a));
    for out in [output, rejects] {
        if same(out, file) {
            bail!("{}: the output would overwrite the input {}", out.display(), file.display());
        }
    }
    if same(output, rejects) || output == rejects {
        bail!("{}: the scores and the rejects need two files", output.display());
    }
    let partial = |path: &Path| {
        let mut name = path.as_os_str().to_owned();
        name.push(".partial");
        PathBuf::from(name)
    };
    let (scores_partial, rejects_partial) = (partial(output), partial(rejects));
    let create = |path: &Path| std::fs::File::create(path).with_context(|| format!("{}: cannot write", path.display()));
    let scored = (|| -> Result<ScoreSummary> {
        let summary = score_csv(
            store,
            dataset,
            &file.display().to_string(),
            std::io::BufReader::with_capacity(1 << 20, input),
            std::io::BufWriter::new(create(&scores_partial)?),
            std::io::BufWriter::new(create(&rejects_partial)?),
        )?;
        std::fs::rename(&scores_partial, output).with_context(|| format!("{}: cannot write", output.display()))?;
        std::fs::rename(&rejects_partial, rejects).with_context(|| format!("{}: cannot write", rejects.display()))?;
        Ok(summary)
    })();
    if scored.is_err() {
        for path in [&scores_partial, &rejects_partial] {
            let _ = std::fs::remove_file(path);
        }
    }
    scored
}

fn canary(store: &dyn Store, action: CanaryAction, json: bool) -> Result<()> {
    match action {
        CanaryAction::Start { spec, version, weight, shadow } => {
            let spec = spec_of(store, &spec)?;
            let registry = Registry::new(store, &spec.name);
            let (_, etag) =
                registry.production()?.with_context(|| format!("'{}' has no production model to try a challenger against", spec.name))?;
            let mode = match weight {
                Some(weight) if !shadow => Mode::Canary { weight },
                _ => Mode::Shadow,
            };
            let production = registry.start_challenger(&version, mode, "started by hand", None, &etag)?;
            report_pointer(json, &production);
        }
        CanaryAction::Status { spec } => {
            let spec = spec_of(store, &spec)?;
            let trial = mlops_pipeline::canary::evaluate(store, &spec, false)?;
            if json {
                println!("{}", json!({ "dataset": spec.name, "canary": trial }));
            } else {
                match &trial {
                    Some(trial) => output::print_trial(trial),
                    None => println!("'{}' has no challenger", spec.name),
                }
            }
        }
        CanaryAction::Stop { spec } => {
            let spec = spec_of(store, &spec)?;
            let registry = Registry::new(store, &spec.name);
            let (_, etag) = registry.production()?.with_context(|| format!("'{}' has no production model", spec.name))?;
            let production = registry.end_challenger(Ending::Withdraw, "stopped by hand", &etag)?;
            report_pointer(json, &production);
        }
    }
    Ok(())
}

fn report_pointer(json: bool, production: &mlops_core::Production) {
    if json {
        println!("{}", serde_json::to_string(production).expect("the pointer serialises"));
    } else {
        let last = production.history.last().expect("a moved pointer has history");
        let (dataset, from) = (&production.dataset, last.from.as_deref().unwrap_or("none"));
        match last.action {
            Action::ChallengerStart => println!("'{dataset}' tries {} beside production {from} ({})", last.to, last.reason),
            Action::ChallengerStop => {
                println!("'{dataset}' withdrew the challenger {from}; {} answers everything ({})", last.to, last.reason);
            }
            _ => println!("production of '{dataset}': {from} -> {} ({})", last.to, last.reason),
        }
    }
}

/// A dataset name from a file name: `Bike Share.csv` gives `bike_share`.
fn dataset_name(file: &Path) -> String {
    let stem = file.file_stem().map(|s| s.to_string_lossy().to_lowercase()).unwrap_or_default();
    let name: String = stem.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
    if name.is_empty() { "dataset".into() } else { name }
}
