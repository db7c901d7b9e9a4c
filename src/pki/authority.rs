//! The certificate authority: create (with key), import a PEM certificate with or without
//! its key, export the certificate (never the key), show. Certificates it issued are
//! trusted as client certificates; it can issue only when its private key is present.

use std::path::Path;

use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use time::OffsetDateTime;

use super::files::{self, certificates_pem, key_pem};
use super::issue::{self, Signer};
use super::{CertificateInfo, PkiError, PkiPaths};

/// The configured CA as read from its files.
#[derive(Debug)]
pub struct Authority {
    pub certificate: CertificateDer<'static>,
    pub info: CertificateInfo,
    key: Option<PrivateKeyDer<'static>>,
}

impl Authority {
    /// Whether it can issue certificates (its private key is present).
    pub fn can_issue(&self) -> bool {
        self.key.is_some()
    }

    /// The signer for new certificates; refused when the CA has no private key.
    pub fn signer(&self, paths: &PkiPaths) -> Result<Signer, PkiError> {
        let key = self
            .key
            .as_ref()
            .ok_or_else(|| PkiError::AuthorityCannotIssue {
                path: paths.ca_private_key.clone(),
            })?;
        Signer::new(&self.certificate, key)
    }
}

/// The CA, or `None` when none has been created or imported.
pub fn load(paths: &PkiPaths) -> Result<Option<Authority>, PkiError> {
    if !paths.ca_certificate.exists() {
        return Ok(None);
    }
    let certificate = first_certificate(&paths.ca_certificate)?;
    let info = parse(&certificate, &paths.ca_certificate)?;
    let key = if paths.ca_private_key.exists() {
        let key = files::read_key(&paths.ca_private_key, "the CA's key file")?;
        check_key(&info, &key, &paths.ca_private_key)?;
        Some(key)
    } else {
        None
    };
    Ok(Some(Authority {
        certificate,
        info,
        key,
    }))
}

/// The CA; an error that says how to make one when there is none.
pub fn require(paths: &PkiPaths) -> Result<Authority, PkiError> {
    load(paths)?.ok_or_else(|| PkiError::NoAuthority {
        path: paths.ca_certificate.clone(),
    })
}

/// Creates a new CA with its private key, replacing the present one. Certificates the old CA
/// issued are no longer trusted through it.
pub fn create(
    paths: &PkiPaths,
    common_name: &str,
    now: OffsetDateTime,
) -> Result<CertificateInfo, PkiError> {
    let issued = issue::authority(common_name, now)?;
    // The key first: a crash between the two writes leaves a key without its certificate,
    // which `load` reports, rather than a new certificate whose key is lost.
    files::write_private(&paths.ca_private_key, &issued.key_pem)?;
    files::write_public(&paths.ca_certificate, &issued.certificate_pem)?;
    parse(&issued.certificate, &paths.ca_certificate)
}

/// Imports a CA certificate from a PEM file, with its private key if the file holds one.
/// Without a key the previous key is removed (it belongs to another certificate) and the CA
/// can no longer issue. Returns the CA's facts and whether it can issue.
pub fn import(paths: &PkiPaths, file: &Path) -> Result<(CertificateInfo, bool), PkiError> {
    let pem = files::read_pem(file)?;
    let Some(certificate) = pem.certificates.first() else {
        return Err(PkiError::NoCertificate {
            path: file.to_path_buf(),
        });
    };
    let info = parse(certificate, file)?;
    if !info.is_ca {
        return Err(PkiError::NotCa {
            path: file.to_path_buf(),
        });
    }
    if let Some(key) = &pem.key {
        check_key(&info, key, file)?;
        files::write_private(&paths.ca_private_key, &key_pem(key))?;
    } else {
        files::remove_if_present(&paths.ca_private_key)?;
    }
    files::write_public(
        &paths.ca_certificate,
        &certificates_pem(std::slice::from_ref(certificate)),
    )?;
    Ok((info, pem.key.is_some()))
}

/// Writes the CA certificate, without its key, to `out`.
pub fn export(paths: &PkiPaths, out: &Path) -> Result<CertificateInfo, PkiError> {
    let authority = require(paths)?;
    files::write_public(
        out,
        &certificates_pem(std::slice::from_ref(&authority.certificate)),
    )?;
    Ok(authority.info)
}

pub(super) fn first_certificate(path: &Path) -> Result<CertificateDer<'static>, PkiError> {
    let mut certificates = files::read_certificates(path)?;
    Ok(certificates.swap_remove(0))
}

pub(super) fn parse(
    certificate: &CertificateDer<'_>,
    path: &Path,
) -> Result<CertificateInfo, PkiError> {
    CertificateInfo::parse(certificate).map_err(|message| PkiError::BadCertificate {
        path: path.to_path_buf(),
        message,
    })
}

/// Refuses a key that is unusable or does not belong to the certificate.
pub(super) fn check_key(
    info: &CertificateInfo,
    key: &PrivateKeyDer<'_>,
    path: &Path,
) -> Result<(), PkiError> {
    let pair = issue::key_pair(key).map_err(|message| PkiError::BadKey {
        path: path.to_path_buf(),
        message,
    })?;
    if pair.public_key_raw() != info.public_key.as_slice() {
        return Err(PkiError::KeyMismatch {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CertificateSettings;

    fn paths_in(dir: &Path) -> PkiPaths {
        PkiPaths::new(&CertificateSettings::default(), dir)
    }

    #[test]
    fn a_created_ca_can_issue_and_an_imported_certificate_alone_cannot() {
        let dir = tempfile::tempdir().unwrap();
        let paths = paths_in(dir.path());
        assert!(load(&paths).unwrap().is_none());
        let info = create(&paths, "Test CA", OffsetDateTime::now_utc()).unwrap();
        assert!(info.is_ca);
        let authority = require(&paths).unwrap();
        assert!(authority.can_issue());
        assert_eq!(authority.info, info);

        let exported = dir.path().join("out/ca.pem");
        export(&paths, &exported).unwrap();
        let text = std::fs::read_to_string(&exported).unwrap();
        assert!(text.contains("BEGIN CERTIFICATE") && !text.contains("PRIVATE KEY"));

        let other = tempfile::tempdir().unwrap();
        let other_paths = paths_in(other.path());
        let (imported, has_key) = import(&other_paths, &exported).unwrap();
        assert!(!has_key);
        assert_eq!(imported.sha256, info.sha256);
        let error = require(&other_paths)
            .unwrap()
            .signer(&other_paths)
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("no private key"), "{error}");
    }

    #[test]
    fn a_key_of_another_certificate_is_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let paths = paths_in(dir.path());
        create(&paths, "A", OffsetDateTime::now_utc()).unwrap();
        let first_key = std::fs::read_to_string(&paths.ca_private_key).unwrap();
        create(&paths, "B", OffsetDateTime::now_utc()).unwrap();
        let mixed = dir.path().join("mixed.pem");
        let cert = std::fs::read_to_string(&paths.ca_certificate).unwrap();
        std::fs::write(&mixed, format!("{cert}{first_key}")).unwrap();
        let error = import(&paths, &mixed).unwrap_err().to_string();
        assert!(
            error.contains("mixed.pem") && error.contains("does not belong"),
            "{error}"
        );
    }
}
