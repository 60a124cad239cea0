//! Checking a spec: everything [`Spec::parse`] refuses, with the field and the reason. Kept
//! apart from the plain types of [`crate::spec`], since the checks ask the models and the time
//! parsers, which themselves read those types.

use std::collections::BTreeSet;
use std::path::Path;

use crate::error::CoreError;
use crate::models;
use crate::spec::{ColumnSpec, ColumnType, DriftMethod, MAX_COOLDOWN_MINUTES, Metric, RESERVED_FIELDS, Spec, SplitMethod, Task, TimePart};
use crate::time;

impl Spec {
    /// Reads and checks a spec file.
    pub fn load(path: &Path) -> Result<Spec, CoreError> {
        let text =
            std::fs::read_to_string(path).map_err(|e| CoreError::Spec { file: path.display().to_string(), message: e.to_string() })?;
        Spec::parse(&text, &path.display().to_string())
    }

    /// Parses and checks spec text; `source` names it in errors.
    pub fn parse(text: &str, source: &str) -> Result<Spec, CoreError> {
        let spec: Spec = toml::from_str(text)
            .map_err(|e| CoreError::Spec { file: source.to_string(), message: e.to_string().trim().replace('\n', " ") })?;
        spec.check().map_err(|message| CoreError::Spec { file: source.to_string(), message })?;
        Ok(spec)
    }

    fn check(&self) -> Result<(), String> {
        if !key_safe(&self.name) {
            return Err(format!("name '{}' must be 1 to 64 characters of a-z, 0-9, '_' and '-'", self.name));
        }
        let mut seen = BTreeSet::new();
        for column in &self.columns {
            if !seen.insert(column.name.as_str()) {
                return Err(format!("column '{}' is declared twice", column.name));
            }
            check_column(column)?;
        }
        let known = |name: &str, place: &str| -> Result<&ColumnSpec, String> {
            self.column(name).ok_or_else(|| format!("column '{name}' in {place} is not in [[columns]]"))
        };
        let target = known(&self.target.column, "target.column")?;
        if self.ignore.contains(&target.name) {
            return Err(format!("the target '{}' cannot be ignored", target.name));
        }
        self.check_target(target)?;
        if let Some(id) = &self.id {
            known(id, "id")?;
        }
        for name in &self.ignore {
            known(name, "ignore")?;
        }
        for name in &self.features.exclude {
            known(name, "features.exclude")?;
        }
        self.check_time(&known)?;
        for name in self.features.transforms.keys() {
            if !known(name, "features.transforms")?.kind.is_numeric() {
                return Err(format!("features.transforms: column '{name}' is not numeric"));
            }
        }
        for cyclical in &self.features.cyclical {
            if !self.features.time_parts.contains(cyclical) {
                return Err(format!("features.cyclical: '{}' is not in features.time_parts", cyclical.name()));
            }
        }
        if !self.features.time_parts.is_empty() && self.time.is_none() {
            return Err("features.time_parts needs a [time] section".into());
        }
        for pair in &self.features.crosses {
            for name in pair {
                let is_part = TimePart::from_name(name).is_some_and(|p| self.features.time_parts.contains(&p));
                let is_discrete = self
                    .feature_columns()
                    .any(|c| &c.name == name && matches!(c.kind, ColumnType::Categorical | ColumnType::Integer | ColumnType::Boolean));
                if !is_part && !is_discrete {
                    return Err(format!(
                        "features.crosses: '{name}' is neither a time part in features.time_parts nor a categorical, integer or boolean feature column"
                    ));
                }
            }
        }
        if self.features.max_levels < 2 {
            return Err("features.max_levels must be at least 2".into());
        }
        if self.feature_columns().next().is_none() && self.features.time_parts.is_empty() {
            return Err("no column is left to use as a feature".into());
        }
        if self.models.is_empty() {
            return Err("at least one candidate is needed under [models.NAME]".into());
        }
        for (name, model) in &self.models {
            if !key_safe(name) {
                return Err(format!(
                    "models.{name}: a candidate's name must be 1 to 64 characters of a-z, 0-9, '_' and '-' (it names stored files)"
                ));
            }
            models::check_model_spec(model, self.target.task).map_err(|e| format!("models.{name}: {e}"))?;
        }
        if !(self.training.budget_seconds > 0.0 && self.training.budget_seconds.is_finite()) {
            return Err("training.budget_seconds must be a positive number of seconds".into());
        }
        if !(self.split.holdout > 0.0 && self.split.holdout <= 0.5) {
            return Err("split.holdout must be in (0, 0.5]".into());
        }
        if self.split.method == Some(SplitMethod::Time) && self.time.is_none() {
            return Err("split.method = \"time\" needs a [time] section".into());
        }
        let metric = self.metric();
        if !Metric::for_task(self.target.task).contains(&metric) {
            return Err(format!("promotion.metric '{}' does not apply to a {:?} task", metric.name(), self.target.task));
        }
        if !(self.promotion.min_improvement.is_finite() && self.promotion.min_improvement >= 0.0) {
            return Err("promotion.min_improvement must be a finite, non-negative number".into());
        }
        for (name, limit) in [("predict_p99_ms", self.promotion.budget.predict_p99_ms), ("artifact_mb", self.promotion.budget.artifact_mb)]
        {
            if limit.is_some_and(|limit| !(limit.is_finite() && limit > 0.0)) {
                return Err(format!("promotion.budget.{name} must be a finite, positive number"));
            }
        }
        let canary = &self.promotion.canary;
        if !(1..=99).contains(&canary.weight) {
            return Err("promotion.canary.weight must be a percentage from 1 to 99".into());
        }
        if !(canary.alpha > 0.0 && canary.alpha < 0.5) {
            return Err("promotion.canary.alpha must be in (0, 0.5)".into());
        }
        if !(0.0..1.0).contains(&canary.max_error_rate) {
            return Err("promotion.canary.max_error_rate must be in [0, 1)".into());
        }
        if canary.max_p99_ms.is_some_and(|limit| !(limit.is_finite() && limit > 0.0)) {
            return Err("promotion.canary.max_p99_ms must be a finite, positive number".into());
        }
        if canary.min_labels < 2 || canary.guard_requests == 0 {
            return Err("promotion.canary.min_labels must be at least 2 and guard_requests at least 1".into());
        }
        self.check_drift()
    }

    fn check_target(&self, target: &ColumnSpec) -> Result<(), String> {
        let name = &target.name;
        match (self.target.task, target.kind) {
            (Task::Regression, kind) if !matches!(kind, ColumnType::Integer | ColumnType::Float) => {
                Err(format!("a regression target must be integer or float; '{name}' is {}", kind.name()))
            }
            (Task::Binary | Task::Multiclass, ColumnType::Float | ColumnType::Datetime | ColumnType::String) => {
                Err(format!("a class target must be categorical, integer or boolean; '{name}' is {}", target.kind.name()))
            }
            (Task::Binary, ColumnType::Categorical) if target.categories.as_ref().is_some_and(|c| c.len() != 2) => {
                Err(format!("a binary target needs exactly two categories; '{name}' declares another number"))
            }
            _ if target.nullable => Err(format!("the target '{name}' cannot be nullable")),
            _ => match (&self.target.positive, &target.categories) {
                (Some(positive), Some(categories)) if !categories.contains(positive) => {
                    Err(format!("target.positive '{positive}' is not a category of '{name}'"))
                }
                (Some(_), _) if self.target.task != Task::Binary => Err("target.positive only applies to a binary task".into()),
                _ => Ok(()),
            },
        }
    }

    fn check_time<'s>(&'s self, known: &dyn Fn(&str, &str) -> Result<&'s ColumnSpec, String>) -> Result<(), String> {
        let Some(time) = &self.time else { return Ok(()) };
        match (&time.column, &time.origin) {
            (Some(column), None) if time.offsets.is_empty() => {
                if known(column, "time.column")?.kind != ColumnType::Datetime {
                    return Err(format!("time.column '{column}' must have type \"datetime\""));
                }
            }
            (None, Some(origin)) if !time.offsets.is_empty() => {
                time::parse_origin(origin).map_err(|e| format!("time.origin: {e}"))?;
                for offset in &time.offsets {
                    if !offset.shift.is_finite() {
                        return Err(format!("time.offsets: the shift of '{}' must be a finite number", offset.column));
                    }
                    let column = known(&offset.column, "time.offsets")?;
                    if !matches!(column.kind, ColumnType::Integer | ColumnType::Float) {
                        return Err(format!("time.offsets: column '{}' must be integer or float", column.name));
                    }
                }
            }
            _ => return Err("[time] needs either `column` alone, or `origin` with `offsets`".into()),
        }
        Ok(())
    }

    fn check_drift(&self) -> Result<(), String> {
        let drift = &self.drift;
        if !matches!(drift.numeric, DriftMethod::Ks | DriftMethod::Wasserstein | DriftMethod::Psi) {
            return Err("drift.numeric must be ks, wasserstein or psi".into());
        }
        if !matches!(drift.categorical, DriftMethod::ChiSquare | DriftMethod::JensenShannon | DriftMethod::Psi) {
            return Err("drift.categorical must be chi_square, jensen_shannon or psi".into());
        }
        if !(drift.p_value > 0.0 && drift.p_value < 1.0) {
            return Err("drift.p_value must be in (0, 1)".into());
        }
        if !(drift.dataset_share > 0.0 && drift.dataset_share <= 1.0) {
            return Err("drift.dataset_share must be in (0, 1]".into());
        }
        if drift.min_samples < 2 || drift.window < drift.min_samples {
            return Err("drift.min_samples must be at least 2 and at most drift.window".into());
        }
        for (name, value) in [
            ("wasserstein_threshold", drift.wasserstein_threshold),
            ("jensen_shannon_threshold", drift.jensen_shannon_threshold),
            ("psi_threshold", drift.psi_threshold),
            ("concept_threshold", drift.concept_threshold),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                return Err(format!("drift.{name} must be a finite, non-negative number"));
            }
        }
        if drift.cooldown_minutes > MAX_COOLDOWN_MINUTES {
            return Err(format!("drift.cooldown_minutes must be at most {MAX_COOLDOWN_MINUTES} (ten years)"));
        }
        Ok(())
    }
}

/// A name that is safe in a store key: 1 to 64 characters of `a-z`, `0-9`, `_` and `-`.
fn key_safe(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

fn check_column(column: &ColumnSpec) -> Result<(), String> {
    let name = &column.name;
    if name.is_empty() {
        return Err("a column has an empty name".into());
    }
    if RESERVED_FIELDS.contains(&name.as_str()) {
        return Err(format!("column '{name}': the name is reserved for the fields prep adds to rows"));
    }
    for (bound, value) in [("min", column.min), ("max", column.max)] {
        if value.is_some_and(|v| !v.is_finite()) {
            return Err(format!("column '{name}': {bound} must be a finite number"));
        }
    }
    if (column.min.is_some() || column.max.is_some()) && !column.kind.is_numeric() {
        return Err(format!("column '{name}': min and max only apply to numeric columns"));
    }
    if let (Some(min), Some(max)) = (column.min, column.max)
        && min > max
    {
        return Err(format!("column '{name}': min {min} is above max {max}"));
    }
    if column.categories.is_some() && column.kind != ColumnType::Categorical {
        return Err(format!("column '{name}': categories only apply to categorical columns"));
    }
    if let Some(categories) = &column.categories {
        if categories.is_empty() {
            return Err(format!("column '{name}': categories is empty"));
        }
        if categories.iter().collect::<BTreeSet<_>>().len() != categories.len() {
            return Err(format!("column '{name}': categories repeat a value"));
        }
    }
    if column.format.is_some() && column.kind != ColumnType::Datetime {
        return Err(format!("column '{name}': format only applies to datetime columns"));
    }
    if column.kind == ColumnType::Datetime && column.format.is_none() {
        return Err(format!("column '{name}': a datetime column needs a format, e.g. \"%Y-%m-%d %H:%M:%S\""));
    }
    if let Some(format) = column.format.as_deref().filter(|f| !time::is_datetime_format(f)) {
        return Err(format!(
            "column '{name}': format '{format}' is neither a strftime format (with % directives) nor one of rfc3339, unix, unix_ms"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::spec::*;

    const MINIMAL: &str = include_str!("../../../tests/fixtures/toy-spec.toml");

    #[test]
    fn a_minimal_spec_gets_defaults() {
        let spec = Spec::parse(MINIMAL, "toy.toml").unwrap();
        assert_eq!(spec.metric(), Metric::Rmse);
        assert_eq!(spec.split_method(), SplitMethod::Random);
        assert_eq!(spec.split.holdout, 0.2);
        assert_eq!(spec.models["lm"], ModelSpec::Linear { alpha: 0.1 });
        assert_eq!(spec.feature_columns().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["x"]);
        let again = Spec::parse(&spec.to_toml(), "round trip").unwrap();
        assert_eq!(again, spec);
        assert_eq!(again.hash(), spec.hash());
    }

    #[test]
    fn mistakes_are_named() {
        let cases = [
            (MINIMAL.replace("column = \"y\"", "column = \"z\""), "column 'z' in target.column is not in [[columns]]"),
            (MINIMAL.replace("kind = \"linear\"", "kind = \"linear\"\nalpah = 1.0"), "alpah"),
            (MINIMAL.replace("kind = \"linear\"", "kind = \"svm\""), "svm"),
            (MINIMAL.replace("name = \"toy\"", "name = \"Toy Data\""), "name 'Toy Data'"),
            (MINIMAL.replace("task = \"regression\"", "task = \"binary\""), "class target must be"),
            (MINIMAL.replace("type = \"float\"\n[[columns]]", "type = \"float\"\nmin = 2\nmax = 1\n[[columns]]"), "min 2 is above max 1"),
            (MINIMAL.replace("type = \"float\"\n[[columns]]", "type = \"float\"\nmin = nan\n[[columns]]"), "min must be a finite number"),
            (MINIMAL.replace("type = \"float\"\n[[columns]]", "type = \"float\"\nmax = inf\n[[columns]]"), "max must be a finite number"),
            (MINIMAL.replace("[models.lm]", "[models.\"../lm\"]"), "models.../lm: a candidate's name"),
            (MINIMAL.replace("[models.lm]", "[models.LM]"), "models.LM: a candidate's name"),
            (format!("{MINIMAL}[promotion]\nmin_improvement = nan\n"), "promotion.min_improvement must be a finite"),
            (format!("{MINIMAL}[promotion.budget]\npredict_p99_ms = 0\n"), "promotion.budget.predict_p99_ms must be a finite, positive"),
            (format!("{MINIMAL}[promotion.canary]\nweight = 100\n"), "promotion.canary.weight must be a percentage"),
            (format!("{MINIMAL}[promotion.canary]\nalpha = 0.5\n"), "promotion.canary.alpha must be in (0, 0.5)"),
            (format!("{MINIMAL}[promotion.canary]\nrollout = \"blue\"\n"), "rollout"),
            (format!("{MINIMAL}[drift]\npsi_threshold = inf\n"), "drift.psi_threshold must be a finite"),
            (format!("{MINIMAL}[drift]\nconcept_threshold = nan\n"), "drift.concept_threshold must be a finite"),
            (format!("{MINIMAL}[drift]\ncooldown_minutes = 1000000000000000\n"), "drift.cooldown_minutes must be at most"),
            (format!("{MINIMAL}[drift]\np_value = nan\n"), "drift.p_value must be in (0, 1)"),
            (MINIMAL.replace("name = \"x\"", "name = \"_row\""), "reserved"),
        ];
        for (text, expected) in cases {
            let error = Spec::parse(&text, "toy.toml").unwrap_err().to_string();
            assert!(error.contains("toy.toml") && error.contains(expected), "{error:?} should mention {expected:?}");
        }
    }

    #[test]
    fn the_shipped_bikeshare_spec_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../specs/bikeshare.toml");
        let spec = Spec::load(&path).unwrap();
        assert_eq!(spec.target.column, "bikers");
        assert!(spec.ignore.contains(&"casual".to_string()) && spec.ignore.contains(&"registered".to_string()));
        assert_eq!(spec.split_method(), SplitMethod::Time);
        let inputs: Vec<_> = spec.input_columns().filter(|c| spec.requires(c)).map(|c| c.name.as_str()).collect();
        assert!(inputs.contains(&"day") && inputs.contains(&"hr") && !inputs.contains(&"casual"));
    }
}
