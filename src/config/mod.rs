//! The RON configuration: types, loading and saving, validation, and the diff between two configs.

mod error;
mod model;

pub use error::ConfigError;
pub use model::*;
