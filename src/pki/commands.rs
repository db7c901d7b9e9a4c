//! The certificate actions as commands over a configuration and a data directory, each
//! returning what it did: one implementation behind `roost ca|server-cert|client-cert` and,
//! later, the admin socket of a running broker.

use std::path::{Path, PathBuf};

use time::OffsetDateTime;

use super::info::format_time;
use super::server::SignedBy;
use super::{CertificateInfo, PkiError, PkiPaths, authority, clients, server};
use crate::config::{ClientCertificateStatus, Config};

/// One certificate action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertCommand {
    CaCreate { common_name: String },
    CaImport { file: PathBuf },
    CaExport { out: PathBuf },
    CaShow,
    ServerCreate,
    ServerImport { file: PathBuf },
    ServerExport { out: PathBuf },
    ServerShow,
    ClientIssue { name: String, out_dir: PathBuf },
    ClientAdd { file: PathBuf },
    ClientList,
    ClientAuthorize { id: String },
    ClientRevoke { id: String },
    ClientRemove { id: String },
}

/// What a command did: a report for the operator, and whether `config` changed (and so
/// should be saved and applied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub report: String,
    pub config_changed: bool,
}

impl Outcome {
    fn files(report: String) -> Outcome {
        Outcome {
            report,
            config_changed: false,
        }
    }

    fn config(report: String) -> Outcome {
        Outcome {
            report,
            config_changed: true,
        }
    }
}

/// Runs `command` on the certificate files under `data_dir` (or those `config` names) and
/// on `config`'s client list.
pub fn run(
    command: &CertCommand,
    config: &mut Config,
    data_dir: &Path,
    now: OffsetDateTime,
) -> Result<Outcome, PkiError> {
    let paths = PkiPaths::new(&config.certificates, data_dir);
    let host_names = config.broker.tls.host_names.clone();
    let settings = &mut config.certificates;
    Ok(match command {
        CertCommand::CaCreate { common_name } => {
            let info = authority::create(&paths, common_name, now)?;
            Outcome::files(format!(
                "created a new certificate authority in {} (key: {}); certificates the previous CA issued are no longer trusted through it\n{info}",
                paths.ca_certificate.display(),
                paths.ca_private_key.display()
            ))
        }
        CertCommand::CaImport { file } => {
            let (info, has_key) = authority::import(&paths, file)?;
            let key = match has_key {
                true => format!(
                    "with its private key ({}): it can issue",
                    paths.ca_private_key.display()
                ),
                false => "without a private key: it cannot issue certificates".to_string(),
            };
            Outcome::files(format!(
                "imported the certificate authority from {} into {}, {key}\n{info}",
                file.display(),
                paths.ca_certificate.display()
            ))
        }
        CertCommand::CaExport { out } => {
            let info = authority::export(&paths, out)?;
            Outcome::files(format!(
                "exported the CA certificate (without its key) to {}\nSHA-256: {}",
                out.display(),
                info.sha256
            ))
        }
        CertCommand::CaShow => {
            let authority = authority::require(&paths)?;
            let issuing = match authority.can_issue() {
                true => "can issue certificates (private key present)",
                false => "cannot issue certificates (no private key)",
            };
            Outcome::files(format!("{}\n{issuing}", authority.info))
        }
        CertCommand::ServerCreate => {
            let (info, signed_by) = server::create(&paths, &host_names, now)?;
            Outcome::files(format!(
                "created a new server certificate in {}, {}; it applies to new TLS connections at the next apply\n{info}",
                paths.server_certificate.display(),
                signed_by_text(signed_by)
            ))
        }
        CertCommand::ServerImport { file } => {
            let info = server::import(&paths, file)?;
            Outcome::files(format!(
                "imported the server certificate and its key from {} into {}\n{info}",
                file.display(),
                paths.server_certificate.display()
            ))
        }
        CertCommand::ServerExport { out } => {
            let info = server::export(&paths, out)?;
            Outcome::files(format!(
                "exported the server certificate (without its key) to {}\nSHA-256: {}",
                out.display(),
                info.sha256
            ))
        }
        CertCommand::ServerShow => {
            let info = server::show(&paths)?;
            Outcome::files(format!("{info}{}", expiry_warning(&info, now)))
        }
        CertCommand::ClientIssue { name, out_dir } => {
            let issued = clients::issue(settings, &paths, name, out_dir, now)?;
            Outcome::config(format!(
                "issued {} and {} (key, mode 0600), listed as Authorized\nSHA-256: {}\nValid until: {}",
                issued.certificate_file.display(),
                issued.key_file.display(),
                issued.info.sha256,
                format_time(issued.info.not_after)
            ))
        }
        CertCommand::ClientAdd { file } => {
            let added = clients::add(settings, file)?;
            Outcome::config(format!(
                "added {} from {} as Authorized\nSHA-256: {}",
                added.subject,
                file.display(),
                added.thumbprint
            ))
        }
        CertCommand::ClientList => Outcome::files(list(config)),
        CertCommand::ClientAuthorize { id } => {
            let entry = clients::set_status(settings, id, ClientCertificateStatus::Authorized)?;
            Outcome::config(format!(
                "{} ({}) is Authorized",
                entry.name, entry.thumbprint
            ))
        }
        CertCommand::ClientRevoke { id } => {
            let entry = clients::set_status(settings, id, ClientCertificateStatus::Revoked)?;
            Outcome::config(format!(
                "{} ({}) is Revoked: refused from now on, and clients connected with it are disconnected at the next apply",
                entry.name, entry.thumbprint
            ))
        }
        CertCommand::ClientRemove { id } => {
            let entry = clients::remove(settings, id)?;
            Outcome::config(format!(
                "removed {} ({}) from the list",
                entry.name, entry.thumbprint
            ))
        }
    })
}

fn signed_by_text(signed_by: SignedBy) -> &'static str {
    match signed_by {
        SignedBy::Authority => "issued by the certificate authority",
        SignedBy::Itself => "self-signed (the CA has no private key)",
    }
}

/// The Status warning for a server certificate that expires within 30 days, if any.
pub fn expiry_warning(info: &CertificateInfo, now: OffsetDateTime) -> String {
    if info.expires_within(now, server::EXPIRY_WARNING_DAYS) {
        format!(
            "\nwarning: the server certificate expires on {}",
            format_time(info.not_after)
        )
    } else {
        String::new()
    }
}

/// The client list as a table: name, status, expiry, thumbprint, subject.
fn list(config: &Config) -> String {
    let clients = &config.certificates.clients;
    if clients.is_empty() {
        return "no client certificates listed".to_string();
    }
    let width = clients
        .iter()
        .map(|c| c.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let mut text = format!(
        "{:width$}  {:10}  {:20}  {:64}  SUBJECT",
        "NAME", "STATUS", "EXPIRES", "SHA-256"
    );
    for client in clients {
        let status = match client.status {
            ClientCertificateStatus::Authorized => "Authorized",
            ClientCertificateStatus::Revoked => "Revoked",
        };
        text.push_str(&format!(
            "\n{:width$}  {:10}  {:20}  {:64}  {}",
            client.name, status, client.expires, client.thumbprint, client.subject
        ));
    }
    text
}
