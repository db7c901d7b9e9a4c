//! The RON configuration: types, loading and saving, validation, and the diff between two configs.

mod diff;
mod error;
mod file;
mod layout;
mod model;
mod template;
mod validate;

pub use diff::{FieldChange, diff};
pub use error::ConfigError;
pub use file::{
    ConfigFileError, WriteContents, replace_file, replace_file_with, write_and_sync,
    write_file_atomically, write_file_atomically_with,
};
pub use layout::{has_foreign_comments, render as render_commented};
pub use model::*;
pub use template::default_config_text;
pub use validate::{
    MAX_TOPIC_LEVELS, validate_bind_address, validate_number, validate_origin, validate_port,
    validate_ws_path,
};
