//! The pure core of the pipeline: spec and schema, features, models, metrics, registry rules and
//! drift statistics, over a storage trait. No AWS and no async runtime: the CLI and the Lambda
//! functions call this same code.

pub mod alerts;
pub mod artifact;
pub mod cells;
pub mod contracts;
pub mod drift;
pub mod error;
pub mod features;
pub mod frame;
pub mod hash;
pub mod inference_log;
pub mod metrics;
pub mod models;
pub mod registry;
pub mod rows;
pub mod serve;
pub mod spec;
mod spec_check;
pub mod spec_store;
pub mod split;
pub mod store;
pub mod store_json;
pub mod target;
pub mod time;
pub mod train;

pub use error::{CoreError, ErrorKind};
pub use spec::Spec;
pub use store::{FsStore, Keys, Store};
