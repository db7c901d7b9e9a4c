//! `roost acl import FILE`: Mosquitto's `acl_file` into the configuration's `acl`.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use thiserror::Error;

use crate::auth::acl::{AclFileError, TopicPermissions, parse_acl_file};
use crate::config::{Config, ConfigFileError};

#[derive(Debug, Clone, Subcommand)]
pub enum AclCommand {
    /// Replace the topic permissions with those of a Mosquitto acl_file.
    Import { file: PathBuf },
}

#[derive(Debug, Error)]
pub enum AclError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: AclFileError,
    },
    #[error(transparent)]
    Config(#[from] ConfigFileError),
    /// The import could not be applied or saved (the message says where and why).
    #[error("{0}")]
    Edit(String),
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclImported {
    pub anonymous_rules: usize,
    pub users: usize,
    pub user_rules: usize,
    pub patterns: usize,
}

impl std::fmt::Display for AclImported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "topic permissions imported: {} anonymous rules, {} rules for {} users, {} patterns",
            self.anonymous_rules, self.user_rules, self.users, self.patterns
        )
    }
}

/// Reads an acl_file, with errors naming the file and the line.
pub fn read_acl_file(path: &Path) -> Result<TopicPermissions, AclError> {
    let text = std::fs::read_to_string(path).map_err(|source| AclError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_acl_file(&text).map_err(|source| AclError::Parse {
        path: path.to_path_buf(),
        source,
    })
}

/// Replaces the configuration's topic permissions with `permissions`.
pub fn import_acl(config: &mut Config, permissions: TopicPermissions) -> AclImported {
    let imported = AclImported {
        anonymous_rules: permissions.anonymous.len(),
        users: permissions.users.len(),
        user_rules: permissions.users.values().map(Vec::len).sum(),
        patterns: permissions.patterns.len(),
    };
    config.acl = permissions;
    imported
}

/// The command line: imports the rules into the configuration of `config_path` (created when
/// missing) through [`super::edit_config`], so that a broker running on that file applies them.
/// Returns what was imported and where the change went.
pub fn run(command: &AclCommand, config_path: &Path) -> Result<(AclImported, String), AclError> {
    match command {
        AclCommand::Import { file } => {
            let permissions = read_acl_file(file)?;
            // A broker running on the file applies the rules at once (see `edit_config`).
            super::edit_config(config_path, move |config| {
                Ok::<_, std::convert::Infallible>(import_acl(config, permissions))
            })
            .map_err(AclError::Edit)
        }
    }
}
