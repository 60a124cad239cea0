//! Putting local files under raw/, as an upload to S3 would.

use std::path::Path;

use mlops_core::sha256_hex;
use mlops_core::{Condition, StoreError};
use mlops_core::{Keys, Store};
use serde::Serialize;

use crate::PipelineError;

/// Where an ingested file went.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Ingested {
    pub file: String,
    pub key: String,
    /// False when the very same file was already there.
    pub stored: bool,
}

/// Copies files under `raw/DATASET/`. A file already there with the same content is left as it
/// is; a different file with the same name gets a name suffixed with its hash. Nothing under
/// raw/ is ever overwritten.
pub fn ingest(store: &dyn Store, dataset: &str, files: &[&Path]) -> Result<Vec<Ingested>, PipelineError> {
    let keys = Keys { dataset };
    let mut outcomes = Vec::new();
    for path in files {
        let bytes = std::fs::read(path).map_err(|e| PipelineError::bad_input(format!("{}: {e}", path.display())))?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().replace(' ', "_"))
            .ok_or_else(|| PipelineError::bad_input(format!("{} is not a file", path.display())))?;
        if name.starts_with('.') {
            // Stores skip hidden keys (temporary files, .DS_Store): such a file would never be read.
            return Err(PipelineError::bad_input(format!(
                "{}: hidden files (names starting with '.') are not ingested; rename it",
                path.display()
            )));
        }
        let sha256 = sha256_hex(&bytes);
        let (stem, extension) = match name.rsplit_once('.') {
            Some((stem, extension)) => (stem.to_string(), format!(".{extension}")),
            None => (name.clone(), String::new()),
        };
        let plain = keys.raw(&name);
        let (key, stored) = match store.get(&plain)? {
            None => (plain.clone(), store_new(store, &plain, &bytes)?),
            Some(existing) if sha256_hex(&existing) == sha256 => (plain, false),
            Some(_) => {
                // Another file of that name: keep both, this one under its hash.
                let suffixed = keys.raw(&format!("{stem}-{}{extension}", &sha256[..12]));
                let stored = store.get(&suffixed)?.is_none() && store_new(store, &suffixed, &bytes)?;
                (suffixed, stored)
            }
        };
        outcomes.push(Ingested { file: path.display().to_string(), key, stored });
    }
    Ok(outcomes)
}

/// Writes a key that must not exist yet; false when a concurrent writer got there first.
fn store_new(store: &dyn Store, key: &str, bytes: &[u8]) -> Result<bool, PipelineError> {
    match store.put_if(key, bytes, Condition::Absent) {
        Ok(_) => Ok(true),
        Err(StoreError::PreconditionFailed { .. }) => Ok(false),
        Err(e) => Err(e.into()),
    }
}
