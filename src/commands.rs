//! The commands.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use mlops_core::contracts::{RunRequest, Trigger};
use mlops_core::registry::{Action, Registry};
use mlops_core::serve::{Service, ServiceOptions};
use mlops_core::{FsStore, Spec, Store};
use mlops_pipeline::monitor::Current;
use mlops_pipeline::stages::{self, Progress};
use mlops_prep::infer::{InitOptions, infer_spec};
use serde_json::json;

use crate::monitoring;
use crate::output::{self, Spinner};
use crate::{Cli, Command};

/// The store root when `--root` is not given.
const DEFAULT_ROOT: &str = "./mlops-data";
const DEFAULT_DEMO_ROOT: &str = "./mlops-demo";

pub fn dispatch(cli: Cli) -> Result<()> {
    if let Command::Demo = cli.command {
        crate::demo::run(&cli.root.unwrap_or_else(|| DEFAULT_DEMO_ROOT.into()), cli.json)?;
        return Ok(());
    }
    let store = FsStore::new(cli.root.unwrap_or_else(|| DEFAULT_ROOT.into()));
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
            let spec = Spec::load(&spec)?;
            let paths: Vec<&Path> = files.iter().map(|p| p.as_path()).collect();
            let ingested = mlops_pipeline::ingest::ingest(&store, &spec.name, &paths)?;
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
            let spec = Spec::load(&spec)?;
            let request = RunRequest { dataset: spec.name.clone(), keys: Vec::new(), trigger: Trigger::Manual };
            let prepped = stages::prep(&store, &spec, &request)?;
            let featured = stages::features(&store, &spec, prepped)?;
            if cli.json {
                println!("{}", serde_json::to_string(&featured)?);
            } else {
                output::print_features(&featured);
            }
        }
        Command::Run { spec } => {
            let spec = Spec::load(&spec)?;
            let request = RunRequest { dataset: spec.name.clone(), keys: Vec::new(), trigger: Trigger::Manual };
            let spinner = Spinner::new(!cli.json);
            let record = stages::run(&store, &spec, &request, &|progress| match progress {
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
            let spec = Spec::load(&spec)?;
            let registry = Registry::new(&store, &spec.name);
            let cards = registry.versions()?.iter().map(|v| registry.card(v)).collect::<Result<Vec<_>, _>>()?;
            let production = registry.production()?.map(|(p, _)| p);
            if cli.json {
                println!("{}", json!({ "dataset": spec.name, "production": production, "versions": cards }));
            } else {
                output::print_models(&spec, &cards, production.as_ref());
            }
        }
        Command::Promote { spec, version } => {
            let spec = Spec::load(&spec)?;
            let registry = Registry::new(&store, &spec.name);
            let current = registry.production()?;
            if current.as_ref().is_some_and(|(p, _)| p.version == version) {
                bail!("{version} is already the production version of '{}'", spec.name);
            }
            let etag = current.as_ref().map(|(_, etag)| etag.as_str());
            let production = registry.promote(&version, Action::Manual, "promoted by hand", None, etag)?;
            report_pointer(cli.json, &production);
        }
        Command::Rollback { spec } => {
            let spec = Spec::load(&spec)?;
            let production = Registry::new(&store, &spec.name).rollback()?;
            report_pointer(cli.json, &production);
        }
        Command::Serve { spec, addr } => {
            let spec = Spec::load(&spec)?;
            let service = Service::new(Arc::new(store), &spec.name, ServiceOptions::default());
            crate::server::serve_until_interrupted(Arc::new(service), addr)?;
        }
        Command::Drift { spec, batch } => {
            let spec = Spec::load(&spec)?;
            let current = match &batch {
                Some(file) => monitoring::batch(&spec, file)?,
                None => Current::Logs,
            };
            let report = monitoring::check(&store, &spec, current)?;
            if cli.json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                monitoring::print_report(&store, &report);
            }
        }
        Command::Feedback { spec, file } => {
            let spec = Spec::load(&spec)?;
            let summary = monitoring::feedback(&store, &spec, &file)?;
            if cli.json {
                println!("{}", serde_json::to_string(&summary)?);
            } else {
                println!("stored {} labels as {} ({} match logged predictions)", summary.rows, summary.key, summary.matched);
            }
        }
        Command::Watch { spec, interval } => {
            let spec = Spec::load(&spec)?;
            monitoring::watch(&store, &spec, Duration::from_secs(interval.max(1)), cli.json)?;
        }
        Command::Demo => unreachable!("handled above"),
    }
    Ok(())
}

fn report_pointer(json: bool, production: &mlops_core::registry::Production) {
    if json {
        println!("{}", serde_json::to_string(production).expect("the pointer serialises"));
    } else {
        let last = production.history.last().expect("a moved pointer has history");
        println!("production of '{}': {} -> {} ({})", production.dataset, last.from.as_deref().unwrap_or("none"), last.to, last.reason);
    }
}

/// A dataset name from a file name: `Bike Share.csv` gives `bike_share`.
fn dataset_name(file: &Path) -> String {
    let stem = file.file_stem().map(|s| s.to_string_lossy().to_lowercase()).unwrap_or_default();
    let name: String = stem.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
    if name.is_empty() { "dataset".into() } else { name }
}
