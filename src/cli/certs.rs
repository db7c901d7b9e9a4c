//! `roost ca`, `roost server-cert` and `roost client-cert`: the certificate actions of
//! [`crate::pki::commands`] for scripts. Each takes `--config` and `--data-dir`, saves the
//! configuration when the action changed it, and prints what it did.

use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::pki::commands::{self, CertCommand};
use clap::{Args, Subcommand};

/// Where the certificate files live.
#[derive(Debug, Args)]
pub struct DataDir {
    /// Data directory holding the keys and certificates [default: the config's
    /// persistence.data_dir].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Create a new certificate authority with its private key (replaces the present one).
    Create {
        /// Common name of the new CA.
        #[arg(long, default_value = "roost CA")]
        name: String,
        #[command(flatten)]
        location: DataDir,
    },
    /// Import a CA certificate from a PEM file, with its private key if the file holds one.
    Import {
        file: PathBuf,
        #[command(flatten)]
        location: DataDir,
    },
    /// Write the CA certificate (never its key) to a file.
    Export {
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        #[command(flatten)]
        location: DataDir,
    },
    /// Show subject, validity and thumbprints.
    Show {
        #[command(flatten)]
        location: DataDir,
    },
}

#[derive(Debug, Subcommand)]
pub enum ServerCertCommand {
    /// Create a new server certificate for broker.tls.host_names (issued by the CA when it
    /// has a key, self-signed otherwise).
    Create {
        #[command(flatten)]
        location: DataDir,
    },
    /// Import a server certificate and its private key from a PEM file.
    Import {
        file: PathBuf,
        #[command(flatten)]
        location: DataDir,
    },
    /// Write the server certificate (never its key) to a file.
    Export {
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        #[command(flatten)]
        location: DataDir,
    },
    /// Show subject, alternative names, validity and thumbprints.
    Show {
        #[command(flatten)]
        location: DataDir,
    },
}

#[derive(Debug, Subcommand)]
pub enum ClientCertCommand {
    /// Issue a client certificate from the CA into DIR/NAME.crt and DIR/NAME.key, listed as
    /// Authorized.
    Issue {
        name: String,
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        #[command(flatten)]
        location: DataDir,
    },
    /// List the certificate of a PEM file as Authorized.
    Add {
        file: PathBuf,
        #[command(flatten)]
        location: DataDir,
    },
    /// List the client certificates with subject, thumbprint, expiry and status.
    List {
        #[command(flatten)]
        location: DataDir,
    },
    /// Mark a certificate Authorized (ID: name, subject common name or SHA-256 thumbprint).
    Authorize {
        id: String,
        #[command(flatten)]
        location: DataDir,
    },
    /// Mark a certificate Revoked: refused from now on (Revoked wins).
    Revoke {
        id: String,
        #[command(flatten)]
        location: DataDir,
    },
    /// Remove a certificate from the list.
    Remove {
        id: String,
        #[command(flatten)]
        location: DataDir,
    },
}

impl CaCommand {
    pub fn into_parts(self) -> (CertCommand, DataDir) {
        match self {
            CaCommand::Create { name, location } => {
                (CertCommand::CaCreate { common_name: name }, location)
            }
            CaCommand::Import { file, location } => (CertCommand::CaImport { file }, location),
            CaCommand::Export { out, location } => (CertCommand::CaExport { out }, location),
            CaCommand::Show { location } => (CertCommand::CaShow, location),
        }
    }
}

impl ServerCertCommand {
    pub fn into_parts(self) -> (CertCommand, DataDir) {
        match self {
            ServerCertCommand::Create { location } => (CertCommand::ServerCreate, location),
            ServerCertCommand::Import { file, location } => {
                (CertCommand::ServerImport { file }, location)
            }
            ServerCertCommand::Export { out, location } => {
                (CertCommand::ServerExport { out }, location)
            }
            ServerCertCommand::Show { location } => (CertCommand::ServerShow, location),
        }
    }
}

impl ClientCertCommand {
    pub fn into_parts(self) -> (CertCommand, DataDir) {
        match self {
            ClientCertCommand::Issue {
                name,
                out,
                location,
            } => (CertCommand::ClientIssue { name, out_dir: out }, location),
            ClientCertCommand::Add { file, location } => {
                (CertCommand::ClientAdd { file }, location)
            }
            ClientCertCommand::List { location } => (CertCommand::ClientList, location),
            ClientCertCommand::Authorize { id, location } => {
                (CertCommand::ClientAuthorize { id }, location)
            }
            ClientCertCommand::Revoke { id, location } => {
                (CertCommand::ClientRevoke { id }, location)
            }
            ClientCertCommand::Remove { id, location } => {
                (CertCommand::ClientRemove { id }, location)
            }
        }
    }
}

/// Runs one certificate command against the config file (the defaults when it does not
/// exist yet) and prints what it did; a changed config is saved.
pub fn run(
    config_path: Option<&Path>,
    command: CertCommand,
    location: DataDir,
) -> anyhow::Result<()> {
    let path = config_path.unwrap_or(Path::new("roost.ron"));
    let now = time::OffsetDateTime::now_utc();
    if !changes_config(&command) {
        let config = if path.exists() {
            Config::load(path)?
        } else {
            Config::default()
        };
        let data_dir = location
            .data_dir
            .unwrap_or_else(|| config.persistence.data_dir.clone());
        let mut config = config;
        let outcome = commands::run(&command, &mut config, &data_dir, now)?;
        println!("{}", outcome.report);
        return Ok(());
    }
    // A broker running on the file applies the change at once (see `edit_config`): a new
    // server certificate for new connections, a revoked client disconnected.
    let (report, saved) = super::edit_config(path, move |config| {
        let data_dir = location
            .data_dir
            .unwrap_or_else(|| config.persistence.data_dir.clone());
        commands::run(&command, config, &data_dir, now).map(|outcome| outcome.report)
    })
    .map_err(anyhow::Error::msg)?;
    println!("{report}");
    eprintln!("{saved}");
    Ok(())
}

/// Whether `command` may change the configuration (it names files or lists certificates):
/// only those go through the running broker and are saved.
fn changes_config(command: &CertCommand) -> bool {
    !matches!(
        command,
        CertCommand::CaShow
            | CertCommand::CaExport { .. }
            | CertCommand::ServerShow
            | CertCommand::ServerExport { .. }
            | CertCommand::ClientList
    )
}
