//! The model registry: numbered versions, and a production pointer that holds the whole
//! promotion history and only moves by a conditional write.

use serde::{Deserialize, Serialize};

use crate::artifact::{ModelArtifact, ModelCard};
use crate::error::CoreError;
use crate::metrics::{Metrics, improves};
use crate::spec::{Metric, PromotionSpec, ServingBudget};
use crate::store::{Condition, Keys, Store, StoreError};
use crate::store_json::JsonStore;

/// The production pointer of a dataset.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Production {
    pub dataset: String,
    /// The version serving now.
    pub version: String,
    /// Its holdout metrics when it was promoted.
    pub metrics: Metrics,
    /// Versions that were in production, oldest first; the last is `version`. Rollback pops it.
    pub stack: Vec<String>,
    /// Every move of the pointer, oldest first.
    pub history: Vec<Event>,
}

/// One move of the production pointer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Event {
    pub seq: u64,
    pub at: String,
    pub action: Action,
    pub from: Option<String>,
    pub to: String,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// A run's candidate beat the champion.
    Promote,
    /// Promoted by hand.
    Manual,
    Rollback,
}

/// Whether a candidate replaces the champion, and why.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Decision {
    pub promote: bool,
    pub reason: String,
}

/// The promotion rule: the first model is promoted; later ones must beat the champion, on the
/// same holdout, by the policy's margin.
pub fn decide(metric: Metric, candidate: f64, champion: Option<(&str, f64)>, policy: &PromotionSpec) -> Decision {
    let name = metric.name();
    let Some((version, champion)) = champion else {
        return Decision { promote: true, reason: format!("first model of the dataset ({name} {candidate:.4})") };
    };
    let margin = if policy.absolute { format!("{}", policy.min_improvement) } else { format!("{}%", policy.min_improvement * 100.0) };
    if !candidate.is_finite() {
        return Decision { promote: false, reason: format!("candidate {name} is {candidate}") };
    }
    let promote = !champion.is_finite() || improves(metric, candidate, champion, policy.min_improvement, policy.absolute);
    let verdict = if promote { "beats" } else { "does not beat" };
    Decision {
        promote,
        reason: format!("candidate {name} {candidate:.4} {verdict} champion {version} ({champion:.4}) by the required {margin}"),
    }
}

/// Why a candidate that predicts one row in `predict_p99_ms` (99th percentile) from an artifact of
/// `artifact_bytes` passes the serving budget, or `None` when it keeps it.
pub fn over_budget(budget: &ServingBudget, predict_p99_ms: f64, artifact_bytes: u64) -> Option<String> {
    let mut reasons = Vec::new();
    if let Some(limit) = budget.predict_p99_ms.filter(|&limit| predict_p99_ms > limit) {
        reasons.push(format!("one-row predict p99 {predict_p99_ms:.3} ms is over the budget's {limit} ms"));
    }
    let megabytes = artifact_bytes as f64 / 1e6;
    if let Some(limit) = budget.artifact_mb.filter(|&limit| megabytes > limit) {
        reasons.push(format!("artifact {megabytes:.3} MB is over the budget's {limit} MB"));
    }
    (!reasons.is_empty()).then(|| format!("not promoted: {}", reasons.join("; ")))
}

/// The registry of one dataset in a store.
pub struct Registry<'a> {
    store: &'a dyn Store,
    keys: Keys<'a>,
}

fn version_number(version: &str) -> Option<u64> {
    version.strip_prefix('v')?.parse().ok()
}

fn now() -> String {
    jiff::Timestamp::now().to_string()
}

impl<'a> Registry<'a> {
    pub fn new(store: &'a dyn Store, dataset: &'a str) -> Registry<'a> {
        Registry { store, keys: Keys { dataset } }
    }

    /// Registered versions, oldest first.
    pub fn versions(&self) -> Result<Vec<String>, CoreError> {
        let prefix = self.keys.models_prefix();
        let mut versions: Vec<String> = self
            .store
            .list(&prefix)?
            .into_iter()
            .filter_map(|key| key.strip_prefix(&prefix)?.strip_suffix("/card.json").map(str::to_string))
            .filter(|v| version_number(v).is_some())
            .collect();
        versions.sort_by_key(|v| version_number(v));
        Ok(versions)
    }

    /// Stores an artifact under the next free version number and writes its card.
    pub fn register(&self, artifact: &[u8], mut card: ModelCard) -> Result<String, CoreError> {
        let prefix = self.keys.models_prefix();
        let highest = self
            .store
            .list(&prefix)?
            .iter()
            .filter_map(|key| version_number(key.strip_prefix(&prefix)?.split('/').next()?))
            .max()
            .unwrap_or(0);
        for number in highest + 1..highest + 100 {
            let version = format!("v{number}");
            match self.store.put_if(&self.keys.model(&version), artifact, Condition::Absent) {
                Ok(_) => {
                    card.version.clone_from(&version);
                    self.store.write_json(&self.keys.card(&version), &card)?;
                    return Ok(version);
                }
                Err(StoreError::PreconditionFailed { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(CoreError::Registry(format!("no free version number after v{highest} for '{}'", self.keys.dataset)))
    }

    pub fn card(&self, version: &str) -> Result<ModelCard, CoreError> {
        self.store
            .read_json(&self.keys.card(version))?
            .ok_or_else(|| CoreError::Registry(format!("version {version} of '{}' does not exist", self.keys.dataset)))
    }

    pub fn artifact(&self, version: &str) -> Result<ModelArtifact, CoreError> {
        let key = self.keys.model(version);
        let bytes = self
            .store
            .get(&key)?
            .ok_or_else(|| CoreError::Registry(format!("version {version} of '{}' has no artifact", self.keys.dataset)))?;
        ModelArtifact::from_bytes(&bytes, &key)
    }

    /// The production pointer and its etag, if any version was promoted.
    pub fn production(&self) -> Result<Option<(Production, String)>, CoreError> {
        self.store.read_json_tagged(&self.keys.production())
    }

    /// Makes `version` production, if the pointer still has the etag `expected` (or is still
    /// absent when `expected` is `None`).
    pub fn promote(
        &self,
        version: &str,
        action: Action,
        reason: &str,
        run_id: Option<&str>,
        expected: Option<&str>,
    ) -> Result<Production, CoreError> {
        let card = self.card(version)?;
        let current = self.production()?;
        let (mut stack, mut history, from) = match &current {
            Some((p, etag)) => {
                if expected != Some(etag.as_str()) {
                    return Err(CoreError::Conflict { key: self.keys.production() });
                }
                (p.stack.clone(), p.history.clone(), Some(p.version.clone()))
            }
            None if expected.is_some() => return Err(CoreError::Conflict { key: self.keys.production() }),
            None => (Vec::new(), Vec::new(), None),
        };
        stack.push(version.to_string());
        history.push(Event {
            seq: history.len() as u64 + 1,
            at: now(),
            action,
            from,
            to: version.to_string(),
            reason: reason.to_string(),
            run_id: run_id.map(str::to_string),
        });
        let production =
            Production { dataset: self.keys.dataset.to_string(), version: version.to_string(), metrics: card.metrics, stack, history };
        self.write(&production, expected)?;
        Ok(production)
    }

    /// Moves production back to the version before the current one.
    pub fn rollback(&self) -> Result<Production, CoreError> {
        let (mut production, etag) =
            self.production()?.ok_or_else(|| CoreError::Registry(format!("'{}' has no production model", self.keys.dataset)))?;
        if production.stack.len() < 2 {
            return Err(CoreError::Registry(format!(
                "'{}' has no earlier production version to roll back to ({} is the first)",
                self.keys.dataset, production.version
            )));
        }
        let from = production.stack.pop().expect("checked above");
        let to = production.stack.last().expect("checked above").clone();
        production.metrics = self.card(&to)?.metrics;
        production.history.push(Event {
            seq: production.history.len() as u64 + 1,
            at: now(),
            action: Action::Rollback,
            from: Some(from.clone()),
            to: to.clone(),
            reason: format!("rolled back from {from}"),
            run_id: None,
        });
        production.version = to;
        self.write(&production, Some(&etag))?;
        Ok(production)
    }

    fn write(&self, production: &Production, expected: Option<&str>) -> Result<(), CoreError> {
        let bytes = serde_json::to_vec_pretty(production).expect("the pointer serialises");
        let condition = expected.map_or(Condition::Absent, |etag| Condition::Matches(etag.to_string()));
        match self.store.put_if(&self.keys.production(), &bytes, condition) {
            Ok(_) => Ok(()),
            Err(StoreError::PreconditionFailed { .. }) => Err(CoreError::Conflict { key: self.keys.production() }),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Task;
    use crate::store::FsStore;

    fn card(rmse: f64) -> ModelCard {
        ModelCard {
            version: String::new(),
            dataset: "toy".into(),
            candidate: "lm".into(),
            kind: "linear".into(),
            params: serde_json::json!({}),
            task: Task::Regression,
            metric: Metric::Rmse,
            metrics: Metrics::from([(Metric::Rmse, rmse)]),
            run_id: "r".into(),
            created_at: now(),
            spec_hash: String::new(),
            data_hash: String::new(),
            artifact_sha256: String::new(),
            rows_train: 1,
            rows_holdout: 1,
            top_features: Vec::new(),
            schema: Vec::new(),
            classes: Vec::new(),
        }
    }

    #[test]
    fn decisions_follow_the_policy() {
        let policy = PromotionSpec { metric: None, min_improvement: 0.02, absolute: false, budget: ServingBudget::default() };
        assert!(decide(Metric::Rmse, 50.0, None, &policy).promote);
        assert!(decide(Metric::Rmse, 50.0, Some(("v1", 55.0)), &policy).promote);
        let kept = decide(Metric::Rmse, 54.5, Some(("v1", 55.0)), &policy);
        assert!(!kept.promote && kept.reason.contains("v1") && kept.reason.contains("2%"), "{}", kept.reason);
        assert!(!decide(Metric::Auc, f64::NAN, Some(("v1", 0.7)), &policy).promote);
    }

    #[test]
    fn a_candidate_past_either_limit_of_the_budget_is_named_with_both_figures() {
        let budget = ServingBudget { predict_p99_ms: Some(2.0), artifact_mb: Some(1.5) };
        assert_eq!(over_budget(&budget, 2.0, 1_500_000), None, "at the limit is within it");
        assert_eq!(over_budget(&ServingBudget::default(), 1e9, u64::MAX), None, "no budget, no limit");
        let slow = over_budget(&budget, 2.5, 10).unwrap();
        assert!(slow.contains("p99 2.500 ms") && slow.contains("2 ms") && !slow.contains("MB"), "{slow}");
        let both = over_budget(&budget, 3.0, 2_000_000).unwrap();
        assert!(both.contains("p99 3.000 ms") && both.contains("artifact 2.000 MB is over the budget's 1.5 MB"), "{both}");
    }

    #[test]
    fn promote_and_rollback_keep_a_complete_history() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::new(dir.path());
        let registry = Registry::new(&store, "toy");
        let v1 = registry.register(b"a", card(10.0)).unwrap();
        let v2 = registry.register(b"b", card(8.0)).unwrap();
        assert_eq!((v1.as_str(), v2.as_str()), ("v1", "v2"));
        assert_eq!(registry.versions().unwrap(), ["v1", "v2"]);
        registry.promote(&v1, Action::Promote, "first", Some("run1"), None).unwrap();
        let (_, etag) = registry.production().unwrap().unwrap();
        let production = registry.promote(&v2, Action::Manual, "by hand", None, Some(&etag)).unwrap();
        assert_eq!(production.stack, ["v1", "v2"]);
        let rolled = registry.rollback().unwrap();
        assert_eq!(rolled.version, "v1");
        assert_eq!(rolled.metrics[&Metric::Rmse], 10.0);
        assert_eq!(rolled.history.iter().map(|e| e.action).collect::<Vec<_>>(), [Action::Promote, Action::Manual, Action::Rollback]);
        let error = registry.rollback().unwrap_err().to_string();
        assert!(error.contains("no earlier production version"), "{error}");
        assert!(registry.promote("v9", Action::Manual, "", None, None).unwrap_err().to_string().contains("v9"));
    }

    #[test]
    fn a_stale_etag_loses_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::new(dir.path());
        let registry = Registry::new(&store, "toy");
        for rmse in [3.0, 2.0, 1.0] {
            registry.register(b"x", card(rmse)).unwrap();
        }
        registry.promote("v1", Action::Promote, "first", None, None).unwrap();
        let (_, etag) = registry.production().unwrap().unwrap();
        registry.promote("v2", Action::Manual, "", None, Some(&etag)).unwrap();
        let before = registry.production().unwrap().unwrap().0;
        let error = registry.promote("v3", Action::Manual, "", None, Some(&etag)).unwrap_err();
        assert!(matches!(error, CoreError::Conflict { .. }));
        assert_eq!(registry.production().unwrap().unwrap().0, before);
    }
}
