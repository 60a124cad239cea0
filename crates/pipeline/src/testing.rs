//! What the pipeline's unit tests share.

/// The toy spec of the stage and drift tests: the workspace's smallest spec
/// (`tests/fixtures/toy-spec.toml`) with a categorical feature, a gradient-boosted candidate
/// beside the linear one, a quarter of the rows held out, and the drift check's settings.
pub(crate) const TOY_SPEC: &str = concat!(
    include_str!("../../../tests/fixtures/toy-spec.toml"),
    r#"[[columns]]
name = "group"
type = "categorical"
categories = ["a", "b", "c"]
[split]
holdout = 0.25
[promotion]
min_improvement = 0.01
[drift]
min_samples = 200
cooldown_minutes = 60
[models.gbm]
kind = "gradient_boosting"
max_iter = 50
min_samples_leaf = 5
"#
);
