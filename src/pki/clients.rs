//! Client certificates: issue one from the CA (certificate and key into files the operator
//! hands to a device), add one from a PEM file, list, authorize, revoke, remove. The list
//! lives in the configuration (`certificates.clients`, by SHA-256 thumbprint); issued keys
//! are written only to the files the operator asked for.
//!
//! Entries are found by an ID: their name, their subject common name or their thumbprint.

use std::path::{Path, PathBuf};

use time::OffsetDateTime;

use super::authority::{self, parse};
use super::files;
use super::info::{format_time, normalize_thumbprint};
use super::issue;
use super::{CertificateInfo, PkiError, PkiPaths};
use crate::config::{CertificateSettings, ClientCertificate, ClientCertificateStatus};

/// What `issue` wrote.
#[derive(Debug)]
pub struct IssuedClient {
    pub certificate_file: PathBuf,
    pub key_file: PathBuf,
    pub info: CertificateInfo,
}

/// Issues a certificate named `name` from the CA into `out_dir/NAME.crt` and
/// `out_dir/NAME.key` (mode 0600), and lists it as Authorized. Existing files are not
/// overwritten: a key handed to a device must not silently change.
pub fn issue(
    settings: &mut CertificateSettings,
    paths: &PkiPaths,
    name: &str,
    out_dir: &Path,
    now: OffsetDateTime,
) -> Result<IssuedClient, PkiError> {
    check_name(name)?;
    let signer = authority::require(paths)?.signer(paths)?;
    let certificate_file = out_dir.join(format!("{name}.crt"));
    let key_file = out_dir.join(format!("{name}.key"));
    for path in [&certificate_file, &key_file] {
        if path.exists() {
            return Err(PkiError::Exists { path: path.clone() });
        }
    }
    if let Some(existing) = settings.clients.iter().find(|c| c.name == name) {
        return Err(PkiError::DuplicateClient {
            thumbprint: existing.thumbprint.clone(),
            name: existing.name.clone(),
        });
    }
    let issued = issue::client_now(name, &signer, now)?;
    let info = parse(&issued.certificate, &certificate_file)?;
    files::write_private(&key_file, &issued.key_pem)?;
    files::write_public(&certificate_file, &issued.certificate_pem)?;
    settings
        .clients
        .push(entry(name, &info, ClientCertificateStatus::Authorized));
    Ok(IssuedClient {
        certificate_file,
        key_file,
        info,
    })
}

/// Lists the certificate of a PEM file (its first) as Authorized, named after its common
/// name (or the file name).
pub fn add(settings: &mut CertificateSettings, file: &Path) -> Result<ClientCertificate, PkiError> {
    let certificates = files::read_certificates(file)?;
    let info = parse(&certificates[0], file)?;
    if let Some(existing) = settings
        .clients
        .iter()
        .find(|c| c.thumbprint == info.sha256)
    {
        return Err(PkiError::DuplicateClient {
            thumbprint: existing.thumbprint.clone(),
            name: existing.name.clone(),
        });
    }
    let name = info.common_name.clone().unwrap_or_else(|| {
        file.file_stem()
            .map(|stem| stem.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    let added = entry(&name, &info, ClientCertificateStatus::Authorized);
    settings.clients.push(added.clone());
    Ok(added)
}

/// Sets the status of the entry `id` names; Revoked takes precedence over everything else
/// when clients connect.
pub fn set_status(
    settings: &mut CertificateSettings,
    id: &str,
    status: ClientCertificateStatus,
) -> Result<ClientCertificate, PkiError> {
    let index = find(settings, id)?;
    settings.clients[index].status = status;
    Ok(settings.clients[index].clone())
}

/// Removes the entry `id` names from the list.
pub fn remove(settings: &mut CertificateSettings, id: &str) -> Result<ClientCertificate, PkiError> {
    let index = find(settings, id)?;
    Ok(settings.clients.remove(index))
}

/// The index of the one entry `id` names: by thumbprint (any case, `:` allowed), else by
/// name, else by subject common name.
pub fn find(settings: &CertificateSettings, id: &str) -> Result<usize, PkiError> {
    let thumbprint = normalize_thumbprint(id);
    if let Some(index) = settings
        .clients
        .iter()
        .position(|c| c.thumbprint.eq_ignore_ascii_case(&thumbprint))
    {
        return Ok(index);
    }
    let by = |matches: &dyn Fn(&ClientCertificate) -> bool| -> Vec<usize> {
        (0..settings.clients.len())
            .filter(|&i| matches(&settings.clients[i]))
            .collect()
    };
    for found in [
        by(&|c| c.name == id),
        by(&|c| common_name(&c.subject) == Some(id)),
    ] {
        match found.as_slice() {
            [] => continue,
            [index] => return Ok(*index),
            many => {
                return Err(PkiError::AmbiguousClient {
                    id: id.to_string(),
                    count: many.len(),
                });
            }
        }
    }
    Err(PkiError::UnknownClient { id: id.to_string() })
}

/// The `CN=` value of a subject as x509-parser prints it (`CN=name, O=...`).
fn common_name(subject: &str) -> Option<&str> {
    subject
        .split(", ")
        .find_map(|part| part.strip_prefix("CN="))
}

fn entry(name: &str, info: &CertificateInfo, status: ClientCertificateStatus) -> ClientCertificate {
    ClientCertificate {
        name: name.to_string(),
        thumbprint: info.sha256.clone(),
        subject: info.subject.clone(),
        expires: format_time(info.not_after),
        status,
    }
}

/// Names become file names: letters, digits, `.`, `_` and `-`, not starting with `.`.
fn check_name(name: &str) -> Result<(), PkiError> {
    let bad = |reason| PkiError::BadName {
        name: name.to_string(),
        reason,
    };
    if name.is_empty() || name.len() > 64 {
        return Err(bad("it must have 1 to 64 characters"));
    }
    if name.starts_with('.') {
        return Err(bad("it must not start with a dot"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(bad("use letters, digits, '.', '_' and '-' only"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn issue_writes_the_pair_lists_it_and_finds_it_by_every_id() {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = CertificateSettings::default();
        let paths = PkiPaths::new(&settings, dir.path());
        let now = OffsetDateTime::now_utc();
        let out = dir.path().join("devices");
        let error = issue(&mut settings, &paths, "sensor-1", &out, now).unwrap_err();
        assert!(matches!(error, PkiError::NoAuthority { .. }), "{error}");

        authority::create(&paths, "CA", now).unwrap();
        let issued = issue(&mut settings, &paths, "sensor-1", &out, now).unwrap();
        assert_eq!(issued.certificate_file, out.join("sensor-1.crt"));
        let mode = std::fs::metadata(&issued.key_file)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(settings.clients.len(), 1);
        assert_eq!(
            settings.clients[0].status,
            ClientCertificateStatus::Authorized
        );

        let thumbprint = issued.info.sha256.to_uppercase();
        for id in ["sensor-1", thumbprint.as_str()] {
            assert_eq!(find(&settings, id).unwrap(), 0, "{id}");
        }
        set_status(&mut settings, "sensor-1", ClientCertificateStatus::Revoked).unwrap();
        assert_eq!(settings.clients[0].status, ClientCertificateStatus::Revoked);

        // Adding the same certificate again is refused; removing it empties the list.
        let error = add(&mut settings, &issued.certificate_file).unwrap_err();
        assert!(matches!(error, PkiError::DuplicateClient { .. }), "{error}");
        remove(&mut settings, "sensor-1").unwrap();
        assert!(settings.clients.is_empty());
        let added = add(&mut settings, &issued.certificate_file).unwrap();
        assert_eq!(added.name, "sensor-1");

        let error = issue(&mut settings, &paths, "sensor-1", &out, now).unwrap_err();
        assert!(matches!(error, PkiError::Exists { .. }), "{error}");
        assert!(matches!(
            issue(&mut settings, &paths, "../x", &out, now).unwrap_err(),
            PkiError::BadName { .. }
        ));
    }
}
