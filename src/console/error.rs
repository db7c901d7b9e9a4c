//! Why the console could not start or had to stop.

use std::path::PathBuf;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum ConsoleError {
    /// The config file could not be read, parsed or validated (the message names the file,
    /// and the field where one is at fault).
    #[error(transparent)]
    Config(#[from] crate::config::ConfigFileError),
    #[error("cannot open the log file {path}: {source}")]
    LogFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read the theme {path}: {source}")]
    ThemeRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid theme {path}: {message}")]
    ThemeParse { path: PathBuf, message: String },
    #[error("terminal error: {0}")]
    Terminal(#[source] std::io::Error),
    #[error(transparent)]
    Admin(#[from] crate::admin::AdminError),
    #[error("cannot install the signal handlers: {0}")]
    Signals(#[source] std::io::Error),
}
