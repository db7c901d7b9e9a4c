//! Errors that name the field at fault.

use thiserror::Error;

/// A configuration value that was refused, with the path of the field (for example
/// `broker.tcp.port`) so that the operator knows what to change.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("{field}: {message}")]
pub struct ConfigError {
    pub field: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            field: field.into(),
            message: message.into(),
        }
    }
}
