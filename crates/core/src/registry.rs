//! The model registry: numbered versions, and a production pointer that holds the whole
//! promotion history and only moves by a conditional write.

use serde::{Deserialize, Serialize};

use crate::artifact::{ModelArtifact, ModelCard};
use crate::canary::{Challenger, Mode};
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
    /// The version tried beside `version` on live traffic, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub challenger: Option<Challenger>,
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
    /// A challenger started beside the champion (`to` is the challenger).
    ChallengerStart,
    /// The challenger earned production on delayed labels, or by hand.
    ChallengerPromote,
    /// The challenger was withdrawn (`from` is the challenger, `to` the champion that stays).
    ChallengerStop,
}

/// How a challenger's trial ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    Promote,
    Withdraw,
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
        // A challenger's trial ends when production moves under it.
        let production = Production {
            dataset: self.keys.dataset.to_string(),
            version: version.to_string(),
            metrics: card.metrics,
            stack,
            history,
            challenger: None,
        };
        self.write(&production, expected)?;
        Ok(production)
    }

    /// Starts `version` as the challenger of the production version, if the pointer still has
    /// the etag `expected`.
    pub fn start_challenger(
        &self,
        version: &str,
        mode: Mode,
        reason: &str,
        run_id: Option<&str>,
        expected: &str,
    ) -> Result<Production, CoreError> {
        self.card(version)?;
        let (mut production, etag) = self.current(expected)?;
        if production.version == version {
            return Err(CoreError::Registry(format!("{version} is already the production version of '{}'", self.keys.dataset)));
        }
        if let Some(challenger) = &production.challenger {
            return Err(CoreError::Registry(format!(
                "'{}' already tries {} ({}); stop it first",
                self.keys.dataset, challenger.version, challenger.mode
            )));
        }
        let at = now();
        production.history.push(Event {
            seq: production.history.len() as u64 + 1,
            at: at.clone(),
            action: Action::ChallengerStart,
            from: Some(production.version.clone()),
            to: version.to_string(),
            reason: format!("{mode}: {reason}"),
            run_id: run_id.map(str::to_string),
        });
        production.challenger = Some(Challenger { version: version.to_string(), mode, started_at: at });
        self.write(&production, Some(&etag))?;
        Ok(production)
    }

    /// Ends the challenger's trial: it becomes production, or is withdrawn; the pointer must
    /// still have the etag `expected`.
    pub fn end_challenger(&self, ending: Ending, reason: &str, expected: &str) -> Result<Production, CoreError> {
        let (mut production, etag) = self.current(expected)?;
        let Some(challenger) = production.challenger.take() else {
            return Err(CoreError::Registry(format!("'{}' has no challenger", self.keys.dataset)));
        };
        let seq = production.history.len() as u64 + 1;
        let champion = production.version.clone();
        let event = match ending {
            Ending::Promote => {
                production.metrics = self.card(&challenger.version)?.metrics;
                production.stack.push(challenger.version.clone());
                production.version.clone_from(&challenger.version);
                Event {
                    seq,
                    at: now(),
                    action: Action::ChallengerPromote,
                    from: Some(champion),
                    to: challenger.version,
                    reason: reason.to_string(),
                    run_id: None,
                }
            }
            Ending::Withdraw => Event {
                seq,
                at: now(),
                action: Action::ChallengerStop,
                from: Some(challenger.version),
                to: champion,
                reason: reason.to_string(),
                run_id: None,
            },
        };
        production.history.push(event);
        self.write(&production, Some(&etag))?;
        Ok(production)
    }

    /// The pointer, if it still has the etag `expected`.
    fn current(&self, expected: &str) -> Result<(Production, String), CoreError> {
        match self.production()? {
            Some((production, etag)) if etag == expected => Ok((production, etag)),
            Some(_) => Err(CoreError::Conflict { key: self.keys.production() }),
            None => Err(CoreError::Registry(format!("'{}' has no production model", self.keys.dataset))),
        }
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
        production.challenger = None;
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
            importance: Vec::new(),
            schema: Vec::new(),
            classes: Vec::new(),
        }
    }

    #[test]
    fn decisions_follow_the_policy() {
        let policy = PromotionSpec { min_improvement: 0.02, ..PromotionSpec::default() };
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

    /// A registry of v1, v2 and v3 (rmse 3, 2 and 1), v1 promoted.
    fn three_versions_v1_in_production(store: &FsStore) -> Registry<'_> {
        let registry = Registry::new(store, "toy");
        for rmse in [3.0, 2.0, 1.0] {
            registry.register(b"x", card(rmse)).unwrap();
        }
        registry.promote("v1", Action::Promote, "first", None, None).unwrap();
        registry
    }

    #[test]
    fn a_challenger_starts_beside_the_champion_and_ends_promoted_or_withdrawn() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::new(dir.path());
        let registry = three_versions_v1_in_production(&store);
        let etag = |r: &Registry| r.production().unwrap().unwrap().1;
        let canary = Mode::Canary { weight: 10 };
        let error = registry.start_challenger("v1", canary, "", None, &etag(&registry)).unwrap_err().to_string();
        assert!(error.contains("already the production version"), "{error}");
        let started = registry.start_challenger("v2", canary, "beats v1", Some("run2"), &etag(&registry)).unwrap();
        assert_eq!((started.version.as_str(), started.challenger.as_ref().unwrap().version.as_str()), ("v1", "v2"));
        let error = registry.start_challenger("v3", Mode::Shadow, "", None, &etag(&registry)).unwrap_err().to_string();
        assert!(error.contains("already tries v2 (canary at 10%)"), "{error}");
        let stale = etag(&registry);
        let withdrawn = registry.end_challenger(Ending::Withdraw, "worse", &stale).unwrap();
        assert_eq!((withdrawn.version.as_str(), withdrawn.challenger.is_none()), ("v1", true));
        assert!(matches!(registry.end_challenger(Ending::Promote, "", &stale), Err(CoreError::Conflict { .. })));
        registry.start_challenger("v3", Mode::Shadow, "by hand", None, &etag(&registry)).unwrap();
        let promoted = registry.end_challenger(Ending::Promote, "better on labels", &etag(&registry)).unwrap();
        assert_eq!(
            (promoted.version.as_str(), promoted.stack.as_slice(), promoted.metrics[&Metric::Rmse]),
            ("v3", &["v1".to_string(), "v3".to_string()][..], 1.0)
        );
        let actions: Vec<Action> = promoted.history.iter().map(|e| e.action).collect();
        assert_eq!(
            actions,
            [Action::Promote, Action::ChallengerStart, Action::ChallengerStop, Action::ChallengerStart, Action::ChallengerPromote]
        );
        assert_eq!(registry.rollback().unwrap().version, "v1", "a promoted challenger rolls back like any promotion");
    }

    #[test]
    fn a_stale_etag_loses_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::new(dir.path());
        let registry = three_versions_v1_in_production(&store);
        let (_, etag) = registry.production().unwrap().unwrap();
        registry.promote("v2", Action::Manual, "", None, Some(&etag)).unwrap();
        let before = registry.production().unwrap().unwrap().0;
        let error = registry.promote("v3", Action::Manual, "", None, Some(&etag)).unwrap_err();
        assert!(matches!(error, CoreError::Conflict { .. }));
        assert_eq!(registry.production().unwrap().unwrap().0, before);
    }
}
