//! The certificate actions of the Certificate Authority, Server Certificate and Client
//! Certificates nodes: what the operator is asked (a path or a name, typed; a confirmation
//! for what invalidates something) and the [`CertCommand`] it leads to. The command itself is
//! [`roost::pki::commands`]'s, the same as `roost ca|server-cert|client-cert` runs.

use std::path::PathBuf;

use crate::config::Config;
use crate::pki::commands::{self, CertCommand};

use super::action::Action;

/// What a typed line is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertPrompt {
    CaImport,
    CaExport,
    ServerImport,
    ServerExport,
    IssueName,
    IssueDirectory { name: String },
    AddFile,
}

/// What comes after a prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Ask(CertPrompt),
    Run(CertCommand),
}

impl CertPrompt {
    pub fn label(&self) -> String {
        match self {
            CertPrompt::CaImport => "Import CA from PEM file (with or without its key):".into(),
            CertPrompt::CaExport => "Export the CA certificate (no key) to file:".into(),
            CertPrompt::ServerImport => "Import server certificate and key from PEM file:".into(),
            CertPrompt::ServerExport => "Export the server certificate (no key) to file:".into(),
            CertPrompt::IssueName => "Name of the new client certificate:".into(),
            CertPrompt::IssueDirectory { name } => {
                format!("Directory for {name}.crt and {name}.key:")
            }
            CertPrompt::AddFile => "Add client certificate from PEM file:".into(),
        }
    }

    /// The text the input starts with.
    pub fn initial(&self) -> String {
        match self {
            CertPrompt::CaExport => "ca.crt".into(),
            CertPrompt::ServerExport => "server.crt".into(),
            CertPrompt::IssueDirectory { .. } => ".".into(),
            _ => String::new(),
        }
    }

    /// The step `text` leads to; an error keeps the prompt open with the message.
    pub fn next(&self, text: &str) -> Result<Step, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("type a value, or Esc to cancel".into());
        }
        let path = PathBuf::from(text);
        Ok(match self {
            CertPrompt::CaImport => Step::Run(CertCommand::CaImport { file: path }),
            CertPrompt::CaExport => Step::Run(CertCommand::CaExport { out: path }),
            CertPrompt::ServerImport => Step::Run(CertCommand::ServerImport { file: path }),
            CertPrompt::ServerExport => Step::Run(CertCommand::ServerExport { out: path }),
            CertPrompt::IssueName => Step::Ask(CertPrompt::IssueDirectory {
                name: text.to_string(),
            }),
            CertPrompt::IssueDirectory { name } => Step::Run(CertCommand::ClientIssue {
                name: name.clone(),
                out_dir: path,
            }),
            CertPrompt::AddFile => Step::Run(CertCommand::ClientAdd { file: path }),
        })
    }
}

/// The question asked before a destructive command, saying what it invalidates.
pub fn confirmation(command: &CertCommand) -> Option<String> {
    match command {
        CertCommand::CaCreate { .. } => Some(
            "Create a new certificate authority? Client certificates the present CA issued are \
             no longer trusted through it, and it can no longer issue."
                .into(),
        ),
        CertCommand::ServerCreate => Some(
            "Create a new server certificate? Clients that pinned the present one must be given \
             the new one; it applies to new connections at Apply."
                .into(),
        ),
        CertCommand::ClientRevoke { id } => Some(format!(
            "Revoke {id}? It is refused from Apply on, and clients connected with it are \
             disconnected."
        )),
        CertCommand::ClientRemove { id } => Some(format!(
            "Remove {id} from the list? It is no longer Authorized or Revoked."
        )),
        _ => None,
    }
}

/// Completes the last component of a typed path from its directory's entries: the one
/// entry it starts, or the longest prefix several entries share; a directory gets its `/`.
/// The text is kept when nothing matches or the directory cannot be read.
pub fn complete_path(text: &str) -> String {
    let (dir, prefix) = match text.rfind('/') {
        Some(slash) => (&text[..=slash], &text[slash + 1..]),
        None => ("", text),
    };
    let listing = if dir.is_empty() { "." } else { dir };
    let Ok(entries) = std::fs::read_dir(listing) else {
        return text.to_string();
    };
    let mut matches: Vec<(String, bool)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            name.starts_with(prefix).then_some((name, is_dir))
        })
        .collect();
    matches.sort();
    match matches.as_slice() {
        [] => text.to_string(),
        [(name, is_dir)] => format!("{dir}{name}{}", if *is_dir { "/" } else { "" }),
        [(first, _), rest @ ..] => {
            let mut common = first.len();
            for (name, _) in rest {
                common = common.min(
                    first
                        .chars()
                        .zip(name.chars())
                        .take_while(|(a, b)| a == b)
                        .map(|(a, _)| a.len_utf8())
                        .sum(),
                );
            }
            format!("{dir}{}", &first[..common])
        }
    }
}

/// What a finished command reports: its text, and the changed configuration (now pending).
#[derive(Debug, Clone, PartialEq)]
pub struct CertDone {
    pub report: String,
    pub config: Option<Box<Config>>,
}

/// Runs `command` on a copy of the pending configuration, with the certificate files under
/// its data directory. Reads and writes files: the console runs it off the async threads.
pub fn perform(command: &CertCommand, pending: &Config) -> Action {
    let mut config = pending.clone();
    let data_dir = config.persistence.data_dir.clone();
    let result = commands::run(
        command,
        &mut config,
        &data_dir,
        time::OffsetDateTime::now_utc(),
    )
    .map(|outcome| CertDone {
        report: outcome.report,
        config: outcome.config_changed.then(|| Box::new(config)),
    })
    .map_err(|error| error.to_string());
    Action::CertificateDone(result)
}
