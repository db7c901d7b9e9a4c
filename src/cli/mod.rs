//! The command line's subcommands beyond `serve` and `config`, as library code: each command is
//! a function that takes the configuration (and data directory) and returns what it did, so
//! that the same functions can run inside a broker (the console, an admin socket).

pub mod acl;
pub mod certs;
pub mod users;

use std::fmt::Display;
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::config::Config;

/// What the edit closure answers `admin::edit_config` when it changed nothing, so that
/// nothing is applied or saved (a files-only certificate action, say).
const UNCHANGED: &str = "\u{0}the configuration is unchanged";

/// Runs `edit` on the configuration of `config_path` where it lives: through the broker
/// running on that file when there is one (it applies the result and saves it, so that the
/// running broker and the file never disagree), else on the file itself, saved in its
/// commented layout. Returns what `edit` returned and where the change went. Nothing is
/// saved or applied when `edit` fails or leaves the configuration as it was.
pub fn edit_config<T, E>(
    config_path: &Path,
    edit: impl FnOnce(&mut Config) -> Result<T, E> + Send + 'static,
) -> Result<(T, String), String>
where
    T: Send + 'static,
    E: Display,
{
    let result: Arc<Mutex<Option<T>>> = Arc::new(Mutex::new(None));
    let slot = result.clone();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| format!("cannot start the tokio runtime: {error}"))?;
    let saved = runtime.block_on(crate::admin::edit_config(config_path, move |config| {
        let before = config.clone();
        let value = edit(config).map_err(|error| error.to_string())?;
        *slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(value);
        match *config == before {
            true => Err(UNCHANGED.to_string()),
            false => Ok(()),
        }
    }));
    let saved = match saved {
        Ok(saved) => saved,
        Err(unchanged) if unchanged == UNCHANGED => "the configuration is unchanged".to_string(),
        Err(error) => return Err(error),
    };
    let value = result
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .take()
        .ok_or_else(|| "the edit did not run".to_string())?;
    Ok((value, saved))
}
