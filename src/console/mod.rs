//! The administration console: a ratatui terminal UI over a [`crate::broker::BrokerHandle`].

use std::path::PathBuf;

use thiserror::Error;

/// How the console was started.
#[derive(Debug, Clone)]
pub struct ConsoleOptions {
    pub config_path: PathBuf,
    pub theme: Option<String>,
}

#[derive(Debug, Error)]
pub enum ConsoleError {
    #[error("the console is not built yet: run `roost serve` for the headless broker")]
    NotBuilt,
}

/// Runs the console with the broker attached until the operator quits.
pub async fn run(options: ConsoleOptions) -> Result<(), ConsoleError> {
    let _ = options;
    Err(ConsoleError::NotBuilt)
}
