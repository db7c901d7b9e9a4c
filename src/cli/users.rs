//! `roost user add NAME | passwd NAME | remove NAME | list | import-mosquitto FILE`.
//!
//! The functions edit a [`Config`] and say what they did; [`run`] is the command line around
//! them: it reads the password (from stdin, or a prompt twice without echo), loads the
//! configuration and writes it back (a temporary file, then a rename).

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use clap::Subcommand;
use thiserror::Error;

use crate::auth::mosquitto::{PasswordFileError, parse_password_file};
use crate::auth::password::{PasswordError, hash_password};
use crate::config::{Config, ConfigFileError, User};

#[derive(Debug, Clone, Subcommand)]
pub enum UserCommand {
    /// Add a user; the password is read from stdin, or asked for twice when stdin is a
    /// terminal (not echoed).
    Add { name: String },
    /// Change a user's password (read as for `add`).
    Passwd { name: String },
    /// Remove a user (its topic permissions stay, under `acl.users`).
    Remove { name: String },
    /// List the users and the kind of hash each has.
    List,
    /// Import the users of a Mosquitto password file, hashes as they are ($7$, $6$, argon2).
    ImportMosquitto { file: PathBuf },
}

#[derive(Debug, Error)]
pub enum UserError {
    #[error("user {0} exists already (use `roost user passwd {0}`)")]
    Exists(String),
    #[error("no user named {0}")]
    NotFound(String),
    #[error("the username is empty")]
    EmptyName,
    #[error(transparent)]
    Password(#[from] PasswordError),
    #[error("{path}: {source}")]
    PasswordFile {
        path: PathBuf,
        #[source]
        source: PasswordFileError,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read the password: {0}")]
    Prompt(#[source] std::io::Error),
    #[error("the two passwords differ")]
    Mismatch,
    #[error(transparent)]
    Config(#[from] ConfigFileError),
    /// The edit could not be applied or saved (the message says where and why).
    #[error("{0}")]
    Edit(String),
}

/// What a command did, printed by the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserOutcome {
    Added(String),
    PasswordChanged(String),
    Removed(String),
    Imported {
        added: Vec<String>,
        replaced: Vec<String>,
    },
    Listed(Vec<UserSummary>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSummary {
    pub username: String,
    /// "argon2id", "mosquitto $7$" (PBKDF2-SHA512), "mosquitto $6$" (SHA-512).
    pub hash_kind: &'static str,
}

impl std::fmt::Display for UserOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UserOutcome::Added(name) => write!(f, "user {name} added"),
            UserOutcome::PasswordChanged(name) => write!(f, "password of user {name} changed"),
            UserOutcome::Removed(name) => write!(f, "user {name} removed"),
            UserOutcome::Imported { added, replaced } => write!(
                f,
                "imported {} users ({} new, {} replaced)",
                added.len() + replaced.len(),
                added.len(),
                replaced.len()
            ),
            UserOutcome::Listed(users) => {
                for user in users {
                    writeln!(f, "{}\t{}", user.username, user.hash_kind)?;
                }
                Ok(())
            }
        }
    }
}

/// Adds a user with an argon2id hash of `password`.
pub fn add_user(config: &mut Config, name: &str, password: &str) -> Result<UserOutcome, UserError> {
    if name.is_empty() {
        return Err(UserError::EmptyName);
    }
    if config.users.iter().any(|u| u.username == name) {
        return Err(UserError::Exists(name.to_string()));
    }
    config.users.push(User {
        username: name.to_string(),
        password_hash: hash_password(password)?,
    });
    Ok(UserOutcome::Added(name.to_string()))
}

/// Replaces a user's hash with an argon2id hash of `password`.
pub fn change_password(
    config: &mut Config,
    name: &str,
    password: &str,
) -> Result<UserOutcome, UserError> {
    let hash = hash_password(password)?;
    let user = config
        .users
        .iter_mut()
        .find(|u| u.username == name)
        .ok_or_else(|| UserError::NotFound(name.to_string()))?;
    user.password_hash = hash;
    Ok(UserOutcome::PasswordChanged(name.to_string()))
}

pub fn remove_user(config: &mut Config, name: &str) -> Result<UserOutcome, UserError> {
    let before = config.users.len();
    config.users.retain(|u| u.username != name);
    if config.users.len() == before {
        return Err(UserError::NotFound(name.to_string()));
    }
    Ok(UserOutcome::Removed(name.to_string()))
}

pub fn list_users(config: &Config) -> UserOutcome {
    UserOutcome::Listed(
        config
            .users
            .iter()
            .map(|u| UserSummary {
                username: u.username.clone(),
                hash_kind: crate::auth::password::scheme(&u.password_hash),
            })
            .collect(),
    )
}

/// Imports the users of a Mosquitto password file's text: new names are added, existing
/// ones get the file's hash. Nothing changes when a line is bad.
pub fn import_mosquitto(
    config: &mut Config,
    path: &Path,
    text: &str,
) -> Result<UserOutcome, UserError> {
    let entries = parse_password_file(text).map_err(|source| UserError::PasswordFile {
        path: path.to_path_buf(),
        source,
    })?;
    let mut added = Vec::new();
    let mut replaced = Vec::new();
    for entry in entries {
        match config
            .users
            .iter_mut()
            .find(|u| u.username == entry.username)
        {
            Some(user) => {
                user.password_hash = entry.password_hash;
                replaced.push(entry.username);
            }
            None => {
                added.push(entry.username.clone());
                config.users.push(User {
                    username: entry.username,
                    password_hash: entry.password_hash,
                });
            }
        }
    }
    Ok(UserOutcome::Imported { added, replaced })
}

/// The command line: runs the command on the configuration of `config_path` (created with the
/// defaults when a command adds something to a file that does not exist) through
/// [`super::edit_config`], so that a broker running on that file applies it. `input` supplies
/// the password when it is not a terminal. Returns the report and where the change went.
pub fn run(
    command: &UserCommand,
    config_path: &Path,
    input: &mut dyn BufRead,
) -> Result<(UserOutcome, Option<String>), UserError> {
    if let UserCommand::List = command {
        return Ok((list_users(&Config::load(config_path)?), None));
    }
    // What the command needs from outside is read first, so that the configuration is
    // edited in one step (by the running broker, when there is one).
    let known = Config::load_or_create(config_path)?;
    let password = match command {
        UserCommand::Add { name } => {
            if known.users.iter().any(|u| &u.username == name) {
                return Err(UserError::Exists(name.clone()));
            }
            Some(read_password(input)?)
        }
        UserCommand::Passwd { name } => {
            if !known.users.iter().any(|u| &u.username == name) {
                return Err(UserError::NotFound(name.clone()));
            }
            Some(read_password(input)?)
        }
        _ => None,
    };
    let imported = match command {
        UserCommand::ImportMosquitto { file } => Some(std::fs::read_to_string(file).map_err(
            |source| UserError::Read {
                path: file.clone(),
                source,
            },
        )?),
        _ => None,
    };
    let command = command.clone();
    let (outcome, saved) = super::edit_config(config_path, move |config| {
        apply(config, &command, password.as_deref(), imported.as_deref())
    })
    .map_err(UserError::Edit)?;
    Ok((outcome, Some(saved)))
}

/// The change `command` makes to `config`, with its password or imported file text.
fn apply(
    config: &mut Config,
    command: &UserCommand,
    password: Option<&str>,
    imported: Option<&str>,
) -> Result<UserOutcome, UserError> {
    match command {
        UserCommand::Add { name } => {
            if config.users.iter().any(|u| &u.username == name) {
                return Err(UserError::Exists(name.clone()));
            }
            add_user(config, name, password.unwrap_or_default())
        }
        UserCommand::Passwd { name } => {
            if !config.users.iter().any(|u| &u.username == name) {
                return Err(UserError::NotFound(name.clone()));
            }
            change_password(config, name, password.unwrap_or_default())
        }
        UserCommand::Remove { name } => remove_user(config, name),
        UserCommand::ImportMosquitto { file } => {
            import_mosquitto(config, file, imported.unwrap_or_default())
        }
        UserCommand::List => Ok(list_users(config)),
    }
}

/// The password: asked twice without echo on a terminal, else the first line of `input`.
fn read_password(input: &mut dyn BufRead) -> Result<String, UserError> {
    if std::io::stdin().is_terminal() {
        let first = prompt_hidden("Password: ")?;
        let second = prompt_hidden("Password again: ")?;
        if first != second {
            return Err(UserError::Mismatch);
        }
        return Ok(first);
    }
    let mut line = String::new();
    input.read_line(&mut line).map_err(UserError::Prompt)?;
    let password = line.trim_end_matches(['\r', '\n']).to_string();
    if password.is_empty() {
        return Err(UserError::Password(PasswordError::Empty));
    }
    Ok(password)
}

/// Reads a line from the terminal in raw mode, so that nothing typed is echoed.
fn prompt_hidden(prompt: &str) -> Result<String, UserError> {
    use crossterm::event::{Event, KeyCode, KeyEventKind, KeyModifiers, read};
    use crossterm::terminal::{disable_raw_mode, enable_raw_mode};
    let mut stderr = std::io::stderr();
    let _ = write!(stderr, "{prompt}");
    let _ = stderr.flush();
    enable_raw_mode().map_err(UserError::Prompt)?;
    let mut password = String::new();
    let result = loop {
        match read() {
            Ok(Event::Key(key)) if key.kind != KeyEventKind::Release => match key.code {
                KeyCode::Enter => break Ok(()),
                KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => {
                    break Err(UserError::Prompt(std::io::Error::new(
                        std::io::ErrorKind::Interrupted,
                        "interrupted",
                    )));
                }
                KeyCode::Backspace => {
                    password.pop();
                }
                KeyCode::Char(c) => password.push(c),
                _ => {}
            },
            Ok(_) => {}
            Err(error) => break Err(UserError::Prompt(error)),
        }
    };
    let _ = disable_raw_mode();
    let _ = writeln!(stderr, "\r");
    result.map(|()| password)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::password::StoredHash;

    fn verifies(config: &Config, name: &str, password: &str) -> bool {
        let user = config.users.iter().find(|u| u.username == name).unwrap();
        StoredHash::parse(&user.password_hash)
            .unwrap()
            .verify(password.as_bytes())
    }

    #[test]
    fn add_passwd_remove() {
        let mut config = Config::default();
        assert_eq!(
            add_user(&mut config, "alice", "one").unwrap(),
            UserOutcome::Added("alice".into())
        );
        assert!(config.users[0].password_hash.starts_with("$argon2id$"));
        assert!(verifies(&config, "alice", "one"));
        assert!(matches!(
            add_user(&mut config, "alice", "x"),
            Err(UserError::Exists(_))
        ));
        change_password(&mut config, "alice", "two").unwrap();
        assert!(verifies(&config, "alice", "two"));
        assert!(!verifies(&config, "alice", "one"));
        assert!(matches!(
            change_password(&mut config, "bob", "x"),
            Err(UserError::NotFound(_))
        ));
        remove_user(&mut config, "alice").unwrap();
        assert!(config.users.is_empty());
        assert!(matches!(
            remove_user(&mut config, "alice"),
            Err(UserError::NotFound(_))
        ));
        config.validate().unwrap();
    }

    #[test]
    fn import_adds_and_replaces_and_keeps_hashes_as_they_are() {
        let hash = "$7$101$E0XVgNCCwYc/yBBw$jWoqlW547WmcZpaR8OmVa+6Uebi80paNFdD69JXqo8OT0Mk7PhLpaiQuHxUDO8csOwggorO1kfGuoD/2/NZNVA==";
        let mut config = Config::default();
        add_user(&mut config, "alice", "old").unwrap();
        let text = format!("alice:{hash}\nbob:{hash}\n");
        let outcome = import_mosquitto(&mut config, Path::new("pw"), &text).unwrap();
        assert_eq!(
            outcome,
            UserOutcome::Imported {
                added: vec!["bob".into()],
                replaced: vec!["alice".into()]
            }
        );
        assert_eq!(config.users[0].password_hash, hash);
        // Written by mosquitto_passwd for the password "secret".
        assert!(verifies(&config, "bob", "secret"));
        config.validate().unwrap();
        // A bad file changes nothing.
        let before = config.clone();
        assert!(import_mosquitto(&mut config, Path::new("pw"), "carol:clear\n").is_err());
        assert_eq!(config, before);
    }

    #[test]
    fn list_names_the_hash_kinds() {
        let mut config = Config::default();
        add_user(&mut config, "a", "p").unwrap();
        let text = list_users(&config).to_string();
        assert_eq!(text, "a\targon2id\n");
    }
}
