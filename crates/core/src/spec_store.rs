//! The one home of a dataset's spec: `specs/DATASET.toml` in the store, locally as on S3. The
//! CLI saves the spec it is given there; every command and every function reads it from there.

use crate::error::CoreError;
use crate::spec::Spec;
use crate::store::{Keys, Store};

/// Reads the spec of `dataset` from the store.
pub fn load_spec(store: &dyn Store, dataset: &str) -> Result<Spec, CoreError> {
    let key = Keys { dataset }.spec();
    let bytes = store.get(&key)?.ok_or_else(|| CoreError::Spec {
        file: format!("{}/{key}", store.location()),
        message: format!("no spec for dataset '{dataset}': `mlops ingest --spec FILE` stores one"),
    })?;
    let text = String::from_utf8(bytes).map_err(|_| CoreError::Spec { file: key.clone(), message: "not UTF-8 text".into() })?;
    Spec::parse(&text, &key)
}

/// Checks spec text and saves it as its dataset's spec, unless the store holds the same text;
/// returns the spec and whether it was written.
pub fn save_spec(store: &dyn Store, text: &str, source: &str) -> Result<(Spec, bool), CoreError> {
    let spec = Spec::parse(text, source)?;
    let key = Keys { dataset: &spec.name }.spec();
    if store.get(&key)?.as_deref() == Some(text.as_bytes()) {
        return Ok((spec, false));
    }
    store.put(&key, text.as_bytes())?;
    Ok((spec, true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FsStore;

    #[test]
    fn a_saved_spec_is_what_every_reader_loads() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::new(dir.path());
        let missing = load_spec(&store, "toy").unwrap_err().to_string();
        assert!(missing.contains("no spec for dataset 'toy'") && missing.contains("mlops ingest"), "{missing}");
        let text = "# toy\nname = \"toy\"\n[target]\ncolumn = \"y\"\ntask = \"regression\"\n[[columns]]\nname = \"x\"\ntype = \"float\"\n[[columns]]\nname = \"y\"\ntype = \"float\"\n[models.lm]\nkind = \"linear\"\n";
        let (spec, written) = save_spec(&store, text, "toy.toml").unwrap();
        assert!(written);
        assert_eq!(load_spec(&store, "toy").unwrap(), spec);
        assert!(!save_spec(&store, text, "toy.toml").unwrap().1, "the same text is not written again");
        assert_eq!(store.get("specs/toy.toml").unwrap().unwrap(), text.as_bytes(), "kept as written, comments included");
        assert!(save_spec(&store, "name = \"Bad Name\"", "bad.toml").is_err());
    }
}
