//! Object storage behind a small trait: the local filesystem here, S3 in `mlops-aws`, with the
//! same key layout ([`Keys`]).

use std::fs;
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::hash::sha256_hex;

/// A store failure, naming the key.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A conditional write found the object in another state than expected.
    #[error("{key}: the object changed since it was read (conditional write refused)")]
    PreconditionFailed { key: String },
    /// The backend failed; `kind` says whether trying again may help.
    #[error("{key}: {message}")]
    Backend { key: String, message: String, kind: crate::ErrorKind },
}

impl StoreError {
    /// The kind of failure: a lost conditional write is internal to the caller's protocol.
    pub fn kind(&self) -> crate::ErrorKind {
        match self {
            StoreError::PreconditionFailed { .. } => crate::ErrorKind::Internal,
            StoreError::Backend { kind, .. } => *kind,
        }
    }

    pub fn is_retryable(&self) -> bool {
        self.kind() == crate::ErrorKind::Transient
    }

    fn io(key: &str, error: std::io::Error) -> StoreError {
        let kind = match error.kind() {
            ErrorKind::Interrupted | ErrorKind::TimedOut | ErrorKind::WouldBlock => crate::ErrorKind::Transient,
            ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem => crate::ErrorKind::Configuration,
            _ => crate::ErrorKind::Internal,
        };
        StoreError::Backend { key: key.to_string(), message: error.to_string(), kind }
    }
}

/// The state a conditional write expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// The key does not exist yet (S3 `If-None-Match: *`).
    Absent,
    /// The object still has this etag (S3 `If-Match`).
    Matches(String),
}

/// An object and its etag.
#[derive(Debug, Clone)]
pub struct Tagged {
    pub bytes: Vec<u8>,
    pub etag: String,
}

/// Keyed object storage with conditional writes.
pub trait Store: Send + Sync {
    /// Reads an object; `None` when absent.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Reads an object with its etag.
    fn get_tagged(&self, key: &str) -> Result<Option<Tagged>, StoreError>;
    /// The etag alone (a cheap check for changes).
    fn etag(&self, key: &str) -> Result<Option<String>, StoreError>;
    /// Writes an object, replacing any previous one.
    fn put(&self, key: &str, bytes: &[u8]) -> Result<(), StoreError>;
    /// Writes an object as `write` produces its bytes, calling `write` once: a store that can
    /// (a local file) takes them as they come, so the object is never held whole in memory;
    /// by default they are gathered and [`Store::put`].
    fn put_written(&self, key: &str, write: &mut dyn FnMut(&mut dyn Write) -> std::io::Result<()>) -> Result<(), StoreError> {
        let mut bytes = Vec::new();
        write(&mut bytes).map_err(|e| StoreError::io(key, e))?;
        self.put(key, &bytes)
    }
    /// Writes an object only if `condition` holds; returns the new etag.
    fn put_if(&self, key: &str, bytes: &[u8], condition: Condition) -> Result<String, StoreError>;
    /// The size of an object in bytes; `None` when absent.
    fn size(&self, key: &str) -> Result<Option<u64>, StoreError>;
    /// Bytes `range` of an object, the end cut to its size; `None` when absent.
    fn get_range(&self, key: &str, range: Range<u64>) -> Result<Option<Vec<u8>>, StoreError>;
    /// Keys under a prefix, sorted.
    fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError>;
    /// Where the store is, for messages (`/path/to/root`, `s3://bucket`).
    fn location(&self) -> String;
}

/// A store in a local directory: one file per key, atomic replacement by rename, conditional
/// writes under an exclusive file lock.
#[derive(Debug, Clone)]
pub struct FsStore {
    root: PathBuf,
}

impl FsStore {
    pub fn new(root: impl Into<PathBuf>) -> FsStore {
        FsStore { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file of a key.
    pub fn path(&self, key: &str) -> Result<PathBuf, StoreError> {
        let bad = key.is_empty() || key.starts_with('/') || key.split('/').any(|part| part.is_empty() || part == "." || part == "..");
        if bad {
            return Err(StoreError::Backend { key: key.to_string(), message: "invalid key".into(), kind: crate::ErrorKind::Internal });
        }
        Ok(self.root.join(key))
    }

    /// Writes a temporary file with `write`, syncs it, renames it over the key's file and syncs
    /// the directory: after a crash the key holds the old bytes or the new ones, never a torn
    /// file.
    fn write_atomically(key: &str, path: &Path, write: &mut dyn FnMut(&mut dyn Write) -> std::io::Result<()>) -> Result<(), StoreError> {
        let parent = path.parent().expect("a key's file has a directory");
        fs::create_dir_all(parent).map_err(|e| StoreError::io(key, e))?;
        let temporary = parent.join(format!(".{}.{}.tmp", path.file_name().unwrap_or_default().to_string_lossy(), uuid::Uuid::new_v4()));
        let mut attempt = || -> std::io::Result<()> {
            let mut file = std::io::BufWriter::new(fs::File::create(&temporary)?);
            write(&mut file)?;
            let file = file.into_inner().map_err(std::io::IntoInnerError::into_error)?;
            file.sync_all()?;
            fs::rename(&temporary, path)?;
            fs::File::open(parent)?.sync_all()
        };
        attempt().map_err(|e| {
            let _ = fs::remove_file(&temporary);
            StoreError::io(key, e)
        })
    }
}

impl Store for FsStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match fs::read(self.path(key)?) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::io(key, e)),
        }
    }

    fn get_tagged(&self, key: &str) -> Result<Option<Tagged>, StoreError> {
        Ok(self.get(key)?.map(|bytes| Tagged { etag: sha256_hex(&bytes), bytes }))
    }

    fn etag(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self.get_tagged(key)?.map(|t| t.etag))
    }

    fn put(&self, key: &str, bytes: &[u8]) -> Result<(), StoreError> {
        Self::write_atomically(key, &self.path(key)?, &mut |file| file.write_all(bytes))
    }

    fn put_written(&self, key: &str, write: &mut dyn FnMut(&mut dyn Write) -> std::io::Result<()>) -> Result<(), StoreError> {
        Self::write_atomically(key, &self.path(key)?, write)
    }

    fn put_if(&self, key: &str, bytes: &[u8], condition: Condition) -> Result<String, StoreError> {
        let path = self.path(key)?;
        let locks = self.root.join(".locks");
        fs::create_dir_all(&locks).map_err(|e| StoreError::io(key, e))?;
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(locks.join(format!("{}.lock", &sha256_hex(key.as_bytes())[..16])))
            .map_err(|e| StoreError::io(key, e))?;
        lock.lock().map_err(|e| StoreError::io(key, e))?;
        let current = self.etag(key)?;
        let holds = match (&condition, &current) {
            (Condition::Absent, None) => true,
            (Condition::Matches(expected), Some(actual)) => expected == actual,
            _ => false,
        };
        if !holds {
            return Err(StoreError::PreconditionFailed { key: key.to_string() });
        }
        Self::write_atomically(key, &path, &mut |file| file.write_all(bytes))?;
        Ok(sha256_hex(bytes))
    }

    fn size(&self, key: &str) -> Result<Option<u64>, StoreError> {
        match fs::metadata(self.path(key)?) {
            Ok(metadata) => Ok(Some(metadata.len())),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::io(key, e)),
        }
    }

    fn get_range(&self, key: &str, range: Range<u64>) -> Result<Option<Vec<u8>>, StoreError> {
        let mut file = match fs::File::open(self.path(key)?) {
            Ok(file) => file,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StoreError::io(key, e)),
        };
        let mut bytes = Vec::new();
        file.seek(SeekFrom::Start(range.start))
            .and_then(|_| file.take(range.end.saturating_sub(range.start)).read_to_end(&mut bytes))
            .map_err(|e| StoreError::io(key, e))?;
        Ok(Some(bytes))
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let directory = match prefix.rfind('/') {
            Some(end) => self.root.join(&prefix[..end]),
            None => self.root.clone(),
        };
        let mut keys = Vec::new();
        let mut pending = vec![directory];
        while let Some(directory) = pending.pop() {
            let entries = match fs::read_dir(&directory) {
                Ok(entries) => entries,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(StoreError::io(prefix, e)),
            };
            for entry in entries {
                let entry = entry.map_err(|e| StoreError::io(prefix, e))?;
                let name = entry.file_name().to_string_lossy().to_string();
                if name.starts_with('.') {
                    continue;
                }
                let path = entry.path();
                if entry.file_type().map_err(|e| StoreError::io(prefix, e))?.is_dir() {
                    pending.push(path);
                } else if let Ok(relative) = path.strip_prefix(&self.root) {
                    let key = relative.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/");
                    if key.starts_with(prefix) {
                        keys.push(key);
                    }
                }
            }
        }
        keys.sort();
        Ok(keys)
    }

    fn location(&self) -> String {
        self.root.display().to_string()
    }
}

/// The key layout of one dataset, shared by every store.
#[derive(Debug, Clone, Copy)]
pub struct Keys<'a> {
    pub dataset: &'a str,
}

impl Keys<'_> {
    pub fn spec(&self) -> String {
        format!("specs/{}.toml", self.dataset)
    }
    /// Prefix of the raw files, as uploaded; never modified or deleted.
    pub fn raw_prefix(&self) -> String {
        format!("raw/{}/", self.dataset)
    }
    pub fn raw(&self, name: &str) -> String {
        format!("raw/{}/{name}", self.dataset)
    }
    /// Which raw files prep has already handled.
    pub fn prep_manifest(&self) -> String {
        format!("processed/{}/manifest.json", self.dataset)
    }
    pub fn processed_prefix(&self) -> String {
        format!("processed/{}/", self.dataset)
    }
    /// One part of a processed batch: the rows of one bucket.
    pub fn processed_part(&self, batch: &str, bucket: usize) -> String {
        format!("processed/{}/{batch}/part-{bucket:05}.parquet", self.dataset)
    }
    pub fn processed_success(&self, batch: &str) -> String {
        format!("processed/{}/{batch}/_SUCCESS", self.dataset)
    }
    pub fn quarantine_rows(&self, batch: &str) -> String {
        format!("quarantine/{}/{batch}/rows.csv", self.dataset)
    }
    pub fn quarantine_report(&self, batch: &str) -> String {
        format!("quarantine/{}/{batch}/report.json", self.dataset)
    }
    /// A prep plan: the raw files it reads and their shards, grouped into map items.
    pub fn prep_plan(&self, plan: &str) -> String {
        format!("staging/{}/{plan}/plan.json", self.dataset)
    }
    /// The JSON array of a prep plan's map items, read by the Distributed Map.
    pub fn prep_items(&self, plan: &str) -> String {
        format!("staging/{}/{plan}/items.json", self.dataset)
    }
    /// What a prep plan's merge step decided: the files' outcomes and the shards whose rows
    /// make the batch.
    pub fn prep_merged(&self, plan: &str) -> String {
        format!("staging/{}/{plan}/merged.json", self.dataset)
    }
    /// The quarantined rows of a prep plan, until its batch is closed.
    pub fn prep_quarantine(&self, plan: &str) -> String {
        format!("staging/{}/{plan}/quarantine.csv", self.dataset)
    }
    /// The JSON array of a prep plan's buckets, read by the Distributed Map.
    pub fn prep_buckets(&self, plan: &str) -> String {
        format!("staging/{}/{plan}/buckets.json", self.dataset)
    }
    /// What prep's bucket step wrote for bucket `bucket`: its part of the batch.
    pub fn prep_bucket_part(&self, plan: &str, bucket: usize) -> String {
        format!("staging/{}/{plan}/buckets/{bucket}.json", self.dataset)
    }
    /// One output (`meta.json`, `quarantined.parquet`, or `bucket-B.parquet` of a file read
    /// whole again) of shard `index` of the plan's file number `file`.
    pub fn prep_shard(&self, plan: &str, file: usize, index: usize, part: &str) -> String {
        format!("staging/{}/{plan}/shards/{file}-{index}/{part}", self.dataset)
    }
    /// The valid rows in bucket `bucket` of every shard of map item `item` of a prep plan.
    pub fn prep_item_bucket(&self, plan: &str, item: usize, bucket: usize) -> String {
        format!("staging/{}/{plan}/items/{item}/bucket-{bucket}.parquet", self.dataset)
    }
    /// A scoring plan: the file, its header, its shards grouped into map items, the pinned
    /// model version and the batch id.
    pub fn score_plan(&self, plan: &str) -> String {
        format!("staging/{}/score/{plan}/plan.json", self.dataset)
    }
    /// The JSON array of a scoring plan's map items, read by the Distributed Map.
    pub fn score_items(&self, plan: &str) -> String {
        format!("staging/{}/score/{plan}/items.json", self.dataset)
    }
    /// One output (`scores.csv`, `rejects.csv`, `log-K.jsonl`, `meta.json`) of shard `shard` of
    /// a scoring plan.
    pub fn score_shard(&self, plan: &str, shard: usize, part: &str) -> String {
        format!("{}{shard}/{part}", self.score_shards_prefix(plan))
    }
    /// Prefix of the outputs of every shard of a scoring plan.
    pub fn score_shards_prefix(&self, plan: &str) -> String {
        format!("staging/{}/score/{plan}/shards/", self.dataset)
    }
    /// Prefix of the files uploaded to be scored.
    pub fn batch_prefix(&self) -> String {
        format!("batch/{}/", self.dataset)
    }
    /// One output (`scores.csv`, `rejects.csv`, `summary.json`, `_SUCCESS`) of the scoring of
    /// `batch/DATASET/NAME.csv`.
    pub fn scored(&self, name: &str, part: &str) -> String {
        format!("scored/{}/{name}/{part}", self.dataset)
    }
    /// A drift check over the inference log: its log files, newest first, and what summarising
    /// them needs of the model.
    pub fn drift_plan(&self, check: &str) -> String {
        format!("staging/{}/drift/{check}/plan.bin", self.dataset)
    }
    /// The JSON array of a drift check's map items in round `round`.
    pub fn drift_items(&self, check: &str, round: usize) -> String {
        format!("staging/{}/drift/{check}/round-{round}.json", self.dataset)
    }
    /// The summaries of one map item's log files.
    pub fn drift_part(&self, check: &str, item: usize) -> String {
        format!("staging/{}/drift/{check}/parts/{item}.bin", self.dataset)
    }
    /// The merged, split training data of a run, with its fitted features.
    pub fn features(&self, run: &str) -> String {
        format!("features/{}/{run}/features.bin", self.dataset)
    }
    pub fn candidate(&self, run: &str, name: &str) -> String {
        format!("runs/{}/{run}/candidates/{name}.bin", self.dataset)
    }
    /// A gradient-boosting candidate's binned training rows, for a fit over several invocations.
    pub fn boosting_input(&self, run: &str, name: &str) -> String {
        format!("staging/{}/train/{run}/{name}/input.bin", self.dataset)
    }
    /// Where a candidate's fit over several invocations stood after `rounds` rounds: one key per
    /// checkpoint, so that a retried invocation finds the one its input names.
    pub fn boosting_checkpoint(&self, run: &str, name: &str, rounds: usize) -> String {
        format!("staging/{}/train/{run}/{name}/checkpoint-{rounds}.bin", self.dataset)
    }
    /// What train did with one candidate of a run ([`crate::contracts::CandidateOutcome`]).
    pub fn candidate_outcome(&self, run: &str, name: &str) -> String {
        format!("runs/{}/{run}/candidates/{name}.json", self.dataset)
    }
    /// A training run's HTML report.
    pub fn run_report(&self, run: &str) -> String {
        format!("runs/{}/{run}/report.html", self.dataset)
    }
    pub fn run_record(&self, run: &str) -> String {
        format!("runs/{}/{run}/run.json", self.dataset)
    }
    pub fn models_prefix(&self) -> String {
        format!("models/{}/", self.dataset)
    }
    pub fn model(&self, version: &str) -> String {
        format!("models/{}/{version}/model.bin", self.dataset)
    }
    pub fn card(&self, version: &str) -> String {
        format!("models/{}/{version}/card.json", self.dataset)
    }
    /// The production pointer, with the full promotion history.
    pub fn production(&self) -> String {
        format!("registry/{}/production.json", self.dataset)
    }
    pub fn inference_prefix(&self) -> String {
        format!("inference/{}/", self.dataset)
    }
    pub fn inference(&self, date: &str, batch: &str) -> String {
        format!("inference/{}/{date}/{batch}.jsonl", self.dataset)
    }
    pub fn feedback_prefix(&self) -> String {
        format!("feedback/{}/", self.dataset)
    }
    pub fn feedback(&self, name: &str) -> String {
        format!("feedback/{}/{name}", self.dataset)
    }
    pub fn monitor_state(&self) -> String {
        format!("monitor/{}/state.json", self.dataset)
    }
    pub fn drift_report(&self, stamp: &str, extension: &str) -> String {
        format!("monitor/{}/reports/{stamp}.{extension}", self.dataset)
    }
    pub fn drift_reports_prefix(&self) -> String {
        format!("monitor/{}/reports/", self.dataset)
    }
    pub fn alert(&self, stamp: &str) -> String {
        format!("monitor/{}/alerts/{stamp}.json", self.dataset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_round_trip_and_list_by_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::new(dir.path());
        assert_eq!(store.get("raw/a/x.csv").unwrap(), None);
        store.put("raw/a/x.csv", b"1").unwrap();
        store.put("raw/a/sub/y.csv", b"2").unwrap();
        store.put("raw/ab/z.csv", b"3").unwrap();
        assert_eq!(store.get("raw/a/x.csv").unwrap().as_deref(), Some(&b"1"[..]));
        assert_eq!(store.list("raw/a/").unwrap(), ["raw/a/sub/y.csv", "raw/a/x.csv"]);
        assert_eq!(store.list("raw/a").unwrap().len(), 3);
        assert!(store.put("../escape", b"x").is_err());
    }

    #[test]
    fn an_object_written_as_it_is_produced_is_whole_or_not_there() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::new(dir.path());
        let pieces = || (0..1000u32).map(u32::to_le_bytes);
        store
            .put_written("processed/a/part", &mut |out| {
                let mut out = crate::HashingWriter::new(out);
                pieces().try_for_each(|piece| out.write_all(&piece))?;
                assert_eq!(out.sha256_hex(), sha256_hex(&pieces().flatten().collect::<Vec<u8>>()));
                Ok(())
            })
            .unwrap();
        assert_eq!(store.get("processed/a/part").unwrap(), Some(pieces().flatten().collect()));
        // A writer that fails half way leaves the old object, and no temporary file.
        let failed = store.put_written("processed/a/part", &mut |out| {
            out.write_all(b"half")?;
            Err(std::io::Error::other("the encoder failed"))
        });
        assert!(failed.unwrap_err().to_string().contains("processed/a/part: the encoder failed"));
        assert_eq!(store.get("processed/a/part").unwrap(), Some(pieces().flatten().collect()));
        assert_eq!(fs::read_dir(dir.path().join("processed/a")).unwrap().count(), 1);
    }

    #[test]
    fn conditional_writes_refuse_stale_etags() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::new(dir.path());
        let first = store.put_if("registry/p.json", b"v1", Condition::Absent).unwrap();
        assert!(matches!(store.put_if("registry/p.json", b"v1", Condition::Absent), Err(StoreError::PreconditionFailed { .. })));
        let second = store.put_if("registry/p.json", b"v2", Condition::Matches(first.clone())).unwrap();
        assert!(matches!(store.put_if("registry/p.json", b"v3", Condition::Matches(first)), Err(StoreError::PreconditionFailed { .. })));
        assert_eq!(store.etag("registry/p.json").unwrap(), Some(second));
    }

    #[test]
    fn of_many_racing_conditional_writers_exactly_one_wins() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::new(dir.path());
        let start = store.put_if("p", b"start", Condition::Absent).unwrap();
        let wins: usize = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|i| {
                    let (store, start) = (&store, start.clone());
                    scope.spawn(move || store.put_if("p", format!("writer {i}").as_bytes(), Condition::Matches(start)).is_ok())
                })
                .collect();
            handles.into_iter().map(|h| usize::from(h.join().unwrap())).sum()
        });
        assert_eq!(wins, 1);
    }
}
