//! Tracing for the console's lifetime: to a file beside the config, never to the terminal
//! the console draws on.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tracing_subscriber::EnvFilter;

use super::error::ConsoleError;

/// `roost.log` in the config file's directory.
pub fn log_path(config_path: &Path) -> PathBuf {
    match config_path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.join("roost.log"),
        _ => PathBuf::from("roost.log"),
    }
}

/// Sends `tracing` output to `path` (appending). `RUST_LOG` sets the filter (default `info`).
/// If a global subscriber is already installed (tests, embedding), it is left in place.
pub fn init(path: &Path) -> Result<(), ConsoleError> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| ConsoleError::LogFile {
            path: path.to_path_buf(),
            source,
        })?;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _already_set = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(Mutex::new(file))
        .try_init();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_file_sits_beside_the_config() {
        assert_eq!(
            log_path(Path::new("/etc/roost/roost.ron")),
            PathBuf::from("/etc/roost/roost.log")
        );
        assert_eq!(log_path(Path::new("roost.ron")), PathBuf::from("roost.log"));
    }
}
