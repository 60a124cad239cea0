//! The pure core of the pipeline: spec and schema, features, models, metrics, registry rules and
//! drift statistics, over a storage trait. No AWS and no async runtime: the CLI and the Lambda
//! functions call this same code.
//!
//! The API is re-exported from the crate root; the modules behind it are private. Three keep a
//! namespace of their own: [`contracts`] (the JSON each stage takes and returns), [`drift`] (the
//! drift checks and their statistics) and [`time`] (datetime formats and calendar parts).

mod alerts;
mod artifact;
pub mod canary;
mod cells;
pub mod contracts;
mod design;
pub mod drift;
mod error;
pub mod estimate;
mod features;
mod frame;
mod hash;
mod inference_log;
mod kind;
mod metrics;
mod models;
mod registry;
mod rows;
mod scoring;
mod serve;
mod shown;
mod spec;
mod spec_check;
mod spec_store;
mod split;
mod store;
mod store_json;
mod target;
pub mod time;
mod train;

pub use alerts::{Notifier, Retrainer};
pub use artifact::{ModelArtifact, ModelCard};
pub use cells::{BadValue, CellRule, Checked};
pub use error::CoreError;
pub use features::{Encoding, FeatureError, FittedFeatures};
pub use frame::{Column, Frame, RaggedColumn};
pub use hash::{CONTENT_CHUNK_BYTES, HashingWriter, chunk_hashes, content_hash, sha256_hex};
pub use inference_log::{CheckedLine, LogLine, LoggedPrediction, Predicted, read_log_file};
pub use kind::ErrorKind;
pub use metrics::{Metrics, evaluate};
pub use mlops_trees::BoostingCheckpoint;
pub use models::{OutputSpace, is_resumable};
pub use registry::{Action, Ending, Event, Production, Registry, decide, over_budget};
pub use rows::{Cell, RawRow, RowError, RowProblem, RowSchema};
pub use scoring::{Explanation, LogContext, Scored, attribution, explain, score};
pub use serve::{Request, Response, Service, ServiceOptions};
pub use spec::{
    CanaryPolicy, ColumnSpec, ColumnType, DriftMethod, DriftSpec, EarlyStoppingSpec, FeatureSpec, Metric, ModelSpec, NumericTransform,
    PromotionSpec, RESERVED_FIELDS, RegressionLoss, Rollout, SamplingSpec, ServingBudget, Spec, SplitMethod, SplitSpec, TargetSpec, Task,
    TimeOffset, TimePart, TimeSpec, TimeUnit, TrainingSpec,
};
pub use spec_store::{load_spec, save_spec};
pub use store::{Condition, FsStore, Keys, Store, StoreError, Tagged};
pub use store_json::{CONDITIONAL_ATTEMPTS, JsonStore};
pub use target::{TargetEncoder, TargetError};
pub use train::{
    BoostedModel, PreparedBoosting, Resumable, Trained, TrainingSet, boost_candidate, evaluate_on_holdout, finish_boosting,
    prediction_column, prepare_boosting, train_candidate,
};
