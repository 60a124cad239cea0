//! JSON objects in a [`Store`]: read and parse, write, and change by compare-and-swap, so that
//! every stage reads, writes and updates its records the same way.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::CoreError;
use crate::store::{Condition, Store, StoreError};

/// Conditional writes tried before giving up on an object that keeps changing under us.
pub const CONDITIONAL_ATTEMPTS: usize = 5;

/// JSON on any [`Store`].
pub trait JsonStore {
    /// The object at `key` parsed as `T`; `None` when absent, [`CoreError::Corrupt`] when it
    /// does not parse.
    fn read_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, CoreError>;
    /// [`JsonStore::read_json`] with the object's etag, for a conditional write after.
    fn read_json_tagged<T: DeserializeOwned>(&self, key: &str) -> Result<Option<(T, String)>, CoreError>;
    /// Writes `value` as pretty JSON, replacing the object.
    fn write_json<T: Serialize>(&self, key: &str, value: &T) -> Result<(), CoreError>;
    /// Reads the object (the default when absent), applies `change` and writes it back only if
    /// no one wrote it meanwhile; a lost race reads again, up to [`CONDITIONAL_ATTEMPTS`] times.
    fn update_json<T: DeserializeOwned + Serialize + Default>(&self, key: &str, change: impl FnMut(&mut T)) -> Result<T, CoreError>;
}

impl<S: Store + ?Sized> JsonStore for S {
    fn read_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, CoreError> {
        self.get(key)?.map(|bytes| parse(key, &bytes)).transpose()
    }

    fn read_json_tagged<T: DeserializeOwned>(&self, key: &str) -> Result<Option<(T, String)>, CoreError> {
        self.get_tagged(key)?.map(|tagged| Ok((parse(key, &tagged.bytes)?, tagged.etag))).transpose()
    }

    fn write_json<T: Serialize>(&self, key: &str, value: &T) -> Result<(), CoreError> {
        Ok(self.put(key, &serde_json::to_vec_pretty(value).expect("records serialise"))?)
    }

    fn update_json<T: DeserializeOwned + Serialize + Default>(&self, key: &str, mut change: impl FnMut(&mut T)) -> Result<T, CoreError> {
        for _ in 0..CONDITIONAL_ATTEMPTS {
            let (mut value, condition) = match self.read_json_tagged(key)? {
                Some((value, etag)) => (value, Condition::Matches(etag)),
                None => (T::default(), Condition::Absent),
            };
            change(&mut value);
            match self.put_if(key, &serde_json::to_vec_pretty(&value).expect("records serialise"), condition) {
                Ok(_) => return Ok(value),
                Err(StoreError::PreconditionFailed { .. }) => continue,
                Err(error) => return Err(error.into()),
            }
        }
        Err(CoreError::Conflict { key: key.to_string() })
    }
}

fn parse<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, CoreError> {
    serde_json::from_slice(bytes).map_err(|e| CoreError::Corrupt { key: key.to_string(), message: e.to_string() })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::store::FsStore;

    #[test]
    fn updates_merge_with_what_is_stored_and_bad_json_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::new(dir.path());
        assert_eq!(store.read_json::<BTreeMap<String, u32>>("a/b.json").unwrap(), None);
        store
            .update_json("a/b.json", |m: &mut BTreeMap<String, u32>| {
                m.insert("one".into(), 1);
            })
            .unwrap();
        let both = store
            .update_json("a/b.json", |m: &mut BTreeMap<String, u32>| {
                m.insert("two".into(), 2);
            })
            .unwrap();
        assert_eq!(both.len(), 2);
        assert_eq!(store.read_json::<BTreeMap<String, u32>>("a/b.json").unwrap(), Some(both));
        store.put("a/c.json", b"{ not json").unwrap();
        let error = store.read_json::<BTreeMap<String, u32>>("a/c.json").unwrap_err();
        assert!(matches!(&error, CoreError::Corrupt { key, .. } if key == "a/c.json"), "{error}");
    }
}
