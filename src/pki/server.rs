//! The server certificate: made automatically at the first TLS start (issued by the CA when
//! it has a key, self-signed otherwise, for the configured host names), created anew,
//! imported (with its key, or refused), exported without its key, shown.

use std::path::Path;

use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use time::OffsetDateTime;

use super::authority::{self, check_key, first_certificate, parse};
use super::files::{self, certificates_pem, key_pem};
use super::issue;
use super::{CertificateInfo, PkiError, PkiPaths};

/// Status warns when the server certificate expires within this many days.
pub const EXPIRY_WARNING_DAYS: i64 = 30;

/// The server certificate chain and its key, ready for TLS.
#[derive(Debug)]
pub struct ServerCertificate {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    /// Facts about the first certificate of the chain.
    pub info: CertificateInfo,
}

/// Who signed a newly made server certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignedBy {
    Authority,
    Itself,
}

/// The server certificate, or `None` when none exists yet.
pub fn load(paths: &PkiPaths) -> Result<Option<ServerCertificate>, PkiError> {
    if !paths.server_certificate.exists() {
        return Ok(None);
    }
    let chain = files::read_certificates(&paths.server_certificate)?;
    let info = parse(&chain[0], &paths.server_certificate)?;
    let key = files::read_key(&paths.server_private_key, "a server certificate")?;
    check_key(&info, &key, &paths.server_private_key)?;
    Ok(Some(ServerCertificate { chain, key, info }))
}

/// The server certificate; an error that says how to make one when there is none.
pub fn require(paths: &PkiPaths) -> Result<ServerCertificate, PkiError> {
    load(paths)?.ok_or_else(|| PkiError::NoServerCertificate {
        path: paths.server_certificate.clone(),
    })
}

/// Makes a new server certificate for `host_names`, replacing the present one.
pub fn create(
    paths: &PkiPaths,
    host_names: &[String],
    now: OffsetDateTime,
) -> Result<(CertificateInfo, SignedBy), PkiError> {
    let signer = match authority::load(paths)? {
        Some(authority) if authority.can_issue() => Some(authority.signer(paths)?),
        _ => None,
    };
    let issued = issue::server(host_names, signer.as_ref(), now)?;
    files::write_private(&paths.server_private_key, &issued.key_pem)?;
    files::write_public(&paths.server_certificate, &issued.certificate_pem)?;
    let signed_by = match signer {
        Some(_) => SignedBy::Authority,
        None => SignedBy::Itself,
    };
    Ok((
        parse(&issued.certificate, &paths.server_certificate)?,
        signed_by,
    ))
}

/// The server certificate, made first if there is none (the first TLS start). The flag says
/// whether it was made now.
pub fn ensure(
    paths: &PkiPaths,
    host_names: &[String],
    now: OffsetDateTime,
) -> Result<(ServerCertificate, Option<SignedBy>), PkiError> {
    if let Some(existing) = load(paths)? {
        return Ok((existing, None));
    }
    let (_, signed_by) = create(paths, host_names, now)?;
    Ok((require(paths)?, Some(signed_by)))
}

/// Imports a server certificate (chain) and its private key from one PEM file; a file
/// without the key is refused, as TLS cannot work without it.
pub fn import(paths: &PkiPaths, file: &Path) -> Result<CertificateInfo, PkiError> {
    let pem = files::read_pem(file)?;
    if pem.certificates.is_empty() {
        return Err(PkiError::NoCertificate {
            path: file.to_path_buf(),
        });
    }
    let Some(key) = &pem.key else {
        return Err(PkiError::MissingKey {
            path: file.to_path_buf(),
            what: "a server certificate",
        });
    };
    let info = parse(&pem.certificates[0], file)?;
    check_key(&info, key, file)?;
    files::write_private(&paths.server_private_key, &key_pem(key))?;
    files::write_public(
        &paths.server_certificate,
        &certificates_pem(&pem.certificates),
    )?;
    Ok(info)
}

/// Writes the server certificate chain, without its key, to `out`.
pub fn export(paths: &PkiPaths, out: &Path) -> Result<CertificateInfo, PkiError> {
    let chain = files::read_certificates(&paths.server_certificate)?;
    let info = parse(&chain[0], &paths.server_certificate)?;
    files::write_public(out, &certificates_pem(&chain))?;
    Ok(info)
}

/// Facts about the server certificate (the key is not needed to show it).
pub fn show(paths: &PkiPaths) -> Result<CertificateInfo, PkiError> {
    if !paths.server_certificate.exists() {
        return Err(PkiError::NoServerCertificate {
            path: paths.server_certificate.clone(),
        });
    }
    let certificate = first_certificate(&paths.server_certificate)?;
    parse(&certificate, &paths.server_certificate)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CertificateSettings;

    #[test]
    fn made_by_the_ca_when_it_can_issue_else_self_signed() {
        let dir = tempfile::tempdir().unwrap();
        let paths = PkiPaths::new(&CertificateSettings::default(), dir.path());
        let names = vec!["broker.example".to_string(), "127.0.0.1".to_string()];
        let now = OffsetDateTime::now_utc();
        let (certificate, made) = ensure(&paths, &names, now).unwrap();
        assert_eq!(made, Some(SignedBy::Itself));
        assert_eq!(certificate.info.subject_alt_names, names);
        // Present now: not made again.
        assert_eq!(ensure(&paths, &names, now).unwrap().1, None);

        authority::create(&paths, "CA", now).unwrap();
        let (info, signed_by) = create(&paths, &names, now).unwrap();
        assert_eq!(signed_by, SignedBy::Authority);
        assert_eq!(info.issuer, "CN=CA");
    }

    #[test]
    fn import_without_the_key_is_refused_with_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let paths = PkiPaths::new(&CertificateSettings::default(), dir.path());
        create(
            &paths,
            &["localhost".to_string()],
            OffsetDateTime::now_utc(),
        )
        .unwrap();
        let out = dir.path().join("exported.pem");
        export(&paths, &out).unwrap();
        let error = import(&paths, &out).unwrap_err().to_string();
        assert!(
            error.contains("exported.pem") && error.contains("no private key"),
            "{error}"
        );
    }
}
