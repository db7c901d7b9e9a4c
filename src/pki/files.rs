//! Reading and writing PEM files. Reads name the file in every error; writes go to a
//! temporary file in the same directory, then rename over the target, so that nothing
//! half-written is ever left behind. Private keys are created with mode 0600 from the start
//! (never written first and restricted afterwards).

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::PkiError;

/// Mode of private key files: readable by the broker's user only.
pub const PRIVATE_MODE: u32 = 0o600;
/// Mode of certificate files, which are public.
pub const PUBLIC_MODE: u32 = 0o644;

/// The certificates and the private key (if any) of one PEM file.
#[derive(Debug)]
pub struct PemFile {
    pub path: PathBuf,
    pub certificates: Vec<CertificateDer<'static>>,
    pub key: Option<PrivateKeyDer<'static>>,
}

/// Reads a PEM file holding certificates and perhaps a private key.
pub fn read_pem(path: &Path) -> Result<PemFile, PkiError> {
    let bytes = fs::read(path).map_err(|source| PkiError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let bad_pem = |error: pem::Error| PkiError::BadPem {
        path: path.to_path_buf(),
        message: error.to_string(),
    };
    let certificates = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(bad_pem)?;
    let key = match PrivateKeyDer::from_pem_slice(&bytes) {
        Ok(key) => Some(key),
        Err(pem::Error::NoItemsFound) => None,
        Err(error) => return Err(bad_pem(error)),
    };
    Ok(PemFile {
        path: path.to_path_buf(),
        certificates,
        key,
    })
}

/// Reads a PEM file that must hold at least one certificate; returns them in file order.
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    let file = read_pem(path)?;
    if file.certificates.is_empty() {
        return Err(PkiError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(file.certificates)
}

/// Reads a PEM file that must hold a private key.
pub fn read_key(path: &Path, what: &'static str) -> Result<PrivateKeyDer<'static>, PkiError> {
    read_pem(path)?.key.ok_or_else(|| PkiError::MissingKey {
        path: path.to_path_buf(),
        what,
    })
}

/// PEM text of certificates, in order.
pub fn certificates_pem(certificates: &[CertificateDer<'_>]) -> String {
    certificates
        .iter()
        .map(|der| ::pem::encode(&::pem::Pem::new("CERTIFICATE", der.as_ref().to_vec())))
        .collect()
}

/// PEM text of a private key, under the label of its encoding.
pub fn key_pem(key: &PrivateKeyDer<'_>) -> String {
    let label = match key {
        PrivateKeyDer::Pkcs1(_) => "RSA PRIVATE KEY",
        PrivateKeyDer::Sec1(_) => "EC PRIVATE KEY",
        _ => "PRIVATE KEY",
    };
    ::pem::encode(&::pem::Pem::new(label, key.secret_der().to_vec()))
}

/// Writes `contents` to `path` atomically with `mode`, creating the parent directories
/// (mode 0700: they hold private keys).
pub fn write_atomically(path: &Path, contents: &[u8], mode: u32) -> Result<(), PkiError> {
    let write_error = |source| PkiError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(write_error)?;
    crate::config::replace_file(path, contents, mode).map_err(write_error)
}

/// Writes a private key file (mode 0600).
pub fn write_private(path: &Path, pem_text: &str) -> Result<(), PkiError> {
    write_atomically(path, pem_text.as_bytes(), PRIVATE_MODE)
}

/// Writes a certificate file (mode 0644).
pub fn write_public(path: &Path, pem_text: &str) -> Result<(), PkiError> {
    write_atomically(path, pem_text.as_bytes(), PUBLIC_MODE)
}

/// Removes a file that may not exist.
pub fn remove_if_present(path: &Path) -> Result<(), PkiError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(PkiError::Write {
            path: path.to_path_buf(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn private_files_are_0600_and_no_temporary_file_remains() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/a.key");
        write_private(&path, "secret").unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        write_private(&path, "secret 2").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "secret 2");
        let names: Vec<_> = fs::read_dir(dir.path().join("keys"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("a.key")]);
    }

    #[test]
    fn a_file_without_certificates_is_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.pem");
        fs::write(&path, "nothing here\n").unwrap();
        let error = read_certificates(&path).unwrap_err().to_string();
        assert!(error.contains("empty.pem"), "{error}");
        assert!(error.contains("no PEM certificate"), "{error}");
    }
}
